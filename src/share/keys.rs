//! Recipient key pairs (X25519, as DHKEM(X25519, HKDF-SHA256) of RFC 9180 uses them).

use std::fmt;

use hpke::kem::{Kem as _, X25519HkdfSha256};
use hpke::{Deserializable as _, Serializable as _};
use zeroize::Zeroizing;

use crate::error::{Error, KeyError};
use crate::random::{RandomSource, SystemRandom};

pub(crate) type Kem = X25519HkdfSha256;

/// Length of a recipient key (public or private) in bytes.
pub const RECIPIENT_KEY_LEN: usize = 32;

/// A recipient's public key: where [`Guard::share`](crate::Guard::share) encrypts to.
///
/// # Security
/// The key authenticates nothing by itself: the guard encrypts to whatever key the
/// application hands it together with the recipient's manifest name. Binding the name to the
/// right key (a key the recipient gave you over an authenticated channel, pinned in your
/// configuration) is the application's job; a wrong key sends the data to whoever holds its
/// private half.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientPublicKey {
    key: <Kem as hpke::Kem>::PublicKey,
    bytes: [u8; RECIPIENT_KEY_LEN],
}

impl RecipientPublicKey {
    /// A public key from its 32-byte X25519 encoding.
    ///
    /// # Errors
    /// [`KeyError::InvalidPublicKey`] for a point no shared secret can be agreed with (the
    /// all-zero key and the other low-order points): a trial encapsulation is made, so this
    /// costs about as much as one share's key agreement.
    pub fn from_bytes(bytes: [u8; RECIPIENT_KEY_LEN]) -> Result<Self, Error> {
        let key = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| KeyError::InvalidPublicKey)?;
        let pk = Self { key, bytes };
        // A low-order point makes the agreement's output all zeros, which HPKE refuses.
        let mut ikm = Zeroizing::new([0u8; 32]);
        SystemRandom.fill(ikm.as_mut())?;
        super::hpke_seal(&pk, &ikm, b"", b"", b"")?;
        Ok(pk)
    }

    /// A public key from a slice.
    ///
    /// # Errors
    /// [`KeyError::InvalidLength`] unless it is 32 bytes, else as
    /// [`RecipientPublicKey::from_bytes`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; RECIPIENT_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::InvalidLength)?;
        Self::from_bytes(arr)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; RECIPIENT_KEY_LEN] {
        self.bytes
    }

    pub(crate) fn hpke(&self) -> &<Kem as hpke::Kem>::PublicKey {
        &self.key
    }
}

impl fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public, but a fingerprint is enough to tell keys apart in logs.
        write!(f, "RecipientPublicKey(")?;
        for b in &self.bytes[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A recipient's private key: opens [`SharedPackage`](crate::SharedPackage)s with
/// [`open_shared`](crate::open_shared). Held by the recipient, never by the sharing service.
///
/// Not `Clone`, no `Debug` of its bytes, wiped on drop (the X25519 secret inside zeroizes
/// itself).
pub struct RecipientPrivateKey {
    key: <Kem as hpke::Kem>::PrivateKey,
}

impl RecipientPrivateKey {
    /// A new random key pair's private half (32 bytes from the operating system's generator,
    /// through RFC 9180's `DeriveKeyPair`).
    ///
    /// # Errors
    /// [`Error::Random`] if no randomness is available.
    pub fn generate() -> Result<Self, Error> {
        let mut ikm = Zeroizing::new([0u8; 32]);
        // Straight from the operating system: a long-lived key.
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, ikm.as_mut())
            .map_err(|_| Error::Random)?;
        let (key, _) = Kem::derive_keypair(ikm.as_ref());
        Ok(Self { key })
    }

    /// A private key from its 32-byte X25519 encoding (as [`expose_secret`] returns it).
    ///
    /// [`expose_secret`]: RecipientPrivateKey::expose_secret
    ///
    /// # Errors
    /// [`KeyError::InvalidLength`] if the encoding is refused.
    pub fn from_bytes(bytes: Zeroizing<[u8; RECIPIENT_KEY_LEN]>) -> Result<Self, Error> {
        let key = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes.as_ref())
            .map_err(|_| KeyError::InvalidLength)?;
        Ok(Self { key })
    }

    /// The public half, to hand to the sharing service.
    pub fn public_key(&self) -> RecipientPublicKey {
        let key = Kem::sk_to_pk(&self.key);
        let mut bytes = [0u8; RECIPIENT_KEY_LEN];
        bytes.copy_from_slice(&key.to_bytes());
        RecipientPublicKey { key, bytes }
    }

    /// The 32-byte encoding, for storing the key (encrypted) at the recipient.
    pub fn expose_secret(&self) -> Zeroizing<[u8; RECIPIENT_KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; RECIPIENT_KEY_LEN]);
        let mut bytes = self.key.to_bytes();
        out.copy_from_slice(&bytes);
        zeroize::Zeroize::zeroize(bytes.as_mut_slice());
        out
    }

    pub(crate) fn hpke(&self) -> &<Kem as hpke::Kem>::PrivateKey {
        &self.key
    }
}

impl fmt::Debug for RecipientPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecipientPrivateKey([REDACTED])")
    }
}
