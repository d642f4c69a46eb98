//! Anonymization for analytics: keyed pseudonyms (equal within a purpose, unrelated across
//! purposes, not computable without the key) and generalizations, through `Guard::anonymize` on
//! the reveal path (grant, consent, retention, residency, audit, fail closed).

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use fieldseal::builtin::{Improvement, Security, Service};
use fieldseal::internal::analytics::Pseudonyms;
use fieldseal::*;
use sha2::Digest as _;

const T0: u64 = 1_764_000_000;
const DAY: u64 = 86_400;
const REFERENCE: &str = include_str!("../examples/reference-policy.toml");

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn ip(n: u32) -> IpAddress {
    IpAddress::from(IpAddr::V4(Ipv4Addr::from(n)))
}

fn ctx(row: u64) -> Context {
    Context::new()
        .table("visits")
        .column("ip")
        .row(&row.to_string())
}

/// A sink that records into a memory sink and refuses while `refuse` is set.
#[derive(Debug, Default)]
struct Switch {
    inner: MemorySink,
    refuse: AtomicBool,
}

impl AuditSink for Switch {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(AuditError::new(AuditErrorKind::Rejected));
        }
        self.inner.record(event)
    }
}

/// 10^6 values: no two share a pseudonym within a purpose, and no pseudonym of one purpose
/// equals any pseudonym of another (0 collisions across purposes); recomputing gives the same.
#[test]
fn a_million_pseudonyms_collide_neither_within_nor_across_purposes() {
    const N: u32 = 1_000_000;
    let ring = ok(Keyring::generate());
    let improvement = ok(Pseudonyms::new(&ring, "improvement"));
    let security = ok(Pseudonyms::new(&ring, "security"));
    let mut a: HashSet<[u8; PSEUDONYM_LEN]> = HashSet::with_capacity(N as usize);
    for n in 0..N {
        a.insert(*improvement.of(&ip(n)).as_bytes());
    }
    assert_eq!(a.len(), N as usize, "collisions within a purpose");
    let mut across = 0usize;
    let mut b: HashSet<[u8; PSEUDONYM_LEN]> = HashSet::with_capacity(N as usize);
    for n in 0..N {
        let p = *security.of(&ip(n)).as_bytes();
        across += usize::from(a.contains(&p));
        b.insert(p);
    }
    assert_eq!(b.len(), N as usize);
    assert_eq!(across, 0, "pseudonyms collide across purposes");
    // Stable: the same value, the same pseudonym, every time.
    for n in (0..N).step_by(9_973) {
        assert_eq!(improvement.of(&ip(n)), improvement.of(&ip(n)));
        assert!(a.contains(improvement.of(&ip(n)).as_bytes()));
    }
    eprintln!("pseudonyms: {N} values x 2 purposes, 0 collisions within, {across} across");
}

/// Through the guard: equal values sealed in different rows get equal pseudonyms within a
/// purpose (the very ones the pure computation gives) and different ones in another purpose.
#[test]
fn guard_pseudonyms_are_stable_within_a_purpose_and_differ_across() {
    let sink = Arc::new(MemorySink::new());
    let ring = Arc::new(ok(Keyring::generate()));
    let guard = ok(Guard::builder()
        .shared_keyring(Arc::clone(&ring))
        .policy(allow_all(&["improvement", "security"]))
        .audit(Arc::clone(&sink))
        .build());
    let pure = ok(Pseudonyms::new(&ring, "improvement"));
    let mut seen = HashSet::new();
    for n in 0..2_000u32 {
        let value = ip(n * 7919);
        let a: Sealed<IpAddress, Improvement> = ok(guard.seal(&value, &ctx(u64::from(n))));
        let b: Sealed<IpAddress, Improvement> = ok(guard.seal(&value, &ctx(10_000)));
        let s: Sealed<IpAddress, Security> = ok(guard.seal(&value, &ctx(u64::from(n))));
        let pa = ok(guard.anonymize(&tester(), &a, &ctx(u64::from(n)), Anonymization::Pseudonym));
        let pb = ok(guard.anonymize(&tester(), &b, &ctx(10_000), Anonymization::Pseudonym));
        let ps = ok(guard.anonymize(&tester(), &s, &ctx(u64::from(n)), Anonymization::Pseudonym));
        assert_eq!(pa, pb, "equal within a purpose");
        assert_ne!(pa, ps, "different across purposes");
        assert_eq!(pa, Anonymized::Pseudonym(pure.of(&value)));
        assert!(seen.insert(pa.to_string()));
    }
    assert_eq!(sink.len(), 6_000);
    assert!(
        sink.records()
            .iter()
            .all(|r| r.action == Action::Anonymize && r.outcome == Outcome::Allowed)
    );
}

