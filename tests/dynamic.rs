//! The runtime-typed path: `AnySealed`, `AnyValue`, `AnyRevealed`, `Guard::seal_any`,
//! `Guard::reveal_any`, `Guard::mask_any`. It must be indistinguishable from the typed path in
//! everything but the static types: the same envelopes, decisions, errors and audit records.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use fieldseal::builtin::{Improvement, Legal, Marketing, Security, Service};
use fieldseal::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;

/// `file:line` of the line this is written on.
macro_rules! here {
    () => {
        concat!(file!(), ":", line!())
    };
}

const T0: u64 = 1_750_000_000;
const DAY: u64 = 86_400;
const REFERENCE: &str = include_str!("../examples/reference-policy.toml");

/// Valid inputs of every kind, in `FieldKind::ALL` order.
const SAMPLES: [&[&str]; 8] = [
    &["11010519491231002X", "120101199602291547"],
    &["+86 138 0013 8000", "+1 202 555 0143"],
    &["a@example.com", "Zoe.Smith@mail.example.org"],
    &["Jane Doe", "Zoë O\u{2019}Brien-Łukasik"],
    &[
        "country=US\nstreet=1 Main St\npostal_code=12345",
        "country=JP\nstreet=丸の内１丁目",
    ],
    &["192.0.2.7", "2001:db8::5"],
    &["user_agent=Mozilla/5.0\nos=Linux", "model=Pixel 8"],
    &["hello", "a longer note, with punctuation."],
];

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Keeps every event in full (the stored form, with sealed-at and the context digest) and in a
/// `MemorySink`.
#[derive(Debug, Default)]
struct FullSink {
    memory: MemorySink,
    stored: Mutex<Vec<EventRecord>>,
}

impl AuditSink for FullSink {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let key = AuditKey::from_bytes(AUDIT_KEY).pseudonym_key();
        if let Ok(mut s) = self.stored.lock() {
            s.push(EventRecord::from_event(event, &key));
        }
        self.memory.record(event)
    }
}

impl FullSink {
    fn take(&self) -> (Vec<AuditRecord>, Vec<EventRecord>) {
        let memory = self.memory.records();
        self.memory.clear();
        let stored = self
            .stored
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        (memory, stored)
    }
}

struct World {
    sealer: Guard,
    typed: Guard,
    dynamic: Guard,
    typed_sink: Arc<FullSink>,
    dynamic_sink: Arc<FullSink>,
    clock: Arc<FixedClock>,
}

fn world() -> World {
    let keyring = Arc::new(ok(Keyring::single(RootKey::from_bytes([9; 32]))));
    let policy: Arc<dyn AccessPolicy> = Arc::new(ok(ManifestPolicy::from_toml(REFERENCE)));
    let consent = Arc::new(MemoryConsent::new());
    let u1 = SubjectId::new("u-1");
    consent.grant(&u1, ConsentScope::Purpose("marketing"), T0 - DAY);
    consent.grant(&u1, ConsentScope::CrossBorder, T0 - DAY);
    let clock = Arc::new(FixedClock::new(T0));
    let build = |sink: Arc<FullSink>| {
        ok(Guard::builder()
            .shared_keyring(Arc::clone(&keyring))
            .shared_policy(Arc::clone(&policy))
            .consent(Arc::clone(&consent))
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .audit(sink)
            .build())
    };
    let typed_sink = Arc::new(FullSink::default());
    let dynamic_sink = Arc::new(FullSink::default());
    // The sealer seals every (kind, purpose) pair, as values sealed before the manifest's
    // categories applied; the two openers decide under the manifest.
    let sealer = ok(Guard::builder()
        .shared_keyring(Arc::clone(&keyring))
        .policy(allow_all(&[
            "service",
            "improvement",
            "security",
            "marketing",
            "legal",
        ]))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .audit(NullSink)
        .build());
    World {
        sealer,
        typed: build(Arc::clone(&typed_sink)),
        dynamic: build(Arc::clone(&dynamic_sink)),
        typed_sink,
        dynamic_sink,
        clock,
    }
}

