//! The casbin engine (feature `casbin`): a manifest compiled into an RBAC-with-domains model, or
//! a caller's own model and policy text.

use std::fmt;

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

use crate::error::EngineError;
use crate::policy::manifest::Manifest;
use crate::policy::{AccessPolicy, AccessRequest, Action, Decision, DenyReason};

/// RBAC with domains, purpose as the domain. `g()` comes last in the matcher: the cheap string
/// comparisons reject most policy lines before the role graph is consulted.
pub(crate) const MANIFEST_MODEL: &str = "\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.dom == p.dom && r.obj == p.obj && r.act == p.act && g(r.sub, p.sub, r.dom)
";

/// An [`AccessPolicy`] evaluated by casbin.
///
/// The request is `(role, purpose, kind, action)` with labels as strings (`support_agent`,
/// `service`, `phone_number`, `reveal`), asked once per role the accessor holds; any `true`
/// allows. Construction blocks on casbin's asynchronous loader, so the API stays synchronous.
///
/// ```
/// use fieldseal::*;
/// let model = "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\n\
///     p = sub, dom, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n\
///     [matchers]\nm = r.sub == p.sub && r.dom == p.dom && r.obj == p.obj && r.act == p.act\n";
/// let policy = CasbinPolicy::from_text(model, "p, agent, service, email, reveal")?;
/// let a = Accessor::new("alice", [Role::new("agent")]);
/// let req = AccessRequest {
///     accessor: &a, purpose: "service", kind: FieldKind::Email, action: Action::Reveal,
/// };
/// assert_eq!(policy.decide(&req), Decision::Allow);
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct CasbinPolicy {
    enforcer: Enforcer,
    lines: usize,
}

impl fmt::Debug for CasbinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CasbinPolicy")
            .field("policy_lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl CasbinPolicy {
    /// A policy from a casbin model (`.conf` text) and policy lines (`.csv` text). The model's
    /// request must have four parts: role, purpose, kind, action.
    ///
    /// # Errors
    /// [`Error::Engine`](crate::Error::Engine) if casbin rejects the model or policy.
    pub fn from_text(model: &str, policy: &str) -> Result<Self, crate::Error> {
        let lines = policy.lines().filter(|l| !l.trim().is_empty()).count();
        let enforcer = pollster::block_on(async {
            let m = DefaultModel::from_str(model).await?;
            Enforcer::new(m, StringAdapter::new(policy)).await
        })
        .map_err(EngineError::new)?;
        Ok(Self { enforcer, lines })
    }

    /// The manifest compiled into [`MANIFEST_MODEL`] lines: a `p` line per grant (plus a `mask`
    /// line per `reveal` grant: reveal implies mask) and a `g` line per inheritance edge in every
    /// purpose's domain.
    pub(crate) fn from_manifest(m: &Manifest) -> Result<Self, crate::Error> {
        Self::from_text(MANIFEST_MODEL, &manifest_policy_text(m))
    }

    /// Asks casbin about one role.
    ///
    /// # Errors
    /// [`Error::Engine`](crate::Error::Engine) if evaluation fails.
    pub fn enforce(
        &self,
        role: &str,
        purpose: &str,
        kind: &str,
        action: &str,
    ) -> Result<bool, crate::Error> {
        self.enforcer
            .enforce((role, purpose, kind, action))
            .map_err(|e| EngineError::new(e).into())
    }
}

/// The casbin policy lines for a manifest.
pub(crate) fn manifest_policy_text(m: &Manifest) -> String {
    let mut out = String::new();
    for (role, spec) in &m.roles {
        for (purpose, actions) in &spec.grants {
            for (action, kinds) in actions {
                for k in kinds {
                    out.push_str(&format!("p, {role}, {purpose}, {k}, {action}\n"));
                    if *action == Action::Reveal
                        && !actions.get(&Action::Mask).is_some_and(|mk| mk.contains(k))
                    {
                        out.push_str(&format!("p, {role}, {purpose}, {k}, mask\n"));
                    }
                }
            }
        }
        for parent in &spec.inherits {
            for purpose in m.purposes.keys() {
                out.push_str(&format!("g, {role}, {parent}, {purpose}\n"));
            }
        }
    }
    out
}

impl AccessPolicy for CasbinPolicy {
    fn decide(&self, req: &AccessRequest<'_>) -> Decision {
        let kind = req.kind.label();
        let action = req.action.label();
        // An evaluation error denies: fail closed.
        let allowed = req.accessor.roles().iter().any(|r| {
            self.enforcer
                .enforce((r.as_str(), req.purpose, kind, action))
                .unwrap_or(false)
        });
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny(DenyReason::NotPermitted)
        }
    }
}
