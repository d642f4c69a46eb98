//! HKDF-SHA256 derivations and HMAC-SHA256, with length-prefixed inputs.
//!
//! Derivation inputs are never joined with separators: every part is prefixed with its length as
//! a big-endian `u16`, so no two different part lists encode to the same bytes.

use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::field::FieldKind;

/// Salt of the extract step from a root key. Fixed domain string of format version 1.
const ROOT_SALT: &[u8] = b"fieldseal/v1/root-key";
/// First info part of purpose-key expansion.
const PURPOSE_INFO: &[u8] = b"fieldseal/v1/purpose-key";
/// Info of epoch-key expansion.
const EPOCH_INFO: &[u8] = b"fieldseal/v1/epoch-key";

/// Length of a derived commitment.
pub(crate) const COMMITMENT_LEN: usize = 16;

/// Appends `part` prefixed by its length (u16 BE). Parts are at most a few hundred bytes.
pub(crate) fn push_lp(out: &mut Vec<u8>, part: &[u8]) {
    debug_assert!(part.len() <= usize::from(u16::MAX));
    out.extend_from_slice(&(part.len() as u16).to_be_bytes());
    out.extend_from_slice(part);
}

/// The extract step over one root key, kept per key version.
pub(crate) struct RootPrk(Hkdf<Sha256>);

impl RootPrk {
    pub(crate) fn new(root_key: &[u8; 32]) -> Self {
        Self(Hkdf::<Sha256>::new(Some(ROOT_SALT), root_key))
    }

    /// Purpose key = HKDF-Expand(PRK, lp(PURPOSE_INFO) lp([1]) lp(purpose) lp([kind]) lp(subject)).
    pub(crate) fn purpose_key(
        &self,
        purpose: &str,
        kind: FieldKind,
        subject_key_id: Option<&[u8; 16]>,
    ) -> Zeroizing<[u8; 32]> {
        let mut info = Vec::with_capacity(96);
        push_lp(&mut info, PURPOSE_INFO);
        push_lp(&mut info, &[1]);
        push_lp(&mut info, purpose.as_bytes());
        push_lp(&mut info, &[kind.code()]);
        push_lp(&mut info, subject_key_id.map_or(&[][..], |s| &s[..]));
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 255 * 32 output limit.
        let _ = self.0.expand(&info, okm.as_mut());
        okm
    }
}

/// First info part of analytics pseudonym-key expansion.
const PSEUDONYM_INFO: &[u8] = b"fieldseal/v1/pseudonym-key";
/// First info part of blind-index-key expansion.
const INDEX_INFO: &[u8] = b"fieldseal/v1/index-key";

impl RootPrk {
    /// Analytics pseudonym key of `purpose` = HKDF-Expand(PRK, lp(PSEUDONYM_INFO) lp([1])
    /// lp(purpose)). One key per purpose, so pseudonyms of one purpose do not link to another's.
    pub(crate) fn pseudonym_key(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut info = Vec::with_capacity(64);
        push_lp(&mut info, PSEUDONYM_INFO);
        push_lp(&mut info, &[1]);
        push_lp(&mut info, purpose.as_bytes());
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's output limit.
        let _ = self.0.expand(&info, okm.as_mut());
        okm
    }

    /// Blind-index key of (`purpose`, `kind`, index `name`) = HKDF-Expand(PRK, lp(INDEX_INFO)
    /// lp([1]) lp(purpose) lp([kind]) lp(name)).
    pub(crate) fn index_key(
        &self,
        purpose: &str,
        kind: FieldKind,
        name: &str,
    ) -> Zeroizing<[u8; 32]> {
        let mut info = Vec::with_capacity(96);
        push_lp(&mut info, INDEX_INFO);
        push_lp(&mut info, &[1]);
        push_lp(&mut info, purpose.as_bytes());
        push_lp(&mut info, &[kind.code()]);
        push_lp(&mut info, name.as_bytes());
        let mut okm = Zeroizing::new([0u8; 32]);
        let _ = self.0.expand(&info, okm.as_mut());
        okm
    }
}

/// A prepared HMAC-SHA256 key (the key schedule computed once), for many messages under one
/// derived key. Its state is wiped on drop (hmac's `zeroize` feature); it is not `Clone` outside
/// this module and has no `Debug` that shows it.
pub(crate) struct PreparedMac(hmac::Hmac<Sha256>);

impl PreparedMac {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self(
            <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
        )
    }

    /// HMAC over the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.0.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

