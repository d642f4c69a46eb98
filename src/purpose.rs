//! Purposes of processing, as types.
//!
//! Every sealed value is bound to one purpose. At compile time the purpose is a zero-sized marker
//! type implementing [`Purpose`], so `Sealed<Phone, Marketing>` cannot be opened as
//! `Sealed<Phone, Service>`; at run time (the CLI, dynamic code) it is a [`PurposeId`].

use std::fmt;
use std::sync::Arc;

use crate::error::FormatError;

/// Longest purpose label, in bytes.
pub const MAX_PURPOSE_LABEL: usize = 32;

/// A purpose of processing personal data.
///
/// Implemented only through the [`purposes!`](crate::purposes) macro (the trait is sealed), which
/// checks the label at compile time. The label is stored in every envelope and is part of key
/// derivation, so it must never change once data is sealed under it.
pub trait Purpose: sealed::Sealed + Send + Sync + 'static {
    /// Stable label: 1-32 bytes of `[a-z0-9_]`, starting with a letter.
    const LABEL: &'static str;
}

/// Lets `purposes!` implement the sealed trait (re-exported from `__private`).
pub(crate) mod sealed {
    /// Seal for [`Purpose`](super::Purpose).
    pub trait Sealed {}
}

/// Whether `label` is a valid purpose label: 1-32 bytes of `[a-z0-9_]`, starting with `[a-z]`.
///
/// `const` so that [`purposes!`](crate::purposes) rejects bad labels at compile time.
pub const fn is_valid_label(label: &str) -> bool {
    let b = label.as_bytes();
    if b.is_empty() || b.len() > MAX_PURPOSE_LABEL || !b[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares purpose marker types.
///
/// ```
/// fieldseal::purposes! {
///     /// Billing and invoicing.
///     pub Billing = "billing";
///     /// Fraud screening by the risk team.
///     pub(crate) RiskScreening = "risk_screening";
/// }
/// use fieldseal::Purpose;
/// assert_eq!(Billing::LABEL, "billing");
/// ```
///
/// A bad label does not compile:
///
/// ```compile_fail
/// fieldseal::purposes! { pub Bad = "Not Valid"; }
/// ```
#[macro_export]
macro_rules! purposes {
    ($( $(#[$meta:meta])* $vis:vis $name:ident = $label:literal; )+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
            $vis struct $name;
            impl $crate::__private::PurposeSealed for $name {}
            impl $crate::Purpose for $name {
                const LABEL: &'static str = $label;
            }
            const _: () = assert!(
                $crate::__private::is_valid_label($label),
                "purpose labels are 1-32 bytes of [a-z0-9_] starting with a letter"
            );
        )+
    };
}

/// The five purposes of the reference privacy policy, ready-made.
pub mod builtin {
    crate::purposes! {
        /// Providing requested services: responding to inquiries, handling cooperation needs,
        /// sending event notifications, prize claims.
        pub Service = "service";
        /// Improving website functions and content, analytics.
        pub Improvement = "improvement";
        /// Website security and risk prevention (fraud, abuse).
        pub Security = "security";
        /// Product and service information; consent-based and withdrawable.
        pub Marketing = "marketing";
        /// Complying with laws and answering legitimate requests from authorities.
        pub Legal = "legal";
    }
}

/// A purpose known at run time (the dynamic form of [`Purpose`]).
///
/// ```
/// use fieldseal::{PurposeId, builtin::Marketing};
/// let p = PurposeId::new("marketing")?;
/// assert_eq!(p, PurposeId::of::<Marketing>());
/// assert!(PurposeId::new("Marketing!").is_err());
/// # Ok::<(), fieldseal::Error>(())
/// ```
#[derive(Clone)]
pub struct PurposeId(Repr);

/// Labels of `Purpose` types are `'static` and need no allocation; runtime labels are shared.
#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl PurposeId {
    /// A purpose from its label.
    ///
    /// # Errors
    /// [`FormatError::InvalidPurposeLabel`] if the label is not 1-32 bytes of `[a-z0-9_]`
    /// starting with a letter.
    pub fn new(label: &str) -> Result<Self, crate::Error> {
        if is_valid_label(label) {
            Ok(Self(Repr::Shared(Arc::from(label))))
        } else {
            Err(FormatError::InvalidPurposeLabel.into())
        }
    }

    /// The runtime form of the marker type `P` (no allocation).
    pub fn of<P: Purpose>() -> Self {
        Self(Repr::Static(P::LABEL))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl PartialEq for PurposeId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for PurposeId {}

impl std::hash::Hash for PurposeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for PurposeId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PurposeId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for PurposeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PurposeId({})", self.as_str())
    }
}

impl fmt::Display for PurposeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "service", "risk_2", "a_b_c", &"x".repeat(32)] {
            assert!(is_valid_label(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "_a",
            "A",
            "a-b",
            "a.b",
            "a b",
            "é",
            &"x".repeat(33),
        ] {
            assert!(!is_valid_label(bad), "{bad}");
        }
    }

    #[test]
    fn builtin_labels() {
        use builtin::*;
        assert_eq!(Service::LABEL, "service");
        assert_eq!(Improvement::LABEL, "improvement");
        assert_eq!(Security::LABEL, "security");
        assert_eq!(Marketing::LABEL, "marketing");
        assert_eq!(Legal::LABEL, "legal");
        assert_eq!(PurposeId::of::<Legal>().as_str(), "legal");
    }
}
