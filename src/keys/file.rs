//! The keyring file: root keys per version with their state, the audit key and the checkpoint
//! signing key, encrypted under a random file key that a [`KeyProvider`] wraps; an integrity tag
//! over everything. Written atomically (temporary file, fsync, rename, directory fsync).
//!
//! Two lines of UTF-8:
//!
//! 1. the body, a JSON object with members in this order: `format` (`"fieldseal-keyring"`),
//!    `version` (1), `provider` (the provider's identity), `file_key` (base64 of the provider's
//!    wrapping of the 32-byte file key, with associated data `lp("fieldseal/v1/keyring-file-key")
//!    ‖ lp(provider)`), `generation` (incremented by every write), `keys` (per version, in
//!    version order: `version`, `state` — `active` / `decrypt_only` / `retired` — and `key`),
//!    `audit_key`, `checkpoint_key`. Every secret is base64 of `nonce (12) ‖ AES-256-GCM
//!    ciphertext ‖ tag (16)` under the file key, with associated data `lp("fieldseal/v1/keyring-
//!    secret") ‖ lp(name)`, where name is `root/<version>`, `audit` or `checkpoint`;
//! 2. `{"mac":"<64 hex>"}`: HMAC-SHA256 of the body line's bytes (without its newline) under
//!    HKDF-SHA256(salt = none, IKM = file key, info = `fieldseal/v1/keyring-mac`).
//!
//! The whole file is at most [`MAX_FILE_LEN`] bytes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::keyring::KeyState;
use super::provider::{KeyProvider, ProviderError, ProviderErrorKind};
use super::{KeyVersion, RootKey};
use crate::Error;
use crate::audit::{AuditKey, CheckpointSigningKey};
use crate::crypto::kdf::push_lp;
use crate::error::KeyError;

