//! Telephone numbers in E.164 form.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{Field, FieldError, FieldKind, field_common_impls, from_canonical_text};

/// Maximum digits in an E.164 number (country code plus national number).
const MAX_DIGITS: usize = 15;
/// Minimum digits of the national significant number.
const MIN_NSN: usize = 4;
/// `+` and up to 15 digits.
const MAX_E164: usize = 1 + MAX_DIGITS;
/// Longest raw input (separators and whitespace included) looked at before rejecting.
const MAX_INPUT_BYTES: usize = 64;

/// ITU-T E.164 assigned country calling codes (geographic areas, global
/// services and networks). The set is prefix-free.
pub(crate) const COUNTRY_CODES: &[u16] = &[
    // 1-digit
    1, 7, //
    // 2-digit
    20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56,
    57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, //
    // 3-digit
    211, 212, 213, 216, 218, //
    220, 221, 222, 223, 224, 225, 226, 227, 228, 229, //
    230, 231, 232, 233, 234, 235, 236, 237, 238, 239, //
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249, //
    250, 251, 252, 253, 254, 255, 256, 257, 258, //
    260, 261, 262, 263, 264, 265, 266, 267, 268, 269, //
    290, 291, 297, 298, 299, //
    350, 351, 352, 353, 354, 355, 356, 357, 358, 359, //
    370, 371, 372, 373, 374, 375, 376, 377, 378, //
    380, 381, 382, 383, 385, 386, 387, 389, //
    420, 421, 423, //
    500, 501, 502, 503, 504, 505, 506, 507, 508, 509, //
    590, 591, 592, 593, 594, 595, 596, 597, 598, 599, //
    670, 672, 673, 674, 675, 676, 677, 678, 679, //
    680, 681, 682, 683, 685, 686, 687, 688, 689, //
    690, 691, 692, //
    800, 808, //
    850, 852, 853, 855, 856, //
    870, //
    880, 881, 882, 883, 886, 888, //
    960, 961, 962, 963, 964, 965, 966, 967, 968, //
    970, 971, 972, 973, 974, 975, 976, 977, 979, //
    992, 993, 994, 995, 996, 998,
];

/// A telephone number, stored as E.164 `+<country code><national number>`.
///
/// Input may use spaces, `-`, `.`, `(` and `)` as separators. A leading `+`
/// or `00` marks an international number; without either, only an 11-digit
/// number starting with `1` is accepted, as a mainland China mobile number
/// (+86). The country calling code must be ITU-T assigned, the whole number
/// at most 15 digits and the national (significant) number at least 4.
/// Country codes with their own rules:
///
/// - +86: a trunk `0` after the country code is dropped; mobile numbers must
///   be 11 digits starting `13`–`19`; Beijing landlines are 10 digits
///   starting `10`; other landlines 9 to 11 digits starting `2`–`9`.
/// - +1 (North American Numbering Plan): exactly 10 digits, area code and
///   exchange code each starting `2`–`9` (`+1 0000` and `+1 555 0100` are
///   rejected).
/// - +7 (Russia, Kazakhstan): exactly 10 digits; +33 (France): exactly 9
///   digits, a trunk `0` after the country code (`+33 (0)1 …`) is dropped.
///   Neither may start with `0`.
///
/// Too few or too many digits fail with [`FieldError::PhoneLength`], a
/// forbidden leading digit with [`FieldError::PhoneNationalNumber`].
///
/// **Canonical encoding** (stable storage format): the ASCII E.164 string,
/// e.g. `+8613800138000`.
///
/// **Mask**: mainland China mobiles keep the first 3 and last 4 digits,
/// `+86 138****8000`; other numbers show the country code, then `*` for all
/// but the last 4 national digits: `+44 ******0958`.
///
/// # Examples
///
/// ```
/// use fieldseal::{Field, PhoneNumber};
///
/// let cn = PhoneNumber::parse("138-0013-8000")?;
/// assert_eq!(cn.as_str(), "+8613800138000");
/// assert!(cn.is_cn_mobile());
/// assert_eq!(cn.mask(), "+86 138****8000");
///
/// let uk = PhoneNumber::parse("0044 20 7946 0958")?;
/// assert_eq!(uk.as_str(), "+442079460958");
/// assert_eq!(uk.country_code(), 44);
/// assert_eq!(uk.mask(), "+44 ******0958");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PhoneNumber {
    /// `+` then digits; only the first `len` bytes are used.
    buf: [u8; MAX_E164],
    len: u8,
    /// Number of country code digits (1 to 3).
    cc_len: u8,
}

