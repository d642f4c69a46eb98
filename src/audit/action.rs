//! What an audit record says was done: an access decided by the policy, a step of the data's
//! lifecycle, or an event the application records itself.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, FormatError};
use crate::policy::Action;

/// The action an [`AuditEvent`](crate::AuditEvent) records.
///
/// Its [`label`](AuditAction::label) is what a stored record's `action` field holds: the
/// [`Action`] label for accesses, a dotted label for lifecycle steps, and `app.<name>` for
/// application events, so the three never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// An access decided by the access policy (`reveal`, `mask`, `rewrap`, `erase`, …).
    Access(Action),
    /// A subject's consent was recorded (`consent.grant`).
    ConsentGranted,
    /// A subject's consent was withdrawn (`consent.withdraw`).
    ConsentWithdrawn,
    /// A new access policy was installed (`policy.reload`).
    PolicyReloaded,
    /// A subject's value was corrected at their request (`correct`).
    Corrected,
    /// A subject's account was cancelled: every purpose without a legal hold erased
    /// (`cancel`).
    Cancelled,
    /// A retention sweep decided over a batch of stored values (`retention.sweep`).
    RetentionSweep,
    /// An event the application performed itself (`app.<name>`): a consent captured by a web
    /// form, a disclosure under a legal order.
    Application(AppEventName),
}

impl AuditAction {
    /// The stored label.
    pub fn label(&self) -> Cow<'static, str> {
        match self {
            AuditAction::Access(a) => Cow::Borrowed(a.label()),
            AuditAction::ConsentGranted => Cow::Borrowed("consent.grant"),
            AuditAction::ConsentWithdrawn => Cow::Borrowed("consent.withdraw"),
            AuditAction::PolicyReloaded => Cow::Borrowed("policy.reload"),
            AuditAction::Corrected => Cow::Borrowed("correct"),
            AuditAction::Cancelled => Cow::Borrowed("cancel"),
            AuditAction::RetentionSweep => Cow::Borrowed("retention.sweep"),
            AuditAction::Application(n) => Cow::Owned(format!("app.{}", n.0)),
        }
    }

    /// The policy action, for an access.
    pub fn access(&self) -> Option<Action> {
        match self {
            AuditAction::Access(a) => Some(*a),
            _ => None,
        }
    }
}

impl From<Action> for AuditAction {
    fn from(a: Action) -> Self {
        AuditAction::Access(a)
    }
}

impl PartialEq<Action> for AuditAction {
    fn eq(&self, other: &Action) -> bool {
        *self == AuditAction::Access(*other)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Whether `s` is 1-64 characters of `[A-Za-z0-9._:/#-]` (a [`Reference`]).
pub(crate) fn is_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._:/#-".contains(&c))
}

/// Whether `s` is `[a-z][a-z0-9_]{0,31}` (a manifest name).
pub(crate) fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// The name of an application event: `[a-z][a-z0-9_]{0,31}`, recorded as `app.<name>`.
///
/// Names are `'static`: they are constants of the application's code, so no value can reach
/// the log through an event's name.
///
/// ```
/// use fieldseal::AppEventName;
/// assert!(AppEventName::new("consent_form").is_ok());
/// assert!(AppEventName::new("Consent Form").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppEventName(&'static str);

impl AppEventName {
    /// An event name.
    ///
    /// # Errors
    /// [`FormatError::InvalidName`] unless the name is `[a-z][a-z0-9_]{0,31}`.
    pub fn new(name: &'static str) -> Result<Self, Error> {
        if is_name(name) {
            Ok(Self(name))
        } else {
            Err(FormatError::InvalidName.into())
        }
    }