/// What a call produced, comparable across the two paths: the canonical plaintext or the mask,
/// or the error's `Debug` (which names the variant and its reason, never plaintext).
fn summary<T>(r: &Result<T, Error>, show: impl Fn(&T) -> Vec<u8>) -> Result<Vec<u8>, String> {
    match r {
        Ok(v) => Ok(show(v)),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// One trial's parameters.
#[derive(Debug, Clone)]
struct Trial {
    kind: usize,
    sample: usize,
    purpose: usize,
    role: usize,
    abroad: bool,
    subject: usize,
    open_ctx: usize,
    tamper: Option<usize>,
    age_days: u64,
    mask: bool,
}

const ROLES: [&str; 5] = [
    "support_agent",
    "support_lead",
    "marketing",
    "security_analyst",
    "intern",
];

fn trial() -> impl Strategy<Value = Trial> {
    (
        (0usize..8, 0usize..2, 0usize..5, 0usize..5, any::<bool>()),
        (
            0usize..3,
            0usize..4,
            prop::option::weighted(0.3, 0usize..2000),
            prop::sample::select(vec![0u64, 100, 200, 400, 800, 2000]),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (kind, sample, purpose, role, abroad),
                (subject, open_ctx, tamper, age_days, mask),
            )| {
                Trial {
                    kind,
                    sample,
                    purpose,
                    role,
                    abroad,
                    subject,
                    open_ctx,
                    tamper,
                    age_days,
                    mask,
                }
            },
        )
}

fn seal_ctx(t: &Trial) -> Context {
    let ctx = Context::new().table("t").column("c").row("1");
    match t.subject {
        1 => ctx.subject(&SubjectId::new("u-1")),
        2 => ctx.subject(&SubjectId::new("u-2")),
        _ => ctx,
    }
}

/// The context the value is opened in: the sealing one, another row, an invalid one, or the
/// sealing one rebuilt in another order.
fn open_ctx(t: &Trial) -> Context {
    match t.open_ctx {
        1 => Context::new().table("t").column("c").row("2"),
        2 => seal_ctx(t).with("Bad Name", b"x"),
        3 => {
            let c = Context::new().row("1").column("c").table("t");
            match t.subject {
                1 => c.subject(&SubjectId::new("u-1")),
                2 => c.subject(&SubjectId::new("u-2")),
                _ => c,
            }
        }
        _ => seal_ctx(t),
    }
}

/// Runs one trial for kind `F` and purpose `P`: seal, maybe tamper, then open on both paths.
fn run<F: Field, P: Purpose>(w: &World, t: &Trial) -> Result<Vec<&'static str>, TestCaseError> {
    let kind_index = FieldKind::ALL
        .iter()
        .position(|k| *k == F::KIND)
        .unwrap_or(0);
    let value = ok(F::parse(SAMPLES[kind_index][t.sample]));
    w.clock.set(T0);
    let sealed: Sealed<F, P> = ok(w.sealer.seal(&value, &seal_ctx(t)));
    let mut bytes = sealed.into_bytes();
    if let Some(at) = t.tamper {
        let bit = at % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
    }
    w.clock.set(T0 + t.age_days * DAY);
    let mut accessor = Accessor::new("staff-1", [Role::new(ROLES[t.role])]);
    if t.abroad {
        accessor = accessor.in_region("SG");
    }
    let ctx = open_ctx(t);

    let typed = Sealed::<F, P>::from_bytes(&bytes);
    let dynamic = AnySealed::from_bytes(&bytes);
    let (typed, dynamic) = match (typed, dynamic) {
        (Ok(a), Ok(b)) => (a, b),
        (
            Err(Error::Format(
                FormatError::KindMismatch { .. } | FormatError::PurposeMismatch { .. },
            )),
            _,
        ) if t.tamper.is_some() => {
            // A flipped kind or label: the typed path refuses at parse time, by design, before
            // the checks both paths share (which may or may not pass for the other kind).
            return Ok(Vec::new());
        }
        (Err(a), Err(b)) => {
            // Malformed for both: the same error, and nothing reached the guard.
            prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
            return Ok(Vec::new());
        }
        (a, b) => {
            return Err(TestCaseError::fail(format!(
                "parsers disagree: {:?} / {:?}",
                a.err(),
                b.err()
            )));
        }
    };

    let (got_typed, got_dynamic, typed_at, dynamic_at);
    if t.mask {
        let r = (w.typed.mask(&accessor, &typed, &ctx), here!());
        (got_typed, typed_at) = (summary(&r.0, |m| m.as_bytes().to_vec()), r.1);
        let r = (w.dynamic.mask_any(&accessor, &dynamic, &ctx), here!());
        (got_dynamic, dynamic_at) = (summary(&r.0, |m| m.as_bytes().to_vec()), r.1);
    } else {
        let r = (w.typed.reveal(&accessor, &typed, &ctx), here!());
        (got_typed, typed_at) = (
            summary(&r.0, |v| v.expose_secret().canonical_bytes().to_vec()),
            r.1,
        );
        let r = (w.dynamic.reveal_any(&accessor, &dynamic, &ctx), here!());
        (got_dynamic, dynamic_at) = (summary(&r.0, |v| v.expose_canonical().to_vec()), r.1);
        if let Ok(v) = &r.0 {
            prop_assert_eq!(v.kind(), F::KIND);
        }
    }
    prop_assert_eq!(&got_typed, &got_dynamic);

    let (mem_t, full_t) = w.typed_sink.take();
    let (mem_d, full_d) = w.dynamic_sink.take();
    prop_assert!(!mem_t.is_empty(), "every attempt leaves a record");
    prop_assert_eq!(mem_t.len(), mem_d.len());
    prop_assert_eq!(full_t.len(), full_d.len());
    for (a, b) in mem_t.iter().zip(&mem_d) {
        prop_assert_eq!(a.time, b.time);
        prop_assert_eq!(&a.principal, &b.principal);
        prop_assert_eq!(&a.roles, &b.roles);
        prop_assert_eq!(&a.purpose, &b.purpose);
        prop_assert_eq!(a.kind, b.kind);
        prop_assert_eq!(a.action, b.action);
        prop_assert_eq!(a.outcome, b.outcome);
        prop_assert_eq!(a.key_version, b.key_version);
        prop_assert_eq!(a.policy_version, b.policy_version);
        prop_assert_eq!(a.count, b.count);
        // The call site is each caller's own line.
        prop_assert_eq!(
            format!("{}:{}", a.call_site.file(), a.call_site.line()),
            typed_at
        );
        prop_assert_eq!(
            format!("{}:{}", b.call_site.file(), b.call_site.line()),
            dynamic_at
        );
    }
    for (a, b) in full_t.iter().zip(&full_d) {
        let mut b = b.clone();
        prop_assert_eq!(&b.site, dynamic_at);
        b.site = a.site.clone();
        // Every other stored field: time, principal, roles, purpose, kind, action, outcome,
        // subject pseudonym, context digest, key version, sealed-at, policy version, count.
        prop_assert_eq!(a, &b);
    }
    Ok(mem_t.iter().map(|r| r.outcome.label()).collect())
}

fn run_kind<P: Purpose>(w: &World, t: &Trial) -> Result<Vec<&'static str>, TestCaseError> {
    match FieldKind::ALL[t.kind] {
        FieldKind::IdNumber => run::<IdNumber, P>(w, t),
        FieldKind::PhoneNumber => run::<PhoneNumber, P>(w, t),
        FieldKind::Email => run::<Email, P>(w, t),
        FieldKind::PersonName => run::<PersonName, P>(w, t),
        FieldKind::PostalAddress => run::<PostalAddress, P>(w, t),
        FieldKind::IpAddress => run::<IpAddress, P>(w, t),
        FieldKind::DeviceInfo => run::<DeviceInfo, P>(w, t),
        _ => run::<Text, P>(w, t),
    }
}