field_common_impls!(PhoneNumber);

/// Finds the country code at the start of `digits`, returning its length.
fn detect_country_code(digits: &[u8]) -> Option<usize> {
    if digits.first() == Some(&b'0') {
        return None;
    }
    let mut value: u16 = 0;
    for (i, &d) in digits.iter().take(3).enumerate() {
        value = value * 10 + u16::from(d.wrapping_sub(b'0'));
        if COUNTRY_CODES.contains(&value) {
            return Some(i + 1);
        }
    }
    None
}

impl PhoneNumber {
    /// The E.164 form, e.g. `+8613800138000`.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.bytes()).unwrap_or_default()
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    fn nsn(&self) -> &[u8] {
        &self.bytes()[1 + usize::from(self.cc_len)..]
    }

    /// The country calling code, e.g. `86`.
    pub fn country_code(&self) -> u16 {
        self.bytes()[1..=usize::from(self.cc_len)]
            .iter()
            .fold(0u16, |acc, &d| acc * 10 + u16::from(d.wrapping_sub(b'0')))
    }

    /// Whether this is a mainland China mobile number (+86, 11 digits starting `1`).
    pub fn is_cn_mobile(&self) -> bool {
        let nsn = self.nsn();
        self.country_code() == 86 && nsn.len() == 11 && nsn.first() == Some(&b'1')
    }
}

/// Checks the national significant number of a +86 number, after the trunk
/// prefix was removed.
fn check_cn(nsn: &[u8]) -> Result<(), FieldError> {
    match nsn {
        // Beijing landline: area code 10 and an 8-digit local number.
        [b'1', b'0', ..] if nsn.len() == 10 => Ok(()),
        [b'1', second, ..] => {
            if nsn.len() != 11 {
                Err(FieldError::PhoneLength)
            } else if (b'3'..=b'9').contains(second) {
                Ok(())
            } else {
                Err(FieldError::PhoneMobilePrefix)
            }
        }
        [b'2'..=b'9', ..] => {
            if (9..=11).contains(&nsn.len()) {
                Ok(())
            } else {
                Err(FieldError::PhoneLength)
            }
        }
        [b'0', ..] => Err(FieldError::PhoneNationalNumber),
        _ => Err(FieldError::PhoneLength),
    }
}

/// Checks the national significant number of a North American Numbering Plan (+1) number:
/// 10 digits, `NXX NXX XXXX`, where neither the area code nor the exchange code starts with `0`
/// or `1`.
fn check_nanp(nsn: &[u8]) -> Result<(), FieldError> {
    if nsn.len() != NANP_NSN_LEN {
        return Err(FieldError::PhoneLength);
    }
    match (nsn[0], nsn[3]) {
        (b'2'..=b'9', b'2'..=b'9') => Ok(()),
        _ => Err(FieldError::PhoneNationalNumber),
    }
}

/// Length of a NANP national significant number (area code, exchange, line).
const NANP_NSN_LEN: usize = 10;

/// Closed numbering plans with one national significant number length, and no national number
/// starting with `0`: +7 (Russia, Kazakhstan) 10 digits, +33 (France) 9 digits.
const FIXED_NSN_LEN: &[(&[u8], usize)] = &[(b"7", 10), (b"33", 9)];

/// Country codes after which a trunk prefix `0` written in the number is dropped.
const TRUNK_ZERO: &[&[u8]] = &[b"86", b"33"];

