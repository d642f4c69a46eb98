//! Key providers: the keepers of a key-encryption key (KEK) that wrap and unwrap key material.
//!
//! A provider is called when a keyring file is created, loaded or re-keyed, never on the seal or
//! reveal path: the keyring unwraps its file key once and keeps derived keys in memory.
//!
//! # A cloud KMS is a small implementation
//!
//! Any service that encrypts and decrypts a few bytes under a key it keeps (AWS KMS `Encrypt` /
//! `Decrypt` with an encryption context, GCP KMS with additional authenticated data, Vault
//! Transit with a derived context) fits the trait. The KMS client below is a stand-in; with a
//! real SDK, `encrypt` and `decrypt` are its calls (blocking ones, or `block_on` of async ones:
//! the provider is called only on load and rotation).
//!
//! ```
//! use fieldseal::{KeyProvider, ProviderError, ProviderErrorKind};
//! use zeroize::Zeroizing;
//!
//! /// Stand-in for a KMS client: `encrypt` / `decrypt` under a named key, binding `context`.
//! #[derive(Debug)]
//! struct FakeKms;
//! impl FakeKms {
//!     fn encrypt(&self, key_id: &str, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
//!         let mut out = context.to_vec();
//!         out.extend(plaintext.iter().map(|b| b ^ 0x5a));
//!         let _ = key_id;
//!         out
//!     }
//!     fn decrypt(&self, key_id: &str, blob: &[u8], context: &[u8]) -> Option<Vec<u8>> {
//!         let _ = key_id;
//!         let body = blob.strip_prefix(context)?;
//!         Some(body.iter().map(|b| b ^ 0x5a).collect())
//!     }
//! }
//!
//! /// The whole provider: an identity and two calls.
//! #[derive(Debug)]
//! struct KmsProvider {
//!     client: FakeKms,
//!     key_id: String,
//! }
//!
//! impl KeyProvider for KmsProvider {
//!     fn id(&self) -> String {
//!         format!("kms:{}", self.key_id)
//!     }
//!     fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>, ProviderError> {
//!         Ok(self.client.encrypt(&self.key_id, key, aad))
//!     }
//!     fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
//!         self.client
//!             .decrypt(&self.key_id, wrapped, aad)
//!             .map(Zeroizing::new)
//!             .ok_or(ProviderError::new(ProviderErrorKind::Unwrap))
//!     }
//! }
//!
//! let kms = KmsProvider { client: FakeKms, key_id: "alias/fieldseal".into() };
//! let wrapped = kms.wrap(&[7; 32], b"ctx")?;
//! assert_eq!(kms.unwrap(&wrapped, b"ctx")?.as_slice(), &[7; 32]);
//! assert!(kms.unwrap(&wrapped, b"other").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Keeps a key-encryption key and wraps or unwraps key material under it.
///
/// Implementations must authenticate: `unwrap` of bytes not produced by `wrap` with the same
/// KEK and the same `aad` fails. The KEK itself never leaves the provider.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// A stable, non-secret identity of the KEK (for example `file:<fingerprint>` or
    /// `pkcs11:<token>/<key label>`). A keyring file records it, so loading it with another
    /// provider is a typed error ([`ProviderErrorKind::WrongProvider`]) instead of garbage.
    fn id(&self) -> String;

    /// Encrypts `key` under the KEK, binding `aad`.
    ///
    /// # Errors
    /// A [`ProviderError`] if the KEK is unavailable or the operation fails.
    fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>, ProviderError>;

    /// Decrypts what [`KeyProvider::wrap`] returned for the same `aad`.
    ///
    /// # Errors
    /// [`ProviderErrorKind::Unwrap`] if `wrapped` does not authenticate under this KEK and `aad`
    /// (another KEK, tampered bytes); other kinds if the KEK is unavailable.
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError>;
}

/// What went wrong in a key provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The KEK's file, variable, library or token was not found.
    NotFound,
    /// A KEK file is readable by its group or others; it must be mode `0600` or stricter.
    Permissions,
    /// KEK material has the wrong length or encoding (a KEK is 32 bytes).
    BadKeyMaterial,
    /// Wrapped bytes did not authenticate under this KEK (another KEK, or tampered bytes).
    Unwrap,
    /// The key material was written under another provider (its identity differs).
    WrongProvider,
    /// Logging in to a token failed (wrong PIN, locked).
    Login,
    /// The token, library or service failed.
    Device,
    /// I/O failed while reading or writing a key file.
    Io,
}

