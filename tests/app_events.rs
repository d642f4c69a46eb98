//! Lifecycle and application events in the audit chain: consent changes, policy reloads and
//! events the application records itself, with the order each one is made in.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use fieldseal::builtin::Marketing;
use fieldseal::*;

const REFERENCE: &str = include_str!("../examples/reference-policy.toml");

/// Passes events to a memory sink until switched to refuse.
#[derive(Debug, Default)]
struct Switch {
    refuse: AtomicBool,
    inner: MemorySink,
}

impl AuditSink for Switch {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(AuditError::new(AuditErrorKind::Rejected));
        }
        self.inner.record(event)
    }
}

struct Fixture {
    guard: Guard,
    policy: Arc<ManifestPolicy>,
    consent: Arc<MemoryConsent>,
    sink: Arc<Switch>,
}

fn fixture() -> Fixture {
    let policy = Arc::new(ManifestPolicy::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}")));
    let consent = Arc::new(MemoryConsent::new());
    let sink = Arc::new(Switch::default());
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .shared_policy(Arc::clone(&policy) as Arc<dyn AccessPolicy>)
        .consent(Arc::clone(&consent))
        .clock(Arc::new(FixedClock::new(1_800_000_000)) as Arc<dyn Clock>)
        .audit(Arc::clone(&sink))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        guard,
        policy,
        consent,
        sink,
    }
}

fn web() -> Accessor {
    Accessor::new("web-form", [Role::new("marketing")])
}

fn subject() -> SubjectId {
    SubjectId::new("subject-CANARY-77")
}

const MARKETING: ConsentScope<'static> = ConsentScope::Purpose("marketing");

#[test]
fn a_grant_is_recorded_before_it_takes_effect() {
    let f = fixture();
    f.sink.refuse.store(true, Ordering::SeqCst);
    let r = f.guard.grant_consent(&web(), &subject(), MARKETING);
    assert!(matches!(r, Err(Error::Audit(_))), "{r:?}");
    assert!(
        !f.consent.is_granted(&subject(), MARKETING),
        "an unaudited grant took effect"
    );

    f.sink.refuse.store(false, Ordering::SeqCst);
    f.guard
        .grant_consent(&web(), &subject(), MARKETING)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.consent.is_granted(&subject(), MARKETING));
    let r = f.sink.inner.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].action, AuditAction::ConsentGranted);
    assert_eq!(r[0].action.label(), "consent.grant");
    assert_eq!(
        r[0].purpose.as_ref().map(PurposeId::as_str),
        Some("marketing")
    );
    assert_eq!(r[0].kind, None);
    assert_eq!(r[0].time, 1_800_000_000);
}

#[test]
fn a_withdrawal_stands_even_when_the_record_fails() {
    let f = fixture();
    f.guard
        .grant_consent(&web(), &subject(), MARKETING)
        .unwrap_or_else(|e| panic!("{e}"));
    f.sink.refuse.store(true, Ordering::SeqCst);
    let r = f.guard.withdraw_consent(&web(), &subject(), MARKETING);
    assert!(matches!(r, Err(Error::Audit(_))), "{r:?}");
    assert!(
        !f.consent.is_granted(&subject(), MARKETING),
        "a failing sink kept consent alive"
    );

    f.sink.refuse.store(false, Ordering::SeqCst);
    f.guard
        .withdraw_consent(&web(), &subject(), ConsentScope::CrossBorder)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = f.sink.inner.records();
    let last = r.last().unwrap_or_else(|| panic!("no record"));
    assert_eq!(last.action, AuditAction::ConsentWithdrawn);
    assert_eq!(last.purpose, None, "cross-border consent names no purpose");
}

#[test]
fn consent_changes_through_the_guard_are_honoured_by_the_next_reveal() {
    let f = fixture();
    let email = Email::parse("lin@example.com").unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new().table("t").row("1").subject(&subject());
    let sealed: Sealed<Email, Marketing> =
        f.guard.seal(&email, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let mk = Accessor::new("m1", [Role::new("marketing")]);
    assert!(f.guard.reveal(&mk, &sealed, &ctx).is_err());
    f.guard
        .grant_consent(&web(), &subject(), MARKETING)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.guard.reveal(&mk, &sealed, &ctx).is_ok());
    f.guard
        .withdraw_consent(&web(), &subject(), MARKETING)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        f.guard.reveal(&mk, &sealed, &ctx),
        Err(Error::Denied {
            reason: DenyReason::ConsentMissing
        })
    ));
}

