//! The policy manifest: a privacy policy as code (TOML).
//!
//! A manifest names the data categories (their field kinds and the purposes those are collected
//! for: with categories defined, a value may only be sealed for a purpose some category lists
//! with its kind), the purposes (legal basis, retention, consent), the roles (inheritance and,
//! per purpose, which kinds each action may touch), the home region with its cross-border rule,
//! and the sharing recipients.
//!
//! Parsing is two steps: syntax and shape (a [`ManifestError::Parse`] naming line, column and the
//! offending field), then a semantic lint that reports every problem at once
//! ([`ManifestError::Lint`] with a list of [`LintError`]s).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use crate::field::FieldKind;
use crate::policy::Action;
use crate::policy::error::{LintError, ManifestError, ParseError};
use crate::policy::inherit::{self, Hierarchy};
use crate::purpose::is_valid_label;

/// The manifest format version this release reads.
pub const MANIFEST_VERSION: u32 = 1;

/// The longest manifest text accepted, in bytes (1 MiB); longer text is refused before it is
/// parsed ([`ManifestError::TooLarge`]). The reference privacy policy is about 6 KB.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// The most roles a manifest may define ([`LintError::TooManyRoles`]).
pub const MAX_ROLES: usize = 10_000;

/// The deepest role inheritance allowed: the number of `inherits` steps on the longest path from
/// a role to a role that inherits nothing ([`LintError::InheritanceTooDeep`]). A chain of 65
/// roles has depth 64 and is accepted; a chain of 66 is refused.
pub const MAX_INHERITANCE_DEPTH: usize = 64;

/// A bound on the work of expanding role inheritance, which is also a bound on the size of the
/// compiled grant table ([`LintError::TooManyExpandedGrants`]): the sum over every role of the
/// purposes it grants itself plus, for each role it directly inherits from, the purposes that
/// role holds after its own expansion. A manifest of 10,000 roles with a few purposes each
/// stays far below it.
pub const MAX_EXPANDED_GRANTS: usize = 1_000_000;

/// Seconds in a day, for `retention_days`.
const DAY: u64 = 86_400;

/// The legal basis of a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LegalBasis {
    /// The data subject consented (and may withdraw).
    Consent,
    /// Needed to perform a contract with the subject (e.g. answering an inquiry).
    Contract,
    /// Required by law or by a lawful request of an authority.
    LegalObligation,
    /// The controller's legitimate interest (e.g. security, fraud prevention).
    LegitimateInterest,
}

/// What happens when an accessor outside the home region asks to open data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CrossBorderRule {
    /// Allowed only with the subject's cross-border consent (the default).
    #[default]
    Consent,
    /// Never allowed.
    Deny,
    /// Always allowed (no residency restriction).
    Allow,
}

/// A region code such as `CN` or `EU-WEST`: 1-16 ASCII letters, digits, `-` or `_`. Stored
/// inline, so copying purpose rules on every reveal touches no shared memory.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    bytes: [u8; Region::MAX],
    len: u8,
}

impl Region {
    /// The longest region code.
    pub const MAX: usize = 16;

    /// A region code, if valid.
    pub fn new(code: &str) -> Option<Self> {
        let b = code.as_bytes();
        if b.is_empty()
            || b.len() > Self::MAX
            || !b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        let mut bytes = [0u8; Self::MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a retention sweep ([`Guard::retention_sweep`](crate::Guard::retention_sweep)) decides
/// for a value of a purpose whose retention has passed: the manifest's `on_expiry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ExpiryRule {
    /// Delete the value (`on_expiry = "delete"`, the default).
    #[default]
    Delete,
    /// Derive the anonymized form the purpose keeps (statistics, generalized values), then
    /// delete the value (`on_expiry = "anonymize"`).
    Anonymize,
}

impl ExpiryRule {
    /// The manifest label: `delete` or `anonymize`.
    pub const fn label(self) -> &'static str {
        match self {
            ExpiryRule::Delete => "delete",
            ExpiryRule::Anonymize => "anonymize",
        }
    }

    /// The rule with this manifest label.
    pub fn from_label(label: &str) -> Option<Self> {
        [ExpiryRule::Delete, ExpiryRule::Anonymize]
            .into_iter()
            .find(|r| r.label() == label)
    }
}

impl fmt::Display for ExpiryRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a recipient may receive shared data: the four grounds the reference privacy policy
/// distinguishes (manifest key `basis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecipientBasis {
    /// Shared only with the subject's explicit consent to sharing with this recipient
    /// ([`ConsentScope::Share`](crate::ConsentScope::Share) naming it), on top of any consent the
    /// purpose itself needs. The default when a recipient names no basis.
    Consent,
    /// Required by law or by a lawful request of an authority (courts, arbitration
    /// institutions, regulators).
    LegalObligation,
    /// Protecting the rights of the company, its users or the public (fraud prevention,
    /// network security), within a necessary scope.
    Protection,
    /// An affiliate or partner bound to the policy's purposes and to confidentiality.
    Affiliate,
}