fn run_trial(w: &World, t: &Trial) -> Result<Vec<&'static str>, TestCaseError> {
    match t.purpose {
        0 => run_kind::<Service>(w, t),
        1 => run_kind::<Marketing>(w, t),
        2 => run_kind::<Security>(w, t),
        3 => run_kind::<Legal>(w, t),
        _ => run_kind::<Improvement>(w, t),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Typed `reveal`/`mask` and `reveal_any`/`mask_any` agree on the decision or error and
    /// write identical audit records (but for each caller's own call site), over random kinds,
    /// values, purposes, roles, regions, subjects with and without consent, contexts (right,
    /// wrong, invalid), tampering and the value's age against retention.
    #[test]
    fn typed_and_dynamic_paths_agree(t in trial()) {
        thread_local! {
            static WORLD: World = world();
        }
        WORLD.with(|w| run_trial(w, &t))?;
    }
}

/// The trials reach every kind of outcome, so the agreement above is not vacuous.
#[test]
fn the_trials_reach_every_outcome() {
    let w = world();
    let mut seen = std::collections::BTreeSet::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..1000 {
        let t = trial()
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("{e}"))
            .current();
        seen.extend(run_trial(&w, &t).unwrap_or_else(|e| panic!("{e}")));
    }
    for label in [
        "allowed",
        "denied:not_permitted",
        "denied:consent_missing",
        "denied:expired",
        "denied:cross_border",
        "failed:integrity",
        "failed:context",
    ] {
        assert!(seen.contains(label), "{label} never reached: {seen:?}");
    }
}

