//! Person names.

use zeroize::Zeroizing;

use super::{
    Field, FieldError, FieldKind, collapse_whitespace, field_common_impls, from_canonical_text,
    has_control, has_format_char, nfc, wiped_on_drop,
};

/// Maximum name length in characters, after normalization.
const MAX_CHARS: usize = 128;
/// Longest raw input accepted, in bytes, checked before normalization.
const MAX_INPUT_BYTES: usize = 1024;

/// A person's name in any script.
///
/// Input (at most 1024 bytes) must not contain control characters
/// ([`FieldError::InvalidCharacter`]) or invisible formatting characters such
/// as bidirectional overrides, zero-width characters, the byte order mark or
/// the soft hyphen ([`FieldError::FormatCharacter`]; this includes the
/// zero-width non-joiner and joiner, so names written with them must have
/// them removed first). It is NFC-normalized, trimmed, and every internal
/// whitespace run (line separators included) becomes a single space. The
/// result must be 1 to 128 characters.
///
/// **Canonical encoding** (stable storage format): the normalized name as
/// UTF-8 (NFC, single spaces, no surrounding whitespace).
///
/// **Mask**: first character followed by `**`: `张**`, `J**`.
///
/// # Examples
///
/// ```
/// use fieldseal::{Field, PersonName};
///
/// let n = PersonName::parse("  Jane \u{3000} Doe ")?;
/// assert_eq!(n.as_str(), "Jane Doe");
/// assert_eq!(n.mask(), "J**");
/// assert_eq!(PersonName::parse("张三")?.mask(), "张**");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
/// Wiped on drop, in one bulk pass (see `crate::crypto::wipe`).
pub struct PersonName {
    value: String,
}

field_common_impls!(PersonName);

wiped_on_drop!(PersonName);

impl PersonName {
    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl Field for PersonName {
    const KIND: FieldKind = FieldKind::PersonName;
    const MAX_CANONICAL_LEN: usize = MAX_CHARS * 4;

    fn parse(input: &str) -> Result<Self, FieldError> {
        let kind = Self::KIND;
        if input.len() > MAX_INPUT_BYTES {
            return Err(FieldError::TooLong {
                kind,
                max: MAX_CHARS,
            });
        }
        if has_control(input.trim()) {
            return Err(FieldError::InvalidCharacter { kind });
        }
        if has_format_char(input) {
            return Err(FieldError::FormatCharacter { kind });
        }
        let normalized = Zeroizing::new(nfc(input));
        let value = collapse_whitespace(&normalized);
        let out = PersonName { value };
        if out.value.is_empty() {
            return Err(FieldError::Empty { kind });
        }
        if out.value.chars().count() > MAX_CHARS {
            return Err(FieldError::TooLong {
                kind,
                max: MAX_CHARS,
            });
        }
        Ok(out)
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
        let mut m = String::with_capacity(8);
        m.push(self.value.chars().next().unwrap_or('*'));
        m.push_str("**");
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    #[test]
    fn normalization() {
        let decomposed = PersonName::parse("Jose\u{301}  Mari\u{301}a").unwrap();
        assert_eq!(decomposed.as_str(), "Jos\u{e9} Mar\u{ed}a");
        assert_eq!(
            PersonName::from_canonical("Jose\u{301}".as_bytes()).err(),
            Some(FieldError::NonCanonical {
                kind: FieldKind::PersonName
            })
        );
        assert_eq!(
            PersonName::from_canonical(b"Jane  Doe").err(),
            Some(FieldError::NonCanonical {
                kind: FieldKind::PersonName
            })
        );
    }

    #[test]
    fn limits() {
        let k = FieldKind::PersonName;
        assert!(PersonName::parse(&"名".repeat(128)).is_ok());
        assert_eq!(
            PersonName::parse(&"名".repeat(129)).err(),
            Some(FieldError::TooLong { kind: k, max: 128 })
        );
        assert_eq!(
            PersonName::parse(&" ".repeat(1025)).err(),
            Some(FieldError::TooLong { kind: k, max: 128 })
        );
        assert_eq!(
            PersonName::parse(" \u{3000} ").err(),
            Some(FieldError::Empty { kind: k })
        );
        assert_eq!(
            PersonName::parse("Jane\tDoe").err(),
            Some(FieldError::InvalidCharacter { kind: k })
        );
        assert_eq!(
            PersonName::parse("Jane\u{85}Doe").err(),
            Some(FieldError::InvalidCharacter { kind: k })
        );
        // Surrounding newlines are trimmed, not rejected.
        assert!(PersonName::parse("\nJane Doe\n").is_ok());
    }
}
