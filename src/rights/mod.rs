//! Data-subject rights: proving that a requester is the data subject ([`IdentityVerifier`],
//! [`Verified`]) and what the guard's rights operations return ([`SubjectExport`],
//! [`CancellationReport`]).
//!
//! Every rights operation of the [`Guard`] (export, correction, erasure, cancellation) takes a
//! [`Verified`] proof for the subject it acts on. A proof is made only by
//! [`Guard::verify_identity`] after an [`IdentityVerifier`] accepted the requester's
//! [`Evidence`]; it names one subject, expires after [`VERIFIED_TTL_SECS`] on the guard's clock,
//! and cannot be copied, cloned or serialized. An operation given a proof for another subject,
//! or an expired one, is refused with [`DenyReason::IdentityNotVerified`] and the refusal is
//! audited.

mod export;

pub use export::{EXPORT_FORMAT, EXPORT_VERSION, ExportedValue, SubjectExport, Withheld};

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::any::{AnyRevealed, AnySealed};
use crate::clock::Clock;
use crate::context::{Context, SubjectId};
use crate::crypto::kdf::hmac_sha256;
use crate::error::{Error, FormatError};
use crate::field::{Field as _, FieldKind, IdNumber};
use crate::guard::Guard;
use crate::policy::{Accessor, DenyReason};
use crate::purpose::PurposeId;

/// How long a [`Verified`] proof stays valid after it was made, on the guard's clock: 15 minutes.
pub const VERIFIED_TTL_SECS: u64 = 900;

/// What a requester presents to prove they are the subject: a session token, an ID number, a
/// one-time code. Secret: wiped on drop, redacted in `Debug`, not `Clone`.
///
/// ```
/// let e = fieldseal::Evidence::new("123456");
/// assert_eq!(format!("{e:?}"), "Evidence([REDACTED])");
/// ```
pub struct Evidence(Zeroizing<Vec<u8>>);

impl Evidence {
    /// Evidence from bytes or text.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    /// The raw evidence.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Evidence([REDACTED])")
    }
}

/// Decides whether evidence proves that a requester is a given data subject.
///
/// The hook through which the application's identity proofing reaches the guard (a verified
/// login session, an ID-number match, a one-time code sent to a verified address). Called only
/// by [`Guard::verify_identity`], which alone makes [`Verified`] proofs.
///
/// Implementations: [`NoVerifier`] (refuses everyone), [`SessionVerifier`], [`IdNumberVerifier`],
/// [`OneTimeCodes`].
///
/// # Security
/// Compare secrets in constant time, keep no raw subject identifiers, and bound guessing
/// (attempt limits, expiry): a verifier that accepts too much hands out the subject's data.
pub trait IdentityVerifier: Send + Sync + fmt::Debug {
    /// A short stable name of the method (`session`, `id_number`, `one_time_code`).
    fn method(&self) -> &'static str;

    /// Whether `evidence` proves the requester is `subject`. `guard` is the guard asking (a
    /// verifier may open a sealed value through it, under the policy and audit like any caller).
    ///
    /// # Errors
    /// A store or guard error that prevents deciding; the guard then refuses, as for `false`.
    fn check(&self, guard: &Guard, subject: &SubjectId, evidence: &Evidence)
    -> Result<bool, Error>;
}

/// Refuses every requester: the verifier to configure when data-subject requests are not served
/// through the crate.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoVerifier;

impl IdentityVerifier for NoVerifier {
    fn method(&self) -> &'static str {
        "none"
    }
    fn check(&self, _: &Guard, _: &SubjectId, _: &Evidence) -> Result<bool, Error> {
        Ok(false)
    }
}

/// Proof, made by [`Guard::verify_identity`], that a requester was verified as one subject.
///
/// Not `Clone`, `Copy` or `Serialize`: it lives as long as the request it was made for, and
/// expires [`VERIFIED_TTL_SECS`] after it was made. The subject identifier it holds is wiped on
/// drop and redacted in `Debug`.
#[must_use = "SECURITY WARNING: a proof of identity is only useful when passed to a rights operation"]
pub struct Verified {
    subject: Zeroizing<Vec<u8>>,
    at: u64,
    method: &'static str,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("subject", &"[REDACTED]")
            .field("at", &self.at)
            .field("method", &self.method)
            .finish()
    }
}

impl Verified {
    pub(crate) fn new(subject: &SubjectId, at: u64, method: &'static str) -> Self {
        Self {
            subject: Zeroizing::new(subject.expose_secret().as_bytes().to_vec()),
            at,
            method,
        }
    }

    /// When the proof was made (Unix seconds, the guard's clock).
    pub fn verified_at(&self) -> u64 {
        self.at
    }

    /// The verifier's [`IdentityVerifier::method`].
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// Whether this proof is for `subject` and still valid at `now` (constant-time comparison
    /// of the identifiers).
    pub(crate) fn covers(&self, subject: &[u8], now: u64) -> bool {
        let same = bool::from(self.subject.as_slice().ct_eq(subject));
        same && now >= self.at && now < self.at.saturating_add(VERIFIED_TTL_SECS)
    }
}

