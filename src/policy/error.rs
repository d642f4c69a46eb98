//! Why a policy manifest was rejected: where it does not parse, or every semantic problem found.

use std::fmt;

/// Where the TOML text could not be read as a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line (0 if unknown).
    pub line: usize,
    /// 1-based column (0 if unknown).
    pub column: usize,
    /// What is wrong, naming the field (e.g. ``missing field `retention_days` ``).
    pub message: String,
}

/// A semantic problem in a manifest that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LintError {
    /// `version` is not one this release reads.
    UnsupportedVersion(u32),
    /// A field-kind label is not a known kind.
    UnknownKind {
        /// Dotted path of the list holding it.
        at: String,
        /// The label.
        kind: String,
    },
    /// An action name in a grant is not a known action.
    UnknownAction {
        /// Dotted path of the grant.
        at: String,
        /// The name.
        action: String,
    },
    /// A purpose label is not `[a-z][a-z0-9_]{0,31}`.
    InvalidPurposeLabel(String),
    /// A purpose has no (or a zero) retention period.
    MissingRetention(String),
    /// A grant, category or recipient names a purpose that is not defined.
    UndefinedPurpose {
        /// Dotted path of the reference.
        at: String,
        /// The purpose.
        purpose: String,
    },
    /// A role inherits from a role that is not defined.
    UndefinedRole {
        /// The inheriting role.
        role: String,
        /// The missing parent.
        parent: String,
    },
    /// A consent-based purpose does not let subjects withdraw consent.
    ConsentNotWithdrawable(String),
    /// A purpose with legal basis `consent` sets `consent_required = false`.
    ConsentBasisWithoutConsent(String),
    /// A purpose's `on_expiry` is neither `delete` nor `anonymize`.
    UnknownExpiryRule {
        /// The purpose.
        purpose: String,
        /// The value given.
        rule: String,
    },
    /// A purpose that needs consent is under a legal hold (`legal_hold = true`, or legal basis
    /// `legal_obligation`): consent can be withdrawn, a hold cannot.
    HoldOnConsent(String),
    /// Role inheritance has a cycle (the roles on it, in order).
    InheritanceCycle(Vec<String>),
    /// The home region is not 1-16 ASCII letters, digits, `-` or `_`.
    InvalidHomeRegion(String),
    /// A recipient's `basis` is not one of `consent`, `legal_obligation`, `protection`,
    /// `affiliate`.
    UnknownRecipientBasis {
        /// The recipient.
        recipient: String,
        /// The value given.
        basis: String,
    },
    /// A role or recipient name is not `[a-z][a-z0-9_]{0,31}` (names are compiled into engine
    /// policy lines, so no separators are allowed).
    InvalidName(String),
    /// The manifest defines more than [`MAX_ROLES`](crate::MAX_ROLES) roles.
    TooManyRoles {
        /// The number of roles defined.
        count: usize,
        /// The limit, [`MAX_ROLES`](crate::MAX_ROLES).
        max: usize,
    },
    /// Role inheritance is deeper than [`MAX_INHERITANCE_DEPTH`](crate::MAX_INHERITANCE_DEPTH). Reported once, for the
    /// deepest role (the first by name if several are equally deep).
    InheritanceTooDeep {
        /// The role (its `roles.<role>.inherits` list starts the longest path).
        role: String,
        /// Its inheritance depth.
        depth: usize,
        /// The limit, [`MAX_INHERITANCE_DEPTH`](crate::MAX_INHERITANCE_DEPTH).
        max: usize,
    },
    /// Expanding role inheritance would take more than [`MAX_EXPANDED_GRANTS`](crate::MAX_EXPANDED_GRANTS) steps (too many
    /// roles inheriting too many purposes' grants).
    TooManyExpandedGrants {
        /// The limit, [`MAX_EXPANDED_GRANTS`](crate::MAX_EXPANDED_GRANTS).
        max: usize,
    },
}

impl fmt::Display for LintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LintError::UnsupportedVersion(v) => write!(f, "unsupported manifest version {v}"),
            LintError::UnknownKind { at, kind } => write!(f, "{at}: unknown field kind `{kind}`"),
            LintError::UnknownAction { at, action } => {
                write!(f, "{at}: unknown action `{action}`")
            }
            LintError::InvalidPurposeLabel(p) => write!(f, "purposes.{p}: invalid purpose label"),
            LintError::MissingRetention(p) => {
                write!(f, "purposes.{p}: no retention period (retention_days)")
            }
            LintError::UndefinedPurpose { at, purpose } => {
                write!(f, "{at}: undefined purpose `{purpose}`")
            }
            LintError::UndefinedRole { role, parent } => {
                write!(f, "roles.{role}.inherits: undefined role `{parent}`")
            }
            LintError::ConsentNotWithdrawable(p) => {
                write!(
                    f,
                    "purposes.{p}: consent-based purpose must be withdrawable"
                )
            }
            LintError::UnknownExpiryRule { purpose, rule } => write!(
                f,
                "purposes.{purpose}.on_expiry: unknown rule `{rule}` (expected `delete` or `anonymize`)"
            ),
            LintError::HoldOnConsent(p) => write!(
                f,
                "purposes.{p}: a consent-based purpose cannot be under a legal hold"
            ),
            LintError::ConsentBasisWithoutConsent(p) => {
                write!(
                    f,
                    "purposes.{p}: legal basis consent needs consent_required"
                )
            }
            LintError::InheritanceCycle(c) => {
                write!(f, "role inheritance cycle: {}", c.join(" -> "))
            }
            LintError::InvalidHomeRegion(r) => {
                write!(f, "home_region `{r}` is not 1-16 of [A-Za-z0-9_-]")
            }
            LintError::UnknownRecipientBasis { recipient, basis } => write!(
                f,
                "recipients.{recipient}.basis: unknown basis `{basis}` (expected consent, \
                 legal_obligation, protection or affiliate)"
            ),
            LintError::InvalidName(n) => write!(f, "invalid role or recipient name `{n}`"),
            LintError::TooManyRoles { count, max } => {
                write!(f, "roles: {count} roles defined, at most {max} allowed")
            }
            LintError::InheritanceTooDeep { role, depth, max } => write!(
                f,
                "roles.{role}.inherits: inheritance depth {depth}, at most {max} allowed"
            ),
            LintError::TooManyExpandedGrants { max } => write!(
                f,
                "roles: expanding inheritance takes more than {max} steps (too many roles \
                 inheriting grants for too many purposes)"
            ),
        }
    }
}

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// The text is not valid TOML or does not have the manifest's shape.
    Parse(ParseError),
    /// The manifest parsed but breaks semantic rules; every problem found is listed.
    Lint(Vec<LintError>),
    /// The text is longer than [`MAX_MANIFEST_BYTES`](crate::MAX_MANIFEST_BYTES); it was not parsed.
    TooLarge {
        /// The text's length in bytes.
        len: usize,
        /// The limit, [`MAX_MANIFEST_BYTES`](crate::MAX_MANIFEST_BYTES).
        max: usize,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Parse(p) => write!(
                f,
                "policy manifest parse error at line {}, column {}: {}",
                p.line, p.column, p.message
            ),
            ManifestError::Lint(errs) => {
                write!(f, "policy manifest has {} problem(s)", errs.len())?;
                for e in errs {
                    write!(f, "; {e}")?;
                }
                Ok(())
            }
            ManifestError::TooLarge { len, max } => write!(
                f,
                "policy manifest is {len} bytes, at most {max} are accepted"
            ),
        }
    }
}

impl std::error::Error for ManifestError {}
