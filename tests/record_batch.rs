//! Record batches: the fields of one record sealed with `Guard::seal_record` and revealed with
//! `Guard::reveal_record`, with per-(kind, purpose) decisions, one audit record per batch and
//! per-field results, against the single `seal_any` / `reveal_any`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::reproducible_guard;
use fieldseal::*;
use proptest::prelude::*;

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;

const MANIFEST: &str = r#"
version = 1
home_region = "CN"

[cross_border]
rule = "consent"

[categories.contact]
kinds = ["person_name", "phone_number", "email", "text", "postal_address", "id_number"]
purposes = ["service", "marketing"]

[purposes.service]
legal_basis = "contract"
retention_days = 30

[purposes.marketing]
legal_basis = "consent"
retention_days = 5
withdrawable = true

[roles.agent.grants.service]
reveal = ["person_name", "phone_number", "email", "text", "postal_address"]

[roles.agent.grants.marketing]
reveal = ["email", "phone_number"]

[roles.marketer.grants.marketing]
reveal = ["email", "phone_number"]

[roles.dpo.grants.marketing]
erase = ["email", "phone_number", "person_name"]

[roles.dpo.grants.service]
erase = ["email", "phone_number", "person_name"]
"#;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn subject() -> SubjectId {
    SubjectId::new("customer-42")
}

fn ctx() -> Context {
    Context::new()
        .table("customers")
        .row("42")
        .subject(&subject())
}

fn service() -> PurposeId {
    ok(PurposeId::new("service"))
}

fn marketing() -> PurposeId {
    ok(PurposeId::new("marketing"))
}

fn agent() -> Accessor {
    Accessor::new("alice", [Role::new("agent")])
}

fn value(kind: FieldKind, text: &str) -> AnyValue {
    ok(AnyValue::parse(kind, text))
}

/// A customer form: (value, purpose) per field.
fn form() -> Vec<(AnyValue, PurposeId)> {
    vec![
        (value(FieldKind::PersonName, "Zhang San"), service()),
        (value(FieldKind::Email, "zhang.san@example.com"), service()),
        (
            value(FieldKind::PhoneNumber, "+86 138 0013 8000"),
            service(),
        ),
        (value(FieldKind::Text, "prefers calls after 6pm"), service()),
        (value(FieldKind::Email, "zs.promo@example.com"), marketing()),
        (
            value(FieldKind::PhoneNumber, "+86 139 0013 9000"),
            marketing(),
        ),
    ]
}

fn pairs(f: &[(AnyValue, PurposeId)]) -> Vec<(&AnyValue, &PurposeId)> {
    f.iter().map(|(v, p)| (v, p)).collect()
}

struct Fx {
    guard: Guard,
    sink: Arc<MemorySink>,
    consent: Arc<MemoryConsent>,
    clock: Arc<FixedClock>,
}

fn fixture_with(sink: Arc<dyn AuditSink>, mem: Arc<MemorySink>, best_effort: bool) -> Fx {
    let consent = Arc::new(MemoryConsent::new());
    consent.grant(&subject(), ConsentScope::Purpose("marketing"), T0);
    let clock = Arc::new(FixedClock::new(T0));
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(ok(ManifestPolicy::from_toml(MANIFEST)))
        .consent(Arc::clone(&consent))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .audit(sink)
        .best_effort_denial_audit(best_effort)
        .build());
    Fx {
        guard,
        sink: mem,
        consent,
        clock,
    }
}

fn fixture() -> Fx {
    let sink = Arc::new(MemorySink::new());
    fixture_with(Arc::clone(&sink) as Arc<dyn AuditSink>, sink, false)
}

fn seal_form(fx: &Fx, f: &[(AnyValue, PurposeId)], ctx: &Context) -> Vec<AnySealed> {
    ok(fx.guard.seal_record(pairs(f), ctx))
        .into_iter()
        .map(ok)
        .collect()
}

