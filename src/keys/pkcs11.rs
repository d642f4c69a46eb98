//! A key-encryption key in a PKCS#11 token (a hardware security module, a smart card, SoftHSM2).
//!
//! The KEK is an AES-256 secret key object that is sensitive and not extractable: its bytes never
//! reach this process, and wrapping and unwrapping run inside the token.

#[cfg(test)]
mod tests;
mod token;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::types::{AuthPin, Ulong};
use zeroize::Zeroizing;

use super::provider::{KeyProvider, ProviderError, ProviderErrorKind};
use token::{
    Detail, Module, check_key, ck_error, decrypt_error, detail, find_key, find_token, generate_key,
    io_error, load_module, may_be_stale, open_session,
};

/// Where Debian's `softhsm2` package installs its PKCS#11 module.
pub const DEFAULT_PKCS11_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// First byte of a wrapped key: AES-256-GCM in the token, 96-bit IV, 128-bit tag.
const FORMAT_GCM: u8 = 1;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Wrapped and unwrapped when a provider opens, to prove the token can do both.
const SELF_TEST_AAD: &[u8] = b"fieldseal/v1/pkcs11-self-test";

/// Where a token's user PIN comes from. Read when a [`Pkcs11Kek`] opens; `Debug` shows the
/// variable name or path, never the PIN.
///
/// ```
/// use fieldseal::PinSource;
/// let pin = PinSource::env("FIELDSEAL_PKCS11_PIN");
/// assert_eq!(format!("{pin:?}"), r#"PinSource::Env("FIELDSEAL_PKCS11_PIN")"#);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PinSource(Source);

#[derive(Clone, PartialEq, Eq)]
enum Source {
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Env(name) => f.debug_tuple("PinSource::Env").field(name).finish(),
            Source::File(path) => f.debug_tuple("PinSource::File").field(path).finish(),
        }
    }
}

impl PinSource {
    /// The PIN is the value of environment variable `name`.
    pub fn env(name: impl Into<String>) -> Self {
        Self(Source::Env(name.into()))
    }

    /// The PIN is the content of the file at `path` (one trailing newline ignored). Like a KEK
    /// file, it must not be readable or writable by group or others.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self(Source::File(path.into()))
    }

    fn read(&self) -> Result<AuthPin, ProviderError> {
        // Copied into an exactly sized box; the `Zeroizing` text wipes the original.
        Ok(AuthPin::from(self.read_text()?.as_str()))
    }

    fn read_text(&self) -> Result<Zeroizing<String>, ProviderError> {
        let text: Zeroizing<String> = match &self.0 {
            Source::Env(name) => Zeroizing::new(std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => ProviderError::new(ProviderErrorKind::NotFound),
                std::env::VarError::NotUnicode(_) => detail(ProviderErrorKind::Login, Detail::Pin),
            })?),
            Source::File(path) => {
                let meta = std::fs::metadata(path).map_err(io_error)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    if meta.permissions().mode() & 0o077 != 0 {
                        return Err(ProviderError::new(ProviderErrorKind::Permissions));
                    }
                }
                let _ = meta;
                let bytes = Zeroizing::new(std::fs::read(path).map_err(io_error)?);
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| detail(ProviderErrorKind::Login, Detail::Pin))?;
                let text = text.strip_suffix('\n').unwrap_or(text);
                Zeroizing::new(text.strip_suffix('\r').unwrap_or(text).to_owned())
            }
        };
        if text.is_empty() {
            return Err(detail(ProviderErrorKind::Login, Detail::Pin));
        }
        Ok(text)
    }
}

