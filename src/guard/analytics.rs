//! Analytics: anonymize a sealed value (action `anonymize`) and compute blind-index terms
//! (action `index`), on the decision and audit path of reveal.

use std::panic::Location;

use super::Guard;
use super::reveal::OpenRequest;
use crate::anonymize::{
    Anonymization, Anonymized, Pseudonymizer, age_band, birth_year, ip_network, region,
};
use crate::any::AnySealed;
use crate::audit::{AuditAction, AuditEvent, Detail, FailureKind, Outcome};
use crate::context::Context;
use crate::error::Error;
use crate::field::{Field, FieldKind, IdNumber, IpAddress};
use crate::index::{BlindIndex, IndexQuery, IndexTerm};
use crate::policy::{AccessRequest, Accessor, Action, Decision};
use crate::purpose::{Purpose, PurposeId};
use crate::sealed::Sealed;
use crate::telemetry::{Op, OpSpan};

impl Guard {
    /// The anonymized form of `sealed` (a keyed pseudonym, an IP network, a birth year, an age
    /// band or a region), for an accessor allowed to [`Action::Anonymize`]. The plaintext never
    /// leaves the crate.
    ///
    /// The same path as [`Guard::reveal`]: policy decision for `anonymize`, then consent,
    /// retention and residency, then the audit record, and only then decryption; a failure after
    /// the decision leaves a `failed:*` record. Pseudonyms are computed under the active key
    /// version's pseudonym key for the value's purpose; age bands on the guard clock's date.
    ///
    /// # Errors
    /// [`Error::Anonymize`] if `how` does not apply to the kind (checked first: nothing is
    /// decided, recorded or decrypted); otherwise as [`Guard::reveal`].
    ///
    /// # Security
    /// A pseudonym is stable within the purpose and links every record of one value there;
    /// treat it as personal data. See SECURITY.md, "Anonymization".
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fieldseal::*;
    /// use fieldseal::builtin::Improvement;
    /// let job = Role::new("analytics_job");
    /// let guard = Guard::builder()
    ///     .keyring(Keyring::generate()?)
    ///     .policy(AllowList::new().allow::<Improvement>(job.clone(), FieldKind::IpAddress, Action::Anonymize))
    ///     .audit(NullSink)
    ///     .build()?;
    /// let ctx = Context::new().table("visits").row("1");
    /// let ip: Sealed<IpAddress, Improvement> = guard.seal(&IpAddress::parse("203.0.113.77")?, &ctx)?;
    /// let job = Accessor::new("nightly", [job]);
    /// let net = guard.anonymize(&job, &ip, &ctx, Anonymization::IpNetwork)?;
    /// assert_eq!(net.to_string(), "203.0.113.0/24");
    /// assert!(matches!(guard.reveal(&job, &ip, &ctx), Err(Error::Denied { .. })));
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    #[track_caller]
    pub fn anonymize<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
        how: Anonymization,
    ) -> Result<Anonymized, Error> {
        let site = Location::caller();
        how.check(F::KIND)?;
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Anonymize,
            site,
        };
        self.open_traced(Op::Anonymize, &req, |plain| {
            self.anonymized(F::KIND, &purpose, plain, how)
        })
    }

    /// [`Guard::anonymize`] for an envelope whose kind and purpose are read from its header.
    ///
    /// # Errors
    /// As [`Guard::anonymize`].
    #[track_caller]
    pub fn anonymize_any(
        &self,
        accessor: &Accessor,
        sealed: &AnySealed,
        context: &Context,
        how: Anonymization,
    ) -> Result<Anonymized, Error> {
        let site = Location::caller();
        how.check(sealed.kind())?;
        let env = sealed.parsed();
        let purpose = sealed.purpose();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Anonymize,
            site,
        };
        self.open_traced(Op::Anonymize, &req, |plain| {
            self.anonymized(env.kind, &purpose, plain, how)
        })
    }

    /// The anonymized form of canonical bytes of `kind` (already decided and recorded).
    fn anonymized(
        &self,
        kind: FieldKind,
        purpose: &PurposeId,
        plain: &[u8],
        how: Anonymization,
    ) -> Result<Anonymized, Error> {
        Ok(match how {
            Anonymization::Pseudonym => {
                // Only values that decode as their kind get a pseudonym: one canonical form per
                // value, so equal values always agree.
                drop(crate::any::AnyRevealed::from_canonical(kind, plain)?);
                let (version, prk) = self.keyring.active_prk()?;
                Anonymized::Pseudonym(
                    Pseudonymizer::new(version, &prk, purpose.as_str()).pseudonym(kind, plain),
                )
            }
            Anonymization::IpNetwork => {
                Anonymized::IpNetwork(ip_network(&IpAddress::from_canonical(plain)?))
            }
            Anonymization::BirthYear => {
                Anonymized::BirthYear(birth_year(&IdNumber::from_canonical(plain)?))
            }
            Anonymization::AgeBand { width } => Anonymized::AgeBand(age_band(
                &IdNumber::from_canonical(plain)?,
                self.clock.now(),
                width,
            )?),
            Anonymization::Region(level) => {
                Anonymized::Region(region(&IdNumber::from_canonical(plain)?, level))
            }
        })
    }

    /// The blind-index term of `value` under the active key version, to store next to its
    /// sealed form (action [`Action::Index`], decided and audited like a reveal, with the value
    /// counted as sealed now for the retention check).
    ///
    /// # Errors
    /// [`Error::Denied`], [`Error::Audit`], [`Error::Context`] as for [`Guard::reveal`];
    /// [`Error::Key`] if the active key is unavailable (recorded as `failed:key`).
    ///
    /// ```
    /// use fieldseal::*;
    /// use fieldseal::builtin::Service;
    /// let svc = Role::new("login_service");
    /// let guard = Guard::builder()
    ///     .keyring(Keyring::generate()?)
    ///     .policy(AllowList::new().allow::<Service>(svc.clone(), FieldKind::Email, Action::Index))
    ///     .audit(NullSink)
    ///     .build()?;
    /// let login = BlindIndex::<Email, Service>::builder("login")
    ///     .expected_rows(1_000_000).distinct_values(1_000_000).build()?;
    /// let me = Accessor::new("auth", [svc]);
    /// let ctx = Context::new().table("users");
    /// let stored = guard.blind_index(&me, &Email::parse("Zhang.San@Example.com")?, &ctx, &login)?;
    /// let query = guard.index_query(&me, &Email::parse("Zhang.San@example.COM")?, &ctx, &login)?;
    /// assert!(query.matches(&stored));
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    #[track_caller]
    pub fn blind_index<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        value: &F,
        context: &Context,
        index: &BlindIndex<F, P>,
    ) -> Result<IndexTerm, Error> {
        let site = Location::caller();
        let purpose = PurposeId::of::<P>();
        let op = OpSpan::start(Op::Index, P::LABEL, Some(F::KIND));
        op.run(|| {
            let mut event = self.decide_fresh(accessor, &purpose, F::KIND, context, site)?;
            let term = self.keyring.active_prk().map(|(version, prk)| {
                let plain = value.canonical_bytes();
                index.term(version, &prk, &plain)
            });
            self.record_failure(&term, &mut event);
            term
        })
    }

    /// The terms of `value` under every key version that still opens (active first), for an
    /// equality query that must find rows indexed before and after a rotation. One decision
    /// and one audit record (action [`Action::Index`]), as for [`Guard::blind_index`].
    ///
    /// # Errors
    /// As [`Guard::blind_index`].
    #[track_caller]
    pub fn index_query<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        value: &F,
        context: &Context,
        index: &BlindIndex<F, P>,
    ) -> Result<IndexQuery, Error> {
        let site = Location::caller();
        let purpose = PurposeId::of::<P>();
        let op = OpSpan::start(Op::Index, P::LABEL, Some(F::KIND));
        op.run(|| self.index_query_traced(accessor, &purpose, value, context, index, site))
    }

    fn index_query_traced<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        purpose: &PurposeId,
        value: &F,
        context: &Context,
        index: &BlindIndex<F, P>,
        site: &'static Location<'static>,
    ) -> Result<IndexQuery, Error> {
        let mut event = self.decide_fresh(accessor, purpose, F::KIND, context, site)?;
        let plain = value.canonical_bytes();
        let terms: Vec<IndexTerm> = self
            .keyring
            .live_prks()
            .iter()
            .map(|(version, prk)| index.term(*version, prk, &plain))
            .collect();
        let result = if terms.is_empty() {
            Err(crate::error::KeyError::NoActiveKey.into())
        } else {
            Ok(IndexQuery::new(terms))
        };
        self.record_failure(&result, &mut event);
        result
    }

    /// The blind-index term of a sealed value under the active key version (building an index
    /// over stored values, or re-indexing them after a rotation): decided for
    /// [`Action::Index`], recorded, then decrypted inside the crate, as
    /// [`Guard::reveal`] does.
    ///
    /// # Errors
    /// As [`Guard::reveal`].
    #[track_caller]
    pub fn blind_index_sealed<F: Field, P: Purpose>(
        &self,
        accessor: &Accessor,
        sealed: &Sealed<F, P>,
        context: &Context,
        index: &BlindIndex<F, P>,
    ) -> Result<IndexTerm, Error> {
        let site = Location::caller();
        let env = sealed.parsed();
        let purpose = PurposeId::of::<P>();
        let req = OpenRequest {
            accessor,
            env: &env,
            purpose: &purpose,
            context,
            action: Action::Index,
            site,
        };
        self.open_traced(Op::Index, &req, |plain| {
            // One canonical form per value: terms of equal values always agree.
            F::from_canonical(plain)?;
            let (version, prk) = self.keyring.active_prk()?;
            Ok(index.term(version, &prk, plain))
        })
    }

    /// Decides and records an [`Action::Index`] request on a value the caller holds (not a
    /// sealed one): the policy, then consent, retention (the value counts as sealed now) and
    /// residency, then the record. Returns the recorded event, for a `failed:*` record later.
    fn decide_fresh<'a>(
        &self,
        accessor: &'a Accessor,
        purpose: &'a PurposeId,
        kind: FieldKind,
        context: &'a Context,
        site: &'static Location<'static>,
    ) -> Result<AuditEvent<'a>, Error> {
        let now = self.clock.now();
        let verdict = self.policy.verdict(&AccessRequest {
            accessor,
            purpose: purpose.as_str(),
            kind,
            action: Action::Index,
        });
        let mut decision = verdict.decision;
        if let (Decision::Allow, Some(rules)) = (decision, verdict.rules)
            && let Err((reason, _)) =
                self.check_rules(&rules, accessor, purpose.as_str(), now, context)
        {
            decision = Decision::Deny(reason);
        }
        let ctx = context.encoded();
        let event = AuditEvent {
            time: now,
            accessor,
            purpose: Some(purpose),
            kind: Some(kind),
            action: AuditAction::Access(Action::Index),
            outcome: match (decision, ctx.is_ok()) {
                (Decision::Deny(r), _) => Outcome::Denied(r),
                (Decision::Allow, false) => Outcome::Failed(FailureKind::Context),
                (Decision::Allow, true) => Outcome::Allowed,
            },
            call_site: site,
            key_version: self.keyring.active_version(),
            sealed_at: now,
            policy_version: verdict.policy_version,
            context,
            count: None,
            detail: Detail::NONE,
        };
        self.commit(decision, &event, ctx)?;
        Ok(event)
    }

    /// A best-effort `failed:*` record for an allowed request whose computation failed.
    fn record_failure<T>(&self, result: &Result<T, Error>, event: &mut AuditEvent<'_>) {
        if let Err(e) = result {
            event.outcome = Outcome::Failed(super::reveal::failure_kind(e));
            let _ = self.audit.record(event);
        }
    }
}
