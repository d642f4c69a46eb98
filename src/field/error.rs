//! Validation errors for personal-data fields.

use core::fmt;

use super::FieldKind;

/// Why a field value was rejected.
///
/// Neither `Display` nor `Debug` ever includes the rejected value or any
/// part of it: only the kind and the rule that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// The input is empty (after trimming, where the kind trims).
    Empty {
        /// Kind being parsed.
        kind: FieldKind,
    },
    /// The input exceeds the kind's length limit.
    TooLong {
        /// Kind being parsed.
        kind: FieldKind,
        /// The limit that was exceeded (characters or bytes, per kind).
        max: usize,
    },
    /// One part of a structured value exceeds its length limit in characters.
    PartTooLong {
        /// Kind being parsed.
        kind: FieldKind,
        /// Name of the part.
        part: &'static str,
        /// Maximum number of characters for the part.
        max: usize,
    },
    /// The input contains a character the kind does not allow (for example a
    /// control character).
    InvalidCharacter {
        /// Kind being parsed.
        kind: FieldKind,
    },
    /// The input contains an invisible formatting character (Unicode general
    /// category Cf): a bidirectional mark, embedding, override or isolate
    /// (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069, U+061C), a zero-width
    /// character (U+200B-U+200D, U+2060), the byte order mark (U+FEFF), the
    /// soft hyphen (U+00AD), the Mongolian vowel separator (U+180E), a tag
    /// character or another Cf character. Rejected in every text-bearing kind
    /// (person name, e-mail, postal address parts, device parts, text; text
    /// allows U+200C and U+200D, see [`Text`](crate::Text)).
    FormatCharacter {
        /// Kind being parsed.
        kind: FieldKind,
    },
    /// Canonical bytes are not valid UTF-8.
    InvalidUtf8 {
        /// Kind being decoded.
        kind: FieldKind,
    },
    /// Canonical bytes decode to a valid value, but are not its canonical encoding.
    NonCanonical {
        /// Kind being decoded.
        kind: FieldKind,
    },
    /// Canonical bytes end before the encoding is complete.
    CanonicalTruncated {
        /// Kind being decoded.
        kind: FieldKind,
    },
    /// Canonical bytes continue after the encoding is complete.
    CanonicalTrailingBytes {
        /// Kind being decoded.
        kind: FieldKind,
    },
    /// Canonical bytes have an unknown format version.
    CanonicalVersion {
        /// Kind being decoded.
        kind: FieldKind,
    },
    /// Canonical bytes have a length no value of the kind encodes to.
    CanonicalLength {
        /// Kind being decoded.
        kind: FieldKind,
    },

    /// Identity number is not exactly 18 characters.
    IdLength,
    /// Identity number has a character other than a digit (or a final `X`).
    IdCharacter,
    /// Identity number's region (first six digits) is not in use: see
    /// [`IdNumber`](crate::IdNumber) for the accepted codes.
    IdRegion,
    /// Identity number has an impossible, pre-1900 or future birth date.
    IdBirthDate,
    /// Identity number check digit does not match.
    IdChecksum,

    /// Phone number has a character other than digits, a leading `+` or separators.
    PhoneCharacter,
    /// Phone number has no international prefix and is not a mainland China mobile number.
    PhoneMissingCountryCode,
    /// Phone number country calling code is not assigned.
    PhoneCountryCode,
    /// Phone number has too few or too many digits.
    PhoneLength,
    /// Mainland China mobile number has an unassigned prefix.
    PhoneMobilePrefix,
    /// National number starts with a digit its country does not allow.
    PhoneNationalNumber,

    /// E-mail address has no `@`.
    EmailMissingAt,
    /// E-mail local part is empty or not a valid dot-atom.
    EmailLocalPart,
    /// E-mail local part is longer than 64 bytes.
    EmailLocalTooLong,
    /// E-mail domain is not a valid host name with at least two labels and a
    /// top-level label that is not all digits.
    EmailDomain,
    /// E-mail domain is longer than 255 bytes.
    EmailDomainTooLong,
    /// E-mail domain is an address literal in brackets (`[192.0.2.1]`,
    /// `[IPv6:2001:db8::1]`); only host names are accepted.
    EmailAddressLiteral,
    /// E-mail address is longer than 254 bytes.
    EmailTooLong,

    /// Not a valid IPv4 or IPv6 address.
    IpSyntax,

    /// A required part of the postal address is missing or empty.
    AddressMissingPart {
        /// Name of the part.
        part: &'static str,
    },
    /// Address text has an unknown key.
    AddressUnknownKey,
    /// Address text repeats a key that may appear only once.
    AddressDuplicateKey,
    /// Address text has a non-blank line without `key=value` form.
    AddressLineSyntax,
    /// Country is not an assigned ISO 3166-1 alpha-2 code.
    AddressCountry,
    /// Postal code is not 3 to 10 letters, digits, spaces or hyphens.
    AddressPostalCode,
    /// Address has more than three street lines.
    AddressTooManyStreets,

    /// Device info has none of user agent, OS and model.
    DeviceEmpty,
    /// Device text has an unknown key.
    DeviceUnknownKey,
    /// Device text repeats a key.
    DeviceDuplicateKey,
    /// Device text has a non-blank line without `key=value` form.
    DeviceLineSyntax,
}

