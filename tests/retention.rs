//! The retention sweep: with an injected clock, exactly the expired items are returned for
//! deletion or anonymization, per purpose, from their headers alone; the manifest's `on_expiry`
//! and `legal_hold` rules and their lint errors.

mod common;

use std::sync::Arc;

use fieldseal::*;
use proptest::prelude::*;

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;

const MANIFEST: &str = r#"
version = 1
home_region = "CN"

[purposes.service]
legal_basis = "contract"
retention_days = 30

[purposes.improvement]
legal_basis = "legitimate_interest"
retention_days = 10
on_expiry = "anonymize"

[purposes.legal]
legal_basis = "legal_obligation"
retention_days = 100

[purposes.marketing]
legal_basis = "consent"
retention_days = 5
withdrawable = true
on_expiry = "delete"

[roles.sweeper]
"#;

/// (label, retention in days, anonymized on expiry)
const PURPOSES: [(&str, u64, bool); 4] = [
    ("service", 30, false),
    ("improvement", 10, true),
    ("legal", 100, false),
    ("marketing", 5, false),
];

fn manifest() -> Manifest {
    Manifest::from_toml(MANIFEST).unwrap_or_else(|e| panic!("{e}"))
}

struct Fixture {
    guard: Guard,
    clock: Arc<FixedClock>,
    sink: Arc<MemorySink>,
}

fn fixture_with(sink: Arc<dyn AuditSink>, mem: Arc<MemorySink>) -> Fixture {
    let clock = Arc::new(FixedClock::new(T0));
    let policy = ManifestPolicy::new(manifest(), Engine::Native).unwrap_or_else(|e| panic!("{e}"));
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(policy)
        .audit(sink)
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        guard,
        clock,
        sink: mem,
    }
}

fn fixture() -> Fixture {
    let sink = Arc::new(MemorySink::new());
    fixture_with(Arc::clone(&sink) as Arc<dyn AuditSink>, sink)
}

fn sweeper() -> Accessor {
    Accessor::new("retention-job", [Role::new("sweeper")])
}

fn seal(f: &Fixture, purpose: &str, at: u64, row: usize) -> String {
    f.clock.set(at);
    let value = AnyValue::parse(FieldKind::Email, &format!("u{row}@example.com"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new().table("t").row(&row.to_string());
    f.guard
        .seal_any(
            &value,
            &PurposeId::new(purpose).unwrap_or_else(|e| panic!("{e}")),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .to_text()
}

fn expected(purpose: &str, sealed_at: u64, now: u64) -> RetentionDecision {
    let (_, days, anon) = PURPOSES
        .iter()
        .find(|(p, _, _)| *p == purpose)
        .copied()
        .unwrap_or_else(|| panic!("purpose"));
    let until = sealed_at + days * DAY;
    if now < until {
        RetentionDecision::Keep { until }
    } else if anon {
        RetentionDecision::AnonymizeThenDelete
    } else {
        RetentionDecision::Delete
    }
}

#[test]
fn exactly_the_expired_items_per_purpose() {
    let f = fixture();
    // Every purpose, sealed 0, 4, 6, 9, 11, 29, 31, 99 and 101 days before the sweep.
    let now = T0 + 200 * DAY;
    let ages = [0u64, 4, 6, 9, 11, 29, 31, 99, 101];
    let mut items = Vec::new();
    for (p, _, _) in PURPOSES {
        for age in ages {
            let at = now - age * DAY;
            items.push((p, at, seal(&f, p, at, items.len())));
        }
    }
    f.clock.set(now);
    let report = f
        .guard
        .retention_sweep(&sweeper(), items.iter().map(|(_, _, t)| t))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.now, now);
    assert_eq!(report.items.len(), items.len());
    for ((p, at, _), got) in items.iter().zip(&report.items) {
        let got = got.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.purpose.as_str(), *p);
        assert_eq!(got.sealed_at, *at);
        assert_eq!(got.kind, FieldKind::Email);
        assert_eq!(got.decision, expected(p, *at, now), "{p} sealed {at}");
    }
    // service (30 d): 31, 99, 101 expired; improvement (10 d): 11, 29, 31, 99, 101 anonymized;
    // legal (100 d): 101; marketing (5 d): 6 and older.
    let counts = |p: &str| report.per_purpose[&PurposeId::new(p).unwrap_or_else(|e| panic!("{e}"))];
    assert_eq!((counts("service").keep, counts("service").delete), (6, 3));
    assert_eq!(
        (
            counts("improvement").keep,
            counts("improvement").anonymize_then_delete,
            counts("improvement").delete
        ),
        (4, 5, 0)
    );
    assert_eq!((counts("legal").keep, counts("legal").delete), (8, 1));
    assert_eq!(
        (counts("marketing").keep, counts("marketing").delete),
        (2, 7)
    );
    assert_eq!(report.total.delete, 3 + 1 + 7);
    assert_eq!(report.total.anonymize_then_delete, 5);
    assert_eq!(report.errors, 0);
    let due: Vec<usize> = report
        .indices(RetentionDecision::AnonymizeThenDelete)
        .collect();
    assert_eq!(due.len(), 5);
    assert!(due.iter().all(|&i| items[i].0 == "improvement"));
}

#[test]
fn the_boundary_second_is_expired() {
    let f = fixture();
    let at = T0;
    let text = seal(&f, "service", at, 0);
    f.clock.set(at + 30 * DAY - 1);
    let r = f
        .guard
        .retention_sweep(&sweeper(), [&text])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.items[0].as_ref().map(|i| i.decision).ok(),
        Some(RetentionDecision::Keep {
            until: at + 30 * DAY
        })
    );
    f.clock.set(at + 30 * DAY);
    let r = f
        .guard
        .retention_sweep(&sweeper(), [&text])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.items[0].as_ref().map(|i| i.decision).ok(),
        Some(RetentionDecision::Delete)
    );
    // The reveal path agrees: the value is unreadable from that second on.
}

