//! `policy lint` and `policy explain`: policy manifests (TOML).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use fieldseal::{
    AccessPolicy as _, AccessRequest, Accessor, Action, Check, CrossBorderRule, Decision,
    FieldKind, LegalBasis, MAX_MANIFEST_BYTES, Manifest, ManifestError, ManifestPolicy, Role,
};
use serde::Serialize;

use crate::fail::{Failure, Result, io_at};
use crate::locate::{Doc, line_col};
use crate::out::json_line;

/// The library's limit: nothing larger is parsed, by the library or by the locator.
const MAX_MANIFEST: u64 = MAX_MANIFEST_BYTES as u64;

/// `policy …`.
#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check a manifest and list every problem with its line and column; exit 1 if any
    Lint {
        /// The manifest (TOML)
        manifest: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Why a request is allowed or denied: the grant that allows it (and the role it is
    /// inherited from), or the check that fails
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The manifest (TOML)
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// A role of the accessor (repeat for several)
    #[arg(long = "role", value_name = "ROLE", required = true)]
    roles: Vec<String>,
    /// The purpose the value is sealed for
    #[arg(long)]
    purpose: String,
    /// The field kind (`phone_number`, `email`, …)
    #[arg(long)]
    kind: String,
    /// The action (`reveal`, `mask`, `index`, `rewrap`, `share`, `export`, `erase`)
    #[arg(long)]
    action: String,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: &PolicyArgs) -> Result<()> {
    match &a.command {
        PolicyCommand::Lint { manifest, json } => lint(manifest, *json),
        PolicyCommand::Explain(e) => explain(e),
    }
}

pub(crate) fn read_manifest(path: &Path) -> Result<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| io_at(path, &e))?;
    let mut bytes = Vec::new();
    f.take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_at(path, &e))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(Failure::input(format_args!(
            "{}: larger than {MAX_MANIFEST} bytes, the most a manifest may have",
            path.display(),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
        let (line, column) = line_col(&text, valid);
        Failure::input(format_args!(
            "{}:{line}:{column}: not UTF-8 text",
            path.display()
        ))
    })
}

#[derive(Debug, Serialize)]
struct Problem {
    /// 1-based; 0 if the position is unknown.
    line: usize,
    column: usize,
    /// `syntax` (not TOML), `shape` (not a manifest's fields and types) or `lint` (a rule).
    stage: &'static str,
    message: String,
}

#[derive(Serialize)]
struct LintReport<'a> {
    manifest: String,
    ok: bool,
    problems: &'a [Problem],
    purposes: Option<usize>,
    roles: Option<usize>,
}

fn problems(text: &str) -> (Vec<Problem>, Option<Manifest>) {
    let (doc, syntax) = Doc::parse(text);
    if !syntax.is_empty() {
        // Every syntax error at once (the parser recovers); shape and rules need valid TOML.
        let list = syntax
            .iter()
            .map(|e| {
                let (line, column) = e.span().map_or((0, 0), |s| doc.line_col(s.start));
                Problem {
                    line,
                    column,
                    stage: "syntax",
                    message: e.message().trim().to_owned(),
                }
            })
            .collect();
        return (list, None);
    }
    match Manifest::from_toml(text) {
        Ok(m) => (Vec::new(), Some(m)),
        Err(ManifestError::Parse(p)) => (
            vec![Problem {
                line: p.line,
                column: p.column,
                stage: "shape",
                message: p.message,
            }],
            None,
        ),
        Err(ManifestError::Lint(errs)) => {
            let mut list: Vec<Problem> = errs
                .iter()
                .map(|e| {
                    let (line, column) = doc.find(e).unwrap_or((0, 0));
                    Problem {
                        line,
                        column,
                        stage: "lint",
                        message: e.to_string(),
                    }
                })
                .collect();
            // Unlocated problems last; otherwise in file order.
            list.sort_by_key(|p| (p.line == 0, p.line, p.column));
            (list, None)
        }
        Err(e) => (
            vec![Problem {
                line: 0,
                column: 0,
                stage: "lint",
                message: e.to_string(),
            }],
            None,
        ),
    }
}

