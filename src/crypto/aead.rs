//! AES-256-GCM under epoch keys, with the associated data assembled from header and context.

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use subtle::ConstantTimeEq;

use super::kdf::{self, COMMITMENT_LEN};

/// Length of the AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of an epoch salt.
pub(crate) const SALT_LEN: usize = 16;

/// A prepared AES-256-GCM cipher for one (key version, purpose, kind, subject key, epoch salt),
/// with the commitment to its key. The cipher's round keys are zeroized on drop by `aes`.
pub(crate) struct EpochKey {
    cipher: Aes256Gcm,
    commitment: [u8; COMMITMENT_LEN],
    salt: [u8; SALT_LEN],
}

impl EpochKey {
    pub(crate) fn derive(purpose_key: &[u8; 32], salt: [u8; SALT_LEN]) -> Self {
        let (key, commitment) = kdf::epoch_key(purpose_key, &salt);
        Self {
            cipher: Aes256Gcm::new((&*key).into()),
            commitment,
            salt,
        }
    }

    /// The epoch key of an envelope sealed under a subject key (see
    /// [`kdf::subject_epoch_key`]).
    pub(crate) fn derive_for_subject(
        purpose_key: &[u8; 32],
        subject_secret: &[u8; 32],
        salt: [u8; SALT_LEN],
    ) -> Self {
        let (key, commitment) = kdf::subject_epoch_key(purpose_key, subject_secret, &salt);
        Self {
            cipher: Aes256Gcm::new((&*key).into()),
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

    /// Constant-time comparison of a stored commitment with this key's.
    pub(crate) fn commits_to(&self, stored: &[u8]) -> bool {
        self.commitment.ct_eq(stored).into()
    }

    /// Encrypts `buf` in place under the complete associated data `aad` (header ‖ context);
    /// returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        self.cipher
            .encrypt_inout_detached(nonce.into(), aad, buf.into())
            .map(Into::into)
            .map_err(|_| ())
    }

    /// Decrypts `buf` in place under the complete associated data `aad`, verifying `tag`.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), ()> {
        let nonce = <&Nonce<Aes256Gcm>>::try_from(nonce).map_err(|_| ())?;
        let tag = <&Tag<Aes256Gcm>>::try_from(tag).map_err(|_| ())?;
        self.cipher
            .decrypt_inout_detached(nonce, aad, buf.into(), tag)
            .map_err(|_| ())
    }
}

/// Raw AES-256-GCM with an explicit nonce, for known-answer tests: returns `ciphertext || tag`.
pub(crate) fn aes256gcm_encrypt(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut buf = plaintext.to_vec();
    match cipher.encrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into()) {
        Ok(tag) => {
            buf.extend_from_slice(&tag);
            buf
        }
        Err(_) => Vec::new(),
    }
}

/// Raw AES-256-GCM decryption of `ciphertext || tag`, for known-answer tests.
pub(crate) fn aes256gcm_decrypt(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Option<Vec<u8>> {
    let split = ciphertext_and_tag.len().checked_sub(TAG_LEN)?;
    let (ct, tag) = ciphertext_and_tag.split_at(split);
    let cipher = Aes256Gcm::new(key.into());
    let mut buf = ct.to_vec();
    let tag = <&Tag<Aes256Gcm>>::try_from(tag).ok()?;
    cipher
        .decrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into(), tag)
        .ok()?;
    Some(buf)
}
