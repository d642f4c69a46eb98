//! Data-subject requests after identity verification: the verifiers (sessions, ID-number
//! match, one-time codes), the proof's subject and expiry, the access export (exactly the
//! requested subject's values, withheld values, the audit trail, the JSON format), correction,
//! erasure and account cancellation with legal holds.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use fieldseal::*;
use proptest::prelude::*;

const T0: u64 = 1_800_000_000;
const TOKEN: &[u8] = b"session-token-0123456789abcdef";

const MANIFEST: &str = r#"
version = 1
home_region = "CN"

[purposes.service]
legal_basis = "contract"
retention_days = 365

[purposes.improvement]
legal_basis = "legitimate_interest"
retention_days = 90

[purposes.legal]
legal_basis = "legal_obligation"
retention_days = 1825

[roles.dsr.grants.service]
export = ["email", "phone_number"]
erase = ["email"]

[roles.dsr.grants.improvement]
export = ["email"]
erase = ["email"]

[roles.dsr.grants.legal]
erase = ["email"]

[roles.verifier.grants.service]
reveal = ["id_number"]

[roles.dsr_no_erase.grants.service]
export = ["email"]
"#;

struct Fx {
    _dir: tempfile::TempDir,
    guard: Guard,
    clock: Arc<FixedClock>,
    sink: Arc<MemorySink>,
    sessions: SessionVerifier,
}

