//! Access decisions: who may do what with which field kind, for which purpose.
//!
//! [`AccessPolicy`] is the hook the [`Guard`](crate::Guard) asks before every reveal or mask.
//! [`AllowList`] is a simple exact-match implementation for tests and small services;
//! [`ManifestPolicy`] compiles a policy manifest (TOML) with purposes, roles and inheritance.

use std::fmt;
use std::sync::Arc;

use crate::field::FieldKind;
use crate::purpose::{Purpose, PurposeId};

#[cfg(feature = "casbin")]
pub(crate) mod casbin;
pub(crate) mod consent;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod inherit;
pub(crate) mod manifest;
pub(crate) mod table;

#[cfg(feature = "casbin")]
pub use self::casbin::CasbinPolicy;
pub use consent::{ConsentFuture, ConsentRecord, ConsentRegistry, ConsentScope, MemoryConsent};
pub use engine::{Check, Engine, Explanation, GrantRef, ManifestPolicy};
pub use error::{LintError, ManifestError, ParseError};
pub use manifest::{
    CrossBorderRule, ExpiryRule, LegalBasis, MANIFEST_VERSION, MAX_EXPANDED_GRANTS,
    MAX_INHERITANCE_DEPTH, MAX_MANIFEST_BYTES, MAX_ROLES, Manifest, PurposeRules, RecipientBasis,
    RecipientRules, Region, RoleSpec,
};

/// The identity of whoever asks to open data (a user, a service, a job).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PrincipalId(Arc<str>);

impl PrincipalId {
    /// A principal identifier. Principals are staff or services, not data subjects; the id is
    /// written to the audit log.
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }
    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrincipalId({})", self.0)
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role granted to principals (e.g. `support_agent`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(Arc<str>);

impl Role {
    /// A role name.
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }
    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Role({})", self.0)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who is asking: a principal and the roles it holds for this request.
///
/// ```
/// use fieldseal::{Accessor, Role};
/// let a = Accessor::new("alice", [Role::new("support_agent")]);
/// assert_eq!(a.principal().as_str(), "alice");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Accessor {
    principal: PrincipalId,
    roles: Arc<[Role]>,
    region: Option<Arc<str>>,
}

impl Accessor {
    /// An accessor with the given roles, in the home region.
    pub fn new(principal: &str, roles: impl IntoIterator<Item = Role>) -> Self {
        Self {
            principal: PrincipalId::new(principal),
            roles: roles.into_iter().collect(),
            region: None,
        }
    }

    /// The region the accessor works from (e.g. `CN`, `SG`). Without one, the accessor counts as
    /// being in the policy's home region; with one that differs from it, the policy's
    /// cross-border rule applies.
    ///
    /// ```
    /// use fieldseal::{Accessor, Role};
    /// let a = Accessor::new("carol", [Role::new("support_agent")]).in_region("SG");
    /// assert_eq!(a.region(), Some("SG"));
    /// ```
    #[must_use]
    pub fn in_region(mut self, region: &str) -> Self {
        self.region = Some(Arc::from(region));
        self
    }

    /// The accessor's region, if set.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
    /// The principal.
    pub fn principal(&self) -> &PrincipalId {
        &self.principal
    }
    /// The roles held for this request.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }
    pub(crate) fn roles_arc(&self) -> &Arc<[Role]> {
        &self.roles
    }
}

impl fmt::Debug for Accessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accessor")
            .field("principal", &self.principal)
            .field("roles", &self.roles)
            .field("region", &self.region)
            .finish()
    }
}

