//! Typed personal-data fields.
//!
//! Every field kind validates its input when parsed, holds its plaintext in
//! memory that is wiped on drop, never prints its value through `Debug`, and
//! has a stable canonical byte encoding (documented on each type) which is
//! what gets encrypted and stored. Each kind also has a format-aware mask for
//! showing a value to people who may not see it in full.

use core::fmt;

use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

mod address;
mod device;
mod email;
mod error;
mod id_number;
mod ip;
mod name;
mod phone;
mod text;

#[cfg(test)]
mod tests;

pub use address::{PostalAddress, PostalAddressBuilder};
pub use device::{DeviceInfo, DeviceInfoBuilder};
pub use email::Email;
pub use error::FieldError;
pub use id_number::IdNumber;
#[cfg(test)]
pub(crate) use id_number::check_char as id_check_char;
pub(crate) use id_number::civil_from_days;
pub use ip::IpAddress;
pub use name::PersonName;
pub use phone::PhoneNumber;
pub use text::Text;

/// The kind of a personal-data field.
///
/// Stable one-byte codes: they are stored in encrypted envelopes, never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FieldKind {
    /// PRC resident identity number ([`IdNumber`]), code 1.
    IdNumber = 1,
    /// Telephone number in E.164 form ([`PhoneNumber`]), code 2.
    PhoneNumber = 2,
    /// E-mail address ([`Email`]), code 3.
    Email = 3,
    /// Person name ([`PersonName`]), code 4.
    PersonName = 4,
    /// Structured postal address ([`PostalAddress`]), code 5.
    PostalAddress = 5,
    /// IPv4 or IPv6 address ([`IpAddress`]), code 6.
    IpAddress = 6,
    /// Device description ([`DeviceInfo`]), code 7.
    DeviceInfo = 7,
    /// Bounded free text ([`Text`]), code 8.
    Text = 8,
}

impl FieldKind {
    /// Every kind, in code order.
    pub const ALL: [FieldKind; 8] = [
        FieldKind::IdNumber,
        FieldKind::PhoneNumber,
        FieldKind::Email,
        FieldKind::PersonName,
        FieldKind::PostalAddress,
        FieldKind::IpAddress,
        FieldKind::DeviceInfo,
        FieldKind::Text,
    ];

    /// The stable one-byte code of this kind.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind with the given code, if any.
    pub const fn from_code(code: u8) -> Option<FieldKind> {
        match code {
            1 => Some(FieldKind::IdNumber),
            2 => Some(FieldKind::PhoneNumber),
            3 => Some(FieldKind::Email),
            4 => Some(FieldKind::PersonName),
            5 => Some(FieldKind::PostalAddress),
            6 => Some(FieldKind::IpAddress),
            7 => Some(FieldKind::DeviceInfo),
            8 => Some(FieldKind::Text),
            _ => None,
        }
    }

    /// The longest canonical encoding of this kind ([`Field::MAX_CANONICAL_LEN`] of its type):
    /// the per-kind cap on an envelope's ciphertext.
    pub const fn max_canonical_len(self) -> usize {
        match self {
            FieldKind::IdNumber => IdNumber::MAX_CANONICAL_LEN,
            FieldKind::PhoneNumber => PhoneNumber::MAX_CANONICAL_LEN,
            FieldKind::Email => Email::MAX_CANONICAL_LEN,
            FieldKind::PersonName => PersonName::MAX_CANONICAL_LEN,
            FieldKind::PostalAddress => PostalAddress::MAX_CANONICAL_LEN,
            FieldKind::IpAddress => IpAddress::MAX_CANONICAL_LEN,
            FieldKind::DeviceInfo => DeviceInfo::MAX_CANONICAL_LEN,
            FieldKind::Text => Text::MAX_CANONICAL_LEN,
        }
    }