fn text(r: &Result<AnyRevealed, Error>) -> String {
    match r {
        Ok(v) => v.expose_text().to_string(),
        Err(e) => panic!("{e}"),
    }
}

fn canonical(v: &AnyValue, fx: &Fx, p: &PurposeId) -> Vec<u8> {
    // The canonical bytes of a value, through a seal and a single reveal.
    let s = ok(fx.guard.seal_any(v, p, &ctx()));
    ok(fx.guard.reveal_any(&agent(), &s, &ctx()))
        .expose_canonical()
        .to_vec()
}

#[test]
fn record_round_trips_through_single_calls_both_ways() {
    let fx = fixture();
    let f = form();
    // seal_record → single reveal_any.
    let sealed = seal_form(&fx, &f, &ctx());
    assert_eq!(sealed.len(), f.len());
    for ((v, p), s) in f.iter().zip(&sealed) {
        assert_eq!((s.kind(), s.purpose_label()), (v.kind(), p.as_str()));
        let single = ok(fx.guard.reveal_any(&agent(), s, &ctx()));
        assert_eq!(*single.expose_canonical(), canonical(v, &fx, p));
    }
    // single seal_any → reveal_record.
    let singles: Vec<AnySealed> = f
        .iter()
        .map(|(v, p)| ok(fx.guard.seal_any(v, p, &ctx())))
        .collect();
    let rec = ok(fx.guard.reveal_record(&agent(), &singles, &ctx()));
    assert_eq!((rec.len(), rec.opened()), (f.len(), f.len()));
    for (r, s) in rec.results().iter().zip(&singles) {
        let single = ok(fx.guard.reveal_any(&agent(), s, &ctx()));
        assert_eq!(text(r), *single.expose_text());
        assert_eq!(r.as_ref().map(AnyRevealed::kind).ok(), Some(s.kind()));
    }
    // And the record's own envelopes.
    let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &ctx()));
    assert_eq!(rec.opened(), f.len());
    assert_eq!(text(&rec.results()[1]), "zhang.san@example.com");
    assert_eq!(text(&rec.results()[2]), "+8613800138000");
}

/// Each field's outcome as a record batch's audit record lists it.
fn field_outcomes(record: &AuditRecord) -> Vec<Outcome> {
    record
        .fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(AuditField::outcome)
        .collect()
}

/// Two guards over the same root key, random stream and clock: `seal_record` writes byte for
/// byte what `seal_any` writes, field after field.
#[test]
fn seal_record_writes_what_seal_any_writes() {
    let (a, b) = (reproducible_guard(T0), reproducible_guard(T0));
    let f = form();
    let batch = ok(a.seal_record(pairs(&f), &ctx()));
    for ((v, p), s) in f.iter().zip(batch) {
        let single = ok(b.seal_any(v, p, &ctx()));
        assert_eq!(ok(s).as_bytes(), single.as_bytes());
    }
}

#[test]
fn one_audit_record_lists_every_field() {
    let fx = fixture();
    let f = form();
    let sealed = seal_form(&fx, &f, &ctx());
    assert!(fx.sink.is_empty(), "sealing is not audited");
    let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &ctx()));
    assert_eq!(rec.opened(), 6);
    let records = fx.sink.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.action, Action::Reveal);
    assert_eq!(r.outcome, Outcome::Allowed);
    assert_eq!(r.count, Some(6));
    assert_eq!((r.purpose.as_ref(), r.kind), (None, None), "mixed fields");
    let listed: Vec<(String, FieldKind, Outcome)> = r
        .fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|x| (x.purpose().as_str().to_owned(), x.kind(), x.outcome()))
        .collect();
    let expected: Vec<(String, FieldKind, Outcome)> = f
        .iter()
        .map(|(v, p)| (p.as_str().to_owned(), v.kind(), Outcome::Allowed))
        .collect();
    assert_eq!(listed, expected);
    // A record of one purpose and kind names them.
    fx.sink.clear();
    let two = [sealed[1].clone(), sealed[1].clone()];
    let _ = ok(fx.guard.reveal_record(&agent(), &two, &ctx()));
    let r = &fx.sink.records()[0];
    assert_eq!(
        (r.purpose.clone(), r.kind),
        (Some(service()), Some(FieldKind::Email))
    );
    // An empty record decides nothing and records nothing.
    fx.sink.clear();
    let none: [AnySealed; 0] = [];
    let rec = ok(fx.guard.reveal_record(&agent(), &none, &ctx()));
    assert!(rec.is_empty() && fx.sink.is_empty());
}