impl RecipientBasis {
    /// Every basis.
    pub const ALL: [RecipientBasis; 4] = [
        RecipientBasis::Consent,
        RecipientBasis::LegalObligation,
        RecipientBasis::Protection,
        RecipientBasis::Affiliate,
    ];

    /// The manifest spelling (`consent`, `legal_obligation`, `protection`, `affiliate`).
    pub const fn label(self) -> &'static str {
        match self {
            RecipientBasis::Consent => "consent",
            RecipientBasis::LegalObligation => "legal_obligation",
            RecipientBasis::Protection => "protection",
            RecipientBasis::Affiliate => "affiliate",
        }
    }

    /// The basis with this manifest spelling.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.label() == label)
    }

    /// Whether sharing on this basis needs the subject's consent to share with the recipient.
    pub const fn needs_consent(self) -> bool {
        matches!(self, RecipientBasis::Consent)
    }
}

impl fmt::Display for RecipientBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A sharing recipient as the manifest defines it: why it may receive data and for which
/// purposes (`[recipients.<name>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRules {
    /// The ground for sharing with it.
    pub basis: RecipientBasis,
    /// The purposes it may receive data for, sorted.
    pub purposes: BTreeSet<String>,
}

impl RecipientRules {
    /// Whether the recipient may receive data shared for `purpose`.
    pub fn may_receive(&self, purpose: &str) -> bool {
        self.purposes.contains(purpose)
    }
}

/// One purpose's metadata, as the guard needs it for consent, retention and residency checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurposeRules {
    /// The legal basis.
    pub legal_basis: LegalBasis,
    /// How long a value sealed for this purpose stays readable, in seconds.
    pub retention_secs: u64,
    /// Whether each subject's consent must be on record.
    pub consent_required: bool,
    /// Whether that consent can be withdrawn.
    pub withdrawable: bool,
    /// The home region (e.g. `CN`); accessors elsewhere fall under [`Self::cross_border`].
    pub home_region: Region,
    /// The cross-border rule.
    pub cross_border: CrossBorderRule,
    /// What a retention sweep decides once a value's retention has passed (`on_expiry`).
    pub on_expiry: ExpiryRule,
    /// Whether the purpose is under a legal hold (`legal_hold`; by default, purposes whose legal
    /// basis is `legal_obligation`): [`Guard::cancel_account`](crate::Guard::cancel_account)
    /// does not erase its data. Retention still applies to it.
    pub legal_hold: bool,
}

/// A role: the roles it inherits from and its grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleSpec {
    /// Roles whose grants this role also holds.
    pub inherits: Vec<String>,
    /// Per purpose, per action, the field kinds granted.
    pub grants: BTreeMap<String, BTreeMap<Action, BTreeSet<FieldKind>>>,
}

/// A validated manifest.
///
/// ```
/// use fieldseal::{Action, FieldKind, Manifest};
/// let m = Manifest::from_toml(r#"
///     version = 1
///     home_region = "CN"
///     [categories.inquiry]
///     kinds = ["phone_number"]
///     purposes = ["service"]
///     [purposes.service]
///     legal_basis = "contract"
///     retention_days = 365
///     [roles.support_agent.grants.service]
///     reveal = ["phone_number"]
/// "#)?;
/// assert!(m.role("support_agent").is_some());
/// assert!(m.may_seal(FieldKind::PhoneNumber, "service"));
/// assert!(!m.may_seal(FieldKind::Email, "service"));
/// # Ok::<(), fieldseal::ManifestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub(crate) home_region: Region,
    pub(crate) cross_border: CrossBorderRule,
    pub(crate) categories: BTreeMap<String, Category>,
    pub(crate) purposes: BTreeMap<String, PurposeRules>,
    pub(crate) roles: BTreeMap<String, RoleSpec>,
    pub(crate) recipients: BTreeMap<String, RecipientRules>,
}

