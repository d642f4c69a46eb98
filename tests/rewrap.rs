//! Re-sealing inside the crate: `Guard::rewrap`, `Guard::rewrap_any`, `Guard::repurpose` and
//! `Guard::rewrap_batch` (per-item results, one decision and one batch record per (purpose,
//! kind), fail-closed batch record, many threads for large batches).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use common::*;
use fieldseal::builtin::{Legal, Marketing, Service};
use fieldseal::*;

/// `file:line` of the line this is written on.
macro_rules! here {
    () => {
        concat!(file!(), ":", line!())
    };
}

const T0: u64 = 1_750_000_000;
const DAY: u64 = 86_400;
const REFERENCE: &str = include_str!("../examples/reference-policy.toml");

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn site(loc: &std::panic::Location<'_>) -> String {
    format!("{}:{}", loc.file(), loc.line())
}

fn custodian() -> Accessor {
    Accessor::new("rotation-job", [Role::new("key_custodian")])
}

/// Counts the random bytes drawn: a nonce is drawn for every value sealed.
#[derive(Debug, Default)]
struct CountingRandom(AtomicU64);

impl RandomSource for CountingRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
        self.0.fetch_add(1, Ordering::Relaxed);
        SystemRandom.fill(dest)
    }
}

/// Which records a [`Refusing`] sink refuses while its `refuse` flag is set.
#[derive(Debug, Clone, Copy)]
enum Which {
    /// Every record.
    All,
    /// Batch records only (they carry a count).
    Batch,
    /// A batch's per-item records only (no count).
    Items,
}

/// A memory sink that refuses the records `which` names while `refuse` is set, and notes the
/// sealed-at time of every record it accepts.
#[derive(Debug)]
struct Refusing {
    inner: MemorySink,
    refuse: AtomicBool,
    which: Which,
    sealed_at: std::sync::Mutex<Vec<u64>>,
}

impl Refusing {
    fn new(which: Which) -> Self {
        Refusing {
            inner: MemorySink::new(),
            refuse: AtomicBool::new(false),
            which,
            sealed_at: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl AuditSink for Refusing {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let matched = match self.which {
            Which::All => true,
            Which::Batch => event.count().is_some(),
            Which::Items => event.count().is_none(),
        };
        if self.refuse.load(Ordering::Relaxed) && matched {
            return Err(AuditError::new(AuditErrorKind::Rejected));
        }
        if let Ok(mut v) = self.sealed_at.lock() {
            v.push(event.sealed_at());
        }
        self.inner.record(event)
    }
}

/// Custodian may rewrap text and phone numbers for `service`, not e-mail; tester may do all.
fn policy() -> AllowList {
    let mut p = allow_all(&["service", "marketing", "legal"]);
    for kind in [FieldKind::Text, FieldKind::PhoneNumber] {
        p = p.allow::<Service>(Role::new("key_custodian"), kind, Action::Rewrap);
    }
    p
}

/// Counts the decisions asked of the policy.
#[derive(Debug, Default)]
struct Counting {
    inner: AllowList,
    asked: AtomicU64,
}

impl AccessPolicy for Counting {
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.inner.decide(request)
    }
}

fn guard_on(keyring: Arc<Keyring>, sink: Arc<dyn AuditSink>) -> Guard {
    guard_counting(keyring, sink).0
}

fn guard_counting(keyring: Arc<Keyring>, sink: Arc<dyn AuditSink>) -> (Guard, Arc<Counting>) {
    let counting = Arc::new(Counting {
        inner: policy(),
        asked: AtomicU64::new(0),
    });
    let g = ok(Guard::builder()
        .shared_keyring(keyring)
        .shared_policy(counting.clone())
        .audit(sink)
        .build());
    (g, counting)
}

#[test]
fn rewrap_reseals_under_the_active_version_and_keeps_the_value() {
    let keyring = Arc::new(ok(Keyring::generate()));
    let sink = Arc::new(MemorySink::new());
    let g = guard_on(Arc::clone(&keyring), sink.clone());
    let ctx = Context::new().table("notes").column("body").row("1");
    let old: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse("remember the milk")), &ctx));
    let v2 = ok(keyring.rotate());

    let (new, at) = (g.rewrap(&custodian(), &old, &ctx), here!());
    let new = ok(new);
    assert_eq!(new.key_version(), v2);
    assert_eq!(new.sealed_at(), old.sealed_at(), "retention keeps counting");
    assert_eq!(new.info().purpose(), old.info().purpose());
    assert_ne!(new.as_bytes(), old.as_bytes());
    let opened = ok(g.reveal(&tester(), &new, &ctx));
    assert_eq!(opened.expose_secret().as_str(), "remember the milk");
    // Only the new envelope authenticates in another row, and neither does elsewhere.
    assert!(matches!(
        g.reveal(&tester(), &new, &Context::new().row("2")),
        Err(Error::Integrity)
    ));

    let records = sink.records();
    assert_eq!(records[0].action, Action::Rewrap);
    assert_eq!(records[0].outcome, Outcome::Allowed);
    assert_eq!(
        records[0].key_version,
        KeyVersion::new(1).unwrap_or_else(|| panic!())
    );
    assert_eq!(records[0].count, None);
    assert_eq!(site(records[0].call_site), at);

    // Already under the active version: re-sealed anyway (fresh nonce), still v2.
    let again = ok(g.rewrap(&custodian(), &new, &ctx));
    assert_eq!(again.key_version(), v2);
    assert_ne!(again.as_bytes(), new.as_bytes());
}