#[test]
fn headers_only_no_key_no_decryption() {
    let f = fixture();
    let text = seal(&f, "service", T0, 0);
    // Another guard, another keyring: it could not open the value, yet it decides.
    let other = fixture();
    other.clock.set(T0 + 31 * DAY);
    let r = other
        .guard
        .retention_sweep(&sweeper(), [&text])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.items[0].as_ref().map(|i| i.decision).ok(),
        Some(RetentionDecision::Delete)
    );
    // A damaged ciphertext (last byte of the tag) is still decided from its header.
    let any = AnySealed::from_text(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut bytes = any.into_bytes();
    if let Some(b) = bytes.last_mut() {
        *b ^= 1;
    }
    let r = other
        .guard
        .retention_sweep(&sweeper(), [Stored::Binary(&bytes)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.items[0].is_ok());
}

#[test]
fn bad_items_get_their_own_errors_and_the_rest_is_decided() {
    let f = fixture();
    let good = seal(&f, "marketing", T0, 0);
    // A purpose the manifest does not define (sealable: no categories).
    let unknown = seal(&f, "billing", T0, 1);
    f.clock.set(T0 + 6 * DAY);
    let junk = "fs1:AAAA".to_owned();
    let r = f
        .guard
        .retention_sweep(
            &sweeper(),
            [
                Stored::Text(&good),
                Stored::Text(&junk),
                Stored::Text(""),
                Stored::Binary(&[1, 2, 3]),
                Stored::Text(&unknown),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.items.len(), 5);
    assert_eq!(
        r.items[0].as_ref().map(|i| i.decision).ok(),
        Some(RetentionDecision::Delete)
    );
    for i in 1..4 {
        assert!(matches!(r.items[i], Err(Error::Format(_))), "{i}");
    }
    assert!(matches!(
        r.items[4],
        Err(Error::Config(ConfigError::NoPurposeRules))
    ));
    assert_eq!(r.errors, 4);
    assert_eq!(r.total.delete, 1);
}

#[test]
fn one_summary_record_with_the_count() {
    let f = fixture();
    let items: Vec<String> = (0..7).map(|i| seal(&f, "service", T0, i)).collect();
    let before = f.sink.len();
    f.guard
        .retention_sweep(&sweeper(), items.iter().chain([&"bad".to_owned()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let records = f.sink.records();
    assert_eq!(records.len(), before + 1);
    let r = &records[before];
    assert_eq!(r.action, AuditAction::RetentionSweep);
    assert_eq!(r.action.label(), "retention.sweep");
    assert_eq!(r.count, Some(8));
    assert_eq!(r.outcome, Outcome::Allowed);
    assert_eq!(r.principal.as_str(), "retention-job");
    assert_eq!((r.purpose.as_ref(), r.kind), (None, None));
}

#[derive(Debug)]
struct Refusing;
impl AuditSink for Refusing {
    fn record(&self, _: &AuditEvent<'_>) -> Result<(), AuditError> {
        Err(AuditError::new(AuditErrorKind::Rejected))
    }
}

#[test]
fn no_decisions_without_the_record() {
    let sealer = fixture();
    let text = seal(&sealer, "service", T0, 0);
    let f = fixture_with(Arc::new(Refusing), Arc::new(MemorySink::new()));
    f.clock.set(T0 + 365 * DAY);
    assert!(matches!(
        f.guard.retention_sweep(&sweeper(), [&text]),
        Err(Error::Audit(_))
    ));
}

#[test]
fn manifest_rules_defaults_and_lints() {
    let m = manifest();
    let rules = |p: &str| *m.purpose(p).unwrap_or_else(|| panic!("{p}"));
    assert_eq!(rules("service").on_expiry, ExpiryRule::Delete);
    assert_eq!(rules("improvement").on_expiry, ExpiryRule::Anonymize);
    assert_eq!(rules("marketing").on_expiry, ExpiryRule::Delete);
    assert!(
        rules("legal").legal_hold,
        "legal_obligation is held by default"
    );
    assert!(!rules("service").legal_hold);
    assert_eq!(
        ExpiryRule::from_label("anonymize"),
        Some(ExpiryRule::Anonymize)
    );
    assert_eq!(ExpiryRule::Delete.to_string(), "delete");

    let lint = |purpose_body: &str| {
        let text = format!("version = 1\nhome_region = \"CN\"\n[purposes.p]\n{purpose_body}\n");
        match Manifest::from_toml(&text) {
            Ok(m) => Ok(*m.purpose("p").unwrap_or_else(|| panic!("p"))),
            Err(ManifestError::Lint(errs)) => Err(errs),
            Err(e) => panic!("{e}"),
        }
    };
    let errs = lint("legal_basis = \"contract\"\nretention_days = 1\non_expiry = \"archive\"")
        .err()
        .unwrap_or_default();
    assert_eq!(
        errs,
        [LintError::UnknownExpiryRule {
            purpose: "p".into(),
            rule: "archive".into()
        }]
    );
    assert!(errs[0].to_string().contains("on_expiry"));
    let errs = lint(
        "legal_basis = \"consent\"\nretention_days = 1\nwithdrawable = true\nlegal_hold = true",
    )
    .err()
    .unwrap_or_default();
    assert_eq!(errs, [LintError::HoldOnConsent("p".into())]);
    // An explicit hold on a contract purpose; an explicit release of a legal one.
    let held = lint("legal_basis = \"contract\"\nretention_days = 1\nlegal_hold = true");
    assert!(held.is_ok_and(|r| r.legal_hold));
    let released =
        lint("legal_basis = \"legal_obligation\"\nretention_days = 1\nlegal_hold = false");
    assert!(released.is_ok_and(|r| !r.legal_hold));
    // A value of the wrong type is a parse error with its position.
    let text = "version = 1\nhome_region = \"CN\"\n[purposes.p]\nlegal_basis = \"contract\"\nretention_days = 1\nlegal_hold = \"yes\"\n";
    assert!(matches!(
        Manifest::from_toml(text),
        Err(ManifestError::Parse(ParseError { line: 6, .. }))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random values of every purpose sealed at random times, swept at a random time: each
    /// decision is the one computed from the rules, and the counts add up per purpose.
    #[test]
    fn sweep_matches_the_rules(
        seals in prop::collection::vec((0usize..4, 0u64..150 * DAY), 1..24),
        later in 0u64..150 * DAY,
    ) {
        let f = fixture();
        let items: Vec<(&str, u64, String)> = seals
            .iter()
            .enumerate()
            .map(|(i, &(p, off))| {
                let purpose = PURPOSES[p].0;
                (purpose, T0 + off, seal(&f, purpose, T0 + off, i))
            })
            .collect();
        let now = T0 + later;
        f.clock.set(now);
        let report = f
            .guard
            .retention_sweep(&sweeper(), items.iter().map(|(_, _, t)| t))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut due = 0;
        for ((p, at, _), got) in items.iter().zip(&report.items) {
            let got = got.as_ref().unwrap_or_else(|e| panic!("{e}"));
            let want = expected(p, *at, now);
            prop_assert_eq!(got.decision, want);
            due += usize::from(want.is_due());
        }
        prop_assert_eq!(report.total.delete + report.total.anonymize_then_delete, due);
        let sum: usize = report
            .per_purpose
            .values()
            .map(|c| c.keep + c.delete + c.anonymize_then_delete)
            .sum();
        prop_assert_eq!(sum, items.len());
    }
}
