//! Opening: reveal and mask, typed and dynamic, on one non-generic core that rewrap and
//! repurpose share. The typed path differs from the dynamic one only in how it parses the
//! plaintext it is handed at the very end.

use std::panic::Location;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{ConsentAnswers, Guard};
use crate::any::{AnyRevealed, AnySealed};
use crate::audit::{AuditAction, AuditEvent, Detail, FailureKind, Outcome};
use crate::context::Context;
use crate::crypto::aead::EpochKey;
use crate::crypto::envelope::Parsed;
use crate::crypto::wipe::WipedBytes;
use crate::error::{AuditError, ContextError, Error, KeyError};
use crate::field::Field;
use crate::policy::{AccessRequest, Accessor, Action, Decision};
use crate::purpose::{Purpose, PurposeId};
use crate::sealed::Sealed;
use crate::secret::Revealed;
use crate::telemetry::{Op, OpSpan, decided};

/// One request to open a value, typed or dynamic: everything the decision, the audit record and
/// the decryption need, without `F` or `P`.
pub(super) struct OpenRequest<'a> {
    pub(super) accessor: &'a Accessor,
    pub(super) env: &'a Parsed<'a>,
    /// The envelope's purpose (the typed path checked it at construction).
    pub(super) purpose: &'a PurposeId,
    pub(super) context: &'a Context,
    pub(super) action: Action,
    pub(super) site: &'static Location<'static>,
}

