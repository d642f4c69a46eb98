//! `Guard::reveal_async` and `mask_async` decide, record and open exactly as the blocking calls
//! do (same outcomes, same records, the caller's line), await the sink's and the registry's
//! async methods, and fail closed when the awaited record fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fieldseal::builtin::{Marketing, Service};
use fieldseal::*;

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .block_on(f)
}

/// Counts which path was used; fails `record_async` on request.
#[derive(Debug, Default)]
struct Probe {
    inner: MemorySink,
    sync_calls: AtomicUsize,
    async_calls: AtomicUsize,
    fail_async: std::sync::atomic::AtomicBool,
}

impl AuditSink for Probe {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        self.sync_calls.fetch_add(1, Ordering::Relaxed);
        self.inner.record(event)
    }
    fn record_async(&self, event: &AuditEvent<'_>) -> AuditFuture {
        self.async_calls.fetch_add(1, Ordering::Relaxed);
        let r = if self.fail_async.load(Ordering::Relaxed) {
            Err(AuditError::new(AuditErrorKind::Io))
        } else {
            self.inner.record(event)
        };
        Box::pin(async move {
            tokio::task::yield_now().await;
            r
        })
    }
}

/// A registry that answers only through its async method.
#[derive(Debug, Default)]
struct AsyncOnlyConsent {
    inner: MemoryConsent,
    async_calls: AtomicUsize,
}