/// Without the root key the pseudonyms cannot be computed: another key gives unrelated ones,
/// and they are neither a plain hash nor an HMAC under a guessable key of the value.
#[test]
fn pseudonyms_are_not_computable_without_the_key() {
    let ring = ok(Keyring::generate());
    let other = ok(Keyring::generate());
    let mine = ok(Pseudonyms::new(&ring, "improvement"));
    let theirs = ok(Pseudonyms::new(&other, "improvement"));
    let fixed = ok(Pseudonyms::new(
        &ok(Keyring::single(RootKey::from_bytes([0; 32]))),
        "improvement",
    ));
    let mut equal = 0;
    for n in 0..10_000u32 {
        let value = ip(n);
        let p = mine.of(&value);
        equal += usize::from(p == theirs.of(&value));
        let bytes = value.canonical_bytes();
        let digest = sha2::Sha256::digest(&bytes[..]);
        assert_ne!(&digest[..PSEUDONYM_LEN], &p.as_bytes()[..]);
        let mut kinded = vec![0, 1, FieldKind::IpAddress.code()];
        kinded.extend_from_slice(&bytes);
        let digest = sha2::Sha256::digest(&kinded);
        assert_ne!(&digest[..PSEUDONYM_LEN], &p.as_bytes()[..]);
        assert_ne!(p, fixed.of(&value), "an all-zero root key is not the key");
    }
    assert_eq!(equal, 0);
}

/// A rotation starts a new series: pseudonyms carry the version they were computed under.
#[test]
fn pseudonyms_follow_the_active_version() {
    let ring = Arc::new(ok(Keyring::generate()));
    let guard = ok(Guard::builder()
        .shared_keyring(Arc::clone(&ring))
        .policy(allow_all(&["improvement"]))
        .audit(NullSink)
        .build());
    let value = ip(42);
    let sealed: Sealed<IpAddress, Improvement> = ok(guard.seal(&value, &ctx(1)));
    let before = ok(guard.anonymize(&tester(), &sealed, &ctx(1), Anonymization::Pseudonym));
    let v2 = ok(ring.rotate());
    let after = ok(guard.anonymize(&tester(), &sealed, &ctx(1), Anonymization::Pseudonym));
    let (Anonymized::Pseudonym(b), Anonymized::Pseudonym(a)) = (&before, &after) else {
        panic!("pseudonyms expected");
    };
    assert_eq!(b.version(), v(1));
    assert_eq!(a.version(), v2);
    assert_ne!(before, after);
}