/// A data category: the field kinds it holds and the purposes they are collected for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Category {
    pub(crate) kinds: BTreeSet<FieldKind>,
    pub(crate) purposes: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: u32,
    home_region: String,
    #[serde(default)]
    cross_border: RawCrossBorder,
    #[serde(default)]
    categories: BTreeMap<String, RawCategory>,
    #[serde(default)]
    purposes: BTreeMap<String, RawPurpose>,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    recipients: BTreeMap<String, RawRecipient>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCrossBorder {
    #[serde(default)]
    rule: CrossBorderRule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    kinds: Vec<String>,
    #[serde(default)]
    purposes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    legal_basis: LegalBasis,
    #[serde(default)]
    retention_days: Option<u64>,
    #[serde(default)]
    consent_required: Option<bool>,
    #[serde(default)]
    withdrawable: bool,
    #[serde(default)]
    on_expiry: Option<String>,
    #[serde(default)]
    legal_hold: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    inherits: Vec<String>,
    #[serde(default)]
    grants: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipient {
    purposes: Vec<String>,
    #[serde(default)]
    basis: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Manifest {
    /// Parses and lints a TOML manifest.
    ///
    /// # Errors
    /// [`ManifestError::TooLarge`] if the text is longer than [`MAX_MANIFEST_BYTES`];
    /// [`ManifestError::Parse`] (with line, column and the field) if the text is not a manifest;
    /// [`ManifestError::Lint`] with every semantic problem otherwise.
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                len: text.len(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ManifestError::Parse(ParseError {
                line,
                column,
                message: e.message().trim().to_owned(),
            })
        })?;
        lint(raw)
    }

    /// The home region.
    pub fn home_region(&self) -> Region {
        self.home_region
    }

    /// The cross-border rule.
    pub fn cross_border(&self) -> CrossBorderRule {
        self.cross_border
    }

    /// The rules of a purpose, if defined.
    pub fn purpose(&self, label: &str) -> Option<&PurposeRules> {
        self.purposes.get(label)
    }

    /// Every purpose label, sorted.
    pub fn purposes(&self) -> impl Iterator<Item = &str> {
        self.purposes.keys().map(String::as_str)
    }

    /// A role, if defined.
    pub fn role(&self, name: &str) -> Option<&RoleSpec> {
        self.roles.get(name)
    }

    /// Every role name, sorted.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// The field kinds of a data category, if defined.
    pub fn category(&self, name: &str) -> Option<&BTreeSet<FieldKind>> {
        self.categories.get(name).map(|c| &c.kinds)
    }

    /// The purposes a data category is collected for, sorted, if the category is defined.
    pub fn category_purposes(&self, name: &str) -> Option<impl Iterator<Item = &str>> {
        self.categories
            .get(name)
            .map(|c| c.purposes.iter().map(String::as_str))
    }

    /// Whether a value of `kind` may be sealed for `purpose`: always when the manifest defines
    /// no categories; otherwise only when some category lists both the kind and the purpose. A
    /// category without `purposes` allows no purpose.
    ///
    /// [`ManifestPolicy`](crate::ManifestPolicy) answers the same question from a precomputed
    /// table on every [`Guard::seal`](crate::Guard::seal).
    pub fn may_seal(&self, kind: FieldKind, purpose: &str) -> bool {
        self.categories.is_empty()
            || self
                .categories
                .values()
                .any(|c| c.kinds.contains(&kind) && c.purposes.contains(purpose))
    }

    /// Whether `recipient` may receive data shared for `purpose`.
    pub fn may_share_with(&self, recipient: &str, purpose: &str) -> bool {
        self.recipients
            .get(recipient)
            .is_some_and(|r| r.may_receive(purpose))
    }

    /// A sharing recipient's basis and purposes, if the manifest defines it.
    pub fn recipient(&self, name: &str) -> Option<&RecipientRules> {
        self.recipients.get(name)
    }

    /// Every recipient name, sorted.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.recipients.keys().map(String::as_str)
    }

    /// `role` and every role it inherits from (transitively), `role` first, each once, in
    /// depth-first order of the `inherits` lists.
    pub(crate) fn ancestors<'a>(&'a self, role: &'a str) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![role];
        while let Some(r) = stack.pop() {
            if !seen.insert(r) {
                continue;
            }
            out.push(r);
            if let Some(spec) = self.roles.get(r) {
                for p in spec.inherits.iter().rev() {
                    stack.push(p);
                }
            }
        }
        out
    }
}

