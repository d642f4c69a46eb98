//! Sharing (feature `share`): a value re-encrypted to a recipient's public key, decided as
//! [`Action::Share`] on the opening core that reveal uses, plus the recipient's rules.

use std::panic::Location;

use zeroize::Zeroizing;

use super::Guard;
use super::reveal::OpenRequest;
use crate::any::AnySealed;
use crate::audit::{AuditEvent, Detail, Outcome, RecipientName};
use crate::context::Context;
use crate::error::Error;
use crate::field::Field;
use crate::policy::{Accessor, Action, ConsentScope, Decision, DenyReason};
use crate::purpose::{Purpose, PurposeId};
use crate::sealed::Sealed;
use crate::share::{RecipientPublicKey, SharedPackage, binding, hpke_seal, write_header};
use crate::telemetry::{Op, OpSpan};

impl Guard {
    /// Re-encrypts `sealed` to `recipient`'s public key, for the purpose it was sealed for, so
    /// that the recipient can open it with [`open_shared`](crate::open_shared) and its private
    /// key, without any of the guard's keys.
    ///
    /// Decided like [`Guard::reveal`], for [`Action::Share`]: the role grant; then the purpose's
    /// consent, retention and residency rules; then the recipient's rules from the policy
    /// ([`AccessPolicy::recipient_rules`](crate::AccessPolicy::recipient_rules)): the recipient
    /// must be defined and may receive data for this purpose, and a recipient whose
    /// [`basis`](crate::RecipientBasis) is `consent` needs the subject's
    /// [`ConsentScope::Share`] consent naming it (the context's `subject`). The audit record
    /// (allowed or denied) names the recipient and is handed to the sink before anything is
    /// decrypted; a failure afterwards leaves a `failed:*` record.
    ///
    /// The package binds the purpose, kind, recipient name and `context` (HPKE `info` and
    /// associated data), so it opens only for them.
    ///
    /// # Errors
    /// [`Error::Denied`] (`NotPermitted`, `ConsentMissing`, `Expired`, `CrossBorder`,
    /// `RecipientNotAllowed`), [`Error::Audit`] if the sink refuses the record, and the errors
    /// of [`Guard::reveal`] for a value that does not open ([`Error::Integrity`],
    /// [`Error::Key`], including [`KeyError::Erased`](crate::KeyError::Erased) for an erased
    /// subject, [`Error::Context`]), [`Error::Random`] if no randomness is available.
    ///
    /// # Security
    /// `public_key` is trusted as `recipient`'s: the manifest names recipients, the key
    /// authenticates nothing by itself. Once shared, the value is out of fieldseal's control:
    /// withdrawal of consent, erasure and retention stop later shares, not what the recipient
    /// already holds.
    #[track_caller]
    pub fn share<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        recipient: &RecipientName,
        public_key: &RecipientPublicKey,
        context: &Context,
    ) -> Result<SharedPackage, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Share,
            site,
        };
        self.share_core(&req, recipient, public_key)
    }

    /// [`Guard::share`] for an envelope whose kind and purpose are read from its header.
    ///
    /// # Errors
    /// As [`Guard::share`].
    #[track_caller]
    pub fn share_any(
        &self,
        accessor: &Accessor,
        sealed: &AnySealed,
        recipient: &RecipientName,
        public_key: &RecipientPublicKey,
        context: &Context,
    ) -> Result<SharedPackage, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = sealed.purpose();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Share,
            site,
        };
        self.share_core(&req, recipient, public_key)
    }

    fn share_core(
        &self,
        req: &OpenRequest<'_>,
        recipient: &RecipientName,
        public_key: &RecipientPublicKey,
    ) -> Result<SharedPackage, Error> {
        let op = OpSpan::start(Op::Share, req.purpose.as_str(), Some(req.env.kind));
        op.key_version(|| req.env.key_version);
        op.run(|| self.share_traced(req, recipient, public_key))
    }

    fn share_traced(
        &self,
        req: &OpenRequest<'_>,
        recipient: &RecipientName,
        public_key: &RecipientPublicKey,
    ) -> Result<SharedPackage, Error> {
        let ctx = req.context.encoded();
        let (mut decision, event) = self.decide(req, ctx.is_ok());
        let mut event = AuditEvent {
            detail: Detail {
                recipient: Some(recipient),
                reference: None,
                fields: None,
            },
            ..event
        };
        if decision == Decision::Allow
            && let Err(reason) = self.check_recipient(req, recipient)
        {
            decision = Decision::Deny(reason);
            event.outcome = Outcome::Denied(reason);
        }
        let ctx = self.commit(decision, &event, ctx)?;

        let purpose = req.purpose.as_str();
        let kind = req.env.kind;
        let mut out = None;
        self.open_committed(req.env, ctx, &mut event, &mut |plain| {
            let mut ikm = Zeroizing::new([0u8; 32]);
            self.rng.fill(ikm.as_mut())?;
            let b = binding(purpose, kind, recipient.as_str(), ctx);
            let mut package = Vec::with_capacity(128 + plain.len());
            write_header(
                &mut package,
                kind,
                purpose,
                recipient.as_str(),
                self.clock.now(),
            );
            let mut aad = Vec::with_capacity(package.len() + b.len());
            aad.extend_from_slice(&package);
            aad.extend_from_slice(&b);
            package.extend_from_slice(&hpke_seal(public_key, &ikm, &b, &aad, plain)?);
            out = Some(SharedPackage::from_trusted(package));
            Ok(())
        })?;
        // `open_committed` ran the closure when it returned `Ok`.
        out.ok_or(Error::Integrity)
    }

    /// The recipient's rules: defined by the policy, allowed this purpose, and, on a consent
    /// basis, the subject's consent to sharing with it.
    fn check_recipient(
        &self,
        req: &OpenRequest<'_>,
        recipient: &RecipientName,
    ) -> Result<(), DenyReason> {
        let rules = self
            .policy
            .recipient_rules(recipient.as_str())
            .ok_or(DenyReason::RecipientNotAllowed)?;
        if !rules.may_receive(req.purpose.as_str()) {
            return Err(DenyReason::RecipientNotAllowed);
        }
        if rules.basis.needs_consent()
            && !self.consents(req.context, ConsentScope::Share(recipient.as_str()), None)
        {
            return Err(DenyReason::ConsentMissing);
        }
        Ok(())
    }
}
