//! Cryptographic core: envelope encoding, AEAD, key derivation and commitment.
//!
//! This layer knows nothing of policy. It turns canonical plaintext bytes plus a context into an
//! envelope and back.

pub(crate) mod aead;
pub(crate) mod envelope;
pub(crate) mod kdf;
pub(crate) mod wipe;

pub use envelope::{EnvelopeInfo, MAX_ENVELOPE_LEN, TEXT_PREFIX};
