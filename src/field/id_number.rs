//! PRC resident identity number (GB 11643-1999).

use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{Field, FieldError, FieldKind, field_common_impls, from_canonical_text};

const LEN: usize = 18;
/// Longest raw input (surrounding whitespace included) looked at before rejecting.
const MAX_INPUT_BYTES: usize = 256;
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// A PRC resident identity number (GB 11643-1999, 18 characters).
///
/// Parsing trims surrounding whitespace, accepts a lower-case final `x`, and
/// checks in order: length (exactly 18 characters), characters (17 ASCII
/// digits then a digit or `X`), region, birth date and the ISO 7064 MOD 11-2
/// check digit.
///
/// **Region** (first six digits): a mainland province-level code (11-15,
/// 21-23, 31-37, 41-46, 50-54, 61-65) with any further digits; or exactly
/// `710000` (Taiwan), `810000` (Hong Kong), `820000` (Macao) or `830000`
/// (residence permits for Taiwan residents; those for Hong Kong and Macao
/// residents use `810000` and `820000`); or `9` followed by a mainland province code, the foreigners' permanent
/// residence identity card issued since 2023, which has the same 18-character
/// layout (digits 2-3 the province of issue, 4-6 a nationality code, then
/// birth date, sequence and check digit) and is accepted as this kind (see
/// [`IdNumber::is_foreign_permanent_resident`]). The older 15-character
/// foreigners' card is not an identity number of this kind and fails the
/// length check.
///
/// **Birth date**: a real `YYYYMMDD` date from 1900 on, and not after the
/// latest calendar date anywhere on Earth (the date in UTC+14) when parsed, so
/// a person born today in any time zone (China is UTC+8) is accepted at any
/// hour, and a date that is still in the future everywhere is rejected. The
/// check reads the system clock on every parse, including when a stored value
/// is opened.
///
/// **Canonical encoding** (stable storage format): the 18 ASCII characters,
/// with the check character `X` in upper case.
///
/// **Mask**: first 6 and last 4 characters kept, 8 `*` between:
/// `110105********002X`.
///
/// # Examples
///
/// ```
/// use fieldseal::{Field, IdNumber};
///
/// let id = IdNumber::parse(" 11010519491231002x ")?;
/// assert_eq!(id.as_str(), "11010519491231002X");
/// assert_eq!(id.birth_date(), (1949, 12, 31));
/// assert_eq!(id.region_code(), "110105");
/// assert_eq!(id.mask(), "110105********002X");
/// assert_eq!(&id.canonical_bytes()[..], b"11010519491231002X");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct IdNumber {
    bytes: [u8; LEN],
}

field_common_impls!(IdNumber);

impl IdNumber {
    /// The 18-character canonical form.
    pub fn as_str(&self) -> &str {
        // Always ASCII by construction.
        core::str::from_utf8(&self.bytes).unwrap_or_default()
    }

    /// Birth date as `(year, month, day)`.
    pub fn birth_date(&self) -> (u16, u8, u8) {
        let b = &self.bytes;
        let year = digits_value(&b[6..10]);
        let month = digits_value(&b[10..12]);
        let day = digits_value(&b[12..14]);
        (
            u16::try_from(year).unwrap_or_default(),
            u8::try_from(month).unwrap_or_default(),
            u8::try_from(day).unwrap_or_default(),
        )
    }

    /// The 6-digit administrative division code (first six digits).
    ///
    /// For a foreigners' permanent residence card
    /// ([`IdNumber::is_foreign_permanent_resident`]) these are `9`, the province of issue and
    /// the nationality code instead.
    pub fn region_code(&self) -> &str {
        core::str::from_utf8(&self.bytes[..6]).unwrap_or_default()
    }

    /// Whether this is the number of a foreigners' permanent residence identity card (2023
    /// format, starting with `9`) rather than of a resident identity card or residence permit.
    pub fn is_foreign_permanent_resident(&self) -> bool {
        self.bytes[0] == b'9'
    }
}

fn digits_value(d: &[u8]) -> u32 {
    d.iter()
        .fold(0u32, |acc, &c| acc * 10 + u32::from(c.wrapping_sub(b'0')))
}

/// Mainland province-level codes (GB/T 2260): the first two digits of a resident identity
/// number issued on the mainland.
const fn is_mainland_province(code: u32) -> bool {
    matches!(
        code,
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65
    )
}

