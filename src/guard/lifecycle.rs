//! Re-sealing a value inside the crate: rewrap (same purpose, the active key version) and
//! repurpose (another purpose). The plaintext exists only in a buffer wiped on drop and never
//! reaches the caller.

use std::panic::Location;

use super::reveal::OpenRequest;
use super::seal::{SealRequest, stable_label};
use super::{Guard, scope_label};
use crate::any::AnySealed;
use crate::audit::{AuditAction, AuditEvent, Detail, Outcome};
use crate::context::{Context, SubjectId};
use crate::crypto::envelope::Parsed;
use crate::error::{ConfigError, Error, FormatError, KeyError};
use crate::field::{Field, FieldKind};
use crate::keys::SubjectKeyScope;
use crate::policy::{AccessRequest, Accessor, Action, Decision, DenyReason};
use crate::purpose::{Purpose, PurposeId, is_valid_label};
use crate::sealed::Sealed;
use crate::telemetry::{Op, OpSpan, decided};

impl Guard {
    /// Re-seals `sealed` under the keyring's active key version, for the same purpose, kind and
    /// context, without the plaintext leaving the crate: key rotation for stored data.
    ///
    /// Decided, audited and ordered exactly like [`Guard::reveal`], for [`Action::Rewrap`]: the
    /// policy must grant `rewrap` on the kind for the purpose, the purpose's consent, retention
    /// and residency rules apply, the record (with this call's `file:line`) is accepted by the
    /// sink before anything is decrypted, and a failure afterwards leaves a `failed:*` record.
    ///
    /// The new envelope keeps the value's sealed-at time (retention keeps counting from when the
    /// value was collected; a rewrap never extends it) and its canonical bytes exactly (they are
    /// not re-validated: a rewrap changes keys, not data). It gets a fresh epoch salt and nonce.
    /// A value already under the active version is re-sealed like any other, so a successful
    /// rewrap always shows that the value authenticated in `context`; callers that want to skip
    /// such values can compare [`Sealed::key_version`] with
    /// [`Keyring::active_version`](crate::Keyring::active_version) first.
    ///
    /// # Errors
    /// As [`Guard::reveal`] (with [`Error::Field`] impossible: the bytes are not parsed), plus
    /// [`Error::Random`] if the random source fails while re-sealing, and
    /// [`KeyError::SubjectKeyUnavailable`] for a value under a per-subject key.
    ///
    /// # Examples
    /// ```
    /// use fieldseal::*;
    /// use fieldseal::builtin::Service;
    /// let guard = Guard::builder()
    ///     .keyring(Keyring::generate()?)
    ///     .policy(AllowList::new().allow::<Service>(
    ///         Role::new("key_custodian"), FieldKind::Email, Action::Rewrap))
    ///     .audit(MemorySink::new())
    ///     .build()?;
    /// let ctx = Context::new().table("users").column("email").row("7");
    /// let old: Sealed<Email, Service> = guard.seal(&Email::parse("a@example.com")?, &ctx)?;
    /// let v2 = guard.keyring().rotate()?;
    ///
    /// let custodian = Accessor::new("rotation-job", [Role::new("key_custodian")]);
    /// let new = guard.rewrap(&custodian, &old, &ctx)?;
    /// assert_eq!(new.key_version(), v2);
    /// assert_eq!(new.sealed_at(), old.sealed_at());
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    #[track_caller]
    pub fn rewrap<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
    ) -> Result<Sealed<F, P>, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Rewrap,
            site,
        };
        let op = OpSpan::start(Op::Rewrap, P::LABEL, Some(F::KIND));
        op.key_version(|| env.key_version);
        op.run(|| {
            // The label of `P` is 'static: its address finds this thread's sealing epoch.
            let new = self
                .open_as(&req, |plain| self.reseal(&env, P::LABEL, context, plain))
                .map(Sealed::<F, P>::from_trusted)?;
            op.new_key_version(|| new.key_version());
            Ok(new)
        })
    }

    /// [`Guard::rewrap`] for an envelope whose kind and purpose are read from its header. For
    /// many values, [`Guard::rewrap_batch`] decides once per (purpose, kind).
    ///
    /// # Errors
    /// As [`Guard::rewrap`].
    #[track_caller]
    pub fn rewrap_any(
        &self,
        accessor: &Accessor,
        sealed: &AnySealed,
        context: &Context,
    ) -> Result<AnySealed, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = sealed.purpose();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Rewrap,
            site,
        };
        let op = OpSpan::start(Op::Rewrap, purpose.as_str(), Some(env.kind));
        op.key_version(|| env.key_version);
        op.run(|| {
            let label = stable_label(purpose.as_str());
            let new = self
                .open_as(&req, |plain| self.reseal(&env, &label, context, plain))
                .map(AnySealed::from_trusted)?;
            op.new_key_version(|| new.key_version());
            Ok(new)
        })
    }

    /// Re-seals `sealed` for purpose `Q`: the one way a value changes purpose. Never a side
    /// effect of any other operation.
    ///
    /// Two decisions, each for [`Action::Repurpose`] on the kind: one for the purpose the value
    /// leaves (`P`, with `P`'s retention, consent and residency rules) and one for the purpose
    /// it enters (`Q`, with `Q`'s rules: a consent-based `Q` needs the subject's consent to `Q`).
    /// Each is recorded (first `P`'s, then `Q`'s, both with this call's `file:line`); a refusal
    /// by `P` ends the call before `Q` is asked. Only when both allow and both records are
    /// accepted is the value decrypted and sealed for `Q` under the active key version, in the
    /// same context, with its original sealed-at time (retention under `Q` counts from when the
    /// value was collected).
    ///
    /// # Errors
    /// As [`Guard::rewrap`]; [`Error::Denied`] if either decision refuses;
    /// [`FormatError::InvalidPurposeLabel`] for a hand-made `Q` with an invalid label.
    ///
    /// # Examples
    /// ```
    /// use fieldseal::*;
    /// use fieldseal::builtin::{Legal, Service};
    /// let dpo = Role::new("dpo");
    /// let guard = Guard::builder()
    ///     .keyring(Keyring::generate()?)
    ///     .policy(AllowList::new()
    ///         .allow::<Service>(dpo.clone(), FieldKind::Email, Action::Repurpose)
    ///         .allow::<Legal>(dpo.clone(), FieldKind::Email, Action::Repurpose))
    ///     .audit(MemorySink::new())
    ///     .build()?;
    /// let ctx = Context::new().table("users").column("email").row("7");
    /// let s: Sealed<Email, Service> = guard.seal(&Email::parse("a@example.com")?, &ctx)?;
    /// let held: Sealed<Email, Legal> = guard.repurpose(&Accessor::new("dpo-1", [dpo]), &s, &ctx)?;
    /// assert_eq!(held.info().purpose().as_str(), "legal");
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    #[track_caller]
    pub fn repurpose<F: Field, P: Purpose, Q: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
    ) -> Result<Sealed<F, Q>, Error> {
        let site = Location::caller();
        let op = OpSpan::start(Op::Repurpose, P::LABEL, Some(F::KIND));
        op.key_version(|| sealed.key_version());
        op.run(|| {
            let new = self.repurpose_at::<F, P, Q>(accessor, sealed, context, site)?;
            op.new_key_version(|| new.key_version());
            Ok(new)
        })
    }

    fn repurpose_at<F: Field, P: Purpose, Q: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
        site: &'static Location<'static>,
    ) -> Result<Sealed<F, Q>, Error> {
        if !is_valid_label(Q::LABEL) {
            return Err(FormatError::InvalidPurposeLabel.into());
        }
        let env = sealed.parsed();
        let (from, to) = (PurposeId::of::<P>(), PurposeId::of::<Q>());
        let leave = OpenRequest {
            accessor,
            env: &env,
            purpose: &from,
            context,
            action: Action::Repurpose,
            site,
        };
        let enter = OpenRequest {
            purpose: &to,
            ..leave
        };
        let ctx = context.encoded();
        let (decision, mut event) = self.decide(&leave, ctx.is_ok());
        let ctx = self.commit(decision, &event, ctx)?;
        let (decision, entered) = self.decide(&enter, true);
        self.commit(decision, &entered, Ok(ctx))?;
        let mut out = None;
        self.open_committed(&env, ctx, &mut event, &mut |plain| {
            out = Some(self.reseal(&env, Q::LABEL, context, plain)?);
            Ok(())
        })?;
        out.map(Sealed::from_trusted).ok_or(Error::Integrity)
    }

    /// Seals the plaintext `plain` of `env` again for `purpose`, in `context`, under the
    /// active key version, keeping kind and sealed-at.
    fn reseal(
        &self,
        env: &Parsed<'_>,
        purpose: &str,
        context: &Context,
        plain: &[u8],
    ) -> Result<Vec<u8>, Error> {
        // Under the subject's current key when the purpose has subject keys, so a rewrapped
        // value stays within reach of its erasure.
        let subject = self.subject_key_for(purpose, context, true)?;
        let req = SealRequest {
            purpose,
            kind: env.kind,
            context: context.encoded()?,
            sealed_at: env.sealed_at,
            body_len: plain.len(),
            subject_key: subject.as_ref().map(|(id, k)| (id, &***k)),
        };
        self.seal_core(&req, &mut |out| out.extend_from_slice(plain))
    }
}