/// A KEK held in a PKCS#11 token: an AES-256 key object that is sensitive and not extractable,
/// used in the token with `CKM_AES_GCM` through `C_Encrypt` / `C_Decrypt`.
///
/// The token is found by its label (slot numbers change when tokens are added or a machine
/// restarts), the key by its `CKA_LABEL` and, if given, its `CKA_ID`.
///
/// ```no_run
/// use fieldseal::{KeyProvider, Pkcs11Kek, PinSource};
/// let kek = Pkcs11Kek::builder("fieldseal", "fieldseal-kek")
///     .module("/usr/lib/softhsm/libsofthsm2.so")
///     .pin(PinSource::file("/run/secrets/hsm-pin"))
///     .open()?;
/// let wrapped = kek.wrap(&[7; 32], b"keyring v1")?;
/// assert_eq!(kek.unwrap(&wrapped, b"keyring v1")?.as_slice(), &[7; 32]);
/// # Ok::<(), fieldseal::ProviderError>(())
/// ```
///
/// # Mechanism
///
/// `CKM_AES_GCM` through `C_Encrypt` / `C_Decrypt`, with the `aad` argument as GCM additional
/// authenticated data, bound inside the token: an unwrap with other `aad`, under another key or
/// of altered bytes fails the tag check. The keyring wraps raw 32-byte secrets, not key objects,
/// so encryption fits; `C_WrapKey` would need each secret imported as a session key object
/// first. SoftHSM2 2.6 offers `CKM_AES_GCM` for encrypt and decrypt (and
/// `CKM_AES_KEY_WRAP_PAD` for `C_WrapKey` / `C_UnwrapKey` only); AWS CloudHSM, Thales Luna and
/// ProtectServer document it for encrypt and decrypt as well. `CKM_AES_KEY_WRAP_PAD` (RFC 5649)
/// takes no associated data: binding `aad` would need a second, MAC key, so it is not used, and a
/// token without `CKM_AES_GCM` is refused with [`ProviderErrorKind::Device`] when the provider
/// opens.
///
/// Wrapped form: `0x01 ‖ IV (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`. The IV is drawn from the
/// operating system's generator; a token that writes its own IV back into the GCM parameters (as
/// tokens in FIPS mode may) is honoured, since the IV stored is read back after `C_Encrypt`. A
/// token that appends its IV to the output instead (Luna in FIPS mode) is refused with
/// [`ProviderErrorKind::Device`] when the provider opens, never with a blob that cannot be
/// opened: the provider wraps and unwraps a probe before it is returned.
///
/// # Identity
///
/// [`KeyProvider::id`] is `pkcs11:<token label>/<key label>`, then `;id=<hex CKA_ID>` if a key
/// id was given and `;serial=<token serial>` if the token reports one, with characters outside
/// `A-Z a-z 0-9 - . _ ~` percent-encoded. A keyring written under one token therefore does not
/// load under another that happens to carry the same labels.
///
/// # Sessions, threads and processes
///
/// The provider keeps one session, logged in, with the key's handle, from opening until it is
/// dropped; a call costs `C_EncryptInit` / `C_Encrypt` (or decrypt) only. Calls take a lock per
/// module, so calls from several threads (and several providers on one module) run one at a
/// time: no session is shared between threads at once, and modules that fail under concurrent
/// session use keep working (SoftHSM2 2.6 sporadically does). A failure that can mean a stale
/// session (`CKR_SESSION_HANDLE_INVALID`, `CKR_DEVICE_REMOVED`, `CKR_USER_NOT_LOGGED_IN`, an
/// invalid key handle, ...) closes it and retries once on a new session, so a token that was
/// restarted or re-plugged is found again (by label, and serial). The module is loaded and
/// initialized (`C_Initialize`, OS locking) once per process and path, and stays loaded.
///
/// PKCS#11 login state belongs to the process: while a provider lives, the token is logged in
/// for every session of the process, and a second provider for the same token logs in without
/// its PIN being checked (`CKR_USER_ALREADY_LOGGED_IN`). After `fork`, a child must not use a provider created by its
/// parent: PKCS#11 requires the child to initialize the module anew; create providers after the
/// fork (or in processes started with `exec`).
pub struct Pkcs11Kek {
    module: Arc<Module>,
    module_path: PathBuf,
    token_label: String,
    /// The serial the token must have on every call: given, or bound when the provider opened.
    token_serial: Option<String>,
    key_label: String,
    key_id: Option<Vec<u8>>,
    pin: AuthPin,
    id: String,
    /// The logged-in session and the key's handle, kept between calls; `None` after a failure
    /// that may have left it stale. Locked only under the module lock.
    held: Mutex<Option<Held>>,
}

/// A session logged in to the token, and the KEK's object handle in it.
struct Held {
    session: Session,
    key: ObjectHandle,
}