#[test]
fn rewrap_needs_its_own_permission_and_fails_closed() {
    let keyring = Arc::new(ok(Keyring::generate()));
    let sink = Arc::new(Refusing::new(Which::All));
    let g = guard_on(Arc::clone(&keyring), sink.clone());
    let ctx = Context::new().row("1");
    let email: Sealed<Email, Service> = ok(g.seal(&ok(Email::parse("a@example.com")), &ctx));
    // Reveal is not rewrap, and rewrap of text is not rewrap of e-mail.
    let reader = Accessor::new("r", [Role::new("reader")]);
    for who in [&reader, &custodian()] {
        assert!(matches!(
            g.rewrap(who, &email, &ctx),
            Err(Error::Denied {
                reason: DenyReason::NotPermitted
            })
        ));
    }
    let text: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse("x")), &ctx));
    sink.refuse.store(true, Ordering::Relaxed);
    assert!(matches!(
        g.rewrap(&custodian(), &text, &ctx),
        Err(Error::Audit(_))
    ));
    sink.refuse.store(false, Ordering::Relaxed);
    // Invalid context: recorded, refused.
    let bad = Context::new().with("Bad", b"x");
    assert!(matches!(
        g.rewrap(&custodian(), &text, &bad),
        Err(Error::Context(_))
    ));
    // A retired version: allowed, then failed:key.
    ok(keyring.rotate());
    ok(keyring.retire(KeyVersion::new(1).unwrap_or_else(|| panic!())));
    assert!(matches!(
        g.rewrap(&custodian(), &text, &ctx),
        Err(Error::Key(KeyError::Retired { .. }))
    ));
    let outcomes: Vec<&str> = sink
        .inner
        .records()
        .iter()
        .map(|r| r.outcome.label())
        .collect();
    assert_eq!(
        outcomes,
        [
            "denied:not_permitted",
            "denied:not_permitted",
            "failed:context",
            "allowed",
            "failed:key"
        ]
    );
}

#[test]
fn rewrap_any_matches_rewrap() {
    let keyring = Arc::new(ok(Keyring::generate()));
    let sink = Arc::new(MemorySink::new());
    let g = guard_on(Arc::clone(&keyring), sink.clone());
    let ctx = Context::new().row("5");
    let typed: Sealed<PhoneNumber, Service> =
        ok(g.seal(&ok(PhoneNumber::parse("+8613800138000")), &ctx));
    let v2 = ok(keyring.rotate());
    let any = ok(g.rewrap_any(&custodian(), &AnySealed::from(typed.clone()), &ctx));
    assert_eq!(any.key_version(), v2);
    let back: Sealed<PhoneNumber, Service> = ok(Sealed::try_from(any));
    assert_eq!(
        ok(g.reveal(&tester(), &back, &ctx))
            .expose_secret()
            .as_str(),
        "+8613800138000"
    );
    let typed_again = ok(g.rewrap(&custodian(), &typed, &ctx));
    assert_eq!(typed_again.key_version(), v2);
    // Records: the dynamic rewrap, the reveal, the typed rewrap.
    let r = sink.records();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].action, Action::Rewrap);
    assert_eq!(r[0].action, r[2].action);
    assert_eq!(r[0].outcome, r[2].outcome);
    assert_eq!(r[0].purpose, r[2].purpose);
    assert_eq!(r[0].kind, r[2].kind);
    assert_eq!(r[0].key_version, r[2].key_version);
}

