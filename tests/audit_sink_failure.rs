//! Fail-closed auditing: a sink failing on the k-th event makes that reveal fail with no
//! plaintext; denials can be recorded best-effort when configured.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use fieldseal::builtin::Service;
use fieldseal::*;

/// Fails the event whose 1-based number equals `fail_at`; counts accepted events.
#[derive(Debug, Default)]
struct FailingSink {
    seen: AtomicU64,
    fail_at: AtomicU64,
    accepted: AtomicU64,
}

impl AuditSink for FailingSink {
    fn record(&self, _event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(AuditError::new(AuditErrorKind::Rejected));
        }
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn guard(sink: Arc<FailingSink>, best_effort_denials: bool) -> Guard {
    Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(sink)
        .best_effort_denial_audit(best_effort_denials)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn no_reveal_without_an_accepted_record() {
    let sink = Arc::new(FailingSink::default());
    let g = guard(Arc::clone(&sink), true);
    let ctx = Context::new().table("t").column("phone").row("1");
    let phone = PhoneNumber::parse("+86 138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<PhoneNumber, Service> =
        g.seal(&phone, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let who = tester();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut trials, mut refused, mut revealed, mut unaccepted) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..10_000 {
        // The k-th event from now fails, k in 1..=4; each trial makes 1..=4 reveals.
        let base = sink.seen.load(Ordering::SeqCst);
        sink.fail_at
            .store(base + 1 + rng.next() % 4, Ordering::SeqCst);
        for _ in 0..1 + rng.next() % 4 {
            let before = sink.accepted.load(Ordering::SeqCst);
            let out = g.reveal(&who, &sealed, &ctx);
            let recorded = sink.accepted.load(Ordering::SeqCst) > before;
            match out {
                Ok(v) => {
                    assert_eq!(v.expose_secret().as_str(), "+8613800138000");
                    revealed += 1;
                    if !recorded {
                        unaccepted += 1;
                    }
                }
                Err(Error::Audit(e)) => {
                    assert_eq!(e.kind(), AuditErrorKind::Rejected);
                    assert!(!recorded);
                    refused += 1;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        trials += 1;
    }
    println!(
        "sink failure injection: {trials} trials, {revealed} reveals, {refused} refused on sink \
         failure, {unaccepted} reveals without an accepted record"
    );
    assert_eq!(unaccepted, 0);
    assert!(refused > 0);
}

#[test]
fn denial_audit_modes() {
    let ctx = Context::new().table("t").column("phone").row("1");
    let phone = PhoneNumber::parse("+86 138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
    let stranger = Accessor::new("mallory", [Role::new("nobody")]);
    for best_effort in [false, true] {
        let sink = Arc::new(FailingSink::default());
        let g = guard(Arc::clone(&sink), best_effort);
        let sealed: Sealed<PhoneNumber, Service> =
            g.seal(&phone, &ctx).unwrap_or_else(|e| panic!("{e}"));
        // The first event fails: a denial.
        sink.fail_at.store(1, Ordering::SeqCst);
        let denied = g.reveal(&stranger, &sealed, &ctx);
        assert_refused(&denied, best_effort, DenyReason::NotPermitted);
        // Reveals always fail closed, in both modes.
        sink.fail_at.store(2, Ordering::SeqCst);
        let r = g.reveal(&tester(), &sealed, &ctx);
        assert!(
            matches!(r, Err(Error::Audit(_))),
            "best_effort={best_effort}: {r:?}"
        );
        assert_eq!(sink.accepted.load(Ordering::SeqCst), 0);
    }
}

/// A denial whose record the sink refused: reported as the denial in best-effort mode, as the
/// sink's error otherwise.
fn assert_refused<T: std::fmt::Debug>(
    refused: &Result<T, Error>,
    best_effort: bool,
    want: DenyReason,
) {
    match refused {
        Err(Error::Denied { reason }) if best_effort => assert_eq!(*reason, want),
        Err(Error::Audit(_)) if !best_effort => {}
        other => panic!("best_effort={best_effort}: {other:?}"),
    }
}

/// Subject-rights denials (an erasure the policy refuses, an erasure without a proof of the
/// subject's identity, a correction of a value bound to someone else): the denial record may
/// be best effort; the request is refused either way, and nothing is erased.
#[test]
fn erasure_denial_audit_modes() {
    let stranger = Accessor::new("mallory", [Role::new("nobody")]);
    let subject = SubjectId::new("u-1");
    for best_effort in [false, true] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek = FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}"));
        let store = FileSubjectKeys::open(dir.path().join("subject-keys"))
            .unwrap_or_else(|e| panic!("{e}"));
        let sink = Arc::new(FailingSink::default());
        let g = Guard::builder()
            .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
            .policy(allow_all(&["service"]))
            .audit(Arc::clone(&sink))
            .best_effort_denial_audit(best_effort)
            .subject_keys(SubjectKeys::new(Arc::new(kek), Arc::new(store)))
            .subject_key_purpose(PurposeId::of::<Service>(), SubjectKeyScope::Subject)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context::new().row("1").subject(&subject);
        let phone = PhoneNumber::parse("+86 138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
        let sealed: Sealed<PhoneNumber, Service> =
            g.seal(&phone, &ctx).unwrap_or_else(|e| panic!("{e}"));
        sink.fail_at.store(1, Ordering::SeqCst);
        let refused = g.erase(&stranger, &subject, Erasure::Subject);
        assert_refused(&refused, best_effort, DenyReason::NotPermitted);
        // A subject-rights request with a proof for someone else: refused, its record best
        // effort in the same way.
        let sessions = SessionVerifier::new();
        let other = SubjectId::new("u-2");
        sessions
            .bind(&other, b"session-token-0123456789abcdef")
            .unwrap_or_else(|e| panic!("{e}"));
        let proof = g
            .verify_identity(
                &sessions,
                &other,
                &Evidence::new(b"session-token-0123456789abcdef".to_vec()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        sink.fail_at
            .store(sink.seen.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        let refused = g.erase_verified(&tester(), &subject, &proof, Erasure::Subject);
        assert_refused(&refused, best_effort, DenyReason::IdentityNotVerified);
        // A correction by the proven subject of a value bound to another subject: refused the
        // same way.
        sink.fail_at
            .store(sink.seen.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        let new_value = AnyValue::parse(FieldKind::PhoneNumber, "+86 139 0013 9000")
            .unwrap_or_else(|e| panic!("{e}"));
        let refused = g.correct(
            &tester(),
            &other,
            &proof,
            &AnySealed::from(sealed.clone()),
            &ctx,
            &new_value,
        );
        assert_refused(&refused, best_effort, DenyReason::IdentityNotVerified);
        assert_eq!(
            sink.accepted.load(Ordering::SeqCst),
            0,
            "each of the three was refused"
        );
        // Nothing was erased.
        let opened = g
            .reveal(&tester(), &sealed, &ctx)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened.expose_secret().as_str(), "+8613800138000");
    }
}