/// Partial denial: a field the role may not read is `Denied` while the others open, and the
/// one record says which.
#[test]
fn a_denied_field_is_refused_alone_and_listed() {
    let fx = fixture();
    let sealed = seal_form(&fx, &form(), &ctx());
    let marketer = Accessor::new("bob", [Role::new("marketer")]);
    let rec = ok(fx.guard.reveal_record(&marketer, &sealed, &ctx()));
    let denied = |r: &Result<AnyRevealed, Error>| {
        matches!(
            r,
            Err(Error::Denied {
                reason: DenyReason::NotPermitted
            })
        )
    };
    for (i, r) in rec.results().iter().enumerate() {
        assert_eq!(denied(r), i < 4, "field {i}");
    }
    assert_eq!(rec.opened(), 2);
    assert_eq!(text(&rec.results()[4]), "zs.promo@example.com");
    let records = fx.sink.records();
    assert_eq!(records.len(), 1);
    let outcomes = field_outcomes(&records[0]);
    let no = Outcome::Denied(DenyReason::NotPermitted);
    assert_eq!(
        outcomes,
        [no, no, no, no, Outcome::Allowed, Outcome::Allowed]
    );
    assert_eq!(records[0].outcome, Outcome::Allowed);

    // Everything denied: the record is a denial, with the first field's reason.
    fx.sink.clear();
    let stranger = Accessor::new("eve", [Role::new("nobody")]);
    let rec = ok(fx.guard.reveal_record(&stranger, &sealed, &ctx()));
    assert_eq!(rec.opened(), 0);
    assert!(rec.results().iter().all(denied));
    let records = fx.sink.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, no);
}

#[test]
fn a_field_that_does_not_authenticate_fails_alone_with_a_failed_record() {
    let fx = fixture();
    let mut sealed = seal_form(&fx, &form(), &ctx());
    let mut bytes = sealed[2].as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // the tag
    sealed[2] = ok(AnySealed::from_vec(bytes));
    let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &ctx()));
    assert!(matches!(rec.results()[2], Err(Error::Integrity)));
    assert_eq!(rec.opened(), 5);
    let records = fx.sink.records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].count, Some(6));
    assert_eq!(records[1].outcome, Outcome::Failed(FailureKind::Integrity));
    assert_eq!(records[1].kind, Some(FieldKind::PhoneNumber));
    assert_eq!(records[1].count, None);
}

#[test]
fn a_field_of_another_record_does_not_open_in_this_one() {
    let fx = fixture();
    let mut sealed = seal_form(&fx, &form(), &ctx());
    let other = Context::new()
        .table("customers")
        .row("43")
        .subject(&SubjectId::new("customer-43"));
    let theirs = seal_form(&fx, &form(), &other);
    sealed[1] = theirs[1].clone();
    let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &ctx()));
    assert!(matches!(rec.results()[1], Err(Error::Integrity)));
    assert_eq!(rec.opened(), 5);
    // Their whole record does not open in ours either.
    let rec = ok(fx.guard.reveal_record(&agent(), &theirs, &ctx()));
    assert_eq!(rec.opened(), 0);
    assert!(
        rec.results()
            .iter()
            .all(|r| matches!(r, Err(Error::Integrity)))
    );
}

