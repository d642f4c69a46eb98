//! The shared package: wire format version 1 (see SECURITY.md, "Sharing").

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::FormatError;
use crate::field::FieldKind;
use crate::purpose::{MAX_PURPOSE_LABEL, is_valid_label};

/// The package format version this release writes and reads. Version 1 fixes the HPKE suite:
/// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode.
pub(crate) const PACKAGE_VERSION: u8 = 1;

/// Prefix of a package's text form.
pub const SHARE_TEXT_PREFIX: &str = "fss1:";

/// Length of the HPKE encapsulated key (an X25519 public key).
pub(crate) const ENC_LEN: usize = 32;
/// Length of the ChaCha20Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;
/// Longest recipient name.
const MAX_RECIPIENT: usize = 32;
/// Longest plaintext of any kind.
const MAX_PLAINTEXT: usize = 16_384;

/// The longest binary package: 1 (version) + 1 (kind) + 1 + 32 (purpose) + 1 + 32 (recipient)
/// + 8 (shared-at) + 32 (encapsulated key) + 16,384 (ciphertext) + 16 (tag).
pub const MAX_PACKAGE_LEN: usize =
    3 + MAX_PURPOSE_LABEL + 1 + MAX_RECIPIENT + 8 + ENC_LEN + MAX_PLAINTEXT + TAG_LEN;

/// The longest text package, prefix included.
const MAX_PACKAGE_TEXT_LEN: usize = SHARE_TEXT_PREFIX.len() + MAX_PACKAGE_LEN.div_ceil(3) * 4;

/// A value encrypted to one recipient's public key with HPKE, made by
/// [`Guard::share`](crate::Guard::share) and opened by the recipient with
/// [`open_shared`](crate::open_shared).
///
/// Its header (kind, purpose, recipient name, time of sharing) is public; the plaintext opens
/// only with the recipient's private key, for the purpose, recipient and context it was shared
/// for. Parsing checks the structure only; authenticity is checked when it is opened.
///
/// `Debug` shows the header, never ciphertext bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SharedPackage {
    bytes: Vec<u8>,
}

/// The parts of a package that parsed, borrowing its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackageParts<'a> {
    pub(crate) kind: FieldKind,
    pub(crate) purpose: &'a str,
    pub(crate) recipient: &'a str,
    pub(crate) shared_at: u64,
    /// Every byte before the encapsulated key (authenticated as associated data).
    pub(crate) header: &'a [u8],
    pub(crate) enc: &'a [u8],
    /// Ciphertext and tag.
    pub(crate) sealed: &'a [u8],
}

pub(crate) fn is_recipient_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_RECIPIENT
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Reads `n` bytes at `*at`, advancing it.
fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], FormatError> {
    let end = at.checked_add(n).ok_or(FormatError::Truncated)?;
    let out = bytes.get(*at..end).ok_or(FormatError::Truncated)?;
    *at = end;
    Ok(out)
}

fn take_u8(bytes: &[u8], at: &mut usize) -> Result<u8, FormatError> {
    take(bytes, at, 1).map(|b| b[0])
}

/// Parses a binary package.
///
/// # Errors
/// [`FormatError`]: empty, too long, truncated, unknown version or kind, invalid purpose or
/// recipient name, or a ciphertext shorter than a tag or longer than the kind allows.
pub(crate) fn parse(bytes: &[u8]) -> Result<PackageParts<'_>, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::Empty);
    }
    if bytes.len() > MAX_PACKAGE_LEN {
        return Err(FormatError::TooLong {
            max: MAX_PACKAGE_LEN,
        });
    }
    let mut at = 0;
    let version = take_u8(bytes, &mut at)?;
    if version != PACKAGE_VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let code = take_u8(bytes, &mut at)?;
    let kind = FieldKind::from_code(code).ok_or(FormatError::UnknownKind(code))?;
    let plen = usize::from(take_u8(bytes, &mut at)?);
    let purpose = take(bytes, &mut at, plen)?;
    let purpose = std::str::from_utf8(purpose)
        .ok()
        .filter(|p| is_valid_label(p))
        .ok_or(FormatError::InvalidPurposeLabel)?;
    let rlen = usize::from(take_u8(bytes, &mut at)?);
    let recipient = take(bytes, &mut at, rlen)?;
    let recipient = std::str::from_utf8(recipient)
        .ok()
        .filter(|r| is_recipient_name(r))
        .ok_or(FormatError::InvalidName)?;
    let mut shared_at = [0u8; 8];
    shared_at.copy_from_slice(take(bytes, &mut at, 8)?);
    let header_end = at;
    let enc = take(bytes, &mut at, ENC_LEN)?;
    let sealed = bytes.get(at..).unwrap_or_default();
    if sealed.len() < TAG_LEN {
        return Err(FormatError::Truncated);
    }
    if sealed.len() - TAG_LEN > kind.max_canonical_len() {
        return Err(FormatError::CiphertextLength);
    }
    Ok(PackageParts {
        kind,
        purpose,
        recipient,
        shared_at: u64::from_be_bytes(shared_at),
        header: bytes.get(..header_end).unwrap_or_default(),
        enc,
        sealed,
    })
}