fn kinds(at: &str, labels: &[String], errs: &mut Vec<LintError>) -> BTreeSet<FieldKind> {
    let mut out = BTreeSet::new();
    for l in labels {
        match FieldKind::from_label(l) {
            Some(k) => {
                out.insert(k);
            }
            None => errs.push(LintError::UnknownKind {
                at: at.to_owned(),
                kind: l.clone(),
            }),
        }
    }
    out
}

fn lint(raw: RawManifest) -> Result<Manifest, ManifestError> {
    let mut errs = Vec::new();
    if raw.version != MANIFEST_VERSION {
        errs.push(LintError::UnsupportedVersion(raw.version));
    }
    let home_region = Region::new(&raw.home_region).unwrap_or_else(|| {
        errs.push(LintError::InvalidHomeRegion(raw.home_region.clone()));
        Region {
            bytes: [0; Region::MAX],
            len: 0,
        }
    });

    let mut purposes = BTreeMap::new();
    for (label, p) in &raw.purposes {
        if !is_valid_label(label) {
            errs.push(LintError::InvalidPurposeLabel(label.clone()));
        }
        let retention_secs = match p.retention_days {
            Some(d) if d > 0 => d.saturating_mul(DAY),
            _ => {
                errs.push(LintError::MissingRetention(label.clone()));
                0
            }
        };
        let is_consent = p.legal_basis == LegalBasis::Consent;
        let consent_required = p.consent_required.unwrap_or(is_consent);
        if is_consent && !consent_required {
            errs.push(LintError::ConsentBasisWithoutConsent(label.clone()));
        }
        if consent_required && !p.withdrawable {
            errs.push(LintError::ConsentNotWithdrawable(label.clone()));
        }
        let on_expiry = match p.on_expiry.as_deref() {
            None => ExpiryRule::Delete,
            Some(v) => ExpiryRule::from_label(v).unwrap_or_else(|| {
                errs.push(LintError::UnknownExpiryRule {
                    purpose: label.clone(),
                    rule: v.to_owned(),
                });
                ExpiryRule::Delete
            }),
        };
        let legal_hold = p
            .legal_hold
            .unwrap_or(p.legal_basis == LegalBasis::LegalObligation);
        // A hold would keep data the subject may withdraw at any time: contradictory.
        if legal_hold && consent_required {
            errs.push(LintError::HoldOnConsent(label.clone()));
        }
        purposes.insert(
            label.clone(),
            PurposeRules {
                legal_basis: p.legal_basis,
                retention_secs,
                consent_required,
                withdrawable: p.withdrawable,
                home_region,
                cross_border: raw.cross_border.rule,
                on_expiry,
                legal_hold,
            },
        );
    }
    let check_purpose = |at: String, p: &String, errs: &mut Vec<LintError>| {
        if !raw.purposes.contains_key(p) {
            errs.push(LintError::UndefinedPurpose {
                at,
                purpose: p.clone(),
            });
        }
    };

    let mut categories = BTreeMap::new();
    for (name, c) in &raw.categories {
        let at = format!("categories.{name}");
        let kinds = kinds(&format!("{at}.kinds"), &c.kinds, &mut errs);
        for p in &c.purposes {
            check_purpose(format!("{at}.purposes"), p, &mut errs);
        }
        categories.insert(
            name.clone(),
            Category {
                kinds,
                purposes: c.purposes.iter().cloned().collect(),
            },
        );
    }

    let mut recipients = BTreeMap::new();
    for (name, r) in &raw.recipients {
        for p in &r.purposes {
            check_purpose(format!("recipients.{name}.purposes"), p, &mut errs);
        }
        let basis = match r.basis.as_deref() {
            None => RecipientBasis::Consent,
            Some(b) => RecipientBasis::from_label(b).unwrap_or_else(|| {
                errs.push(LintError::UnknownRecipientBasis {
                    recipient: name.clone(),
                    basis: b.to_owned(),
                });
                RecipientBasis::Consent
            }),
        };
        recipients.insert(
            name.clone(),
            RecipientRules {
                basis,
                purposes: r.purposes.iter().cloned().collect(),
            },
        );
    }

    let mut roles = BTreeMap::new();
    for name in raw.roles.keys().chain(raw.recipients.keys()) {
        if !is_valid_label(name) {
            errs.push(LintError::InvalidName(name.clone()));
        }
    }
    for (name, r) in &raw.roles {
        for parent in &r.inherits {
            if !raw.roles.contains_key(parent) {
                errs.push(LintError::UndefinedRole {
                    role: name.clone(),
                    parent: parent.clone(),
                });
            }
        }
        let mut grants = BTreeMap::new();
        for (purpose, actions) in &r.grants {
            let at = format!("roles.{name}.grants.{purpose}");
            check_purpose(at.clone(), purpose, &mut errs);
            let mut per_action = BTreeMap::new();
            for (action, ks) in actions {
                let Some(a) = Action::from_label(action) else {
                    errs.push(LintError::UnknownAction {
                        at: at.clone(),
                        action: action.clone(),
                    });
                    continue;
                };
                per_action.insert(a, kinds(&format!("{at}.{action}"), ks, &mut errs));
            }
            grants.insert(purpose.clone(), per_action);
        }
        roles.insert(
            name.clone(),
            RoleSpec {
                inherits: r.inherits.clone(),
                grants,
            },
        );
    }
    lint_inheritance(&roles, &purposes, &mut errs);

    if errs.is_empty() {
        Ok(Manifest {
            home_region,
            cross_border: raw.cross_border.rule,
            categories,
            purposes,
            roles,
            recipients,
        })
    } else {
        Err(ManifestError::Lint(errs))
    }
}