impl ConsentRegistry for AsyncOnlyConsent {
    fn is_granted(&self, _: &SubjectId, _: ConsentScope<'_>) -> bool {
        panic!("the async path must not call the blocking lookup")
    }
    fn is_granted_async(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> ConsentFuture {
        self.async_calls.fetch_add(1, Ordering::Relaxed);
        let granted = self.inner.is_granted(subject, scope);
        Box::pin(async move {
            tokio::task::yield_now().await;
            granted
        })
    }
}

struct Fixture {
    guard: Guard,
    probe: Arc<Probe>,
    consent: Arc<AsyncOnlyConsent>,
}

fn fixture() -> Fixture {
    let probe = Arc::new(Probe::default());
    let consent = Arc::new(AsyncOnlyConsent::default());
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(
            ManifestPolicy::from_toml(include_str!("../examples/reference-policy.toml"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .consent(Arc::clone(&consent))
        .audit(Arc::clone(&probe))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        guard,
        probe,
        consent,
    }
}

fn subject() -> SubjectId {
    SubjectId::new("subject-7")
}

fn ctx() -> Context {
    Context::new()
        .table("inquiries")
        .column("contact")
        .row("7")
        .subject(&subject())
}

fn outcomes(p: &Probe) -> Vec<&'static str> {
    p.inner
        .records()
        .iter()
        .map(|r| r.outcome.label())
        .collect()
}

#[test]
fn same_decisions_and_records_as_the_blocking_path() {
    let f = fixture();
    let agent = Accessor::new("alice", [Role::new("support_agent")]);
    let abroad = Accessor::new("alice", [Role::new("support_agent")]).in_region("DE");
    let intern = Accessor::new("bob", [Role::new("intern")]);
    let marketer = Accessor::new("mia", [Role::new("marketing")]);
    let phone: Sealed<PhoneNumber, Service> = f
        .guard
        .seal(
            &PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}")),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let email: Sealed<Email, Marketing> = f
        .guard
        .seal(
            &Email::parse("lin@example.com").unwrap_or_else(|e| panic!("{e}")),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    block_on(async {
        let v = f.guard.reveal_async(&agent, &phone, &ctx()).await;
        assert_eq!(
            v.map(|p| p.expose_secret().as_str().to_owned()).ok(),
            Some("+8613800138000".to_owned())
        );
        let m = f.guard.mask_async(&agent, &phone, &ctx()).await;
        assert_eq!(m.ok().as_deref(), Some("+86 138****8000"));
        let denied = |r: Result<_, Error>| match r {
            Err(Error::Denied { reason }) => reason,
            _ => panic!("expected a denial"),
        };
        assert_eq!(
            denied(
                f.guard
                    .reveal_async(&intern, &phone, &ctx())
                    .await
                    .map(drop)
            ),
            DenyReason::NotPermitted
        );
        assert_eq!(
            denied(
                f.guard
                    .reveal_async(&abroad, &phone, &ctx())
                    .await
                    .map(drop)
            ),
            DenyReason::CrossBorder
        );
        assert_eq!(
            denied(
                f.guard
                    .reveal_async(&marketer, &email, &ctx())
                    .await
                    .map(drop)
            ),
            DenyReason::ConsentMissing
        );
        f.consent
            .inner
            .grant(&subject(), ConsentScope::Purpose("marketing"), 1);
        f.consent
            .inner
            .grant(&subject(), ConsentScope::CrossBorder, 1);
        assert!(
            f.guard
                .reveal_async(&marketer, &email, &ctx())
                .await
                .is_ok()
        );
        assert!(f.guard.reveal_async(&abroad, &phone, &ctx()).await.is_ok());
        f.consent
            .inner
            .withdraw(&subject(), ConsentScope::Purpose("marketing"), 2);
        assert_eq!(
            denied(
                f.guard
                    .reveal_async(&marketer, &email, &ctx())
                    .await
                    .map(drop)
            ),
            DenyReason::ConsentMissing
        );
        // A value copied to another row: allowed, then failed, both recorded.
        let other = Context::new()
            .table("inquiries")
            .column("contact")
            .row("8")
            .subject(&subject());
        assert!(matches!(
            f.guard.reveal_async(&agent, &phone, &other).await,
            Err(Error::Integrity)
        ));
    });
    assert_eq!(
        outcomes(&f.probe),
        [
            "allowed",
            "allowed",
            "denied:not_permitted",
            "denied:cross_border",
            "denied:consent_missing",
            "allowed",
            "allowed",
            "denied:consent_missing",
            "allowed",
            "failed:integrity",
        ]
    );
    assert_eq!(f.probe.sync_calls.load(Ordering::Relaxed), 0);
    assert_eq!(f.probe.async_calls.load(Ordering::Relaxed), 10);
    // Consent was asked only where a rule needed it: marketing (3 times), cross-border
    // (twice: the agent abroad); never for a denied verdict.
    assert_eq!(f.consent.async_calls.load(Ordering::Relaxed), 5);
}

#[test]
fn a_failed_async_record_fails_closed_at_the_callers_line() {
    let f = fixture();
    let agent = Accessor::new("alice", [Role::new("support_agent")]);
    let phone: Sealed<PhoneNumber, Service> = f
        .guard
        .seal(
            &PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}")),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    block_on(async {
        let c = ctx();
        let (fut, line) = (f.guard.reveal_async(&agent, &phone, &c), line!());
        drop(fut.await.unwrap_or_else(|e| panic!("{e}")));
        let site = f.probe.inner.records()[0].call_site;
        assert_eq!((site.file(), site.line()), (file!(), line));
        f.probe.fail_async.store(true, Ordering::Relaxed);
        let r = f.guard.reveal_async(&agent, &phone, &ctx()).await;
        assert!(matches!(r, Err(Error::Audit(e)) if e.kind() == AuditErrorKind::Io));
    });
}

/// A store whose blocking `get` may be switched off: the async path must use `get_async`.
#[derive(Debug, Default)]
struct AsyncGetOnly {
    inner: MemorySubjectKeys,
    forbid_sync_get: std::sync::atomic::AtomicBool,
}

impl SubjectKeyStore for AsyncGetOnly {
    fn get(&self, id: &SubjectKeyId) -> Result<Option<Vec<u8>>, Error> {
        assert!(
            !self.forbid_sync_get.load(Ordering::Relaxed),
            "the async path read the store through the blocking get"
        );
        self.inner.get(id)
    }
    fn insert(&self, id: &SubjectKeyId, wrapped: &[u8]) -> Result<Vec<u8>, Error> {
        self.inner.insert(id, wrapped)
    }
    fn delete(&self, id: &SubjectKeyId) -> Result<bool, Error> {
        self.inner.delete(id)
    }
    fn get_async(&self, id: &SubjectKeyId) -> SubjectKeyFuture {
        let found = self.inner.get(id);
        Box::pin(async move {
            tokio::task::yield_now().await;
            found
        })
    }
}

#[test]
fn subject_key_values_are_checked_through_the_async_store_read() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let store = Arc::new(AsyncGetOnly::default());
    let sink = Arc::new(MemorySink::new());
    let mut policy = AllowList::new();
    for action in [Action::Reveal, Action::Mask, Action::Erase] {
        policy = policy.allow::<Service>(Role::new("dpo"), FieldKind::Email, action);
    }
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(policy)
        .audit(Arc::clone(&sink))
        .subject_keys(SubjectKeys::new(
            kek,
            Arc::clone(&store) as Arc<dyn SubjectKeyStore>,
        ))
        .subject_key_purpose(PurposeId::of::<Service>(), SubjectKeyScope::Subject)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dpo = Accessor::new("d", [Role::new("dpo")]);
    let sealed: Sealed<Email, Service> = guard
        .seal(
            &Email::parse("lin@example.com").unwrap_or_else(|e| panic!("{e}")),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    block_on(async {
        store.forbid_sync_get.store(true, Ordering::Relaxed);
        let v = guard.reveal_async(&dpo, &sealed, &ctx()).await;
        assert_eq!(
            v.map(|e| e.expose_secret().as_str().to_owned())
                .ok()
                .as_deref(),
            Some("lin@example.com")
        );
        assert!(guard.mask_async(&dpo, &sealed, &ctx()).await.is_ok());
        store.forbid_sync_get.store(false, Ordering::Relaxed);
        guard
            .erase(&dpo, &subject(), Erasure::Subject)
            .unwrap_or_else(|e| panic!("{e}"));
        store.forbid_sync_get.store(true, Ordering::Relaxed);
        let r = guard.reveal_async(&dpo, &sealed, &ctx()).await;
        assert!(matches!(r, Err(Error::Key(KeyError::Erased))));
    });
    let last = sink.records().last().map(|r| r.outcome.label());
    assert_eq!(last, Some("failed:erased"));
}
