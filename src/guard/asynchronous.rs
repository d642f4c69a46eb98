//! Reveal and mask from async code: the same sequence as [`Guard::reveal`] (decision, record,
//! decryption) on the same helpers, with the consent lookups and the audit record awaited
//! ([`ConsentRegistry::is_granted_async`](crate::ConsentRegistry::is_granted_async),
//! [`AuditSink::record_async`](crate::AuditSink::record_async)) instead of blocking.
//!
//! The other operations that wait on a store or a sink (an erasure, a seal under a subject key
//! not yet cached, a rewrap, a share) have no async form: their blocking calls never start or
//! block on a runtime themselves, so they do not panic inside one, but they hold the calling
//! thread for their round trips. From a handler, run them in `tokio::task::spawn_blocking`
//! (measured for reveals over HTTP in docs/OPERATIONS.md, "Fleet measurements").

use std::future::Future;
use std::panic::Location;

use super::reveal::{OpenRequest, failure_kind};
use super::{ConsentAnswers, Guard};
use crate::audit::Outcome;
use crate::context::Context;
use crate::error::Error;
use crate::field::Field;
use crate::policy::{AccessRequest, Accessor, Action, ConsentScope, CrossBorderRule, Decision};
use crate::purpose::{Purpose, PurposeId};
use crate::sealed::Sealed;
use crate::secret::Revealed;
use crate::telemetry::{Op, OpSpan, decided};

impl Guard {
    /// [`Guard::reveal`] for async code (an axum or tonic handler): the consent lookups and the
    /// audit record are awaited, so a sink or registry that waits on a network
    /// (`postgres::PgAuditSink`, `postgres::PgConsent`)
    /// never holds a runtime worker. The order and the rules are those of [`Guard::reveal`]:
    /// nothing is decrypted unless the record was accepted.
    ///
    /// Consent is read before the decision is recorded, as on the blocking path (a withdrawal
    /// committed before the call is honoured). A value sealed under a subject key reads the
    /// [`SubjectKeyStore`](crate::SubjectKeyStore) through
    /// [`get_async`](crate::SubjectKeyStore::get_async) to confirm the key was not erased.
    /// Sinks, registries and stores that do not override the async methods run their blocking
    /// ones on the caller's thread.
    ///
    /// # Errors
    /// As [`Guard::reveal`].
    #[track_caller]
    pub fn reveal_async<'a, F: Field, P: Purpose>(
        &'a self,
        accessor: &'a Accessor,
        sealed: &'a Sealed<F, P>,
        context: &'a Context,
    ) -> impl Future<Output = Result<Revealed<F>, Error>> + Send + 'a {
        let site = Location::caller();
        async move {
            let op = OpSpan::start(Op::Reveal, P::LABEL, Some(F::KIND));
            op.key_version(|| sealed.key_version());
            let value = op
                .run_async(self.open_async(accessor, sealed, context, Action::Reveal, site))
                .await?;
            Ok(Revealed::new(value))
        }
    }

    /// [`Guard::mask`] for async code, as [`Guard::reveal_async`].
    ///
    /// # Errors
    /// As [`Guard::mask`].
    #[track_caller]
    pub fn mask_async<'a, F: Field, P: Purpose>(
        &'a self,
        accessor: &'a Accessor,
        sealed: &'a Sealed<F, P>,
        context: &'a Context,
    ) -> impl Future<Output = Result<String, Error>> + Send + 'a {
        let site = Location::caller();
        async move {
            let op = OpSpan::start(Op::Mask, P::LABEL, Some(F::KIND));
            op.key_version(|| sealed.key_version());
            let value = op
                .run_async(self.open_async(accessor, sealed, context, Action::Mask, site))
                .await?;
            Ok(value.mask())
        }
    }

    /// The consent answers the decision on this request may need, fetched ahead: only for an
    /// allowed verdict whose purpose rules ask for consent.
    async fn fetch_consent(
        &self,
        accessor: &Accessor,
        purpose: &'static str,
        kind: crate::field::FieldKind,
        action: Action,
        context: &Context,
    ) -> ConsentAnswers {
        let mut answers = ConsentAnswers::default();
        let (Some(registry), Some(subject)) = (&self.consent, context.subject_id()) else {
            return answers;
        };
        let verdict = self.policy.verdict(&AccessRequest {
            accessor,
            purpose,
            kind,
            action,
        });
        let (Decision::Allow, Some(rules)) = (verdict.decision, verdict.rules) else {
            return answers;
        };
        if rules.consent_required {
            let f = registry.is_granted_async(&subject, ConsentScope::Purpose(purpose));
            answers.purpose = Some(f.await);
        }
        if accessor
            .region()
            .is_some_and(|r| r != rules.home_region.as_str())
            && rules.cross_border == CrossBorderRule::Consent
        {
            let f = registry.is_granted_async(&subject, ConsentScope::CrossBorder);
            answers.cross_border = Some(f.await);
        }
        answers
    }

    async fn open_async<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
        action: Action,
        site: &'static Location<'static>,
    ) -> Result<F, Error> {
        let answers = self
            .fetch_consent(accessor, P::LABEL, F::KIND, action, context)
            .await;
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action,
            site,
        };
        // The blocking core's steps (`open_core`), with the record awaited.
        // An invalid context is recorded as a failed attempt, not returned unrecorded.
        let ctx = context.encoded();
        let (decision, mut event) = self.decide_with(&req, ctx.is_ok(), Some(&answers));
        decided(&event);
        let recorded = self.audit.record_async(&event).await;
        let ctx = self.enforce(decision, recorded, ctx)?;
        // A value that authenticates but does not parse is a failure of its own, as there. The
        // subject key's store read (the erasure check) is awaited too.
        let result = match self.subject_secret_async(&env).await {
            Ok(secret) => self
                .decrypt_with(&env, ctx, secret)
                .and_then(|plain| Ok(F::from_canonical(plain.bytes())?)),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            event.outcome = Outcome::Failed(failure_kind(e));
            // Best effort: the caller gets the failure either way, and no plaintext exists.
            decided(&event);
            let _ = self.audit.record_async(&event).await;
        }
        result
    }
}