/// Refuses every record while `refuse` is set; counts what it accepted.
#[derive(Debug, Default)]
struct Refusing {
    refuse: AtomicBool,
    accepted: AtomicU64,
}

impl AuditSink for Refusing {
    fn record(&self, _event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(AuditError::new(AuditErrorKind::Rejected));
        }
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_refused_record_opens_nothing() {
    for best_effort in [false, true] {
        let sink = Arc::new(Refusing::default());
        let fx = fixture_with(
            Arc::clone(&sink) as Arc<dyn AuditSink>,
            Arc::new(MemorySink::new()),
            best_effort,
        );
        let sealed = seal_form(&fx, &form(), &ctx());
        sink.refuse.store(true, Ordering::SeqCst);
        let r = fx.guard.reveal_record(&agent(), &sealed, &ctx());
        assert!(
            matches!(r, Err(Error::Audit(ref e)) if e.kind() == AuditErrorKind::Rejected),
            "{r:?}"
        );
        // Only all-denied batches are tolerated under best-effort denial auditing.
        let stranger = Accessor::new("eve", [Role::new("nobody")]);
        let r = fx.guard.reveal_record(&stranger, &sealed, &ctx());
        match (best_effort, r) {
            (true, Ok(rec)) => assert_eq!(rec.opened(), 0),
            (false, Err(Error::Audit(_))) => {}
            (_, other) => panic!("{best_effort}: {other:?}"),
        }
        sink.refuse.store(false, Ordering::SeqCst);
        assert_eq!(
            ok(fx.guard.reveal_record(&agent(), &sealed, &ctx())).opened(),
            6
        );
        assert_eq!(sink.accepted.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn withdrawn_consent_closes_the_consent_based_fields_only() {
    let fx = fixture();
    let sealed = seal_form(&fx, &form(), &ctx());
    fx.consent
        .withdraw(&subject(), ConsentScope::Purpose("marketing"), T0 + 1);
    let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &ctx()));
    assert_eq!(rec.opened(), 4);
    for r in &rec.results()[4..] {
        assert!(matches!(
            r,
            Err(Error::Denied {
                reason: DenyReason::ConsentMissing
            })
        ));
    }
    let outcomes = field_outcomes(&fx.sink.records()[0]);
    assert_eq!(outcomes[4], Outcome::Denied(DenyReason::ConsentMissing));
    assert_eq!(outcomes[0], Outcome::Allowed);
    // Every field denied for want of consent: the record's outcome names that reason.
    fx.sink.clear();
    let marketer = Accessor::new("bob", [Role::new("marketer")]);
    let rec = ok(fx.guard.reveal_record(&marketer, &sealed[4..], &ctx()));
    assert_eq!(rec.opened(), 0);
    assert_eq!(
        fx.sink.records()[0].outcome,
        Outcome::Denied(DenyReason::ConsentMissing)
    );
}

/// Fields of one purpose but different kinds are decided apart: the marketer may read a
/// marketing e-mail but not a marketing name, whichever comes first in the record.
#[test]
fn each_kind_of_a_purpose_is_decided_on_its_own() {
    let fx = fixture();
    let f = vec![
        (value(FieldKind::PersonName, "Zhang San"), marketing()),
        (value(FieldKind::Email, "zs.promo@example.com"), marketing()),
        (value(FieldKind::PersonName, "Li Si"), marketing()),
    ];
    let sealed = seal_form(&fx, &f, &ctx());
    let marketer = Accessor::new("bob", [Role::new("marketer")]);
    for order in [[0usize, 1, 2], [1, 0, 2]] {
        let fields: Vec<&AnySealed> = order.iter().map(|&i| &sealed[i]).collect();
        let rec = ok(fx.guard.reveal_record(&marketer, fields, &ctx()));
        let allowed: Vec<bool> = rec.results().iter().map(Result::is_ok).collect();
        let want: Vec<bool> = order.iter().map(|&i| i == 1).collect();
        assert_eq!(allowed, want, "order {order:?}");
        assert!(!rec.is_empty());
        let by_value = rec.into_results();
        assert_eq!(by_value.len(), 3);
        let email = if order[0] == 1 { 0 } else { 1 };
        assert_eq!(text(&by_value[email]), "zs.promo@example.com");
    }
}

/// A record whose fields are under two subject keys (per subject for `service`, per subject and
/// purpose for `marketing`) opens every field, each under its own key.
#[test]
fn fields_under_different_subject_keys_open_in_one_record() {
    let dir = ok(tempfile::tempdir());
    let consent = Arc::new(MemoryConsent::new());
    consent.grant(&subject(), ConsentScope::Purpose("marketing"), T0);
    let kek = ok(FileKek::create(dir.path().join("kek")));
    let store = ok(FileSubjectKeys::open(dir.path().join("subject-keys")));
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(ok(ManifestPolicy::from_toml(MANIFEST)))
        .consent(consent)
        .clock(Arc::new(FixedClock::new(T0)) as Arc<dyn Clock>)
        .audit(MemorySink::new())
        .subject_keys(SubjectKeys::new(Arc::new(kek), Arc::new(store)))
        .subject_key_purpose(service(), SubjectKeyScope::Subject)
        .subject_key_purpose(marketing(), SubjectKeyScope::Purpose)
        .build());
    let f = form();
    let sealed: Vec<AnySealed> = ok(guard.seal_record(pairs(&f), &ctx()))
        .into_iter()
        .map(ok)
        .collect();
    let rec = ok(guard.reveal_record(&agent(), &sealed, &ctx()));
    assert_eq!(rec.opened(), f.len());
    for (r, s) in rec.results().iter().zip(&sealed) {
        let single = ok(guard.reveal_any(&agent(), s, &ctx()));
        assert_eq!(text(r), *single.expose_text());
    }
}

#[test]
fn expired_retention_closes_each_field_from_its_own_sealed_at() {
    let fx = fixture();
    let f = form();
    let early = seal_form(&fx, &f, &ctx());
    fx.clock.set(T0 + 3 * DAY);
    let late = seal_form(&fx, &f, &ctx());
    // Marketing keeps values 5 days: at T0 + 6 days the early ones have expired, the late ones
    // not; service (30 days) still opens both.
    fx.clock.set(T0 + 6 * DAY);
    let mixed: Vec<AnySealed> = vec![
        early[4].clone(),
        late[4].clone(),
        early[0].clone(),
        early[5].clone(),
        late[5].clone(),
    ];
    let rec = ok(fx.guard.reveal_record(&agent(), &mixed, &ctx()));
    let expired = |r: &Result<AnyRevealed, Error>| {
        matches!(
            r,
            Err(Error::Denied {
                reason: DenyReason::Expired
            })
        )
    };
    let flags: Vec<bool> = rec.results().iter().map(expired).collect();
    assert_eq!(flags, [true, false, false, true, false]);
    assert_eq!(rec.opened(), 3);
}

#[test]
fn residency_is_checked_for_every_purpose() {
    let fx = fixture();
    let sealed = seal_form(&fx, &form(), &ctx());
    let abroad = Accessor::new("alice", [Role::new("agent")]).in_region("DE");
    let rec = ok(fx.guard.reveal_record(&abroad, &sealed, &ctx()));
    assert_eq!(rec.opened(), 0);
    assert!(rec.results().iter().all(|r| matches!(
        r,
        Err(Error::Denied {
            reason: DenyReason::CrossBorder
        })
    )));
    fx.consent.grant(&subject(), ConsentScope::CrossBorder, T0);
    assert_eq!(
        ok(fx.guard.reveal_record(&abroad, &sealed, &ctx())).opened(),
        6
    );
}

#[test]
fn an_invalid_context_opens_nothing_and_is_recorded() {
    let fx = fixture();
    let sealed = seal_form(&fx, &form(), &ctx());
    let bad = ctx().with("Bad Name", b"x");
    let r = fx.guard.reveal_record(&agent(), &sealed, &bad);
    assert!(matches!(r, Err(Error::Context(_))), "{r:?}");
    let records = fx.sink.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, Outcome::Failed(FailureKind::Context));
    assert!(matches!(
        fx.guard.seal_record(pairs(&form()), &bad),
        Err(Error::Context(_))
    ));
}

