//! Audit events and the sink they go to.
//!
//! The [`Guard`](crate::Guard) builds an [`AuditEvent`] for every reveal, mask, rewrap or
//! repurpose, allowed or denied (one per decision for a batch rewrap), and hands it to the configured [`AuditSink`] *before* any plaintext is produced. If the
//! sink returns an error, the operation fails closed.

mod ack;
mod action;
mod chain;
mod ckpt_file;
mod event;
mod fields;
mod json;
mod keys;
pub(crate) mod line;
mod verify;

/// Line formats, for the fuzzing entry points only.
pub(crate) mod line_fuzz {
    pub(crate) use super::line::{
        ChainMac, Checkpoint, GENESIS, fast_accept, parse_line, quick_seq,
    };
}

pub use action::{AppEventName, AuditAction, RecipientName, Reference};
pub use chain::{ChainedLog, ChainedLogBuilder, Durability, OpenReport, TornLine};
pub use event::EventRecord;
pub use fields::{AuditField, FieldRecord};
pub use keys::{AuditKey, CheckpointSigningKey, CheckpointVerifyingKey, PseudonymKey};
pub use verify::{Fault, FaultClass, SubjectAccess, VerifyReport, verify_bytes, verify_log};

#[cfg(feature = "postgres")]
pub(crate) use keys::hex;

use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Mutex};

use crate::context::Context;
use crate::error::{AuditError, AuditErrorKind};
use crate::field::FieldKind;
use crate::keys::KeyVersion;
use crate::policy::{Accessor, DenyReason, PrincipalId, Role};
use crate::purpose::PurposeId;

/// What happened to the request an event describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The request was allowed; plaintext (or a mask) is produced only after this is recorded.
    Allowed,
    /// The request was denied.
    Denied(DenyReason),
    /// The request was allowed but opening failed afterwards (tampering, wrong context, key
    /// unavailable). Recorded best-effort after the fact.
    Failed(FailureKind),
}

/// Why an allowed request failed after it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Authentication failed.
    Integrity,
    /// The key was unavailable or retired.
    Key,
    /// The context was invalid.
    Context,
    /// The value authenticated but its plaintext did not parse as its kind (for example a
    /// kind's validation rules tightened after the value was sealed).
    Field,
    /// The value's subject key was erased (crypto-shredded).
    Erased,
    /// The random source failed while a value was being re-sealed (rewrap, repurpose).
    Random,
}

impl Outcome {
    /// Stable label: `allowed`, `denied:<reason>`, `failed:<kind>`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied(DenyReason::NotPermitted) => "denied:not_permitted",
            Outcome::Denied(DenyReason::ConsentMissing) => "denied:consent_missing",
            Outcome::Denied(DenyReason::Expired) => "denied:expired",
            Outcome::Denied(DenyReason::CrossBorder) => "denied:cross_border",
            Outcome::Denied(DenyReason::PurposeNotAllowedForKind) => {
                "denied:purpose_not_allowed_for_kind"
            }
            Outcome::Denied(DenyReason::IdentityNotVerified) => "denied:identity_not_verified",
            Outcome::Denied(DenyReason::RecipientNotAllowed) => "denied:recipient_not_allowed",
            Outcome::Failed(FailureKind::Integrity) => "failed:integrity",
            Outcome::Failed(FailureKind::Key) => "failed:key",
            Outcome::Failed(FailureKind::Context) => "failed:context",
            Outcome::Failed(FailureKind::Field) => "failed:field",
            Outcome::Failed(FailureKind::Erased) => "failed:erased",
            Outcome::Failed(FailureKind::Random) => "failed:random",
        }
    }
}

/// One access to personal data, or one event of its lifecycle, as seen by an audit sink.
/// Borrowed: sinks copy what they keep.
///
/// It never holds plaintext or key bytes. It does give sinks the caller's [`Context`] (which may
/// name a row or subject) so that a sink can store a keyed digest of it; sinks must not store the
/// context itself.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    pub(crate) time: u64,
    pub(crate) accessor: &'a Accessor,
    pub(crate) purpose: Option<&'a PurposeId>,
    pub(crate) kind: Option<FieldKind>,
    pub(crate) action: AuditAction,
    pub(crate) outcome: Outcome,
    pub(crate) call_site: &'static Location<'static>,
    pub(crate) key_version: KeyVersion,
    pub(crate) sealed_at: u64,
    pub(crate) policy_version: u64,
    pub(crate) context: &'a Context,
    /// `Some(n)` for a batch record: one decision covering `n` items.
    pub(crate) count: Option<u64>,
    /// Recipient and reference of a share or disclosure.
    pub(crate) detail: Detail<'a>,
}