fn lint(path: &Path, json: bool) -> Result<()> {
    let text = read_manifest(path)?;
    let (list, manifest) = problems(&text);
    let mut out = std::io::stdout().lock();
    let name = path.display().to_string();
    if json {
        json_line(
            &mut out,
            &LintReport {
                manifest: name.clone(),
                ok: list.is_empty(),
                problems: &list,
                purposes: manifest.as_ref().map(|m| m.purposes().count()),
                roles: manifest.as_ref().map(|m| m.roles().count()),
            },
        )?;
    } else if let Some(m) = &manifest {
        writeln!(
            out,
            "{name}: ok ({} purposes, {} roles)",
            m.purposes().count(),
            m.roles().count()
        )?;
    } else {
        for p in &list {
            match p.line {
                0 => writeln!(out, "{name}: {}: {}", p.stage, p.message)?,
                l => writeln!(out, "{name}:{l}:{}: {}: {}", p.column, p.stage, p.message)?,
            }
        }
    }
    if list.is_empty() {
        return Ok(());
    }
    let n = list.len();
    Err(Failure::verify(format_args!(
        "{name}: {n} problem{}",
        if n == 1 { "" } else { "s" }
    )))
}

/// The field kind named by `--kind`.
pub(crate) fn kind_of(label: &str) -> Result<FieldKind> {
    FieldKind::from_label(label).ok_or_else(|| {
        let known: Vec<&str> = FieldKind::ALL.iter().map(|k| k.label()).collect();
        Failure::input(format_args!(
            "--kind {label}: unknown field kind (known: {})",
            known.join(", ")
        ))
    })
}