/// Service and legal are contracts and obligations; marketing needs the subject's consent.
const REPURPOSE_POLICY: &str = r#"
version = 1
home_region = "CN"

[cross_border]
rule = "consent"

[categories.contact]
kinds = ["email"]
purposes = ["service", "legal", "marketing"]

[purposes.service]
legal_basis = "contract"
retention_days = 730

[purposes.legal]
legal_basis = "legal_obligation"
retention_days = 1825

[purposes.marketing]
legal_basis = "consent"
retention_days = 365
withdrawable = true

[roles.dpo.grants.service]
repurpose = ["email"]
[roles.dpo.grants.legal]
repurpose = ["email"]
reveal = ["email"]
[roles.dpo.grants.marketing]
repurpose = ["email"]
"#;

#[test]
fn repurpose_is_decided_for_both_purposes_and_keeps_the_value() {
    let consent = MemoryConsent::new();
    consent.grant(
        &SubjectId::new("u-1"),
        ConsentScope::Purpose("marketing"),
        T0,
    );
    let sink = Arc::new(MemorySink::new());
    let g = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(ok(ManifestPolicy::from_toml(REPURPOSE_POLICY)))
        .consent(consent)
        .audit(sink.clone())
        .build());
    let officer = Accessor::new("dpo-1", [Role::new("dpo")]);
    let ctx = Context::new()
        .table("users")
        .row("1")
        .subject(&SubjectId::new("u-2"));
    let s: Sealed<Email, Service> = ok(g.seal(&ok(Email::parse("a@example.com")), &ctx));
    let (held, at) = (g.repurpose::<_, _, Legal>(&officer, &s, &ctx), here!());
    let held = ok(held);
    assert_eq!(held.info().purpose().as_str(), "legal");
    assert_eq!(held.sealed_at(), s.sealed_at());
    let records = sink.records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (
            records[0].purpose.as_ref().map(PurposeId::as_str),
            records[1].purpose.as_ref().map(PurposeId::as_str)
        ),
        (Some("service"), Some("legal"))
    );
    assert!(records.iter().all(|r| r.action == Action::Repurpose
        && r.outcome == Outcome::Allowed
        && site(r.call_site) == at));
    // The value itself is unchanged.
    let opened = ok(g.reveal(&officer, &held, &ctx));
    assert_eq!(opened.expose_secret().as_str(), "a@example.com");

    // Entering marketing needs the subject's consent to marketing: u-2 has none.
    sink.clear();
    let refused = g.repurpose::<_, _, Marketing>(&officer, &s, &ctx);
    assert!(matches!(
        refused,
        Err(Error::Denied {
            reason: DenyReason::ConsentMissing
        })
    ));
    let labels: Vec<(String, &str)> = sink
        .records()
        .iter()
        .map(|r| {
            (
                r.purpose
                    .as_ref()
                    .map(PurposeId::to_string)
                    .unwrap_or_default(),
                r.outcome.label(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("service".to_string(), "allowed"),
            ("marketing".to_string(), "denied:consent_missing")
        ]
    );
    // u-1 consented: the same move goes through.
    let ctx1 = Context::new()
        .table("users")
        .row("1")
        .subject(&SubjectId::new("u-1"));
    let s1: Sealed<Email, Service> = ok(g.seal(&ok(Email::parse("a@example.com")), &ctx1));
    let m: Sealed<Email, Marketing> = ok(g.repurpose(&officer, &s1, &ctx1));
    // Without the permission on the purpose it leaves, nothing else is asked.
    sink.clear();
    let clerk = Accessor::new("c", [Role::new("clerk")]);
    assert!(matches!(
        g.repurpose::<_, _, Service>(&clerk, &m, &ctx1),
        Err(Error::Denied { .. })
    ));
    assert_eq!(sink.len(), 1);
    // Rewrap permission is not repurpose permission.
    let custodian_guard = guard();
    let t: Sealed<Text, Service> = ok(custodian_guard.seal(&ok(Text::parse("x")), &ctx1));
    assert!(
        custodian_guard
            .repurpose::<_, _, Legal>(&custodian(), &t, &ctx1)
            .is_err()
    );
}

#[test]
fn rewrap_never_changes_the_purpose() {
    let g = guard();
    let ctx = Context::new().row("1");
    let s: Sealed<Text, Marketing> = ok(g.seal(&ok(Text::parse("x")), &ctx));
    let any = AnySealed::from(s);
    let report = ok(g.rewrap_batch(&tester(), [(any, ctx)]));
    assert_eq!(report.rewrapped(), 1);
    assert_eq!(
        report.results()[0]
            .as_ref()
            .map(AnySealed::purpose_label)
            .ok(),
        Some("marketing")
    );
}

/// What was planted in an item of the corrupted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planted {
    Fine,
    BitFlip,
    WrongContext,
    InvalidContext,
    DeniedKind,
    Retired,
    BadCommitment,
}