/// A guard over the manifest, with subject keys per purpose for service and legal and a
/// subject-wide key for improvement (`legal_scope` chooses legal's).
fn fx_with(legal_scope: SubjectKeyScope, sink: Option<Arc<dyn AuditSink>>) -> Fx {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let clock = Arc::new(FixedClock::new(T0));
    let mem = Arc::new(MemorySink::new());
    let policy = ManifestPolicy::new(
        Manifest::from_toml(MANIFEST).unwrap_or_else(|e| panic!("{e}")),
        Engine::Native,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(policy)
        .audit(sink.unwrap_or_else(|| Arc::clone(&mem) as Arc<dyn AuditSink>))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .subject_keys(SubjectKeys::new(kek, Arc::new(MemorySubjectKeys::new())))
        .subject_key_purpose(pid("service"), SubjectKeyScope::Purpose)
        .subject_key_purpose(pid("legal"), legal_scope)
        .subject_key_purpose(pid("improvement"), SubjectKeyScope::Subject)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Fx {
        _dir: dir,
        guard,
        clock,
        sink: mem,
        sessions: SessionVerifier::new(),
    }
}

fn fx() -> Fx {
    fx_with(SubjectKeyScope::Purpose, None)
}

fn pid(p: &str) -> PurposeId {
    PurposeId::new(p).unwrap_or_else(|e| panic!("{e}"))
}

fn subject(n: usize) -> SubjectId {
    SubjectId::new(format!("subject-{n}"))
}

fn dsr() -> Accessor {
    Accessor::new("dsr-desk", [Role::new("dsr")])
}

fn ctx(s: usize, row: usize) -> Context {
    Context::new()
        .table("users")
        .row(&row.to_string())
        .subject(&subject(s))
}

fn email(s: usize, row: usize) -> String {
    format!("s{s}r{row}@example.com")
}

fn seal(fx: &Fx, purpose: &str, kind: FieldKind, text: &str, context: &Context) -> AnySealed {
    let v = AnyValue::parse(kind, text).unwrap_or_else(|e| panic!("{e}"));
    fx.guard
        .seal_any(&v, &pid(purpose), context)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A proof for subject `s` through a verified session.
fn proof(fx: &Fx, s: usize) -> Verified {
    fx.sessions
        .bind(&subject(s), TOKEN)
        .unwrap_or_else(|e| panic!("{e}"));
    fx.guard
        .verify_identity(&fx.sessions, &subject(s), &Evidence::new(TOKEN))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn not_verified<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(
        r,
        Err(Error::Denied {
            reason: DenyReason::IdentityNotVerified
        })
    )
}

fn last_outcome(fx: &Fx) -> (AuditAction, Outcome) {
    let r = fx.sink.records();
    let last = r.last().unwrap_or_else(|| panic!("no record"));
    (last.action, last.outcome)
}

const DENIED: Outcome = Outcome::Denied(DenyReason::IdentityNotVerified);

// ---------------------------------------------------------------- verifiers

#[test]
fn no_verifier_refuses_everyone() {
    let fx = fx();
    assert!(not_verified(fx.guard.verify_identity(
        &NoVerifier,
        &subject(1),
        &Evidence::new(TOKEN)
    )));
}

#[test]
fn sessions_compare_tokens_and_subjects() {
    let fx = fx();
    assert!(matches!(
        fx.sessions.bind(&subject(1), b"short"),
        Err(Error::Format(FormatError::TokenTooShort { min: 16 }))
    ));
    fx.sessions
        .bind(&subject(1), TOKEN)
        .unwrap_or_else(|e| panic!("{e}"));
    let v = |s: usize, t: &[u8]| {
        fx.guard
            .verify_identity(&fx.sessions, &subject(s), &Evidence::new(t))
    };
    assert!(v(1, TOKEN).is_ok());
    let mut wrong = TOKEN.to_vec();
    wrong[5] ^= 1;
    assert!(not_verified(v(1, &wrong)));
    assert!(not_verified(v(1, &TOKEN[..20])));
    // Subject 1's token does not verify subject 2.
    assert!(not_verified(v(2, TOKEN)));
    fx.sessions.revoke(&subject(1));
    assert!(not_verified(v(1, TOKEN)));
    let p = proof(&fx, 1);
    assert_eq!((p.method(), p.verified_at()), ("session", T0));
}

#[test]
fn one_time_codes_expire_are_single_use_and_limit_attempts() {
    let fx = fx();
    let codes = OneTimeCodes::new(Arc::clone(&fx.clock) as Arc<dyn Clock>, 600);
    let s = subject(1);
    let code = codes.issue(&s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code.expose_secret().len(), 8);
    assert!(code.expose_secret().iter().all(u8::is_ascii_digit));
    let again = Evidence::new(code.expose_secret());
    // Another subject cannot use it.
    assert!(not_verified(fx.guard.verify_identity(
        &codes,
        &subject(2),
        &code
    )));
    let ok = fx.guard.verify_identity(&codes, &s, &code);
    assert_eq!(ok.map(|p| p.method()).ok(), Some("one_time_code"));
    // Reused: refused.
    assert!(not_verified(fx.guard.verify_identity(&codes, &s, &again)));

    // Expired: refused at the expiry second, and consumed.
    let code = codes.issue(&s).unwrap_or_else(|e| panic!("{e}"));
    let copy = Evidence::new(code.expose_secret());
    fx.clock.advance(600);
    assert!(not_verified(fx.guard.verify_identity(&codes, &s, &code)));
    fx.clock.set(T0);
    assert!(not_verified(fx.guard.verify_identity(&codes, &s, &copy)));

    // One second before expiry it still works.
    let code = codes.issue(&s).unwrap_or_else(|e| panic!("{e}"));
    fx.clock.advance(599);
    assert!(fx.guard.verify_identity(&codes, &s, &code).is_ok());
    fx.clock.set(T0);

    // Five wrong attempts burn the code.
    let code = codes.issue(&s).unwrap_or_else(|e| panic!("{e}"));
    let wrong = if code.expose_secret() == b"00000000" {
        "00000001"
    } else {
        "00000000"
    };
    for _ in 0..OneTimeCodes::MAX_ATTEMPTS {
        assert!(not_verified(fx.guard.verify_identity(
            &codes,
            &s,
            &Evidence::new(wrong)
        )));
    }
    assert!(not_verified(fx.guard.verify_identity(&codes, &s, &code)));
    // Four wrong attempts do not.
    let code = codes.issue(&s).unwrap_or_else(|e| panic!("{e}"));
    for _ in 1..OneTimeCodes::MAX_ATTEMPTS {
        let _ = fx.guard.verify_identity(&codes, &s, &Evidence::new(wrong));
    }
    assert!(fx.guard.verify_identity(&codes, &s, &code).is_ok());
}

#[test]
fn id_number_is_matched_through_the_guard() {
    let fx = fx();
    let c = ctx(1, 1);
    let sealed = seal(
        &fx,
        "service",
        FieldKind::IdNumber,
        "11010519491231002X",
        &c,
    );
    let staff = Accessor::new("verifier-svc", [Role::new("verifier")]);
    let verifier = IdNumberVerifier::new(staff.clone(), sealed.clone(), c.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let v = |s: usize, text: &str| {
        fx.guard
            .verify_identity(&verifier, &subject(s), &Evidence::new(text))
    };
    // The crate's canonical form: a lower-case check character matches.
    assert_eq!(
        v(1, "11010519491231002x").map(|p| p.method()).ok(),
        Some("id_number")
    );
    let before = fx.sink.len();
    assert!(not_verified(v(1, "110105194912310038")));
    // The stored number was opened through the policy and audited as a reveal.
    assert_eq!(fx.sink.len(), before + 1);
    assert_eq!(
        last_outcome(&fx),
        (AuditAction::Access(Action::Reveal), Outcome::Allowed)
    );
    assert!(not_verified(v(1, "not a number")));
    // Subject 2 cannot verify against subject 1's number, even typing it.
    assert!(not_verified(v(2, "11010519491231002X")));
    // An accessor the policy refuses: the verifier fails, the guard refuses.
    let nobody = IdNumberVerifier::new(Accessor::new("x", [Role::new("dsr")]), sealed, c)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(not_verified(fx.guard.verify_identity(
        &nobody,
        &subject(1),
        &Evidence::new("11010519491231002X")
    )));
    // Only id_number envelopes.
    let mail = seal(&fx, "service", FieldKind::Email, &email(1, 1), &ctx(1, 1));
    assert!(matches!(
        IdNumberVerifier::new(staff, mail, ctx(1, 1)),
        Err(Error::Format(FormatError::KindMismatch { .. }))
    ));
}

#[test]
fn secrets_are_redacted() {
    let fx = fx();
    let p = proof(&fx, 7);
    let dbg = format!("{p:?} {:?} {:?}", Evidence::new("123456"), fx.sessions);
    assert!(
        !dbg.contains("subject-7") && !dbg.contains("123456"),
        "{dbg}"
    );
    let c = ctx(7, 1);
    let s = seal(&fx, "service", FieldKind::Email, &email(7, 1), &c);
    let export = fx
        .guard
        .export_subject(&dsr(), &subject(7), &p, [(&s, &c)], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let dbg = format!("{export:?} {:?}", export.values());
    assert!(
        !dbg.contains(&email(7, 1)) && !dbg.contains("subject-7"),
        "{dbg}"
    );
}

// ---------------------------------------------------------------- the proof

#[test]
fn export_refuses_without_verification() {
    let fx = fx();
    let c = ctx(1, 1);
    let s = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    // No proof can be had without evidence the verifier accepts.
    assert!(not_verified(fx.guard.verify_identity(
        &fx.sessions,
        &subject(1),
        &Evidence::new(TOKEN)
    )));
    // Subject 2's proof does not export subject 1.
    let other = proof(&fx, 2);
    let before = fx.sink.len();
    assert!(not_verified(fx.guard.export_subject(
        &dsr(),
        &subject(1),
        &other,
        [(&s, &c)],
        None
    )));
    // Refused before anything was opened: one record, the denial.
    assert_eq!(fx.sink.len(), before + 1);
    assert_eq!(
        last_outcome(&fx),
        (AuditAction::Access(Action::Export), DENIED)
    );
    // An expired proof (made at T0, used at T0 + TTL) is refused too.
    let mine = proof(&fx, 1);
    fx.clock.advance(VERIFIED_TTL_SECS);
    assert!(not_verified(fx.guard.export_subject(
        &dsr(),
        &subject(1),
        &mine,
        [(&s, &c)],
        None
    )));
    fx.clock.set(T0 + VERIFIED_TTL_SECS - 1);
    let e = fx
        .guard
        .export_subject(&dsr(), &subject(1), &mine, [(&s, &c)], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.values().len(), 1);
}

#[test]
fn every_operation_needs_the_subjects_proof() {
    let fx = fx();
    let c = ctx(1, 1);
    let s = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    let wrong = proof(&fx, 2);
    let new =
        AnyValue::parse(FieldKind::Email, "new@example.com").unwrap_or_else(|e| panic!("{e}"));
    assert!(not_verified(fx.guard.correct(
        &dsr(),
        &subject(1),
        &wrong,
        &s,
        &c,
        &new
    )));
    assert_eq!(last_outcome(&fx), (AuditAction::Corrected, DENIED));
    assert!(not_verified(fx.guard.erase_verified(
        &dsr(),
        &subject(1),
        &wrong,
        Erasure::Subject
    )));
    assert_eq!(
        last_outcome(&fx),
        (AuditAction::Access(Action::Erase), DENIED)
    );
    assert!(not_verified(fx.guard.cancel_account(
        &dsr(),
        &subject(1),
        &wrong
    )));
    assert_eq!(last_outcome(&fx), (AuditAction::Cancelled, DENIED));
    // Nothing was erased: the value still opens for its subject.
    let p = proof(&fx, 1);
    let e = fx
        .guard
        .export_subject(&dsr(), &subject(1), &p, [(&s, &c)], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.values().len(), 1);
}

// ---------------------------------------------------------------- export

#[test]
fn export_withholds_what_the_policy_does_not_grant() {
    let fx = fx();
    let c = ctx(1, 1);
    let mail = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    let phone = seal(&fx, "service", FieldKind::PhoneNumber, "+8613800000001", &c);
    // improvement grants export on email only; legal grants none.
    let imp_phone = seal(
        &fx,
        "improvement",
        FieldKind::PhoneNumber,
        "+8613800000002",
        &c,
    );
    let legal = seal(&fx, "legal", FieldKind::Email, "legal1@example.com", &c);
    let p = proof(&fx, 1);
    let before = fx.sink.len();
    let e = fx
        .guard
        .export_subject(
            &dsr(),
            &subject(1),
            &p,
            [(&mail, &c), (&phone, &c), (&imp_phone, &c), (&legal, &c)],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<&str> = e.values().iter().map(|v| v.expose_secret()).collect();
    assert_eq!(got, [email(1, 1).as_str(), "+8613800000001"]);
    let withheld: Vec<(&str, FieldKind, Outcome)> = e
        .withheld()
        .iter()
        .map(|w| (w.purpose.as_str(), w.kind, w.reason))
        .collect();
    let np = Outcome::Denied(DenyReason::NotPermitted);
    assert_eq!(
        withheld,
        [
            ("improvement", FieldKind::PhoneNumber, np),
            ("legal", FieldKind::Email, np)
        ]
    );
    let json = e.to_json();
    assert!(!json.contains("+8613800000002") && !json.contains("legal1@"));
    // One request record, then one per value.
    let records = fx.sink.records();
    assert_eq!(records.len(), before + 5);
    assert_eq!(records[before].count, Some(4));
    assert!(
        records[before..]
            .iter()
            .all(|r| r.action == AuditAction::Access(Action::Export))
    );
    assert_eq!(
        records[before + 1..]
            .iter()
            .filter(|r| r.outcome == np)
            .count(),
        2
    );
}

#[test]
fn export_json_format() {
    let fx = fx();
    let c = ctx(1, 1);
    let s = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    let imp = seal(
        &fx,
        "improvement",
        FieldKind::PhoneNumber,
        "+8613800000002",
        &c,
    );
    fx.clock.advance(10);
    let p = proof(&fx, 1);
    let e = fx
        .guard
        .export_subject(&dsr(), &subject(1), &p, [(&s, &c), (&imp, &c)], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let json = e.to_json();
    let want = format!(
        concat!(
            r#"{{"format":"fieldseal-subject-export","version":1,"generated_at":{now},"#,
            r#""values":[{{"kind":"email","purpose":"service","sealed_at":{t0},"retention_until":{until},"#,
            r#""legal_basis":"contract","value":"s1r1@example.com"}}],"#,
            r#""withheld":[{{"kind":"phone_number","purpose":"improvement","sealed_at":{t0},"reason":"denied:not_permitted"}}],"#,
            r#""audit_trail":null}}"#
        ),
        now = T0 + 10,
        t0 = T0,
        until = T0 + 365 * 86_400
    );
    assert_eq!(json.as_str(), want);
    assert_eq!(EXPORT_FORMAT, "fieldseal-subject-export");
    assert_eq!(EXPORT_VERSION, 1);
    let v = &e.values()[0];
    assert_eq!(
        (
            v.kind(),
            v.purpose().as_str(),
            v.sealed_at(),
            v.retention_until()
        ),
        (FieldKind::Email, "service", T0, Some(T0 + 365 * 86_400))
    );
    assert_eq!(e.generated_at(), T0 + 10);
}

#[test]
fn export_includes_the_subjects_own_audit_trail() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = common::open_log(dir.path(), Durability::Durable, 1);
    let log = Arc::new(log);
    let fx = fx_with(
        SubjectKeyScope::Purpose,
        Some(Arc::clone(&log) as Arc<dyn AuditSink>),
    );
    let staff = Accessor::new("verifier-svc", [Role::new("verifier")]);
    let (c1, c2) = (ctx(1, 1), ctx(2, 2));
    let id1 = seal(
        &fx,
        "service",
        FieldKind::IdNumber,
        "11010519491231002X",
        &c1,
    );
    let id2 = seal(
        &fx,
        "service",
        FieldKind::IdNumber,
        "11010519491231002X",
        &c2,
    );
    // Subject 1's number read twice, subject 2's once.
    for _ in 0..2 {
        let _ = fx
            .guard
            .reveal_any(&staff, &id1, &c1)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = fx
        .guard
        .reveal_any(&staff, &id2, &c2)
        .unwrap_or_else(|e| panic!("{e}"));
    log.sync().unwrap_or_else(|e| panic!("{e}"));
    let report = common::verify_dir(dir.path());
    let key = AuditKey::from_bytes(common::AUDIT_KEY).pseudonym_key();
    let p = proof(&fx, 1);
    let e = fx
        .guard
        .export_subject(&dsr(), &subject(1), &p, [], Some((&report, &key)))
        .unwrap_or_else(|e| panic!("{e}"));
    let trail = e.audit_trail().unwrap_or_else(|| panic!("trail"));
    let seqs: Vec<u64> = trail.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [1, 2]);
    assert!(
        trail
            .iter()
            .all(|(_, r)| r.action == "reveal" && r.principal == "verifier-svc")
    );
    let json = e.to_json();
    assert!(json.contains(r#""audit_trail":[{"seq":1,"time":1800000000,"principal":"verifier-svc","action":"reveal","purpose":"service","kind":"id_number","outcome":"allowed"}"#), "{}", json.as_str());
    assert!(!json.contains("\"subject\""));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random records of many subjects (and, for every other subject's record, a forged copy
    /// whose context claims the requested subject): the export holds exactly the requested
    /// subject's values, and nothing of anyone else's appears in it.
    #[test]
    fn export_contains_exactly_the_requested_subjects_values(
        subjects in 2usize..6,
        records in prop::collection::vec((0usize..6, 0usize..2, any::<bool>()), 1..20),
        pick in 0usize..6,
    ) {
        let fx = fx();
        let who = pick % subjects;
        let mut stored = Vec::new();
        for (row, &(s, p, is_mail)) in records.iter().enumerate() {
            let s = s % subjects;
            let purpose = ["service", "improvement"][p];
            // improvement grants export on email only: phone numbers there are withheld.
            let (kind, text) = if is_mail {
                (FieldKind::Email, email(s, row))
            } else {
                (FieldKind::PhoneNumber, format!("+86138{s:02}{row:06}"))
            };
            let c = ctx(s, row);
            let sealed = seal(&fx, purpose, kind, &text, &c);
            stored.push((s, purpose, kind, text, sealed, c));
        }
        let mut handed: Vec<(&AnySealed, Context)> = Vec::new();
        for (s, _, _, _, sealed, c) in &stored {
            handed.push((sealed, c.clone()));
            if *s != who {
                // A forged pairing: someone else's value with a context naming `who`.
                handed.push((sealed, ctx(who, handed.len() + 1000)));
            }
        }
        let p = proof(&fx, who);
        let export = fx
            .guard
            .export_subject(&dsr(), &subject(who), &p, handed.iter().map(|(s, c)| (*s, c)), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<&str> = stored
            .iter()
            .filter(|(s, p, k, ..)| {
                *s == who && (*p == "service" || *k == FieldKind::Email)
            })
            .map(|(_, _, _, t, ..)| t.as_str())
            .collect();
        let got: Vec<&str> = export.values().iter().map(|v| v.expose_secret()).collect();
        prop_assert_eq!(&got, &want);
        let json = export.to_json();
        for (s, _, _, text, ..) in &stored {
            prop_assert_eq!(json.contains(text.as_str()), *s == who && want.contains(&text.as_str()));
        }
        // Forged pairings never open: each the policy lets through is withheld as
        // failed:integrity (the others are refused before decryption).
        let forged = stored
            .iter()
            .filter(|(s, p, k, ..)| *s != who && (*p == "service" || *k == FieldKind::Email))
            .count();
        let integrity = export
            .withheld()
            .iter()
            .filter(|w| w.reason == Outcome::Failed(FailureKind::Integrity))
            .count();
        prop_assert_eq!(integrity, forged);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(parsed["values"].as_array().map(Vec::len), Some(want.len()));
    }
}

// ---------------------------------------------------------------- correction

#[test]
fn correction_reseals_in_the_same_context_and_keeps_the_old_audit() {
    let fx = fx();
    let c = ctx(1, 1);
    let old = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    let p = proof(&fx, 1);
    // The old value's access stays on record.
    let _ = fx
        .guard
        .export_subject(&dsr(), &subject(1), &p, [(&old, &c)], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = fx.sink.records();
    fx.clock.advance(60);
    let new =
        AnyValue::parse(FieldKind::Email, "Fixed@Example.com").unwrap_or_else(|e| panic!("{e}"));
    let fixed = fx
        .guard
        .correct(&dsr(), &subject(1), &p, &old, &c, &new)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fixed.purpose_label(), "service");
    assert_eq!(fixed.kind(), FieldKind::Email);
    assert_eq!(fixed.sealed_at(), T0 + 60);
    let records = fx.sink.records();
    assert_eq!(&records[..before.len()], &before[..]);
    assert_eq!(records.len(), before.len() + 1);
    let r = &records[before.len()];
    assert_eq!(
        (r.action, r.outcome),
        (AuditAction::Corrected, Outcome::Allowed)
    );
    assert_eq!(r.action.label(), "correct");
    assert_eq!(
        (r.purpose.as_ref().map(PurposeId::as_str), r.kind),
        (Some("service"), Some(FieldKind::Email))
    );
    // The new value opens in the same context.
    let e = fx
        .guard
        .export_subject(&dsr(), &subject(1), &p, [(&fixed, &c)], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.values()[0].expose_secret(), "Fixed@example.com");
}

/// Notes the action, key version and sealed-at time of every record.
#[derive(Debug, Default)]
struct Versions(std::sync::Mutex<Vec<(AuditAction, KeyVersion, u64)>>);

impl AuditSink for Versions {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if let Ok(mut v) = self.0.lock() {
            v.push((event.action(), event.key_version(), event.sealed_at()));
        }
        Ok(())
    }
}

/// A correction's record names the value corrected: its key version and sealed-at time, not
/// the new value's.
#[test]
fn a_correction_is_recorded_with_the_old_values_version_and_time() {
    let sink = Arc::new(Versions::default());
    let fx = fx_with(SubjectKeyScope::Purpose, Some(sink.clone()));
    let c = ctx(1, 1);
    let old = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    let p = proof(&fx, 1);
    let v2 = fx
        .guard
        .keyring()
        .rotate()
        .unwrap_or_else(|e| panic!("{e}"));
    fx.clock.advance(60);
    let new = AnyValue::parse(FieldKind::Email, "n@example.com").unwrap_or_else(|e| panic!("{e}"));
    let fixed = fx
        .guard
        .correct(&dsr(), &subject(1), &p, &old, &c, &new)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((fixed.key_version(), fixed.sealed_at()), (v2, T0 + 60));
    let last = sink.0.lock().ok().and_then(|v| v.last().copied());
    assert_eq!(
        last,
        Some((AuditAction::Corrected, old.key_version(), T0)),
        "the old value's version {:?}",
        old.key_version()
    );
}

#[test]
fn correction_checks_subject_kind_and_the_old_value() {
    let fx = fx();
    let (c1, c2) = (ctx(1, 1), ctx(2, 2));
    let mine = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c1);
    let theirs = seal(&fx, "service", FieldKind::Email, &email(2, 2), &c2);
    let p = proof(&fx, 1);
    let new = AnyValue::parse(FieldKind::Email, "n@example.com").unwrap_or_else(|e| panic!("{e}"));
    // A context binding another subject: refused and recorded.
    assert!(not_verified(fx.guard.correct(
        &dsr(),
        &subject(1),
        &p,
        &theirs,
        &c2,
        &new
    )));
    assert_eq!(last_outcome(&fx), (AuditAction::Corrected, DENIED));
    // Someone else's value presented under my context: it does not authenticate.
    let n = fx.sink.len();
    assert!(matches!(
        fx.guard
            .correct(&dsr(), &subject(1), &p, &theirs, &c1, &new),
        Err(Error::Integrity)
    ));
    assert_eq!(fx.sink.len(), n + 2);
    assert_eq!(
        last_outcome(&fx),
        (
            AuditAction::Corrected,
            Outcome::Failed(FailureKind::Integrity)
        )
    );
    // Another kind.
    let phone =
        AnyValue::parse(FieldKind::PhoneNumber, "+8613800000001").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        fx.guard
            .correct(&dsr(), &subject(1), &p, &mine, &c1, &phone),
        Err(Error::Format(FormatError::KindMismatch { .. }))
    ));
}

// ---------------------------------------------------------------- erasure and cancellation

fn opens(fx: &Fx, s: usize, items: &[(&AnySealed, &Context)]) -> Vec<bool> {
    let p = proof(fx, s);
    let staff = Accessor::new("dsr-desk", [Role::new("dsr")]);
    let e = fx
        .guard
        .export_subject(&staff, &subject(s), &p, items.iter().copied(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let erased: BTreeSet<(String, u64)> = e
        .withheld()
        .iter()
        .filter(|w| w.reason == Outcome::Failed(FailureKind::Erased))
        .map(|w| (w.purpose.as_str().to_owned(), w.sealed_at))
        .collect();
    items
        .iter()
        .map(|(s, _)| !erased.contains(&(s.purpose_label().to_owned(), s.sealed_at())))
        .collect()
}

#[test]
fn verified_erasure_shreds_the_subject() {
    let fx = fx();
    let (c1, c2) = (ctx(1, 1), ctx(2, 2));
    let a = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c1);
    let b = seal(&fx, "service", FieldKind::Email, &email(2, 2), &c2);
    let p = proof(&fx, 1);
    let report = fx
        .guard
        .erase_verified(&dsr(), &subject(1), &p, Erasure::Purpose(&pid("service")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.purposes, [pid("service")]);
    assert_eq!(opens(&fx, 1, &[(&a, &c1)]), [false]);
    assert_eq!(opens(&fx, 2, &[(&b, &c2)]), [true]);
}

#[test]
fn cancellation_keeps_legal_holds() {
    let fx = fx();
    let c = ctx(1, 1);
    let service = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    fx.clock.advance(1);
    let improvement = seal(&fx, "improvement", FieldKind::Email, "imp1@example.com", &c);
    fx.clock.advance(1);
    let legal = seal(&fx, "legal", FieldKind::Email, "legal1@example.com", &c);
    let other = seal(&fx, "service", FieldKind::Email, &email(2, 2), &ctx(2, 2));
    let p = proof(&fx, 1);
    let before = fx.sink.len();
    let report = fx
        .guard
        .cancel_account(&dsr(), &subject(1), &p)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.held, [pid("legal")]);
    let erased: BTreeSet<&str> = report.erased.iter().map(PurposeId::as_str).collect();
    assert_eq!(erased, BTreeSet::from(["service", "improvement"]));
    assert!(report.kept_with_hold.is_empty());
    assert_eq!(report.keys_deleted, 2);
    let records = fx.sink.records();
    assert_eq!(
        (records[before].action, records[before].count),
        (AuditAction::Cancelled, Some(2))
    );
    assert_eq!(records[before].action.label(), "cancel");
    assert_eq!(
        records[before + 1..]
            .iter()
            .filter(
                |r| r.action == AuditAction::Access(Action::Erase) && r.outcome == Outcome::Allowed
            )
            .count(),
        2
    );
    // The held purpose's value still opens (for its own purpose: export is not granted on
    // legal, so it is withheld as not permitted rather than erased).
    assert_eq!(
        opens(&fx, 1, &[(&service, &c), (&improvement, &c), (&legal, &c)]),
        [false, false, true]
    );
    assert_eq!(opens(&fx, 2, &[(&other, &ctx(2, 2))]), [true]);
}

#[test]
fn a_subject_wide_key_shared_with_a_hold_is_kept() {
    let fx = fx_with(SubjectKeyScope::Subject, None);
    let c = ctx(1, 1);
    let service = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    fx.clock.advance(1);
    let improvement = seal(&fx, "improvement", FieldKind::Email, "imp1@example.com", &c);
    let p = proof(&fx, 1);
    let report = fx
        .guard
        .cancel_account(&dsr(), &subject(1), &p)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.held, [pid("legal")]);
    assert_eq!(report.erased, [pid("service")]);
    assert_eq!(report.kept_with_hold, [pid("improvement")]);
    assert_eq!(
        opens(&fx, 1, &[(&service, &c), (&improvement, &c)]),
        [false, true]
    );
}

#[test]
fn cancellation_without_erase_grants_erases_nothing() {
    let fx = fx();
    let c = ctx(1, 1);
    let service = seal(&fx, "service", FieldKind::Email, &email(1, 1), &c);
    let p = proof(&fx, 1);
    let no_erase = Accessor::new("desk-2", [Role::new("dsr_no_erase")]);
    assert!(matches!(
        fx.guard.cancel_account(&no_erase, &subject(1), &p),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    assert_eq!(opens(&fx, 1, &[(&service, &c)]), [true]);
}

#[test]
fn cancellation_needs_purpose_rules() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let sessions = SessionVerifier::new();
    sessions
        .bind(&subject(1), TOKEN)
        .unwrap_or_else(|e| panic!("{e}"));
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(common::allow_all(&["service"]))
        .audit(MemorySink::new())
        .subject_keys(SubjectKeys::new(kek, Arc::new(MemorySubjectKeys::new())))
        .subject_key_purpose(pid("service"), SubjectKeyScope::Purpose)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let p = guard
        .verify_identity(&sessions, &subject(1), &Evidence::new(TOKEN))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        guard.cancel_account(&common::tester(), &subject(1), &p),
        Err(Error::Config(ConfigError::NoPurposeRules))
    ));
}