impl Guard {
    /// Opens `sealed` for `accessor`, returning the plaintext in a zeroizing wrapper.
    ///
    /// Order: policy decision; then, if the policy defines [`PurposeRules`](crate::PurposeRules)
    /// for the purpose, consent (consent-based purposes: the context's `subject` must have
    /// consented), retention (sealed-at plus the purpose's retention must not have passed on the
    /// guard's clock) and residency (an accessor outside the home region needs the subject's
    /// cross-border consent); then the audit record (allowed or denied, with the reason) is
    /// handed to the sink; then, only if allowed and recorded, the value is decrypted. The call
    /// site (`file:line`) goes into the audit event.
    ///
    /// # Errors
    /// [`Error::Denied`] if the policy or a consent, retention or residency check refuses,
    /// [`Error::Audit`] if the sink does not accept the record (no plaintext is produced),
    /// [`Error::Integrity`] if the value does not authenticate in `context`, [`Error::Key`] if
    /// its key is unavailable or retired, [`Error::Context`] for an invalid context,
    /// [`Error::Field`] if the value authenticates but no longer parses as its kind. Every
    /// attempt leaves an audit record: the decision, and for an allowed attempt that then fails,
    /// a `failed:*` record.
    #[track_caller]
    pub fn reveal<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
    ) -> Result<Revealed<F>, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Reveal,
            site,
        };
        self.open_traced(Op::Reveal, &req, |plain| {
            Ok(Revealed::new(F::from_canonical(plain)?))
        })
    }

    /// The masked rendering of `sealed` (e.g. `+86 138****8000`), for an accessor allowed to
    /// [`Action::Mask`]. The full plaintext never leaves the crate. With a
    /// [`ManifestPolicy`](crate::ManifestPolicy), a grant of `reveal` implies `mask`.
    ///
    /// # Errors
    /// As [`Guard::reveal`], with the decision taken for [`Action::Mask`].
    #[track_caller]
    pub fn mask<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
    ) -> Result<String, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Mask,
            site,
        };
        self.open_traced(Op::Mask, &req, |plain| Ok(F::from_canonical(plain)?.mask()))
    }

    /// Opens an envelope whose kind and purpose are read from its header: the dynamic form of
    /// [`Guard::reveal`], for tools not compiled with the purpose's marker type.
    ///
    /// The same code path as `reveal`: the same decision for the header's purpose and kind, the
    /// same consent, retention and residency checks, the same audit record (with this call's
    /// `file:line`), the same fail-closed order and the same errors. Only the result differs: the
    /// value comes back tagged with its kind.
    ///
    /// # Errors
    /// As [`Guard::reveal`].
    #[track_caller]
    pub fn reveal_any(
        &self,
        accessor: &Accessor,
        sealed: &AnySealed,
        context: &Context,
    ) -> Result<AnyRevealed, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = sealed.purpose();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Reveal,
            site,
        };
        self.open_traced(Op::Reveal, &req, |plain| {
            Ok(AnyRevealed::from_canonical(env.kind, plain)?)
        })
    }

    /// The masked rendering of an envelope whose kind and purpose are read from its header: the
    /// dynamic form of [`Guard::mask`].
    ///
    /// # Errors
    /// As [`Guard::mask`].
    #[track_caller]
    pub fn mask_any(
        &self,
        accessor: &Accessor,
        sealed: &AnySealed,
        context: &Context,
    ) -> Result<String, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = sealed.purpose();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Mask,
            site,
        };
        self.open_traced(Op::Mask, &req, |plain| {
            Ok(AnyRevealed::from_canonical(env.kind, plain)?.mask())
        })
    }

    /// [`Guard::open_core`] returning what `finish` makes of the plaintext.
    pub(super) fn open_as<T>(
        &self,
        req: &OpenRequest<'_>,
        finish: impl FnOnce(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut finish = Some(finish);
        let mut out = None;
        self.open_core(req, &mut |plain| {
            let f = finish.take().ok_or(Error::Integrity)?;
            out = Some(f(plain)?);
            Ok(())
        })?;
        // `open_core` calls `finish` exactly once when it returns `Ok`.
        out.ok_or(Error::Integrity)
    }

    /// [`Guard::open_as`] inside the operation's span (`op`, for the request's purpose and
    /// kind, with the opened value's key version): the one entry of every public opening call.
    pub(super) fn open_traced<T>(
        &self,
        op: Op,
        req: &OpenRequest<'_>,
        finish: impl FnOnce(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let span = OpSpan::start(op, req.purpose.as_str(), Some(req.env.kind));
        span.key_version(|| req.env.key_version);
        span.run(|| self.open_as(req, finish))
    }

    /// The one opening path, for every kind, purpose and action: decision, record, decryption,
    /// then `finish` on the plaintext (which stays in a buffer wiped on drop). A failure after
    /// the decision was recorded (authentication, key, or `finish`) leaves a `failed:*` record.
    pub(super) fn open_core(
        &self,
        req: &OpenRequest<'_>,
        finish: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // An invalid context is recorded as a failed attempt, not returned unrecorded.
        let ctx = req.context.encoded();
        let (decision, mut event) = self.decide(req, ctx.is_ok());
        let ctx = self.commit(decision, &event, ctx)?;
        self.open_committed(req.env, ctx, &mut event, finish)
    }

    /// The part of [`Guard::open_core`] after the decision was recorded: decryption, `finish`,
    /// and the `failed:*` record (a copy of `event`) if either fails.
    pub(super) fn open_committed(
        &self,
        env: &Parsed<'_>,
        ctx: &[u8],
        event: &mut AuditEvent<'_>,
        finish: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // A value that authenticates but does not parse (a kind's rules tightened after it was
        // sealed) is a failure of its own, recorded like the others.
        let result = self
            .decrypt(env, ctx)
            .and_then(|plain| finish(plain.bytes()));
        if let Err(e) = &result {
            event.outcome = Outcome::Failed(failure_kind(e));
            // Best effort: the caller gets the failure either way, and no plaintext exists.
            decided(event);
            let _ = self.audit.record(event);
        }
        result
    }

    /// The decision on `req` (policy verdict, then consent, retention and residency) and the
    /// audit event describing it, not yet recorded.
    pub(super) fn decide<'a>(
        &self,
        req: &OpenRequest<'a>,
        ctx_ok: bool,
    ) -> (Decision, AuditEvent<'a>) {
        self.decide_with(req, ctx_ok, None)
    }

    /// [`Guard::decide`] with consent answers fetched ahead (the async path).
    pub(super) fn decide_with<'a>(
        &self,
        req: &OpenRequest<'a>,
        ctx_ok: bool,
        answers: Option<&ConsentAnswers>,
    ) -> (Decision, AuditEvent<'a>) {
        let env = req.env;
        let verdict = self.policy.verdict(&AccessRequest {
            accessor: req.accessor,
            purpose: req.purpose.as_str(),
            kind: env.kind,
            action: req.action,
        });
        let (mut decision, rules) = (verdict.decision, verdict.rules);
        if let (Decision::Allow, Some(rules)) = (decision, rules)
            && let Err((reason, _)) = self.check_rules_with(
                &rules,
                req.accessor,
                req.purpose.as_str(),
                env.sealed_at,
                req.context,
                answers,
            )
        {
            decision = Decision::Deny(reason);
        }
        let event = AuditEvent {
            time: self.clock.now(),
            accessor: req.accessor,
            purpose: Some(req.purpose),
            kind: Some(env.kind),
            action: AuditAction::Access(req.action),
            outcome: match (decision, ctx_ok) {
                (Decision::Deny(r), _) => Outcome::Denied(r),
                (Decision::Allow, false) => Outcome::Failed(FailureKind::Context),
                (Decision::Allow, true) => Outcome::Allowed,
            },
            call_site: req.site,
            key_version: env.key_version,
            sealed_at: env.sealed_at,
            policy_version: verdict.policy_version,
            context: req.context,
            count: None,
            detail: Detail::NONE,
        };
        (decision, event)
    }

    /// Hands a decision's record to the sink and enforces it: returns the context encoding only
    /// if the request is allowed, the context is valid and the sink accepted the record.
    pub(super) fn commit<'c>(
        &self,
        decision: Decision,
        event: &AuditEvent<'_>,
        ctx: Result<&'c [u8], ContextError>,
    ) -> Result<&'c [u8], Error> {
        decided(event);
        let recorded = self.audit.record(event);
        self.enforce(decision, recorded, ctx)
    }

    /// Enforces a decision once the sink answered for its record (`recorded`): returns the
    /// context encoding only if the request is allowed, the context is valid and the record was
    /// accepted.
    pub(super) fn enforce<'c>(
        &self,
        decision: Decision,
        recorded: Result<(), AuditError>,
        ctx: Result<&'c [u8], ContextError>,
    ) -> Result<&'c [u8], Error> {
        // Fail closed: nothing is decrypted unless the sink accepted the record.
        if let Decision::Deny(reason) = decision {
            if !self.best_effort_denials {
                recorded?;
            }
            return Err(Error::Denied { reason });
        }
        // Nothing is opened under an invalid context: the caller gets the context error, which
        // the record names (a sink failure is reported instead, as for any record).
        let ctx = match ctx {
            Ok(ctx) => ctx,
            Err(e) => {
                recorded?;
                return Err(e.into());
            }
        };
        recorded?;
        Ok(ctx)
    }

    /// Authenticates and decrypts `env` under `ctx`.
    pub(super) fn decrypt(&self, env: &Parsed<'_>, ctx: &[u8]) -> Result<Opened, Error> {
        // A subject-key envelope needs its subject key; an erased one fails here.
        let secret = self.subject_secret_of(env)?;
        self.decrypt_with(env, ctx, secret)
    }

    /// [`Guard::decrypt`] with the subject key (if the envelope has one) already looked up.
    pub(super) fn decrypt_with(
        &self,
        env: &Parsed<'_>,
        ctx: &[u8],
        secret: Option<Arc<Zeroizing<[u8; 32]>>>,
    ) -> Result<Opened, Error> {
        self.keyring
            .with_opening_key(env, secret.as_deref().map(|s| &**s), |key| {
                decrypt(key, env, ctx)
            })?
    }
}

