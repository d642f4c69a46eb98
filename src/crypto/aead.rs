//! AES-256-GCM under epoch keys, with the associated data assembled from header and context.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
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
            cipher: Aes256Gcm::new(key.as_ref().into()),
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

    /// Encrypts `buf` in place; returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        header: &[u8],
        context: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        with_aad(header, context, |aad| {
            self.cipher
                .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
                .map(Into::into)
                .map_err(|_| ())
        })
    }

    /// Decrypts `buf` in place, verifying `tag`.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8],
        header: &[u8],
        context: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), ()> {
        if nonce.len() != NONCE_LEN || tag.len() != TAG_LEN {
            return Err(());
        }
        with_aad(header, context, |aad| {
            self.cipher
                .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
                .map_err(|_| ())
        })
    }
}

/// Runs `f` on `header || context`, assembled on the stack when small (the common case).
fn with_aad<R>(header: &[u8], context: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const STACK: usize = 384;
    let len = header.len() + context.len();
    if len <= STACK {
        let mut buf = [0u8; STACK];
        buf[..header.len()].copy_from_slice(header);
        buf[header.len()..len].copy_from_slice(context);
        f(&buf[..len])
    } else {
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(header);
        v.extend_from_slice(context);
        f(&v)
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
    match cipher.encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut buf) {
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
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .ok()?;
    Some(buf)
}