    /// The name (without the `app.` prefix).
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

/// A sharing recipient's name, as the policy manifest's `[recipients.<name>]` spells it:
/// `[a-z][a-z0-9_]{0,31}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecipientName(Arc<str>);

impl RecipientName {
    /// A recipient name.
    ///
    /// # Errors
    /// [`FormatError::InvalidName`] unless the name is `[a-z][a-z0-9_]{0,31}`.
    pub fn new(name: &str) -> Result<Self, Error> {
        if is_name(name) {
            Ok(Self(name.into()))
        } else {
            Err(FormatError::InvalidName.into())
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecipientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The application's reference for an event (a legal order's number, a ticket id): 1-64
/// characters of `[A-Za-z0-9._:/#-]`.
///
/// # Security
/// A reference is stored in the audit log as written, not pseudonymized: it must never hold
/// personal data (no names, no subject identifiers). The character set keeps free text out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference(Box<str>);

impl Reference {
    /// A reference.
    ///
    /// # Errors
    /// [`FormatError::InvalidReference`] unless it is 1-64 characters of `[A-Za-z0-9._:/#-]`.
    pub fn new(reference: &str) -> Result<Self, Error> {
        if is_reference(reference) {
            Ok(Self(reference.into()))
        } else {
            Err(FormatError::InvalidReference.into())
        }
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels_do_not_collide() {
        let mut labels: Vec<String> = Action::ALL
            .iter()
            .map(|a| AuditAction::Access(*a).label().into_owned())
            .collect();
        for a in [
            AuditAction::ConsentGranted,
            AuditAction::ConsentWithdrawn,
            AuditAction::PolicyReloaded,
            AuditAction::Corrected,
            AuditAction::Cancelled,
            AuditAction::RetentionSweep,
        ] {
            labels.push(a.label().into_owned());
        }
        let n = labels.len();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), n);
        assert!(labels.iter().all(|l| !l.starts_with("app.")));
        let app = AppEventName::new("reveal").map(AuditAction::Application);
        assert_eq!(
            app.map(|a| a.label().into_owned()).ok().as_deref(),
            Some("app.reveal")
        );
    }

    #[test]
    fn access_names_the_policy_action_only_for_accesses() {
        for a in Action::ALL {
            assert_eq!(AuditAction::Access(a).access(), Some(a));
            assert_eq!(AuditAction::from(a), a);
        }
        assert_eq!(AuditAction::ConsentGranted.access(), None);
        assert_ne!(AuditAction::ConsentGranted, Action::Reveal);
        let app = AppEventName::new("export_posted").map(AuditAction::Application);
        assert_eq!(app.ok().and_then(|a| a.access()), None);
    }

    #[test]
    fn display_is_the_stored_label() {
        let all = Action::ALL
            .into_iter()
            .map(AuditAction::Access)
            .chain([AuditAction::PolicyReloaded, AuditAction::Cancelled]);
        for a in all {
            assert_eq!(a.to_string(), a.label());
        }
        let name =
            AppEventName::new("court_order").map(|n| (n.as_str(), AuditAction::Application(n)));
        assert_eq!(
            name.map(|(s, a)| (s, a.to_string())).ok(),
            Some(("court_order", "app.court_order".to_owned()))
        );
        let r = RecipientName::new("authorities").map(|r| r.to_string());
        assert_eq!(r.ok().as_deref(), Some("authorities"));
        let x = Reference::new("CASE-1").map(|r| (r.to_string(), r.as_str().to_owned()));
        assert_eq!(x.ok(), Some(("CASE-1".to_owned(), "CASE-1".to_owned())));
    }

    #[test]
    fn names_and_references_are_checked() {
        for bad in ["", "A", "1a", "a-b", "a b", "é", &"a".repeat(33)] {
            assert!(RecipientName::new(bad).is_err(), "{bad:?}");
        }
        assert!(RecipientName::new(&"a".repeat(32)).is_ok());
        assert!(AppEventName::new("").is_err());
        assert!(AppEventName::new("legal_order_2").is_ok());
        for bad in ["", "a b", "x\n", "name@example.com", "&", &"1".repeat(65)] {
            assert!(Reference::new(bad).is_err(), "{bad:?}");
        }
        assert!(Reference::new("ORDER-2026/11#3:a.b").is_ok());
        assert!(Reference::new(&"1".repeat(64)).is_ok());
    }

    proptest! {
        #[test]
        fn reference_accepts_exactly_its_alphabet(s in "\\PC{0,70}") {
            let ok = !s.is_empty() && s.len() <= 64
                && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._:/#-".contains(&c));
            prop_assert_eq!(Reference::new(&s).is_ok(), ok);
        }

        #[test]
        fn recipient_names_round_trip(s in "[a-z][a-z0-9_]{0,31}") {
            let n = RecipientName::new(&s);
            prop_assert_eq!(n.map(|n| n.as_str().to_owned()).ok(), Some(s));
        }
    }
}