#[test]
fn too_many_fields_are_refused_before_anything_is_decided() {
    let fx = fixture();
    let one = seal_form(&fx, &form()[..1], &ctx());
    let many = vec![one[0].clone(); MAX_RECORD_FIELDS + 1];
    let r = fx.guard.reveal_record(&agent(), &many, &ctx());
    assert!(
        matches!(r, Err(Error::Format(FormatError::TooLong { max })) if max == MAX_RECORD_FIELDS)
    );
    assert!(fx.sink.is_empty());
    let most = vec![one[0].clone(); MAX_RECORD_FIELDS];
    assert_eq!(
        ok(fx.guard.reveal_record(&agent(), &most, &ctx())).opened(),
        MAX_RECORD_FIELDS
    );
    let v = value(FieldKind::Email, "a@example.com");
    let s = service();
    let r = fx
        .guard
        .seal_record(vec![(&v, &s); MAX_RECORD_FIELDS + 1], &ctx());
    assert!(matches!(r, Err(Error::Format(FormatError::TooLong { .. }))));
    let sealed = ok(fx
        .guard
        .seal_record(vec![(&v, &s); MAX_RECORD_FIELDS], &ctx()));
    assert_eq!(sealed.len(), MAX_RECORD_FIELDS);
    assert!(sealed.iter().all(Result::is_ok));
}

