//! The token side: loading the module, finding the token and key, sessions, key checks, and
//! the mapping of PKCS#11 return values to provider error kinds.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::keys::provider::{ProviderError, ProviderErrorKind};

/// A loaded and initialized PKCS#11 module, and the lock that serializes this process's use of
/// it.
///
/// A provider call holds it for one `C_Encrypt` or `C_Decrypt` on a held session (about 30 µs
/// on SoftHSM2), so serializing costs little, and it keeps modules working that are not safe
/// under concurrent session use: SoftHSM2 2.6 sporadically fails `C_GenerateKey` with
/// `CKR_GENERAL_ERROR` or `CKR_TEMPLATE_INCONSISTENT`, and can close one thread's new session
/// when another closes its last one, when several threads open, use and close sessions at once.
#[derive(Debug)]
pub(super) struct Module {
    ctx: Pkcs11,
    lock: Mutex<()>,
}

impl Module {
    /// The module, for as long as the returned guard lives.
    pub(super) fn lock(&self) -> (MutexGuard<'_, ()>, &Pkcs11) {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        (guard, &self.ctx)
    }
}

/// Initialized modules by canonical path. Never finalized: other providers (or other code in
/// the process) may still use the module, and `C_Initialize` belongs to the whole process.
static MODULES: Mutex<Vec<(PathBuf, Arc<Module>)>> = Mutex::new(Vec::new());

pub(super) fn load_module(path: &Path) -> Result<Arc<Module>, ProviderError> {
    let canonical = std::fs::canonicalize(path).map_err(io_error)?;
    let mut modules = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, module)) = modules.iter().find(|(p, _)| *p == canonical) {
        return Ok(Arc::clone(module));
    }
    let ctx = Pkcs11::new(&canonical)
        .map_err(|e| ProviderError::with_source(ProviderErrorKind::Device, e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Someone else in this process initialized it: it is ready to use.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck_error(e)),
    }
    let module = Arc::new(Module {
        ctx,
        lock: Mutex::new(()),
    });
    modules.push((canonical, Arc::clone(&module)));
    Ok(module)
}

/// The one slot whose token carries `label` (and `serial`, if given), and the token's serial.
pub(super) fn find_token(
    ctx: &Pkcs11,
    label: &str,
    serial: Option<&str>,
) -> Result<(Slot, String), ProviderError> {
    let label = label.trim_end_matches(' ');
    let mut found = Vec::new();
    for slot in ctx.get_slots_with_token().map_err(ck_error)? {
        // A slot whose token vanished between the two calls is not the one we want.
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        if info.label() == label && serial.is_none_or(|s| info.serial_number() == s) {
            found.push((slot, info.serial_number().to_owned()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(detail(ProviderErrorKind::NotFound, Detail::NoToken)),
        n => Err(detail(
            ProviderErrorKind::NotFound,
            Detail::AmbiguousToken(n),
        )),
    }
}

/// A read-write session (read-only if the token is write-protected), logged in as the user.
pub(super) fn open_session(
    ctx: &Pkcs11,
    slot: Slot,
    pin: &AuthPin,
) -> Result<Session, ProviderError> {
    let session = match ctx.open_rw_session(slot) {
        Err(CkError::Pkcs11(RvError::TokenWriteProtected, _)) => ctx.open_ro_session(slot),
        other => other,
    }
    .map_err(ck_error)?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(ck_error(e)),
    }
}

fn key_template(label: &str, id: Option<&[u8]>) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    template
}

pub(super) fn find_key(
    session: &Session,
    label: &str,
    id: Option<&[u8]>,
) -> Result<Option<ObjectHandle>, ProviderError> {
    let mut keys = session
        .find_objects(&key_template(label, id))
        .map_err(ck_error)?;
    match keys.len() {
        0 => Ok(None),
        1 => Ok(keys.pop()),
        n => Err(detail(ProviderErrorKind::NotFound, Detail::AmbiguousKey(n))),
    }
}

pub(super) fn generate_key(
    session: &Session,
    label: &str,
    id: Option<&[u8]>,
) -> Result<ObjectHandle, ProviderError> {
    let mut template = key_template(label, id);
    template.extend([
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ]);
    session
        .generate_key(&Mechanism::AesKeyGen, &template)
        .map_err(ck_error)
}

/// Refuses a key whose bytes could leave the token, or that cannot serve as an AES-256 KEK.
pub(super) fn check_key(session: &Session, key: ObjectHandle) -> Result<(), ProviderError> {
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::ValueLen,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(ck_error)?;
    let (mut sensitive, mut extractable, mut len, mut encrypt, mut decrypt) =
        (false, true, 0usize, false, false);
    for attr in attrs {
        match attr {
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            Attribute::ValueLen(v) => len = usize::from(v),
            Attribute::Encrypt(v) => encrypt = v,
            Attribute::Decrypt(v) => decrypt = v,
            _ => {}
        }
    }
    let problem = if !sensitive || extractable {
        Detail::Exportable
    } else if len != 32 {
        Detail::KeyLength(len)
    } else if !(encrypt && decrypt) {
        Detail::KeyUsage
    } else {
        return Ok(());
    };
    Err(detail(ProviderErrorKind::BadKeyMaterial, problem))
}

/// Maps a cryptoki error to a provider error kind. The source names the PKCS#11 function and
/// return value only; cryptoki never puts a PIN in an error.
pub(super) fn ck_error(e: CkError) -> ProviderError {
    let kind = match &e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinExpired
            | RvError::PinLocked
            | RvError::UserPinNotInitialized
            | RvError::UserNotLoggedIn
            | RvError::UserAnotherAlreadyLoggedIn
            | RvError::UserTooManyTypes => ProviderErrorKind::Login,
            RvError::TokenNotPresent | RvError::DeviceRemoved | RvError::SlotIdInvalid => {
                ProviderErrorKind::NotFound
            }
            _ => ProviderErrorKind::Device,
        },
        _ => ProviderErrorKind::Device,
    };
    ProviderError::with_source(kind, e)
}