/// Each item's error (its `Debug` form), or `None` for an item re-sealed.
fn item_errors(report: &RewrapReport) -> Vec<Option<String>> {
    report
        .results()
        .iter()
        .map(|r| r.as_ref().err().map(|e| format!("{e:?}")))
        .collect()
}

fn ctx_of(i: usize) -> Context {
    Context::new()
        .table("customers")
        .column("note")
        .row(&i.to_string())
}

#[test]
fn a_batch_reports_exactly_the_bad_items_and_rewraps_the_rest() {
    const N: usize = 10_000;
    let keyring = Arc::new(ok(Keyring::generate()));
    let sink = Arc::new(MemorySink::new());
    let (g, decisions) = guard_counting(Arc::clone(&keyring), sink.clone());
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut planted = Vec::with_capacity(N);
    let mut items = Vec::with_capacity(N);
    let mut plain = Vec::with_capacity(N);
    // Items 0..500 under version 1, the rest under version 2.
    for i in 0..N {
        if i == 500 {
            ok(keyring.rotate());
        }
        let r = rng.next();
        // Everything under version 1 is retired before the batch runs.
        let what = if i < 500 {
            Planted::Retired
        } else {
            match r % 100 {
                0 => Planted::BitFlip,
                1 => Planted::WrongContext,
                2 => Planted::DeniedKind,
                3 => Planted::BadCommitment,
                4 if i % 7 == 0 => Planted::InvalidContext,
                _ => Planted::Fine,
            }
        };
        let ctx = ctx_of(i);
        let text = format!("note {i}");
        let sealed: AnySealed = match (what, i % 3) {
            (Planted::DeniedKind, _) => {
                let e: Sealed<Email, Service> =
                    ok(g.seal(&ok(Email::parse(&format!("u{i}@example.com"))), &ctx));
                e.into()
            }
            (_, 0) => {
                let p: Sealed<PhoneNumber, Service> =
                    ok(g.seal(&ok(PhoneNumber::parse("+8613800138000")), &ctx));
                p.into()
            }
            _ => {
                let t: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse(&text)), &ctx));
                t.into()
            }
        };
        let mut bytes = sealed.into_bytes();
        let header = ok(EnvelopeInfo::from_bytes(&bytes));
        let body_at = bytes.len() - header.ciphertext_len() - 16;
        match what {
            Planted::BitFlip => {
                let at = body_at + (r as usize >> 8) % (bytes.len() - body_at);
                bytes[at] ^= 1 << (r % 8);
            }
            Planted::BadCommitment => {
                // The commitment sits just before the nonce, 28 bytes before the body.
                bytes[body_at - 12 - 16] ^= 0x40;
            }
            _ => {}
        }
        let ctx = match what {
            Planted::WrongContext => ctx_of(i + N),
            Planted::InvalidContext => ctx.with("Not Valid", b"x"),
            _ => ctx,
        };
        plain.push(text);
        planted.push(what);
        items.push((ok(AnySealed::from_vec(bytes)), ctx));
    }
    for kind in [
        Planted::Fine,
        Planted::BitFlip,
        Planted::WrongContext,
        Planted::InvalidContext,
        Planted::DeniedKind,
        Planted::Retired,
        Planted::BadCommitment,
    ] {
        assert!(planted.contains(&kind), "{kind:?} never planted");
    }
    let inputs: Vec<Vec<u8>> = items.iter().map(|(s, _)| s.as_bytes().to_vec()).collect();
    let v3 = ok(keyring.rotate());
    ok(keyring.retire(KeyVersion::new(1).unwrap_or_else(|| panic!())));
    sink.clear();

    let asked = decisions.asked.load(Ordering::Relaxed);
    let (report, at) = (g.rewrap_batch(&custodian(), items), here!());
    let report = ok(report);
    assert_eq!(report.len(), N);
    assert_eq!(
        decisions.asked.load(Ordering::Relaxed) - asked,
        3,
        "one decision per (purpose, kind): text, phone number, e-mail"
    );

    let mut expected_failed = BTreeMap::new();
    for (i, p) in planted.iter().enumerate() {
        if *p != Planted::Fine {
            expected_failed.insert(i, *p);
        }
    }
    let failed: BTreeMap<usize, Planted> =
        report.failures().map(|(i, _)| (i, planted[i])).collect();
    assert_eq!(failed, expected_failed, "exactly the planted items fail");
    assert_eq!(report.failed(), expected_failed.len());
    assert_eq!(report.rewrapped(), N - expected_failed.len());
    for (i, e) in report.failures() {
        let fits = match planted[i] {
            Planted::BitFlip | Planted::WrongContext | Planted::BadCommitment => {
                matches!(e, Error::Integrity)
            }
            Planted::InvalidContext => matches!(e, Error::Context(_)),
            Planted::DeniedKind => matches!(
                e,
                Error::Denied {
                    reason: DenyReason::NotPermitted
                }
            ),
            Planted::Retired => matches!(e, Error::Key(KeyError::Retired { .. })),
            Planted::Fine => false,
        };
        assert!(fits, "item {i}: {:?} gave {e:?}", planted[i]);
    }

    // Every other item opens under the new version, in its own context, with its value.
    for (i, r) in report.results().iter().enumerate() {
        let Ok(new) = r else { continue };
        assert_eq!(new.key_version(), v3);
        assert_ne!(new.as_bytes(), &inputs[i][..]);
        assert_eq!(new.as_bytes().len(), inputs[i].len());
        assert_eq!(
            new.sealed_at(),
            ok(EnvelopeInfo::from_bytes(&inputs[i])).sealed_at()
        );
        let opened = ok(g.reveal_any(&tester(), new, &ctx_of(i)));
        let text = opened.expose_text();
        match new.kind() {
            FieldKind::Text => assert_eq!(text.as_str(), plain[i]),
            FieldKind::PhoneNumber => assert_eq!(text.as_str(), "+8613800138000"),
            k => panic!("unexpected kind {k}"),
        }
    }

    // Audit: one batch record per (purpose, kind), then one record per failed item.
    let records: Vec<AuditRecord> = sink
        .records()
        .into_iter()
        .filter(|r| r.action == Action::Rewrap)
        .collect();
    assert!(records.iter().all(|r| site(r.call_site) == at));
    let batch: Vec<&AuditRecord> = records.iter().filter(|r| r.count.is_some()).collect();
    assert_eq!(batch.len(), 3, "{batch:?}");
    let count_of = |kind| {
        batch
            .iter()
            .find(|r| r.kind == Some(kind))
            .map(|r| (r.outcome, r.count))
            .unwrap_or_else(|| panic!("no batch record for {kind}"))
    };
    let denied_kind = planted
        .iter()
        .filter(|p| **p == Planted::DeniedKind)
        .count() as u64;
    let invalid = planted
        .iter()
        .filter(|p| **p == Planted::InvalidContext)
        .count() as u64;
    assert_eq!(
        count_of(FieldKind::Email),
        (Outcome::Denied(DenyReason::NotPermitted), Some(denied_kind))
    );
    let (text_outcome, text_n) = count_of(FieldKind::Text);
    let (phone_outcome, phone_n) = count_of(FieldKind::PhoneNumber);
    assert_eq!(
        (text_outcome, phone_outcome),
        (Outcome::Allowed, Outcome::Allowed)
    );
    assert_eq!(
        text_n.unwrap_or(0) + phone_n.unwrap_or(0),
        (N as u64) - denied_kind - invalid,
        "admitted items"
    );
    assert!(batch.iter().all(|r| r.key_version == v3));
    let per_item: Vec<&AuditRecord> = records.iter().filter(|r| r.count.is_none()).collect();
    assert_eq!(
        per_item.len() as u64,
        expected_failed.len() as u64 - denied_kind,
        "one record per item failed on its own"
    );
    let failed_kinds = |label: &str| {
        per_item
            .iter()
            .filter(|r| r.outcome.label() == label)
            .count()
    };
    assert_eq!(failed_kinds("failed:context") as u64, invalid);
    assert_eq!(
        failed_kinds("failed:key"),
        planted.iter().filter(|p| **p == Planted::Retired).count()
    );
    assert_eq!(
        failed_kinds("failed:integrity"),
        planted
            .iter()
            .filter(|p| matches!(
                p,
                Planted::BitFlip | Planted::WrongContext | Planted::BadCommitment
            ))
            .count()
    );
}

