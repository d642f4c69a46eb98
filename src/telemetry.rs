//! Optional `tracing` instrumentation (feature `tracing`).
//!
//! Every guard operation (seal, reveal, mask, rewrap, repurpose, erase, batch rewrap, share,
//! anonymize, index) runs in a span named `fieldseal.<operation>` (target `fieldseal`) with
//! the fields `kind`, `purpose`, `action`, `key_version` (of the value opened), `new_key_version`
//! (of the value sealed), `decision` (the audit outcome label), `latency_us` and `result` (`ok`
//! or the error's class); each decision handed to the audit sink is also an event. The audit
//! sinks have spans of their own (`fieldseal.audit.*`).
//!
//! What is never recorded: plaintext, canonical bytes, context values, subject ids, principals,
//! key bytes, envelopes, or error messages (free of those too, but a class label is all a trace
//! needs). Only labels from closed sets and numbers are recorded; the one caller-chosen string
//! is the purpose label, an identifier from the policy (`[a-z][a-z0-9_]*`, at most 32 bytes),
//! empty for a whole-subject erasure and a batch (whose groups' purposes are in the decision
//! events).
//!
//! Without the feature every function here is an empty inline function. With it but without a
//! subscriber interested in the `fieldseal` target, an operation costs one disabled-span check:
//! no clock read and no field is formatted.

#[cfg(feature = "tracing")]
use crate::error::{AuditError, AuditErrorKind, Error};

/// The guard operations that get a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Seal,
    Reveal,
    Mask,
    Rewrap,
    Repurpose,
    Erase,
    RewrapBatch,
    #[cfg(feature = "share")]
    Share,
    Anonymize,
    Index,
}

/// The class of an error: a fixed label, never the message.
#[cfg(feature = "tracing")]
pub(crate) fn error_class(e: &Error) -> &'static str {
    match e {
        Error::Field(_) => "field",
        Error::Format(_) => "format",
        Error::Context(_) => "context",
        Error::Key(_) => "key",
        Error::Denied { .. } => "denied",
        Error::Audit(a) => audit_error_class(a),
        Error::Integrity => "integrity",
        Error::Random => "random",
        Error::Config(_) => "config",
        Error::Manifest(_) => "manifest",
        Error::Engine(_) => "engine",
        Error::Provider(_) => "provider",
        Error::Io(_) => "io",
        Error::Anonymize(_) => "anonymize",
        Error::Index(_) => "index",
    }
}

/// The class of an audit sink error.
#[cfg(feature = "tracing")]
pub(crate) fn audit_error_class(e: &AuditError) -> &'static str {
    match e.kind() {
        AuditErrorKind::Rejected => "audit:rejected",
        AuditErrorKind::Io => "audit:io",
        AuditErrorKind::Closed => "audit:closed",
        AuditErrorKind::Corrupt { .. } => "audit:corrupt",
        AuditErrorKind::CheckpointsMissing => "audit:checkpoints_missing",
        AuditErrorKind::Locked => "audit:locked",
        #[allow(unreachable_patterns)]
        _ => "audit",
    }
}

#[cfg(feature = "tracing")]
mod imp {
    use std::future::Future;
    use std::time::Instant;

    use tracing::field::Empty;
    use tracing::{Instrument, Level, Span};

    use super::{Op, audit_error_class, error_class};
    use crate::audit::AuditEvent;
    use crate::error::{AuditError, Error};
    use crate::field::FieldKind;
    use crate::keys::KeyVersion;
    use crate::policy::Action;

    /// Declares the span of one guard operation: every field it may ever be given is declared
    /// here (a field not declared at creation cannot be recorded later).
    macro_rules! op_span {
        ($name:literal, $purpose:expr, $kind:expr, $action:expr) => {
            tracing::info_span!(
                target: "fieldseal",
                $name,
                purpose = $purpose,
                kind = $kind,
                action = $action,
                key_version = Empty,
                new_key_version = Empty,
                decision = Empty,
                items = Empty,
                rewrapped = Empty,
                failed = Empty,
                latency_us = Empty,
                result = Empty,
            )
        };
    }

    /// The span of one guard operation, with its start time when a subscriber wants it.
    pub(crate) struct OpSpan {
        span: Span,
        started: Option<Instant>,
    }

