//! Keys of the audit log: the secret audit key (chain MACs and subject pseudonyms) and the
//! Ed25519 checkpoint key pair.

use std::fmt;

use zeroize::Zeroizing;

use crate::crypto::kdf::{hkdf_sha256, push_lp};
use crate::error::Error;
use crate::random::{RandomSource, SystemRandom};

const AUDIT_SALT: &[u8] = b"fieldseal/v1/audit-key";
const MAC_INFO: &[u8] = b"fieldseal/v1/audit-mac";
const PSEUDONYM_INFO: &[u8] = b"fieldseal/v1/audit-pseudonym";
const SUBJECT_DOMAIN: &[u8] = b"fieldseal/v1/audit-subject";
const CONTEXT_DOMAIN: &[u8] = b"fieldseal/v1/audit-context";

/// The secret key of one audit log: 32 bytes from which the chain-MAC key and the pseudonym key
/// are derived with HKDF-SHA256.
///
/// Zeroized on drop, redacted in `Debug`, not `Clone`.
///
/// ```
/// let k = fieldseal::AuditKey::from_bytes([7; 32]);
/// assert_eq!(format!("{k:?}"), "AuditKey([REDACTED])");
/// ```
pub struct AuditKey {
    mac: Zeroizing<[u8; 32]>,
    pseudonym: Zeroizing<[u8; 32]>,
}

impl AuditKey {
    /// A key from 32 secret bytes (load them from your secret store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let ikm = Zeroizing::new(bytes);
        let mut mac = Zeroizing::new([0u8; 32]);
        let mut pseudonym = Zeroizing::new([0u8; 32]);
        let mut info = Vec::new();
        push_lp(&mut info, MAC_INFO);
        // 32 bytes is far below HKDF-SHA256's output limit.
        let _ = hkdf_sha256(AUDIT_SALT, &ikm[..], &info, mac.as_mut());
        info.clear();
        push_lp(&mut info, PSEUDONYM_INFO);
        let _ = hkdf_sha256(AUDIT_SALT, &ikm[..], &info, pseudonym.as_mut());
        Self { mac, pseudonym }
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// [`Error::Random`] if the system random source fails.
    pub fn generate() -> Result<Self, Error> {
        let mut b = Zeroizing::new([0u8; 32]);
        SystemRandom.fill(b.as_mut())?;
        Ok(Self::from_bytes(*b))
    }

    /// The pseudonym key alone, for subject access reports by someone who must not be able to
    /// forge log entries.
    pub fn pseudonym_key(&self) -> PseudonymKey {
        PseudonymKey::new(&self.pseudonym)
    }

    pub(crate) fn mac_key(&self) -> &[u8; 32] {
        &self.mac
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

/// The key that turns subject identifiers into log pseudonyms (HMAC-SHA256), derived from an
/// [`AuditKey`]. Zeroized on drop, redacted in `Debug`, not `Clone`.
pub struct PseudonymKey(hmac::Hmac<sha2::Sha256>);

impl PseudonymKey {
    fn new(key: &[u8; 32]) -> Self {
        use hmac::KeyInit;
        // The HMAC key schedule is kept (as for the chain MAC; `hmac` is built with its
        // `zeroize` feature), so each pseudonym costs two compressions fewer.
        Self(
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
        )
    }

    fn mac(&self, domain: &[u8], msg: &[u8]) -> [u8; 32] {
        use hmac::Mac as _;
        let mut m = self.0.clone();
        // lp(domain), fed in two parts (the same bytes as `push_lp`, without a buffer).
        // The domains are constants far shorter than 64 KiB.
        m.update(&(domain.len() as u16).to_be_bytes());
        m.update(domain);
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    /// The pseudonym of subject `id`: HMAC-SHA256(key, lp("fieldseal/v1/audit-subject") ‖ id).
    pub(crate) fn subject(&self, id: &[u8]) -> [u8; 32] {
        self.mac(SUBJECT_DOMAIN, id)
    }

    /// The context digest: HMAC-SHA256(key, lp("fieldseal/v1/audit-context") ‖ encoding),
    /// truncated to 16 bytes.
    pub(crate) fn context(&self, encoded: &[u8]) -> [u8; 16] {
        let full = self.mac(CONTEXT_DOMAIN, encoded);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey([REDACTED])")
    }
}

/// The Ed25519 key that signs checkpoints. Zeroized on drop, redacted in `Debug`, not `Clone`.
pub struct CheckpointSigningKey(ed25519_dalek::SigningKey);

impl CheckpointSigningKey {
    /// A key from its 32-byte secret seed.
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// [`Error::Random`] if the system random source fails.
    pub fn generate() -> Result<Self, Error> {
        let mut b = Zeroizing::new([0u8; 32]);
        SystemRandom.fill(b.as_mut())?;
        Ok(Self::from_bytes(*b))
    }

    /// The public key reviewers verify checkpoints with.
    pub fn verifying_key(&self) -> CheckpointVerifyingKey {
        CheckpointVerifyingKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for CheckpointSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CheckpointSigningKey([REDACTED])")
    }
}

/// The public half of a [`CheckpointSigningKey`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CheckpointVerifyingKey(ed25519_dalek::VerifyingKey);

impl CheckpointVerifyingKey {
    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// A key from its 32-byte encoding.
    ///
    /// # Errors
    /// [`Error::Key`] with [`KeyError::InvalidEncoding`](crate::KeyError::InvalidEncoding) if
    /// the bytes are not a valid Ed25519 point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| Error::Key(crate::KeyError::InvalidEncoding))
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &sig).is_ok()
    }
}

impl fmt::Debug for CheckpointVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointVerifyingKey({})", hex(&self.0.to_bytes()))
    }
}