#[test]
fn a_refused_batch_record_reseals_nothing() {
    let keyring = Arc::new(ok(Keyring::generate()));
    let sink = Arc::new(Refusing::new(Which::Batch));
    let random = Arc::new(CountingRandom::default());
    let g = ok(Guard::builder()
        .shared_keyring(Arc::clone(&keyring))
        .policy(policy())
        .audit(sink.clone())
        .dangerous_random_source(random.clone())
        .build());
    let items: Vec<(AnySealed, Context)> = (0..5000)
        .map(|i| {
            let s: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse("x")), &ctx_of(i)));
            (s.into(), ctx_of(i))
        })
        .collect();
    ok(keyring.rotate());
    sink.inner.clear();
    let drawn = random.0.load(Ordering::Relaxed);
    sink.refuse.store(true, Ordering::Relaxed);
    let got = g.rewrap_batch(&custodian(), items.clone());
    assert!(matches!(got, Err(Error::Audit(_))), "{got:?}");
    assert_eq!(
        random.0.load(Ordering::Relaxed),
        drawn,
        "no nonce drawn: nothing was re-sealed"
    );
    assert!(sink.inner.is_empty());
    // Once the sink accepts, the same batch goes through.
    sink.refuse.store(false, Ordering::Relaxed);
    let report = ok(g.rewrap_batch(&custodian(), items));
    assert_eq!(report.rewrapped(), 5000);
}

