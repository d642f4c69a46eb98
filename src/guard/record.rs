//! Record batches: the fields of one record (one context, one subject) sealed or revealed
//! together, with the decisions, the audit record and the key lookups shared among them.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::Guard;
use super::reveal::{decrypt, failure_kind};
use super::seal::{SealRequest, stable_label};
use crate::any::{AnyRevealed, AnySealed, AnyValue};
use crate::audit::{AuditAction, AuditEvent, AuditField, Detail, Outcome};
use crate::context::Context;
use crate::crypto::aead::EpochKey;
use crate::crypto::envelope::Parsed;
use crate::error::{Error, FormatError};
use crate::field::FieldKind;
use crate::keys::subject::CurrentKey;
use crate::policy::{AccessRequest, Accessor, Action, Decision, DenyReason, Verdict};
use crate::purpose::{PurposeId, is_valid_label};
use crate::telemetry::{Op, OpSpan, decided};

/// Most fields one record batch ([`Guard::reveal_record`], [`Guard::seal_record`]) takes. A
/// batch's audit record lists every field, and an audit line is bounded (64 KiB): 256 fields
/// of the longest labels take under 30 KiB.
pub const MAX_RECORD_FIELDS: usize = 256;

/// The per-field results of [`Guard::reveal_record`], in the order the fields were given.
///
/// Each field is its value (zeroized on drop, as from [`Guard::reveal_any`]) or the error that
/// kept it closed. `Debug` shows counts only.
#[must_use = "SECURITY WARNING: some fields may have been denied or failed; check each result"]
pub struct RevealedRecord {
    results: Vec<Result<AnyRevealed, Error>>,
    opened: usize,
}

impl RevealedRecord {
    /// Number of fields in the batch.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Number of fields opened.
    pub fn opened(&self) -> usize {
        self.opened
    }

    /// The result of field `i` (in input order), if there is one.
    pub fn get(&self, i: usize) -> Option<&Result<AnyRevealed, Error>> {
        self.results.get(i)
    }

    /// Every field's result, in input order.
    pub fn results(&self) -> &[Result<AnyRevealed, Error>] {
        &self.results
    }

    /// Every field's result, in input order, by value.
    pub fn into_results(self) -> Vec<Result<AnyRevealed, Error>> {
        self.results
    }
}

impl fmt::Debug for RevealedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevealedRecord")
            .field("fields", &self.results.len())
            .field("opened", &self.opened)
            .finish()
    }
}

/// A subject key's secret, as the subject-key store hands it out.
type SubjectSecret = Arc<Zeroizing<[u8; 32]>>;

/// The fields of one (kind, purpose) in a reveal batch: one decision.
struct RevealGroup {
    purpose: PurposeId,
    kind: FieldKind,
    verdict: Verdict,
    /// The last (sealed-at, check result) of this group: the fields of one record usually share
    /// their sealed-at time, and consent and residency depend only on purpose and context.
    memo: Option<(u64, Result<(), DenyReason>)>,
}

/// The fields of one (purpose, kind) in a seal batch: one seal decision, one subject key.
struct SealGroup {
    /// The label at the thread-stable address the keyring finds sealing epochs by.
    label: Arc<str>,
    kind: FieldKind,
    decision: Decision,
    subject_key: Option<Option<CurrentKey>>,
}