/// The optional parts of an event that only some actions have.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Detail<'a> {
    pub(crate) recipient: Option<&'a RecipientName>,
    pub(crate) reference: Option<&'a Reference>,
    /// The fields a record batch covers ([`Guard::reveal_record`](crate::Guard::reveal_record)).
    pub(crate) fields: Option<&'a [AuditField]>,
}

impl Detail<'_> {
    pub(crate) const NONE: Detail<'static> = Detail {
        recipient: None,
        reference: None,
        fields: None,
    };
}

impl<'a> AuditEvent<'a> {
    /// Seconds since the Unix epoch when the request was decided.
    pub fn time(&self) -> u64 {
        self.time
    }
    /// Who asked.
    pub fn accessor(&self) -> &'a Accessor {
        self.accessor
    }
    /// The purpose; `None` for an event about no one purpose (a policy reload, a consent to
    /// cross-border access, an application event that names none).
    pub fn purpose(&self) -> Option<&'a PurposeId> {
        self.purpose
    }
    /// The field kind; `None` for an event about no one kind (an erasure of a subject key, a
    /// consent change, a policy reload).
    pub fn kind(&self) -> Option<FieldKind> {
        self.kind
    }
    /// The action.
    pub fn action(&self) -> AuditAction {
        self.action
    }
    /// The decision or failure.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// The source location of the call (from `#[track_caller]`).
    pub fn call_site(&self) -> &'static Location<'static> {
        self.call_site
    }
    /// The key version of the sealed value (for events about no value: the active version
    /// when the event was recorded).
    pub fn key_version(&self) -> KeyVersion {
        self.key_version
    }
    /// When the value was sealed (0 for events about no value).
    pub fn sealed_at(&self) -> u64 {
        self.sealed_at
    }
    /// Version of the access policy that decided (0 for unversioned policies).
    pub fn policy_version(&self) -> u64 {
        self.policy_version
    }
    /// The caller's context, for keyed digesting. Do not store it.
    pub fn context(&self) -> &'a Context {
        self.context
    }
    /// For a batch record ([`Guard::rewrap_batch`](crate::Guard::rewrap_batch)), the number of
    /// items its one decision covers; `None` for a record about one value.
    ///
    /// A batch record names the batch's purpose and kind, the active key version the items are
    /// re-sealed under, the oldest sealed-at among them, and the empty context (its items have
    /// contexts of their own; each item that fails gets a record of its own with its context).
    /// For a record batch ([`Guard::reveal_record`](crate::Guard::reveal_record)), the number
    /// of fields it lists in [`AuditEvent::fields`].
    pub fn count(&self) -> Option<u64> {
        self.count
    }
    /// The recipient of a share or disclosure, as named in the policy manifest.
    pub fn recipient(&self) -> Option<&'a RecipientName> {
        self.detail.recipient
    }
    /// The application's reference for the event (a legal order's number, a ticket).
    pub fn reference(&self) -> Option<&'a Reference> {
        self.detail.reference
    }
    /// For a record batch ([`Guard::reveal_record`](crate::Guard::reveal_record)), every field
    /// it covers, in the caller's order: kind, purpose and the decision for each; `None` for
    /// every other record.
    pub fn fields(&self) -> Option<&'a [AuditField]> {
        self.detail.fields
    }
}