/// Consent, retention and residency are checked per item (they depend on each item's subject
/// and age); the refused items get records of their own.
#[test]
fn a_batch_checks_each_items_consent_and_retention() {
    let consent = MemoryConsent::new();
    consent.grant(
        &SubjectId::new("u-yes"),
        ConsentScope::Purpose("marketing"),
        T0,
    );
    let clock = Arc::new(FixedClock::new(T0));
    let sink = Arc::new(Refusing::new(Which::All));
    let g = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(ok(ManifestPolicy::from_toml(REFERENCE)))
        .consent(consent)
        .clock(clock.clone())
        .audit(sink.clone())
        .build());
    let admin = Accessor::new("k", [Role::new("key_admin")]);
    let mut items = Vec::new();
    for (i, who) in ["u-yes", "u-no", "u-yes", "u-no"].iter().enumerate() {
        let ctx = Context::new()
            .row(&i.to_string())
            .subject(&SubjectId::new(*who));
        let s: Sealed<Email, Marketing> = ok(g.seal(&ok(Email::parse("a@example.com")), &ctx));
        items.push((AnySealed::from(s), ctx));
    }
    clock.set(T0 + 200 * DAY);
    let ctx = Context::new().row("old");
    // (An ID number: the reference manifest collects no free text for `legal`.)
    let s: Sealed<IdNumber, Legal> = ok(g.seal(&ok(IdNumber::parse("11010519491231002X")), &ctx));
    items.push((s.into(), ctx));
    // The marketing values are 200 days old (retention 365): still fine. Then a service value
    // sealed 800 days ago (retention 730) has expired.
    clock.set(T0 - 600 * DAY);
    let ctx = Context::new().row("older");
    let s: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse("x")), &ctx));
    items.push((s.into(), ctx));
    clock.set(T0 + 200 * DAY);
    sink.inner.clear();
    ok(sink.sealed_at.lock().map_err(|_| "poisoned")).clear();
    let report = ok(g.rewrap_batch(&admin, items));
    let errors = item_errors(&report);
    assert_eq!(
        errors,
        [
            None,
            Some("Denied { reason: ConsentMissing }".into()),
            None,
            Some("Denied { reason: ConsentMissing }".into()),
            None,
            Some("Denied { reason: Expired }".into()),
        ]
    );
    let labels: Vec<(&str, Option<u64>)> = sink
        .inner
        .records()
        .iter()
        .map(|r| (r.outcome.label(), r.count))
        .collect();
    assert_eq!(
        labels,
        [
            ("allowed", Some(2)),
            ("allowed", Some(1)),
            ("allowed", Some(0)),
            ("denied:consent_missing", None),
            ("denied:consent_missing", None),
            ("denied:expired", None),
        ]
    );
    // A batch record carries the oldest sealed-at time of its items (refused ones included); an
    // item's record, the item's own.
    assert_eq!(
        *ok(sink.sealed_at.lock().map_err(|_| "poisoned")),
        [T0, T0 + 200 * DAY, T0 - 600 * DAY, T0, T0, T0 - 600 * DAY]
    );
    assert!(!report.is_empty());
    let by_value = report.into_results();
    assert_eq!(by_value.len(), 6);
    assert_eq!(
        by_value.iter().map(Result::is_ok).collect::<Vec<_>>(),
        [true, false, true, false, true, false]
    );
}