    impl OpSpan {
        /// Opens the span of `op` on a value of `kind` for `purpose` (not entered yet).
        #[inline]
        pub(crate) fn start(op: Op, purpose: &str, kind: Option<FieldKind>) -> Self {
            let kind = kind.map(FieldKind::label);
            let span = match op {
                Op::Seal => op_span!("fieldseal.seal", purpose, kind, "seal"),
                Op::Reveal => op_span!("fieldseal.reveal", purpose, kind, Action::Reveal.label()),
                Op::Mask => op_span!("fieldseal.mask", purpose, kind, Action::Mask.label()),
                Op::Rewrap => op_span!("fieldseal.rewrap", purpose, kind, Action::Rewrap.label()),
                Op::Repurpose => op_span!(
                    "fieldseal.repurpose",
                    purpose,
                    kind,
                    Action::Repurpose.label()
                ),
                Op::Erase => op_span!("fieldseal.erase", purpose, kind, Action::Erase.label()),
                Op::RewrapBatch => op_span!(
                    "fieldseal.rewrap_batch",
                    purpose,
                    kind,
                    Action::Rewrap.label()
                ),
                #[cfg(feature = "share")]
                Op::Share => op_span!("fieldseal.share", purpose, kind, Action::Share.label()),
                Op::Anonymize => op_span!(
                    "fieldseal.anonymize",
                    purpose,
                    kind,
                    Action::Anonymize.label()
                ),
                Op::Index => op_span!("fieldseal.index", purpose, kind, Action::Index.label()),
            };
            let started = (!span.is_disabled()).then(Instant::now);
            Self { span, started }
        }

        /// Records the key version of the value the operation opens (`v` runs only if the span
        /// is recorded: reading it may parse an envelope).
        #[inline]
        pub(crate) fn key_version(&self, v: impl FnOnce() -> KeyVersion) {
            if self.started.is_some() {
                self.span.record("key_version", v().get());
            }
        }

        /// Records the key version of the value the operation sealed (as
        /// [`OpSpan::key_version`]).
        #[inline]
        pub(crate) fn new_key_version(&self, v: impl FnOnce() -> KeyVersion) {
            if self.started.is_some() {
                self.span.record("new_key_version", v().get());
            }
        }

        /// Records a batch's counts.
        #[inline]
        pub(crate) fn batch(&self, items: usize, rewrapped: usize) {
            if self.started.is_some() {
                self.span.record("items", items as u64);
                self.span.record("rewrapped", rewrapped as u64);
                self.span
                    .record("failed", items.saturating_sub(rewrapped) as u64);
            }
        }

        /// Runs `f` inside the span, then records latency and result.
        #[inline]
        pub(crate) fn run<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
            if self.started.is_none() {
                return f();
            }
            let result = self.span.in_scope(f);
            self.finish(&result);
            result
        }

        /// Runs `fut` inside the span, then records latency and result.
        pub(crate) async fn run_async<T>(
            &self,
            fut: impl Future<Output = Result<T, Error>>,
        ) -> Result<T, Error> {
            if self.started.is_none() {
                return fut.await;
            }
            let result = fut.instrument(self.span.clone()).await;
            self.finish(&result);
            result
        }

