//! Consent records: who agreed to what, and when it was withdrawn.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use crate::context::SubjectId;

/// What a subject consents to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConsentScope<'a> {
    /// Processing for a consent-based purpose (by label, e.g. `marketing`).
    Purpose(&'a str),
    /// Access to the subject's data from outside the home region.
    CrossBorder,
    /// Sharing the subject's data with the named recipient (its manifest name, e.g.
    /// `marketing_partner`), which a recipient with basis
    /// [`consent`](crate::RecipientBasis::Consent) needs. Independent of purpose consent: a
    /// share for a consent-based purpose to such a recipient needs both.
    Share(&'a str),
}

/// Where the guard looks up consent. Withdrawal must take effect on the very next lookup: an
/// implementation must not cache grants.
pub trait ConsentRegistry: Send + Sync + fmt::Debug {
    /// Whether `subject` currently consents to `scope`.
    fn is_granted(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> bool;

    /// As [`ConsentRegistry::is_granted`], without blocking the caller's async runtime: the
    /// registry takes what it needs before returning. Used by
    /// [`Guard::reveal_async`](crate::Guard::reveal_async).
    ///
    /// The default calls [`ConsentRegistry::is_granted`] at once, on the caller's thread: right
    /// for in-memory registries. Registries that wait on a network override it.
    fn is_granted_async(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> ConsentFuture {
        let granted = self.is_granted(subject, scope);
        Box::pin(std::future::ready(granted))
    }

    /// Records that `subject` grants (`granted`) or withdraws consent to `scope` at `at` (Unix
    /// seconds), by `actor`; every lookup that starts after this returns sees it. Called by
    /// [`Guard::grant_consent`](crate::Guard::grant_consent) and
    /// [`Guard::withdraw_consent`](crate::Guard::withdraw_consent), which audit the change.
    ///
    /// # Errors
    /// The default refuses with [`ConfigError::ReadOnlyConsent`](crate::ConfigError): a
    /// registry that the guard cannot change.
    fn change(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        granted: bool,
        at: u64,
        actor: &crate::policy::PrincipalId,
    ) -> Result<(), crate::Error> {
        let _ = (subject, scope, granted, at, actor);
        Err(crate::ConfigError::ReadOnlyConsent.into())
    }
}

/// The future of [`ConsentRegistry::is_granted_async`]: owns everything it needs.
pub type ConsentFuture = std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'static>>;

/// The timestamps of one consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentRecord {
    /// When consent was (last) given, Unix seconds.
    pub granted_at: u64,
    /// When it was withdrawn after that, if it was.
    pub withdrawn_at: Option<u64>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum ScopeKey {
    Purpose(Box<str>),
    CrossBorder,
    Share(Box<str>),
}

impl From<ConsentScope<'_>> for ScopeKey {
    fn from(s: ConsentScope<'_>) -> Self {
        match s {
            ConsentScope::Purpose(p) => ScopeKey::Purpose(p.into()),
            ConsentScope::CrossBorder => ScopeKey::CrossBorder,
            ConsentScope::Share(r) => ScopeKey::Share(r.into()),
        }
    }
}

/// An in-memory [`ConsentRegistry`], for tests, demos and single-process services.
///
/// Subjects are stored as HMAC-SHA256 of their identifiers under a random per-registry key, never
/// raw and not guessable from a dump; `Debug` shows only a count.
///
/// ```
/// use fieldseal::{ConsentRegistry, ConsentScope, MemoryConsent, SubjectId};
/// let consent = MemoryConsent::new();
/// let s = SubjectId::new("user-42");
/// consent.grant(&s, ConsentScope::Purpose("marketing"), 1_700_000_000);
/// assert!(consent.is_granted(&s, ConsentScope::Purpose("marketing")));
/// consent.withdraw(&s, ConsentScope::Purpose("marketing"), 1_700_000_100);
/// assert!(!consent.is_granted(&s, ConsentScope::Purpose("marketing")));
/// ```
pub struct MemoryConsent {
    records: RwLock<HashMap<([u8; 32], ScopeKey), ConsentRecord>>,
    /// Random per-registry key: records are keyed by HMAC-SHA256(key, subject id), so a dump of
    /// the registry does not reveal (or allow guessing) low-entropy subject identifiers.
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl Default for MemoryConsent {
    fn default() -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        rand::Rng::fill_bytes(&mut rand::rng(), key.as_mut());
        Self {
            records: RwLock::default(),
            key,
        }
    }
}

impl fmt::Debug for MemoryConsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.records.read().map_or(0, |r| r.len());
        f.debug_struct("MemoryConsent")
            .field("records", &n)
            .finish()
    }
}

fn digest(key: &[u8; 32], subject: &SubjectId) -> [u8; 32] {
    crate::crypto::kdf::hmac_sha256(key, subject.expose_secret().as_bytes())
}

impl MemoryConsent {
    /// An empty registry: nobody consents to anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `subject` consents to `scope` at time `at` (Unix seconds).
    pub fn grant(&self, subject: &SubjectId, scope: ConsentScope<'_>, at: u64) {
        if let Ok(mut r) = self.records.write() {
            r.insert(
                (digest(&self.key, subject), scope.into()),
                ConsentRecord {
                    granted_at: at,
                    withdrawn_at: None,
                },
            );
        }
    }

    /// Records that `subject` withdraws consent to `scope` at time `at`. Takes effect on the next
    /// lookup. Withdrawing what was never granted is a no-op.
    pub fn withdraw(&self, subject: &SubjectId, scope: ConsentScope<'_>, at: u64) {
        if let Ok(mut r) = self.records.write()
            && let Some(rec) = r.get_mut(&(digest(&self.key, subject), scope.into()))
        {
            rec.withdrawn_at = Some(at);
        }
    }

    /// The record for `subject` and `scope`, if consent was ever given.
    pub fn record(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> Option<ConsentRecord> {
        self.records
            .read()
            .ok()
            .and_then(|r| r.get(&(digest(&self.key, subject), scope.into())).copied())
    }
}

impl ConsentRegistry for MemoryConsent {
    fn is_granted(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> bool {
        self.record(subject, scope)
            .is_some_and(|r| r.withdrawn_at.is_none())
    }

    fn change(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        granted: bool,
        at: u64,
        _actor: &crate::policy::PrincipalId,
    ) -> Result<(), crate::Error> {
        if granted {
            self.grant(subject, scope, at);
        } else {
            self.withdraw(subject, scope, at);
        }
        Ok(())
    }
}

impl<C: ConsentRegistry + ?Sized> ConsentRegistry for std::sync::Arc<C> {
    fn is_granted(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> bool {
        (**self).is_granted(subject, scope)
    }
    fn is_granted_async(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> ConsentFuture {
        (**self).is_granted_async(subject, scope)
    }
    fn change(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        granted: bool,
        at: u64,
        actor: &crate::policy::PrincipalId,
    ) -> Result<(), crate::Error> {
        (**self).change(subject, scope, granted, at, actor)
    }
}