/// Epoch key material: (AES-256 key, key commitment), from a purpose key and an epoch salt.
///
/// HKDF(salt = epoch salt, IKM = purpose key, info = lp(EPOCH_INFO)) expanded to 48 bytes: the
/// first 32 are the AES-256-GCM key, the last 16 the commitment stored in the header.
pub(crate) fn epoch_key(
    purpose_key: &[u8; 32],
    salt: &[u8; 16],
) -> (Zeroizing<[u8; 32]>, [u8; COMMITMENT_LEN]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), purpose_key);
    let mut info = Vec::with_capacity(32);
    push_lp(&mut info, EPOCH_INFO);
    let mut okm = Zeroizing::new([0u8; 48]);
    let _ = hk.expand(&info, okm.as_mut());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(&okm[32..]);
    (key, commitment)
}

/// Info of subject epoch-key expansion.
const SUBJECT_EPOCH_INFO: &[u8] = b"fieldseal/v1/subject-epoch-key";

/// Epoch key material for an envelope sealed under a subject key: HKDF(salt = epoch salt,
/// IKM = purpose key ‖ subject secret, info = lp(SUBJECT_EPOCH_INFO)) expanded to 48 bytes, split
/// as in [`epoch_key`]. The subject secret is random keying material held only by the
/// subject-key store, so destroying it makes every such envelope unopenable.
pub(crate) fn subject_epoch_key(
    purpose_key: &[u8; 32],
    subject_secret: &[u8; 32],
    salt: &[u8; 16],
) -> (Zeroizing<[u8; 32]>, [u8; COMMITMENT_LEN]) {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(purpose_key);
    ikm[32..].copy_from_slice(subject_secret);
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm.as_ref());
    let mut info = Vec::with_capacity(40);
    push_lp(&mut info, SUBJECT_EPOCH_INFO);
    let mut okm = Zeroizing::new([0u8; 48]);
    let _ = hk.expand(&info, okm.as_mut());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(&okm[32..]);
    (key, commitment)
}

/// HKDF-SHA256 (RFC 5869) into `okm`.
///
/// # Errors
/// `Err(())` if `okm` is longer than 255 * 32 bytes.
pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Result<(), ()> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm)
        .map_err(|_| ())
}

/// HMAC-SHA256.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_keys_are_separated() {
        let prk = RootPrk::new(&[7; 32]);
        let a = prk.purpose_key("service", FieldKind::Email, None);
        let b = prk.purpose_key("service", FieldKind::PhoneNumber, None);
        let c = prk.purpose_key("marketing", FieldKind::Email, None);
        let d = prk.purpose_key("service", FieldKind::Email, Some(&[0; 16]));
        assert_ne!(*a, *b);
        assert_ne!(*a, *c);
        assert_ne!(*a, *d);
        assert_eq!(*a, *prk.purpose_key("service", FieldKind::Email, None));
    }

    #[test]
    fn subject_secret_is_keying_material() {
        let pk = [3u8; 32];
        let salt = [4u8; 16];
        let (plain, _) = epoch_key(&pk, &salt);
        let (a, ca) = subject_epoch_key(&pk, &[1; 32], &salt);
        let (b, cb) = subject_epoch_key(&pk, &[2; 32], &salt);
        assert_ne!(*a, *b, "another subject secret, another key");
        assert_ne!(ca, cb);
        assert_ne!(*a, *plain, "never the key derivable without the secret");
        assert_eq!(*a, *subject_epoch_key(&pk, &[1; 32], &salt).0);
    }

    #[test]
    fn analytics_keys_are_separated() {
        let prk = RootPrk::new(&[7; 32]);
        let p1 = prk.pseudonym_key("service");
        let p2 = prk.pseudonym_key("improvement");
        assert_ne!(*p1, *p2);
        assert_eq!(*p1, *prk.pseudonym_key("service"));
        let i = prk.index_key("service", FieldKind::Email, "login");
        assert_ne!(*i, *prk.index_key("service", FieldKind::Email, "login2"));
        assert_ne!(*i, *prk.index_key("security", FieldKind::Email, "login"));
        assert_ne!(
            *i,
            *prk.index_key("service", FieldKind::PhoneNumber, "login")
        );
        // Never one of the sealing keys.
        assert_ne!(*i, *prk.purpose_key("service", FieldKind::Email, None));
        assert_ne!(*p1, *prk.purpose_key("service", FieldKind::Email, None));
        // Name and purpose cannot trade bytes.
        assert_ne!(
            *prk.index_key("ab", FieldKind::Email, "c"),
            *prk.index_key("a", FieldKind::Email, "bc")
        );
    }

    #[test]
    fn length_prefix_prevents_joins() {
        let mut x = Vec::new();
        push_lp(&mut x, b"a-b");
        push_lp(&mut x, b"c");
        let mut y = Vec::new();
        push_lp(&mut y, b"a");
        push_lp(&mut y, b"b-c");
        assert_ne!(x, y);
    }

    #[test]
    fn epoch_keys_depend_on_salt() {
        let (k1, c1) = epoch_key(&[1; 32], &[0; 16]);
        let (k2, c2) = epoch_key(&[1; 32], &[1; 16]);
        assert_ne!(*k1, *k2);
        assert_ne!(c1, c2);
    }
}
