//! Data-subject requests after identity verification (export, correction, erasure, account
//! cancellation) and the retention sweep.

use std::panic::Location;

use subtle::ConstantTimeEq as _;

use super::reveal::{OpenRequest, failure_kind};
use super::{Erasure, ErasureReport, Guard};
use crate::any::{AnyRevealed, AnySealed, AnyValue};
use crate::audit::{AuditAction, AuditEvent, Detail, Outcome, PseudonymKey, VerifyReport};
use crate::context::{Context, SubjectId};
use crate::error::{AuditError, AuditErrorKind, ConfigError, Error, FormatError};
use crate::keys::SubjectKeyScope;
use crate::policy::ExpiryRule;
use crate::policy::{Accessor, Action, DenyReason, LegalBasis};
use crate::purpose::PurposeId;
use crate::retention::{RetentionDecision, Stored, SweepItem, SweepReport};
use crate::rights::{
    CancellationReport, Evidence, ExportedValue, IdentityVerifier, SubjectExport, Verified,
    Withheld,
};

/// The manifest label of a legal basis.
fn basis_label(b: LegalBasis) -> &'static str {
    match b {
        LegalBasis::Consent => "consent",
        LegalBasis::Contract => "contract",
        LegalBasis::LegalObligation => "legal_obligation",
        LegalBasis::LegitimateInterest => "legitimate_interest",
    }
}

/// Whether `context` binds `subject` (constant-time comparison of the identifiers).
fn binds(context: &Context, subject: &SubjectId) -> bool {
    context
        .part("subject")
        .is_some_and(|s| bool::from(s.ct_eq(subject.expose_secret().as_bytes())))
}

impl Guard {
    /// Asks `verifier` whether `evidence` proves the requester is `subject`, and if so makes the
    /// [`Verified`] proof the rights operations require (valid for
    /// [`VERIFIED_TTL_SECS`](crate::VERIFIED_TTL_SECS) on the guard's clock).
    ///
    /// Nothing is recorded here (there is no accessor yet); each operation records what it
    /// does with the proof, and a refused one.
    ///
    /// # Errors
    /// [`Error::Denied`] with [`DenyReason::IdentityNotVerified`] if the verifier refuses or
    /// fails (its error is not passed on, so a verifier's failure cannot be told from a refusal).
    pub fn verify_identity(
        &self,
        verifier: &dyn IdentityVerifier,
        subject: &SubjectId,
        evidence: &Evidence,
    ) -> Result<Verified, Error> {
        match verifier.check(self, subject, evidence) {
            Ok(true) => Ok(Verified::new(subject, self.clock.now(), verifier.method())),
            _ => Err(Error::Denied {
                reason: DenyReason::IdentityNotVerified,
            }),
        }
    }