/// Whether the first six digits are a valid region for this number.
///
/// - Mainland provinces (11-15, 21-23, 31-37, 41-46, 50-54, 61-65): any prefecture and county
///   digits.
/// - `710000` Taiwan, `810000` Hong Kong and `820000` Macao (GB/T 2260, which lists no
///   subdivisions for them), and `830000`, used with `810000` and `820000` by the residence
///   permits for Taiwan, Hong Kong and Macao residents (since 2018).
/// - `9` followed by a mainland province code: the foreigners' permanent residence identity card
///   of 2023 (`9`, the province of issue, a three-digit nationality code, then birth date,
///   sequence and check digit like a resident number).
fn valid_region(first6: &[u8]) -> bool {
    let code = digits_value(&first6[..2]);
    if is_mainland_province(code) {
        return true;
    }
    match code {
        71 | 81 | 82 | 83 => &first6[2..] == b"0000",
        90..=99 => is_mainland_province(digits_value(&first6[1..3])),
        _ => false,
    }
}

/// The check character for the first 17 digits.
pub(crate) fn check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(&c, w)| u32::from(c.wrapping_sub(b'0')) * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

const fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

const fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian civil date.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = if m <= 2 { y + 1 } else { y };
    // d and m are small positive numbers by construction.
    (y, m as u32, d as u32)
}

/// The offset of the earliest time zone in use (UTC+14, Line Islands), in seconds.
const LATEST_UTC_OFFSET_SECS: u64 = 14 * 3600;

/// The latest calendar date anywhere on Earth at `unix_secs` (the date in UTC+14), as a
/// `YYYYMMDD` number.
fn latest_date_yyyymmdd(unix_secs: u64) -> i64 {
    // At most u64::MAX / 86_400, which fits in i64.
    let days = i64::try_from(unix_secs.saturating_add(LATEST_UTC_OFFSET_SECS) / 86_400)
        .unwrap_or(i64::MAX / 2);
    let (y, m, d) = civil_from_days(days);
    y * 10_000 + i64::from(m) * 100 + i64::from(d)
}

/// Whether `date` (`YYYYMMDD`) is a real date from 1900 that is not after the latest calendar
/// date anywhere on Earth at `now` (Unix seconds; `None` for a clock before 1970, which cannot
/// tell what is in the future).
fn valid_birth_date_at(date: &[u8], now: Option<u64>) -> bool {
    let year = digits_value(&date[0..4]);
    let month = digits_value(&date[4..6]);
    let day = digits_value(&date[6..8]);
    if year < 1900 || day == 0 || day > days_in_month(year, month) {
        return false;
    }
    match now {
        Some(secs) => i64::from(digits_value(date)) <= latest_date_yyyymmdd(secs),
        None => true,
    }
}

fn valid_birth_date(date: &[u8]) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs());
    valid_birth_date_at(date, now)
}

impl Field for IdNumber {
    const KIND: FieldKind = FieldKind::IdNumber;
    const MAX_CANONICAL_LEN: usize = LEN;

