//! Bounded free text.

use super::{Field, FieldError, FieldKind, field_common_impls, is_format_char, wiped_on_drop};

const KIND: FieldKind = FieldKind::Text;
/// Maximum length in bytes.
const MAX_BYTES: usize = 4096;

/// Free text that may contain personal data (notes, comments, ...).
///
/// Any UTF-8 of 1 to 4096 bytes, kept verbatim: no trimming and no
/// normalization. Control characters other than tab, line feed and carriage
/// return (NUL, escape, DEL, the C1 controls, ...) are rejected with
/// [`FieldError::InvalidCharacter`], and invisible formatting characters
/// (bidirectional overrides and isolates, zero-width space, byte order mark,
/// soft hyphen, tag characters: Unicode category Cf) with
/// [`FieldError::FormatCharacter`]. The zero-width non-joiner and joiner
/// (U+200C, U+200D) are allowed: free text needs them for emoji sequences and
/// for scripts such as Persian and the Indic scripts. The mask never shows the
/// text, so they cannot disguise a mask.
///
/// **Canonical encoding** (stable storage format): the UTF-8 bytes, verbatim.
///
/// **Mask**: only the length in characters: `[text: 11 chars]`.
///
/// # Examples
///
/// ```
/// use fieldseal::{Field, Text};
///
/// let t = Text::parse("call me at noon")?;
/// assert_eq!(t.as_str(), "call me at noon");
/// assert_eq!(t.mask(), "[text: 15 chars]");
/// assert_eq!(&t.canonical_bytes()[..], b"call me at noon");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
/// Wiped on drop, in one bulk pass (see `crate::crypto::wipe`).
pub struct Text {
    value: String,
}

field_common_impls!(Text);

wiped_on_drop!(Text);

impl Text {
    /// The text, verbatim.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

fn check(s: &str) -> Result<(), FieldError> {
    if s.is_empty() {
        return Err(FieldError::Empty { kind: KIND });
    }
    if s.len() > MAX_BYTES {
        return Err(FieldError::TooLong {
            kind: KIND,
            max: MAX_BYTES,
        });
    }
    // Most text is ASCII: its only refused characters are the C0 controls other than tab,
    // line feed and carriage return, and DEL (every format character is outside ASCII).
    // Folded without an early exit, so the compiler checks many bytes per instruction (a
    // 4 KiB text in a fraction of the time `any` takes byte by byte).
    if s.is_ascii() {
        return if s.bytes().fold(false, |bad, b| bad | refused_ascii(b)) {
            Err(FieldError::InvalidCharacter { kind: KIND })
        } else {
            Ok(())
        };
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(FieldError::InvalidCharacter { kind: KIND });
    }
    if s.chars()
        .any(|c| is_format_char(c) && !matches!(c, '\u{200C}' | '\u{200D}'))
    {
        return Err(FieldError::FormatCharacter { kind: KIND });
    }
    Ok(())
}

/// The ASCII characters a text refuses: C0 controls other than tab, line feed and carriage
/// return, and DEL.
fn refused_ascii(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f)
}

impl Field for Text {
    const KIND: FieldKind = KIND;
    const MAX_CANONICAL_LEN: usize = MAX_BYTES;

    fn parse(input: &str) -> Result<Self, FieldError> {
        check(input)?;
        Ok(Text {
            value: String::from(input),
        })
    }

    fn canonical_len(&self) -> usize {
        self.value.len()
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.value.as_bytes());
    }

    fn from_canonical(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.len() > MAX_BYTES {
            return Err(FieldError::TooLong {
                kind: KIND,
                max: MAX_BYTES,
            });
        }
        let s = core::str::from_utf8(bytes).map_err(|_| FieldError::InvalidUtf8 { kind: KIND })?;
        Text::parse(s)
    }

    fn mask(&self) -> String {
        format!("[text: {} chars]", self.value.chars().count())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    /// The ASCII fast path refuses exactly what the general rule refuses, for every ASCII
    /// character at every position.
    #[test]
    fn ascii_fast_path_matches_the_general_rule() {
        for b in 0u8..128 {
            let c = char::from(b);
            let general = c.is_control() && !matches!(c, '\t' | '\n' | '\r');
            for text in [
                format!("{c}"),
                format!("ab{c}"),
                format!("{c}cd"),
                format!("a{c}b"),
            ] {
                let expected = general.then_some(FieldError::InvalidCharacter { kind: KIND });
                assert_eq!(Text::parse(&text).err(), expected, "{b:#04x} in {text:?}");
                // Beside a non-ASCII character the general path decides, the same way.
                let wide = format!("{text}\u{e9}");
                assert_eq!(Text::parse(&wide).err(), expected, "{b:#04x} in {wide:?}");
            }
        }
    }

    /// Two refused characters are refused as surely as one (the check accumulates, it does
    /// not toggle), wherever they are in a long text.
    #[test]
    fn every_refused_character_counts() {
        let long = "a".repeat(200);
        for (x, y) in [
            ("\0", "\0"),
            ("\x01", "\x7f"),
            ("\x7f", "\x7f"),
            ("\x1b", "\x08"),
        ] {
            for text in [
                format!("{x}{y}"),
                format!("{long}{x}{long}{y}"),
                format!("{x}{long}{y}{long}{x}"),
            ] {
                assert_eq!(
                    Text::parse(&text).err(),
                    Some(FieldError::InvalidCharacter { kind: KIND }),
                    "{x:?} and {y:?}"
                );
            }
        }
    }

    #[test]
    fn verbatim_and_limits() {
        let t = Text::parse("  spaced \n").unwrap();
        assert_eq!(t.as_str(), "  spaced \n");
        assert_eq!(
            Text::parse("").err(),
            Some(FieldError::Empty { kind: KIND })
        );
        assert!(Text::parse(&"é".repeat(2048)).is_ok());
        assert_eq!(
            Text::parse(&"a".repeat(4097)).err(),
            Some(FieldError::TooLong {
                kind: KIND,
                max: 4096
            })
        );
        assert_eq!(
            Text::parse("a\0b").err(),
            Some(FieldError::InvalidCharacter { kind: KIND })
        );
        // The canonical form has the same bound: 4,096 bytes are a text, 4,097 are not.
        let at_max = "a".repeat(4096);
        assert_eq!(
            Text::from_canonical(at_max.as_bytes()).map(|t| t.canonical_len()),
            Ok(4096)
        );
        assert_eq!(
            Text::from_canonical(format!("{at_max}a").as_bytes()).err(),
            Some(FieldError::TooLong {
                kind: KIND,
                max: 4096
            })
        );
        assert_eq!(
            Text::from_canonical(b"\xc3").err(),
            Some(FieldError::InvalidUtf8 { kind: KIND })
        );
        assert_eq!(Text::parse("日本語").unwrap().mask(), "[text: 3 chars]");
        assert_eq!(format!("{t:?}"), "Text([REDACTED])");
    }
}