#[test]
fn generalizations_through_the_guard() {
    let clock = Arc::new(FixedClock::new(T0));
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(allow_all(&["service", "improvement"]))
        .audit(NullSink)
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .build());
    let c = ctx(7);
    let id: Sealed<IdNumber, Service> =
        ok(guard.seal(&ok(IdNumber::parse("11010519491231002X")), &c));
    let a = |how| {
        guard
            .anonymize(&tester(), &id, &c, how)
            .map(|x| x.to_string())
    };
    assert_eq!(ok(a(Anonymization::BirthYear)), "1949");
    assert_eq!(ok(a(Anonymization::AgeBand { width: 10 })), "70-79");
    assert_eq!(ok(a(Anonymization::AgeBand { width: 1 })), "75-75");
    assert_eq!(
        ok(a(Anonymization::Region(RegionLevel::Province))),
        "110000"
    );
    assert_eq!(
        ok(a(Anonymization::Region(RegionLevel::Prefecture))),
        "110100"
    );
    assert_eq!(ok(a(Anonymization::Region(RegionLevel::County))), "110105");
    // The guard's clock decides the age: on 2025-12-31 the holder turns 76.
    clock.advance(37 * DAY);
    assert_eq!(ok(a(Anonymization::AgeBand { width: 1 })), "76-76");
    let v6: Sealed<IpAddress, Improvement> =
        ok(guard.seal(&ok(IpAddress::parse("2001:db8:1:2::5")), &c));
    assert_eq!(
        ok(guard.anonymize(&tester(), &v6, &c, Anonymization::IpNetwork)).to_string(),
        "2001:db8:1::/48"
    );
    // The runtime-typed form gives the same.
    let any = ok(AnySealed::from_text(&v6.to_text()));
    assert_eq!(
        ok(guard.anonymize_any(&tester(), &any, &c, Anonymization::IpNetwork)).to_string(),
        "2001:db8:1::/48"
    );
}

/// A method that does not apply to the kind is refused before anything is decided, recorded
/// or decrypted.
#[test]
fn unsupported_methods_are_refused_unrecorded() {
    let sink = Arc::new(MemorySink::new());
    let guard = guard_with(ok(Keyring::generate()), Arc::clone(&sink));
    let c = ctx(1);
    let email: Sealed<Email, Service> = ok(guard.seal(&ok(Email::parse("a@example.com")), &c));
    for how in [
        Anonymization::IpNetwork,
        Anonymization::BirthYear,
        Anonymization::AgeBand { width: 5 },
        Anonymization::Region(RegionLevel::County),
    ] {
        assert!(matches!(
            guard.anonymize(&tester(), &email, &c, how),
            Err(Error::Anonymize(AnonymizeError::Unsupported {
                kind: FieldKind::Email,
                ..
            }))
        ));
    }
    let id: Sealed<IdNumber, Service> =
        ok(guard.seal(&ok(IdNumber::parse("11010519491231002X")), &c));
    assert!(matches!(
        guard.anonymize(&tester(), &id, &c, Anonymization::AgeBand { width: 0 }),
        Err(Error::Anonymize(AnonymizeError::BandWidth))
    ));
    assert!(sink.is_empty());
}

