//! The façade: the only place that sequences policy, keys, crypto and audit.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

use crate::audit::{AuditEvent, AuditSink, FailureKind, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::context::{Context, SubjectId};
use crate::crypto::aead::EpochKey;
use crate::crypto::aead::TAG_LEN;
use crate::crypto::envelope::{self, HeaderFields, MAX_PLAINTEXT};
use crate::error::KeyError;
use crate::error::{ConfigError, Error, FormatError};
use crate::field::{Field, FieldKind};
use crate::keys::subject::CurrentKey;
use crate::keys::{Keyring, SubjectKeyId, SubjectKeyScope, SubjectKeys};
use crate::policy::{
    AccessPolicy, AccessRequest, Accessor, Action, Check, ConsentRegistry, ConsentScope,
    CrossBorderRule, Decision, DenyReason, Explanation, PurposeRules,
};
use crate::purpose::{Purpose, PurposeId, is_valid_label};
use crate::random::{RandomSource, SystemRandom};
use crate::sealed::Sealed;
use crate::secret::Revealed;

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

    /// Encrypts `value` for purpose `P`, bound to `context`.
    ///
    /// Sealing needs no accessor: any code that holds plaintext may protect it. It does need the
    /// policy's consent that field kind `F` is collected for purpose `P` at all
    /// ([`AccessPolicy::decide_seal`]; a [`ManifestPolicy`](crate::ManifestPolicy) answers from
    /// its data categories, other policies allow by default). The check comes first: a refused
    /// value is never encrypted. Refusals are not audited (there is no accessor to record).
    ///
    /// # Errors
    /// [`Error::Denied`] with [`DenyReason::PurposeNotAllowedForKind`] if the policy does not
    /// collect `F` for `P`, [`Error::Context`] for an invalid context, [`Error::Random`] if the
    /// random source fails, [`FormatError::InvalidPurposeLabel`] for a `Purpose` implemented by
    /// hand (not through [`purposes!`](crate::purposes)) with an invalid label,
    /// [`KeyError::SubjectRequired`] for a purpose with subject keys and no `subject` in the
    /// context.
    pub fn seal<F: Field, P: Purpose>(
        &self,
        value: &F,
        context: &Context,
    ) -> Result<Sealed<F, P>, Error> {
        // `purposes!` checks labels at compile time; a hand-made `Purpose` gets a typed error.
        if !is_valid_label(P::LABEL) {
            return Err(FormatError::InvalidPurposeLabel.into());
        }
        if let Decision::Deny(reason) = self.policy.decide_seal(P::LABEL, F::KIND) {
            return Err(Error::Denied { reason });
        }
        let ctx = context.encoded()?;
        let sealed_at = self.clock.now();
        let bytes = match self.subject_key_for(P::LABEL, context, true)? {
            None => self.keyring.with_sealing_key(
                P::LABEL,
                F::KIND,
                &*self.rng,
                |version, key| self.seal_under(value, P::LABEL, ctx, sealed_at, version, key, None),
            )??,
            Some((id, secret)) => self.keyring.with_subject_sealing_key(
                P::LABEL,
                F::KIND,
                &*self.rng,
                (&id, &secret),
                |version, key| {
                    self.seal_under(value, P::LABEL, ctx, sealed_at, version, key, Some(&id))
                },
            )??,
        };
        Ok(Sealed::from_trusted(bytes))
    }

    /// The subject key (id and secret) that values of `purpose` in `context` are sealed under,
    /// if the purpose uses subject keys; created when `create` and missing.
    fn subject_key_for(
        &self,
        purpose: &str,
        context: &Context,
        create: bool,
    ) -> Result<Option<CurrentKey>, Error> {
        let Some(scope) = self
            .subject_scopes
            .iter()
            .find(|(p, _)| p.as_str() == purpose)
            .map(|(_, s)| *s)
        else {
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

    /// Writes the envelope of `value` under `key`: header ‖ ciphertext ‖ tag.
    #[allow(clippy::too_many_arguments)]
    fn seal_under<F: Field>(
        &self,
        value: &F,
        purpose: &str,
        ctx: &[u8],
        sealed_at: u64,
        version: crate::KeyVersion,
        key: &EpochKey,
        subject_key_id: Option<&SubjectKeyId>,
    ) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce)?;
        let header_len = envelope::header_len(purpose.len(), subject_key_id.is_some());
        let body_len = value.canonical_len();
        if body_len > MAX_PLAINTEXT.min(F::MAX_CANONICAL_LEN) {
            return Err(Error::Format(FormatError::CiphertextLength));
        }
        // Layout while encrypting: header ‖ context ‖ plaintext, so the associated data
        // (header ‖ context) is one slice without a copy; the context is then cut out.
        // The capacity is exact: the buffer never reallocates, so no unzeroized copy of
        // the plaintext is left behind in freed memory.
        let aad_len = header_len + ctx.len();
        let mut out = Vec::with_capacity(aad_len + body_len + TAG_LEN);
        envelope::write_header(
            &mut out,
            &HeaderFields {
                kind: F::KIND,
                purpose,
                key_version: version,
                sealed_at,
                subject_key_id,
                salt: key.salt(),
                commitment: key.commitment(),
                nonce: &nonce,
            },
        );
        out.extend_from_slice(ctx);
        value.write_canonical(&mut out);
        let (aad, body) = out.split_at_mut(aad_len);
        match key.seal_in_place(&nonce, aad, body) {
            Ok(tag) => {
                // Ciphertext moves over the context. The bytes left behind after it
                // (the end of the context or a copy of the ciphertext; never plaintext,
                // encryption was in place) are wiped: the context may name the subject,
                // and the envelope's spare capacity goes to the caller and is freed
                // unwiped.
                out.copy_within(aad_len.., header_len);
                if let Some(stale) = out.get_mut(header_len + body_len..) {
                    stale.zeroize();
                }
                out.truncate(header_len + body_len);
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Err(()) => {
                out.zeroize();
                Err(Error::Format(FormatError::CiphertextLength))
            }
        }
    }

    /// Opens `sealed` for `accessor`, returning the plaintext in a zeroizing wrapper.
    ///
    /// Order: policy decision; then, if the policy defines [`PurposeRules`] for the purpose,
    /// consent (consent-based purposes: the context's `subject` must have consented), retention
    /// (sealed-at plus the purpose's retention must not have passed on the guard's clock) and
    /// residency (an accessor outside the home region needs the subject's cross-border consent);
    /// then the audit record (allowed or denied, with the reason) is handed to the sink; then,
    /// only if allowed and recorded, the value is decrypted. The call site (`file:line`) goes
    /// into the audit event.
    ///
    /// # Errors
    /// [`Error::Denied`] if the policy or a consent, retention or residency check refuses, [`Error::Audit`] if the sink does not accept the
    /// record (no plaintext is produced), [`Error::Integrity`] if the value does not
    /// authenticate in `context`, [`Error::Key`] if its key is unavailable or retired,
    /// [`Error::Context`] for an invalid context, [`Error::Field`] if the value authenticates
    /// but no longer parses as its kind. Every attempt leaves an audit record: the decision,
    /// and for an allowed attempt that then fails, a `failed:*` record.
    #[track_caller]
    pub fn reveal<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
    ) -> Result<Revealed<F>, Error> {
        let site = Location::caller();
        Ok(Revealed::new(self.open(
            accessor,
            sealed,
            context,
            Action::Reveal,
            site,
        )?))
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
        Ok(self
            .open(accessor, sealed, context, Action::Mask, site)?
            .mask())
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
        let env = sealed.parsed();
        let mut ex = self.policy.explain(&AccessRequest {
            accessor,
            purpose: P::LABEL,
            kind: F::KIND,
            action,
        });
        if ex.decision == Decision::Allow
            && let Some(rules) = self.policy.purpose_rules(P::LABEL)
            && let Err((reason, check)) =
                self.check_rules(&rules, accessor, P::LABEL, env.sealed_at, context)
        {
            ex.decision = Decision::Deny(reason);
            ex.failed = Some(check);
        }
        Ok(ex)
    }

    fn consents(&self, context: &Context, scope: ConsentScope<'_>) -> bool {
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
        if rules.consent_required && !self.consents(context, ConsentScope::Purpose(purpose)) {
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
                CrossBorderRule::Consent => self.consents(context, ConsentScope::CrossBorder),
            };
            if !ok {
                return Err((DenyReason::CrossBorder, Check::Residency));
            }
        }
        Ok(())
    }

    fn open<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
        action: Action,
        site: &'static Location<'static>,
    ) -> Result<F, Error> {
        // An invalid context is recorded as a failed attempt, not returned unrecorded.
        let ctx = context.encoded();
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let verdict = self.policy.verdict(&AccessRequest {
            accessor,
            purpose: P::LABEL,
            kind: F::KIND,
            action,
        });
        let (mut decision, rules) = (verdict.decision, verdict.rules);
        if let (Decision::Allow, Some(rules)) = (decision, rules)
            && let Err((reason, _)) =
                self.check_rules(&rules, accessor, P::LABEL, env.sealed_at, context)
        {
            decision = Decision::Deny(reason);
        }
        let mut event = AuditEvent {
            time: self.clock.now(),
            accessor,
            purpose: &purpose,
            kind: F::KIND,
            action,
            outcome: match (decision, &ctx) {
                (Decision::Deny(r), _) => Outcome::Denied(r),
                (Decision::Allow, Err(_)) => Outcome::Failed(FailureKind::Context),
                (Decision::Allow, Ok(_)) => Outcome::Allowed,
            },
            call_site: site,
            key_version: env.key_version,
            sealed_at: env.sealed_at,
            policy_version: verdict.policy_version,
            context,
        };
        // Fail closed: nothing is decrypted unless the sink accepted the record.
        let recorded = self.audit.record(&event);
        if let Decision::Deny(reason) = decision {
            if !self.best_effort_denials {
                recorded?;
            }
            return Err(Error::Denied { reason });
        }
        // Nothing is opened under an invalid context: the caller gets the context error, which
        // the record above names (a sink failure is reported instead, as for any record).
        let ctx = match ctx {
            Ok(ctx) => ctx,
            Err(e) => {
                recorded?;
                return Err(e.into());
            }
        };
        recorded?;
        // A subject-key envelope needs its subject key; an erased one fails here, recorded.
        let subject_secret = match env.subject_key_id {
            None => Ok(None),
            Some(id) => self
                .subject_keys
                .as_ref()
                .ok_or(Error::Key(KeyError::SubjectKeyUnavailable))
                .and_then(|keys| keys.key(id))
                .map(Some),
        };
        let opened = subject_secret.and_then(|secret| {
            self.keyring
                .with_opening_key(&env, secret.as_deref().map(|s| &**s), |key| {
                    // header ‖ context ‖ ciphertext in one buffer: the associated data is a slice of it
                    // and the plaintext appears in place after it.
                    let aad_len = env.header.len() + ctx.len();
                    let mut buf =
                        Zeroizing::new(Vec::with_capacity(aad_len + env.ciphertext.len()));
                    buf.extend_from_slice(env.header);
                    buf.extend_from_slice(ctx);
                    buf.extend_from_slice(env.ciphertext);
                    let (aad, body) = buf.split_at_mut(aad_len);
                    key.open_in_place(env.nonce, aad, body, env.tag)
                        .map(|()| Opened { buf, at: aad_len })
                        .map_err(|()| Error::Integrity)
                })
        });
        // A value that authenticates but does not parse (a kind's rules tightened after it was
        // sealed) is a failure of its own, recorded like the others.
        let result = opened
            .and_then(|r| r)
            .and_then(|plain| F::from_canonical(plain.bytes()).map_err(Error::from));
        if let Err(e) = &result {
            event.outcome = Outcome::Failed(match e {
                Error::Key(KeyError::Erased) => FailureKind::Erased,
                Error::Key(_) => FailureKind::Key,
                Error::Context(_) => FailureKind::Context,
                Error::Field(_) => FailureKind::Field,
                _ => FailureKind::Integrity,
            });
            // Best effort: the caller gets the failure either way, and no plaintext exists.
            let _ = self.audit.record(&event);
        }
        result
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

fn scope_label(scope: SubjectKeyScope, purpose: &str) -> &str {
    match scope {
        SubjectKeyScope::Subject => "",
        SubjectKeyScope::Purpose => purpose,
    }
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
        let keys = self
            .subject_keys
            .as_ref()
            .ok_or(ConfigError::MissingSubjectKeys)?;
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
        let context = Context::new().subject(subject);
        let mut verdicts = Vec::with_capacity(targets.len());
        for (purpose, _) in &targets {
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
                purpose,
                kind: FieldKind::Text,
                action: Action::Erase,
                outcome: Outcome::Denied(DenyReason::NotPermitted),
                call_site: site,
                key_version: self.keyring.active_version(),
                sealed_at: 0,
                policy_version: self.policy.policy_version(),
                context: &context,
            };
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
                purpose,
                kind: FieldKind::Text,
                action: Action::Erase,
                outcome: Outcome::Allowed,
                call_site: site,
                key_version: self.keyring.active_version(),
                sealed_at: 0,
                policy_version: version.unwrap_or_default(),
                context: &context,
            };
            // Recorded before the key is destroyed: an erasure is never unaudited.
            self.audit.record(&event)?;
            let scope = scope_label(*scope, purpose.as_str());
            if !done.contains(&scope) {
                if let Some(id) = keys.destroy(subject.expose_secret().as_bytes(), scope)? {
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

/// Decrypted canonical bytes inside the (zeroized-on-drop) buffer they were decrypted in.
struct Opened {
    buf: Zeroizing<Vec<u8>>,
    at: usize,
}

impl Opened {
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.at..).unwrap_or_default()
    }
}