/// What to erase with [`Guard::erase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Erasure<'a> {
    /// Every subject key of the subject: the per-subject key and the per-purpose keys of
    /// every purpose that has them.
    Subject,
    /// The subject's key for one purpose with per-purpose subject keys (withdrawn consent);
    /// data of the subject's other purposes stays readable.
    Purpose(&'a PurposeId),
}

/// What [`Guard::erase`] destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErasureReport {
    /// The purposes whose keys for the subject were destroyed (a key that did not exist, because
    /// nothing was ever sealed under it, counts as destroyed: nothing can open under it).
    pub purposes: Vec<PurposeId>,
    /// How many stored keys existed and were deleted.
    pub keys_deleted: usize,
}

impl Guard {
    /// Crypto-shreds a subject's data: destroys the subject keys `what` names, in the store and
    /// in memory. Every value sealed under them — including copies taken before, as a backup
    /// holds — then fails to open with [`KeyError::Erased`] (recorded as `failed:erased`).
    /// Other subjects are unaffected.
    ///
    /// Needs [`Action::Erase`] on every purpose erased (for any kind); each purpose's erasure is
    /// audited (kind `text`: erasure is not kind-specific) before its key is destroyed.
    ///
    /// # Errors
    /// [`Error::Denied`] if the policy refuses any of the purposes (nothing is erased),
    /// [`KeyError::NotErasable`] for a purpose without per-purpose subject keys,
    /// [`Error::Audit`] if the record is not accepted (that purpose is not erased),
    /// [`ConfigError::MissingSubjectKeys`], store and provider errors.
    #[track_caller]
    pub fn erase(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        what: Erasure<'_>,
    ) -> Result<ErasureReport, Error> {
        let site = Location::caller();
        let purpose = match what {
            Erasure::Subject => "",
            Erasure::Purpose(p) => p.as_str(),
        };
        let op = OpSpan::start(Op::Erase, purpose, None);
        op.run(|| self.erase_at(accessor, subject, what, site))
    }