/// A value of its kind's greatest length (4,096 bytes of text) is sealed in a record and opens.
#[test]
fn a_value_of_the_greatest_length_is_sealed_in_a_record() {
    let fx = fixture();
    let longest = value(FieldKind::Text, &"x".repeat(4096));
    let too_long = AnyValue::parse(FieldKind::Text, &"x".repeat(4097));
    assert!(too_long.is_err());
    let s = service();
    let sealed: Vec<AnySealed> = ok(fx.guard.seal_record([(&longest, &s)], &ctx()))
        .into_iter()
        .map(ok)
        .collect();
    let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &ctx()));
    assert_eq!(text(&rec.results()[0]).len(), 4096);
}

#[test]
fn seal_refuses_pairs_outside_the_categories_per_field() {
    let fx = fixture();
    let f = vec![
        (value(FieldKind::Email, "a@example.com"), service()),
        (value(FieldKind::IpAddress, "192.0.2.1"), service()),
        (value(FieldKind::Email, "b@example.com"), marketing()),
    ];
    let out = ok(fx.guard.seal_record(pairs(&f), &ctx()));
    assert!(out[0].is_ok() && out[2].is_ok());
    assert!(matches!(
        out[1],
        Err(Error::Denied {
            reason: DenyReason::PurposeNotAllowedForKind
        })
    ));
}

#[test]
fn debug_shows_counts_only() {
    let fx = fixture();
    let sealed = seal_form(&fx, &form(), &ctx());
    let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &ctx()));
    let dbg = format!("{rec:?}");
    assert_eq!(dbg, "RevealedRecord { fields: 6, opened: 6 }");
    let all = format!("{:?}", rec.results());
    for secret in ["Zhang", "zhang.san", "8613800138000", "6pm", "customer-42"] {
        assert!(!all.contains(secret), "{all}");
    }
    let audit = format!("{:?}", fx.sink.records());
    assert!(
        !audit.contains("customer-42") && !audit.contains("zhang"),
        "{audit}"
    );
}