/// What the accessor wants to do with a sealed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Action {
    /// Obtain the full plaintext.
    Reveal,
    /// Obtain only the masked rendering (weaker than reveal).
    Mask,
    /// Compute a blind index for equality search.
    Index,
    /// Re-encrypt under a newer key version.
    Rewrap,
    /// Hand the value to a third party.
    Share,
    /// Include the value in a data-subject access export.
    Export,
    /// Erase the value (destroy its subject key).
    Erase,
    /// Re-seal the value for another purpose ([`Guard::repurpose`](crate::Guard::repurpose));
    /// decided for the purpose it leaves and for the purpose it enters.
    Repurpose,
    /// Obtain only an anonymized form (a keyed pseudonym or a generalization such as an IP
    /// network or a birth year) through [`Guard::anonymize`](crate::Guard::anonymize).
    Anonymize,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 9] = [
        Action::Reveal,
        Action::Mask,
        Action::Index,
        Action::Rewrap,
        Action::Share,
        Action::Export,
        Action::Erase,
        Action::Repurpose,
        Action::Anonymize,
    ];

    /// Stable lower-case label (used in policies and audit records).
    pub const fn label(self) -> &'static str {
        match self {
            Action::Reveal => "reveal",
            Action::Mask => "mask",
            Action::Index => "index",
            Action::Rewrap => "rewrap",
            Action::Share => "share",
            Action::Export => "export",
            Action::Erase => "erase",
            Action::Repurpose => "repurpose",
            Action::Anonymize => "anonymize",
        }
    }

    /// The action with this label.
    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.label() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One access request, as presented to an [`AccessPolicy`].
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Who is asking.
    pub accessor: &'a Accessor,
    /// The purpose the value was sealed for (and is being opened for).
    pub purpose: &'a str,
    /// The field kind.
    pub kind: FieldKind,
    /// The action.
    pub action: Action,
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// No rule grants any of the accessor's roles this action on this kind for this purpose.
    NotPermitted,
    /// The purpose is consent-based and the subject's consent is not on record (never given,
    /// withdrawn, or no subject bound in the context).
    ConsentMissing,
    /// The purpose's retention period has passed since the value was sealed.
    Expired,
    /// The accessor is outside the home region and the cross-border rule refuses (no
    /// cross-border consent from the subject, or transfers denied outright).
    CrossBorder,
    /// The policy does not collect this field kind for this purpose, so a value of it may not
    /// be sealed for the purpose (with a [`ManifestPolicy`]: no data category lists both).
    /// Returned by [`Guard::seal`](crate::Guard::seal) before anything is encrypted.
    PurposeNotAllowedForKind,
    /// A data-subject request ([`Guard::export_subject`](crate::Guard::export_subject),
    /// correction, erasure, cancellation) came without a valid proof
    /// ([`Verified`](crate::Verified)) that the requester is that subject: the proof names
    /// another subject or has expired, or the verifier refused the evidence.
    IdentityNotVerified,
    /// The recipient of a share is not defined by the policy, or may not receive data for
    /// this purpose.
    RecipientNotAllowed,
}

impl DenyReason {
    /// Every reason.
    pub const ALL: [DenyReason; 7] = [
        DenyReason::NotPermitted,
        DenyReason::ConsentMissing,
        DenyReason::Expired,
        DenyReason::CrossBorder,
        DenyReason::PurposeNotAllowedForKind,
        DenyReason::IdentityNotVerified,
        DenyReason::RecipientNotAllowed,
    ];

    /// Stable lower-case label (used in audit records).
    pub const fn label(self) -> &'static str {
        match self {
            DenyReason::NotPermitted => "not_permitted",
            DenyReason::ConsentMissing => "consent_missing",
            DenyReason::Expired => "expired",
            DenyReason::CrossBorder => "cross_border",
            DenyReason::PurposeNotAllowedForKind => "purpose_not_allowed_for_kind",
            DenyReason::IdentityNotVerified => "identity_not_verified",
            DenyReason::RecipientNotAllowed => "recipient_not_allowed",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::NotPermitted => "no rule permits this role, purpose, kind and action",
            DenyReason::ConsentMissing => "the subject's consent for this purpose is not on record",
            DenyReason::Expired => "the retention period for this purpose has passed",
            DenyReason::CrossBorder => "cross-border access without the subject's consent",
            DenyReason::PurposeNotAllowedForKind => {
                "the policy does not collect this field kind for this purpose"
            }
            DenyReason::IdentityNotVerified => "the requester is not verified as the data subject",
            DenyReason::RecipientNotAllowed => {
                "the policy does not let this recipient receive data for this purpose"
            }
        })
    }
}