/// A random 32-byte key for keyed digests of identifiers and secrets held in memory.
fn random_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::Rng::fill_bytes(&mut rand::rng(), key.as_mut());
    key
}

/// Verified login sessions: the application binds a session token to a subject when the
/// subject logs in (password, MFA: its own identity proofing), and presents the token as
/// evidence. Tokens are compared in constant time.
///
/// Neither subject identifiers nor tokens are kept: both are stored as HMAC-SHA256 under random
/// per-verifier keys.
///
/// ```
/// use fieldseal::{SessionVerifier, SubjectId};
/// let sessions = SessionVerifier::new();
/// sessions.bind(&SubjectId::new("user-42"), b"0123456789abcdef0123456789abcdef")?;
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct SessionVerifier {
    sessions: Mutex<HashMap<[u8; 32], [u8; 32]>>,
    subject_key: Zeroizing<[u8; 32]>,
    token_key: Zeroizing<[u8; 32]>,
}

impl Default for SessionVerifier {
    fn default() -> Self {
        Self {
            sessions: Mutex::default(),
            subject_key: random_key(),
            token_key: random_key(),
        }
    }
}

impl fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.sessions.lock().map_or(0, |s| s.len());
        f.debug_struct("SessionVerifier")
            .field("sessions", &n)
            .finish()
    }
}

/// The shortest session token accepted: 16 bytes (128 bits).
pub const MIN_SESSION_TOKEN: usize = 16;

impl SessionVerifier {
    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `token` to `subject` (replacing the subject's previous session).
    ///
    /// # Errors
    /// [`FormatError::TokenTooShort`] for a token shorter than [`MIN_SESSION_TOKEN`] bytes.
    pub fn bind(&self, subject: &SubjectId, token: &[u8]) -> Result<(), Error> {
        if token.len() < MIN_SESSION_TOKEN {
            return Err(FormatError::TokenTooShort {
                min: MIN_SESSION_TOKEN,
            }
            .into());
        }
        let s = hmac_sha256(
            self.subject_key.as_slice(),
            subject.expose_secret().as_bytes(),
        );
        let t = hmac_sha256(self.token_key.as_slice(), token);
        if let Ok(mut m) = self.sessions.lock() {
            m.insert(s, t);
        }
        Ok(())
    }

    /// Ends the subject's session.
    pub fn revoke(&self, subject: &SubjectId) {
        let s = hmac_sha256(
            self.subject_key.as_slice(),
            subject.expose_secret().as_bytes(),
        );
        if let Ok(mut m) = self.sessions.lock() {
            m.remove(&s);
        }
    }
}

impl IdentityVerifier for SessionVerifier {
    fn method(&self) -> &'static str {
        "session"
    }

    fn check(&self, _: &Guard, subject: &SubjectId, evidence: &Evidence) -> Result<bool, Error> {
        let s = hmac_sha256(
            self.subject_key.as_slice(),
            subject.expose_secret().as_bytes(),
        );
        let t = hmac_sha256(self.token_key.as_slice(), evidence.expose_secret());
        let m = self.sessions.lock().map_err(|_| Error::Denied {
            reason: DenyReason::IdentityNotVerified,
        })?;
        Ok(m.get(&s).is_some_and(|stored| bool::from(stored.ct_eq(&t))))
    }
}

/// Verifies a requester by the national ID number they type in, against the subject's sealed ID
/// number, opened through the guard (a `reveal` by `accessor`, decided by the policy and
/// audited like any other) and compared in canonical form, in constant time.
///
/// The sealed value must be an `id_number` bound to a context whose `subject` is the subject
/// being verified; evidence that does not parse as an ID number is refused.
#[derive(Debug)]
pub struct IdNumberVerifier {
    accessor: Accessor,
    sealed: AnySealed,
    context: Context,
}

impl IdNumberVerifier {
    /// A verifier against `sealed` (an `id_number`), opened in `context` by `accessor`.
    ///
    /// # Errors
    /// [`FormatError::KindMismatch`] if `sealed` is not an `id_number`.
    pub fn new(accessor: Accessor, sealed: AnySealed, context: Context) -> Result<Self, Error> {
        if sealed.kind() != FieldKind::IdNumber {
            return Err(FormatError::KindMismatch {
                expected: FieldKind::IdNumber,
                found: sealed.kind(),
            }
            .into());
        }
        Ok(Self {
            accessor,
            sealed,
            context,
        })
    }
}