#[test]
fn erased_subject_keys_close_their_fields() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(ok(FileKek::create(dir.path().join("kek"))));
    let sink = Arc::new(MemorySink::new());
    let consent = Arc::new(MemoryConsent::new());
    consent.grant(&subject(), ConsentScope::Purpose("marketing"), T0);
    let guard = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(ok(ManifestPolicy::from_toml(MANIFEST)))
        .consent(Arc::clone(&consent))
        .clock(Arc::new(FixedClock::new(T0)))
        .audit(Arc::clone(&sink))
        .subject_keys(SubjectKeys::new(
            kek,
            Arc::new(ok(FileSubjectKeys::open(dir.path().join("keys")))),
        ))
        .subject_key_purpose(marketing(), SubjectKeyScope::Purpose)
        .build());
    let f = form();
    let sealed: Vec<AnySealed> = ok(guard.seal_record(pairs(&f), &ctx()))
        .into_iter()
        .map(ok)
        .collect();
    // Same bytes as the single path: each opens with reveal_any too.
    for s in &sealed {
        let _ = ok(guard.reveal_any(&agent(), s, &ctx()));
    }
    assert_eq!(
        ok(guard.reveal_record(&agent(), &sealed, &ctx())).opened(),
        6
    );
    let dpo = Accessor::new("dpo", [Role::new("dpo")]);
    let _ = ok(guard.erase(&dpo, &subject(), Erasure::Purpose(&marketing())));
    sink.clear();
    let rec = ok(guard.reveal_record(&agent(), &sealed, &ctx()));
    assert_eq!(rec.opened(), 4);
    for r in &rec.results()[4..] {
        assert!(matches!(r, Err(Error::Key(KeyError::Erased))), "{r:?}");
    }
    let outcomes: Vec<Outcome> = sink.records().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Allowed,
            Outcome::Failed(FailureKind::Erased),
            Outcome::Failed(FailureKind::Erased)
        ]
    );
    // Without a subject, the purpose's subject key cannot be found: those fields fail alone.
    let anon = Context::new().table("customers").row("9");
    let out = ok(guard.seal_record(pairs(&f), &anon));
    assert!(out[..4].iter().all(Result::is_ok));
    assert!(matches!(out[4], Err(Error::Key(KeyError::SubjectRequired))));
}