/// Receives audit events. Append-only: a sink never changes what it accepted.
///
/// Returning `Ok` means the event is recorded (as durably as the sink promises); returning an
/// error makes the guard refuse the operation.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Records one event.
    ///
    /// # Errors
    /// An [`AuditError`] if the event could not be recorded.
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError>;

    /// Records one event without blocking the caller's async runtime: the sink takes what it
    /// needs from `event` before returning, and the future resolves once the event is recorded
    /// (as [`AuditSink::record`] returns). Used by
    /// [`Guard::reveal_async`](crate::Guard::reveal_async).
    ///
    /// The default calls [`AuditSink::record`] at once, on the caller's thread: right for sinks
    /// that do not wait on I/O ([`MemorySink`], [`NullSink`]). Sinks that wait on a network
    /// override it: [`ChainedLog`] (a thread of the log's own waits for the write and
    /// `fdatasync`) and `postgres::PgAuditSink` (feature `postgres`).
    fn record_async(&self, event: &AuditEvent<'_>) -> AuditFuture {
        let recorded = self.record(event);
        Box::pin(std::future::ready(recorded))
    }

    /// The address of the sink that actually records: a wrapper that only forwards (as
    /// `Arc<S>` does) returns its inner sink's. A subject-key store that can carry an erasure's
    /// record in its own transaction compares it with its sink's to know it is recording to
    /// that very sink. The default, the sink's own address, is right for every sink that
    /// records itself.
    fn instance(&self) -> *const () {
        std::ptr::from_ref(self).cast()
    }
}

/// The future of [`AuditSink::record_async`]: owns everything it needs.
pub type AuditFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send + 'static>>;

/// Accepts and discards every event. Choose it explicitly to run without auditing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, _event: &AuditEvent<'_>) -> Result<(), AuditError> {
        Ok(())
    }
}

/// An owned copy of an event, as returned by [`MemorySink::records`]. Holds no context,
/// plaintext or key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// Who asked.
    pub principal: PrincipalId,
    /// The roles presented.
    pub roles: Arc<[Role]>,
    /// The purpose, if the event is about one.
    pub purpose: Option<PurposeId>,
    /// The field kind, if the event is about one.
    pub kind: Option<FieldKind>,
    /// The action.
    pub action: AuditAction,
    /// The decision or failure.
    pub outcome: Outcome,
    /// `file:line` of the call.
    pub call_site: &'static Location<'static>,
    /// Key version of the sealed value.
    pub key_version: KeyVersion,
    /// Version of the access policy that decided.
    pub policy_version: u64,
    /// Number of items a batch record covers ([`AuditEvent::count`]); `None` for one value.
    pub count: Option<u64>,
    /// Recipient of a share or disclosure.
    pub recipient: Option<RecipientName>,
    /// The application's reference for the event.
    pub reference: Option<Reference>,
    /// The fields of a record batch ([`AuditEvent::fields`]); `None` otherwise.
    pub fields: Option<Arc<[AuditField]>>,
}

impl AuditRecord {
    /// The record of `e`, built field by field: what [`MemorySink::records`] must return.
    #[cfg(test)]
    fn of(e: &AuditEvent<'_>) -> Self {
        Self {
            time: e.time,
            principal: e.accessor.principal().clone(),
            roles: Arc::clone(e.accessor.roles_arc()),
            purpose: e.purpose.cloned(),
            kind: e.kind,
            action: e.action,
            outcome: e.outcome,
            call_site: e.call_site,
            key_version: e.key_version,
            policy_version: e.policy_version,
            count: e.count,
            recipient: e.detail.recipient.cloned(),
            reference: e.detail.reference.cloned(),
            fields: e.detail.fields.map(Arc::from),
        }
    }
}

/// Keeps events in memory; for tests, demos and as a building block.
///
/// ```
/// use fieldseal::MemorySink;
/// let sink = MemorySink::new();
/// assert!(sink.records().is_empty());
/// ```
#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<Kept>,
}

/// What a [`MemorySink`] holds: its records, each with its accessor's principal and roles
/// kept once for a run of records by the same accessor (the usual case: many reveals by one
/// accessor), so recording an event by the accessor of the one before it clones neither its
/// principal nor its roles.
///
/// Invariant: every record's `accessor` indexes `accessors` (only [`Kept::push`] adds to
/// either, and [`MemorySink::clear`] empties both).
#[derive(Debug, Default)]
struct Kept {
    records: Vec<KeptRecord>,
    /// Principal and roles of runs of records by one accessor, in order.
    accessors: Vec<(PrincipalId, Arc<[Role]>)>,
}