/// Whether `e` can mean that a held session went stale: the token was removed, re-inserted or
/// restarted, the session was closed or logged out. Worth one retry on a fresh session.
pub(super) fn may_be_stale(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

/// A failed `C_Decrypt` is a failed unwrap. SoftHSM2 before 2.7 reports a GCM tag mismatch as
/// `CKR_GENERAL_ERROR` (the specification's code is `CKR_ENCRYPTED_DATA_INVALID`).
pub(super) fn decrypt_error(e: CkError) -> ProviderError {
    match &e {
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::DataInvalid
            | RvError::DataLenRange
            | RvError::GeneralError,
            Function::Decrypt,
        ) => ProviderError::with_source(ProviderErrorKind::Unwrap, e),
        _ => ck_error(e),
    }
}

pub(super) fn io_error(e: std::io::Error) -> ProviderError {
    let kind = if e.kind() == std::io::ErrorKind::NotFound {
        ProviderErrorKind::NotFound
    } else {
        ProviderErrorKind::Io
    };
    ProviderError::with_source(kind, e)
}

/// Why a [`Pkcs11Kek`](super::Pkcs11Kek) refused, beyond the error kind. Names no PIN and no key bytes.
#[derive(Debug)]
pub(super) enum Detail {
    NoPin,
    Pin,
    NoToken,
    AmbiguousToken(usize),
    NoKey,
    AmbiguousKey(usize),
    Exportable,
    KeyLength(usize),
    KeyUsage,
    NoGcm,
    OutputLength,
    SelfTest,
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::NoPin => f.write_str("no PIN source was configured"),
            Detail::Pin => f.write_str("the PIN is empty or not UTF-8"),
            Detail::NoToken => f.write_str("no token carries the label (and serial)"),
            Detail::AmbiguousToken(n) => {
                write!(f, "{n} tokens carry the label; name one by its serial")
            }
            Detail::NoKey => f.write_str("no AES key carries the label (and id)"),
            Detail::AmbiguousKey(n) => write!(f, "{n} AES keys carry the label; give a CKA_ID"),
            Detail::Exportable => {
                f.write_str("the key is extractable or not sensitive; a KEK must stay in the token")
            }
            Detail::KeyLength(n) => write!(f, "the key is {n} bytes; a KEK is AES-256 (32 bytes)"),
            Detail::KeyUsage => f.write_str("the key does not allow CKA_ENCRYPT and CKA_DECRYPT"),
            Detail::NoGcm => f.write_str("the token does not offer CKM_AES_GCM"),
            Detail::OutputLength => {
                f.write_str("C_Encrypt returned an unexpected length (an appended IV?)")
            }
            Detail::SelfTest => f.write_str("a probe wrapped by the token did not unwrap"),
        }
    }
}

impl std::error::Error for Detail {}

pub(super) fn detail(kind: ProviderErrorKind, d: Detail) -> ProviderError {
    ProviderError::with_source(kind, d)
}
