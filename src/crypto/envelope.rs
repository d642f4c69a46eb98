//! Envelope format version 1: the stored form of every sealed value.
//!
//! Binary layout (all integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, `1` |
//! | 1 | 1 | field-kind code ([`FieldKind::code`]) |
//! | 2 | 1 | flags: bit 0 = a subject-key id follows; bits 1-7 reserved, must be 0 |
//! | 3 | 1 | purpose label length `L`, 1-32 |
//! | 4 | L | purpose label, `[a-z][a-z0-9_]*` |
//! | 4+L | 4 | key version, non-zero |
//! | 8+L | 8 | sealed-at, seconds since the Unix epoch (UTC) |
//! | 16+L | 16 | subject-key id, only if flag bit 0 |
//! | … | 16 | epoch salt |
//! | … | 16 | key commitment |
//! | … | 12 | AES-GCM nonce |
//! | … | n+16 | ciphertext of the canonical field bytes, then the 16-byte tag |
//!
//! Everything before the ciphertext is the *header*; the associated data is
//! `header || canonical context`. Text form: `fs1:` followed by the binary form in unpadded
//! base64url (RFC 4648 §5), decoded strictly (non-zero trailing bits are rejected, so every text
//! maps to exactly one binary envelope).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::aead::{NONCE_LEN, SALT_LEN, TAG_LEN};
use super::kdf::COMMITMENT_LEN;
use crate::error::FormatError;
use crate::field::FieldKind;
use crate::keys::KeyVersion;
use crate::purpose::{MAX_PURPOSE_LABEL, PurposeId, is_valid_label};

/// Format version written by this release.
pub(crate) const VERSION_1: u8 = 1;
/// Prefix of the text form of version-1 envelopes.
pub const TEXT_PREFIX: &str = "fs1:";
/// Flag: a 16-byte subject-key id follows the sealed-at time.
pub(crate) const FLAG_SUBJECT_KEY: u8 = 0x01;
/// Largest plaintext (canonical field bytes) any envelope may hold.
pub(crate) const MAX_PLAINTEXT: usize = 16 * 1024;
/// Largest binary envelope accepted by the parsers.
pub const MAX_ENVELOPE_LEN: usize = 4
    + MAX_PURPOSE_LABEL
    + 4
    + 8
    + 16
    + SALT_LEN
    + COMMITMENT_LEN
    + NONCE_LEN
    + MAX_PLAINTEXT
    + TAG_LEN;
/// Largest text envelope accepted by the parsers.
pub(crate) const MAX_TEXT_LEN: usize = TEXT_PREFIX.len() + MAX_ENVELOPE_LEN.div_ceil(3) * 4;

/// Fields written into a header.
pub(crate) struct HeaderFields<'a> {
    pub(crate) kind: FieldKind,
    pub(crate) purpose: &'a str,
    pub(crate) key_version: KeyVersion,
    pub(crate) sealed_at: u64,
    pub(crate) subject_key_id: Option<&'a [u8; 16]>,
    pub(crate) salt: &'a [u8; SALT_LEN],
    pub(crate) commitment: &'a [u8; COMMITMENT_LEN],
    pub(crate) nonce: &'a [u8; NONCE_LEN],
}

/// Length of a header with a purpose label of `purpose_len` bytes.
pub(crate) const fn header_len(purpose_len: usize, subject_key: bool) -> usize {
    4 + purpose_len
        + 4
        + 8
        + if subject_key { 16 } else { 0 }
        + SALT_LEN
        + COMMITMENT_LEN
        + NONCE_LEN
}

/// Longest header: a 32-byte purpose label and a subject-key id.
pub(crate) const MAX_HEADER_LEN: usize = header_len(MAX_PURPOSE_LABEL, true);

/// Appends a version-1 header. The purpose label must already be valid.
pub(crate) fn write_header(out: &mut Vec<u8>, h: &HeaderFields<'_>) {
    let (buf, len) = encode_header(h);
    out.extend_from_slice(&buf[..len]);
}