/// The outcome of an access decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "SECURITY WARNING: an access decision must be enforced"]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// The request must be refused.
    Deny(DenyReason),
}

/// What a policy says about one request: the decision, the purpose's rules and the policy
/// version that produced both.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Verdict {
    /// Allow or deny.
    pub decision: Decision,
    /// Consent, retention and residency rules of the purpose, if the policy defines them.
    pub rules: Option<PurposeRules>,
    /// Version of the policy that decided (0: unversioned).
    pub policy_version: u64,
}

/// Decides whether a request may proceed. Implementations must be cheap: the guard asks on every
/// reveal.
pub trait AccessPolicy: Send + Sync + fmt::Debug {
    /// Decides one request.
    fn decide(&self, request: &AccessRequest<'_>) -> Decision;

    /// The consent, retention and residency rules of `purpose`, if this policy defines them.
    /// The guard enforces them after an `Allow` decision. The default defines none.
    fn purpose_rules(&self, purpose: &str) -> Option<PurposeRules> {
        let _ = purpose;
        None
    }

    /// [`AccessPolicy::decide`] and [`AccessPolicy::purpose_rules`] in one call (the guard's hot
    /// path; implementations may answer both from one cache lookup).
    fn decide_with_rules(&self, request: &AccessRequest<'_>) -> (Decision, Option<PurposeRules>) {
        (self.decide(request), self.purpose_rules(request.purpose))
    }

    /// The version of the policy in force, recorded in audit events (0: unversioned). A policy
    /// that can be reloaded should change it on every reload.
    fn policy_version(&self) -> u64 {
        0
    }

    /// Decision, purpose rules and the version of the policy that produced them, taken
    /// together (the guard's hot path). Reloadable policies should override it so that the
    /// version is the one that decided, even when a reload races the request.
    fn verdict(&self, request: &AccessRequest<'_>) -> Verdict {
        let (decision, rules) = self.decide_with_rules(request);
        Verdict {
            decision,
            rules,
            policy_version: self.policy_version(),
        }
    }

    /// Whether a value of `kind` may be sealed for `purpose` at all: the policy's data
    /// minimization rule, asked by [`Guard::seal`](crate::Guard::seal) before anything is
    /// encrypted (sealing needs no accessor, so no role is involved). A denial should carry
    /// [`DenyReason::PurposeNotAllowedForKind`].
    ///
    /// The default allows every kind for every purpose, as policies without such a rule (for
    /// example [`AllowList`]) did before the method existed. Implementations must be cheap and
    /// must not allocate: the guard asks on every seal.
    fn decide_seal(&self, purpose: &str, kind: FieldKind) -> Decision {
        let _ = (purpose, kind);
        Decision::Allow
    }

    /// The sharing rules of `recipient` (its basis and the purposes it may receive), asked by
    /// [`Guard::share`](crate::Guard::share) after the role grant for
    /// [`Action::Share`]. The default defines no recipients, so every share is refused with
    /// [`DenyReason::RecipientNotAllowed`]. [`ManifestPolicy`] answers from the manifest's
    /// `[recipients.<name>]` tables.
    fn recipient_rules(&self, recipient: &str) -> Option<RecipientRules> {
        let _ = recipient;
        None
    }

    /// Why `request` is allowed or denied. The default reports the decision without a rule.
    fn explain(&self, request: &AccessRequest<'_>) -> Explanation {
        let decision = self.decide(request);
        Explanation {
            decision,
            grant: None,
            failed: matches!(decision, Decision::Deny(_)).then_some(Check::Grant),
        }
    }
}

/// An exact-match allow list: `(role, purpose, kind, action)` grants; everything else denied.
///
/// ```
/// use fieldseal::{Action, AllowList, FieldKind, Role, builtin::Service};
/// let policy = AllowList::new()
///     .allow::<Service>(Role::new("support_agent"), FieldKind::PhoneNumber, Action::Reveal)
///     .allow::<Service>(Role::new("support_agent"), FieldKind::Email, Action::Mask);
/// # let _ = policy;
/// ```
#[derive(Debug, Default, Clone)]
pub struct AllowList {
    /// Unique grants. A vector: lists are short, and a scan compares kind and action (one byte
    /// each) before any string, with no hashing or allocation per decision.
    grants: Vec<(FieldKind, Action, PurposeId, Role)>,
}

impl AllowList {
    /// An empty list: denies everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `role` the `action` on `kind` for purpose `P`.
    #[must_use]
    pub fn allow<P: Purpose>(self, role: Role, kind: FieldKind, action: Action) -> Self {
        self.allow_dyn(role, PurposeId::of::<P>(), kind, action)
    }

