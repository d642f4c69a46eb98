//! The `tracing` feature: every guard operation and audit sink call has its span with the
//! promised fields, and no span or event field ever holds a value, a subject id, a context
//! value, a key or an envelope, in any of their printable forms.
#![cfg(feature = "tracing")]

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use fieldseal::builtin::{Legal, Marketing, Service};
use fieldseal::*;
use tracing::field::{Field as TField, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_core::span::Current;

/// One span as the subscriber saw it: its name and every field it was given, as text.
#[derive(Debug, Clone, Default)]
struct SpanRec {
    name: String,
    meta: Option<&'static Metadata<'static>>,
    fields: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SpanRec>,
    /// Events: their fields, and the span they happened in (index into `spans`).
    events: Vec<(HashMap<String, String>, Option<usize>)>,
    /// The entered spans of the (one) thread under test.
    stack: Vec<usize>,
}

/// Records every span and event field; `Span::current` answers from its own stack.
#[derive(Debug, Default, Clone)]
struct Capture(Arc<Mutex<Seen>>);

impl Capture {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|e| panic!("{e}"))
    }
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &TField, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &TField, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &TField, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_i64(&mut self, field: &TField, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_bool(&mut self, field: &TField, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_bytes(&mut self, field: &TField, value: &[u8]) {
        // Recorded in every form the scan looks for.
        let text = format!(
            "{} {}",
            hex(value),
            String::from_utf8_lossy(value).into_owned()
        );
        self.0.insert(field.name().to_owned(), text);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut rec = SpanRec {
            name: attrs.metadata().name().to_owned(),
            meta: Some(attrs.metadata()),
            fields: HashMap::new(),
        };
        attrs.record(&mut Fields(&mut rec.fields));
        let mut seen = self.seen();
        seen.spans.push(rec);
        Id::from_u64(seen.spans.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.seen();
        if let Some(rec) = seen.spans.get_mut(span.into_u64() as usize - 1) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let mut seen = self.seen();
        let parent = seen.stack.last().copied();
        seen.events.push((fields, parent));
    }
    fn enter(&self, span: &Id) {
        self.seen().stack.push(span.into_u64() as usize - 1);
    }
    fn exit(&self, span: &Id) {
        let mut seen = self.seen();
        let i = span.into_u64() as usize - 1;
        if let Some(at) = seen.stack.iter().rposition(|&s| s == i) {
            seen.stack.remove(at);
        }
    }
    fn current_span(&self) -> Current {
        let seen = self.seen();
        match seen
            .stack
            .last()
            .and_then(|&i| seen.spans.get(i).map(|s| (i, s.meta)))
        {
            Some((i, Some(meta))) => Current::new(Id::from_u64(i as u64 + 1), meta),
            _ => Current::none(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `secret` and its printable forms: as is, lower/upper hex, base64 and base64url (padded or
/// not), and the Debug form of its bytes.
fn forms(secret: &[u8]) -> Vec<String> {
    let b = base64::engine::general_purpose::STANDARD;
    let bu = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut v = vec![
        hex(secret),
        hex(secret).to_uppercase(),
        b.encode(secret).trim_end_matches('=').to_owned(),
        bu.encode(secret),
        format!("{secret:?}"),
    ];
    if let Ok(s) = std::str::from_utf8(secret) {
        v.push(s.to_owned());
    }
    v
}

/// A sink that refuses every record.
#[derive(Debug, Default)]
struct Refusing(AtomicU64);

impl AuditSink for Refusing {
    fn record(&self, _: &AuditEvent<'_>) -> Result<(), AuditError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(AuditError::new(AuditErrorKind::Io))
    }
}

const ROOT_KEY: [u8; 32] = *b"canary-root-key-0123456789abcdef";
const ROOT_KEY_2: [u8; 32] = *b"canary-root-key-two-0123456789ab";
const SUBJECT: &str = "subj-canary-K7Q2";
const ROW: &str = "row-canary-P4X9";
const EMAIL: &str = "mail.canary.z9w3@example.com";
const TEXT: &str = "text canary V8M1 body";
const NAME: &str = "Canaryname Q5T6";

fn keyring() -> Keyring {
    let b64 = base64::engine::general_purpose::STANDARD;
    Keyring::builder()
        .key(
            v(1),
            RootKey::from_base64(&b64.encode(ROOT_KEY)).unwrap_or_else(|e| panic!("{e}")),
        )
        .key(
            v(2),
            RootKey::from_base64(&b64.encode(ROOT_KEY_2)).unwrap_or_else(|e| panic!("{e}")),
        )
        .active(v(1))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ctx() -> Context {
    Context::new()
        .table("users")
        .column("email")
        .row(ROW)
        .subject(&SubjectId::new(SUBJECT))
}

fn ok<T, E: fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs every instrumented operation (allowed, denied, failing) under the capturing
/// subscriber; returns the envelopes sealed, for the scan.
fn exercise(dir: &std::path::Path) -> Vec<String> {
    let mut envelopes = Vec::new();
    let (log, _) = ok(ChainedLog::builder(dir)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(Durability::Durable)
        .open());
    let log = Arc::new(log);
    let kek_dir = ok(tempfile::tempdir());
    let kek = Arc::new(ok(FileKek::create(kek_dir.path().join("kek"))));
    let subject_keys = SubjectKeys::new(
        kek,
        Arc::new(ok(FileSubjectKeys::open(kek_dir.path().join("sk")))),
    );
    let guard = ok(Guard::builder()
        .keyring(keyring())
        .policy(allow_all(&["service", "marketing", "legal"]))
        .audit(Arc::clone(&log))
        .subject_keys(subject_keys)
        .subject_key_purpose(PurposeId::of::<Marketing>(), SubjectKeyScope::Purpose)
        .build());
    let who = tester();
    let c = ctx();

    // Seal, reveal, mask (typed and dynamic), all allowed.
    let email: Sealed<Email, Service> = ok(guard.seal(&ok(Email::parse(EMAIL)), &c));
    envelopes.push(email.to_text());
    let name: Sealed<PersonName, Service> = ok(guard.seal(&ok(PersonName::parse(NAME)), &c));
    envelopes.push(name.to_text());
    let text = ok(guard.seal_any(
        &ok(AnyValue::parse(FieldKind::Text, TEXT)),
        &PurposeId::of::<Service>(),
        &c,
    ));
    envelopes.push(text.to_text());
    assert_eq!(
        ok(guard.reveal(&who, &email, &c)).expose_secret().as_str(),
        EMAIL
    );
    ok(guard.mask(&who, &name, &c));
    drop(ok(guard.reveal_any(&who, &text, &c)));
    ok(guard.mask_any(&who, &text, &c));

    // Denied by the policy; failed authentication (another row); invalid context.
    let stranger = Accessor::new("stranger-1", [Role::new("nobody")]);
    assert!(guard.reveal(&stranger, &email, &c).is_err());
    let other_row = Context::new()
        .table("users")
        .column("email")
        .row("row-canary-OTHER")
        .subject(&SubjectId::new(SUBJECT));
    assert!(matches!(
        guard.reveal(&who, &email, &other_row),
        Err(Error::Integrity)
    ));

    // Rewrap (typed, dynamic, batch) under version 2, repurpose.
    ok(guard.keyring().activate(v(2)));
    let rewrapped = ok(guard.rewrap(&who, &email, &c));
    envelopes.push(rewrapped.to_text());
    envelopes.push(ok(guard.rewrap_any(&who, &text, &c)).to_text());
    let report = ok(guard.rewrap_batch(
        &who,
        vec![
            (AnySealed::from(name.clone()), c.clone()),
            (AnySealed::from(email.clone()), other_row.clone()),
        ],
    ));
    assert_eq!((report.rewrapped(), report.failed()), (1, 1));
    let held: Sealed<Email, Legal> = ok(guard.repurpose(&who, &email, &c));
    envelopes.push(held.to_text());

    // Subject keys: seal for marketing, erase, then the value fails as erased.
    let m: Sealed<Email, Marketing> = ok(guard.seal(&ok(Email::parse(EMAIL)), &c));
    envelopes.push(m.to_text());
    ok(guard.erase(
        &who,
        &SubjectId::new(SUBJECT),
        Erasure::Purpose(&PurposeId::of::<Marketing>()),
    ));
    assert!(guard.reveal(&who, &m, &c).is_err());
    assert!(
        guard
            .erase(&stranger, &SubjectId::new(SUBJECT), Erasure::Subject)
            .is_err()
    );
    ok(log.checkpoint());

    // Consent missing under the reference manifest.
    let policy = ok(ManifestPolicy::from_toml(include_str!(
        "../examples/reference-policy.toml"
    )));
    let manifest_guard = ok(Guard::builder()
        .keyring(keyring())
        .policy(policy)
        .consent(MemoryConsent::new())
        .audit(Arc::clone(&log))
        .build());
    let mk: Sealed<Email, Marketing> = ok(manifest_guard.seal(&ok(Email::parse(EMAIL)), &c));
    envelopes.push(mk.to_text());
    let marketer = Accessor::new("marketer-1", [Role::new("marketing")]);
    assert!(matches!(
        manifest_guard.reveal(&marketer, &mk, &c),
        Err(Error::Denied {
            reason: DenyReason::ConsentMissing
        })
    ));

    // The sink refuses: reveal fails closed.
    let refusing = ok(Guard::builder()
        .keyring(keyring())
        .policy(allow_all(&["service"]))
        .audit(Refusing::default())
        .build());
    assert!(matches!(
        refusing.reveal(&who, &email, &c),
        Err(Error::Audit(_))
    ));

    // Analytics: an anonymization and blind-index terms (keyed digests of the canary value).
    ok(guard.anonymize(&who, &email, &c, Anonymization::Pseudonym));
    let login = ok(BlindIndex::<Email, Service>::builder("login")
        .expected_rows(1_000)
        .distinct_values(1_000)
        .build());
    let term = ok(guard.blind_index_sealed(&who, &email, &c, &login));
    let query = ok(guard.index_query(&who, &ok(Email::parse(EMAIL)), &c, &login));
    assert!(query.matches(&term));
    // A share the policy refuses (an allow list names no recipients), with its span.
    #[cfg(feature = "share")]
    {
        let key = ok(RecipientPrivateKey::generate());
        let to = ok(RecipientName::new("affiliates"));
        assert!(
            guard
                .share(&who, &email, &to, &key.public_key(), &c)
                .is_err()
        );
    }

    // The async path.
    let rt = ok(tokio::runtime::Builder::new_current_thread().build());
    let revealed = ok(rt.block_on(guard.reveal_async(&who, &rewrapped, &c)));
    assert_eq!(revealed.expose_secret().as_str(), EMAIL);
    envelopes
}

fn every_field(seen: &Seen) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for s in &seen.spans {
        for (k, v) in &s.fields {
            all.push((s.name.clone(), k.clone(), v.clone()));
        }
    }
    for (fields, _) in &seen.events {
        for (k, v) in fields {
            all.push(("event".to_owned(), k.clone(), v.clone()));
        }
    }
    all
}

fn spans_named<'a>(seen: &'a Seen, name: &str) -> Vec<&'a SpanRec> {
    seen.spans.iter().filter(|s| s.name == name).collect()
}

fn field<'a>(s: &'a SpanRec, f: &str) -> &'a str {
    s.fields.get(f).map_or("<unset>", String::as_str)
}

#[test]
fn no_canary_reaches_a_span_or_event_and_every_operation_is_traced() {
    let dir = ok(tempfile::tempdir());
    let capture = Capture::default();
    let envelopes = tracing::subscriber::with_default(capture.clone(), || exercise(dir.path()));
    let seen = capture.seen();

    // The scan: no canary in any form, nor any envelope (or its base64 body).
    let mut canaries: Vec<String> = Vec::new();
    for secret in [
        SUBJECT.as_bytes(),
        ROW.as_bytes(),
        "row-canary-OTHER".as_bytes(),
        EMAIL.as_bytes(),
        TEXT.as_bytes(),
        NAME.as_bytes(),
        &ROOT_KEY[..],
        &ROOT_KEY_2[..],
        &AUDIT_KEY[..],
        &CKPT_KEY[..],
    ] {
        canaries.extend(forms(secret));
    }
    // Fragments: a value's distinctive part is enough to leak it.
    canaries.extend(
        ["K7Q2", "P4X9", "z9w3", "V8M1", "Q5T6", "OTHER"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    for e in &envelopes {
        canaries.push(e.clone());
        canaries.push(
            e.trim_start_matches("fs1:")
                .chars()
                .skip(20)
                .take(24)
                .collect(),
        );
    }
    let fields = every_field(&seen);
    assert!(fields.len() > 100, "only {} fields captured", fields.len());
    for (span, name, value) in &fields {
        for canary in &canaries {
            assert!(
                !value.contains(canary.as_str()),
                "{span}.{name} = {value:?} contains a canary"
            );
        }
    }

    // The promised spans and fields.
    for op in [
        "fieldseal.seal",
        "fieldseal.reveal",
        "fieldseal.mask",
        "fieldseal.rewrap",
        "fieldseal.repurpose",
        "fieldseal.erase",
        "fieldseal.rewrap_batch",
        "fieldseal.anonymize",
        "fieldseal.index",
        #[cfg(feature = "share")]
        "fieldseal.share",
        "fieldseal.audit.append",
        "fieldseal.audit.checkpoint",
        "fieldseal.audit.batch",
    ] {
        let spans = spans_named(&seen, op);
        assert!(!spans.is_empty(), "no {op} span");
        for s in spans {
            let latency = field(s, "latency_us");
            assert!(latency.parse::<u64>().is_ok(), "{op} latency_us {latency}");
            assert_ne!(field(s, "result"), "<unset>", "{op} result");
        }
    }
    let seals = spans_named(&seen, "fieldseal.seal");
    assert!(seals.iter().any(|s| field(s, "kind") == "email"
        && field(s, "purpose") == "service"
        && field(s, "action") == "seal"
        && field(s, "new_key_version") == "1"
        && field(s, "result") == "ok"));
    let reveals = spans_named(&seen, "fieldseal.reveal");
    let has = |decision: &str, result: &str| {
        reveals.iter().any(|s| {
            field(s, "decision") == decision
                && field(s, "result") == result
                && field(s, "kind") == "email"
                && field(s, "action") == "reveal"
                && field(s, "key_version") != "<unset>"
        })
    };
    assert!(has("allowed", "ok"), "allowed reveal");
    assert!(has("denied:not_permitted", "denied"), "policy denial");
    assert!(
        has("failed:integrity", "integrity"),
        "failed authentication"
    );
    assert!(has("failed:erased", "key"), "erased subject key");
    assert!(has("denied:consent_missing", "denied"), "consent denial");
    assert!(has("allowed", "audit:io"), "sink refusal");
    let rewraps = spans_named(&seen, "fieldseal.rewrap");
    assert!(rewraps.iter().any(|s| field(s, "key_version") == "1"
        && field(s, "new_key_version") == "2"
        && field(s, "decision") == "allowed"));
    let batch = spans_named(&seen, "fieldseal.rewrap_batch");
    assert!(batch.iter().any(|s| field(s, "items") == "2"
        && field(s, "rewrapped") == "1"
        && field(s, "failed") == "1"));
    let erase = spans_named(&seen, "fieldseal.erase");
    assert!(erase.iter().any(|s| field(s, "decision") == "allowed"
        && field(s, "purpose") == "marketing"
        && field(s, "result") == "ok"));
    assert!(
        erase
            .iter()
            .any(|s| field(s, "decision") == "denied:not_permitted")
    );
    let appends = spans_named(&seen, "fieldseal.audit.append");
    assert!(appends.iter().any(|s| field(s, "seq") == "1"));
    // The log is durable and written by one thread: every batch is its append's own (one
    // entry, synced), and the explicit checkpoint after the last append writes a batch of
    // none.
    let batches = spans_named(&seen, "fieldseal.audit.batch");
    for s in &batches {
        let entries = field(s, "entries");
        assert!(entries == "0" || entries == "1", "entries {entries}");
        assert_eq!(field(s, "synced"), "true");
    }
    assert!(
        batches
            .iter()
            .any(|s| field(s, "entries") == "0" && field(s, "checkpoint") == "true"),
        "the explicit checkpoint"
    );
    // Decision events carry the audit record's labels and sit inside their operation's span.
    assert!(seen.events.iter().any(|(f, parent)| {
        f.get("decision").map(String::as_str) == Some("denied:consent_missing")
            && f.get("purpose").map(String::as_str) == Some("marketing")
            && parent.is_some_and(|p| seen.spans[p].name == "fieldseal.reveal")
    }));
}