#[test]
fn a_chained_log_with_record_batches_verifies() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = common::open_log(dir.path(), Durability::Durable, 3);
    let log = Arc::new(log);
    let fx = fixture_with(
        Arc::clone(&log) as Arc<dyn AuditSink>,
        Arc::new(MemorySink::new()),
        false,
    );
    let sealed = seal_form(&fx, &form(), &ctx());
    let _ = ok(fx.guard.reveal_any(&agent(), &sealed[0], &ctx()));
    assert_eq!(
        ok(fx.guard.reveal_record(&agent(), &sealed, &ctx())).opened(),
        6
    );
    let marketer = Accessor::new("bob", [Role::new("marketer")]);
    assert_eq!(
        ok(fx.guard.reveal_record(&marketer, &sealed, &ctx())).opened(),
        2
    );
    let mut tampered = sealed.clone();
    let mut b = tampered[3].as_bytes().to_vec();
    let n = b.len() - 1;
    b[n] ^= 0x80;
    tampered[3] = ok(AnySealed::from_vec(b));
    assert_eq!(
        ok(fx.guard.reveal_record(&agent(), &tampered, &ctx())).opened(),
        5
    );
    ok(log.sync());
    drop(fx);
    drop(log);

    let report = common::verify_dir(dir.path());
    assert!(report.is_valid(), "{:?}", report.fault);
    // single reveal, record, record, record + failed:integrity
    assert_eq!(report.entries, 5);
    let recs = report.records();
    assert_eq!(recs[0].fields, None);
    let fields = recs[1].fields.as_deref().unwrap_or_default();
    assert_eq!(fields.len(), 6);
    assert_eq!(
        (
            fields[4].purpose.as_str(),
            fields[4].kind.as_str(),
            fields[4].outcome.as_str()
        ),
        ("marketing", "email", "allowed")
    );
    assert_eq!(
        (recs[1].purpose.as_str(), recs[1].kind.as_str()),
        ("-", "-")
    );
    assert_eq!(recs[1].count, Some(6));
    assert_eq!(
        recs[2].fields.as_deref().unwrap_or_default()[0].outcome,
        "denied:not_permitted"
    );
    assert_eq!(recs[4].outcome, "failed:integrity");

    // The subject's access report lists every field the batches opened.
    let key = AuditKey::from_bytes(common::AUDIT_KEY).pseudonym_key();
    let access = report
        .subject_access(&key, &subject())
        .unwrap_or_else(|f| panic!("{f:?}"));
    // 1 single + 6 + 2 + 6 (the tampered batch's record says what was allowed).
    assert_eq!(access.len(), 15, "{access:?}");
    assert_eq!(access.iter().filter(|a| a.seq == 3).count(), 2);
    assert!(
        access
            .iter()
            .filter(|a| a.seq == 3)
            .all(|a| a.purpose == "marketing")
    );

    // One byte of a batch record changed is caught at its seq.
    let seg = dir.path().join("audit-000001.log");
    let mut bytes = ok(std::fs::read(&seg));
    let at = find(&bytes, b"\"outcome\":\"denied:not_permitted\"");
    bytes[at + 11] = b'D';
    ok(std::fs::write(&seg, &bytes));
    let report = common::verify_dir(dir.path());
    assert_eq!(report.fault.map(|f| f.seq), Some(3));
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("not found"))
}

fn kind_and_text() -> impl Strategy<Value = (FieldKind, String)> {
    prop_oneof![
        "[a-z]{1,12}@[a-z]{1,8}\\.com".prop_map(|s| (FieldKind::Email, s)),
        "1[3-9][0-9]{9}".prop_map(|s| (FieldKind::PhoneNumber, format!("+86{s}"))),
        "[A-Za-z]{1,10}( [A-Za-z]{1,10})?".prop_map(|s| (FieldKind::PersonName, s)),
        "[a-z0-9 ]{1,40}".prop_map(|s| (FieldKind::Text, format!("t{s}"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random field sets: whatever the mix of kinds and purposes, seal_record and reveal_record
    /// agree with each other and with the single calls, and one record lists the fields.
    #[test]
    fn random_records_round_trip(
        fields in prop::collection::vec((kind_and_text(), any::<bool>()), 1..24),
        row in 0u32..1000,
    ) {
        let fx = fixture();
        let c = Context::new().table("t").row(&row.to_string()).subject(&subject());
        let f: Vec<(AnyValue, PurposeId)> = fields
            .iter()
            .map(|((k, t), m)| (value(*k, t), if *m && *k != FieldKind::Text
                && *k != FieldKind::PersonName { marketing() } else { service() }))
            .collect();
        let sealed = seal_form(&fx, &f, &c);
        let rec = ok(fx.guard.reveal_record(&agent(), &sealed, &c));
        prop_assert_eq!(rec.opened(), f.len());
        prop_assert_eq!(fx.sink.len(), 1);
        let listed = fx.sink.records()[0].fields.as_deref().map(<[AuditField]>::len);
        prop_assert_eq!(listed, Some(f.len()));
        for (((v, p), s), r) in f.iter().zip(&sealed).zip(rec.results()) {
            let single = ok(fx.guard.reveal_any(&agent(), s, &c));
            prop_assert_eq!(text(r), single.expose_text().to_string());
            let again = ok(fx.guard.seal_any(v, p, &c));
            let back = ok(fx.guard.reveal_record(&agent(), [&again], &c));
            prop_assert_eq!(text(&back.results()[0]), text(r));
        }
    }
}