impl IdentityVerifier for IdNumberVerifier {
    fn method(&self) -> &'static str {
        "id_number"
    }

    #[track_caller]
    fn check(
        &self,
        guard: &Guard,
        subject: &SubjectId,
        evidence: &Evidence,
    ) -> Result<bool, Error> {
        // The stored number must be this subject's: its context names the subject, and the
        // envelope authenticates only under the context it was sealed in.
        let bound = self
            .context
            .part("subject")
            .is_some_and(|s| bool::from(s.ct_eq(subject.expose_secret().as_bytes())));
        if !bound {
            return Ok(false);
        }
        let Ok(text) = std::str::from_utf8(evidence.expose_secret()) else {
            return Ok(false);
        };
        let Ok(given) = IdNumber::parse(text) else {
            return Ok(false);
        };
        let stored = guard.reveal_any(&self.accessor, &self.sealed, &self.context)?;
        if !matches!(stored, AnyRevealed::IdNumber(_)) {
            return Ok(false);
        }
        let a = stored.expose_canonical();
        let mut b = Zeroizing::new(Vec::with_capacity(given.canonical_len()));
        given.write_canonical(&mut b);
        Ok(bool::from(a.as_slice().ct_eq(b.as_slice())))
    }
}

/// One-time codes: [`OneTimeCodes::issue`] makes an 8-digit code for a subject, which the
/// application sends to an address already verified as theirs; the code is evidence once, until
/// it expires, for at most [`OneTimeCodes::MAX_ATTEMPTS`] tries.
///
/// Codes are kept as HMAC-SHA256 under a random key, subjects likewise; comparison is constant
/// time. A successful check consumes the code; so does the last failed attempt.
pub struct OneTimeCodes {
    codes: Mutex<HashMap<[u8; 32], Pending>>,
    subject_key: Zeroizing<[u8; 32]>,
    code_key: Zeroizing<[u8; 32]>,
    clock: Arc<dyn Clock>,
    ttl: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    code: [u8; 32],
    expires: u64,
    attempts: u32,
}

impl fmt::Debug for OneTimeCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.codes.lock().map_or(0, |c| c.len());
        f.debug_struct("OneTimeCodes")
            .field("pending", &n)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl OneTimeCodes {
    /// Failed attempts allowed per code: the last one consumes it.
    pub const MAX_ATTEMPTS: u32 = 5;

    /// Codes valid for `ttl_secs` on `clock` (use the guard's clock).
    pub fn new(clock: Arc<dyn Clock>, ttl_secs: u64) -> Self {
        Self {
            codes: Mutex::default(),
            subject_key: random_key(),
            code_key: random_key(),
            clock,
            ttl: ttl_secs,
        }
    }

    /// A fresh 8-digit code for `subject`, replacing any pending one. Send it to the subject
    /// over a channel already verified as theirs.
    ///
    /// # Errors
    /// [`Error::Random`] if no code could be drawn.
    pub fn issue(&self, subject: &SubjectId) -> Result<Evidence, Error> {
        let mut n = [0u8; 8];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut n);
        // 2^64 mod 10^8 skews the distribution by under 10^-11: negligible.
        let code = Zeroizing::new(format!("{:08}", u64::from_be_bytes(n) % 100_000_000));
        let pending = Pending {
            code: hmac_sha256(self.code_key.as_slice(), code.as_bytes()),
            expires: self.clock.now().saturating_add(self.ttl),
            attempts: 0,
        };
        let s = hmac_sha256(
            self.subject_key.as_slice(),
            subject.expose_secret().as_bytes(),
        );
        self.codes
            .lock()
            .map_err(|_| Error::Random)?
            .insert(s, pending);
        Ok(Evidence::new(code.as_bytes()))
    }
}

impl IdentityVerifier for OneTimeCodes {
    fn method(&self) -> &'static str {
        "one_time_code"
    }

    fn check(&self, _: &Guard, subject: &SubjectId, evidence: &Evidence) -> Result<bool, Error> {
        let s = hmac_sha256(
            self.subject_key.as_slice(),
            subject.expose_secret().as_bytes(),
        );
        let given = hmac_sha256(self.code_key.as_slice(), evidence.expose_secret());
        let now = self.clock.now();
        let mut codes = self.codes.lock().map_err(|_| Error::Denied {
            reason: DenyReason::IdentityNotVerified,
        })?;
        let Some(p) = codes.get_mut(&s) else {
            return Ok(false);
        };
        if now >= p.expires {
            codes.remove(&s);
            return Ok(false);
        }
        if bool::from(p.code.ct_eq(&given)) {
            codes.remove(&s);
            return Ok(true);
        }
        p.attempts += 1;
        if p.attempts >= Self::MAX_ATTEMPTS {
            codes.remove(&s);
        }
        Ok(false)
    }
}

/// What [`Guard::cancel_account`] did: the purposes erased, those kept under a legal hold, and
/// those kept because their data shares a subject-wide key with a held purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CancellationReport {
    /// Purposes whose subject keys were destroyed.
    pub erased: Vec<PurposeId>,
    /// Purposes under a legal hold: nothing of theirs was erased.
    pub held: Vec<PurposeId>,
    /// Purposes not under a hold whose values share the subject-wide key with a held purpose:
    /// erasing that key would erase the held data, so it was kept. Their values stay until
    /// their retention passes (delete them through a retention sweep or by hand).
    pub kept_with_hold: Vec<PurposeId>,
    /// How many stored keys existed and were deleted.
    pub keys_deleted: usize,
}
