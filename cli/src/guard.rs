//! The guard the command seals and opens through: the keyring file, the manifest policy and a
//! chained audit log, exactly as a service's call site uses them.

use std::path::PathBuf;

use clap::Args;
use fieldseal::{
    Accessor, AuditErrorKind, ChainedLog, Context, Durability, Error, Guard, KeyError,
    ManifestPolicy, Role,
};

use crate::fail::{Exit, Failure, Result, io_at};
use crate::keys::{RingArgs, load};

/// Who asks, under which policy, recorded where.
#[derive(Debug, Args)]
pub(crate) struct GuardArgs {
    #[command(flatten)]
    pub(crate) ring: RingArgs,
    /// Policy manifest (TOML) that decides; purposes that need consent are refused (the
    /// command has no consent registry)
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Audit log directory for this command's records (its own: a running service holds the
    /// lock on its log)
    #[arg(long, value_name = "DIR")]
    audit_dir: PathBuf,
    /// Who is asking (recorded in the audit log)
    #[arg(long, value_name = "ID")]
    principal: String,
    /// A role of the principal (repeat for several)
    #[arg(long = "role", value_name = "ROLE", required = true)]
    roles: Vec<String>,
    /// The principal's region, for the residency check (default: the home region)
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
}

impl GuardArgs {
    pub(crate) fn accessor(&self) -> Accessor {
        let a = Accessor::new(&self.principal, self.roles.iter().map(|r| Role::new(r)));
        match &self.region {
            Some(r) => a.in_region(r),
            None => a,
        }
    }

    /// The guard: keyring, policy and the audit log, opened (and recovered) like a service
    /// opens them.
    pub(crate) fn build(&self) -> Result<Guard> {
        if self.principal.is_empty() {
            return Err(Failure::input("--principal: empty"));
        }
        let text = crate::policy::read_manifest(&self.manifest)?;
        let policy = ManifestPolicy::from_toml(&text).map_err(|_| {
            let m = self.manifest.display();
            Failure::input(format_args!(
                "{m}: not a valid manifest (run `fieldseal policy lint {m}`)"
            ))
        })?;
        let ring = load(&self.ring.keyring, &self.ring.kek)?;
        let (audit, signer) = ring
            .audit_keys()
            .map_err(|e| Failure::input(format_args!("{}: {e}", self.ring.keyring.display())))?;
        let dir = &self.audit_dir;
        let d = dir.display();
        let (log, _) = ChainedLog::builder(dir)
            .key(audit)
            .checkpoint_key(signer)
            .durability(Durability::Durable)
            .open()
            .map_err(|e| match e.kind() {
                AuditErrorKind::Locked => Failure::input(format_args!(
                    "{d}: the audit log is in use by another process (a running service?); \
                     give the command its own --audit-dir"
                )),
                AuditErrorKind::CheckpointsMissing => Failure::input(format_args!(
                    "{d}: the audit log has entries but no checkpoints; run `fieldseal audit \
                     verify {d}` before writing to it"
                )),
                AuditErrorKind::Corrupt { seq } => Failure::verify(format_args!(
                    "{d}: the audit log is damaged at seq {seq} (run `fieldseal audit verify \
                     {d}`); nothing was opened"
                )),
                _ => match std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                {
                    Some(io) => io_at(dir, io),
                    None => Failure::input(format_args!("{d}: {e}")),
                },
            })?;
        Guard::builder()
            .keyring(ring)
            .policy(policy)
            .audit(log)
            .build()
            .map_err(|e| Failure::input(format_args!("{e}")))
    }
}

/// The context parts a value is bound to.
#[derive(Debug, Args)]
pub(crate) struct ContextArgs {
    /// A context part the value is bound to, as when it was sealed: PART=VALUE (repeat, e.g.
    /// --context table=users --context column=phone --context row=17)
    #[arg(long = "context", value_name = "PART=VALUE")]
    parts: Vec<String>,
}

impl ContextArgs {
    pub(crate) fn context(&self) -> Result<Context> {
        context_of(self.parts.iter().map(|p| {
            p.split_once('=')
                .ok_or_else(|| Failure::input(format_args!("--context: `PART=VALUE` expected")))
        }))
    }
}

/// A context from (part, value) pairs; a bad part is named, its value never.
pub(crate) fn context_of<'a>(
    parts: impl IntoIterator<Item = Result<(&'a str, &'a str)>>,
) -> Result<Context> {
    let mut ctx = Context::new();
    for p in parts {
        let (name, value) = p?;
        ctx = ctx.with(name, value.as_bytes());
        if let Err(e) = ctx.check() {
            return Err(Failure::input(format_args!("context part `{name}`: {e}")));
        }
    }
    Ok(ctx)
}

/// `what` failed for an error of opening or sealing: the exit code and message for it.
pub(crate) fn open_error(e: &Error) -> Failure {
    match e {
        Error::Denied { reason } => Failure::Report {
            exit: Exit::Denied,
            message: format!("access denied ({}): {reason}", reason.label()),
        },
        Error::Integrity => Failure::verify(
            "the envelope does not authenticate in this context (another --context, or the \
             envelope was altered)",
        ),
        Error::Key(KeyError::Retired { version, .. }) => Failure::input(format_args!(
            "the envelope is sealed under key version {version}, which this keyring retired"
        )),
        Error::Key(KeyError::UnknownVersion(v)) => Failure::input(format_args!(
            "the envelope is sealed under key version {v}, which this keyring does not have"
        )),
        Error::Audit(a) => Failure::input(format_args!(
            "the audit record could not be written ({a}); nothing was opened"
        )),
        _ => Failure::input(e),
    }
}