/// A version-1 header in a fixed array, and its length (rewrap overwrites a header in place).
/// The purpose label must already be valid.
pub(crate) fn encode_header(h: &HeaderFields<'_>) -> ([u8; MAX_HEADER_LEN], usize) {
    debug_assert!(is_valid_label(h.purpose));
    // Assembled in a fixed array and appended once: cheaper than many small pushes.
    let mut buf = [0u8; MAX_HEADER_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let flags = if h.subject_key_id.is_some() {
        FLAG_SUBJECT_KEY
    } else {
        0
    };
    // Valid labels are 1-32 bytes, so the length fits in a byte and the buffer.
    let label = &h.purpose.as_bytes()[..h.purpose.len().min(MAX_PURPOSE_LABEL)];
    put(&[VERSION_1, h.kind.code(), flags, label.len() as u8]);
    put(label);
    put(&h.key_version.get().to_be_bytes());
    put(&h.sealed_at.to_be_bytes());
    if let Some(s) = h.subject_key_id {
        put(s);
    }
    put(h.salt);
    put(h.commitment);
    put(h.nonce);
    (buf, at)
}

/// A parsed, structurally valid envelope borrowing its bytes.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) kind: FieldKind,
    pub(crate) purpose: &'a str,
    pub(crate) key_version: KeyVersion,
    pub(crate) sealed_at: u64,
    pub(crate) subject_key_id: Option<&'a [u8; 16]>,
    pub(crate) salt: &'a [u8; SALT_LEN],
    pub(crate) commitment: &'a [u8],
    pub(crate) nonce: &'a [u8; NONCE_LEN],
    pub(crate) header: &'a [u8],
    pub(crate) ciphertext: &'a [u8],
    pub(crate) tag: &'a [u8],
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.at.checked_add(n).ok_or(FormatError::Truncated)?;
        let s = self.bytes.get(self.at..end).ok_or(FormatError::Truncated)?;
        self.at = end;
        Ok(s)
    }
    fn byte(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], FormatError> {
        self.take(N)?.try_into().map_err(|_| FormatError::Truncated)
    }
}

/// Parses a binary envelope, checking every length before use.
///
/// # Errors
/// A [`FormatError`] naming the first structural problem.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed<'_>, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::Empty);
    }
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(FormatError::TooLong {
            max: MAX_ENVELOPE_LEN,
        });
    }
    let mut r = Reader { bytes, at: 0 };
    let version = r.byte()?;
    if version != VERSION_1 {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let kind_code = r.byte()?;
    let kind = FieldKind::from_code(kind_code).ok_or(FormatError::UnknownKind(kind_code))?;
    let flags = r.byte()?;
    if flags & !FLAG_SUBJECT_KEY != 0 {
        return Err(FormatError::ReservedFlags(flags));
    }
    let label_len = usize::from(r.byte()?);
    if label_len == 0 || label_len > MAX_PURPOSE_LABEL {
        return Err(FormatError::InvalidPurposeLabel);
    }
    let label = r.take(label_len)?;
    let purpose = std::str::from_utf8(label)
        .ok()
        .filter(|l| is_valid_label(l))
        .ok_or(FormatError::InvalidPurposeLabel)?;
    let key_version = u32::from_be_bytes(*r.array::<4>()?);
    let key_version = KeyVersion::new(key_version).ok_or(FormatError::ZeroKeyVersion)?;
    let sealed_at = u64::from_be_bytes(*r.array::<8>()?);
    let subject_key_id = if flags & FLAG_SUBJECT_KEY != 0 {
        Some(r.array::<16>()?)
    } else {
        None
    };
    let salt = r.array::<SALT_LEN>()?;
    let commitment = r.take(COMMITMENT_LEN)?;
    let nonce = r.array::<NONCE_LEN>()?;
    let header_end = r.at;
    let rest = &bytes[header_end..];
    if rest.len() < TAG_LEN || rest.len() - TAG_LEN > MAX_PLAINTEXT {
        return Err(FormatError::CiphertextLength);
    }
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok(Parsed {
        kind,
        purpose,
        key_version,
        sealed_at,
        subject_key_id,
        salt,
        commitment,
        nonce,
        header: &bytes[..header_end],
        ciphertext,
        tag,
    })
}