/// An [`AuditRecord`] with its accessor an index into [`Kept::accessors`] and the parts only
/// shares and record batches have out of line.
#[derive(Debug)]
struct KeptRecord {
    time: u64,
    accessor: usize,
    purpose: Option<PurposeId>,
    kind: Option<FieldKind>,
    action: AuditAction,
    outcome: Outcome,
    call_site: &'static Location<'static>,
    key_version: KeyVersion,
    policy_version: u64,
    count: Option<u64>,
    detail: Option<Box<KeptDetail>>,
}

impl KeptRecord {
    /// The record of `e`, but for its accessor's run (set by [`Kept::push`]).
    fn of(e: &AuditEvent<'_>) -> Self {
        let d = &e.detail;
        let detail =
            (d.recipient.is_some() || d.reference.is_some() || d.fields.is_some()).then(|| {
                Box::new(KeptDetail {
                    recipient: d.recipient.cloned(),
                    reference: d.reference.cloned(),
                    fields: d.fields.map(Arc::from),
                })
            });
        Self {
            time: e.time,
            accessor: 0,
            purpose: e.purpose.cloned(),
            kind: e.kind,
            action: e.action,
            outcome: e.outcome,
            call_site: e.call_site,
            key_version: e.key_version,
            policy_version: e.policy_version,
            count: e.count,
            detail,
        }
    }
}

/// Recipient, reference and fields of a record that has any of them.
#[derive(Debug)]
struct KeptDetail {
    recipient: Option<RecipientName>,
    reference: Option<Reference>,
    fields: Option<Arc<[AuditField]>>,
}

impl Kept {
    /// Index of `accessor`'s principal and roles: the last run's if they are equal (compared
    /// by address first, then by value), else a new run's.
    fn accessor(&mut self, accessor: &Accessor) -> usize {
        let (principal, roles) = (accessor.principal(), accessor.roles_arc());
        match self.accessors.last() {
            Some((p, r)) if p == principal && r == roles => self.accessors.len() - 1,
            _ => {
                self.accessors.push((principal.clone(), Arc::clone(roles)));
                self.accessors.len() - 1
            }
        }
    }

    /// Appends `record` (built outside the lock, its `accessor` not yet set) for an event by
    /// `accessor`.
    fn push(&mut self, mut record: KeptRecord, accessor: &Accessor) {
        record.accessor = self.accessor(accessor);
        self.records.push(record);
    }

    fn record(&self, k: &KeptRecord) -> Option<AuditRecord> {
        debug_assert!(k.accessor < self.accessors.len(), "a record's run is kept");
        let (principal, roles) = self.accessors.get(k.accessor)?;
        let detail = k.detail.as_deref();
        Some(AuditRecord {
            time: k.time,
            principal: principal.clone(),
            roles: Arc::clone(roles),
            purpose: k.purpose.clone(),
            kind: k.kind,
            action: k.action,
            outcome: k.outcome,
            call_site: k.call_site,
            key_version: k.key_version,
            policy_version: k.policy_version,
            count: k.count,
            recipient: detail.and_then(|d| d.recipient.clone()),
            reference: detail.and_then(|d| d.reference.clone()),
            fields: detail.and_then(|d| d.fields.clone()),
        })
    }
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record so far, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .map(|k| {
                let all: Vec<_> = k.records.iter().filter_map(|r| k.record(r)).collect();
                debug_assert_eq!(all.len(), k.records.len(), "every record is returned");
                all
            })
            .unwrap_or_default()
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.records.lock().map(|k| k.records.len()).unwrap_or(0)
    }

    /// Whether no record was made.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every record (benchmarks use it to bound memory).
    pub fn clear(&self) {
        if let Ok(mut k) = self.records.lock() {
            k.records.clear();
            k.accessors.clear();
        }
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        // Everything but the accessor's run is copied before the lock is taken.
        let record = KeptRecord::of(event);
        self.records
            .lock()
            .map_err(|_| AuditError::new(AuditErrorKind::Closed))?
            .push(record, event.accessor);
        Ok(())
    }
}