    /// The stable snake_case label of this kind, e.g. `"phone_number"`.
    pub const fn label(self) -> &'static str {
        match self {
            FieldKind::IdNumber => "id_number",
            FieldKind::PhoneNumber => "phone_number",
            FieldKind::Email => "email",
            FieldKind::PersonName => "person_name",
            FieldKind::PostalAddress => "postal_address",
            FieldKind::IpAddress => "ip_address",
            FieldKind::DeviceInfo => "device_info",
            FieldKind::Text => "text",
        }
    }

    /// The kind with the given label (exact match), if any.
    pub fn from_label(s: &str) -> Option<FieldKind> {
        FieldKind::ALL.into_iter().find(|k| k.label() == s)
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

mod sealed {
    /// Restricts [`super::Field`] to the kinds defined in this module.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}

/// A personal-data field kind.
///
/// This trait is sealed: the set of kinds is fixed by this crate.
pub trait Field: sealed::Sealed + Sized + Send + Sync + 'static {
    /// The kind tag of this type.
    const KIND: FieldKind;

    /// Upper bound of `write_canonical` output length in bytes.
    const MAX_CANONICAL_LEN: usize;

    /// Validates and normalizes human input.
    ///
    /// # Errors
    /// A [`FieldError`] naming the rule that failed (never the input).
    fn parse(input: &str) -> Result<Self, FieldError>;

    /// Appends the stable canonical byte encoding (documented per kind) to `out`.
    ///
    /// Never allocates other than growing `out`.
    fn write_canonical(&self, out: &mut Vec<u8>);

    /// Exact length of what [`Field::write_canonical`] appends, so callers can allocate once.
    fn canonical_len(&self) -> usize;

    /// Inverse of [`Field::write_canonical`]; validates fully (same rules as
    /// [`Field::parse`]) and rejects any non-canonical encoding.
    ///
    /// # Errors
    /// A [`FieldError`], including `NonCanonical` and `Canonical*` for encodings that
    /// [`Field::write_canonical`] would not produce.
    fn from_canonical(bytes: &[u8]) -> Result<Self, FieldError>;

    /// Format-aware masked rendering safe to show to people who may not see the value.
    fn mask(&self) -> String;

    /// The canonical encoding in a buffer that is wiped on drop.
    ///
    /// The buffer is allocated once with [`Field::MAX_CANONICAL_LEN`] capacity,
    /// so no partial copies are left behind by reallocation.
    fn canonical_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(Self::MAX_CANONICAL_LEN));
        self.write_canonical(&mut out);
        out
    }
}

/// Implements `Sealed`, a redacting `Debug`, and constant-time `PartialEq`/`Eq`
/// over the canonical bytes.
macro_rules! field_common_impls {
    ($t:ident) => {
        impl $crate::field::sealed::Sealed for $t {}

        impl ::core::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(concat!(stringify!($t), "([REDACTED])"))
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                $crate::field::ct_eq_canonical(self, other)
            }
        }

        impl Eq for $t {}
    };
}
pub(crate) use field_common_impls;

/// Implements `Zeroize` (the `value` string wiped in one pass, see `crate::crypto::wipe`, then
/// each named field zeroized), a `Drop` that zeroizes, and `ZeroizeOnDrop`.
macro_rules! wiped_on_drop {
    ($t:ident $(, $extra:ident)*) => {
        impl ::zeroize::Zeroize for $t {
            fn zeroize(&mut self) {
                $crate::crypto::wipe::wipe_string(&mut self.value);
                $(::zeroize::Zeroize::zeroize(&mut self.$extra);)*
            }
        }

        impl Drop for $t {
            fn drop(&mut self) {
                ::zeroize::Zeroize::zeroize(self);
            }
        }

        impl ::zeroize::ZeroizeOnDrop for $t {}
    };
}
pub(crate) use wiped_on_drop;

