//! Crypto-shredding: subject keys per subject and per subject × purpose, erased through the
//! guard; the exact sets of values that still open afterwards, pre-erasure copies included.

mod common;

use std::sync::Arc;

use common::*;
use fieldseal::builtin::{Legal, Marketing, Service};
use fieldseal::*;

struct Fixture {
    _dir: tempfile::TempDir,
    guard: Guard,
    sink: Arc<MemorySink>,
    kek: Arc<FileKek>,
    store: std::path::PathBuf,
}

fn guard_over(
    kek: Arc<FileKek>,
    store: &std::path::Path,
    sink: Arc<MemorySink>,
    ring: Arc<Keyring>,
) -> Guard {
    Guard::builder()
        .shared_keyring(ring)
        .policy(allow_all(&["service", "marketing", "legal"]))
        .audit(sink)
        .subject_keys(SubjectKeys::new(
            kek,
            Arc::new(FileSubjectKeys::open(store).unwrap_or_else(|e| panic!("{e}"))),
        ))
        .subject_key_purpose(PurposeId::of::<Service>(), SubjectKeyScope::Subject)
        .subject_key_purpose(PurposeId::of::<Marketing>(), SubjectKeyScope::Purpose)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn fixture() -> (Fixture, Arc<Keyring>) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let store = dir.path().join("subject-keys");
    let sink = Arc::new(MemorySink::new());
    let ring = Arc::new(Keyring::generate().unwrap_or_else(|e| panic!("{e}")));
    let guard = guard_over(
        Arc::clone(&kek),
        &store,
        Arc::clone(&sink),
        Arc::clone(&ring),
    );
    (
        Fixture {
            _dir: dir,
            guard,
            sink,
            kek,
            store,
        },
        ring,
    )
}

fn ctx(subject: &str, row: u32) -> Context {
    Context::new()
        .table("users")
        .row(&row.to_string())
        .subject(&SubjectId::new(subject))
}

/// One value per (subject, purpose): service and marketing use subject keys, legal does not.
struct Values {
    service: Vec<(String, Sealed<Email, Service>)>,
    marketing: Vec<(String, Sealed<Email, Marketing>)>,
    legal: Vec<(String, Sealed<Email, Legal>)>,
}

fn email(subject: &str) -> Email {
    Email::parse(&format!("{subject}@example.com")).unwrap_or_else(|e| panic!("{e}"))
}

fn seal_all(g: &Guard, subjects: &[&str]) -> Values {
    let mut v = Values {
        service: Vec::new(),
        marketing: Vec::new(),
        legal: Vec::new(),
    };
    for s in subjects {
        let e = email(s);
        let c = ctx(s, 1);
        v.service.push((
            s.to_string(),
            g.seal(&e, &c).unwrap_or_else(|e| panic!("{e}")),
        ));
        v.marketing.push((
            s.to_string(),
            g.seal(&e, &c).unwrap_or_else(|e| panic!("{e}")),
        ));
        v.legal.push((
            s.to_string(),
            g.seal(&e, &c).unwrap_or_else(|e| panic!("{e}")),
        ));
    }
    v
}

/// Which (subject, purpose) values open: `Some(true)` opened with the right value,
/// `Some(false)` refused as erased, `None` any other failure.
fn state(g: &Guard, v: &Values) -> Vec<(String, &'static str, Option<bool>)> {
    fn one<P: Purpose>(g: &Guard, subject: &str, s: &Sealed<Email, P>) -> Option<bool> {
        match g.reveal(&tester(), s, &ctx(subject, 1)) {
            Ok(e) => (e.expose_secret().as_str() == email(subject).as_str()).then_some(true),
            Err(Error::Key(KeyError::Erased)) => Some(false),
            Err(_) => None,
        }
    }
    let mut out = Vec::new();
    for (s, x) in &v.service {
        out.push((s.clone(), "service", one(g, s, x)));
    }
    for (s, x) in &v.marketing {
        out.push((s.clone(), "marketing", one(g, s, x)));
    }
    for (s, x) in &v.legal {
        out.push((s.clone(), "legal", one(g, s, x)));
    }
    out
}