impl<S: AuditSink + ?Sized> AuditSink for Arc<S> {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        (**self).record(event)
    }
    fn record_async(&self, event: &AuditEvent<'_>) -> AuditFuture {
        (**self).record_async(event)
    }
    fn instance(&self) -> *const () {
        (**self).instance()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Action;

    #[test]
    fn every_accessor_returns_its_field() {
        let accessor = Accessor::new("p1", [Role::new("support_agent")]);
        let purpose = PurposeId::new("billing").unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context::new().table("users").row("7");
        let recipient = RecipientName::new("acme").unwrap_or_else(|e| panic!("{e}"));
        let reference = Reference::new("ticket-9").unwrap_or_else(|e| panic!("{e}"));
        let fields = [AuditField {
            purpose: purpose.clone(),
            kind: FieldKind::PhoneNumber,
            outcome: Outcome::Denied(DenyReason::ConsentMissing),
        }];
        let here = Location::caller();
        let v3 = KeyVersion::new(3).unwrap_or_else(|| unreachable!("non-zero"));
        let event = AuditEvent {
            time: 1_700_000_123,
            accessor: &accessor,
            purpose: Some(&purpose),
            kind: Some(FieldKind::Email),
            action: AuditAction::Access(Action::Reveal),
            outcome: Outcome::Failed(FailureKind::Erased),
            call_site: here,
            key_version: v3,
            sealed_at: 1_600_000_456,
            policy_version: 17,
            context: &ctx,
            count: Some(5),
            detail: Detail {
                recipient: Some(&recipient),
                reference: Some(&reference),
                fields: Some(&fields),
            },
        };
        assert_eq!(event.time(), 1_700_000_123);
        assert!(std::ptr::eq(event.accessor(), &accessor));
        assert_eq!(event.purpose().map(PurposeId::as_str), Some("billing"));
        assert_eq!(event.kind(), Some(FieldKind::Email));
        assert!(event.action() == Action::Reveal);
        assert_eq!(event.outcome(), Outcome::Failed(FailureKind::Erased));
        assert!(std::ptr::eq(event.call_site(), here));
        assert_eq!(event.key_version(), v3);
        assert_eq!(event.sealed_at(), 1_600_000_456);
        assert_eq!(event.policy_version(), 17);
        assert!(std::ptr::eq(event.context(), &ctx));
        assert_eq!(event.count(), Some(5));
        assert!(
            event
                .recipient()
                .is_some_and(|r| std::ptr::eq(r, &recipient))
        );
        assert!(
            event
                .reference()
                .is_some_and(|r| std::ptr::eq(r, &reference))
        );
        assert!(event.fields().is_some_and(|f| std::ptr::eq(f, &fields[..])));
    }

    #[test]
    fn a_sink_is_its_own_instance_and_an_arc_forwards_to_it() {
        let sink = Arc::new(MemorySink::new());
        let own: *const () = std::ptr::from_ref(&*sink).cast();
        assert_eq!(sink.instance(), own, "through the Arc");
        assert_eq!((*sink).instance(), own, "the sink itself");
        let other = MemorySink::new();
        assert_ne!(other.instance(), own);
        assert!(other.is_empty());
        let recorded = crate::internal::testing::with_sample_event(1, None, |e| other.record(e));
        assert!(recorded.is_ok());
        assert!(!other.is_empty() && other.len() == 1 && other.records().len() == 1);
        other.clear();
        assert!(other.is_empty());
    }

    /// An event for the sink tests: `accessor`, with any subset of the share and batch parts
    /// (`detail` bits: recipient, reference, fields) and a time and outcome from `n`.
    #[track_caller]
    fn with_event<R>(
        accessor: &Accessor,
        n: u64,
        detail: u8,
        f: impl FnOnce(&AuditEvent<'_>) -> R,
    ) -> R {
        let purpose = PurposeId::new("billing").unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context::new().row("7");
        let recipient = RecipientName::new("acme").unwrap_or_else(|e| panic!("{e}"));
        let reference = Reference::new("ticket-9").unwrap_or_else(|e| panic!("{e}"));
        let fields = [AuditField {
            purpose: purpose.clone(),
            kind: FieldKind::PhoneNumber,
            outcome: Outcome::Allowed,
        }];
        let event = AuditEvent {
            time: n,
            accessor,
            purpose: (!n.is_multiple_of(3)).then_some(&purpose),
            kind: n.is_multiple_of(2).then_some(FieldKind::Email),
            action: AuditAction::Access(if n.is_multiple_of(6) {
                Action::Mask
            } else {
                Action::Reveal
            }),
            outcome: if n.is_multiple_of(5) {
                Outcome::Denied(DenyReason::ConsentMissing)
            } else {
                Outcome::Allowed
            },
            call_site: Location::caller(),
            key_version: KeyVersion::new(1 + (n % 4) as u32).unwrap_or_else(|| unreachable!()),
            sealed_at: n / 2,
            policy_version: n % 7,
            context: &ctx,
            count: (n % 4 == 1).then_some(n),
            detail: Detail {
                recipient: (detail & 1 != 0).then_some(&recipient),
                reference: (detail & 2 != 0).then_some(&reference),
                fields: (detail & 4 != 0).then_some(&fields[..]),
            },
        };
        f(&event)
    }

    /// Accessors that differ in the principal only, in the roles only, and one equal in value
    /// to the first but a separate allocation.
    fn accessors() -> [Accessor; 4] {
        [
            Accessor::new("p1", [Role::new("agent")]),
            Accessor::new("p1", [Role::new("admin")]),
            Accessor::new("p2", [Role::new("agent")]),
            Accessor::new("p1", [Role::new("agent")]),
        ]
    }

    proptest::proptest! {
        /// Whatever the order of accessors, parts and clears, the sink returns exactly the
        /// records built field by field from the events since the last clear.
        #[test]
        fn a_memory_sink_returns_every_record_as_built_from_its_event(
            ops in proptest::collection::vec((0usize..5, 0u64..1_000, 0u8..8), 0..40),
        ) {
            let accessors = accessors();
            let sink = MemorySink::new();
            let mut expected = Vec::new();
            for (who, n, detail) in ops {
                let Some(accessor) = accessors.get(who) else {
                    sink.clear();
                    expected.clear();
                    continue;
                };
                let record = |e: &AuditEvent<'_>| {
                    proptest::prop_assert!(sink.record(e).is_ok());
                    expected.push(AuditRecord::of(e));
                    Ok(())
                };
                // Two call sites, so that a record keeping the wrong one shows.
                match n % 2 {
                    0 => with_event(accessor, n, detail, record)?,
                    _ => with_event(accessor, n ^ 1, detail, record)?,
                }
                proptest::prop_assert_eq!(sink.len(), expected.len());
            }
            proptest::prop_assert_eq!(sink.records(), expected);
        }
    }

    /// A run of records by one accessor keeps its principal and roles once; an accessor equal
    /// in value counts as the same; a different principal or different roles starts a run; a
    /// clear forgets them.
    #[test]
    fn a_memory_sink_keeps_one_accessor_per_run() {
        let [a, b, c, a2] = accessors();
        let sink = MemorySink::new();
        let runs = || sink.records.lock().map(|k| k.accessors.len()).unwrap_or(0);
        for (i, who) in [&a, &a, &a2, &b, &b, &c, &a].into_iter().enumerate() {
            with_event(who, i as u64, 0, |e| assert!(sink.record(e).is_ok()));
        }
        assert_eq!(runs(), 4, "a, b, c, a");
        let records = sink.records();
        assert!(Arc::ptr_eq(&records[0].roles, &records[2].roles));
        assert!(Arc::ptr_eq(&records[0].roles, a.roles_arc()));
        assert!(!Arc::ptr_eq(&records[2].roles, a2.roles_arc()));
        assert_eq!(&*records[3].roles, b.roles());
        assert_eq!(records[5].principal, *c.principal());
        sink.clear();
        assert_eq!(runs(), 0);
        assert!(sink.is_empty() && sink.records().is_empty());
        with_event(&c, 1, 0, |e| assert!(sink.record(e).is_ok()));
        assert_eq!(
            sink.records().first().map(|r| r.principal.as_str()),
            Some("p2")
        );
    }
}