impl Guard {
    /// Opens many fields of one record (one `context`, so one row and one subject), with
    /// per-field results.
    ///
    /// Each field gets exactly the checks [`Guard::reveal_any`] makes, shared where they are
    /// the same:
    ///
    /// 1. The policy decides once per distinct (kind, purpose) among the fields, for
    ///    [`Action::Reveal`]. For an allowed pair, each field then passes the purpose's consent,
    ///    retention (from its own sealed-at) and residency checks.
    /// 2. **One audit record** for the batch goes to the sink before anything is decrypted: its
    ///    [`AuditEvent::fields`] list every field's kind, purpose and decision (`allowed` or
    ///    `denied:<reason>`), in input order; [`AuditEvent::count`] is the number of fields;
    ///    its purpose and kind are the fields' if they all share one, else none (`-`); its key
    ///    version and sealed-at are the lowest among the fields; its policy version is the
    ///    highest among the decisions; its context is `context` (so the record names the
    ///    subject); its outcome is `allowed` if any field is allowed, otherwise the first
    ///    field's denial.
    /// 3. Allowed fields are decrypted, with one keyring lookup per distinct opening key (key
    ///    version, purpose, kind, subject key and epoch salt: a record sealed by
    ///    [`Guard::seal_record`] on one thread needs one per (purpose, kind)) and one
    ///    subject-key read per distinct subject key. A field that fails here (it does not
    ///    authenticate in `context`, its key is retired, unknown or erased, its bytes no
    ///    longer parse) gets its error and a `failed:*` record of its own, best effort, as a
    ///    failed [`Guard::reveal_any`] does.
    ///
    /// **Partial denial.** A denied field gets [`Error::Denied`] (with the reason a single
    /// reveal would give) while the allowed fields open. The fields of a record routinely
    /// belong to purposes with different grants and consents (a support agent may read a
    /// customer's service contact details but not their marketing profile); denying the whole
    /// record would only push callers back to one reveal per field, with the same outcome and
    /// twenty records. Nothing is weakened: each field is decided as on its own, and the
    /// batch's one record names every denied field and its reason.
    ///
    /// # Errors
    /// For the batch as a whole, with nothing decrypted: [`Error::Audit`] if the sink does
    /// not accept the record (with
    /// [`GuardBuilder::best_effort_denial_audit`](super::GuardBuilder::best_effort_denial_audit)
    /// and every field denied, the denials are returned instead, as for single reveals);
    /// [`Error::Context`] for an invalid context when any field is allowed (recorded as
    /// `failed:context`); [`FormatError::TooLong`] for more than [`MAX_RECORD_FIELDS`] fields
    /// (not recorded: nothing was decided). Per field: the errors of [`Guard::reveal_any`].
    ///
    /// # Security
    /// One record names the accessor, the subject (pseudonymized) and every field, so the
    /// log shows what was read as it does for single reveals; the subject access report
    /// ([`VerifyReport::subject_access`](crate::VerifyReport::subject_access)) lists each
    /// allowed field of it. Fail closed: if the record is refused, no field is decrypted.
    ///
    /// # Examples
    /// ```
    /// use fieldseal::*;
    /// use fieldseal::builtin::{Marketing, Service};
    /// let audit = std::sync::Arc::new(MemorySink::new());
    /// let guard = Guard::builder()
    ///     .keyring(Keyring::generate()?)
    ///     .policy(AllowList::new()
    ///         .allow::<Service>(Role::new("agent"), FieldKind::Email, Action::Reveal)
    ///         .allow::<Service>(Role::new("agent"), FieldKind::PhoneNumber, Action::Reveal))
    ///     .audit(std::sync::Arc::clone(&audit))
    ///     .build()?;
    /// let ctx = Context::new().table("customers").row("42");
    /// let service = PurposeId::of::<Service>();
    /// let marketing = PurposeId::of::<Marketing>();
    /// let email = AnyValue::parse(FieldKind::Email, "a@example.com")?;
    /// let phone = AnyValue::parse(FieldKind::PhoneNumber, "+86 138 0013 8000")?;
    /// let sealed: Vec<AnySealed> = guard
    ///     .seal_record([(&email, &service), (&phone, &service), (&email, &marketing)], &ctx)?
    ///     .into_iter()
    ///     .collect::<Result<_, _>>()?;
    /// let agent = Accessor::new("alice", [Role::new("agent")]);
    /// let record = guard.reveal_record(&agent, &sealed, &ctx)?;
    /// assert_eq!(record.opened(), 2);
    /// assert!(matches!(record.get(2), Some(Err(Error::Denied { .. }))));
    /// assert_eq!(audit.len(), 1); // one record for the three fields
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    #[track_caller]
    pub fn reveal_record<'s, I>(
        &self,
        accessor: &Accessor,
        fields: I,
        context: &Context,
    ) -> Result<RevealedRecord, Error>
    where
        I: IntoIterator<Item = &'s AnySealed>,
    {
        let site = Location::caller();
        let op = OpSpan::start(Op::Reveal, "", None);
        op.run(|| self.reveal_record_at(accessor, fields, context, site))
    }

    fn reveal_record_at<'s, I>(
        &self,
        accessor: &Accessor,
        fields: I,
        context: &Context,
        site: &'static Location<'static>,
    ) -> Result<RevealedRecord, Error>
    where
        I: IntoIterator<Item = &'s AnySealed>,
    {
        let sealed: Vec<&AnySealed> = fields.into_iter().take(MAX_RECORD_FIELDS + 1).collect();
        if sealed.len() > MAX_RECORD_FIELDS {
            return Err(FormatError::TooLong {
                max: MAX_RECORD_FIELDS,
            }
            .into());
        }
        if sealed.is_empty() {
            return Ok(RevealedRecord {
                results: Vec::new(),
                opened: 0,
            });
        }
        let envs: Vec<Parsed<'_>> = sealed.iter().map(|s| s.parsed()).collect();
        let ctx = context.encoded();

        // Step 1: one decision per (kind, purpose), then each field's own checks.
        let mut groups: Vec<RevealGroup> = Vec::new();
        let mut listed: Vec<AuditField> = Vec::with_capacity(envs.len());
        for (s, env) in sealed.iter().zip(&envs) {
            let g = match groups
                .iter()
                .position(|g| g.kind == env.kind && g.purpose.as_str() == env.purpose)
            {
                Some(g) => g,
                None => {
                    let purpose = s.purpose();
                    let verdict = self.policy.verdict(&AccessRequest {
                        accessor,
                        purpose: purpose.as_str(),
                        kind: env.kind,
                        action: Action::Reveal,
                    });
                    groups.push(RevealGroup {
                        purpose,
                        kind: env.kind,
                        verdict,
                        memo: None,
                    });
                    groups.len() - 1
                }
            };
            let group = groups.get_mut(g).ok_or(Error::Integrity)?;
            let outcome = match self.field_decision(accessor, group, env.sealed_at, context) {
                Ok(()) => Outcome::Allowed,
                Err(reason) => Outcome::Denied(reason),
            };
            listed.push(AuditField {
                purpose: group.purpose.clone(),
                kind: env.kind,
                outcome,
            });
        }

        // Step 2: the batch's one record, accepted before anything is decrypted.
        let any_allowed = listed.iter().any(|f| f.outcome == Outcome::Allowed);
        let first_denial = listed.iter().find_map(|f| match f.outcome {
            Outcome::Denied(r) => Some(r),
            _ => None,
        });
        let outcome = match (any_allowed, first_denial, ctx.is_ok()) {
            (true, _, true) => Outcome::Allowed,
            (true, _, false) => Outcome::Failed(crate::audit::FailureKind::Context),
            (false, Some(r), _) => Outcome::Denied(r),
            // Not reached: a field is either allowed or denied.
            (false, None, _) => Outcome::Denied(DenyReason::NotPermitted),
        };
        let shared_purpose = listed
            .first()
            .map(|f| &f.purpose)
            .filter(|p| listed.iter().all(|f| f.purpose == **p));
        let shared_kind = listed
            .first()
            .map(|f| f.kind)
            .filter(|k| listed.iter().all(|f| f.kind == *k));
        let lowest_version = envs
            .iter()
            .map(|e| e.key_version)
            .min_by_key(|v| v.get())
            .ok_or(Error::Integrity)?;
        let event = AuditEvent {
            time: self.clock.now(),
            accessor,
            purpose: shared_purpose,
            kind: shared_kind,
            action: AuditAction::Access(Action::Reveal),
            outcome,
            call_site: site,
            key_version: lowest_version,
            sealed_at: envs.iter().map(|e| e.sealed_at).min().unwrap_or(0),
            policy_version: groups
                .iter()
                .map(|g| g.verdict.policy_version)
                .max()
                .unwrap_or(0),
            context,
            count: Some(listed.len() as u64),
            detail: Detail {
                fields: Some(listed.as_slice()),
                ..Detail::NONE
            },
        };
        decided(&event);
        let recorded = self.audit.record(&event);
        if let Err(e) = recorded
            && (any_allowed || !self.best_effort_denials)
        {
            return Err(e.into());
        }
        let mut results: Vec<Option<Result<AnyRevealed, Error>>> = listed
            .iter()
            .map(|f| match f.outcome {
                Outcome::Denied(reason) => Some(Err(Error::Denied { reason })),
                _ => None,
            })
            .collect();
        if !any_allowed {
            return Ok(finish(results));
        }
        // Nothing is opened under an invalid context; the record says `failed:context`.
        let ctx = ctx?;

        // Step 3: decryption, one keyring lookup per distinct opening key.
        self.open_fields(&envs, ctx, &mut results);
        for (i, r) in results.iter().enumerate() {
            if let (Some(Err(e)), Some(env), Some(f)) = (r, envs.get(i), listed.get(i))
                && f.outcome == Outcome::Allowed
            {
                let failed = AuditEvent {
                    time: self.clock.now(),
                    accessor,
                    purpose: Some(&f.purpose),
                    kind: Some(env.kind),
                    action: AuditAction::Access(Action::Reveal),
                    outcome: Outcome::Failed(failure_kind(e)),
                    call_site: site,
                    key_version: env.key_version,
                    sealed_at: env.sealed_at,
                    policy_version: event.policy_version,
                    context,
                    count: None,
                    detail: Detail::NONE,
                };
                // Best effort: the field fails either way, and no plaintext exists.
                decided(&failed);
                let _ = self.audit.record(&failed);
            }
        }
        Ok(finish(results))
    }

    /// The group's decision applied to one field (sealed at `sealed_at`), then the field's
    /// consent, retention and residency checks.
    fn field_decision(
        &self,
        accessor: &Accessor,
        group: &mut RevealGroup,
        sealed_at: u64,
        context: &Context,
    ) -> Result<(), DenyReason> {
        if let Decision::Deny(reason) = group.verdict.decision {
            return Err(reason);
        }
        let Some(rules) = group.verdict.rules else {
            return Ok(());
        };
        if let Some((at, result)) = group.memo
            && at == sealed_at
        {
            return result;
        }
        let result = self
            .check_rules(&rules, accessor, group.purpose.as_str(), sealed_at, context)
            .map_err(|(reason, _)| reason);
        group.memo = Some((sealed_at, result));
        result
    }

    /// Opens every field whose result is still `None` (the allowed ones), grouping fields
    /// that share an opening key under one keyring lookup.
    fn open_fields(
        &self,
        envs: &[Parsed<'_>],
        ctx: &[u8],
        results: &mut [Option<Result<AnyRevealed, Error>>],
    ) {
        let mut secrets: Vec<([u8; 16], SubjectSecret)> = Vec::new();
        while let Some(rep) = results.iter().position(Option::is_none) {
            let Some(renv) = envs.get(rep) else { return };
            let secret = match renv.subject_key_id {
                None => None,
                Some(id) => match secrets.iter().find(|(k, _)| k == id) {
                    Some((_, s)) => Some(Arc::clone(s)),
                    None => match self.subject_secret_of(renv) {
                        Ok(Some(s)) => {
                            secrets.push((*id, Arc::clone(&s)));
                            Some(s)
                        }
                        Ok(None) => None,
                        Err(e) => {
                            set(results, rep, Err(e));
                            continue;
                        }
                    },
                },
            };
            let opened =
                self.keyring
                    .with_opening_key(renv, secret.as_deref().map(|s| &**s), |key| {
                        for (i, env) in envs.iter().enumerate() {
                            let pending = results.get(i).is_some_and(Option::is_none);
                            if pending && same_key(env, renv) {
                                set(results, i, open_field(key, env, ctx));
                            }
                        }
                    });
            if let Err(e) = opened {
                // The representative's key (or its commitment) failed; the others sharing its
                // key identity are tried next, each on its own commitment.
                set(results, rep, Err(e));
            }
        }
    }

    /// Seals many fields of one record (one `context`), each for its own purpose, with
    /// per-field results.
    ///
    /// Each envelope is byte for byte what [`Guard::seal_any`] makes for the same value,
    /// purpose and context (and opens with [`Guard::reveal_any`] or [`Guard::reveal_record`]);
    /// the work shared among the fields is done once: the context encoding, the sealed-at time
    /// (all fields get the same), one [`AccessPolicy::decide_seal`](crate::AccessPolicy::decide_seal)
    /// per distinct (purpose, kind), one subject-key lookup per distinct purpose with subject
    /// keys, and one key derivation per distinct (purpose, kind, key version) on the calling
    /// thread (its sealing epoch). Sealing needs no accessor and writes no audit record, as
    /// [`Guard::seal_any`].
    ///
    /// A field whose (purpose, kind) the policy refuses gets [`Error::Denied`] while the others
    /// are sealed, as their own [`Guard::seal_any`] calls would be.
    ///
    /// # Errors
    /// For the batch as a whole: [`Error::Context`] for an invalid context,
    /// [`FormatError::TooLong`] for more than [`MAX_RECORD_FIELDS`] fields. Per field: the
    /// errors of [`Guard::seal_any`].
    pub fn seal_record<'v, I>(
        &self,
        fields: I,
        context: &Context,
    ) -> Result<Vec<Result<AnySealed, Error>>, Error>
    where
        I: IntoIterator<Item = (&'v AnyValue, &'v PurposeId)>,
    {
        let op = OpSpan::start(Op::Seal, "", None);
        op.run(|| self.seal_record_inner(fields, context))
    }

    fn seal_record_inner<'v, I>(
        &self,
        fields: I,
        context: &Context,
    ) -> Result<Vec<Result<AnySealed, Error>>, Error>
    where
        I: IntoIterator<Item = (&'v AnyValue, &'v PurposeId)>,
    {
        let fields: Vec<(&AnyValue, &PurposeId)> =
            fields.into_iter().take(MAX_RECORD_FIELDS + 1).collect();
        if fields.len() > MAX_RECORD_FIELDS {
            return Err(FormatError::TooLong {
                max: MAX_RECORD_FIELDS,
            }
            .into());
        }
        let encoded = context.encoded()?;
        let sealed_at = self.clock.now();
        let mut groups: Vec<SealGroup> = Vec::new();
        let mut out = Vec::with_capacity(fields.len());
        for (value, purpose) in fields {
            let kind = value.kind();
            let g = match groups
                .iter()
                .position(|g| g.kind == kind && &*g.label == purpose.as_str())
            {
                Some(g) => g,
                None => {
                    let label = stable_label(purpose.as_str());
                    let decision = if is_valid_label(&label) {
                        self.policy.decide_seal(&label, kind)
                    } else {
                        Decision::Allow
                    };
                    groups.push(SealGroup {
                        label,
                        kind,
                        decision,
                        subject_key: None,
                    });
                    groups.len() - 1
                }
            };
            let Some(group) = groups.get_mut(g) else {
                out.push(Err(Error::Integrity));
                continue;
            };
            out.push(self.seal_field(group, value, encoded, context, sealed_at));
        }
        Ok(out)
    }

    /// One field of [`Guard::seal_record`], in the order [`Guard::seal_any`] checks.
    fn seal_field(
        &self,
        group: &mut SealGroup,
        value: &AnyValue,
        encoded: &[u8],
        context: &Context,
        sealed_at: u64,
    ) -> Result<AnySealed, Error> {
        let body_len = value.canonical_len();
        if body_len > value.max_canonical_len() {
            return Err(Error::Format(FormatError::CiphertextLength));
        }
        if !is_valid_label(&group.label) {
            return Err(FormatError::InvalidPurposeLabel.into());
        }
        if let Decision::Deny(reason) = group.decision {
            return Err(Error::Denied { reason });
        }
        // Only a found key is kept: a failed lookup is retried (and reported) per field.
        if group.subject_key.is_none() {
            group.subject_key = Some(self.subject_key_for(&group.label, context, true)?);
        }
        let subject = group.subject_key.as_ref().and_then(Option::as_ref);
        let req = SealRequest {
            purpose: &group.label,
            kind: group.kind,
            context: encoded,
            sealed_at,
            body_len,
            subject_key: subject.map(|(id, k)| (id, &***k)),
        };
        self.seal_core(&req, &mut |out| value.write_canonical(out))
            .map(AnySealed::from_trusted)
    }
}

