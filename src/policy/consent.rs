//! Consent records: who agreed to what, and when it was withdrawn.

use std::fmt;

use crossbeam_utils::sync::ShardedLock;
use rustc_hash::FxHashMap;

use crate::context::SubjectId;
use crate::crypto::kdf::PreparedMac;

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

impl ScopeKey {
    /// Whether this is `scope` (compared without allocating a key).
    fn is(&self, scope: ConsentScope<'_>) -> bool {
        match (self, scope) {
            (ScopeKey::Purpose(a), ConsentScope::Purpose(b)) => **a == *b,
            (ScopeKey::CrossBorder, ConsentScope::CrossBorder) => true,
            (ScopeKey::Share(a), ConsentScope::Share(b)) => **a == *b,
            _ => false,
        }
    }
}

/// One subject's consents (a handful of scopes: a short list beats a second hash).
type Scopes = Vec<(ScopeKey, ConsentRecord)>;

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
    /// Keyed by the subject's digest (uniform under a secret key, so a fast unkeyed hash is
    /// enough for the table). Every reveal of a consent-based purpose reads it: a sharded lock
    /// lets threads read without writing a shared reader count (a `std` `RwLock` read moves
    /// its cache line between cores on every lookup); a change takes every shard.
    records: ShardedLock<FxHashMap<[u8; 32], Scopes>>,
    /// Random per-registry key: records are keyed by HMAC-SHA256(key, subject id), so a dump of
    /// the registry does not reveal (or allow guessing) low-entropy subject identifiers. Its
    /// HMAC key schedule is computed once.
    key: PreparedMac,
}

impl Default for MemoryConsent {
    fn default() -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        rand::Rng::fill_bytes(&mut rand::rng(), key.as_mut());
        Self {
            records: ShardedLock::default(),
            key: PreparedMac::new(&key),
        }
    }
}

impl fmt::Debug for MemoryConsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self
            .records
            .read()
            .map_or(0, |r| r.values().map(Vec::len).sum::<usize>());
        f.debug_struct("MemoryConsent")
            .field("records", &n)
            .finish()
    }
}

fn digest(key: &PreparedMac, subject: &SubjectId) -> [u8; 32] {
    key.mac(&[subject.expose_secret().as_bytes()])
}

impl MemoryConsent {
    /// An empty registry: nobody consents to anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `subject` consents to `scope` at time `at` (Unix seconds).
    pub fn grant(&self, subject: &SubjectId, scope: ConsentScope<'_>, at: u64) {
        let rec = ConsentRecord {
            granted_at: at,
            withdrawn_at: None,
        };
        // The digest first: a change holds every shard's lock, so it holds them briefly.
        let digest = digest(&self.key, subject);
        if let Ok(mut r) = self.records.write() {
            let scopes = r.entry(digest).or_default();
            match scopes.iter_mut().find(|(k, _)| k.is(scope)) {
                Some((_, old)) => *old = rec,
                None => scopes.push((scope.into(), rec)),
            }
        }
    }

    /// Records that `subject` withdraws consent to `scope` at time `at`. Takes effect on the next
    /// lookup. Withdrawing what was never granted is a no-op.
    pub fn withdraw(&self, subject: &SubjectId, scope: ConsentScope<'_>, at: u64) {
        let digest = digest(&self.key, subject);
        if let Ok(mut r) = self.records.write()
            && let Some(scopes) = r.get_mut(&digest)
            && let Some((_, rec)) = scopes.iter_mut().find(|(k, _)| k.is(scope))
        {
            rec.withdrawn_at = Some(at);
        }
    }

