//! `fieldseal`: the operators' command for fieldseal keyrings, envelopes, audit logs and policy
//! manifests.
//!
//! Exit codes: 0 success, 1 a verification failed, 2 a usage or input error, 3 access denied.

mod audit;
mod fail;
mod guard;
mod inspect;
mod keyfile;
mod keys;
mod locate;
mod operate;
mod out;
mod policy;
mod rewrap;
mod rows;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::fail::{Exit, Failure};

/// Operate fieldseal: keyrings, envelopes, audit logs and policy manifests.
///
/// Nothing is decrypted unless a subcommand's job is to reveal (`reveal`, `mask`, `rewrap`, which
/// go through the policy and the audit log like any call site); no key is ever printed.
/// Exit status: 0 success, 1 verification failed, 2 usage or input error, 3 access denied.
#[derive(Debug, Parser)]
#[command(name = "fieldseal", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a keyring file (and its key-encryption key file if missing)
    Keygen(keys::KeygenArgs),
    /// List, add, activate, retire and rotate the key versions of a keyring file
    Key(keys::KeyArgs),
    /// Describe envelopes (kind, purpose, key version, sealed-at, sizes) without decrypting
    Inspect(inspect::InspectArgs),
    /// Verify an audit log, report who read a subject's data, show the latest entries
    Audit(audit::AuditArgs),
    /// Lint a policy manifest, explain a decision
    Policy(policy::PolicyArgs),
    /// Seal a value read from standard input; prints the envelope
    Seal(operate::SealArgs),
    /// Reveal a value: the manifest policy decides and the audit log records it first
    Reveal(operate::OpenArgs),
    /// Print a value's masked rendering (policy and audit as for reveal)
    Mask(operate::OpenArgs),
    /// Re-seal the envelopes of a file (JSON lines or CSV) under the active key version
    Rewrap(rewrap::RewrapArgs),
    /// Print a shell completion script
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Keygen(a) => keys::keygen(a),
        Command::Key(a) => keys::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Policy(a) => policy::run(a),
        Command::Seal(a) => operate::seal(a),
        Command::Reveal(a) => operate::open(a, false),
        Command::Mask(a) => operate::open(a, true),
        Command::Rewrap(a) => rewrap::run(a),
        Command::Completions { shell } => {
            // Generated into memory: clap_complete panics on a failed write, this reports it.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "fieldseal", &mut script);
            std::io::stdout()
                .lock()
                .write_all(&script)
                .map_err(Failure::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Report { exit, message }) => {
            eprintln!("fieldseal: {message}");
            exit.code()
        }
        Err(Failure::Reported(exit)) => exit.code(),
        Err(Failure::BrokenPipe) => Exit::code_quiet(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