/// `seal_any` writes byte for byte the envelope `seal` writes (same random stream, same clock).
#[test]
fn seal_any_writes_the_same_envelope_as_seal() {
    let (a, b) = (reproducible_guard(T0), reproducible_guard(T0));
    let ctx = Context::new().table("users").column("phone").row("3");
    let phone = ok(PhoneNumber::parse("+8613800138000"));
    let typed: Sealed<PhoneNumber, Service> = ok(a.seal(&phone, &ctx));
    let value = ok(AnyValue::parse(FieldKind::PhoneNumber, "+8613800138000"));
    let any = ok(b.seal_any(&value, &ok(PurposeId::new("service")), &ctx));
    assert_eq!(typed.as_bytes(), any.as_bytes());
}

/// Every kind round-trips through `seal_any` and `reveal_any`, and `expose_text` is a form
/// `AnyValue::parse` accepts back.
#[test]
fn every_kind_round_trips_dynamically() {
    let g = guard();
    let purpose = ok(PurposeId::new("marketing"));
    let ctx = Context::new().table("t").row("9");
    for (kind, samples) in FieldKind::ALL.into_iter().zip(SAMPLES) {
        for text in samples {
            let value = ok(AnyValue::parse(kind, text));
            assert_eq!(value.kind(), kind);
            let sealed = ok(g.seal_any(&value, &purpose, &ctx));
            assert_eq!(sealed.kind(), kind);
            assert_eq!(sealed.purpose(), purpose);
            let opened = ok(g.reveal_any(&tester(), &sealed, &ctx));
            assert_eq!(opened.kind(), kind);
            assert_eq!(opened.mask(), value.mask());
            assert_eq!(ok(g.mask_any(&tester(), &sealed, &ctx)), value.mask());
            let again = ok(AnyValue::parse(kind, &opened.expose_text()));
            let resealed = ok(g.seal_any(&again, &purpose, &ctx));
            let reopened = ok(g.reveal_any(&tester(), &resealed, &ctx));
            assert_eq!(
                opened.expose_canonical().as_slice(),
                reopened.expose_canonical().as_slice()
            );
        }
    }
}

#[test]
fn conversions_check_kind_and_purpose() {
    let g = guard();
    let ctx = Context::new().row("1");
    let sealed: Sealed<Email, Service> = ok(g.seal(&ok(Email::parse("a@example.com")), &ctx));
    let any = AnySealed::from(sealed.clone());
    assert_eq!(any.as_bytes(), sealed.as_bytes());
    assert_eq!(any.info(), sealed.info());
    assert_eq!(any.key_version(), sealed.key_version());
    assert_eq!(any.sealed_at(), sealed.sealed_at());
    assert!(matches!(
        Sealed::<PhoneNumber, Service>::try_from(&any),
        Err(Error::Format(FormatError::KindMismatch {
            expected: FieldKind::PhoneNumber,
            found: FieldKind::Email
        }))
    ));
    assert!(matches!(
        Sealed::<Email, Marketing>::try_from(&any),
        Err(Error::Format(FormatError::PurposeMismatch {
            expected: "marketing"
        }))
    ));
    let back: Sealed<Email, Service> = ok(Sealed::try_from(any));
    assert_eq!(back, sealed);
}

#[test]
fn any_sealed_parses_with_the_same_checks_and_forms() {
    let g = guard();
    let sealed: Sealed<Text, Service> = ok(g.seal(&ok(Text::parse("hi")), &Context::new()));
    let any = AnySealed::from(sealed.clone());
    // Text, binary and serde forms agree with `Sealed`'s.
    assert_eq!(any.to_text(), sealed.to_text());
    assert_eq!(any.to_string(), sealed.to_string());
    assert_eq!(ok(any.to_text().parse::<AnySealed>()), any);
    assert_eq!(ok(AnySealed::from_bytes(any.as_bytes())), any);
    let json = ok(serde_json::to_string(&any));
    assert_eq!(json, ok(serde_json::to_string(&sealed)));
    assert_eq!(ok(serde_json::from_str::<AnySealed>(&json)), any);
    let bin = ok(postcard::to_allocvec(&any));
    assert_eq!(bin, ok(postcard::to_allocvec(&sealed)));
    assert_eq!(ok(postcard::from_bytes::<AnySealed>(&bin)), any);
    // Malformed input: the same errors as the typed parser.
    let mut long = sealed.as_bytes().to_vec();
    long.truncate(long.len() - 17);
    for bad in [&[][..], &[2, 1, 0][..], &long[..]] {
        assert_eq!(
            format!("{:?}", AnySealed::from_bytes(bad).err()),
            format!("{:?}", Sealed::<Text, Service>::from_bytes(bad).err())
        );
    }
    for bad in ["", "fs2:AA", "fs1:!!", "xyz"] {
        assert_eq!(
            format!("{:?}", AnySealed::from_text(bad).err()),
            format!("{:?}", Sealed::<Text, Service>::from_text(bad).err())
        );
    }
    // The per-kind cap: an IP-address envelope with a ciphertext longer than any address.
    let text: Sealed<Text, Service> =
        ok(g.seal(&ok(Text::parse(&"x".repeat(64))), &Context::new()));
    let mut bytes = text.into_bytes();
    bytes[1] = FieldKind::IpAddress.code();
    assert!(matches!(
        AnySealed::from_bytes(&bytes),
        Err(Error::Format(FormatError::CiphertextLength))
    ));
    assert!(EnvelopeInfo::from_bytes(&bytes).is_err());
}

