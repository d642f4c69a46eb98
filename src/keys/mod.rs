//! Root keys, key versions and the keyring that derives purpose and epoch keys.

mod file;
mod keyring;
#[cfg(feature = "pkcs11")]
mod pkcs11;
mod provider;
pub(crate) mod subject;

pub(crate) use file::KeyringFile;
pub(crate) use keyring::forget_thread_epochs;

pub use keyring::{KeyState, Keyring, KeyringBuilder};
#[cfg(feature = "pkcs11")]
pub use pkcs11::{DEFAULT_PKCS11_MODULE, PinSource, Pkcs11Kek, Pkcs11KekBuilder};
pub use provider::{EnvKek, FileKek, KeyProvider, ProviderError, ProviderErrorKind};
pub use subject::{
    FileSubjectKeys, MemorySubjectKeys, SubjectKeyFuture, SubjectKeyId, SubjectKeyScope,
    SubjectKeyStore, SubjectKeys,
};

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::error::KeyError;

/// The version of a root key, stored in every envelope. Never 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyVersion(NonZeroU32);

impl KeyVersion {
    /// A key version; `None` for 0.
    pub const fn new(v: u32) -> Option<Self> {
        match NonZeroU32::new(v) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }
    /// The numeric version.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyVersion({})", self.0)
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A 32-byte root key. Zeroized on drop, never printed, never cloned.
///
/// ```
/// use fieldseal::RootKey;
/// let k = RootKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
/// assert_eq!(format!("{k:?}"), "RootKey([REDACTED])");
/// assert!(RootKey::from_base64("AAEC").is_err());
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct RootKey(Zeroizing<[u8; 32]>);

impl RootKey {
    /// A fresh random key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`Error::Random`](crate::Error::Random) if the random source fails.
    pub fn generate() -> Result<Self, crate::Error> {
        let mut k = Zeroizing::new([0u8; 32]);
        // Straight from the operating system (getrandom), not a user-space generator: long-lived
        // keys must not depend on a generator state that fork or snapshots could duplicate.
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, k.as_mut())
            .map_err(|_| crate::Error::Random)?;
        Ok(Self(k))
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A key from a slice.
    ///
    /// # Errors
    /// [`KeyError::InvalidLength`] unless the slice is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, crate::Error> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::InvalidLength)?;
        Ok(Self::from_bytes(arr))
    }

    /// A key from standard base64 (with padding), surrounding whitespace ignored.
    ///
    /// # Errors
    /// [`KeyError::InvalidEncoding`] or [`KeyError::InvalidLength`].
    pub fn from_base64(text: &str) -> Result<Self, crate::Error> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::InvalidEncoding)?,
        );
        Self::from_slice(&bytes)
    }

    /// The key encoded as standard base64, for writing it to a key store. Every call site is a
    /// place where key material leaves the process: keep them few.
    pub fn dangerous_to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

/// The directory `path` is in (`.` for a bare file name): where a key file's temporary file
/// goes, and the directory synced after a key file is created or replaced.
pub(crate) fn parent_dir(path: &std::path::Path) -> &std::path::Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn key_files_directory() {
        assert_eq!(parent_dir(Path::new("a/b/keyring")), Path::new("a/b"));
        assert_eq!(parent_dir(Path::new("/etc/keyring")), Path::new("/etc"));
        assert_eq!(parent_dir(Path::new("keyring")), Path::new("."));
    }

    #[test]
    fn key_versions_print_their_number() {
        let v = KeyVersion::new(42).unwrap_or_else(|| unreachable!("non-zero"));
        assert_eq!(format!("{v}"), "42");
        assert_eq!(format!("{v:?}"), "KeyVersion(42)");
        assert_eq!(v.get(), 42);
        assert!(KeyVersion::new(0).is_none());
    }

    #[test]
    fn root_key_base64_known_answer_and_round_trip() {
        // Bytes 0, 1, …, 31 (the example in `RootKey`'s documentation).
        let text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
        let k = RootKey::from_bytes(bytes);
        assert_eq!(k.dangerous_to_base64().as_str(), text);
        assert_eq!(format!("{k:?}"), "RootKey([REDACTED])");
        let back = RootKey::from_base64(&format!("  {text}\n")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.bytes(), &bytes);
    }
}