/// With best-effort denial auditing, a refused record of a denial (a denied group's batch
/// record, or an item's own `denied:*` record) is tolerated and the denial reported. A refused
/// record of anything else still fails: an allowed group's batch record fails the whole call,
/// an item's `failed:context` record fails that item with the sink's error. Without it, every
/// refused record fails.
#[test]
fn best_effort_denial_audit_in_a_batch() {
    let admin = Accessor::new("k", [Role::new("key_admin")]);
    let stranger = Accessor::new("m", [Role::new("nobody")]);
    for best_effort in [false, true] {
        let consent = Arc::new(MemoryConsent::new());
        consent.grant(
            &SubjectId::new("u-yes"),
            ConsentScope::Purpose("marketing"),
            T0,
        );
        let build = |which| {
            let sink = Arc::new(Refusing::new(which));
            let g = ok(Guard::builder()
                .keyring(ok(Keyring::generate()))
                .policy(ok(ManifestPolicy::from_toml(REFERENCE)))
                .consent(Arc::clone(&consent))
                .clock(Arc::new(FixedClock::new(T0)))
                .audit(sink.clone())
                .best_effort_denial_audit(best_effort)
                .build());
            (g, sink)
        };
        let seal_for = |g: &Guard, who: &str, row: &str| {
            let ctx = Context::new().row(row).subject(&SubjectId::new(who));
            let s: Sealed<Email, Marketing> = ok(g.seal(&ok(Email::parse("a@example.com")), &ctx));
            (AnySealed::from(s), ctx)
        };

        // Batch records refused: a denied group is tolerated only in best-effort mode; an
        // allowed group never.
        let (g, sink) = build(Which::Batch);
        let items = vec![seal_for(&g, "u-yes", "1"), seal_for(&g, "u-yes", "2")];
        sink.refuse.store(true, Ordering::Relaxed);
        let denied = g.rewrap_batch(&stranger, items.clone());
        if best_effort {
            let report = ok(denied);
            assert_eq!((report.len(), report.rewrapped()), (2, 0));
            for r in report.results() {
                assert!(
                    matches!(
                        r,
                        Err(Error::Denied {
                            reason: DenyReason::NotPermitted
                        })
                    ),
                    "{r:?}"
                );
            }
        } else {
            assert!(matches!(denied, Err(Error::Audit(_))), "{denied:?}");
        }
        let allowed = g.rewrap_batch(&admin, items);
        assert!(
            matches!(allowed, Err(Error::Audit(_))),
            "best_effort={best_effort}: {allowed:?}"
        );
        assert!(sink.inner.is_empty());

        // Per-item records refused: an item denied on its own (no consent) is tolerated only
        // in best-effort mode; an item with an invalid context never.
        let (g, sink) = build(Which::Items);
        let (text, _) = {
            let ctx = Context::new().row("3");
            let s: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse("x")), &ctx));
            (AnySealed::from(s), ctx)
        };
        let items = vec![
            seal_for(&g, "u-yes", "1"),
            seal_for(&g, "u-no", "2"),
            (text, Context::new().with("Bad", b"x")),
        ];
        sink.refuse.store(true, Ordering::Relaxed);
        let report = ok(g.rewrap_batch(&admin, items));
        let errors = item_errors(&report);
        let denial = if best_effort {
            "Denied { reason: ConsentMissing }"
        } else {
            "Audit(AuditError { kind: Rejected, source: None })"
        };
        assert_eq!(
            errors,
            [
                None,
                Some(denial.into()),
                Some("Audit(AuditError { kind: Rejected, source: None })".into()),
            ],
            "best_effort={best_effort}"
        );
        // Only the two batch records were accepted.
        assert_eq!(sink.inner.records().len(), 2);
    }
}

