//! Audited events that are not accesses to a sealed value: consent changes, policy reloads, and
//! events the application performs itself.

use std::panic::Location;

use super::Guard;
use crate::audit::{
    AppEventName, AuditAction, AuditEvent, Detail, Outcome, RecipientName, Reference,
};
use crate::context::{Context, SubjectId};
use crate::error::{ConfigError, Error};
use crate::field::FieldKind;
use crate::policy::{Accessor, ConsentScope, Manifest, ManifestPolicy};
use crate::purpose::PurposeId;

/// An event the application performed itself, for the audit log: a consent captured by a web
/// form, a disclosure to an authority under a legal order, an export sent by post.
///
/// Recorded with [`Guard::record_event`] into the same sink and chain as every access, as
/// action `app.<name>`. The context is pseudonymized like any other (its `subject` part becomes
/// the subject pseudonym, so the event appears in that subject's access report).
///
/// ```
/// use fieldseal::{AppEvent, AppEventName, Context, Reference, SubjectId};
/// let event = AppEvent::new(AppEventName::new("legal_disclosure")?)
///     .context(Context::new().subject(&SubjectId::new("user-42")))
///     .reference(Reference::new("ORDER-2026-118")?);
/// # let _ = event;
/// # Ok::<(), fieldseal::Error>(())
/// ```
#[derive(Debug)]
pub struct AppEvent {
    name: AppEventName,
    purpose: Option<PurposeId>,
    kind: Option<FieldKind>,
    context: Context,
    recipient: Option<RecipientName>,
    reference: Option<Reference>,
}

impl AppEvent {
    /// An event with no purpose, kind, context, recipient or reference yet.
    pub fn new(name: AppEventName) -> Self {
        Self {
            name,
            purpose: None,
            kind: None,
            context: Context::new(),
            recipient: None,
            reference: None,
        }
    }
    /// The purpose the event served.
    pub fn purpose(mut self, purpose: PurposeId) -> Self {
        self.purpose = Some(purpose);
        self
    }
    /// The field kind the event concerned.
    pub fn kind(mut self, kind: FieldKind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// The context (row, subject): stored only as keyed digests.
    pub fn context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }
    /// The recipient of a disclosure.
    pub fn recipient(mut self, recipient: RecipientName) -> Self {
        self.recipient = Some(recipient);
        self
    }
    /// The application's reference (stored as written: never personal data).
    pub fn reference(mut self, reference: Reference) -> Self {
        self.reference = Some(reference);
        self
    }
}

impl Guard {
    /// Records an event the application performed itself into the guard's audit sink.
    ///
    /// No policy decides it: the application states what it did and who did it.
    ///
    /// # Errors
    /// [`Error::Audit`] if the sink refused the record.
    #[track_caller]
    pub fn record_event(&self, accessor: &Accessor, event: &AppEvent) -> Result<(), Error> {
        let site = Location::caller();
        let e = AuditEvent {
            time: self.clock.now(),
            accessor,
            purpose: event.purpose.as_ref(),
            kind: event.kind,
            action: AuditAction::Application(event.name),
            outcome: Outcome::Allowed,
            call_site: site,
            key_version: self.keyring.active_version(),
            sealed_at: 0,
            policy_version: self.policy.policy_version(),
            context: &event.context,
            count: None,
            detail: Detail {
                recipient: event.recipient.as_ref(),
                reference: event.reference.as_ref(),
                fields: None,
            },
        };
        self.audit.record(&e)?;
        Ok(())
    }

    /// Records that `subject` consents to `scope` (audited as `consent.grant`, then written to
    /// the consent registry).
    ///
    /// # Security
    /// The record is made first: a grant the log cannot hold never takes effect.
    ///
    /// # Errors
    /// [`ConfigError::MissingConsent`] without a registry, [`Error::Audit`] if the record was
    /// refused (the grant is then not made), and the registry's error if it could not store the
    /// grant (the log then holds a grant that did not take effect, and the error says so).
    #[track_caller]
    pub fn grant_consent(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
    ) -> Result<(), Error> {
        let site = Location::caller();
        let registry = self.consent.as_ref().ok_or(ConfigError::MissingConsent)?;
        let at = self.clock.now();
        self.record_consent(accessor, subject, scope, true, at, site)?;
        registry.change(subject, scope, true, at, accessor.principal())
    }

    /// Records that `subject` withdraws consent to `scope` (written to the consent registry,
    /// then audited as `consent.withdraw`).
    ///
    /// # Security
    /// The withdrawal is made first: a failing audit sink never keeps a consent alive. If the
    /// record then fails, the withdrawal stands and the error is returned.
    ///
    /// # Errors
    /// [`ConfigError::MissingConsent`] without a registry, the registry's error if it could not
    /// store the withdrawal (nothing is recorded), [`Error::Audit`] if the record was refused.
    #[track_caller]
    pub fn withdraw_consent(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
    ) -> Result<(), Error> {
        let site = Location::caller();
        let registry = self.consent.as_ref().ok_or(ConfigError::MissingConsent)?;
        let at = self.clock.now();
        registry.change(subject, scope, false, at, accessor.principal())?;
        self.record_consent(accessor, subject, scope, false, at, site)
    }

    fn record_consent(
        &self,
        accessor: &Accessor,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        granted: bool,
        at: u64,
        site: &'static Location<'static>,
    ) -> Result<(), Error> {
        let (purpose, recipient) = match scope {
            ConsentScope::Purpose(p) => (Some(PurposeId::new(p)?), None),
            ConsentScope::CrossBorder => (None, None),
            ConsentScope::Share(r) => (None, Some(RecipientName::new(r)?)),
        };
        let context = Context::new().subject(subject);
        let e = AuditEvent {
            time: at,
            accessor,
            purpose: purpose.as_ref(),
            kind: None,
            action: if granted {
                AuditAction::ConsentGranted
            } else {
                AuditAction::ConsentWithdrawn
            },
            outcome: Outcome::Allowed,
            call_site: site,
            key_version: self.keyring.active_version(),
            sealed_at: 0,
            policy_version: self.policy.policy_version(),
            context: &context,
            count: None,
            detail: Detail {
                recipient: recipient.as_ref(),
                reference: None,
                fields: None,
            },
        };
        self.audit.record(&e)?;
        Ok(())
    }

    /// Installs `manifest` in `policy` and records it (`policy.reload`, with the new version)
    /// in the guard's audit sink.
    ///
    /// The manifest is compiled first; the record is made before the new policy is published,
    /// so no decision is ever made under a policy the log does not name.
    ///
    /// # Errors
    /// The compilation error of an invalid manifest (nothing recorded, the old policy stays),
    /// [`Error::Audit`] if the record was refused (the old policy stays).
    #[track_caller]
    pub fn reload_policy(
        &self,
        accessor: &Accessor,
        policy: &ManifestPolicy,
        manifest: Manifest,
    ) -> Result<u64, Error> {
        let site = Location::caller();
        let empty = Context::new();
        policy.reload_with(manifest, |version| {
            let e = AuditEvent {
                time: self.clock.now(),
                accessor,
                purpose: None,
                kind: None,
                action: AuditAction::PolicyReloaded,
                outcome: Outcome::Allowed,
                call_site: site,
                key_version: self.keyring.active_version(),
                sealed_at: 0,
                policy_version: version,
                context: &empty,
                count: None,
                detail: Detail::NONE,
            };
            self.audit.record(&e).map_err(Error::from)
        })
    }
}
