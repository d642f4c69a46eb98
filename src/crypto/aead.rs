//! AES-256-GCM under epoch keys, with the associated data assembled from header and context.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use aes_gcm_010::aead::AeadInPlace as _;
use subtle::ConstantTimeEq;

use super::kdf::{self, COMMITMENT_LEN};

const _: () = assert!(COMMITMENT_LEN == 16, "a commitment is two 64-bit words");

/// A commitment as two little-endian 64-bit words, for a constant-time comparison.
fn words(c: &[u8; COMMITMENT_LEN]) -> [u64; 2] {
    let (lo, hi) = c.split_at(8);
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    [word(lo), word(hi)]
}

/// Length of the AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of an epoch salt.
pub(crate) const SALT_LEN: usize = 16;

/// Messages shorter than this go through [`ShortGcm`], longer ones through aes-gcm 0.11.
///
/// Both are AES-256-GCM from RustCrypto and give the same bytes; they differ in speed. aes 0.9
/// (under aes-gcm 0.11) runs AES on VAES-512 where the CPU has it, which pays a fixed cost per
/// message of about 130 ns (2 × 15 round keys broadcast) and wins from about 384 bytes up; aes
/// 0.8 (under aes-gcm 0.10) uses AES-NI alone. Measured on AMD EPYC with 127 bytes of associated
/// data: 32 B 296 vs 162 ns, 384 B 400 vs 400 ns, 4 KiB 1.94 vs 2.92 µs. On a CPU without
/// VAES both use AES-NI and the split changes nothing but the code path.
pub(crate) const SHORT_MAX: usize = 384;

/// AES-256-GCM of aes-gcm 0.10 over the encrypt-only AES key schedule of aes 0.8 (no decryption
/// round keys: GCM only encrypts blocks).
type ShortGcm = aes_gcm_010::AesGcm<aes_08::Aes256Enc, aes_gcm_010::aead::consts::U12>;

/// A prepared AES-256-GCM cipher for one (key version, purpose, kind, subject key, epoch salt),
/// with the commitment to its key. Both prepared forms of the key (see [`SHORT_MAX`]) have their
/// round keys zeroized on drop by `aes` (0.9 and 0.8) and their GHASH keys by `polyval`.
pub(crate) struct EpochKey {
    gcm: Gcm,
    commitment: [u8; COMMITMENT_LEN],
    salt: [u8; SALT_LEN],
}

/// One AES-256-GCM key prepared for both implementations; each message goes to one of them by
/// its length ([`SHORT_MAX`]).
struct Gcm {
    long: Aes256Gcm,
    short: ShortGcm,
}

impl Gcm {
    fn new(key: &[u8; 32]) -> Self {
        Self {
            long: Aes256Gcm::new(key.into()),
            short: <ShortGcm as aes_gcm_010::KeyInit>::new(key.into()),
        }
    }

    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        if buf.len() < SHORT_MAX {
            return self
                .short
                .encrypt_in_place_detached(nonce.into(), aad, buf)
                .map(Into::into)
                .map_err(|_| ());
        }
        self.long
            .encrypt_inout_detached(nonce.into(), aad, buf.into())
            .map(Into::into)
            .map_err(|_| ())
    }

    fn open_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), ()> {
        let nonce = <&[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| ())?;
        let tag = <&[u8; TAG_LEN]>::try_from(tag).map_err(|_| ())?;
        if buf.len() < SHORT_MAX {
            return self
                .short
                .decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
                .map_err(|_| ());
        }
        self.long
            .decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
            .map_err(|_| ())
    }
}

impl EpochKey {
    pub(crate) fn derive(purpose_key: &[u8; 32], salt: [u8; SALT_LEN]) -> Self {
        let (key, commitment) = kdf::epoch_key(purpose_key, &salt);
        Self::prepared(&key, commitment, salt)
    }

    /// The epoch key of an envelope sealed under a subject key (see
    /// [`kdf::subject_epoch_key`]).
    pub(crate) fn derive_for_subject(
        purpose_key: &[u8; 32],
        subject_secret: &[u8; 32],
        salt: [u8; SALT_LEN],
    ) -> Self {
        let (key, commitment) = kdf::subject_epoch_key(purpose_key, subject_secret, &salt);
        Self::prepared(&key, commitment, salt)
    }

    fn prepared(key: &[u8; 32], commitment: [u8; COMMITMENT_LEN], salt: [u8; SALT_LEN]) -> Self {
        Self {
            gcm: Gcm::new(key),
            commitment,
            salt,
        }
    }

    pub(crate) fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    pub(crate) fn commitment(&self) -> &[u8; COMMITMENT_LEN] {
        &self.commitment
    }

    /// Constant-time comparison of a stored commitment with this key's, as two 64-bit words
    /// (`subtle` compares a byte slice with one optimization barrier per byte, a word with
    /// one). A stored value of another length never matches.
    pub(crate) fn commits_to(&self, stored: &[u8]) -> bool {
        let Ok(stored) = <&[u8; COMMITMENT_LEN]>::try_from(stored) else {
            return false;
        };
        words(&self.commitment).ct_eq(&words(stored)).into()
    }

    /// Encrypts `buf` in place under the complete associated data `aad` (header ‖ context);
    /// returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        self.gcm.seal_in_place(nonce, aad, buf)
    }

    /// Decrypts `buf` in place under the complete associated data `aad`, verifying `tag`.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), ()> {
        self.gcm.open_in_place(nonce, aad, buf, tag)
    }
}