/// Writes the header (every byte before the encapsulated key).
pub(crate) fn write_header(
    out: &mut Vec<u8>,
    kind: FieldKind,
    purpose: &str,
    recipient: &str,
    shared_at: u64,
) {
    out.push(PACKAGE_VERSION);
    out.push(kind.code());
    // Both lengths are at most 32: checked by `PurposeId` and `RecipientName`.
    out.push(purpose.len() as u8);
    out.extend_from_slice(purpose.as_bytes());
    out.push(recipient.len() as u8);
    out.extend_from_slice(recipient.as_bytes());
    out.extend_from_slice(&shared_at.to_be_bytes());
}

impl SharedPackage {
    /// Wraps bytes this crate just produced.
    pub(crate) fn from_trusted(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    pub(crate) fn parts(&self) -> Result<PackageParts<'_>, FormatError> {
        parse(&self.bytes)
    }

    /// Parses the binary form.
    ///
    /// # Errors
    /// [`Error::Format`](crate::Error::Format) if the package is malformed (see
    /// [`FormatError`]). Authenticity is checked only when it is opened.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::Error> {
        parse(bytes)?;
        Ok(Self::from_trusted(bytes.to_vec()))
    }

    /// Parses the text form (`fss1:` and unpadded base64url).
    ///
    /// # Errors
    /// As [`SharedPackage::from_bytes`], plus [`FormatError::UnknownPrefix`],
    /// [`FormatError::UnsupportedVersion`] for another `fssN:` prefix and
    /// [`FormatError::Base64`] for anything but canonical unpadded base64url.
    pub fn from_text(text: &str) -> Result<Self, crate::Error> {
        if text.is_empty() {
            return Err(FormatError::Empty.into());
        }
        if text.len() > MAX_PACKAGE_TEXT_LEN {
            return Err(FormatError::TooLong {
                max: MAX_PACKAGE_TEXT_LEN,
            }
            .into());
        }
        let Some(body) = text.strip_prefix(SHARE_TEXT_PREFIX) else {
            let b = text.as_bytes();
            if b.len() >= 5 && &b[..3] == b"fss" && b[3].is_ascii_digit() && b[4] == b':' {
                return Err(FormatError::UnsupportedVersion(b[3] - b'0').into());
            }
            return Err(FormatError::UnknownPrefix.into());
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| FormatError::Base64)?;
        match bytes.first() {
            Some(&PACKAGE_VERSION) | None => {}
            Some(_) => return Err(FormatError::VersionMismatch.into()),
        }
        parse(&bytes)?;
        Ok(Self::from_trusted(bytes))
    }

    /// The text form: `fss1:` and unpadded base64url.
    pub fn to_text(&self) -> String {
        let mut s =
            String::with_capacity(SHARE_TEXT_PREFIX.len() + self.bytes.len().div_ceil(3) * 4);
        s.push_str(SHARE_TEXT_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&self.bytes, &mut s);
        s
    }

    /// The binary form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The binary form, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The field kind of the value inside.
    pub fn kind(&self) -> FieldKind {
        self.parts().map_or(FieldKind::Text, |p| p.kind)
    }

    /// The purpose it was shared for.
    pub fn purpose_label(&self) -> &str {
        self.parts().map_or("", |p| p.purpose)
    }

    /// The recipient's manifest name.
    pub fn recipient(&self) -> &str {
        self.parts().map_or("", |p| p.recipient)
    }

    /// When it was shared, Unix seconds on the sharing guard's clock.
    pub fn shared_at(&self) -> u64 {
        self.parts().map_or(0, |p| p.shared_at)
    }
}

impl fmt::Debug for SharedPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            Ok(p) => f
                .debug_struct("SharedPackage")
                .field("kind", &p.kind)
                .field("purpose", &p.purpose)
                .field("recipient", &p.recipient)
                .field("shared_at", &p.shared_at)
                .field("len", &self.bytes.len())
                .finish(),
            Err(_) => f.write_str("SharedPackage(<malformed>)"),
        }
    }
}

impl fmt::Display for SharedPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for SharedPackage {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_text(s)
    }
}