/// A key provider failed. Carries no key material.
#[derive(Debug)]
pub struct ProviderError {
    kind: ProviderErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProviderError {
    /// An error of `kind`.
    pub fn new(kind: ProviderErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source` (which must not carry key material or a PIN).
    pub fn with_source(
        kind: ProviderErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ProviderErrorKind {
        self.kind
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ProviderErrorKind::NotFound => "key-encryption key not found",
            ProviderErrorKind::Permissions => {
                "key-encryption key file is readable by group or others (needs mode 0600)"
            }
            ProviderErrorKind::BadKeyMaterial => "key-encryption key must be 32 bytes",
            ProviderErrorKind::Unwrap => {
                "wrapped key did not authenticate under this key-encryption key"
            }
            ProviderErrorKind::WrongProvider => {
                "key material was written under another key provider"
            }
            ProviderErrorKind::Login => "login to the key token failed",
            ProviderErrorKind::Device => "key token or service failed",
            ProviderErrorKind::Io => "key file I/O failed",
        })
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Domain of the fingerprint that names a local KEK without revealing it.
const FINGERPRINT_DOMAIN: &[u8] = b"fieldseal/v1/kek-fingerprint";

/// A KEK held in process memory (loaded from a file or the environment): AES-256-GCM with a
/// random 96-bit nonce; wrapped = nonce ‖ ciphertext ‖ tag.
struct LocalKek {
    cipher: Aes256Gcm,
    fingerprint: String,
}

impl LocalKek {
    fn new(key: &[u8; 32], scheme: &str) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(FINGERPRINT_DOMAIN);
        let fp = mac.finalize().into_bytes();
        let hex: String = fp[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            cipher: Aes256Gcm::new(key.into()),
            fingerprint: format!("{scheme}:{hex}"),
        }
    }

    fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let mut nonce = [0u8; 12];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut nonce)
            .map_err(|_| ProviderError::new(ProviderErrorKind::Device))?;
        let mut out = Vec::with_capacity(12 + key.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key);
        let tag = self
            .cipher
            .encrypt_inout_detached((&nonce).into(), aad, out[12..].as_mut().into())
            .map_err(|_| ProviderError::new(ProviderErrorKind::BadKeyMaterial))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let fail = || ProviderError::new(ProviderErrorKind::Unwrap);
        if wrapped.len() < 12 + 16 {
            return Err(fail());
        }
        let (nonce, rest) = wrapped.split_at(12);
        let (body, tag) = rest.split_at(rest.len() - 16);
        let nonce = <&Nonce<Aes256Gcm>>::try_from(nonce).map_err(|_| fail())?;
        let tag = <&Tag<Aes256Gcm>>::try_from(tag).map_err(|_| fail())?;
        let mut out = Zeroizing::new(body.to_vec());
        self.cipher
            .decrypt_inout_detached(nonce, aad, out.as_mut_slice().into(), tag)
            .map_err(|_| fail())?;
        Ok(out)
    }
}

/// A KEK of 32 random bytes in a file that only its owner can read.
///
/// ```
/// use fieldseal::FileKek;
/// # let dir = std::env::temp_dir().join(format!("fieldseal-kek-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("kek");
/// let kek = FileKek::create(&path)?; // mode 0600, refuses to overwrite
/// let again = FileKek::open(&path)?;
/// use fieldseal::KeyProvider;
/// assert_eq!(kek.id(), again.id());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileKek {
    kek: LocalKek,
    path: PathBuf,
}

impl fmt::Debug for FileKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKek")
            .field("path", &self.path)
            .field("id", &self.kek.fingerprint)
            .finish_non_exhaustive()
    }
}