fn explain(a: &ExplainArgs) -> Result<()> {
    let text = read_manifest(&a.manifest)?;
    let name = a.manifest.display();
    let policy = ManifestPolicy::from_toml(&text).map_err(|_| {
        Failure::input(format_args!(
            "{name}: not a valid manifest (run `fieldseal policy lint {name}`)"
        ))
    })?;
    let kind = kind_of(&a.kind)?;
    let action = Action::from_label(&a.action).ok_or_else(|| {
        let known: Vec<&str> = Action::ALL.iter().map(|k| k.label()).collect();
        Failure::input(format_args!(
            "--action {}: unknown action (known: {})",
            a.action,
            known.join(", ")
        ))
    })?;
    let manifest = policy.manifest();
    let mut notes = Vec::new();
    if manifest.purpose(&a.purpose).is_none() {
        notes.push(format!("purpose `{}` is not defined in {name}", a.purpose));
    }
    for r in &a.roles {
        if manifest.role(r).is_none() {
            notes.push(format!("role `{r}` is not defined in {name}"));
        }
    }
    let accessor = Accessor::new("fieldseal-cli", a.roles.iter().map(|r| Role::new(r)));
    let request = |action| AccessRequest {
        accessor: &accessor,
        purpose: &a.purpose,
        kind,
        action,
    };
    let ex = policy.explain(&request(action));
    let held: Vec<&'static str> = Action::ALL
        .into_iter()
        .filter(|&act| policy.explain(&request(act)).decision == Decision::Allow)
        .map(Action::label)
        .collect();
    let grant = ex.grant.as_ref().map(|g| {
        let chain = inheritance(&manifest, g.role.as_str(), &g.granted_by);
        GrantRow {
            role: g.role.as_str().to_owned(),
            granted_by: g.granted_by.clone(),
            inherited_via: chain,
            rule: format!(
                "roles.{}.grants.{}.{}",
                g.granted_by,
                g.purpose,
                g.action.label()
            ),
            action: g.action.label(),
        }
    });
    let rules = manifest.purpose(&a.purpose).map(|r| RulesRow {
        legal_basis: legal_basis(r.legal_basis),
        retention_days: r.retention_secs / 86_400,
        consent_required: r.consent_required,
        withdrawable: r.withdrawable,
        home_region: r.home_region.to_string(),
        cross_border: cross_border(r.cross_border),
    });
    let row = ExplainRow {
        decision: match ex.decision {
            Decision::Allow => "allow",
            Decision::Deny(_) => "deny",
        },
        reason: match ex.decision {
            Decision::Allow => None,
            Decision::Deny(r) => Some(r.label()),
        },
        failed_check: ex.failed.map(check_label),
        grant,
        held_actions: held,
        purpose_rules: rules,
        notes,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        return json_line(&mut out, &row);
    }
    match (&ex.decision, &ex.grant) {
        (Decision::Allow, Some(g)) => writeln!(
            out,
            "allowed: role `{}` holds {} on {kind}",
            g.role,
            row.grant.as_ref().map_or("", |g| g.rule.as_str())
        )?,
        (Decision::Allow, None) => writeln!(out, "allowed")?,
        (Decision::Deny(r), _) => writeln!(
            out,
            "denied by the {} check: {r}",
            row.failed_check.unwrap_or("grant")
        )?,
    }
    if let Some(g) = &row.grant {
        let via = if g.inherited_via.len() > 1 {
            format!(" (inherited: {})", g.inherited_via.join(" -> "))
        } else {
            String::new()
        };
        writeln!(out, "  grant        {}{via}", g.rule)?;
        if g.action != a.action {
            writeln!(out, "               ({} implies {})", g.action, a.action)?;
        }
    }
    let held = if row.held_actions.is_empty() {
        "nothing".to_owned()
    } else {
        row.held_actions.join(", ")
    };
    writeln!(
        out,
        "  held         {held} on {} for {} (roles {})",
        kind,
        a.purpose,
        a.roles.join(", ")
    )?;
    if let Some(r) = &row.purpose_rules {
        if row.decision == "allow" {
            writeln!(out, "  then checked on every reveal and mask:")?;
        } else {
            writeln!(out, "  purpose rules (checked after a grant allows):")?;
        }
        let consent = if r.consent_required {
            format!(
                "required (legal basis {}; {})",
                r.legal_basis,
                if r.withdrawable {
                    "withdrawable"
                } else {
                    "not withdrawable"
                }
            )
        } else {
            format!("not required (legal basis {})", r.legal_basis)
        };
        writeln!(out, "    consent    {consent}")?;
        writeln!(
            out,
            "    retention  {} days from sealed-at",
            r.retention_days
        )?;
        writeln!(
            out,
            "    residency  home region {}; from elsewhere: {}",
            r.home_region,
            match r.cross_border {
                "consent" => "the subject's cross-border consent",
                "deny" => "denied",
                "allow" => "allowed",
                other => other,
            }
        )?;
    }
    for n in &row.notes {
        writeln!(out, "  note         {n}")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct GrantRow {
    /// The accessor's role that matched.
    role: String,
    /// The role whose grant applies.
    granted_by: String,
    /// From `role` to `granted_by` through `inherits`.
    inherited_via: Vec<String>,
    rule: String,
    action: &'static str,
}

#[derive(Serialize)]
struct RulesRow {
    legal_basis: &'static str,
    retention_days: u64,
    consent_required: bool,
    withdrawable: bool,
    home_region: String,
    cross_border: &'static str,
}

#[derive(Serialize)]
struct ExplainRow {
    decision: &'static str,
    reason: Option<&'static str>,
    failed_check: Option<&'static str>,
    grant: Option<GrantRow>,
    /// Every action the roles hold on this kind for this purpose.
    held_actions: Vec<&'static str>,
    purpose_rules: Option<RulesRow>,
    notes: Vec<String>,
}

/// The inheritance path from `from` to `to` (both included), breadth first.
fn inheritance(m: &Manifest, from: &str, to: &str) -> Vec<String> {
    let mut paths: Vec<Vec<String>> = vec![vec![from.to_owned()]];
    let mut seen = vec![from.to_owned()];
    while !paths.is_empty() {
        let mut next = Vec::new();
        for path in paths {
            let last = path.last().map(String::as_str).unwrap_or_default();
            if last == to {
                return path;
            }
            for parent in m.role(last).map(|r| r.inherits.as_slice()).unwrap_or(&[]) {
                if !seen.contains(parent) {
                    seen.push(parent.clone());
                    let mut p = path.clone();
                    p.push(parent.clone());
                    next.push(p);
                }
            }
        }
        paths = next;
    }
    vec![from.to_owned(), to.to_owned()]
}

fn check_label(c: Check) -> &'static str {
    match c {
        Check::Grant => "grant",
        Check::Consent => "consent",
        Check::Retention => "retention",
        Check::Residency => "residency",
        _ => "other",
    }
}

fn legal_basis(b: LegalBasis) -> &'static str {
    match b {
        LegalBasis::Consent => "consent",
        LegalBasis::Contract => "contract",
        LegalBasis::LegalObligation => "legal_obligation",
        LegalBasis::LegitimateInterest => "legitimate_interest",
        _ => "other",
    }
}

fn cross_border(r: CrossBorderRule) -> &'static str {
    match r {
        CrossBorderRule::Consent => "consent",
        CrossBorderRule::Deny => "deny",
        CrossBorderRule::Allow => "allow",
        _ => "other",
    }
}