impl Drop for Pkcs11Kek {
    fn drop(&mut self) {
        // Closing a session races other threads' session calls in some modules: close it under
        // the module lock too.
        let (_serialized, _) = self.module.lock();
        self.held
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kek")
            .field("id", &self.id)
            .field("module", &self.module_path)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Pkcs11Kek`]: [`Pkcs11Kek::builder`].
#[derive(Debug, Clone)]
pub struct Pkcs11KekBuilder {
    module: PathBuf,
    token_label: String,
    token_serial: Option<String>,
    key_label: String,
    key_id: Option<Vec<u8>>,
    pin: Option<PinSource>,
    bind_serial: bool,
}

impl Pkcs11Kek {
    /// A builder for the key labelled `key_label` in the token labelled `token_label`.
    pub fn builder(
        token_label: impl Into<String>,
        key_label: impl Into<String>,
    ) -> Pkcs11KekBuilder {
        Pkcs11KekBuilder {
            module: PathBuf::from(DEFAULT_PKCS11_MODULE),
            token_label: token_label.into(),
            token_serial: None,
            key_label: key_label.into(),
            key_id: None,
            pin: None,
            bind_serial: true,
        }
    }

    /// Runs `op` on the held session (opened, logged in and with the key found on first use),
    /// under the module lock. A failure that can mean a stale session (the token was removed,
    /// restarted or logged out) drops the session and tries once more on a fresh one.
    fn with_key<T>(
        &self,
        mut op: impl FnMut(&Session, ObjectHandle) -> Result<T, CkError>,
        map_error: fn(CkError) -> ProviderError,
    ) -> Result<T, ProviderError> {
        let (_serialized, ctx) = self.module.lock();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut retried = false;
        loop {
            let current = match held.take() {
                Some(h) => h,
                None => {
                    let (slot, _) =
                        find_token(ctx, &self.token_label, self.token_serial.as_deref())?;
                    let session = open_session(ctx, slot, &self.pin)?;
                    let key = find_key(&session, &self.key_label, self.key_id.as_deref())?
                        .ok_or_else(|| detail(ProviderErrorKind::NotFound, Detail::NoKey))?;
                    Held { session, key }
                }
            };
            match op(&current.session, current.key) {
                Err(e) if may_be_stale(&e) => {
                    drop(current);
                    if retried {
                        return Err(map_error(e));
                    }
                    retried = true;
                }
                result => {
                    *held = Some(current);
                    return result.map_err(map_error);
                }
            }
        }
    }

    fn self_test(&self) -> Result<(), ProviderError> {
        let probe = [0u8; 32];
        let wrapped = self.wrap(&probe, SELF_TEST_AAD)?;
        match self.unwrap(&wrapped, SELF_TEST_AAD) {
            Ok(back) if back.as_slice() == probe => Ok(()),
            Ok(_) => Err(detail(ProviderErrorKind::Device, Detail::SelfTest)),
            Err(e) if e.kind() == ProviderErrorKind::Unwrap => {
                Err(detail(ProviderErrorKind::Device, Detail::SelfTest))
            }
            Err(e) => Err(e),
        }
    }
}

impl Pkcs11KekBuilder {
    /// The PKCS#11 module (shared library) to load; default [`DEFAULT_PKCS11_MODULE`].
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = path.into();
        self
    }

    /// Where the user PIN comes from. Required.
    pub fn pin(mut self, pin: PinSource) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Accept only the token with this serial number (when several carry the same label).
    pub fn token_serial(mut self, serial: impl Into<String>) -> Self {
        self.token_serial = Some(serial.into());
        self
    }

    /// Find the key by this `CKA_ID` as well as its label (and give a generated key this id).
    pub fn key_id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.key_id = Some(id.into());
        self
    }

    /// Whether the token's serial number is part of [`KeyProvider::id`] and must match on every
    /// call (default `true`).
    ///
    /// # Security
    /// Turn it off only for a token whose serial changes while its key does not: an HSM restored
    /// from a backup, or cluster members that report their own serials. The id then names the
    /// labels alone, and a token with the same labels but another key is caught only by the
    /// failed unwrap ([`ProviderErrorKind::Unwrap`]).
    pub fn bind_serial(mut self, bind: bool) -> Self {
        self.bind_serial = bind;
        self
    }

    /// Opens the existing key.
    ///
    /// # Errors
    /// [`ProviderErrorKind::NotFound`] if the module file, the token or the key is missing, or
    /// the token or key label matches more than one; [`ProviderErrorKind::Login`] if no PIN
    /// source was given or the PIN is wrong or locked ([`ProviderErrorKind::NotFound`] or
    /// [`ProviderErrorKind::Permissions`] if it cannot be read);
    /// [`ProviderErrorKind::BadKeyMaterial`] if the key is extractable, not sensitive, not
    /// AES-256 or not usable for encryption and decryption; [`ProviderErrorKind::Device`] if the
    /// module does not load, the token lacks `CKM_AES_GCM` or fails the probe wrap.
    pub fn open(self) -> Result<Pkcs11Kek, ProviderError> {
        self.build(false)
    }

    /// Opens the key, generating it in the token first if no key carries the label (and id).
    ///
    /// The key is generated with `CKM_AES_KEY_GEN` as a 32-byte token object: `CKA_TOKEN`,
    /// `CKA_PRIVATE`, `CKA_SENSITIVE`, `CKA_ENCRYPT`, `CKA_DECRYPT` true; `CKA_EXTRACTABLE`,
    /// `CKA_WRAP`, `CKA_UNWRAP`, `CKA_SIGN`, `CKA_VERIFY`, `CKA_DERIVE` false. Generate from one
    /// provisioning process: two processes that both find no key would both create one, and the
    /// label would then match two keys.
    ///
    /// # Errors
    /// As [`Pkcs11KekBuilder::open`], and [`ProviderErrorKind::Device`] if the token refuses to
    /// generate the key.
    pub fn open_or_generate(self) -> Result<Pkcs11Kek, ProviderError> {
        self.build(true)
    }

    fn build(self, generate: bool) -> Result<Pkcs11Kek, ProviderError> {
        let pin = self
            .pin
            .as_ref()
            .ok_or_else(|| detail(ProviderErrorKind::Login, Detail::NoPin))?
            .read()?;
        let module = load_module(&self.module)?;
        let (held, serial) = {
            let (_serialized, ctx) = module.lock();
            let (slot, serial) = find_token(ctx, &self.token_label, self.token_serial.as_deref())?;
            let mechanisms = ctx.get_mechanism_list(slot).map_err(ck_error)?;
            if !mechanisms.contains(&MechanismType::AES_GCM) {
                return Err(detail(ProviderErrorKind::Device, Detail::NoGcm));
            }
            let session = open_session(ctx, slot, &pin)?;
            let key = match find_key(&session, &self.key_label, self.key_id.as_deref())? {
                Some(key) => key,
                None if generate => {
                    generate_key(&session, &self.key_label, self.key_id.as_deref())?
                }
                None => return Err(detail(ProviderErrorKind::NotFound, Detail::NoKey)),
            };
            check_key(&session, key)?;
            (Held { session, key }, serial)
        };
        let serial = Some(serial).filter(|s| self.bind_serial && !s.is_empty());
        let token_serial = self.token_serial.or_else(|| serial.clone());
        let id = provider_id(
            &self.token_label,
            &self.key_label,
            self.key_id.as_deref(),
            serial.as_deref(),
        );
        let kek = Pkcs11Kek {
            module,
            module_path: self.module,
            token_label: self.token_label,
            token_serial,
            key_label: self.key_label,
            key_id: self.key_id,
            pin,
            id,
            held: Mutex::new(Some(held)),
        };
        kek.self_test()?;
        Ok(kek)
    }
}

impl KeyProvider for Pkcs11Kek {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let tag_bits = tag_bits()?;
        let mut fresh = [0u8; IV_LEN];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut fresh)
            .map_err(|_| ProviderError::new(ProviderErrorKind::Device))?;
        let (iv, body) = self.with_key(
            |session, kek| {
                // A retry reuses the IV: for the same key, plaintext and aad that repeats the
                // same ciphertext, nothing more.
                let mut iv = fresh;
                let params = GcmParams::new(&mut iv, aad, tag_bits)?;
                let body = session.encrypt(&Mechanism::AesGcm(params), kek, key)?;
                // A token may write the IV it chose back into the parameters: keep that one.
                Ok((iv, body))
            },
            ck_error,
        )?;
        if body.len() != key.len() + TAG_LEN {
            return Err(detail(ProviderErrorKind::Device, Detail::OutputLength));
        }
        let mut out = Vec::with_capacity(1 + IV_LEN + body.len());
        out.push(FORMAT_GCM);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let fail = || ProviderError::new(ProviderErrorKind::Unwrap);
        let Some((&FORMAT_GCM, rest)) = wrapped.split_first() else {
            return Err(fail());
        };
        if rest.len() < IV_LEN + TAG_LEN {
            return Err(fail());
        }
        let (iv, body) = rest.split_at(IV_LEN);
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| fail())?;
        let tag_bits = tag_bits()?;
        self.with_key(
            |session, kek| {
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, aad, tag_bits)?;
                session
                    .decrypt(&Mechanism::AesGcm(params), kek, body)
                    .map(Zeroizing::new)
            },
            decrypt_error,
        )
    }
}

/// The tag length in bits, as a `CK_ULONG` (32 or 64 bits wide, by platform).
fn tag_bits() -> Result<Ulong, ProviderError> {
    Ulong::try_from(TAG_LEN * 8)
        .map_err(|e| ProviderError::with_source(ProviderErrorKind::Device, e))
}

/// `pkcs11:<token>/<key>[;id=<hex>][;serial=<serial>]`, labels and serial percent-encoded.
fn provider_id(token: &str, key: &str, key_id: Option<&[u8]>, serial: Option<&str>) -> String {
    use std::fmt::Write as _;
    fn push_escaped(out: &mut String, text: &str) {
        for b in text.trim_end_matches(' ').bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    let mut out = String::from("pkcs11:");
    push_escaped(&mut out, token);
    out.push('/');
    push_escaped(&mut out, key);
    if let Some(id) = key_id {
        out.push_str(";id=");
        for b in id {
            let _ = write!(out, "{b:02x}");
        }
    }
    if let Some(serial) = serial {
        out.push_str(";serial=");
        push_escaped(&mut out, serial);
    }
    out
}