/// Batch records (with their count) and per-item records go into a chained log that verifies,
/// and a subject access report does not list rewraps as reads.
#[test]
fn batch_records_verify_in_a_chained_log() {
    let dir = ok(tempfile::tempdir());
    let (log, _) = open_log(dir.path(), Durability::Buffered, 4);
    let log = Arc::new(log);
    let keyring = Arc::new(ok(Keyring::generate()));
    let g = guard_on(Arc::clone(&keyring), log.clone());
    let subject = SubjectId::new("u-9");
    let mut items = Vec::new();
    for i in 0..20 {
        let ctx = ctx_of(i).subject(&subject);
        let s: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse("x")), &ctx));
        let ctx = if i == 3 { ctx_of(99) } else { ctx };
        items.push((AnySealed::from(s), ctx));
    }
    ok(keyring.rotate());
    let report = ok(g.rewrap_batch(&custodian(), items));
    assert_eq!((report.rewrapped(), report.failed()), (19, 1));
    ok(log.sync());
    drop(g);
    drop(log);
    let verified = verify_dir(dir.path());
    assert!(verified.is_valid(), "{:?}", verified.fault);
    let entries = verified.records();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].count, Some(20));
    assert_eq!(entries[0].action, "rewrap");
    assert_eq!(entries[0].subject, None);
    assert_eq!(entries[1].count, None);
    assert_eq!(entries[1].outcome, "failed:integrity");
    let key = AuditKey::from_bytes(AUDIT_KEY).pseudonym_key();
    assert!(ok(verified.subject_access(&key, &subject)).is_empty());
}

/// A value under the longest purpose label (the longest header without a subject key) is
/// re-sealed in a batch like any other.
#[test]
fn a_batch_rewraps_the_longest_purpose_label() {
    let label = "p".repeat(MAX_PURPOSE_LABEL);
    let purpose = ok(PurposeId::new(&label));
    let keyring = Arc::new(ok(Keyring::generate()));
    let g = ok(Guard::builder()
        .shared_keyring(Arc::clone(&keyring))
        .policy(allow_all(&[label.as_str()]))
        .audit(MemorySink::new())
        .build());
    let ctx = ctx_of(1);
    let value = ok(AnyValue::parse(FieldKind::Text, "longest"));
    let sealed = ok(g.seal_any(&value, &purpose, &ctx));
    let v2 = ok(keyring.rotate());
    let report = ok(g.rewrap_batch(&tester(), [(sealed, ctx.clone())]));
    assert_eq!(report.rewrapped(), 1, "{:?}", report.results());
    let out = ok(report.results()[0].as_ref().map_err(|e| e.to_string()));
    assert_eq!(out.key_version(), v2);
    let opened = ok(g.reveal_any(&tester(), out, &ctx));
    assert_eq!(opened.expose_text().as_str(), "longest");
}

#[test]
fn an_empty_batch_writes_nothing() {
    let sink = Arc::new(MemorySink::new());
    let g = guard_with(ok(Keyring::generate()), sink.clone());
    let report = ok(g.rewrap_batch(&tester(), Vec::new()));
    assert!(report.is_empty());
    assert!(sink.is_empty());
    assert_eq!(
        format!("{report:?}"),
        "RewrapReport { items: 0, rewrapped: 0 }"
    );
}

/// Rewraps 1,000,000 envelopes and checks that every one opens under the new version. Run with
/// `cargo test --release --test rewrap -- --ignored --nocapture`.
#[test]
#[ignore = "a million envelopes: run in release mode on demand"]
fn rewrap_a_million() {
    const N: usize = 1_000_000;
    let keyring = Arc::new(ok(Keyring::generate()));
    let g = guard_on(Arc::clone(&keyring), Arc::new(MemorySink::new()));
    let started = Instant::now();
    let items: Vec<(AnySealed, Context)> = (0..N)
        .map(|i| {
            let ctx = ctx_of(i);
            let s: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse(&format!("note {i}"))), &ctx));
            (s.into(), ctx)
        })
        .collect();
    println!("sealed {N} in {:.2?}", started.elapsed());
    let v2 = ok(keyring.rotate());
    let started = Instant::now();
    let report = ok(g.rewrap_batch(&custodian(), items));
    let took = started.elapsed();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "rewrapped {} of {N} in {took:.2?}: {:.0} envelopes/s (load average {})",
        report.rewrapped(),
        N as f64 / took.as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(report.rewrapped(), N);
    let reader = ok(Guard::builder()
        .shared_keyring(keyring)
        .policy(policy())
        .audit(NullSink)
        .build());
    for (i, r) in report.results().iter().enumerate() {
        let new = r.as_ref().unwrap_or_else(|e| panic!("item {i}: {e}"));
        assert_eq!(new.key_version(), v2);
        let opened = ok(reader.reveal_any(&tester(), new, &ctx_of(i)));
        assert_eq!(opened.expose_text().as_str(), format!("note {i}"));
    }
}