fn set(
    results: &mut [Option<Result<AnyRevealed, Error>>],
    i: usize,
    r: Result<AnyRevealed, Error>,
) {
    if let Some(slot) = results.get_mut(i) {
        *slot = Some(r);
    }
}

/// The results in order, counting the opened fields.
fn finish(results: Vec<Option<Result<AnyRevealed, Error>>>) -> RevealedRecord {
    let results: Vec<Result<AnyRevealed, Error>> = results
        .into_iter()
        // Every field has a result once opening ends; a missing one is reported, never opened.
        .map(|r| r.unwrap_or(Err(Error::Integrity)))
        .collect();
    let opened = results.iter().filter(|r| r.is_ok()).count();
    RevealedRecord { results, opened }
}

/// Whether `env` opens under the same key as `rep`: version, kind, purpose, subject key and
/// epoch salt. (Each field's own commitment is checked when it is opened.)
fn same_key(env: &Parsed<'_>, rep: &Parsed<'_>) -> bool {
    env.key_version == rep.key_version
        && env.kind == rep.kind
        && env.purpose == rep.purpose
        && env.subject_key_id == rep.subject_key_id
        && env.salt == rep.salt
}

/// Authenticates and decrypts one field under `key` and `ctx`, into its runtime-typed value.
fn open_field(key: &EpochKey, env: &Parsed<'_>, ctx: &[u8]) -> Result<AnyRevealed, Error> {
    if !key.commits_to(env.commitment) {
        return Err(Error::Integrity);
    }
    let opened = decrypt(key, env, ctx)?;
    Ok(AnyRevealed::from_canonical(env.kind, opened.bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::NullSink;
    use crate::keys::Keyring;
    use crate::policy::AllowList;

    fn ok<T, E: fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_field_without_a_result_is_reported_never_opened() {
        let rec = finish(vec![
            None,
            Some(Err(Error::Denied {
                reason: DenyReason::NotPermitted,
            })),
        ]);
        assert_eq!((rec.len(), rec.opened()), (2, 0));
        assert!(matches!(rec.get(0), Some(Err(Error::Integrity))));
        assert_eq!(
            format!("{rec:?}"),
            "RevealedRecord { fields: 2, opened: 0 }"
        );
    }

    /// Fields share an opening key only with the same version, kind, purpose and epoch salt.
    #[test]
    fn same_key_needs_every_part_of_the_key_identity() {
        let guard = ok(Guard::builder()
            .keyring(ok(Keyring::generate()))
            .policy(AllowList::new())
            .audit(NullSink)
            .build());
        let ctx = Context::new().row("1");
        let (s, m) = (
            ok(PurposeId::new("service")),
            ok(PurposeId::new("marketing")),
        );
        let email = ok(AnyValue::parse(FieldKind::Email, "a@example.com"));
        let phone = ok(AnyValue::parse(FieldKind::PhoneNumber, "+8613800138000"));
        let out: Vec<AnySealed> = ok(guard.seal_record(
            [(&email, &s), (&email, &s), (&phone, &s), (&email, &m)],
            &ctx,
        ))
        .into_iter()
        .map(ok)
        .collect();
        let envs: Vec<Parsed<'_>> = out.iter().map(AnySealed::parsed).collect();
        assert!(same_key(&envs[0], &envs[1]), "one thread's epoch");
        assert!(!same_key(&envs[0], &envs[2]), "kind");
        assert!(!same_key(&envs[0], &envs[3]), "purpose");
        ok(guard.keyring().rotate());
        let later = ok(guard.seal_any(&email, &s, &ctx));
        assert!(!same_key(&envs[0], &later.parsed()), "version");
    }

    /// With the epoch salts equal (they are random, but nothing may rest on that), a
    /// difference in version, kind, purpose or subject key alone still means another key.
    #[test]
    fn same_key_does_not_rest_on_the_salt_alone() {
        use crate::crypto::envelope::{self, envelope_with_key_identity as envelope_of};
        use crate::keys::KeyVersion;
        let v = |n| KeyVersion::new(n).unwrap_or_else(|| panic!("version {n}"));
        let salt = [9u8; 16];
        let base = envelope_of(FieldKind::Text, "service", v(1), None, &salt, 1);
        let others = [
            envelope_of(FieldKind::Text, "service", v(2), None, &salt, 1),
            envelope_of(FieldKind::Email, "service", v(1), None, &salt, 1),
            envelope_of(FieldKind::Text, "marketing", v(1), None, &salt, 1),
            envelope_of(FieldKind::Text, "service", v(1), Some(&[5; 16]), &salt, 1),
            envelope_of(FieldKind::Text, "service", v(1), None, &[8; 16], 1),
        ];
        let rep = ok(envelope::parse(&base));
        assert!(same_key(&ok(envelope::parse(&base)), &rep));
        for (i, other) in others.iter().enumerate() {
            let env = ok(envelope::parse(other));
            assert!(!same_key(&env, &rep), "difference {i}");
            assert!(!same_key(&rep, &env), "difference {i}, reversed");
        }
    }

    /// Each field's commitment is compared with the key's before any AES-GCM work: a field
    /// whose tag verifies under the key but whose header names another commitment is refused.
    #[test]
    fn a_field_committing_to_another_key_is_refused_even_with_a_valid_tag() {
        use crate::crypto::aead::NONCE_LEN;
        use crate::crypto::envelope::{self, HeaderFields};
        let ring = ok(Keyring::generate());
        let ctx = [0u8]; // the empty context's encoding
        let refused = ring.with_sealing_key(
            "service",
            FieldKind::Text,
            &crate::random::SystemRandom,
            |version, key| {
                let nonce = [7u8; NONCE_LEN];
                let mut wrong = *key.commitment();
                wrong[0] ^= 1;
                let mut out = Vec::new();
                envelope::write_header(
                    &mut out,
                    &HeaderFields {
                        kind: FieldKind::Text,
                        purpose: "service",
                        key_version: version,
                        sealed_at: 1,
                        subject_key_id: None,
                        salt: key.salt(),
                        commitment: &wrong,
                        nonce: &nonce,
                    },
                );
                let mut aad = out.clone();
                aad.extend_from_slice(&ctx);
                let mut body = b"hello".to_vec();
                let tag = key
                    .seal_in_place(&nonce, &aad, &mut body)
                    .map_err(|()| Error::Integrity)?;
                out.extend_from_slice(&body);
                out.extend_from_slice(&tag);
                let env = envelope::parse(&out)?;
                Ok::<_, Error>(matches!(open_field(key, &env, &ctx), Err(Error::Integrity)))
            },
        );
        assert!(matches!(refused, Ok(Ok(true))));
    }
}