/// The format name in every keyring file.
const FORMAT: &str = "fieldseal-keyring";
/// The only format version this release writes and reads.
const FORMAT_VERSION: u32 = 1;
/// Longest keyring file read, in bytes.
pub(crate) const MAX_FILE_LEN: usize = 1 << 20;
const FILE_KEY_AAD: &[u8] = b"fieldseal/v1/keyring-file-key";
const SECRET_AAD: &[u8] = b"fieldseal/v1/keyring-secret";
const MAC_INFO: &[u8] = b"fieldseal/v1/keyring-mac";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    format: String,
    version: u32,
    provider: String,
    file_key: String,
    generation: u64,
    keys: Vec<KeyJson>,
    audit_key: String,
    checkpoint_key: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct KeyJson {
    version: u32,
    state: String,
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MacJson {
    mac: String,
}

/// A loaded keyring file: what is needed to write it again after a change, with the file key
/// in memory (zeroized on drop) so that no provider call is needed for rotation.
///
/// Not `Clone`: the one copy made, the staged state of a change, is made by
/// [`KeyringFile::staged_copy`], so that a copy of the file key cannot be made by accident.
pub(crate) struct KeyringFile {
    path: PathBuf,
    provider: String,
    wrapped_file_key: Vec<u8>,
    file_key: Zeroizing<[u8; 32]>,
    generation: u64,
    /// Encrypted root keys and their states, by version.
    keys: BTreeMap<KeyVersion, (KeyState, Vec<u8>)>,
    audit_key: Vec<u8>,
    checkpoint_key: Vec<u8>,
}

/// Versions as loaded: state and, unless retired, the root key.
pub(crate) type Versions = Vec<(KeyVersion, KeyState, Option<RootKey>)>;

impl KeyringFile {
    /// A new file at `path` with one fresh active root key (version 1) and fresh audit and
    /// checkpoint keys; fails if the file exists.
    pub(crate) fn create(
        provider: &dyn KeyProvider,
        path: &Path,
    ) -> Result<(Self, Versions), Error> {
        if path.exists() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "keyring file exists",
            )));
        }
        let file_key = random_key()?;
        let provider_id = provider.id();
        let wrapped_file_key = provider.wrap(file_key.as_ref(), &file_key_aad(&provider_id))?;
        let mut file = Self {
            path: path.to_path_buf(),
            provider: provider_id,
            wrapped_file_key,
            file_key,
            generation: 0,
            keys: BTreeMap::new(),
            audit_key: Vec::new(),
            checkpoint_key: Vec::new(),
        };
        let v1 = KeyVersion::new(1).ok_or(KeyError::NoActiveKey)?;
        let root = RootKey::generate()?;
        file.add(v1, &root)?;
        file.set_state(v1, KeyState::Active);
        file.audit_key = file.encrypt("audit", random_key()?.as_ref())?;
        file.checkpoint_key = file.encrypt("checkpoint", random_key()?.as_ref())?;
        file.save()?;
        Ok((file, vec![(v1, KeyState::Active, Some(root))]))
    }

    /// Reads, authenticates and decrypts the file at `path`.
    pub(crate) fn load(provider: &dyn KeyProvider, path: &Path) -> Result<(Self, Versions), Error> {
        let text = read_bounded(path)?;
        Self::from_text(provider, path, &text)
    }

    /// [`KeyringFile::load`] of a file's bytes (`path` is where later changes are written).
    pub(crate) fn from_text(
        provider: &dyn KeyProvider,
        path: &Path,
        text: &[u8],
    ) -> Result<(Self, Versions), Error> {
        if text.len() > MAX_FILE_LEN {
            return Err(KeyError::FileMalformed.into());
        }
        let (body_line, mac_line) = split_two_lines(text).ok_or(KeyError::FileMalformed)?;
        let body: Body = serde_json::from_slice(body_line).map_err(|_| KeyError::FileMalformed)?;
        if body.format != FORMAT {
            return Err(KeyError::FileMalformed.into());
        }
        if body.version != FORMAT_VERSION {
            return Err(KeyError::UnsupportedFileVersion(body.version).into());
        }
        if body.provider != provider.id() {
            return Err(ProviderError::new(ProviderErrorKind::WrongProvider).into());
        }
        let wrapped_file_key = b64(&body.file_key)?;
        let unwrapped = provider.unwrap(&wrapped_file_key, &file_key_aad(&body.provider))?;
        let mut file_key = Zeroizing::new([0u8; 32]);
        if unwrapped.len() != 32 {
            return Err(KeyError::FileMalformed.into());
        }
        file_key.copy_from_slice(&unwrapped);
        let mac: MacJson = serde_json::from_slice(mac_line).map_err(|_| KeyError::FileMalformed)?;
        let expected = mac_of(&file_key, body_line);
        let stored = unhex32(&mac.mac).ok_or(KeyError::FileMalformed)?;
        if !bool::from(expected.ct_eq(&stored)) {
            return Err(KeyError::FileIntegrity.into());
        }
        let mut file = Self {
            path: path.to_path_buf(),
            provider: body.provider,
            wrapped_file_key,
            file_key,
            generation: body.generation,
            keys: BTreeMap::new(),
            audit_key: b64(&body.audit_key)?,
            checkpoint_key: b64(&body.checkpoint_key)?,
        };
        let mut versions = Vec::with_capacity(body.keys.len());
        for k in body.keys {
            let version = KeyVersion::new(k.version).ok_or(KeyError::FileMalformed)?;
            let state = KeyState::from_label(&k.state).ok_or(KeyError::FileMalformed)?;
            let sealed = b64(&k.key)?;
            let root = match state {
                KeyState::Retired => None,
                _ => Some(RootKey::from_slice(
                    &file.decrypt(&format!("root/{version}"), &sealed)?,
                )?),
            };
            if file.keys.insert(version, (state, sealed)).is_some() {
                return Err(KeyError::DuplicateVersion(version).into());
            }
            versions.push((version, state, root));
        }
        // Decrypt once now so a damaged secret is found on load, not later; a secret of another
        // length than 32 bytes is refused as a root key is (`audit_keys` relies on it).
        for (name, sealed) in [
            ("audit", &file.audit_key),
            ("checkpoint", &file.checkpoint_key),
        ] {
            if file.decrypt(name, sealed)?.len() != 32 {
                return Err(KeyError::InvalidLength.into());
            }
        }
        Ok((file, versions))
    }

    /// Adds `key` as decrypt-only `version`.
    pub(crate) fn add(&mut self, version: KeyVersion, key: &RootKey) -> Result<(), Error> {
        let sealed = self.encrypt(&format!("root/{version}"), key.bytes())?;
        self.keys.insert(version, (KeyState::DecryptOnly, sealed));
        Ok(())
    }

    pub(crate) fn set_state(&mut self, version: KeyVersion, state: KeyState) {
        if let Some(entry) = self.keys.get_mut(&version) {
            entry.0 = state;
        }
    }

    pub(crate) fn audit_keys(&self) -> (AuditKey, CheckpointSigningKey) {
        // Both were decrypted, and found 32 bytes long, on load or create; a failure now would
        // be memory corruption, and yields keys that verify nothing rather than a panic.
        let audit = self.decrypt("audit", &self.audit_key).ok();
        let ckpt = self.decrypt("checkpoint", &self.checkpoint_key).ok();
        (
            AuditKey::from_bytes(to32(audit.as_ref().map(|v| v.as_slice()))),
            CheckpointSigningKey::from_bytes(to32(ckpt.as_ref().map(|v| v.as_slice()))),
        )
    }

    /// A copy to apply a change to before it is written (the file key is copied into a
    /// zeroizing buffer of its own; the copy is dropped, and wiped, once the change is published
    /// or abandoned).
    pub(crate) fn staged_copy(&self) -> Self {
        let mut file_key = Zeroizing::new([0u8; 32]);
        file_key.copy_from_slice(self.file_key.as_ref());
        Self {
            path: self.path.clone(),
            provider: self.provider.clone(),
            wrapped_file_key: self.wrapped_file_key.clone(),
            file_key,
            generation: self.generation,
            keys: self.keys.clone(),
            audit_key: self.audit_key.clone(),
            checkpoint_key: self.checkpoint_key.clone(),
        }
    }

    /// Writes the file atomically with the next generation number.
    pub(crate) fn save(&mut self) -> Result<(), Error> {
        self.generation += 1;
        let body = Body {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            provider: self.provider.clone(),
            file_key: STANDARD.encode(&self.wrapped_file_key),
            generation: self.generation,
            keys: self
                .keys
                .iter()
                .map(|(v, (state, sealed))| KeyJson {
                    version: v.get(),
                    state: state.label().into(),
                    key: STANDARD.encode(sealed),
                })
                .collect(),
            audit_key: STANDARD.encode(&self.audit_key),
            checkpoint_key: STANDARD.encode(&self.checkpoint_key),
        };
        let mut text = serde_json::to_vec(&body).map_err(|_| KeyError::FileMalformed)?;
        let mac = mac_of(&self.file_key, &text);
        text.push(b'\n');
        text.extend_from_slice(
            &serde_json::to_vec(&MacJson {
                mac: mac.iter().map(|b| format!("{b:02x}")).collect(),
            })
            .map_err(|_| KeyError::FileMalformed)?,
        );
        text.push(b'\n');
        write_atomically(&self.path, &text)
    }

    fn encrypt(&self, name: &str, secret: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; 12];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut nonce)
            .map_err(|_| Error::Random)?;
        let cipher = Aes256Gcm::new((&*self.file_key).into());
        let mut out = Vec::with_capacity(12 + secret.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(secret);
        let tag = cipher
            .encrypt_inout_detached(
                (&nonce).into(),
                &secret_aad(name),
                out[12..].as_mut().into(),
            )
            .map_err(|_| KeyError::FileMalformed)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn decrypt(&self, name: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        if sealed.len() < 12 + 16 {
            return Err(KeyError::FileMalformed.into());
        }
        let (nonce, rest) = sealed.split_at(12);
        let (body, tag) = rest.split_at(rest.len() - 16);
        let nonce = <&Nonce<Aes256Gcm>>::try_from(nonce).map_err(|_| KeyError::FileMalformed)?;
        let tag = <&Tag<Aes256Gcm>>::try_from(tag).map_err(|_| KeyError::FileMalformed)?;
        let cipher = Aes256Gcm::new((&*self.file_key).into());
        let mut out = Zeroizing::new(body.to_vec());
        cipher
            .decrypt_inout_detached(nonce, &secret_aad(name), out.as_mut_slice().into(), tag)
            .map_err(|_| KeyError::FileIntegrity)?;
        Ok(out)
    }
}