/// Encodes a binary envelope as text.
pub(crate) fn to_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(TEXT_PREFIX.len() + bytes.len().div_ceil(3) * 4);
    s.push_str(TEXT_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    s
}

/// Decodes the text form into binary, checking the length before decoding.
///
/// # Errors
/// [`FormatError::UnknownPrefix`], [`FormatError::UnsupportedVersion`] for another `fsN:`
/// prefix, [`FormatError::Base64`], [`FormatError::VersionMismatch`], or a length error.
pub(crate) fn from_text(text: &str) -> Result<Vec<u8>, FormatError> {
    if text.is_empty() {
        return Err(FormatError::Empty);
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(FormatError::TooLong { max: MAX_TEXT_LEN });
    }
    let Some(body) = text.strip_prefix(TEXT_PREFIX) else {
        let b = text.as_bytes();
        if b.len() >= 4 && &b[..2] == b"fs" && b[2].is_ascii_digit() && b[3] == b':' {
            return Err(FormatError::UnsupportedVersion(b[2] - b'0'));
        }
        return Err(FormatError::UnknownPrefix);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| FormatError::Base64)?;
    match bytes.first() {
        None => Err(FormatError::Empty),
        Some(&VERSION_1) => Ok(bytes),
        Some(_) => Err(FormatError::VersionMismatch),
    }
}

/// Public description of an envelope's header: nothing secret, for tools and logs.
///
/// ```
/// # use fieldseal::*;
/// let guard = Guard::builder()
///     .keyring(Keyring::generate()?)
///     .policy(AllowList::new())
///     .audit(NullSink)
///     .build()?;
/// let sealed: Sealed<Email, builtin::Service> =
///     guard.seal(&Email::parse("a@example.com")?, &Context::new())?;
/// let info = EnvelopeInfo::from_text(&sealed.to_text())?;
/// assert_eq!(info.kind(), FieldKind::Email);
/// assert_eq!(info.purpose().as_str(), "service");
/// # Ok::<(), fieldseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeInfo {
    version: u8,
    kind: FieldKind,
    purpose: PurposeId,
    key_version: KeyVersion,
    sealed_at: u64,
    subject_key: bool,
    ciphertext_len: usize,
}

impl EnvelopeInfo {
    /// Describes a binary envelope.
    ///
    /// # Errors
    /// [`FormatError`] if the envelope is malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::Error> {
        let p = parse(bytes)?;
        // The same per-kind cap as `Sealed` applies, so the two never disagree.
        if p.ciphertext.len() > p.kind.max_canonical_len() {
            return Err(FormatError::CiphertextLength.into());
        }
        let purpose = PurposeId::new(p.purpose)?;
        Ok(Self::of(&p, purpose))
    }

    /// Describes a text envelope.
    ///
    /// # Errors
    /// [`FormatError`] if the envelope is malformed.
    pub fn from_text(text: &str) -> Result<Self, crate::Error> {
        Self::from_bytes(&from_text(text)?)
    }

    /// Describes a parsed envelope whose purpose label is `purpose`.
    pub(crate) fn of(p: &Parsed<'_>, purpose: PurposeId) -> Self {
        Self {
            version: VERSION_1,
            kind: p.kind,
            purpose,
            key_version: p.key_version,
            sealed_at: p.sealed_at,
            subject_key: p.subject_key_id.is_some(),
            ciphertext_len: p.ciphertext.len(),
        }
    }

    /// Envelope format version.
    pub fn version(&self) -> u8 {
        self.version
    }
    /// Field kind sealed.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }
    /// Purpose sealed for.
    pub fn purpose(&self) -> &PurposeId {
        &self.purpose
    }
    /// Root key version used.
    pub fn key_version(&self) -> KeyVersion {
        self.key_version
    }
    /// When it was sealed, in seconds since the Unix epoch.
    pub fn sealed_at(&self) -> u64 {
        self.sealed_at
    }
    /// Whether it is sealed under a per-subject key.
    pub fn has_subject_key(&self) -> bool {
        self.subject_key
    }
    /// Length of the encrypted canonical bytes (without the tag).
    pub fn ciphertext_len(&self) -> usize {
        self.ciphertext_len
    }
}

