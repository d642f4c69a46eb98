//! Blind indexes: equal values always match; the measured false-positive rate over 100,000
//! values matches `2^-bits`; terms differ across purposes and index names; a query during a
//! rotation finds values indexed under either version; the `index` grant, consent and the audit
//! record apply; near-unique lengths for small domains are refused.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use fieldseal::builtin::{Marketing, Service};
use fieldseal::internal::analytics::Terms;
use fieldseal::*;
use proptest::prelude::*;

const REFERENCE: &str = include_str!("../examples/reference-policy.toml");

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn email(s: &str) -> Email {
    ok(Email::parse(s))
}

fn index<F: Field, P: Purpose>(name: &str, rows: u64) -> BlindIndex<F, P> {
    ok(BlindIndex::builder(name)
        .expected_rows(rows)
        .distinct_values(rows)
        .build())
}

fn users() -> Context {
    Context::new().table("users").column("email")
}

/// 100,000 stored values and 100,000 other values queried through the guard: the number of
/// (query, stored) pairs whose terms agree matches Q · N · 2^-b within six standard deviations.
///
/// The count is Σ_t q_t s_t over terms t (q_t, s_t: queries and stored values with term t, two
/// independent multinomials), whose variance is about Q N p (1 + Q p + N p) for p = 2^-b.
#[test]
fn false_positive_rate_matches_the_formula() {
    const N: u64 = 100_000;
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(allow_all(&["service"]))
        .audit(NullSink)
        .build());
    let login: BlindIndex<Email, Service> = index("login", N);
    assert_eq!(login.bits(), 15);
    let mut stored: HashMap<Vec<u8>, u64> = HashMap::new();
    for i in 0..N {
        let t = ok(guard.blind_index(
            &tester(),
            &email(&format!("user{i}@example.com")),
            &users(),
            &login,
        ));
        *stored.entry(t.to_bytes()).or_default() += 1;
    }
    let mut hits = 0u64;
    for i in 0..N {
        let q = ok(guard.index_query(
            &tester(),
            &email(&format!("other{i}@example.org")),
            &users(),
            &login,
        ));
        assert_eq!(q.terms().len(), 1);
        hits += stored.get(&q.terms()[0].to_bytes()).copied().unwrap_or(0);
    }
    let p = login.false_positive_rate();
    let (n, q) = (N as f64, N as f64);
    let expected = q * n * p;
    let sd = (q * n * p * (1.0 + q * p + n * p)).sqrt();
    let measured = hits as f64 / (q * n);
    eprintln!(
        "blind index, {} bits: measured false-positive rate {measured:.4e} ({hits} of {} pairs), formula 2^-{} = {p:.4e}, expected {expected:.0} ± {sd:.0}",
        login.bits(),
        N * N,
        login.bits()
    );
    assert!(
        (hits as f64 - expected).abs() <= 6.0 * sd,
        "{hits} vs {expected} ± {sd}"
    );
}

/// Equal values (after canonicalization) always match, under the guard and the pure form.
#[test]
fn equal_values_always_match() {
    let sink = Arc::new(MemorySink::new());
    let ring = Arc::new(ok(Keyring::generate()));
    let guard = ok(Guard::builder()
        .shared_keyring(Arc::clone(&ring))
        .policy(allow_all(&["service"]))
        .audit(Arc::clone(&sink))
        .build());
    let login: BlindIndex<Email, Service> = index("login", 1 << 30);
    let pure = ok(Terms::new(&ring, &login));
    for i in 0..2_000 {
        let stored = ok(guard.blind_index(
            &tester(),
            &email(&format!("User{i}@Example.COM")),
            &users(),
            &login,
        ));
        let q = ok(guard.index_query(
            &tester(),
            &email(&format!("User{i}@example.com")),
            &users(),
            &login,
        ));
        assert!(q.matches(&stored));
        assert!(q.matches_bytes(&stored.to_bytes()));
        assert_eq!(stored, pure.of(&email(&format!("User{i}@example.com"))));
    }
    // A sealed value indexes to the same term as its plaintext.
    let value = email("zhang.san@example.com");
    let sealed: Sealed<Email, Service> = ok(guard.seal(&value, &users().row("1")));
    let from_sealed = ok(guard.blind_index_sealed(&tester(), &sealed, &users().row("1"), &login));
    assert_eq!(
        from_sealed,
        ok(guard.blind_index(&tester(), &value, &users(), &login))
    );
    assert_eq!(sink.len(), 4_002);
    assert!(sink.records().iter().all(|r| r.action == Action::Index));
}