fn random_key() -> Result<Zeroizing<[u8; 32]>, Error> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, k.as_mut()).map_err(|_| Error::Random)?;
    Ok(k)
}

fn to32(bytes: Option<&[u8]>) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Some(b) = bytes.filter(|b| b.len() == 32) {
        out.copy_from_slice(b);
    }
    out
}

fn file_key_aad(provider: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    push_lp(&mut aad, FILE_KEY_AAD);
    push_lp(&mut aad, provider.as_bytes());
    aad
}

fn secret_aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    push_lp(&mut aad, SECRET_AAD);
    push_lp(&mut aad, name.as_bytes());
    aad
}

fn mac_of(file_key: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut mac_key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's output limit.
    let _ = Hkdf::<Sha256>::new(None, file_key).expand(MAC_INFO, mac_key.as_mut());
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(mac_key.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn b64(text: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(text)
        .map_err(|_| KeyError::FileMalformed.into())
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16).filter(|_| !c.is_ascii_uppercase());
        *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// The two newline-terminated lines of `text`, nothing after.
fn split_two_lines(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = text.strip_suffix(b"\n")?;
    let at = rest.iter().position(|&b| b == b'\n')?;
    let (first, second) = (&rest[..at], &rest[at + 1..]);
    (!second.contains(&b'\n')).then_some((first, second))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut data)?;
    if data.len() > MAX_FILE_LEN {
        return Err(KeyError::FileMalformed.into());
    }
    Ok(data)
}

/// Temporary file in the same directory (mode 0600), fsync, rename over `path`, fsync the
/// directory: a crash leaves the old file or the new one, never a mixture.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = super::parent_dir(path);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(r: Result<(KeyringFile, Versions), Error>) -> bool {
        matches!(r.err(), Some(Error::Key(KeyError::FileMalformed)))
    }

    fn bytes32(v: &[u8]) -> [u8; 32] {
        v.try_into().unwrap_or_else(|_| panic!("{} bytes", v.len()))
    }

    fn kek() -> crate::FileKek {
        crate::FileKek::from_key_for_tests(&[7; 32])
    }

    #[test]
    fn audit_keys_are_fresh_per_file_distinct_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek = kek();
        let (a_path, b_path) = (dir.path().join("a"), dir.path().join("b"));
        let (a, _) = KeyringFile::create(&kek, &a_path).unwrap_or_else(|e| panic!("{e}"));
        let (b, _) = KeyringFile::create(&kek, &b_path).unwrap_or_else(|e| panic!("{e}"));
        let secret = |f: &KeyringFile, name: &str, sealed: &[u8]| {
            f.decrypt(name, sealed)
                .map(|v| v.to_vec())
                .unwrap_or_default()
        };
        let (a_audit, a_ckpt) = (
            secret(&a, "audit", &a.audit_key),
            secret(&a, "checkpoint", &a.checkpoint_key),
        );
        let b_audit = secret(&b, "audit", &b.audit_key);
        assert_eq!((a_audit.len(), a_ckpt.len()), (32, 32));
        assert_ne!(
            a_audit, a_ckpt,
            "the audit and checkpoint keys are drawn separately"
        );
        assert_ne!(a_audit, b_audit, "each file draws its own keys");
        assert_ne!(*a.file_key, *b.file_key, "and its own file key");
        // The keys handed to the log are those bytes, and a reload hands out the same ones (a
        // log written before a restart still verifies after it).
        let (audit, ckpt) = a.audit_keys();
        let expected = CheckpointSigningKey::from_bytes(bytes32(&a_ckpt));
        assert_eq!(
            ckpt.verifying_key().to_bytes(),
            expected.verifying_key().to_bytes()
        );
        let expected = AuditKey::from_bytes(bytes32(&a_audit));
        assert_eq!(audit.mac_key(), expected.mac_key());
        let (reloaded, _) = KeyringFile::load(&kek, &a_path).unwrap_or_else(|e| panic!("{e}"));
        let (audit2, ckpt2) = reloaded.audit_keys();
        assert_eq!(audit2.mac_key(), audit.mac_key());
        assert_eq!(
            ckpt2.verifying_key().to_bytes(),
            ckpt.verifying_key().to_bytes()
        );
        assert_eq!(to32(Some(&[1; 32])), [1; 32]);
        assert_eq!(
            to32(Some(&[1; 31])),
            [0; 32],
            "a wrong length yields no key bytes"
        );
    }

    #[test]
    fn the_file_key_is_wrapped_with_the_documented_associated_data() {
        // lp("fieldseal/v1/keyring-file-key") ‖ lp(provider), lp = 2-byte big-endian length.
        let aad = file_key_aad("file:abc");
        let mut expected = vec![0, 29];
        expected.extend_from_slice(b"fieldseal/v1/keyring-file-key");
        expected.extend_from_slice(&[0, 8]);
        expected.extend_from_slice(b"file:abc");
        assert_eq!(aad, expected);
        let mut secret = vec![0, 27];
        secret.extend_from_slice(b"fieldseal/v1/keyring-secret");
        secret.extend_from_slice(&[0, 6]);
        secret.extend_from_slice(b"root/3");
        assert_eq!(secret_aad("root/3"), secret);
        // An independent unwrap of a written file under that associated data succeeds, and
        // under none fails.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek = kek();
        let (file, _) =
            KeyringFile::create(&kek, &dir.path().join("k")).unwrap_or_else(|e| panic!("{e}"));
        let id = kek.id();
        let unwrapped = kek.unwrap(&file.wrapped_file_key, &file_key_aad(&id));
        assert_eq!(
            unwrapped.ok().map(|k| k.to_vec()),
            Some(file.file_key.to_vec())
        );
        assert!(kek.unwrap(&file.wrapped_file_key, &[]).is_err());
    }

    #[test]
    fn retired_keys_are_not_decrypted_on_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek = kek();
        let path = dir.path().join("k");
        let (mut file, _) = KeyringFile::create(&kek, &path).unwrap_or_else(|e| panic!("{e}"));
        let v2 = KeyVersion::new(2).unwrap_or_else(|| unreachable!("non-zero"));
        file.add(v2, &RootKey::from_bytes([9; 32]))
            .unwrap_or_else(|e| panic!("{e}"));
        file.set_state(v2, KeyState::Retired);
        file.save().unwrap_or_else(|e| panic!("{e}"));
        let (_, versions) = KeyringFile::load(&kek, &path).unwrap_or_else(|e| panic!("{e}"));
        let states: Vec<_> = versions
            .iter()
            .map(|(v, s, k)| (v.get(), *s, k.is_some()))
            .collect();
        assert_eq!(
            states,
            [(1, KeyState::Active, true), (2, KeyState::Retired, false)]
        );
    }

    #[test]
    fn audit_and_checkpoint_secrets_of_another_length_are_refused_on_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek = kek();
        for (which, len) in [(0, 31), (0, 33), (1, 0), (1, 64)] {
            let path = dir.path().join(format!("k-{which}-{len}"));
            let (mut file, _) = KeyringFile::create(&kek, &path).unwrap_or_else(|e| panic!("{e}"));
            let name = ["audit", "checkpoint"][which];
            let sealed = file
                .encrypt(name, &vec![7; len])
                .unwrap_or_else(|e| panic!("{e}"));
            *[&mut file.audit_key, &mut file.checkpoint_key][which] = sealed;
            file.save().unwrap_or_else(|e| panic!("{e}"));
            let r = KeyringFile::load(&kek, &path).map(|_| ());
            assert!(
                matches!(r, Err(Error::Key(KeyError::InvalidLength))),
                "{name} of {len} bytes: {r:?}"
            );
        }
    }

    #[test]
    fn sealed_secrets_shorter_than_nonce_and_tag_are_malformed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (file, _) =
            KeyringFile::create(&kek(), &dir.path().join("k")).unwrap_or_else(|e| panic!("{e}"));
        for short in [0, 1, 12, 27] {
            let r = file.decrypt("audit", &vec![0; short]);
            assert!(
                matches!(r, Err(Error::Key(KeyError::FileMalformed))),
                "{short} bytes"
            );
        }
        // Nonce and tag with an empty secret: well formed, and it does not authenticate.
        let r = file.decrypt("audit", &[0; 28]);
        assert!(matches!(r, Err(Error::Key(KeyError::FileIntegrity))));
        // A sealed secret opens only under its own name.
        assert!(file.decrypt("audit", &file.audit_key).is_ok());
        assert!(file.decrypt("checkpoint", &file.audit_key).is_err());
    }

    #[test]
    fn a_file_of_exactly_the_size_limit_loads_and_one_byte_more_does_not() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek = kek();
        let path = dir.path().join("keyring");
        let (file, _) = KeyringFile::create(&kek, &path).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let body_end = text.iter().position(|&b| b == b'\n').unwrap_or(0);
        // The body padded with spaces (JSON allows them) and its MAC recomputed: a valid file of
        // `total` bytes.
        let padded = |total: usize| {
            let mut body = text[..body_end].to_vec();
            body.resize(body.len() + total - text.len(), b' ');
            let mac = mac_of(&file.file_key, &body);
            body.extend_from_slice(b"\n{\"mac\":\"");
            for b in mac {
                body.extend_from_slice(format!("{b:02x}").as_bytes());
            }
            body.extend_from_slice(b"\"}\n");
            body
        };
        let exact = padded(MAX_FILE_LEN);
        assert_eq!(exact.len(), MAX_FILE_LEN);
        assert!(KeyringFile::from_text(&kek, &path, &exact).is_ok());
        let over = padded(MAX_FILE_LEN + 1);
        assert!(malformed(KeyringFile::from_text(&kek, &path, &over)));
        std::fs::write(&path, &exact).unwrap_or_else(|e| panic!("{e}"));
        assert!(KeyringFile::load(&kek, &path).is_ok());
        std::fs::write(&path, &over).unwrap_or_else(|e| panic!("{e}"));
        assert!(malformed(KeyringFile::load(&kek, &path)));
        // A valid file of exactly the limit with one byte after it: read whole, refused (a
        // read cut at the limit would have accepted it).
        let mut trailing = exact.clone();
        trailing.push(b' ');
        std::fs::write(&path, &trailing).unwrap_or_else(|e| panic!("{e}"));
        assert!(malformed(KeyringFile::load(&kek, &path)));
    }

    #[test]
    fn two_lines_exactly() {
        assert_eq!(split_two_lines(b"a\nb\n"), Some((&b"a"[..], &b"b"[..])));
        for bad in [&b"a\nb"[..], b"a\n", b"a\nb\nc\n", b""] {
            assert_eq!(split_two_lines(bad), None);
        }
        assert_eq!(unhex32(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(unhex32(&"AB".repeat(32)), None);
        assert_eq!(unhex32("ab"), None);
    }
}