/// Raw AES-256-GCM with an explicit nonce, by the code path sealing uses (for known-answer
/// tests): returns `ciphertext || tag`.
pub(crate) fn aes256gcm_encrypt(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    match Gcm::new(key).seal_in_place(nonce, aad, &mut buf) {
        Ok(tag) => {
            buf.extend_from_slice(&tag);
            buf
        }
        Err(()) => Vec::new(),
    }
}

/// Raw AES-256-GCM decryption of `ciphertext || tag` by the code path revealing uses, for
/// known-answer tests.
pub(crate) fn aes256gcm_decrypt(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Option<Vec<u8>> {
    let split = ciphertext_and_tag.len().checked_sub(TAG_LEN)?;
    let (ct, tag) = ciphertext_and_tag.split_at(split);
    let mut buf = ct.to_vec();
    Gcm::new(key)
        .open_in_place(nonce, aad, &mut buf, tag)
        .ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Seals with one implementation alone, as `Gcm::seal_in_place` would for its length.
    fn seal_by(gcm: &Gcm, short: bool, nonce: &[u8; NONCE_LEN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
        let mut buf = pt.to_vec();
        let tag: Result<[u8; TAG_LEN], ()> = if short {
            gcm.short
                .encrypt_in_place_detached(nonce.into(), aad, &mut buf)
                .map(Into::into)
                .map_err(|_| ())
        } else {
            gcm.long
                .encrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into())
                .map(Into::into)
                .map_err(|_| ())
        };
        let tag = tag.unwrap_or_else(|()| panic!("seal of {} bytes", pt.len()));
        buf.extend_from_slice(&tag);
        buf
    }

    proptest! {
        /// The two implementations are one cipher: the same bytes for every length on both sides
        /// of `SHORT_MAX`, and whichever path a length takes opens what the other sealed.
        #[test]
        fn both_implementations_give_the_same_bytes(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; NONCE_LEN]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..200),
            pt in proptest::collection::vec(any::<u8>(), 0..2 * SHORT_MAX),
        ) {
            let gcm = Gcm::new(&key);
            let short = seal_by(&gcm, true, &nonce, &aad, &pt);
            let long = seal_by(&gcm, false, &nonce, &aad, &pt);
            prop_assert_eq!(&short, &long);
            prop_assert_eq!(&aes256gcm_encrypt(&key, &nonce, &aad, &pt), &short);
            prop_assert_eq!(aes256gcm_decrypt(&key, &nonce, &aad, &long), Some(pt.clone()));
            // Any flipped bit fails on the path its length takes.
            let mut bad = short.clone();
            let at = bad.len() / 2;
            bad[at] ^= 1;
            prop_assert_eq!(aes256gcm_decrypt(&key, &nonce, &aad, &bad), None);
        }
    }

    /// Fails to compile if a dependency's zeroize-on-drop is switched off (aes-gcm 0.10 does not
    /// forward it to aes 0.8: Cargo.toml names aes 0.8 for that alone).
    #[test]
    fn both_key_schedules_are_wiped_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>() {}
        wiped::<aes_08::Aes256Enc>();
        wiped::<Aes256Gcm>();
    }

    /// A key commits to its own commitment only: any flipped bit in either word, or any other
    /// length, is refused.
    #[test]
    fn commitments_match_exactly() {
        let key = EpochKey::derive(&[4; 32], [5; SALT_LEN]);
        let own = *key.commitment();
        assert!(key.commits_to(&own));
        for i in 0..COMMITMENT_LEN {
            for bit in 0..8 {
                let mut other = own;
                other[i] ^= 1 << bit;
                assert!(!key.commits_to(&other), "byte {i} bit {bit}");
            }
        }
        assert!(!key.commits_to(&own[..COMMITMENT_LEN - 1]));
        assert!(!key.commits_to(&[own.as_slice(), &[0]].concat()));
        assert!(!key.commits_to(&[]));
    }

    #[test]
    fn lengths_at_the_split_round_trip_and_refuse_tampering() {
        let key = [9u8; 32];
        let gcm = Gcm::new(&key);
        for len in [0, 1, SHORT_MAX - 1, SHORT_MAX, SHORT_MAX + 1, 4096] {
            let pt = vec![0xA5u8; len];
            let mut buf = pt.clone();
            let nonce = [len as u8; NONCE_LEN];
            let tag = gcm
                .seal_in_place(&nonce, b"aad", &mut buf)
                .unwrap_or_else(|()| panic!("seal {len}"));
            assert!(len == 0 || buf != pt, "{len}: encrypted");
            let sealed = buf.clone();
            assert_eq!(gcm.open_in_place(&nonce, b"aad", &mut buf, &tag), Ok(()));
            assert_eq!(buf, pt, "{len}");
            let mut bad_tag = tag;
            bad_tag[0] ^= 1;
            let mut buf = sealed.clone();
            assert_eq!(
                gcm.open_in_place(&nonce, b"aad", &mut buf, &bad_tag),
                Err(())
            );
            let mut buf = sealed.clone();
            assert_eq!(gcm.open_in_place(&nonce, b"aae", &mut buf, &tag), Err(()));
            // Short nonces and tags are refused, not padded.
            let mut buf = sealed.clone();
            assert_eq!(
                gcm.open_in_place(&nonce[1..], b"aad", &mut buf, &tag),
                Err(())
            );
            assert_eq!(
                gcm.open_in_place(&nonce, b"aad", &mut buf, &tag[1..]),
                Err(())
            );
        }
    }
}