proptest! {
    #[test]
    fn terms_are_deterministic_and_sized(local in "[a-z0-9]{1,20}", bits in 16u8..=30) {
        let ring = ok(Keyring::single(RootKey::from_bytes([3; 32])));
        let idx: BlindIndex<Email, Service> = ok(BlindIndex::builder("login")
            .expected_rows(1 << 31)
            .distinct_values(1 << 31)
            .bits(bits)
            .build());
        let t = ok(Terms::new(&ring, &idx));
        let e = email(&format!("{local}@example.com"));
        let a = t.of(&e);
        prop_assert_eq!(a, t.of(&email(&format!("{local}@EXAMPLE.com"))));
        prop_assert_eq!(a.bits(), idx.bits());
        prop_assert_eq!(a.to_bytes().len(), usize::from(idx.bits()).div_ceil(8));
    }
}

/// Terms of one value differ across purposes, kinds' index names and root keys: over 20,000
/// values, agreements stay at the chance level 2^-b.
#[test]
fn terms_differ_across_purposes_and_index_names() {
    let ring = ok(Keyring::generate());
    let rows = 1 << 22; // 21-bit terms
    let svc = ok(Terms::new(&ring, &index::<Email, Service>("login", rows)));
    let mkt = ok(Terms::new(&ring, &index::<Email, Marketing>("login", rows)));
    let other = ok(Terms::new(&ring, &index::<Email, Service>("dedup", rows)));
    let (mut same_purpose, mut same_name) = (0, 0);
    for i in 0..20_000 {
        let e = email(&format!("u{i}@example.com"));
        let a = svc.of(&e);
        same_purpose += usize::from(a.to_bytes() == mkt.of(&e).to_bytes());
        same_name += usize::from(a.to_bytes() == other.of(&e).to_bytes());
    }
    // Expected 20,000 · 2^-21 ≈ 0.01 each.
    assert!(
        same_purpose <= 3 && same_name <= 3,
        "{same_purpose} {same_name}"
    );
}

/// During a rotation a query carries a term per live version and finds rows indexed under
/// either; re-indexing from the sealed value moves a row to the new version before the old one
/// is retired, after which the old term is no longer queried.
#[test]
fn rotation_queries_find_both_versions() {
    let ring = Arc::new(ok(Keyring::generate()));
    let guard = ok(Guard::builder()
        .shared_keyring(Arc::clone(&ring))
        .policy(allow_all(&["service"]))
        .audit(NullSink)
        .build());
    let login: BlindIndex<Email, Service> = index("login", 1 << 40);
    let a = email("old@example.com");
    let b = email("new@example.com");
    let row_a = users().row("a");
    let sealed_a: Sealed<Email, Service> = ok(guard.seal(&a, &row_a));
    let term_a = ok(guard.blind_index(&tester(), &a, &users(), &login));
    assert_eq!(term_a.version(), v(1));
    let v2 = ok(ring.rotate());
    let term_b = ok(guard.blind_index(&tester(), &b, &users(), &login));
    assert_eq!(term_b.version(), v2);
    let qa = ok(guard.index_query(&tester(), &a, &users(), &login));
    let qb = ok(guard.index_query(&tester(), &b, &users(), &login));
    assert_eq!(
        qa.terms()
            .iter()
            .map(IndexTerm::version)
            .collect::<Vec<_>>(),
        [v2, v(1)]
    );
    assert!(qa.matches(&term_a), "indexed under the old version");
    assert!(qb.matches(&term_b), "indexed under the new version");
    assert!(!qa.matches(&term_b) && !qb.matches(&term_a));
    // Re-index row a under the new version, then retire the old one.
    let term_a2 = ok(guard.blind_index_sealed(&tester(), &sealed_a, &row_a, &login));
    assert_eq!(term_a2.version(), v2);
    assert!(qa.matches(&term_a2));
    ok(ring.retire(v(1)));
    let qa = ok(guard.index_query(&tester(), &a, &users(), &login));
    assert_eq!(qa.terms().len(), 1);
    assert!(qa.matches(&term_a2));
    assert!(
        !qa.matches(&term_a),
        "the retired version's term is no longer queried"
    );
}

