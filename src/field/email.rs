//! E-mail addresses.

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use super::{
    Field, FieldError, FieldKind, field_common_impls, from_canonical_text, has_format_char,
    wiped_on_drop,
};

/// Maximum length of a whole address in bytes.
const MAX_LEN: usize = 254;
/// Maximum length of the local part in bytes.
const MAX_LOCAL: usize = 64;
/// Maximum length of the domain in bytes.
const MAX_DOMAIN: usize = 255;
/// Maximum length of one domain label in bytes.
const MAX_LABEL: usize = 63;
/// Longest raw input (surrounding whitespace included) looked at before rejecting.
const MAX_INPUT_BYTES: usize = 1024;

/// An e-mail address `local@domain`.
///
/// Surrounding whitespace is trimmed and the address is split at the last
/// `@`. No part may contain an invisible formatting character (bidirectional
/// controls, zero-width characters, the byte order mark, the soft hyphen:
/// [`FieldError::FormatCharacter`]). The local part (1 to 64 bytes) must be a
/// dot-atom: RFC 5322 `atext` characters or non-ASCII characters (RFC 6532),
/// separated by single dots, with no leading or trailing dot; quoted strings
/// are not accepted. The local part keeps its case and is not normalized.
///
/// The domain is mapped as in UTS #46 (the IDNA compatibility mapping, without
/// its Punycode step): NFKC-normalized, so full-width and other compatibility
/// forms become their plain forms (`ｅｘａｍｐｌｅ．ｃｏｍ` is `example.com`),
/// lower-cased character by character (so a final capital sigma becomes `σ`),
/// and the ideographic full stop `。` becomes a dot. The mapped domain (at most
/// 255 bytes) must have at least two labels of 1 to 63 bytes made of letters
/// (any script), digits and hyphens, not starting or ending with a hyphen, and
/// its last label must not be all digits, so `a@1.2.3.4` is rejected
/// ([`FieldError::EmailDomain`]). Address literals (`a@[192.0.2.1]`,
/// `a@[IPv6:2001:db8::1]`) are rejected with
/// [`FieldError::EmailAddressLiteral`]. The whole address is at most 254
/// bytes.
///
/// **Canonical encoding** (stable storage format): `local@domain` as UTF-8,
/// with the domain mapped as above (lower-cased, NFKC).
///
/// **Mask**: first character of the local part, `***@`, then the domain:
/// `a***@example.com`.
///
/// # Examples
///
/// ```
/// use fieldseal::{Email, Field};
///
/// let e = Email::parse("  Alice.Smith@Example.COM ")?;
/// assert_eq!(e.as_str(), "Alice.Smith@example.com");
/// assert_eq!(e.local_part(), "Alice.Smith");
/// assert_eq!(e.domain(), "example.com");
/// assert_eq!(e.mask(), "A***@example.com");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
/// Wiped on drop, in one bulk pass (see `crate::crypto::wipe`).
pub struct Email {
    value: String,
    /// Byte index of the separating `@`.
    at: usize,
}

field_common_impls!(Email);

wiped_on_drop!(Email, at);

impl Email {
    /// The canonical `local@domain` form.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The local part (before the last `@`), case preserved.
    pub fn local_part(&self) -> &str {
        self.value.get(..self.at).unwrap_or_default()
    }

    /// The lower-cased domain.
    pub fn domain(&self) -> &str {
        self.value.get(self.at + 1..).unwrap_or_default()
    }
}

fn is_atext(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
    } else {
        !c.is_control() && !c.is_whitespace()
    }
}

fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn valid_domain(domain: &str) -> bool {
    let mut labels = 0usize;
    let mut last = "";
    for label in domain.split('.') {
        labels += 1;
        if label.is_empty()
            || label.len() > MAX_LABEL
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c == '-' || c.is_alphanumeric())
        {
            return false;
        }
        last = label;
    }
    // An all-numeric top-level label makes the domain look like an IPv4 address (`1.2.3.4`) or
    // part of one; no top-level domain is numeric (RFC 3696 section 2).
    labels >= 2 && !last.bytes().all(|b| b.is_ascii_digit())
}

/// The domain mapping: NFKC (full-width and other compatibility forms to their plain forms),
/// then the per-character lower-case mapping, with the ideographic full stop (U+3002) as a dot.
fn map_domain_chars(raw: &str) -> impl Iterator<Item = char> + '_ {
    raw.nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\u{3002}' { '.' } else { c })
}

/// Maps `raw` with [`map_domain_chars`] into a wiped buffer of exactly the mapped length, so no
/// partial copy is left behind by a growing buffer. `None` if the mapped form is longer than
/// [`MAX_DOMAIN`].
fn map_domain(raw: &str) -> Option<Zeroizing<String>> {
    // ASCII is unchanged by NFKC and lower-cases to ASCII (the ideographic full stop is not
    // ASCII): the mapping is then the ASCII lower-casing, and its result is a fixed point.
    if raw.is_ascii() {
        if raw.len() > MAX_DOMAIN {
            return None;
        }
        let mut out = Zeroizing::new(String::with_capacity(raw.len()));
        out.extend(raw.chars().map(|c| c.to_ascii_lowercase()));
        return Some(out);
    }
    let len: usize = map_domain_chars(raw).map(char::len_utf8).sum();
    if len > MAX_DOMAIN {
        return None;
    }
    let mut out = Zeroizing::new(String::with_capacity(len));
    out.extend(map_domain_chars(raw));
    Some(out)
}