    /// Grants `role` the `action` on `kind` for a runtime purpose.
    #[must_use]
    pub fn allow_dyn(
        mut self,
        role: Role,
        purpose: PurposeId,
        kind: FieldKind,
        action: Action,
    ) -> Self {
        let grant = (kind, action, purpose, role);
        if !self.grants.contains(&grant) {
            self.grants.push(grant);
        }
        self
    }

    fn grants(&self, role: &Role, purpose: &str, kind: FieldKind, action: Action) -> bool {
        self.grants.iter().any(|(k, a, p, r)| {
            *k == kind && *a == action && p.as_str() == purpose && r.as_str() == role.as_str()
        })
    }
}

impl AccessPolicy for AllowList {
    fn decide(&self, req: &AccessRequest<'_>) -> Decision {
        if req
            .accessor
            .roles()
            .iter()
            .any(|r| self.grants(r, req.purpose, req.kind, req.action))
        {
            Decision::Allow
        } else {
            Decision::Deny(DenyReason::NotPermitted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purpose::builtin::{Marketing, Service};

    #[test]
    fn allow_list_is_exact() {
        let p = AllowList::new().allow::<Service>(
            Role::new("agent"),
            FieldKind::PhoneNumber,
            Action::Reveal,
        );
        let agent = Accessor::new("a", [Role::new("other"), Role::new("agent")]);
        let other = Accessor::new("b", [Role::new("other")]);
        let req = |acc, purpose, kind, action| AccessRequest {
            accessor: acc,
            purpose,
            kind,
            action,
        };
        assert_eq!(
            p.decide(&req(
                &agent,
                "service",
                FieldKind::PhoneNumber,
                Action::Reveal
            )),
            Decision::Allow
        );
        let denied = Decision::Deny(DenyReason::NotPermitted);
        assert_eq!(
            p.decide(&req(
                &other,
                "service",
                FieldKind::PhoneNumber,
                Action::Reveal
            )),
            denied
        );
        assert_eq!(
            p.decide(&req(
                &agent,
                Marketing::LABEL,
                FieldKind::PhoneNumber,
                Action::Reveal
            )),
            denied
        );
        assert_eq!(
            p.decide(&req(&agent, "service", FieldKind::Email, Action::Reveal)),
            denied
        );
        assert_eq!(
            p.decide(&req(
                &agent,
                "service",
                FieldKind::PhoneNumber,
                Action::Mask
            )),
            denied
        );
    }

    #[test]
    fn action_labels_roundtrip() {
        for a in Action::ALL {
            assert_eq!(Action::from_label(a.label()), Some(a));
        }
        assert_eq!(Action::from_label("nope"), None);
    }
}
