//! How the command fails: one line on standard error and an exit code.
//!
//! Exit codes: 0 success; 1 a verification failed (an audit log that does not verify, a
//! manifest with problems, an envelope that does not authenticate); 2 a usage or input error (a
//! missing or malformed file, a wrong key, a bad argument; clap uses 2 for its own usage errors
//! too); 3 access denied by the policy.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// The exit code of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// What was checked did not verify.
    Verify,
    /// Bad usage or input.
    Input,
    /// The policy refused.
    Denied,
}

impl Exit {
    pub(crate) fn code(self) -> ExitCode {
        match self {
            Exit::Verify => ExitCode::from(1),
            Exit::Input => ExitCode::from(2),
            Exit::Denied => ExitCode::from(3),
        }
    }
}

/// Why a subcommand stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Print `message` on standard error, exit with `exit`.
    Report { exit: Exit, message: String },
    /// Everything was already reported; exit with `exit`.
    Reported(Exit),
    /// The reader of standard output went away (`| head`): stop quietly.
    BrokenPipe,
}

impl Failure {
    /// A usage or input error.
    pub(crate) fn input(message: impl fmt::Display) -> Self {
        Failure::Report {
            exit: Exit::Input,
            message: message.to_string(),
        }
    }

    /// A failed verification.
    pub(crate) fn verify(message: impl fmt::Display) -> Self {
        Failure::Report {
            exit: Exit::Verify,
            message: message.to_string(),
        }
    }
}

impl From<io::Error> for Failure {
    /// Only for writes to standard output; file errors are mapped where the file is known.
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::input(format_args!("cannot write output: {e}"))
        }
    }
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

/// `path: what` for an I/O error on a file the user named. Never includes the file's content.
pub(crate) fn io_at(path: &std::path::Path, e: &io::Error) -> Failure {
    let what = match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AlreadyExists => "already exists".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => e.to_string(),
    };
    Failure::input(format_args!("{}: {what}", path.display()))
}

impl Exit {
    /// Exit status after the reader of standard output went away: success, as `head` expects.
    pub(crate) fn code_quiet() -> ExitCode {
        ExitCode::SUCCESS
    }
}