/// Index needs the `index` grant (reveal does not imply it); denials and allowed computations
/// are recorded with the action `index`; consent applies for consent-based purposes.
#[test]
fn index_needs_its_grant_consent_and_a_record() {
    let sink = Arc::new(MemorySink::new());
    let consent = Arc::new(MemoryConsent::new());
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(ok(ManifestPolicy::from_toml(REFERENCE)))
        .consent(Arc::clone(&consent))
        .audit(Arc::clone(&sink))
        .build());
    let agent = Accessor::new("alice", [Role::new("support_agent")]);
    let analyst = Accessor::new("sec", [Role::new("security_analyst")]);
    let marketer = Accessor::new("mia", [Role::new("marketing")]);
    let svc: BlindIndex<Email, Service> = index("login", 1 << 20);
    let sec: BlindIndex<Email, fieldseal::builtin::Security> = index("abuse", 1 << 20);
    let mkt: BlindIndex<Email, Marketing> = index("dedup", 1 << 20);
    let e = email("zhang.san@example.com");
    // The support agent may reveal service emails, not index them.
    assert!(matches!(
        guard.blind_index(&agent, &e, &users(), &svc),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    assert!(matches!(
        guard.index_query(&agent, &e, &users(), &svc),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    assert!(guard.blind_index(&analyst, &e, &users(), &sec).is_ok());
    // Marketing is consent-based: no subject or no consent, no term.
    let visitor = SubjectId::new("visitor-1");
    let with_subject = users().subject(&visitor);
    assert!(matches!(
        guard.blind_index(&marketer, &e, &with_subject, &mkt),
        Err(Error::Denied {
            reason: DenyReason::ConsentMissing
        })
    ));
    consent.grant(&visitor, ConsentScope::Purpose("marketing"), 0);
    assert!(
        guard
            .blind_index(&marketer, &e, &with_subject, &mkt)
            .is_ok()
    );
    let outcomes: Vec<(Option<Action>, Outcome)> = sink
        .records()
        .iter()
        .map(|r| (r.action.access(), r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                Some(Action::Index),
                Outcome::Denied(DenyReason::NotPermitted)
            ),
            (
                Some(Action::Index),
                Outcome::Denied(DenyReason::NotPermitted)
            ),
            (Some(Action::Index), Outcome::Allowed),
            (
                Some(Action::Index),
                Outcome::Denied(DenyReason::ConsentMissing)
            ),
            (Some(Action::Index), Outcome::Allowed),
        ]
    );
    assert!(
        sink.records()
            .iter()
            .all(|r| r.call_site.file().ends_with("blind_index.rs"))
    );
}

/// Nothing is computed unless the record was accepted, and an invalid context is refused.
#[test]
fn fail_closed_and_invalid_context() {
    #[derive(Debug)]
    struct Refuse;
    impl AuditSink for Refuse {
        fn record(&self, _: &AuditEvent<'_>) -> Result<(), AuditError> {
            Err(AuditError::new(AuditErrorKind::Rejected))
        }
    }
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(allow_all(&["service"]))
        .audit(Refuse)
        .build());
    let login: BlindIndex<Email, Service> = index("login", 1 << 20);
    let e = email("a@example.com");
    assert!(matches!(
        guard.blind_index(&tester(), &e, &users(), &login),
        Err(Error::Audit(_))
    ));
    assert!(matches!(
        guard.index_query(&tester(), &e, &users(), &login),
        Err(Error::Audit(_))
    ));
    let sink = Arc::new(MemorySink::new());
    let guard = guard_with(ok(Keyring::generate()), Arc::clone(&sink));
    let bad = Context::new().with("Bad Name", b"x");
    assert!(matches!(
        guard.blind_index(&tester(), &e, &bad, &login),
        Err(Error::Context(_))
    ));
    assert_eq!(
        sink.records()[0].outcome,
        Outcome::Failed(FailureKind::Context)
    );
}

/// The refusal rule: ID numbers of one district (a small domain) in a large table cannot get a
/// near-unique index; a longer explicit length is refused as near-unique.
#[test]
fn small_domains_are_refused() {
    let district = BlindIndex::<IdNumber, Service>::builder("dedup_id")
        .expected_rows(2_000_000)
        .distinct_values(2_000)
        .build();
    assert!(matches!(
        district,
        Err(Error::Index(IndexError::DomainTooSmall { min: 11, max: 9 }))
    ));
    let tiny = BlindIndex::<IdNumber, Service>::builder("dedup_id")
        .expected_rows(1_000_000)
        .distinct_values(1_000)
        .build();
    assert!(matches!(
        tiny,
        Err(Error::Index(IndexError::DomainTooSmall { min: 10, max: 8 }))
    ));
    let near = BlindIndex::<IdNumber, Service>::builder("dedup_id")
        .expected_rows(5_000)
        .distinct_values(5_000)
        .bits(20)
        .build();
    assert!(matches!(
        near,
        Err(Error::Index(IndexError::NearUnique { bits: 20, max: 11 }))
    ));
    let fine = ok(BlindIndex::<IdNumber, Service>::builder("dedup_id")
        .expected_rows(5_000)
        .distinct_values(5_000)
        .build());
    assert_eq!(fine.bits(), 11);
    // About D / 2^b ≥ 2 distinct values share each term.
    assert!(5_000 >> fine.bits() >= 2);
}

#[test]
fn terms_and_queries_do_not_show_in_debug() {
    let guard = guard();
    let login: BlindIndex<Email, Service> = index("login", 1 << 20);
    let e = email("zhang.san@example.com");
    let t = ok(guard.blind_index(&tester(), &e, &users(), &login));
    let q = ok(guard.index_query(&tester(), &e, &users(), &login));
    let dbg = format!("{t:?} {q:?} {login:?}");
    assert!(
        !dbg.contains(&t.to_hex()) && !dbg.contains("zhang"),
        "{dbg}"
    );
}