fn opening(states: &[(String, &'static str, Option<bool>)]) -> Vec<String> {
    states
        .iter()
        .filter(|(_, _, o)| *o == Some(true))
        .map(|(s, p, _)| format!("{s}/{p}"))
        .collect()
}

fn erased(states: &[(String, &'static str, Option<bool>)]) -> Vec<String> {
    states
        .iter()
        .filter(|(_, _, o)| *o == Some(false))
        .map(|(s, p, _)| format!("{s}/{p}"))
        .collect()
}

#[test]
fn erasure_per_purpose_then_per_subject() {
    let (f, ring) = fixture();
    let g = &f.guard;
    let subjects = ["alice", "bob", "carol"];
    let values = seal_all(g, &subjects);
    // Pre-erasure copies, as a backup holds them: text forms parsed back later.
    let backup: Vec<String> = values.marketing.iter().map(|(_, s)| s.to_text()).collect();
    assert!(
        values
            .service
            .iter()
            .all(|(_, s)| s.info().has_subject_key())
    );
    assert!(
        values
            .legal
            .iter()
            .all(|(_, s)| !s.info().has_subject_key())
    );
    let all: Vec<String> = ["service", "marketing", "legal"]
        .iter()
        .flat_map(|p| subjects.iter().map(move |s| format!("{s}/{p}")))
        .collect();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(opening(&state(g, &values))), sorted(all.clone()));

    // Alice withdraws marketing consent: only her marketing value is gone.
    f.sink.clear();
    let alice = SubjectId::new("alice");
    let r = g
        .erase(
            &tester(),
            &alice,
            Erasure::Purpose(&PurposeId::of::<Marketing>()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.purposes, [PurposeId::of::<Marketing>()]);
    assert_eq!(r.keys_deleted, 1);
    let after = state(g, &values);
    assert_eq!(erased(&after), ["alice/marketing"]);
    assert_eq!(
        sorted(opening(&after)),
        sorted(
            all.iter()
                .filter(|s| *s != "alice/marketing")
                .cloned()
                .collect()
        )
    );
    // The pre-erasure copy is as dead as the original.
    let copy: Sealed<Email, Marketing> = backup[0].parse().unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        g.reveal(&tester(), &copy, &ctx("alice", 1)),
        Err(Error::Key(KeyError::Erased))
    ));
    // Audit: the erasure, then an allowed + failed:erased pair for each refused reveal.
    let labels: Vec<(String, &str)> = f
        .sink
        .records()
        .iter()
        .map(|r| (r.action.label().to_string(), r.outcome.label()))
        .collect();
    assert_eq!(labels[0], ("erase".to_string(), "allowed"));
    let failed_erased = labels.iter().filter(|(_, o)| *o == "failed:erased").count();
    assert_eq!(failed_erased, 2, "{labels:?}");

    // Per-subject keys are not erasable per purpose.
    assert!(matches!(
        g.erase(
            &tester(),
            &alice,
            Erasure::Purpose(&PurposeId::of::<Service>())
        ),
        Err(Error::Key(KeyError::NotErasable))
    ));
    // Someone without the erase grant erases nothing, and the refusal is recorded.
    let stranger = Accessor::new("eve", [Role::new("nobody")]);
    f.sink.clear();
    assert!(matches!(
        g.erase(&stranger, &SubjectId::new("bob"), Erasure::Subject),
        Err(Error::Denied { .. })
    ));
    assert_eq!(f.sink.records()[0].outcome.label(), "denied:not_permitted");

    // Alice's account is erased: her service value goes too; bob and carol are untouched, and
    // legal (no subject keys) stays readable.
    g.erase(&tester(), &alice, Erasure::Subject)
        .unwrap_or_else(|e| panic!("{e}"));
    let after = state(g, &values);
    assert_eq!(sorted(erased(&after)), ["alice/marketing", "alice/service"]);
    assert_eq!(opening(&after).len(), all.len() - 2);
    assert!(after.iter().all(|(_, _, o)| o.is_some()), "{after:?}");

    // Across a restart (a new guard over the same store and keyring): still erased. New data
    // for alice gets a new key; her old data stays unreadable.
    let g2 = guard_over(
        Arc::clone(&f.kek),
        &f.store,
        Arc::new(MemorySink::new()),
        Arc::clone(&ring),
    );
    assert_eq!(
        sorted(erased(&state(&g2, &values))),
        ["alice/marketing", "alice/service"]
    );
    let fresh: Sealed<Email, Service> = g2
        .seal(&email("alice"), &ctx("alice", 2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(g2.reveal(&tester(), &fresh, &ctx("alice", 2)).is_ok());
    assert!(matches!(
        g2.reveal(&tester(), &values.service[0].1, &ctx("alice", 1)),
        Err(Error::Key(KeyError::Erased))
    ));
}

#[test]
fn subject_keys_need_a_subject_and_configuration() {
    let (f, _) = fixture();
    let no_subject = Context::new().table("users").row("1");
    assert!(matches!(
        f.guard.seal::<Email, Service>(&email("x"), &no_subject),
        Err(Error::Key(KeyError::SubjectRequired))
    ));
    // Purposes with subject keys but no keys configured: refused at build time.
    let built = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(NullSink)
        .subject_key_purpose(PurposeId::of::<Service>(), SubjectKeyScope::Subject)
        .build();
    assert!(matches!(
        built,
        Err(Error::Config(ConfigError::MissingSubjectKeys))
    ));
    // A guard without subject keys cannot open a subject-key envelope: a typed error.
    let sealed: Sealed<Email, Service> = f
        .guard
        .seal(&email("x"), &ctx("x", 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let plain = guard();
    assert!(matches!(
        plain.reveal(&tester(), &sealed, &ctx("x", 1)),
        Err(Error::Key(KeyError::SubjectKeyUnavailable)
            | Error::Key(KeyError::UnknownVersion(_))
            | Error::Integrity)
    ));
}