impl FileKek {
    /// Writes 32 fresh random bytes to a new file at `path` (mode `0600` on Unix) and opens it.
    ///
    /// # Errors
    /// [`ProviderErrorKind::Io`] if the file exists or cannot be written.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, ProviderError> {
        use std::io::Write as _;
        let path = path.as_ref();
        let mut key = Zeroizing::new([0u8; 32]);
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, key.as_mut())
            .map_err(|_| ProviderError::new(ProviderErrorKind::Device))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io_error)?;
        f.write_all(key.as_ref()).map_err(io_error)?;
        f.sync_all().map_err(io_error)?;
        std::fs::File::open(super::parent_dir(path))
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
        Ok(Self {
            kek: LocalKek::new(&key, "file"),
            path: path.to_path_buf(),
        })
    }

    /// Opens the KEK file at `path`.
    ///
    /// # Errors
    /// [`ProviderErrorKind::NotFound`], [`ProviderErrorKind::Permissions`] if the file is
    /// readable or writable by its group or others, [`ProviderErrorKind::BadKeyMaterial`] unless
    /// it holds exactly 32 bytes, [`ProviderErrorKind::Io`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ProviderError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(io_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(ProviderError::new(ProviderErrorKind::Permissions));
            }
        }
        if meta.len() != 32 {
            return Err(ProviderError::new(ProviderErrorKind::BadKeyMaterial));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io_error)?);
        let key: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ProviderError::new(ProviderErrorKind::BadKeyMaterial))?;
        Ok(Self {
            kek: LocalKek::new(key, "file"),
            path: path.to_path_buf(),
        })
    }
}

impl FileKek {
    /// A file KEK from its bytes, not backed by a file (the fuzzing entry points).
    pub(crate) fn from_key_for_tests(key: &[u8; 32]) -> Self {
        Self {
            kek: LocalKek::new(key, "file"),
            path: PathBuf::new(),
        }
    }
}

impl KeyProvider for FileKek {
    fn id(&self) -> String {
        self.kek.fingerprint.clone()
    }
    fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>, ProviderError> {
        self.kek.wrap(key, aad)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        self.kek.unwrap(wrapped, aad)
    }
}

/// A KEK from an environment variable holding 32 bytes in standard base64 (for containers whose
/// secrets arrive as variables).
///
/// ```no_run
/// use fieldseal::{EnvKek, KeyProvider};
/// let kek = EnvKek::from_var("FIELDSEAL_KEK")?;
/// assert!(kek.id().starts_with("env:"));
/// # Ok::<(), fieldseal::ProviderError>(())
/// ```
pub struct EnvKek {
    kek: LocalKek,
}

impl fmt::Debug for EnvKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvKek")
            .field("id", &self.kek.fingerprint)
            .finish_non_exhaustive()
    }
}

impl EnvKek {
    /// Reads the KEK from variable `name`.
    ///
    /// # Errors
    /// [`ProviderErrorKind::NotFound`] if unset, [`ProviderErrorKind::BadKeyMaterial`] unless it
    /// is base64 of exactly 32 bytes.
    pub fn from_var(name: &str) -> Result<Self, ProviderError> {
        let text = Zeroizing::new(
            std::env::var(name).map_err(|_| ProviderError::new(ProviderErrorKind::NotFound))?,
        );
        Self::from_base64(&text)
    }

    /// The KEK from the variable's text: base64 of 32 bytes, surrounding whitespace ignored.
    fn from_base64(text: &str) -> Result<Self, ProviderError> {
        use base64::Engine as _;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| ProviderError::new(ProviderErrorKind::BadKeyMaterial))?,
        );
        let key: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ProviderError::new(ProviderErrorKind::BadKeyMaterial))?;
        Ok(Self {
            kek: LocalKek::new(key, "env"),
        })
    }
}

impl KeyProvider for EnvKek {
    fn id(&self) -> String {
        self.kek.fingerprint.clone()
    }
    fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>, ProviderError> {
        self.kek.wrap(key, aad)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        self.kek.unwrap(wrapped, aad)
    }
}

