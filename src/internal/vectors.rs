//! Raw primitives exactly as the envelope code uses them, for known-answer (Wycheproof) tests.

use crate::crypto::{aead, kdf};

/// AES-256-GCM with a 96-bit nonce: `ciphertext || tag`.
pub fn aes256gcm_encrypt(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    aead::aes256gcm_encrypt(key, nonce, aad, pt)
}

/// AES-256-GCM decryption of `ciphertext || tag`; `None` if it does not authenticate.
pub fn aes256gcm_decrypt(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ct_and_tag: &[u8],
) -> Option<Vec<u8>> {
    aead::aes256gcm_decrypt(key, nonce, aad, ct_and_tag)
}

/// HKDF-SHA256; `None` if `len` exceeds 255 * 32.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut okm = vec![0u8; len];
    kdf::hkdf_sha256(salt, ikm, info, &mut okm).ok()?;
    Some(okm)
}

/// HMAC-SHA256.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    kdf::hmac_sha256(key, msg)
}

/// Constant-time check of a (possibly truncated) HMAC-SHA256 tag, as the crate compares MACs.
pub fn hmac_sha256_verify(key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let full = kdf::hmac_sha256(key, msg);
    !tag.is_empty() && tag.len() <= full.len() && bool::from(full[..tag.len()].ct_eq(tag))
}