/// Checks the national significant number against the rules of its country code, where there are
/// any.
fn check_country_rules(cc: &[u8], nsn: &[u8]) -> Result<(), FieldError> {
    if cc == b"86" {
        return check_cn(nsn);
    }
    if cc == b"1" {
        return check_nanp(nsn);
    }
    if let Some(&(_, len)) = FIXED_NSN_LEN.iter().find(|(c, _)| *c == cc) {
        if nsn.len() != len {
            return Err(FieldError::PhoneLength);
        }
        if nsn.first() == Some(&b'0') {
            return Err(FieldError::PhoneNationalNumber);
        }
    }
    Ok(())
}

impl Field for PhoneNumber {
    const KIND: FieldKind = FieldKind::PhoneNumber;
    const MAX_CANONICAL_LEN: usize = MAX_E164;

    fn parse(input: &str) -> Result<Self, FieldError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(FieldError::PhoneLength);
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(FieldError::Empty { kind: Self::KIND });
        }
        // Collect digits; the input bound keeps this within the buffer.
        let mut digits = zeroize::Zeroizing::new([0u8; MAX_INPUT_BYTES]);
        let mut n = 0usize;
        let mut plus = false;
        for c in s.bytes() {
            match c {
                // A single `+`, before any digit.
                b'+' if !plus && n == 0 => plus = true,
                b'0'..=b'9' => {
                    if let Some(slot) = digits.get_mut(n) {
                        *slot = c;
                    }
                    n += 1;
                }
                b' ' | b'-' | b'.' | b'(' | b')' => {}
                _ => return Err(FieldError::PhoneCharacter),
            }
        }
        let all = digits.get(..n).ok_or(FieldError::PhoneLength)?;
        if all.is_empty() {
            return Err(FieldError::PhoneLength);
        }
        let (cc_len, national): (usize, &[u8]) = if plus {
            let cc_len = detect_country_code(all).ok_or(FieldError::PhoneCountryCode)?;
            (cc_len, all)
        } else if let Some(intl) = all.strip_prefix(b"00") {
            let cc_len = detect_country_code(intl).ok_or(FieldError::PhoneCountryCode)?;
            (cc_len, intl)
        } else if all.len() == 11 && all[0] == b'1' {
            (0, all)
        } else {
            return Err(FieldError::PhoneMissingCountryCode);
        };
        // `national` holds the country code (unless implied +86) then the NSN.
        let (cc, mut nsn): (&[u8], &[u8]) = if cc_len == 0 {
            (b"86", national)
        } else {
            national.split_at(cc_len)
        };
        if TRUNK_ZERO.contains(&cc)
            && let Some(stripped) = nsn.strip_prefix(b"0")
        {
            nsn = stripped;
        }
        if nsn.len() < MIN_NSN || cc.len() + nsn.len() > MAX_DIGITS {
            return Err(FieldError::PhoneLength);
        }
        check_country_rules(cc, nsn)?;
        let mut out = PhoneNumber {
            buf: [0; MAX_E164],
            len: 0,
            cc_len: 0,
        };
        out.buf[0] = b'+';
        let end_cc = 1 + cc.len();
        let end = end_cc + nsn.len();
        out.buf[1..end_cc].copy_from_slice(cc);
        out.buf[end_cc..end].copy_from_slice(nsn);
        // Both fit in u8: end <= 16 and cc.len() <= 3.
        out.len = u8::try_from(end).unwrap_or_default();
        out.cc_len = u8::try_from(cc.len()).unwrap_or_default();
        Ok(out)
    }

    fn canonical_len(&self) -> usize {
        self.bytes().len()
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.bytes());
    }

    fn from_canonical(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.first() != Some(&b'+') {
            return Err(FieldError::NonCanonical { kind: Self::KIND });
        }
        from_canonical_text(bytes)
    }

    fn mask(&self) -> String {
        let nsn = self.nsn();
        let mut m = String::with_capacity(8 + nsn.len());
        m.push('+');
        m.push_str(
            core::str::from_utf8(&self.bytes()[1..=usize::from(self.cc_len)]).unwrap_or_default(),
        );
        m.push(' ');
        let keep_tail = nsn.len().min(4);
        let keep_head = if self.is_cn_mobile() { 3 } else { 0 };
        for (i, &d) in nsn.iter().enumerate() {
            if i < keep_head || i >= nsn.len() - keep_tail {
                m.push(char::from(d));
            } else {
                m.push('*');
            }
        }
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    #[test]
    fn country_codes_are_prefix_free_and_sorted() {
        for w in COUNTRY_CODES.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        for &a in COUNTRY_CODES {
            for &b in COUNTRY_CODES {
                if a != b {
                    let (sa, sb) = (a.to_string(), b.to_string());
                    assert!(!sb.starts_with(&sa), "{sa} is a prefix of {sb}");
                }
            }
        }
    }

    #[test]
    fn cn_forms() {
        for input in [
            "13800138000",
            "+86 138 0013 8000",
            "+86-138-0013-8000",
            "0086 13800138000",
            "(+86) 13800138000",
            "+86 0 13800138000",
        ] {
            let p = PhoneNumber::parse(input);
            assert!(p.is_ok(), "{input}");
            let p = p.unwrap();
            assert_eq!(p.as_str(), "+8613800138000", "{input}");
            assert_eq!(p.mask(), "+86 138****8000");
            assert!(p.is_cn_mobile());
        }
        let bj = PhoneNumber::parse("+86 10 6552 9988").unwrap();
        assert_eq!(bj.as_str(), "+861065529988");
        assert!(!bj.is_cn_mobile());
        assert_eq!(bj.mask(), "+86 ******9988");
        let sh = PhoneNumber::parse("+86 021 6288 1234").unwrap();
        assert_eq!(sh.as_str(), "+862162881234");
    }

    #[test]
    fn errors() {
        let e = |s: &str| PhoneNumber::parse(s).err();
        assert_eq!(e("+86 12800138000"), Some(FieldError::PhoneMobilePrefix));
        assert_eq!(e("+86 1380013800"), Some(FieldError::PhoneLength));
        assert_eq!(e("+86 00 12345678"), Some(FieldError::PhoneNationalNumber));
        assert_eq!(e("+28 1234567"), Some(FieldError::PhoneCountryCode));
        assert_eq!(e("+0 1234567"), Some(FieldError::PhoneCountryCode));
        assert_eq!(e("+"), Some(FieldError::PhoneLength));
        assert_eq!(e("+1 23"), Some(FieldError::PhoneLength));
        assert_eq!(e("1234567"), Some(FieldError::PhoneMissingCountryCode));
        assert_eq!(e("+1 555 0100 x12"), Some(FieldError::PhoneCharacter));
        assert_eq!(e("+1 555+0100"), Some(FieldError::PhoneCharacter));
        assert_eq!(
            e("   "),
            Some(FieldError::Empty {
                kind: FieldKind::PhoneNumber
            })
        );
        assert_eq!(e(&"1".repeat(100)), Some(FieldError::PhoneLength));
        // 16 digits in total.
        assert_eq!(e("+1 234567890123456"), Some(FieldError::PhoneLength));
    }

    #[test]
    fn canonical_strictness() {
        let k = FieldKind::PhoneNumber;
        assert!(PhoneNumber::from_canonical(b"+8613800138000").is_ok());
        for bad in [
            &b"8613800138000"[..],
            b"+86 13800138000",
            b"+86013800138000",
            b"008613800138000",
        ] {
            assert_eq!(
                PhoneNumber::from_canonical(bad),
                Err(FieldError::NonCanonical { kind: k })
            );
        }
    }

    #[test]
    fn masks() {
        let us = PhoneNumber::parse("+1 (202) 555-0143").unwrap();
        assert_eq!(us.as_str(), "+12025550143");
        assert_eq!(us.mask(), "+1 ******0143");
        assert_eq!(us.country_code(), 1);
        let short = PhoneNumber::parse("+683 4002").unwrap();
        assert_eq!(short.mask(), "+683 4002");
    }
}