/// Constant-time (for equal lengths) comparison of two values' canonical bytes.
pub(crate) fn ct_eq_canonical<F: Field>(a: &F, b: &F) -> bool {
    let a = a.canonical_bytes();
    let b = b.canonical_bytes();
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// Rejects C0/C1 control characters (including tab and newline).
pub(crate) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Whether `c` is an invisible formatting character: Unicode general category Cf (the table is
/// checked against the Unicode tables of proptest's regex engine in the tests). That covers the bidirectional marks, embeddings, overrides and isolates (U+061C,
/// U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), the zero-width space, non-joiner and joiner
/// (U+200B-U+200D), the word joiner and invisible operators (U+2060-U+2064), the byte order mark
/// (U+FEFF), the soft hyphen (U+00AD), the Mongolian vowel separator (U+180E), interlinear
/// annotation controls and tag characters. They let two values that render the same differ, or
/// reorder how a value (or a mask next to other text) is displayed.
pub(crate) const fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Whether `s` has an invisible formatting character (see [`is_format_char`]).
pub(crate) fn has_format_char(s: &str) -> bool {
    // Every formatting character is outside ASCII; `is_ascii` checks a word at a time.
    !s.is_ascii() && s.chars().any(is_format_char)
}

/// Whether `c` breaks a line: a control character or U+2028/U+2029 (line and paragraph
/// separator), which one-line parts reject like a newline.
pub(crate) fn is_line_breaking_or_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// NFC-normalizes `s` into a string with exact capacity; the intermediate
/// buffer is wiped.
pub(crate) fn nfc(s: &str) -> String {
    // ASCII text is unchanged by every normalization form (UAX #15: no ASCII character has a
    // decomposition or a non-zero combining class), so it is copied as it is.
    if s.is_ascii() {
        return String::from(s);
    }
    // NFC output is at most three times the input length in bytes.
    let mut tmp = Zeroizing::new(String::with_capacity(s.len().saturating_mul(3)));
    tmp.extend(s.nfc());
    String::from(tmp.as_str())
}

/// Trims `s`, collapses every internal whitespace run into one U+0020 and
/// returns the result with exact capacity.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    let mut tmp = Zeroizing::new(String::with_capacity(s.len()));
    for word in s.split_whitespace() {
        if !tmp.is_empty() {
            tmp.push(' ');
        }
        tmp.push_str(word);
    }
    String::from(tmp.as_str())
}

/// Appends a `u16` big-endian length prefix and the bytes of `s`.
///
/// Callers guarantee `s.len() <= u16::MAX` through their own length limits;
/// longer input is truncated to keep the encoding well formed.
pub(crate) fn put_lp(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// Cursor over a canonical encoding.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    kind: FieldKind,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], kind: FieldKind) -> Self {
        Reader { bytes, kind }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FieldError> {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                Ok(b)
            }
            None => Err(FieldError::CanonicalTruncated { kind: self.kind }),
        }
    }

    /// Reads a `u16` big-endian length-prefixed UTF-8 string.
    pub(crate) fn lp_str(&mut self) -> Result<&'a str, FieldError> {
        let hi = self.u8()?;
        let lo = self.u8()?;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if self.bytes.len() < len {
            return Err(FieldError::CanonicalTruncated { kind: self.kind });
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        core::str::from_utf8(head).map_err(|_| FieldError::InvalidUtf8 { kind: self.kind })
    }

    pub(crate) fn finish(self) -> Result<(), FieldError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(FieldError::CanonicalTrailingBytes { kind: self.kind })
        }
    }
}

/// Shared `from_canonical` for kinds whose canonical form is their own
/// text form: decode UTF-8, parse, and require the re-encoding to match.
pub(crate) fn from_canonical_text<F: Field>(bytes: &[u8]) -> Result<F, FieldError> {
    if bytes.len() > F::MAX_CANONICAL_LEN {
        return Err(FieldError::TooLong {
            kind: F::KIND,
            max: F::MAX_CANONICAL_LEN,
        });
    }
    let s = core::str::from_utf8(bytes).map_err(|_| FieldError::InvalidUtf8 { kind: F::KIND })?;
    let value = F::parse(s)?;
    require_same_encoding(&value, bytes)?;
    Ok(value)
}

/// Fails with [`FieldError::NonCanonical`] unless `value` encodes to exactly `bytes`.
pub(crate) fn require_same_encoding<F: Field>(value: &F, bytes: &[u8]) -> Result<(), FieldError> {
    let again = value.canonical_bytes();
    if again.as_slice() == bytes {
        Ok(())
    } else {
        Err(FieldError::NonCanonical { kind: F::KIND })
    }
}

/// Longest raw input accepted for one text part, in bytes, checked before
/// normalization.
pub(crate) const MAX_PART_INPUT_BYTES: usize = 1024;

/// Validates and normalizes one text part of a structured value: bounded raw
/// length, trimmed, no control characters or line separators
/// ([`FieldError::InvalidCharacter`]), no invisible formatting characters
/// ([`FieldError::FormatCharacter`]), NFC, at most `max_chars` characters.
/// Returns an empty string for an empty (absent) part.
pub(crate) fn normalize_part(
    kind: FieldKind,
    part: &'static str,
    raw: &str,
    max_chars: usize,
) -> Result<String, FieldError> {
    let too_long = FieldError::PartTooLong {
        kind,
        part,
        max: max_chars,
    };
    if raw.len() > MAX_PART_INPUT_BYTES.max(max_chars * 4) {
        return Err(too_long);
    }
    let trimmed = raw.trim();
    if trimmed.chars().any(is_line_breaking_or_control) {
        return Err(FieldError::InvalidCharacter { kind });
    }
    if has_format_char(trimmed) {
        return Err(FieldError::FormatCharacter { kind });
    }
    let normalized = Zeroizing::new(nfc(trimmed));
    let value = normalized.trim();
    if value.chars().count() > max_chars {
        return Err(too_long);
    }
    Ok(String::from(value))
}

/// Splits a `key=value` line at the first `=`; the key is trimmed.
pub(crate) fn split_key_value(line: &str) -> Option<(&str, &str)> {
    line.split_once('=').map(|(k, v)| (k.trim(), v))
}

/// Replaces the contents of `slot` with `value`, wiping the old contents first.
pub(crate) fn replace_wiping(slot: &mut String, value: &str) {
    zeroize::Zeroize::zeroize(slot);
    slot.push_str(value);
}