/// Anonymize needs its own grant: reveal does not imply it, and it does not imply reveal or
/// mask. Every decision is recorded with the action `anonymize`.
#[test]
fn anonymize_needs_its_grant_and_is_audited() {
    let sink = Arc::new(MemorySink::new());
    let job = Role::new("analytics_job");
    let agent = Role::new("agent");
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(
            AllowList::new()
                .allow::<Improvement>(job.clone(), FieldKind::IpAddress, Action::Anonymize)
                .allow::<Improvement>(agent.clone(), FieldKind::IpAddress, Action::Reveal)
                .allow::<Improvement>(agent.clone(), FieldKind::IpAddress, Action::Mask),
        )
        .audit(Arc::clone(&sink))
        .build());
    let c = ctx(3);
    let sealed: Sealed<IpAddress, Improvement> =
        ok(guard.seal(&ok(IpAddress::parse("203.0.113.77")), &c));
    let job = Accessor::new("nightly", [job]);
    let agent = Accessor::new("alice", [agent]);
    let net = ok(guard.anonymize(&job, &sealed, &c, Anonymization::IpNetwork));
    assert_eq!(net.to_string(), "203.0.113.0/24");
    assert!(matches!(
        guard.reveal(&job, &sealed, &c),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    assert!(matches!(
        guard.mask(&job, &sealed, &c),
        Err(Error::Denied { .. })
    ));
    assert!(matches!(
        guard.anonymize(&agent, &sealed, &c, Anonymization::IpNetwork),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    let records = sink.records();
    let actions: Vec<(AuditAction, Outcome)> =
        records.iter().map(|r| (r.action, r.outcome)).collect();
    assert_eq!(
        actions,
        [
            (Action::Anonymize.into(), Outcome::Allowed),
            (
                Action::Reveal.into(),
                Outcome::Denied(DenyReason::NotPermitted)
            ),
            (
                Action::Mask.into(),
                Outcome::Denied(DenyReason::NotPermitted)
            ),
            (
                Action::Anonymize.into(),
                Outcome::Denied(DenyReason::NotPermitted)
            ),
        ]
    );
    assert!(records[0].call_site.file().ends_with("anonymize.rs"));
    // A value in another context does not authenticate: recorded as failed.
    assert!(matches!(
        guard.anonymize(&job, &sealed, &ctx(4), Anonymization::IpNetwork),
        Err(Error::Integrity)
    ));
    assert_eq!(
        sink.records().last().map(|r| r.outcome),
        Some(Outcome::Failed(FailureKind::Integrity))
    );
}

/// Under the reference manifest: the analytics job anonymizes improvement data; retention and
/// residency apply as for a reveal.
#[test]
fn reference_policy_retention_and_residency_apply() {
    let policy = ok(ManifestPolicy::from_toml(REFERENCE));
    let clock = Arc::new(FixedClock::new(T0));
    let sink = Arc::new(MemorySink::new());
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(policy)
        .consent(MemoryConsent::new())
        .audit(Arc::clone(&sink))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .build());
    let c = ctx(9).subject(&SubjectId::new("visitor-9"));
    let sealed: Sealed<IpAddress, Improvement> =
        ok(guard.seal(&ok(IpAddress::parse("198.51.100.4")), &c));
    let job = Accessor::new("nightly", [Role::new("analytics_job")]);
    assert_eq!(
        ok(guard.anonymize(&job, &sealed, &c, Anonymization::IpNetwork)).to_string(),
        "198.51.100.0/24"
    );
    assert!(matches!(
        guard.reveal(&job, &sealed, &c),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    // From abroad, without the subject's cross-border consent.
    let abroad = Accessor::new("nightly", [Role::new("analytics_job")]).in_region("SG");
    assert!(matches!(
        guard.anonymize(&abroad, &sealed, &c, Anonymization::Pseudonym),
        Err(Error::Denied {
            reason: DenyReason::CrossBorder
        })
    ));
    // The security analyst reports networks of security data.
    let sec: Sealed<IpAddress, Security> =
        ok(guard.seal(&ok(IpAddress::parse("198.51.100.4")), &c));
    let analyst = Accessor::new("sec-bot", [Role::new("security_analyst")]);
    assert!(
        guard
            .anonymize(&analyst, &sec, &c, Anonymization::IpNetwork)
            .is_ok()
    );
    assert!(matches!(
        guard.anonymize(&analyst, &sealed, &c, Anonymization::IpNetwork),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    // After the improvement purpose's 365 days, nothing more comes out.
    clock.advance(365 * DAY);
    assert!(matches!(
        guard.anonymize(&job, &sealed, &c, Anonymization::IpNetwork),
        Err(Error::Denied {
            reason: DenyReason::Expired
        })
    ));
    assert_eq!(
        sink.records().last().map(|r| (r.action, r.outcome)),
        Some((
            Action::Anonymize.into(),
            Outcome::Denied(DenyReason::Expired)
        ))
    );
}

/// Fail closed: a sink that refuses the record gets no anonymized value out.
#[test]
fn a_refused_record_yields_nothing() {
    let sink = Arc::new(Switch::default());
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(allow_all(&["improvement"]))
        .audit(Arc::clone(&sink))
        .build());
    let c = ctx(1);
    let sealed: Sealed<IpAddress, Improvement> = ok(guard.seal(&ip(77), &c));
    sink.refuse.store(true, Ordering::SeqCst);
    assert!(matches!(
        guard.anonymize(&tester(), &sealed, &c, Anonymization::Pseudonym),
        Err(Error::Audit(_))
    ));
    sink.refuse.store(false, Ordering::SeqCst);
    assert!(
        guard
            .anonymize(&tester(), &sealed, &c, Anonymization::Pseudonym)
            .is_ok()
    );
    assert_eq!(sink.inner.len(), 1);
}

#[test]
fn anonymized_debug_does_not_show_the_plaintext() {
    let guard = guard();
    let c = ctx(1);
    let sealed: Sealed<IpAddress, Improvement> =
        ok(guard.seal(&ok(IpAddress::parse("203.0.113.77")), &c));
    let p = ok(guard.anonymize(&tester(), &sealed, &c, Anonymization::Pseudonym));
    let n = ok(guard.anonymize(&tester(), &sealed, &c, Anonymization::IpNetwork));
    let dbg = format!("{p:?} {n:?}");
    assert!(
        !dbg.contains("203.0.113.77") && !dbg.contains(".77"),
        "{dbg}"
    );
    assert!(!dbg.contains(&p.to_string()[..8]), "{dbg}");
    let id: Sealed<IdNumber, Service> =
        ok(guard.seal(&ok(IdNumber::parse("11010519491231002X")), &c));
    for how in [
        Anonymization::BirthYear,
        Anonymization::AgeBand { width: 10 },
        Anonymization::Region(RegionLevel::County),
    ] {
        let dbg = format!("{:?}", ok(guard.anonymize(&tester(), &id, &c, how)));
        assert!(
            !dbg.contains("11010519491231002X") && !dbg.contains("0519491231"),
            "{dbg}"
        );
    }
}

/// A subject access report lists the anonymizations and index computations that used the
/// subject's data, next to reveals (and not other subjects' or denied ones).
#[test]
fn subject_access_reports_list_anonymize_and_index() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = ok(ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .open());
    let log = Arc::new(log);
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(allow_all(&["improvement"]))
        .audit(Arc::clone(&log))
        .build());
    let subject = SubjectId::new("visitor-7");
    let c = ctx(7).subject(&subject);
    let sealed: Sealed<IpAddress, Improvement> = ok(guard.seal(&ip(7), &c));
    ok(guard.anonymize(&tester(), &sealed, &c, Anonymization::IpNetwork));
    let idx: BlindIndex<IpAddress, Improvement> = ok(BlindIndex::builder("visits")
        .expected_rows(1 << 20)
        .distinct_values(1 << 20)
        .build());
    ok(guard.blind_index(&tester(), &ip(7), &c, &idx));
    drop(ok(guard.reveal(&tester(), &sealed, &c)));
    let other = ctx(8).subject(&SubjectId::new("visitor-8"));
    let theirs: Sealed<IpAddress, Improvement> = ok(guard.seal(&ip(8), &other));
    ok(guard.anonymize(&tester(), &theirs, &other, Anonymization::Pseudonym));
    ok(log.checkpoint());
    drop(guard);
    drop(log);
    let report = ok(verify_log(
        dir.path(),
        None,
        &AuditKey::from_bytes(AUDIT_KEY),
        &CheckpointSigningKey::from_bytes(CKPT_KEY).verifying_key(),
    ));
    assert_eq!(report.fault, None);
    let rows =
        ok(report.subject_access(&AuditKey::from_bytes(AUDIT_KEY).pseudonym_key(), &subject));
    let actions: Vec<&str> = rows.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["anonymize", "index", "reveal"]);
}