impl FieldError {
    /// The field kind whose rule failed.
    pub fn kind(&self) -> FieldKind {
        match *self {
            FieldError::Empty { kind }
            | FieldError::TooLong { kind, .. }
            | FieldError::PartTooLong { kind, .. }
            | FieldError::InvalidCharacter { kind }
            | FieldError::FormatCharacter { kind }
            | FieldError::InvalidUtf8 { kind }
            | FieldError::NonCanonical { kind }
            | FieldError::CanonicalTruncated { kind }
            | FieldError::CanonicalTrailingBytes { kind }
            | FieldError::CanonicalVersion { kind }
            | FieldError::CanonicalLength { kind } => kind,
            FieldError::IdLength
            | FieldError::IdCharacter
            | FieldError::IdRegion
            | FieldError::IdBirthDate
            | FieldError::IdChecksum => FieldKind::IdNumber,
            FieldError::PhoneCharacter
            | FieldError::PhoneMissingCountryCode
            | FieldError::PhoneCountryCode
            | FieldError::PhoneLength
            | FieldError::PhoneMobilePrefix
            | FieldError::PhoneNationalNumber => FieldKind::PhoneNumber,
            FieldError::EmailMissingAt
            | FieldError::EmailLocalPart
            | FieldError::EmailLocalTooLong
            | FieldError::EmailDomain
            | FieldError::EmailDomainTooLong
            | FieldError::EmailAddressLiteral
            | FieldError::EmailTooLong => FieldKind::Email,
            FieldError::IpSyntax => FieldKind::IpAddress,
            FieldError::AddressMissingPart { .. }
            | FieldError::AddressUnknownKey
            | FieldError::AddressDuplicateKey
            | FieldError::AddressLineSyntax
            | FieldError::AddressCountry
            | FieldError::AddressPostalCode
            | FieldError::AddressTooManyStreets => FieldKind::PostalAddress,
            FieldError::DeviceEmpty
            | FieldError::DeviceUnknownKey
            | FieldError::DeviceDuplicateKey
            | FieldError::DeviceLineSyntax => FieldKind::DeviceInfo,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FieldError::Empty { kind } => write!(f, "{kind}: value is empty"),
            FieldError::TooLong { kind, max } => {
                write!(f, "{kind}: value is longer than the limit of {max}")
            }
            FieldError::PartTooLong { kind, part, max } => {
                write!(f, "{kind}: {part} is longer than {max} characters")
            }
            FieldError::InvalidCharacter { kind } => {
                write!(f, "{kind}: value contains a character that is not allowed")
            }
            FieldError::FormatCharacter { kind } => write!(
                f,
                "{kind}: value contains an invisible or bidirectional formatting character"
            ),
            FieldError::InvalidUtf8 { kind } => {
                write!(f, "{kind}: canonical bytes are not valid UTF-8")
            }
            FieldError::NonCanonical { kind } => {
                write!(f, "{kind}: bytes are not the canonical encoding")
            }
            FieldError::CanonicalTruncated { kind } => {
                write!(f, "{kind}: canonical bytes are truncated")
            }
            FieldError::CanonicalTrailingBytes { kind } => {
                write!(f, "{kind}: canonical bytes have trailing data")
            }
            FieldError::CanonicalVersion { kind } => {
                write!(f, "{kind}: canonical bytes have an unknown format version")
            }
            FieldError::CanonicalLength { kind } => {
                write!(f, "{kind}: canonical bytes have an invalid length")
            }
            FieldError::IdLength => f.write_str("id_number: must be exactly 18 characters"),
            FieldError::IdCharacter => {
                f.write_str("id_number: must be 17 digits followed by a digit or X")
            }
            FieldError::IdRegion => f.write_str("id_number: region code is not in use"),
            FieldError::IdBirthDate => {
                f.write_str("id_number: birth date is not a real date between 1900 and today")
            }
            FieldError::IdChecksum => f.write_str("id_number: check digit does not match"),
            FieldError::PhoneCharacter => f.write_str(
                "phone_number: only digits, a leading +, spaces, '-', '.', '(' and ')' are allowed",
            ),
            FieldError::PhoneMissingCountryCode => {
                f.write_str("phone_number: international prefix (+ or 00) is required")
            }
            FieldError::PhoneCountryCode => {
                f.write_str("phone_number: country calling code is not assigned")
            }
            FieldError::PhoneLength => {
                f.write_str("phone_number: wrong number of digits for the country")
            }
            FieldError::PhoneMobilePrefix => {
                f.write_str("phone_number: mainland China mobile prefix is not assigned")
            }
            FieldError::PhoneNationalNumber => {
                f.write_str("phone_number: national number has an invalid leading digit")
            }
            FieldError::EmailMissingAt => f.write_str("email: missing '@'"),
            FieldError::EmailLocalPart => {
                f.write_str("email: local part is empty or not a valid dot-atom")
            }
            FieldError::EmailLocalTooLong => {
                f.write_str("email: local part is longer than 64 bytes")
            }
            FieldError::EmailDomain => f.write_str("email: domain is not a valid host name"),
            FieldError::EmailDomainTooLong => f.write_str("email: domain is longer than 255 bytes"),
            FieldError::EmailAddressLiteral => {
                f.write_str("email: address literals in brackets are not accepted")
            }
            FieldError::EmailTooLong => f.write_str("email: address is longer than 254 bytes"),
            FieldError::IpSyntax => f.write_str("ip_address: not a valid IPv4 or IPv6 address"),
            FieldError::AddressMissingPart { part } => {
                write!(f, "postal_address: required part {part} is missing")
            }
            FieldError::AddressUnknownKey => f.write_str("postal_address: unknown key"),
            FieldError::AddressDuplicateKey => {
                f.write_str("postal_address: key may appear only once")
            }
            FieldError::AddressLineSyntax => {
                f.write_str("postal_address: line is not in key=value form")
            }
            FieldError::AddressCountry => {
                f.write_str("postal_address: country is not an ISO 3166-1 alpha-2 code")
            }
            FieldError::AddressPostalCode => f.write_str(
                "postal_address: postal code must be 3 to 10 letters, digits, spaces or hyphens",
            ),
            FieldError::AddressTooManyStreets => {
                f.write_str("postal_address: at most 3 street lines are allowed")
            }
            FieldError::DeviceEmpty => {
                f.write_str("device_info: at least one of user_agent, os and model is required")
            }
            FieldError::DeviceUnknownKey => f.write_str("device_info: unknown key"),
            FieldError::DeviceDuplicateKey => f.write_str("device_info: key may appear only once"),
            FieldError::DeviceLineSyntax => {
                f.write_str("device_info: line is not in key=value form")
            }
        }
    }
}

impl std::error::Error for FieldError {}