/// The lowercase hex digit of a nibble (`n < 16`), without a table or a branch: `n + '0'`, plus
/// 39 (`'a' - '0' - 10`) when `n > 9`. Written this way the loops below vectorize (and take the
/// same time for every value).
fn digit(n: u8) -> u8 {
    n + b'0' + (0u8.wrapping_sub(9u8.wrapping_sub(n) >> 7) & 39)
}

/// Writes the hex of `bytes` into `dst` (two digits per byte, as far as both go).
fn fill_hex(dst: &mut [u8], bytes: &[u8]) {
    for (pair, &b) in dst.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            *hi = digit(b >> 4);
            *lo = digit(b & 15);
        }
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut v = Vec::with_capacity(bytes.len() * 2);
    extend_hex(&mut v, bytes);
    // Only ASCII hex digits were pushed.
    String::from_utf8(v).unwrap_or_default()
}

/// Appends the lowercase hex of `bytes` to `out`.
pub(crate) fn extend_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    fill_hex(out.get_mut(start..).unwrap_or_default(), bytes);
}

/// The lowercase hex of a digest of `M / 2` bytes, held inline (no allocation); serializes as a
/// string.
#[derive(Clone, Copy)]
pub(crate) struct HexStr<const M: usize>([u8; M]);

impl<const M: usize> HexStr<M> {
    /// The hex of `bytes`, which must be `M / 2` bytes long (a shorter input leaves `0`s).
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let mut out = [b'0'; M];
        fill_hex(&mut out, bytes);
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Strict lowercase hex into exactly `N` bytes.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf::hmac_sha256;

    #[test]
    fn subkeys_differ_and_debug_is_redacted() {
        let k = AuditKey::from_bytes([1; 32]);
        assert_ne!(k.mac_key(), &*k.pseudonym);
        assert_eq!(
            format!("{:?}", k.pseudonym_key()),
            "PseudonymKey([REDACTED])"
        );
        let s = CheckpointSigningKey::from_bytes([2; 32]);
        assert_eq!(format!("{s:?}"), "CheckpointSigningKey([REDACTED])");
        let p = k.pseudonym_key();
        assert_ne!(p.subject(b"a")[..16], p.context(b"a")[..]);
        // Matches the plain HMAC definition.
        let mut msg = Vec::new();
        push_lp(&mut msg, SUBJECT_DOMAIN);
        msg.extend_from_slice(b"a");
        assert_eq!(p.subject(b"a"), hmac_sha256(&k.pseudonym[..], &msg));
    }

    /// RFC 8032 section 7.1, TEST 1: the public key of a known seed, its encoding both ways, and
    /// the `Debug` form that shows it (a public key is not secret).
    #[test]
    fn verifying_key_known_answer() {
        let seed = unhex::<32>("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap_or_default();
        let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let vk = CheckpointSigningKey::from_bytes(seed).verifying_key();
        assert_eq!(hex(&vk.to_bytes()), public);
        let back = CheckpointVerifyingKey::from_bytes(&vk.to_bytes());
        assert!(back.is_ok_and(|k| k == vk));
        assert_eq!(
            format!("{vk:?}"),
            format!("CheckpointVerifyingKey({public})")
        );
    }

    /// The context digest is the truncated HMAC of its definition: it tells contexts apart and
    /// depends on the key (a constant digest would hide which row a record was about).
    #[test]
    fn context_digest_matches_its_definition() {
        let k = AuditKey::from_bytes([1; 32]);
        let p = k.pseudonym_key();
        let mut msg = Vec::new();
        push_lp(&mut msg, CONTEXT_DOMAIN);
        msg.extend_from_slice(b"\x01\x07subject\x00\x01a");
        let full = hmac_sha256(&k.pseudonym[..], &msg);
        assert_eq!(p.context(b"\x01\x07subject\x00\x01a")[..], full[..16]);
        assert_ne!(p.context(b"a"), p.context(b"b"));
        assert_ne!(
            p.context(b"a"),
            AuditKey::from_bytes([2; 32]).pseudonym_key().context(b"a")
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = hex(&[0, 0xab, 0xff]);
        assert_eq!(h, "00abff");
        assert_eq!(unhex::<3>(&h), Some([0, 0xab, 0xff]));
        assert_eq!(unhex::<3>("00ABff"), None);
        assert_eq!(unhex::<2>(&h), None);
        let bytes: Vec<u8> = (0..=255).collect();
        let mut v = b"x".to_vec();
        extend_hex(&mut v, &bytes);
        assert_eq!(v.get(1..), Some(hex(&bytes).as_bytes()));
        // Every byte value against the standard formatter, and back.
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), expected);
        assert_eq!(HexStr::<512>::of(&bytes).as_str(), expected);
        assert_eq!(unhex::<256>(&expected).map(Vec::from), Some(bytes));
        let inline = HexStr::<6>::of(&[0, 0xab, 0xff]);
        assert_eq!(inline.as_str(), "00abff");
        assert_eq!(HexStr::<64>::of(&[7; 32]).as_str(), hex(&[7; 32]));
    }
}
