//! The façade: the only place that sequences policy, keys, crypto and audit.
//!
//! Split by operation: `seal.rs` (seal, seal_any), `reveal.rs` (reveal, mask and their dynamic
//! forms, on the one opening core), `asynchronous.rs` (reveal and mask on that core with the
//! consent lookups and the record awaited), `lifecycle.rs` (rewrap, repurpose, erase),
//! `batch.rs` (batch rewrap), `record.rs` (the fields of one record sealed or revealed together), `events.rs` (consent changes, policy reloads, application events),
//! `analytics.rs` (anonymize and blind-index terms), `rights.rs` (data-subject requests after
//! identity verification, the retention sweep), `share.rs` (sharing with recipients, feature `share`). This
//! file holds the guard, its builder and
//! the policy checks they all share.

mod analytics;
mod asynchronous;
mod batch;
mod events;
mod lifecycle;
mod record;
mod reveal;
mod rights;
mod seal;
#[cfg(feature = "share")]
mod share;

pub use batch::RewrapReport;
pub use events::AppEvent;
pub use lifecycle::{Erasure, ErasureReport};
pub use record::{MAX_RECORD_FIELDS, RevealedRecord};

use std::fmt;
use std::sync::Arc;

use crate::any::AnySealed;
use crate::audit::AuditSink;
use crate::clock::{Clock, SystemClock};
use crate::context::Context;
use crate::crypto::envelope::Parsed;
use crate::error::{ConfigError, Error, KeyError};
use crate::field::{Field, FieldKind};
use crate::keys::subject::CurrentKey;
use crate::keys::{Keyring, SubjectKeyScope, SubjectKeys};
use crate::policy::{
    AccessPolicy, AccessRequest, Accessor, Action, Check, ConsentRegistry, ConsentScope,
    CrossBorderRule, Decision, DenyReason, Explanation, PurposeRules,
};
use crate::purpose::Purpose;
use crate::purpose::PurposeId;
use crate::random::{RandomSource, SystemRandom};
use crate::sealed::Sealed;