/// Cycles, the role count, the inheritance depth and the work of expanding inheritance.
fn lint_inheritance(
    roles: &BTreeMap<String, RoleSpec>,
    purposes: &BTreeMap<String, PurposeRules>,
    errs: &mut Vec<LintError>,
) {
    if roles.len() > MAX_ROLES {
        errs.push(LintError::TooManyRoles {
            count: roles.len(),
            max: MAX_ROLES,
        });
    }
    let h = Hierarchy::new(roles);
    let cycles = inherit::cycles(&h);
    if !cycles.is_empty() {
        errs.extend(cycles.into_iter().map(LintError::InheritanceCycle));
        return;
    }
    let Some(order) = h.order() else {
        return;
    };
    let depths = h.depths(&order);
    // The deepest role; the first by name among equals (`max_by_key` keeps the last maximum).
    if let Some((i, &depth)) = depths.iter().enumerate().rev().max_by_key(|(_, d)| **d)
        && depth > MAX_INHERITANCE_DEPTH
    {
        errs.push(LintError::InheritanceTooDeep {
            role: h.name(i).to_owned(),
            depth,
            max: MAX_INHERITANCE_DEPTH,
        });
    }
    let index = purpose_index(purposes);
    let own: Vec<Vec<(u32, ())>> = roles
        .values()
        .map(|spec| {
            spec.grants
                .keys()
                .filter_map(|p| Some((*index.get(p.as_str())?, ())))
                .collect()
        })
        .collect();
    if h.expand(&order, &own, purposes.len(), |_, _| {}, MAX_EXPANDED_GRANTS)
        .is_err()
    {
        errs.push(LintError::TooManyExpandedGrants {
            max: MAX_EXPANDED_GRANTS,
        });
    }
}

/// Purpose label -> its position among the manifest's (sorted) purposes.
pub(crate) fn purpose_index(purposes: &BTreeMap<String, PurposeRules>) -> BTreeMap<&str, u32> {
    purposes
        .keys()
        .zip(0u32..)
        .map(|(p, i)| (p.as_str(), i))
        .collect()
}