#[test]
fn consent_changes_need_a_writable_registry() {
    #[derive(Debug)]
    struct ReadOnly;
    impl ConsentRegistry for ReadOnly {
        fn is_granted(&self, _: &SubjectId, _: ConsentScope<'_>) -> bool {
            false
        }
    }
    let sink = Arc::new(MemorySink::new());
    let no_registry = guard_with(
        Keyring::generate().unwrap_or_else(|e| panic!("{e}")),
        Arc::clone(&sink),
    );
    assert!(matches!(
        no_registry.grant_consent(&web(), &subject(), MARKETING),
        Err(Error::Config(ConfigError::MissingConsent))
    ));
    let read_only = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["marketing"]))
        .consent(ReadOnly)
        .audit(Arc::clone(&sink))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        read_only.withdraw_consent(&web(), &subject(), MARKETING),
        Err(Error::Config(ConfigError::ReadOnlyConsent))
    ));
    assert!(sink.is_empty(), "a refused change was recorded");
    // A grant is recorded, then refused by the registry: the error says it did not take effect.
    assert!(matches!(
        read_only.grant_consent(&web(), &subject(), MARKETING),
        Err(Error::Config(ConfigError::ReadOnlyConsent))
    ));
}

#[test]
fn a_reload_is_recorded_before_it_is_installed() {
    let f = fixture();
    let admin = Accessor::new("ops-1", [Role::new("policy_admin")]);
    assert_eq!(f.policy.version(), 1);
    f.sink.refuse.store(true, Ordering::SeqCst);
    let m = Manifest::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        f.guard.reload_policy(&admin, &f.policy, m),
        Err(Error::Audit(_))
    ));
    assert_eq!(f.policy.version(), 1, "an unaudited reload was installed");

    f.sink.refuse.store(false, Ordering::SeqCst);
    let m = Manifest::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}"));
    let v = f
        .guard
        .reload_policy(&admin, &f.policy, m)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (v, f.policy.version()),
        (2, 2),
        "the failed reload used up a version"
    );
    let r = f.sink.inner.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].action, AuditAction::PolicyReloaded);
    assert_eq!(r[0].policy_version, 2);
    assert_eq!((r[0].purpose.as_ref(), r[0].kind), (None, None));
}

#[test]
fn application_events_join_the_chain_and_the_subject_report() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = open_log(dir.path(), Durability::Buffered, 100);
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["legal"]))
        .audit(log)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let counsel = Accessor::new("counsel-1", [Role::new("legal_counsel")]);
    let name = AppEventName::new("legal_disclosure").unwrap_or_else(|e| panic!("{e}"));
    let event = AppEvent::new(name)
        .purpose(PurposeId::new("legal").unwrap_or_else(|e| panic!("{e}")))
        .kind(FieldKind::IdNumber)
        .context(
            Context::new()
                .table("people")
                .row("CANARY-ROW")
                .subject(&subject()),
        )
        .recipient(RecipientName::new("authorities").unwrap_or_else(|e| panic!("{e}")))
        .reference(Reference::new("ORDER-2026-118").unwrap_or_else(|e| panic!("{e}")));
    guard
        .record_event(&counsel, &event)
        .unwrap_or_else(|e| panic!("{e}"));
    guard
        .record_event(&counsel, &AppEvent::new(name))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(guard);

    let report = verify_dir(dir.path());
    assert!(report.is_valid(), "{:?}", report.fault);
    let r = report.records();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].action, "app.legal_disclosure");
    assert_eq!(r[0].recipient.as_deref(), Some("authorities"));
    assert_eq!(r[0].reference.as_deref(), Some("ORDER-2026-118"));
    assert_eq!(
        (r[0].purpose.as_str(), r[0].kind.as_str()),
        ("legal", "id_number")
    );
    assert!(r[0].subject.is_some());
    assert_eq!((r[1].purpose.as_str(), r[1].kind.as_str()), ("-", "-"));
    assert_eq!(
        (r[1].recipient.as_ref(), r[1].reference.as_ref()),
        (None, None)
    );

    let trail = report
        .subject_events(&AuditKey::from_bytes(AUDIT_KEY).pseudonym_key(), &subject())
        .unwrap_or_else(|f| panic!("{f:?}"));
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].1.action, "app.legal_disclosure");
    assert_eq!(trail[0].1.recipient.as_deref(), Some("authorities"));

    let raw = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
        .collect::<Vec<u8>>();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("CANARY"), "a raw identifier reached the log");
}