        fn finish<T>(&self, result: &Result<T, Error>) {
            let latency = self.started.map_or(0, elapsed_us);
            let class = match result {
                Ok(_) => "ok",
                Err(e) => error_class(e),
            };
            self.span.record("latency_us", latency);
            self.span.record("result", class);
            let _in = self.span.enter();
            tracing::event!(
                target: "fieldseal",
                Level::INFO,
                latency_us = latency,
                result = class,
                "fieldseal operation finished"
            );
        }
    }

    /// A decision (or failure) handed to the audit sink: recorded on the current operation's
    /// span and as an event with the audit record's labels.
    #[inline]
    pub(crate) fn decided(event: &AuditEvent<'_>) {
        if !tracing::enabled!(target: "fieldseal", Level::DEBUG) {
            return;
        }
        let decision = event.outcome().label();
        Span::current().record("decision", decision);
        let action = event.action().label();
        tracing::event!(
            target: "fieldseal",
            Level::DEBUG,
            kind = event.kind().map_or("-", crate::field::FieldKind::label),
            purpose = event.purpose().map_or("-", |p| p.as_str()),
            action = &*action,
            decision,
            key_version = event.key_version().get(),
            count = event.count(),
            "fieldseal decision"
        );
    }

    /// The span of one audit sink operation (`fieldseal.audit.append`, `.checkpoint`,
    /// `.batch`, and the PostgreSQL sink's `.pg_append`, `.pg_commit`, `.pg_checkpoint`).
    pub(crate) struct SinkSpan {
        span: Span,
        started: Option<Instant>,
    }

    /// Which sink operation a [`SinkSpan`] covers.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum SinkOp {
        Append,
        Checkpoint,
        Batch,
        #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
        PgAppend,
        #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
        PgCommit,
        #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
        PgCheckpoint,
    }

    macro_rules! sink_span {
        ($name:literal) => {
            tracing::debug_span!(
                target: "fieldseal::audit",
                $name,
                seq = Empty,
                entries = Empty,
                synced = Empty,
                checkpoint = Empty,
                latency_us = Empty,
                result = Empty,
            )
        };
    }

    impl SinkSpan {
        #[inline]
        pub(crate) fn start(op: SinkOp) -> Self {
            let span = match op {
                SinkOp::Append => sink_span!("fieldseal.audit.append"),
                SinkOp::Checkpoint => sink_span!("fieldseal.audit.checkpoint"),
                SinkOp::Batch => sink_span!("fieldseal.audit.batch"),
                SinkOp::PgAppend => sink_span!("fieldseal.audit.pg_append"),
                SinkOp::PgCommit => sink_span!("fieldseal.audit.pg_commit"),
                SinkOp::PgCheckpoint => sink_span!("fieldseal.audit.pg_checkpoint"),
            };
            let started = (!span.is_disabled()).then(Instant::now);
            Self { span, started }
        }

        /// Records a numeric field (`seq`, `entries`).
        #[inline]
        pub(crate) fn number(&self, field: &'static str, v: u64) {
            if self.started.is_some() {
                self.span.record(field, v);
            }
        }

        /// Records a flag (`synced`, `checkpoint`).
        #[inline]
        pub(crate) fn flag(&self, field: &'static str, v: bool) {
            if self.started.is_some() {
                self.span.record(field, v);
            }
        }

        /// Runs `f` inside the span, then records latency and result.
        #[inline]
        pub(crate) fn run<T>(
            &self,
            f: impl FnOnce() -> Result<T, AuditError>,
        ) -> Result<T, AuditError> {
            if self.started.is_none() {
                return f();
            }
            let result = self.span.in_scope(f);
            self.finish(result.as_ref().err());
            result
        }

        /// Records latency and result of work done outside [`SinkSpan::run`].
        #[inline]
        pub(crate) fn finish(&self, err: Option<&AuditError>) {
            if let Some(t) = self.started {
                self.span.record("latency_us", elapsed_us(t));
                self.span
                    .record("result", err.map_or("ok", audit_error_class));
            }
        }

        /// Runs `fut` inside the span, then records latency and result.
        #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
        pub(crate) async fn run_async<T>(
            &self,
            fut: impl Future<Output = Result<T, AuditError>>,
        ) -> Result<T, AuditError> {
            if self.started.is_none() {
                return fut.await;
            }
            let result = fut.instrument(self.span.clone()).await;
            self.finish(result.as_ref().err());
            result
        }
    }

    fn elapsed_us(t: Instant) -> u64 {
        u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    use std::future::Future;

    use super::Op;
    use crate::audit::AuditEvent;
    use crate::error::{AuditError, Error};
    use crate::field::FieldKind;
    use crate::keys::KeyVersion;

    /// Without the feature: no span, nothing recorded.
    pub(crate) struct OpSpan;

    impl OpSpan {
        #[inline(always)]
        pub(crate) fn start(_op: Op, _purpose: &str, _kind: Option<FieldKind>) -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn key_version(&self, _v: impl FnOnce() -> KeyVersion) {}
        #[inline(always)]
        pub(crate) fn new_key_version(&self, _v: impl FnOnce() -> KeyVersion) {}
        #[inline(always)]
        pub(crate) fn batch(&self, _items: usize, _rewrapped: usize) {}
        #[inline(always)]
        pub(crate) fn run<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
            f()
        }
        #[inline(always)]
        pub(crate) async fn run_async<T>(
            &self,
            fut: impl Future<Output = Result<T, Error>>,
        ) -> Result<T, Error> {
            fut.await
        }
    }

    #[inline(always)]
    pub(crate) fn decided(_event: &AuditEvent<'_>) {}

    /// Without the feature: no span, nothing recorded.
    pub(crate) struct SinkSpan;

    #[derive(Clone, Copy, Debug)]
    #[allow(dead_code)]
    pub(crate) enum SinkOp {
        Append,
        Checkpoint,
        Batch,
        PgAppend,
        PgCommit,
        PgCheckpoint,
    }

    impl SinkSpan {
        #[inline(always)]
        pub(crate) fn start(_op: SinkOp) -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn number(&self, _field: &'static str, _v: u64) {}
        #[inline(always)]
        pub(crate) fn flag(&self, _field: &'static str, _v: bool) {}
        #[inline(always)]
        pub(crate) fn run<T>(
            &self,
            f: impl FnOnce() -> Result<T, AuditError>,
        ) -> Result<T, AuditError> {
            f()
        }
        #[inline(always)]
        pub(crate) fn finish(&self, _err: Option<&AuditError>) {}
        #[allow(dead_code)]
        #[inline(always)]
        pub(crate) async fn run_async<T>(
            &self,
            fut: impl Future<Output = Result<T, AuditError>>,
        ) -> Result<T, AuditError> {
            fut.await
        }
    }
}

pub(crate) use imp::{OpSpan, SinkOp, SinkSpan, decided};