    /// An event about `subject`, not about one value.
    #[allow(clippy::too_many_arguments)]
    fn subject_event<'a>(
        &self,
        accessor: &'a Accessor,
        action: AuditAction,
        outcome: Outcome,
        purpose: Option<&'a PurposeId>,
        context: &'a Context,
        count: Option<u64>,
        site: &'static Location<'static>,
    ) -> AuditEvent<'a> {
        AuditEvent {
            time: self.clock.now(),
            accessor,
            purpose,
            kind: None,
            action,
            outcome,
            call_site: site,
            key_version: self.keyring.active_version(),
            sealed_at: 0,
            policy_version: self.policy.policy_version(),
            context,
            count,
            detail: Detail::NONE,
        }
    }

    /// Refuses (and records the refusal of) `action` unless `proof` is a valid proof for
    /// `subject`.
    fn require_proof(
        &self,
        accessor: &Accessor,
        proof: &Verified,
        subject: &SubjectId,
        action: AuditAction,
        site: &'static Location<'static>,
    ) -> Result<(), Error> {
        if proof.covers(subject.expose_secret().as_bytes(), self.clock.now()) {
            return Ok(());
        }
        let context = Context::new().subject(subject);
        let reason = DenyReason::IdentityNotVerified;
        let e = self.subject_event(
            accessor,
            action,
            Outcome::Denied(reason),
            None,
            &context,
            None,
            site,
        );
        let recorded = self.audit.record(&e);
        if !self.best_effort_denials {
            recorded?;
        }
        Err(Error::Denied { reason })
    }

    /// A subject access export: every value in `records` bound to `subject` (its context's
    /// `subject` part), opened for [`Action::Export`], with kind, purpose, sealed-at, retention
    /// and legal basis; and, given a verified audit log and its pseudonym key, the subject's own
    /// audit trail ([`VerifyReport::subject_events`]).
    ///
    /// The crate does not own the application's tables: the caller hands in the stored values
    /// with the contexts they were sealed in. Records whose context binds another subject, or
    /// none, are skipped without being opened or mentioned: the export holds the requested
    /// subject's data and nothing of anyone else's. A context that claims the subject for a
    /// value sealed for someone else does not authenticate, so it is withheld, never revealed.
    ///
    /// Order: the proof (a missing or wrong one is refused and recorded as
    /// `denied:identity_not_verified`), one `export` record for the request (count = the
    /// subject's records), then each value through the reveal path for `export` (policy,
    /// consent, retention, residency, its own record, then decryption). A value the policy
    /// refuses, or that fails to open, is listed under `withheld` with the recorded outcome.
    ///
    /// # Errors
    /// [`Error::Denied`] (`IdentityNotVerified`) without a valid proof for `subject`;
    /// [`Error::Audit`] if any record is refused (the export is abandoned, nothing returned);
    /// [`Error::Audit`] with [`AuditErrorKind::Corrupt`] if the log given for the trail did not
    /// verify.
    #[track_caller]
    pub fn export_subject<'r>(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        proof: &Verified,
        records: impl IntoIterator<Item = (&'r AnySealed, &'r Context)>,
        trail: Option<(&VerifyReport, &PseudonymKey)>,
    ) -> Result<SubjectExport, Error> {
        let site = Location::caller();
        let action = AuditAction::Access(Action::Export);
        self.require_proof(accessor, proof, subject, action, site)?;
        let trail = match trail {
            None => None,
            Some((report, key)) => Some(
                report
                    .subject_events(key, subject)
                    .map_err(|f| {
                        Error::Audit(AuditError::with_source(
                            AuditErrorKind::Corrupt { seq: f.seq },
                            f,
                        ))
                    })?
                    .into_iter()
                    .map(|(seq, r)| (seq, r.clone()))
                    .collect(),
            ),
        };
        let mine: Vec<(&AnySealed, &Context)> = records
            .into_iter()
            .filter(|(_, c)| binds(c, subject))
            .collect();
        let context = Context::new().subject(subject);
        let count = u64::try_from(mine.len()).unwrap_or(u64::MAX);
        let e = self.subject_event(
            accessor,
            action,
            Outcome::Allowed,
            None,
            &context,
            Some(count),
            site,
        );
        self.audit.record(&e)?;
        let mut out = SubjectExport {
            generated_at: self.clock.now(),
            values: Vec::new(),
            withheld: Vec::new(),
            trail,
        };
        for (sealed, ctx) in mine {
            let env = sealed.parsed();
            let purpose = sealed.purpose();
            let req = OpenRequest {
                accessor,
                env: &env,
                purpose: &purpose,
                context: ctx,
                action: Action::Export,
                site,
            };
            let opened = self.open_as(&req, |plain| {
                Ok(AnyRevealed::from_canonical(env.kind, plain)?.expose_text())
            });
            let reason = match opened {
                Ok(value) => {
                    let rules = self.policy.purpose_rules(purpose.as_str());
                    out.values.push(ExportedValue {
                        kind: env.kind,
                        sealed_at: env.sealed_at,
                        retention_until: rules
                            .map(|r| env.sealed_at.saturating_add(r.retention_secs)),
                        legal_basis: rules.map(|r| basis_label(r.legal_basis)),
                        purpose,
                        value,
                    });
                    continue;
                }
                Err(Error::Audit(e)) => return Err(Error::Audit(e)),
                Err(Error::Denied { reason }) => Outcome::Denied(reason),
                Err(e) => Outcome::Failed(failure_kind(&e)),
            };
            out.withheld.push(Withheld {
                kind: env.kind,
                purpose,
                sealed_at: env.sealed_at,
                reason,
            });
        }
        Ok(out)
    }

    /// Corrects one of the subject's values at their request: seals `value` for the purpose of
    /// `old`, in `context` (which must bind `subject`), under the active key version, and
    /// returns the new envelope for the caller to store in place of `old`.
    ///
    /// Order: the proof; `context` must bind `subject` (else refused as
    /// `denied:identity_not_verified`); `value` must be of `old`'s kind; a `correct` record
    /// (purpose, kind, key version and sealed-at of `old`) is accepted by the sink; `old` must
    /// authenticate in `context` (it is decrypted inside the crate and discarded, so a
    /// correction can only replace a value that is the subject's; a failure is recorded as
    /// `failed:*`); then the seal, for the purpose (the data-category check of
    /// [`Guard::seal`] applies). The new value's sealed-at is now: a corrected value is newly
    /// collected. Earlier audit records of `old` stay in the log.
    ///
    /// # Errors
    /// [`Error::Denied`] (`IdentityNotVerified`, or the seal's `PurposeNotAllowedForKind`);
    /// [`FormatError::KindMismatch`] if `value` is of another kind; [`Error::Audit`];
    /// [`Error::Integrity`] / [`Error::Key`] if `old` does not open in `context`; the seal's
    /// errors.
    #[track_caller]
    pub fn correct(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        proof: &Verified,
        old: &AnySealed,
        context: &Context,
        value: &AnyValue,
    ) -> Result<AnySealed, Error> {
        let site = Location::caller();
        let action = AuditAction::Corrected;
        self.require_proof(accessor, proof, subject, action, site)?;
        let env = old.parsed();
        let purpose = old.purpose();
        if !binds(context, subject) {
            let reason = DenyReason::IdentityNotVerified;
            let mut e = self.subject_event(
                accessor,
                action,
                Outcome::Denied(reason),
                Some(&purpose),
                context,
                None,
                site,
            );
            e.kind = Some(env.kind);
            let recorded = self.audit.record(&e);
            if !self.best_effort_denials {
                recorded?;
            }
            return Err(Error::Denied { reason });
        }
        if value.kind() != env.kind {
            return Err(FormatError::KindMismatch {
                expected: env.kind,
                found: value.kind(),
            }
            .into());
        }
        let ctx = context.encoded()?;
        let mut event = AuditEvent {
            kind: Some(env.kind),
            key_version: env.key_version,
            sealed_at: env.sealed_at,
            ..self.subject_event(
                accessor,
                action,
                Outcome::Allowed,
                Some(&purpose),
                context,
                None,
                site,
            )
        };
        self.audit.record(&event)?;
        if let Err(e) = self.decrypt(&env, ctx) {
            event.outcome = Outcome::Failed(failure_kind(&e));
            let _ = self.audit.record(&event);
            return Err(e);
        }
        self.seal_any(value, &purpose, context).inspect_err(|e| {
            event.outcome = Outcome::Failed(failure_kind(e));
            let _ = self.audit.record(&event);
        })
    }

    /// Erases the subject's data by crypto-shredding ([`Guard::erase`]) at the subject's
    /// verified request: the proof first (refused and recorded without a valid one), then
    /// `erase` exactly (grant `erase` per purpose, one record per purpose before its key is
    /// destroyed).
    ///
    /// # Errors
    /// [`Error::Denied`] (`IdentityNotVerified`) without a valid proof for `subject`, and
    /// [`Guard::erase`]'s errors.
    #[track_caller]
    pub fn erase_verified(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        proof: &Verified,
        what: Erasure<'_>,
    ) -> Result<ErasureReport, Error> {
        let site = Location::caller();
        self.require_proof(
            accessor,
            proof,
            subject,
            AuditAction::Access(Action::Erase),
            site,
        )?;
        self.erase(accessor, subject, what)
    }

    /// Cancels the subject's account: erases (crypto-shreds) the subject's keys of every
    /// purpose with subject keys except those under a legal hold
    /// ([`PurposeRules::legal_hold`](crate::PurposeRules::legal_hold): by default, purposes
    /// whose legal basis is `legal_obligation`).
    ///
    /// A subject-wide key ([`SubjectKeyScope::Subject`]) shared by a held purpose is kept, so
    /// the other purposes under it are reported in
    /// [`CancellationReport::kept_with_hold`]. Purposes without subject keys are not touched:
    /// the application deletes those rows (or lets a retention sweep do it).
    ///
    /// Order: the proof; every purpose's rules (a purpose the policy defines no rules for
    /// stops the cancellation before anything is recorded); one `cancel` record (count = the
    /// purposes to erase); then the erasure as [`Guard::erase`] does it (every grant checked
    /// first, one `erase` record per purpose before its key is destroyed).
    ///
    /// # Errors
    /// [`Error::Denied`] (`IdentityNotVerified`, or `NotPermitted` if `erase` is not granted
    /// for a purpose: nothing is erased); [`ConfigError::NoPurposeRules`];
    /// [`ConfigError::MissingSubjectKeys`]; [`Error::Audit`]; store and provider errors.
    #[track_caller]
    pub fn cancel_account(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        proof: &Verified,
    ) -> Result<CancellationReport, Error> {
        let site = Location::caller();
        self.require_proof(accessor, proof, subject, AuditAction::Cancelled, site)?;
        if self.subject_keys.is_none() {
            return Err(ConfigError::MissingSubjectKeys.into());
        }
        let mut held = Vec::new();
        for (p, scope) in &self.subject_scopes {
            let rules = self
                .policy
                .purpose_rules(p.as_str())
                .ok_or(ConfigError::NoPurposeRules)?;
            if rules.legal_hold {
                held.push((p, *scope));
            }
        }
        let subject_key_held = held.iter().any(|(_, s)| *s == SubjectKeyScope::Subject);
        let mut report = CancellationReport {
            erased: Vec::new(),
            held: held.iter().map(|(p, _)| (*p).clone()).collect(),
            kept_with_hold: Vec::new(),
            keys_deleted: 0,
        };
        let mut targets = Vec::new();
        for t in &self.subject_scopes {
            if held.iter().any(|(p, _)| *p == &t.0) {
                continue;
            }
            if t.1 == SubjectKeyScope::Subject && subject_key_held {
                report.kept_with_hold.push(t.0.clone());
            } else {
                targets.push(t);
            }
        }
        let context = Context::new().subject(subject);
        let count = u64::try_from(targets.len()).unwrap_or(u64::MAX);
        let e = self.subject_event(
            accessor,
            AuditAction::Cancelled,
            Outcome::Allowed,
            None,
            &context,
            Some(count),
            site,
        );
        self.audit.record(&e)?;
        let erased = self.erase_targets(accessor, subject, &targets, site)?;
        report.erased = erased.purposes;
        report.keys_deleted = erased.keys_deleted;
        Ok(report)
    }

    /// Decides, for each stored envelope in `items`, whether to keep it, delete it, or
    /// anonymize then delete it: expired when the guard's clock has reached sealed-at plus the
    /// purpose's retention; then the purpose's `on_expiry` rule
    /// ([`PurposeRules::on_expiry`](crate::PurposeRules::on_expiry)).
    ///
    /// Reads only each envelope's public header (kind, purpose, sealed-at): no key is derived,
    /// nothing is decrypted, no context is needed, and the sweep needs no grant. An item that
    /// does not parse, or whose purpose the policy defines no rules for, gets its own error in
    /// the report; the others are decided. Once every item is decided, one `retention.sweep`
    /// record (count = the items handed in) is written; the report is returned only if the sink
    /// accepted it, so no deletion is ever decided unrecorded.
    ///
    /// The sweep only decides: the application deletes its rows (and anonymizes first where
    /// the report says so).
    ///
    /// # Errors
    /// [`Error::Audit`] if the summary record is refused.
    #[track_caller]
    pub fn retention_sweep<'s, I>(
        &self,
        accessor: &Accessor,
        items: I,
    ) -> Result<SweepReport, Error>
    where
        I: IntoIterator,
        I::Item: Into<Stored<'s>>,
    {
        let site = Location::caller();
        let now = self.clock.now();
        let mut report = SweepReport::new(now);
        for item in items {
            report.push(self.sweep_one(item.into(), now));
        }
        let empty = Context::new();
        let count = u64::try_from(report.items.len()).unwrap_or(u64::MAX);
        let e = self.subject_event(
            accessor,
            AuditAction::RetentionSweep,
            Outcome::Allowed,
            None,
            &empty,
            Some(count),
            site,
        );
        self.audit.record(&e)?;
        Ok(report)
    }

    fn sweep_one(&self, stored: Stored<'_>, now: u64) -> Result<SweepItem, Error> {
        let sealed = stored.parse()?;
        let purpose = sealed.purpose();
        let rules = self
            .policy
            .purpose_rules(purpose.as_str())
            .ok_or(ConfigError::NoPurposeRules)?;
        let sealed_at = sealed.sealed_at();
        let until = sealed_at.saturating_add(rules.retention_secs);
        // The same boundary as the reveal path's retention check: expired at `until`.
        let decision = if now < until {
            RetentionDecision::Keep { until }
        } else {
            match rules.on_expiry {
                ExpiryRule::Anonymize => RetentionDecision::AnonymizeThenDelete,
                _ => RetentionDecision::Delete,
            }
        };
        Ok(SweepItem {
            kind: sealed.kind(),
            purpose,
            sealed_at,
            decision,
        })
    }
}