fn io_error(e: std::io::Error) -> ProviderError {
    let kind = if e.kind() == std::io::ErrorKind::NotFound {
        ProviderErrorKind::NotFound
    } else {
        ProviderErrorKind::Io
    };
    ProviderError::with_source(kind, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_kek_round_trip_and_failures() {
        let a = LocalKek::new(&[1; 32], "file");
        let b = LocalKek::new(&[2; 32], "file");
        assert_ne!(a.fingerprint, b.fingerprint);
        let w = a.wrap(&[9; 32], b"aad").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.len(), 12 + 32 + 16);
        assert_eq!(
            a.unwrap(&w, b"aad").map(|k| k.to_vec()).ok(),
            Some(vec![9; 32])
        );
        for (kek, aad) in [(&b, &b"aad"[..]), (&a, &b"other"[..])] {
            assert_eq!(
                kek.unwrap(&w, aad).err().map(|e| e.kind()),
                Some(ProviderErrorKind::Unwrap)
            );
        }
        let mut flipped = w.clone();
        flipped[20] ^= 1;
        assert!(a.unwrap(&flipped, b"aad").is_err());
        assert!(a.unwrap(&w[..27], b"aad").is_err());
        // Nonce and tag around nothing: the shortest wrapping, and it round-trips.
        let empty = a.wrap(&[], b"aad").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty.len(), 28);
        assert_eq!(a.unwrap(&empty, b"aad").map(|k| k.len()).ok(), Some(0));
    }

    #[test]
    fn provider_errors_say_what_failed_and_keep_their_cause() {
        use ProviderErrorKind as K;
        for (kind, text) in [
            (K::NotFound, "key-encryption key not found"),
            (
                K::Permissions,
                "key-encryption key file is readable by group or others (needs mode 0600)",
            ),
            (K::BadKeyMaterial, "key-encryption key must be 32 bytes"),
            (
                K::Unwrap,
                "wrapped key did not authenticate under this key-encryption key",
            ),
            (
                K::WrongProvider,
                "key material was written under another key provider",
            ),
            (K::Login, "login to the key token failed"),
            (K::Device, "key token or service failed"),
            (K::Io, "key file I/O failed"),
        ] {
            let e = ProviderError::new(kind);
            assert_eq!((e.kind(), e.to_string()), (kind, text.to_owned()));
            assert!(std::error::Error::source(&e).is_none());
        }
        let cause = std::io::Error::other("disk on fire");
        let e = ProviderError::with_source(K::Io, cause);
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk on fire"));
    }

    #[cfg(unix)]
    #[test]
    fn file_kek_checks_permissions_and_length() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("kek");
        let kek = FileKek::create(&path).unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{kek:?}");
        assert!(!debug.contains("[1"));
        assert!(debug.starts_with("FileKek {"), "{debug}");
        assert!(
            debug.contains(&kek.id()) && debug.contains("kek"),
            "{debug}"
        );
        assert!(FileKek::create(&path).is_err(), "never overwrites");
        let again = FileKek::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kek.id(), again.id());
        for mode in [0o640, 0o604, 0o660, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                FileKek::open(&path).err().map(|e| e.kind()),
                Some(ProviderErrorKind::Permissions),
                "{mode:o}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(FileKek::open(&path).is_ok());
        let short = dir.path().join("short");
        std::fs::write(&short, [0u8; 31]).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            FileKek::open(&short).err().map(|e| e.kind()),
            Some(ProviderErrorKind::BadKeyMaterial)
        );
        assert_eq!(
            FileKek::open(dir.path().join("missing"))
                .err()
                .map(|e| e.kind()),
            Some(ProviderErrorKind::NotFound)
        );
    }

    #[test]
    fn env_kek_reads_base64_of_32_bytes_and_wraps() {
        // Bytes 0, 1, …, 31.
        let text = " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
        let kek = EnvKek::from_base64(text).unwrap_or_else(|e| panic!("{e}"));
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let local = LocalKek::new(&key, "env");
        assert_eq!(kek.id(), local.fingerprint);
        assert!(kek.id().starts_with("env:"));
        let debug = format!("{kek:?}");
        assert!(
            debug.starts_with("EnvKek {") && debug.contains(&kek.id()),
            "{debug}"
        );
        let w = kek.wrap(&[5; 32], b"aad").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.len(), 12 + 32 + 16);
        // The same key held elsewhere opens it: the wrapping is the documented AES-256-GCM.
        assert_eq!(
            local.unwrap(&w, b"aad").map(|k| k.to_vec()).ok(),
            Some(vec![5; 32])
        );
        assert_eq!(
            kek.unwrap(&w, b"aad").map(|k| k.to_vec()).ok(),
            Some(vec![5; 32])
        );
        assert!(kek.unwrap(&w, b"other").is_err());
        for bad in [
            "",
            "not base64!",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
        ] {
            let kind = EnvKek::from_base64(bad).err().map(|e| e.kind());
            assert_eq!(kind, Some(ProviderErrorKind::BadKeyMaterial), "{bad:?}");
        }
    }

    #[test]
    fn env_kek_errors() {
        assert_eq!(
            EnvKek::from_var("FIELDSEAL_TEST_UNSET_KEK_VARIABLE")
                .err()
                .map(|e| e.kind()),
            Some(ProviderErrorKind::NotFound)
        );
    }
}