    fn erase_at(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        what: Erasure<'_>,
        site: &'static Location<'static>,
    ) -> Result<ErasureReport, Error> {
        if self.subject_keys.is_none() {
            return Err(ConfigError::MissingSubjectKeys.into());
        }
        let targets: Vec<&(PurposeId, SubjectKeyScope)> = match what {
            Erasure::Subject => self.subject_scopes.iter().collect(),
            Erasure::Purpose(p) => {
                let t = self
                    .subject_scopes
                    .iter()
                    .find(|(q, s)| q == p && *s == SubjectKeyScope::Purpose)
                    .ok_or(KeyError::NotErasable)?;
                vec![t]
            }
        };
        self.erase_targets(accessor, subject, &targets, site)
    }

    /// The erasure of `targets` (each a purpose with subject keys and its scope): every grant
    /// checked first (a refusal erases nothing), then per purpose its record, then its key.
    pub(super) fn erase_targets(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        targets: &[&(PurposeId, SubjectKeyScope)],
        site: &'static Location<'static>,
    ) -> Result<ErasureReport, Error> {
        let keys = self
            .subject_keys
            .as_ref()
            .ok_or(ConfigError::MissingSubjectKeys)?;
        let context = Context::new().subject(subject);
        let mut verdicts = Vec::with_capacity(targets.len());
        for (purpose, _) in targets.iter().map(|t| &**t) {
            let allowed = FieldKind::ALL.iter().find_map(|&kind| {
                let v = self.policy.verdict(&AccessRequest {
                    accessor,
                    purpose: purpose.as_str(),
                    kind,
                    action: Action::Erase,
                });
                (v.decision == Decision::Allow).then_some(v.policy_version)
            });
            verdicts.push(allowed);
        }
        if let Some(i) = verdicts.iter().position(Option::is_none) {
            let purpose = &targets[i].0;
            let event = AuditEvent {
                time: self.clock.now(),
                accessor,
                purpose: Some(purpose),
                kind: None,
                action: AuditAction::Access(Action::Erase),
                outcome: Outcome::Denied(DenyReason::NotPermitted),
                call_site: site,
                key_version: self.keyring.active_version(),
                sealed_at: 0,
                policy_version: self.policy.policy_version(),
                context: &context,
                count: None,
                detail: Detail::NONE,
            };
            decided(&event);
            let recorded = self.audit.record(&event);
            if !self.best_effort_denials {
                recorded?;
            }
            return Err(Error::Denied {
                reason: DenyReason::NotPermitted,
            });
        }
        let mut report = ErasureReport {
            purposes: Vec::new(),
            keys_deleted: 0,
        };
        let mut done: Vec<&str> = Vec::new();
        for ((purpose, scope), version) in targets.iter().zip(verdicts) {
            let event = AuditEvent {
                time: self.clock.now(),
                accessor,
                purpose: Some(purpose),
                kind: None,
                action: AuditAction::Access(Action::Erase),
                outcome: Outcome::Allowed,
                call_site: site,
                key_version: self.keyring.active_version(),
                sealed_at: 0,
                policy_version: version.unwrap_or_default(),
                context: &context,
                count: None,
                detail: Detail::NONE,
            };
            // Recorded with (or, for stores that cannot share a transaction with the sink,
            // before) the key's destruction: an erasure is never unaudited.
            decided(&event);
            let scope = scope_label(*scope, purpose.as_str());
            if done.contains(&scope) {
                self.audit.record(&event)?;
            } else {
                let destroyed = keys.destroy_audited(
                    subject.expose_secret().as_bytes(),
                    scope,
                    &*self.audit,
                    &event,
                )?;
                if let Some(id) = destroyed {
                    report.keys_deleted += 1;
                    self.keyring.forget_subject(&id);
                }
                done.push(scope);
            }
            report.purposes.push((*purpose).clone());
        }
        Ok(report)
    }
}