    /// The record for `subject` and `scope`, if consent was ever given.
    pub fn record(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> Option<ConsentRecord> {
        let digest = digest(&self.key, subject);
        let r = self.records.read().ok()?;
        r.get(&digest)?
            .iter()
            .find(|(k, _)| k.is(scope))
            .map(|(_, rec)| *rec)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(c: &MemoryConsent, s: &str, scope: ConsentScope<'_>) -> Option<ConsentRecord> {
        c.record(&SubjectId::new(s), scope)
    }

    /// Readers on long-lived threads, each of which has looked the subject up before (so each
    /// has taken its shard of the lock, and any per-thread copy or cache would be filled), see a
    /// grant and a withdrawal made on another thread by their next lookup.
    #[test]
    fn changes_are_seen_by_readers_on_every_thread() {
        const READERS: usize = 4;
        let c = MemoryConsent::new();
        let s = SubjectId::new("subject-7");
        let scope = ConsentScope::Purpose("marketing");
        // Three phases: before any change, after the grant, after the withdrawal. Each reader
        // looks up once per phase; the barriers order the lookups around the changes.
        let barrier = std::sync::Barrier::new(READERS + 1);
        let seen = std::thread::scope(|t| {
            let readers: Vec<_> = (0..READERS)
                .map(|_| {
                    t.spawn(|| {
                        let mut seen = [false; 3];
                        for phase in &mut seen {
                            barrier.wait();
                            *phase = c.is_granted(&s, scope);
                            barrier.wait();
                        }
                        seen
                    })
                })
                .collect();
            for change in [None, Some(true), Some(false)] {
                match change {
                    Some(true) => c.grant(&s, scope, 1),
                    Some(false) => c.withdraw(&s, scope, 2),
                    None => {}
                }
                barrier.wait();
                barrier.wait();
            }
            readers
                .into_iter()
                .map(|r| r.join().unwrap_or_else(|_| panic!("reader panicked")))
                .collect::<Vec<_>>()
        });
        assert_eq!(seen, vec![[false, true, false]; READERS]);
        assert!(!c.is_granted(&s, scope));
    }

    /// Each (subject, scope) pair is a record of its own: same names under different scope
    /// kinds, other subjects and other purposes are never confused; granting again replaces
    /// the record (a withdrawal is lifted), withdrawing touches one scope only.
    #[test]
    fn records_are_per_subject_and_scope() {
        let c = MemoryConsent::new();
        let (a, b) = (SubjectId::new("a"), SubjectId::new("b"));
        c.grant(&a, ConsentScope::Purpose("x"), 1);
        c.grant(&a, ConsentScope::Share("x"), 2);
        c.grant(&a, ConsentScope::CrossBorder, 3);
        c.grant(&b, ConsentScope::Purpose("y"), 4);
        let granted = |at| {
            Some(ConsentRecord {
                granted_at: at,
                withdrawn_at: None,
            })
        };
        assert_eq!(rec(&c, "a", ConsentScope::Purpose("x")), granted(1));
        assert_eq!(rec(&c, "a", ConsentScope::Share("x")), granted(2));
        assert_eq!(rec(&c, "a", ConsentScope::CrossBorder), granted(3));
        assert_eq!(rec(&c, "a", ConsentScope::Purpose("y")), None);
        assert_eq!(rec(&c, "a", ConsentScope::Share("y")), None);
        assert_eq!(rec(&c, "b", ConsentScope::Purpose("y")), granted(4));
        assert_eq!(rec(&c, "b", ConsentScope::Purpose("x")), None);
        assert_eq!(rec(&c, "b", ConsentScope::CrossBorder), None);
        assert_eq!(rec(&c, "c", ConsentScope::Purpose("x")), None);
        assert!(format!("{c:?}").contains("records: 4"), "{c:?}");

        c.withdraw(&a, ConsentScope::Share("x"), 5);
        c.withdraw(&b, ConsentScope::Purpose("x"), 5); // never granted: no record appears
        assert_eq!(
            rec(&c, "a", ConsentScope::Share("x")),
            Some(ConsentRecord {
                granted_at: 2,
                withdrawn_at: Some(5)
            })
        );
        assert!(!c.is_granted(&a, ConsentScope::Share("x")));
        assert!(c.is_granted(&a, ConsentScope::Purpose("x")));
        assert_eq!(rec(&c, "b", ConsentScope::Purpose("x")), None);

        c.grant(&a, ConsentScope::Share("x"), 6);
        assert_eq!(rec(&c, "a", ConsentScope::Share("x")), granted(6));
        assert!(format!("{c:?}").contains("records: 4"), "{c:?}");
    }

    /// `change` grants and withdraws, directly and through an `Arc`; a registry that does not
    /// implement it refuses as read-only.
    #[test]
    fn change_grants_and_withdraws_or_refuses() {
        #[derive(Debug)]
        struct ReadOnly;
        impl ConsentRegistry for ReadOnly {
            fn is_granted(&self, _: &SubjectId, _: ConsentScope<'_>) -> bool {
                true
            }
        }
        let actor = crate::policy::PrincipalId::new("operator");
        let s = SubjectId::new("a");
        let scope = ConsentScope::Purpose("x");
        let c = std::sync::Arc::new(MemoryConsent::new());
        assert_eq!(c.change(&s, scope, true, 7, &actor).ok(), Some(()));
        assert!(c.is_granted(&s, scope));
        assert_eq!((*c).change(&s, scope, false, 8, &actor).ok(), Some(()));
        assert!(!c.is_granted(&s, scope));
        assert_eq!(
            c.record(&s, scope),
            Some(ConsentRecord {
                granted_at: 7,
                withdrawn_at: Some(8)
            })
        );
        let refused = ReadOnly.change(&s, scope, true, 9, &actor);
        assert!(
            matches!(
                refused,
                Err(crate::Error::Config(crate::ConfigError::ReadOnlyConsent))
            ),
            "{refused:?}"
        );
    }
}