#[test]
fn dynamic_types_redact_debug() {
    let g = guard();
    let ctx = Context::new().row("1");
    let value = ok(AnyValue::parse(FieldKind::Email, "canary@example.com"));
    assert_eq!(format!("{value:?}"), "AnyValue<email>([REDACTED])");
    let sealed = ok(g.seal_any(&value, &ok(PurposeId::new("service")), &ctx));
    let dbg = format!("{sealed:?}");
    assert!(
        dbg.starts_with("AnySealed<email, service>(key_version=1"),
        "{dbg}"
    );
    let opened = ok(g.reveal_any(&tester(), &sealed, &ctx));
    let dbg = format!("{opened:?}");
    assert_eq!(dbg, "AnyRevealed<email>([REDACTED])");
    assert!(!format!("{:?}", AnyValue::from(ok(Text::parse("canary")))).contains("canary"));
}

/// A purpose label the tool was not compiled with opens through the dynamic path, under the
/// same policy rules.
#[test]
fn a_runtime_purpose_opens_only_as_the_policy_allows() {
    let sink = Arc::new(MemorySink::new());
    let billing = ok(PurposeId::new("billing"));
    let g = ok(Guard::builder()
        .keyring(ok(Keyring::generate()))
        .policy(AllowList::new().allow_dyn(
            Role::new("tool"),
            billing.clone(),
            FieldKind::PhoneNumber,
            Action::Mask,
        ))
        .audit(Arc::clone(&sink))
        .build());
    let ctx = Context::new().table("invoices").row("4");
    let value = ok(AnyValue::parse(FieldKind::PhoneNumber, "+8613800138000"));
    let sealed = ok(g.seal_any(&value, &billing, &ctx));
    let tool = Accessor::new("cli", [Role::new("tool")]);
    assert_eq!(ok(g.mask_any(&tool, &sealed, &ctx)), value.mask());
    assert!(matches!(
        g.reveal_any(&tool, &sealed, &ctx),
        Err(Error::Denied {
            reason: DenyReason::NotPermitted
        })
    ));
    let ex = ok(g.explain_any(&tool, &sealed, &ctx, Action::Reveal));
    assert_eq!(ex.decision, Decision::Deny(DenyReason::NotPermitted));
    let records = sink.records();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.purpose.as_ref() == Some(&billing)));
}

/// Sealing under a runtime purpose built afresh for every call stays in the thread's sealing
/// epoch (same epoch salt) instead of deriving a new key each time.
#[test]
fn fresh_purpose_ids_share_the_threads_sealing_epoch() {
    let g = guard();
    let ctx = Context::new().row("1");
    let value = ok(AnyValue::parse(FieldKind::Text, "x"));
    let salt = |s: &AnySealed| {
        let at = 4 + s.purpose_label().len() + 4 + 8;
        s.as_bytes()[at..at + 16].to_vec()
    };
    // Both alive at once, so their labels are at different addresses.
    let (p1, p2) = (ok(PurposeId::new("servicf")), ok(PurposeId::new("servicf")));
    let a = ok(g.seal_any(&value, &p1, &ctx));
    let b = ok(g.seal_any(&value, &p2, &ctx));
    assert_eq!(salt(&a), salt(&b));
    // Another label gets another epoch.
    let c = ok(g.seal_any(&value, &ok(PurposeId::new("legal")), &ctx));
    assert_ne!(salt(&a), salt(&c));
    let d = ok(g.rewrap_any(&tester(), &a, &ctx));
    let e = ok(g.rewrap_any(&tester(), &b, &ctx));
    assert_eq!(salt(&d), salt(&e));
}
