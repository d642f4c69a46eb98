//! Sample audit events for tests, benchmarks, fuzzing and the crash-test child process.

use std::panic::Location;

use crate::audit::{AuditAction, AuditEvent, Detail, Outcome};
use crate::context::{Context, SubjectId};
use crate::field::FieldKind;
use crate::keys::KeyVersion;
use crate::policy::{Accessor, Action, DenyReason, Role};
use crate::purpose::PurposeId;

/// Calls `f` with a synthetic event number `n` (time `n`, principal `p<n % 7>`, outcome
/// alternating allowed/denied), bound to a context with the given subject part, if any.
pub fn with_sample_event<R>(
    n: u64,
    subject: Option<&str>,
    f: impl FnOnce(&AuditEvent<'_>) -> R,
) -> R {
    let accessor = Accessor::new(&format!("p{}", n % 7), [Role::new("support_agent")]);
    let purpose =
        PurposeId::new("service").unwrap_or_else(|_| unreachable!("a valid static purpose label"));
    let mut ctx = Context::new().table("users").row(&n.to_string());
    if let Some(s) = subject {
        ctx = ctx.subject(&SubjectId::new(s));
    }
    let event = AuditEvent {
        time: 1_700_000_000 + n,
        accessor: &accessor,
        purpose: Some(&purpose),
        kind: Some(FieldKind::PhoneNumber),
        action: AuditAction::Access(Action::Reveal),
        outcome: if n % 5 == 4 {
            Outcome::Denied(DenyReason::NotPermitted)
        } else {
            Outcome::Allowed
        },
        call_site: Location::caller(),
        key_version: KeyVersion::new(1).unwrap_or_else(|| unreachable!("1 is non-zero")),
        sealed_at: 1_600_000_000,
        policy_version: 1 + n % 3,
        context: &ctx,
        count: None,
        detail: Detail::NONE,
    };
    f(&event)
}