/// Test builds only: an envelope with the given key identity (version, kind, purpose, subject
/// key, epoch salt), fixed sealed-at, commitment and nonce, and `ciphertext` bytes of body and a
/// tag of filler. Header tests and tests of which envelopes share an opening key use it.
#[cfg(test)]
pub(crate) fn envelope_with_key_identity(
    kind: FieldKind,
    purpose: &str,
    key_version: KeyVersion,
    subject_key_id: Option<&[u8; 16]>,
    salt: &[u8; SALT_LEN],
    ciphertext: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(
        &mut out,
        &HeaderFields {
            kind,
            purpose,
            key_version,
            sealed_at: 1_700_000_000,
            subject_key_id,
            salt,
            commitment: &[2; COMMITMENT_LEN],
            nonce: &[3; NONCE_LEN],
        },
    );
    out.resize(out.len() + ciphertext + TAG_LEN, 0xAA);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 7-byte label, 4 bytes of ciphertext.
    fn sample(subject: bool) -> Vec<u8> {
        let v = envelope(FieldKind::Email, "service", subject, 4);
        assert_eq!(v.len(), header_len(7, subject) + 4 + TAG_LEN);
        v
    }

    #[test]
    fn parse_roundtrip() {
        for subject in [false, true] {
            let v = sample(subject);
            let p = parse(&v).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.kind, FieldKind::Email);
            assert_eq!(p.purpose, "service");
            assert_eq!(p.key_version.get(), 3);
            assert_eq!(p.sealed_at, 1_700_000_000);
            assert_eq!(p.subject_key_id.is_some(), subject);
            assert_eq!(p.ciphertext.len(), 4);
            assert_eq!(p.tag.len(), 16);
            let t = to_text(&v);
            assert_eq!(from_text(&t), Ok(v));
        }
    }

    #[test]
    fn parse_errors() {
        let v = sample(false);
        assert_eq!(parse(&[]).err(), Some(FormatError::Empty));
        let mut bad = v.clone();
        bad[0] = 2;
        assert_eq!(parse(&bad).err(), Some(FormatError::UnsupportedVersion(2)));
        bad = v.clone();
        bad[1] = 0;
        assert_eq!(parse(&bad).err(), Some(FormatError::UnknownKind(0)));
        bad = v.clone();
        bad[2] = 0x80;
        assert_eq!(parse(&bad).err(), Some(FormatError::ReservedFlags(0x80)));
        bad = v.clone();
        bad[3] = 0;
        assert_eq!(parse(&bad).err(), Some(FormatError::InvalidPurposeLabel));
        bad = v.clone();
        bad[3] = 33;
        assert_eq!(parse(&bad).err(), Some(FormatError::InvalidPurposeLabel));
        bad = v.clone();
        bad[4] = b'S';
        assert_eq!(parse(&bad).err(), Some(FormatError::InvalidPurposeLabel));
        bad = v.clone();
        bad[11..15].copy_from_slice(&[0; 4]);
        assert_eq!(parse(&bad).err(), Some(FormatError::ZeroKeyVersion));
        let hl = header_len(7, false);
        assert_eq!(
            parse(&v[..hl + 15]).err(),
            Some(FormatError::CiphertextLength)
        );
        assert_eq!(parse(&v[..hl - 1]).err(), Some(FormatError::Truncated));
        assert_eq!(parse(&v[..1]).err(), Some(FormatError::Truncated));
        let huge = vec![1u8; MAX_ENVELOPE_LEN + 1];
        assert!(matches!(parse(&huge), Err(FormatError::TooLong { .. })));
    }

    #[test]
    fn text_errors() {
        let t = to_text(&sample(false));
        assert_eq!(from_text(""), Err(FormatError::Empty));
        assert_eq!(from_text("xx"), Err(FormatError::UnknownPrefix));
        assert_eq!(
            from_text(&t.replacen("fs1:", "fs2:", 1)),
            Err(FormatError::UnsupportedVersion(2))
        );
        assert_eq!(from_text(&format!("{t}=")), Err(FormatError::Base64));
        assert_eq!(from_text("fs1:Ag"), Err(FormatError::VersionMismatch));
        assert_eq!(from_text("fs1:"), Err(FormatError::Empty));
        let long = format!("fs1:{}", "A".repeat(MAX_TEXT_LEN));
        assert!(matches!(from_text(&long), Err(FormatError::TooLong { .. })));
    }

    /// An envelope with the given label, subject-key id and ciphertext length (tag included
    /// after it).
    fn envelope(kind: FieldKind, label: &str, subject: bool, ciphertext: usize) -> Vec<u8> {
        envelope_with_key_identity(
            kind,
            label,
            KeyVersion::new(3).unwrap_or_else(|| unreachable!()),
            subject.then_some(&[9; 16]),
            &[1; 16],
            ciphertext,
        )
    }

    #[test]
    fn limits_are_the_documented_ones() {
        // The values SECURITY.md states ("Limits"), and the largest envelope meets them exactly.
        assert_eq!(MAX_PLAINTEXT, 16_384);
        assert_eq!(MAX_HEADER_LEN, 108);
        assert_eq!(MAX_ENVELOPE_LEN, 16_508);
        assert_eq!(MAX_TEXT_LEN, 22_016);
        let longest = envelope(FieldKind::Text, &"p".repeat(32), true, MAX_PLAINTEXT);
        assert_eq!(longest.len(), MAX_ENVELOPE_LEN);
        let p = parse(&longest).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.ciphertext.len(), MAX_PLAINTEXT);
        let text = to_text(&longest);
        assert!(text.len() <= MAX_TEXT_LEN);
        assert_eq!(from_text(&text).as_deref(), Ok(&longest[..]));
        let mut over = longest;
        over.push(0);
        assert_eq!(
            parse(&over).err(),
            Some(FormatError::TooLong {
                max: MAX_ENVELOPE_LEN
            })
        );
    }

    #[test]
    fn ciphertext_one_byte_over_the_plaintext_limit_is_refused() {
        // A short header leaves room under the total limit for a ciphertext one byte too long.
        let v = envelope(FieldKind::Text, "p", false, MAX_PLAINTEXT + 1);
        assert!(v.len() < MAX_ENVELOPE_LEN);
        assert_eq!(parse(&v).err(), Some(FormatError::CiphertextLength));
        let v = envelope(FieldKind::Text, "p", false, MAX_PLAINTEXT);
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn an_overlong_label_length_is_refused_before_reading_it() {
        // A length byte above 32 is refused as such, not reported as truncation of the label.
        assert_eq!(
            parse(&[VERSION_1, FieldKind::Email.code(), 0, 33]).err(),
            Some(FormatError::InvalidPurposeLabel)
        );
        assert_eq!(
            parse(&[VERSION_1, FieldKind::Email.code(), 0, 32]).err(),
            Some(FormatError::Truncated)
        );
    }

    #[test]
    fn text_of_exactly_the_limit_is_decoded() {
        // 'A' decodes to zero bytes: the length check passes and the version check refuses it.
        let at_limit = format!("fs1:{}", "A".repeat(MAX_TEXT_LEN - TEXT_PREFIX.len()));
        assert_eq!(from_text(&at_limit), Err(FormatError::VersionMismatch));
        let over = format!("fs1:{}", "A".repeat(MAX_TEXT_LEN - TEXT_PREFIX.len() + 1));
        assert_eq!(
            from_text(&over),
            Err(FormatError::TooLong { max: MAX_TEXT_LEN })
        );
    }

    #[test]
    fn info_describes_the_header() {
        for subject in [false, true] {
            let v = envelope(FieldKind::Email, "billing", subject, 5);
            let info = EnvelopeInfo::from_bytes(&v).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(info.version(), 1);
            assert_eq!(info.kind(), FieldKind::Email);
            assert_eq!(info.purpose().as_str(), "billing");
            assert_eq!(info.key_version().get(), 3);
            assert_eq!(info.sealed_at(), 1_700_000_000);
            assert_eq!(info.has_subject_key(), subject);
            assert_eq!(info.ciphertext_len(), 5);
        }
    }

    #[test]
    fn info_applies_the_kind_cap() {
        // The same per-kind cap as `Sealed`: exactly the kind's longest canonical form passes.
        let max = FieldKind::Email.max_canonical_len();
        let v = envelope(FieldKind::Email, "billing", false, max);
        let info = EnvelopeInfo::from_bytes(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.ciphertext_len(), max);
        let v = envelope(FieldKind::Email, "billing", false, max + 1);
        assert!(matches!(
            EnvelopeInfo::from_bytes(&v),
            Err(crate::Error::Format(FormatError::CiphertextLength))
        ));
    }

    proptest::proptest! {
        #[test]
        fn header_write_parse_roundtrip(
            kind_code in 1u8..=8,
            label in "[a-z][a-z0-9_]{0,31}",
            version in 1u32..,
            sealed_at in proptest::prelude::any::<u64>(),
            subject in proptest::option::of(proptest::prelude::any::<[u8; 16]>()),
            salt in proptest::prelude::any::<[u8; 16]>(),
            commitment in proptest::prelude::any::<[u8; 16]>(),
            nonce in proptest::prelude::any::<[u8; 12]>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 16..200),
        ) {
            let kind = FieldKind::from_code(kind_code).unwrap_or_else(|| unreachable!());
            let key_version = KeyVersion::new(version).unwrap_or_else(|| unreachable!());
            let mut v = Vec::new();
            write_header(&mut v, &HeaderFields {
                kind,
                purpose: &label,
                key_version,
                sealed_at,
                subject_key_id: subject.as_ref(),
                salt: &salt,
                commitment: &commitment,
                nonce: &nonce,
            });
            proptest::prop_assert_eq!(v.len(), header_len(label.len(), subject.is_some()));
            v.extend_from_slice(&body);
            let p = parse(&v).unwrap_or_else(|e| panic!("{e}"));
            proptest::prop_assert_eq!(p.kind, kind);
            proptest::prop_assert_eq!(p.purpose, label.as_str());
            proptest::prop_assert_eq!(p.key_version, key_version);
            proptest::prop_assert_eq!(p.sealed_at, sealed_at);
            proptest::prop_assert_eq!(p.subject_key_id.copied(), subject);
            proptest::prop_assert_eq!(p.salt, &salt);
            proptest::prop_assert_eq!(p.commitment, &commitment[..]);
            proptest::prop_assert_eq!(p.nonce, &nonce);
            proptest::prop_assert_eq!(p.ciphertext.len() + p.tag.len(), body.len());
            proptest::prop_assert_eq!(from_text(&to_text(&v)), Ok(v.clone()));
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), text in "\\PC{0,200}") {
            let _ = parse(&bytes);
            let _ = from_text(&text);
            let _ = from_text(&format!("fs1:{text}"));
        }
    }
}