impl Field for Email {
    const KIND: FieldKind = FieldKind::Email;
    const MAX_CANONICAL_LEN: usize = MAX_LEN;

    fn parse(input: &str) -> Result<Self, FieldError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(FieldError::EmailTooLong);
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(FieldError::Empty { kind: Self::KIND });
        }
        if has_format_char(s) {
            return Err(FieldError::FormatCharacter { kind: Self::KIND });
        }
        let at = s.rfind('@').ok_or(FieldError::EmailMissingAt)?;
        let (local, domain_raw) = (&s[..at], &s[at + 1..]);
        if local.is_empty() {
            return Err(FieldError::EmailLocalPart);
        }
        if local.len() > MAX_LOCAL {
            return Err(FieldError::EmailLocalTooLong);
        }
        if domain_raw.starts_with('[') {
            return Err(FieldError::EmailAddressLiteral);
        }
        let domain = map_domain(domain_raw).ok_or(FieldError::EmailDomainTooLong)?;
        let total = local.len() + 1 + domain.len();
        if total > MAX_LEN {
            return Err(FieldError::EmailTooLong);
        }
        if !valid_local(local) {
            return Err(FieldError::EmailLocalPart);
        }
        // The mapping must be a fixed point, or the stored form would not parse back to itself.
        if !valid_domain(&domain)
            || !(domain.is_ascii() || map_domain_chars(&domain).eq(domain.chars()))
        {
            return Err(FieldError::EmailDomain);
        }
        let mut value = String::with_capacity(total);
        value.push_str(local);
        value.push('@');
        value.push_str(&domain);
        Ok(Email { value, at })
    }

    fn canonical_len(&self) -> usize {
        self.value.len()
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.value.as_bytes());
    }

    fn from_canonical(bytes: &[u8]) -> Result<Self, FieldError> {
        from_canonical_text(bytes)
    }

    fn mask(&self) -> String {
        let first = self.local_part().chars().next().unwrap_or('*');
        let domain = self.domain();
        let mut m = String::with_capacity(first.len_utf8() + 4 + domain.len());
        m.push(first);
        m.push_str("***@");
        m.push_str(domain);
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The ASCII fast path of the domain mapping gives what the full mapping gives (NFKC,
        /// lower case, ideographic stop), the same length limit, and a fixed point.
        #[test]
        fn ascii_domain_mapping_is_the_full_mapping(
            ascii in "[ -~]{0,300}",
            mixed in "[A-Za-z0-9.\u{3002}\u{FF21}\u{0130}-]{0,40}",
        ) {
            for raw in [&ascii, &mixed] {
                let full: String = map_domain_chars(raw).collect();
                let expected = (full.len() <= MAX_DOMAIN).then_some(full);
                let got = map_domain(raw).map(|d| String::from(d.as_str()));
                prop_assert_eq!(&got, &expected);
                if let Some(d) = got.filter(|d| d.is_ascii()) {
                    prop_assert!(map_domain_chars(&d).eq(d.chars()));
                }
            }
        }
    }

    #[test]
    fn basics() {
        let e = Email::parse("Bob@Mail.Example.ORG").unwrap();
        assert_eq!(e.as_str(), "Bob@mail.example.org");
        assert_eq!(e.mask(), "B***@mail.example.org");
        let e = Email::parse("用户@例子.广告").unwrap();
        assert_eq!(e.local_part(), "用户");
        assert_eq!(e.mask(), "用***@例子.广告");
        assert_eq!(format!("{e:?}"), "Email([REDACTED])");
    }

    #[test]
    fn split_at_last_at() {
        // The local part then contains '@', which is not atext.
        assert_eq!(
            Email::parse("a@b@example.com").err(),
            Some(FieldError::EmailLocalPart)
        );
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(64);
        assert!(Email::parse(&format!("{local64}@example.com")).is_ok());
        assert_eq!(
            Email::parse(&format!("{local64}b@example.com")).err(),
            Some(FieldError::EmailLocalTooLong)
        );
        let label = "d".repeat(63);
        let domain256 = format!("{label}.{label}.{label}.{label}.com");
        assert_eq!(domain256.len(), 259);
        assert_eq!(
            Email::parse(&format!("a@{domain256}")).err(),
            Some(FieldError::EmailDomainTooLong)
        );
        let domain250 = format!("{label}.{label}.{label}.{}", "e".repeat(58));
        assert_eq!(domain250.len(), 250);
        // 64 + 1 + 250 > 254
        assert_eq!(
            Email::parse(&format!("{local64}@{domain250}")).err(),
            Some(FieldError::EmailTooLong)
        );
        // 3 + 1 + 250 == 254
        assert!(Email::parse(&format!("abc@{domain250}")).is_ok());
        assert_eq!(
            Email::parse(&format!("abcd@{domain250}")).err(),
            Some(FieldError::EmailTooLong)
        );
        assert_eq!(
            Email::parse(&"a".repeat(5000)).err(),
            Some(FieldError::EmailTooLong)
        );
    }

    #[test]
    fn non_canonical() {
        assert_eq!(
            Email::from_canonical(b"a@Example.com").err(),
            Some(FieldError::NonCanonical {
                kind: FieldKind::Email
            })
        );
        assert_eq!(
            Email::from_canonical(b"a@ex\xffample.com").err(),
            Some(FieldError::InvalidUtf8 {
                kind: FieldKind::Email
            })
        );
    }
}