    fn parse(input: &str) -> Result<Self, FieldError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(FieldError::IdLength);
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(FieldError::Empty { kind: Self::KIND });
        }
        if s.chars().count() != LEN {
            return Err(FieldError::IdLength);
        }
        let raw = s.as_bytes();
        if raw.len() != LEN {
            // 18 characters, but some are not ASCII.
            return Err(FieldError::IdCharacter);
        }
        let mut id = IdNumber { bytes: [0; LEN] };
        id.bytes.copy_from_slice(raw);
        let b = &mut id.bytes;
        if !b[..17].iter().all(u8::is_ascii_digit) {
            return Err(FieldError::IdCharacter);
        }
        match b[17] {
            b'0'..=b'9' | b'X' => {}
            b'x' => b[17] = b'X',
            _ => return Err(FieldError::IdCharacter),
        }
        if !valid_region(&b[..6]) {
            return Err(FieldError::IdRegion);
        }
        if !valid_birth_date(&b[6..14]) {
            return Err(FieldError::IdBirthDate);
        }
        if check_char(&b[..17]) != b[17] {
            return Err(FieldError::IdChecksum);
        }
        Ok(id)
    }

    fn canonical_len(&self) -> usize {
        self.bytes.len()
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }

    fn from_canonical(bytes: &[u8]) -> Result<Self, FieldError> {
        from_canonical_text(bytes)
    }

    fn mask(&self) -> String {
        let mut m = String::with_capacity(LEN);
        m.push_str(self.region_code());
        m.push_str("********");
        m.push_str(core::str::from_utf8(&self.bytes[14..]).unwrap_or_default());
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    #[test]
    fn known_valid() {
        let id = IdNumber::parse("11010519491231002X").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.mask(), "110105********002X");
        assert_eq!(id.birth_date(), (1949, 12, 31));
        assert_eq!(id.region_code(), "110105");
    }

    #[test]
    fn lower_x_and_whitespace() {
        let id = IdNumber::parse("\t11010519491231002x \n").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(
            IdNumber::from_canonical(b"11010519491231002x"),
            Err(FieldError::NonCanonical {
                kind: FieldKind::IdNumber
            })
        );
        assert_eq!(
            IdNumber::from_canonical(b" 11010519491231002X"),
            Err(FieldError::TooLong {
                kind: FieldKind::IdNumber,
                max: 18
            })
        );
        assert_eq!(
            IdNumber::from_canonical(b" 1101051949123100X"),
            Err(FieldError::IdLength)
        );
    }

    #[test]
    fn check_order() {
        // Bad region and bad checksum: region is reported first.
        assert_eq!(
            IdNumber::parse("00010519491231002X"),
            Err(FieldError::IdRegion)
        );
        // Bad date and bad checksum: date first.
        assert_eq!(
            IdNumber::parse("110105194913310020"),
            Err(FieldError::IdBirthDate)
        );
        assert_eq!(
            IdNumber::parse("1101051949123100 X"),
            Err(FieldError::IdCharacter)
        );
        assert_eq!(
            IdNumber::parse("11010519491231002X0"),
            Err(FieldError::IdLength)
        );
        assert_eq!(
            IdNumber::parse("1101051949123100２X"),
            Err(FieldError::IdCharacter)
        );
        assert_eq!(
            IdNumber::parse("   "),
            Err(FieldError::Empty {
                kind: FieldKind::IdNumber
            })
        );
        let long = "1".repeat(10_000);
        assert_eq!(IdNumber::parse(&long), Err(FieldError::IdLength));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-25_567), (1900, 1, 1));
        // 2024-02-29 09:59:59 UTC is 23:59:59 in UTC+14; a second later it is 1 March there.
        assert_eq!(latest_date_yyyymmdd(1_709_200_799), 20_240_229);
        assert_eq!(latest_date_yyyymmdd(1_709_200_800), 20_240_301);
        assert_eq!(latest_date_yyyymmdd(0), 19_700_101);
        assert_eq!(latest_date_yyyymmdd(36_000), 19_700_102);
    }

    #[test]
    fn birth_date_is_judged_by_the_latest_date_on_earth() {
        // 2024-03-01 01:00 in China (UTC+8) is 2024-02-29 17:00 UTC: someone born that morning
        // was rejected while the check used the UTC date.
        let china_early_morning = Some(1_709_226_000);
        assert!(valid_birth_date_at(b"20240301", china_early_morning));
        assert!(valid_birth_date_at(b"20240229", china_early_morning));
        assert!(!valid_birth_date_at(b"20240302", china_early_morning));
        // The boundary is midnight in UTC+14 (10:00 UTC).
        assert!(!valid_birth_date_at(b"20240301", Some(1_709_200_799)));
        assert!(valid_birth_date_at(b"20240301", Some(1_709_200_800)));
        // Without a usable clock only the calendar is checked.
        assert!(valid_birth_date_at(b"20991231", None));
        assert!(!valid_birth_date_at(b"20990230", None));
        assert!(!valid_birth_date_at(b"18991231", None));
        // No overflow at the end of time.
        assert!(valid_birth_date_at(b"20240301", Some(u64::MAX)));
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2000));
        assert!(!is_leap(1900));
        assert!(is_leap(2024));
        assert!(!is_leap(2023));
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2001, 13), 0);
    }

    #[test]
    fn debug_is_redacted() {
        let id = IdNumber::parse("11010519491231002X").unwrap();
        assert_eq!(format!("{id:?}"), "IdNumber([REDACTED])");
    }
}