/// The `failed:*` kind recorded for an error after an allowed decision.
pub(super) fn failure_kind(e: &Error) -> FailureKind {
    match e {
        Error::Key(KeyError::Erased) => FailureKind::Erased,
        Error::Key(_) => FailureKind::Key,
        Error::Context(_) => FailureKind::Context,
        Error::Field(_) => FailureKind::Field,
        Error::Random => FailureKind::Random,
        _ => FailureKind::Integrity,
    }
}

/// Decrypted canonical bytes inside the (zeroized-on-drop) buffer they were decrypted in.
/// Authenticates and decrypts `env` under `key` in the encoded context `ctx` (the key's
/// commitment already checked by the caller).
pub(super) fn decrypt(key: &EpochKey, env: &Parsed<'_>, ctx: &[u8]) -> Result<Opened, Error> {
    // header ‖ context ‖ ciphertext in one wiped buffer: the associated data is a slice of it
    // and the plaintext appears in place after it.
    let aad_len = env.header.len() + ctx.len();
    let mut buf = WipedBytes::with_capacity(aad_len + env.ciphertext.len());
    buf.extend_from_slice(env.header);
    buf.extend_from_slice(ctx);
    buf.extend_from_slice(env.ciphertext);
    let (aad, body) = buf.split_at_mut(aad_len);
    key.open_in_place(env.nonce, aad, body, env.tag)
        .map(|()| Opened { buf, at: aad_len })
        .map_err(|()| Error::Integrity)
}

pub(super) struct Opened {
    buf: WipedBytes,
    at: usize,
}

impl Opened {
    pub(super) fn bytes(&self) -> &[u8] {
        self.buf.get(self.at..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FormatError;
    use crate::field::{FieldError, FieldKind};

    /// Each error after an allowed decision is recorded as its own `failed:*` kind; only what
    /// is not a key, context, field or random-source error counts as an integrity failure.
    #[test]
    fn failure_kinds_name_the_error() {
        let cases = [
            (Error::Key(KeyError::Erased), FailureKind::Erased),
            (Error::Key(KeyError::NoActiveKey), FailureKind::Key),
            (
                Error::Context(ContextError::TooManyParts),
                FailureKind::Context,
            ),
            (
                Error::Field(FieldError::Empty {
                    kind: FieldKind::Email,
                }),
                FailureKind::Field,
            ),
            (Error::Random, FailureKind::Random),
            (Error::Integrity, FailureKind::Integrity),
            (
                Error::Format(FormatError::CiphertextLength),
                FailureKind::Integrity,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(failure_kind(&error), kind, "{error}");
        }
    }
}