/// Seals values and opens them for authorized, audited callers.
///
/// ```
/// use std::sync::Arc;
/// use fieldseal::*;
/// use fieldseal::builtin::Service;
///
/// let audit = Arc::new(MemorySink::new());
/// let guard = Guard::builder()
///     .keyring(Keyring::generate()?)
///     .policy(AllowList::new().allow::<Service>(
///         Role::new("support_agent"), FieldKind::PhoneNumber, Action::Reveal))
///     .audit(Arc::clone(&audit))
///     .build()?;
///
/// let ctx = Context::new().table("inquiries").column("phone").row("17");
/// let sealed: Sealed<PhoneNumber, Service> =
///     guard.seal(&PhoneNumber::parse("+86 138 0013 8000")?, &ctx)?;
///
/// let agent = Accessor::new("alice", [Role::new("support_agent")]);
/// let phone = guard.reveal(&agent, &sealed, &ctx)?;
/// assert_eq!(phone.expose_secret().as_str(), "+8613800138000");
///
/// let intern = Accessor::new("bob", [Role::new("intern")]);
/// assert!(matches!(guard.reveal(&intern, &sealed, &ctx), Err(Error::Denied { .. })));
/// assert_eq!(audit.len(), 2); // the reveal and the denial
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct Guard {
    keyring: Arc<Keyring>,
    policy: Arc<dyn AccessPolicy>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn RandomSource>,
    consent: Option<Arc<dyn ConsentRegistry>>,
    best_effort_denials: bool,
    subject_keys: Option<Arc<SubjectKeys>>,
    subject_scopes: Vec<(PurposeId, SubjectKeyScope)>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("keyring", &self.keyring)
            .field("policy", &self.policy)
            .field("audit", &self.audit)
            .field("consent", &self.consent)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Guard`]. Keyring, policy and audit sink are required.
#[derive(Default)]
pub struct GuardBuilder {
    keyring: Option<Arc<Keyring>>,
    policy: Option<Arc<dyn AccessPolicy>>,
    audit: Option<Arc<dyn AuditSink>>,
    clock: Option<Arc<dyn Clock>>,
    rng: Option<Arc<dyn RandomSource>>,
    consent: Option<Arc<dyn ConsentRegistry>>,
    best_effort_denials: bool,
    subject_keys: Option<Arc<SubjectKeys>>,
    subject_scopes: Vec<(PurposeId, SubjectKeyScope)>,
}

impl fmt::Debug for GuardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardBuilder").finish_non_exhaustive()
    }
}

impl GuardBuilder {
    /// The keyring (required).
    #[must_use]
    pub fn keyring(self, keyring: Keyring) -> Self {
        self.shared_keyring(Arc::new(keyring))
    }

    /// A keyring shared with other guards.
    #[must_use]
    pub fn shared_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The access policy (required).
    #[must_use]
    pub fn policy(mut self, policy: impl AccessPolicy + 'static) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// The shared access policy (e.g. a [`ManifestPolicy`](crate::ManifestPolicy) the caller
    /// keeps a handle to for hot reload).
    #[must_use]
    pub fn shared_policy(mut self, policy: Arc<dyn AccessPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The consent registry consulted for consent-based purposes and cross-border access.
    /// Without one, every consent check fails (consent-based purposes are denied).
    #[must_use]
    pub fn consent(mut self, registry: impl ConsentRegistry + 'static) -> Self {
        self.consent = Some(Arc::new(registry));
        self
    }

    /// The audit sink (required; pass [`NullSink`](crate::NullSink) to opt out explicitly).
    #[must_use]
    pub fn audit(mut self, sink: impl AuditSink + 'static) -> Self {
        self.audit = Some(Arc::new(sink));
        self
    }

    /// The clock (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Records *denials* best-effort (default `false`): when set, a sink error while recording
    /// a denial does not change the result, which stays [`Error::Denied`]. Reveals and masks
    /// always fail closed: nothing is decrypted unless the sink accepted the record.
    ///
    /// # Security
    /// With this set, an attacker who can make the sink fail can probe for denials without
    /// leaving a record. Choose it only when availability of the denial path matters more.
    #[must_use]
    pub fn best_effort_denial_audit(mut self, best_effort: bool) -> Self {
        self.best_effort_denials = best_effort;
        self
    }

    /// Replaces the random source for nonces and epoch salts. Only for reproducible test
    /// envelopes: a predictable source destroys confidentiality.
    #[must_use]
    pub fn dangerous_random_source(mut self, rng: Arc<dyn RandomSource>) -> Self {
        self.rng = Some(rng);
        self
    }

    /// The subject keys that purposes named with [`GuardBuilder::subject_key_purpose`] are
    /// sealed under (crypto-shredding erasure: [`Guard::erase`]).
    #[must_use]
    pub fn subject_keys(mut self, keys: SubjectKeys) -> Self {
        self.subject_keys = Some(Arc::new(keys));
        self
    }

    /// Seals values of `purpose` under subject keys of `scope`: one per subject, or one per
    /// subject and purpose. Sealing for it then needs a `subject` in the context.
    #[must_use]
    pub fn subject_key_purpose(mut self, purpose: PurposeId, scope: SubjectKeyScope) -> Self {
        self.subject_scopes.retain(|(p, _)| *p != purpose);
        self.subject_scopes.push((purpose, scope));
        self
    }

    /// Builds the guard.
    ///
    /// # Errors
    /// [`ConfigError::MissingKeyring`], [`ConfigError::MissingPolicy`],
    /// [`ConfigError::MissingAuditSink`], or [`ConfigError::MissingSubjectKeys`] when purposes
    /// use subject keys but none are configured.
    pub fn build(self) -> Result<Guard, Error> {
        Ok(Guard {
            keyring: self.keyring.ok_or(ConfigError::MissingKeyring)?,
            policy: self.policy.ok_or(ConfigError::MissingPolicy)?,
            audit: self.audit.ok_or(ConfigError::MissingAuditSink)?,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            rng: self.rng.unwrap_or_else(|| Arc::new(SystemRandom)),
            consent: self.consent,
            best_effort_denials: self.best_effort_denials,
            subject_keys: match (self.subject_keys, self.subject_scopes.is_empty()) {
                (None, false) => return Err(ConfigError::MissingSubjectKeys.into()),
                (keys, _) => keys,
            },
            subject_scopes: self.subject_scopes,
        })
    }
}

impl Guard {
    /// Starts a guard.
    pub fn builder() -> GuardBuilder {
        GuardBuilder::default()
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Why `accessor` may or may not perform `action` on `sealed` now: the policy's matching rule
    /// or the check (grant, consent, retention, residency) that fails. Nothing is decrypted or
    /// audited.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for registries that can fail.
    pub fn explain<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
        action: Action,
    ) -> Result<Explanation, Error> {
        Ok(self.explain_core(
            accessor,
            &sealed.parsed(),
            P::LABEL,
            F::KIND,
            context,
            action,
        ))
    }

    /// [`Guard::explain`] for an envelope whose kind and purpose are read from its header.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for registries that can fail.
    pub fn explain_any(
        &self,
        accessor: &Accessor,
        sealed: &AnySealed,
        context: &Context,
        action: Action,
    ) -> Result<Explanation, Error> {
        let env = sealed.parsed();
        Ok(self.explain_core(accessor, &env, env.purpose, env.kind, context, action))
    }

    fn explain_core(
        &self,
        accessor: &Accessor,
        env: &Parsed<'_>,
        purpose: &str,
        kind: FieldKind,
        context: &Context,
        action: Action,
    ) -> Explanation {
        let mut ex = self.policy.explain(&AccessRequest {
            accessor,
            purpose,
            kind,
            action,
        });
        if ex.decision == Decision::Allow
            && let Some(rules) = self.policy.purpose_rules(purpose)
            && let Err((reason, check)) =
                self.check_rules(&rules, accessor, purpose, env.sealed_at, context)
        {
            ex.decision = Decision::Deny(reason);
            ex.failed = Some(check);
        }
        ex
    }

    /// The subject key (id and secret) that values of `purpose` in `context` are sealed under,
    /// if the purpose uses subject keys; created when `create` and missing.
    fn subject_key_for(
        &self,
        purpose: &str,
        context: &Context,
        create: bool,
    ) -> Result<Option<CurrentKey>, Error> {
        let Some(scope) = self.subject_scope(purpose) else {
            return Ok(None);
        };
        let keys = self
            .subject_keys
            .as_ref()
            .ok_or(KeyError::SubjectKeyUnavailable)?;
        let subject = context.part("subject").ok_or(KeyError::SubjectRequired)?;
        Ok(Some(keys.current(
            subject,
            scope_label(scope, purpose),
            create,
        )?))
    }

    fn subject_scope(&self, purpose: &str) -> Option<SubjectKeyScope> {
        self.subject_scopes
            .iter()
            .find(|(p, _)| p.as_str() == purpose)
            .map(|(_, s)| *s)
    }

    /// The secret of the subject key an envelope names, if it names one.
    ///
    /// # Errors
    /// [`KeyError::Erased`] if the key was erased, [`KeyError::SubjectKeyUnavailable`] without
    /// subject keys.
    fn subject_secret_of(
        &self,
        env: &Parsed<'_>,
    ) -> Result<Option<Arc<zeroize::Zeroizing<[u8; 32]>>>, Error> {
        match env.subject_key_id {
            None => Ok(None),
            Some(id) => self
                .subject_keys
                .as_ref()
                .ok_or(Error::Key(KeyError::SubjectKeyUnavailable))
                .and_then(|keys| keys.key(id))
                .map(Some),
        }
    }

    /// [`Guard::subject_secret_of`] with the store read awaited (the async path).
    ///
    /// # Errors
    /// As [`Guard::subject_secret_of`].
    async fn subject_secret_async(
        &self,
        env: &Parsed<'_>,
    ) -> Result<Option<Arc<zeroize::Zeroizing<[u8; 32]>>>, Error> {
        match env.subject_key_id {
            None => Ok(None),
            Some(id) => {
                let keys = self
                    .subject_keys
                    .as_ref()
                    .ok_or(Error::Key(KeyError::SubjectKeyUnavailable))?;
                Ok(Some(keys.key_async(id).await?))
            }
        }
    }

    fn consents(
        &self,
        context: &Context,
        scope: ConsentScope<'_>,
        answers: Option<&ConsentAnswers>,
    ) -> bool {
        if let Some(a) = answers {
            return a.get(scope);
        }
        match (&self.consent, context.subject_id()) {
            (Some(registry), Some(subject)) => registry.is_granted(&subject, scope),
            _ => false,
        }
    }

    /// Consent, retention and residency, in that order.
    fn check_rules(
        &self,
        rules: &PurposeRules,
        accessor: &Accessor,
        purpose: &str,
        sealed_at: u64,
        context: &Context,
    ) -> Result<(), (DenyReason, Check)> {
        self.check_rules_with(rules, accessor, purpose, sealed_at, context, None)
    }

    /// [`Guard::check_rules`] with consent from `answers` when the async path fetched it
    /// ahead, else from the registry now.
    fn check_rules_with(
        &self,
        rules: &PurposeRules,
        accessor: &Accessor,
        purpose: &str,
        sealed_at: u64,
        context: &Context,
        answers: Option<&ConsentAnswers>,
    ) -> Result<(), (DenyReason, Check)> {
        if rules.consent_required
            && !self.consents(context, ConsentScope::Purpose(purpose), answers)
        {
            return Err((DenyReason::ConsentMissing, Check::Consent));
        }
        if self.clock.now() >= sealed_at.saturating_add(rules.retention_secs) {
            return Err((DenyReason::Expired, Check::Retention));
        }
        if let Some(region) = accessor.region()
            && region != rules.home_region.as_str()
        {
            let ok = match rules.cross_border {
                CrossBorderRule::Allow => true,
                CrossBorderRule::Deny => false,
                CrossBorderRule::Consent => {
                    self.consents(context, ConsentScope::CrossBorder, answers)
                }
            };
            if !ok {
                return Err((DenyReason::CrossBorder, Check::Residency));
            }
        }
        Ok(())
    }
}

/// Consent answers fetched before the decision (the async path): scopes not fetched count as
/// not granted.
#[derive(Debug, Default, Clone, Copy)]
struct ConsentAnswers {
    purpose: Option<bool>,
    cross_border: Option<bool>,
}

impl ConsentAnswers {
    fn get(&self, scope: ConsentScope<'_>) -> bool {
        match scope {
            ConsentScope::Purpose(_) => self.purpose == Some(true),
            ConsentScope::CrossBorder => self.cross_border == Some(true),
            // Shares are decided on the blocking path only, which asks the registry itself.
            ConsentScope::Share(_) => false,
        }
    }
}

/// The scope label of a subject key: empty per subject, the purpose label per purpose.
fn scope_label(scope: SubjectKeyScope, purpose: &str) -> &str {
    match scope {
        SubjectKeyScope::Subject => "",
        SubjectKeyScope::Purpose => purpose,
    }
}
