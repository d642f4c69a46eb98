//! End-to-end tests of the `fieldseal` command: every subcommand, its output and its error
//! paths, against real keyrings, envelopes and audit logs made with the library.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use fieldseal::builtin::Service;
use fieldseal::{
    Accessor, Action, AllowList, ChainedLog, Clock, Context, Durability, Field, FieldKind, FileKek,
    FixedClock, Guard, Keyring, PhoneNumber, Role, Sealed, SubjectId,
};
use predicates::prelude::*;
use predicates::str::contains;
use tempfile::TempDir;

#[path = "cli/audit.rs"]
mod audit;
#[path = "cli/inspect.rs"]
mod inspect;
#[path = "cli/keys.rs"]
mod keys;
#[path = "cli/operate.rs"]
mod operate;
#[path = "cli/policy.rs"]
mod policy;
#[path = "cli/rewrap.rs"]
mod rewrap;

/// Unwraps a test step, naming what failed.
fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn fieldseal() -> Command {
    let mut cmd = cargo_bin_cmd!("fieldseal");
    // A user error must never print a backtrace, whatever the environment says.
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/reference-policy.toml"
);

const SEALED_AT: u64 = 1_700_000_000;

/// A keyring under a file KEK, an audit log with six entries (four allowed reads of subject
/// `alice`, one of `bob`, one denial), and an envelope sealed at [`SEALED_AT`].
struct Fixture {
    dir: TempDir,
    envelope: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = ok(tempfile::tempdir());
        let kek = ok(FileKek::create(dir.path().join("kek")));
        let ring = ok(Keyring::create(&kek, dir.path().join("ring.json")));
        let (audit, signer) = ok(ring.audit_keys());
        let (log, _) = ok(ChainedLog::builder(dir.path().join("log"))
            .key(audit)
            .checkpoint_key(signer)
            .durability(Durability::Durable)
            .open());
        let log = Arc::new(log);
        let clock = Arc::new(FixedClock::new(SEALED_AT));
        let guard = ok(Guard::builder()
            .keyring(ring)
            .policy(
                AllowList::new()
                    .allow::<Service>(
                        Role::new("support_agent"),
                        FieldKind::PhoneNumber,
                        Action::Reveal,
                    )
                    .allow::<Service>(
                        Role::new("support_agent"),
                        FieldKind::PhoneNumber,
                        Action::Mask,
                    ),
            )
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .audit(Arc::clone(&log))
            .build());
        let agent = Accessor::new("agent-7", [Role::new("support_agent")]);
        let intern = Accessor::new("intern-2", [Role::new("intern")]);
        let phone = ok(PhoneNumber::parse("138 0013 8000"));
        let ctx = |subject: &str| {
            Context::new()
                .table("users")
                .column("phone")
                .subject(&SubjectId::new(subject))
        };
        let sealed: Sealed<PhoneNumber, Service> = ok(guard.seal(&phone, &ctx("alice")));
        let for_bob: Sealed<PhoneNumber, Service> = ok(guard.seal(&phone, &ctx("bob")));
        for _ in 0..3 {
            clock.advance(60);
            drop(ok(guard.reveal(&agent, &sealed, &ctx("alice"))));
        }
        clock.advance(60);
        let _masked = ok(guard.mask(&agent, &sealed, &ctx("alice")));
        drop(ok(guard.reveal(&agent, &for_bob, &ctx("bob"))));
        assert!(guard.reveal(&intern, &sealed, &ctx("alice")).is_err());
        drop(guard);
        ok(log.sync());
        drop(log);
        Self {
            dir,
            envelope: sealed.to_text(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn segment(&self) -> PathBuf {
        self.path("log").join("audit-000001.log")
    }

    /// `audit <sub> <log dir> --audit-key-from ring.json --kek kek`.
    fn audit(&self, sub: &str) -> Command {
        let mut cmd = fieldseal();
        cmd.arg("audit")
            .arg(sub)
            .arg(self.path("log"))
            .arg("--audit-key-from")
            .arg(self.path("ring.json"))
            .arg("--kek")
            .arg(self.path("kek"));
        cmd
    }

    fn key(&self, args: &[&str]) -> Command {
        let mut cmd = fieldseal();
        cmd.arg("key")
            .args(args)
            .arg("--keyring")
            .arg(self.path("ring.json"))
            .arg("--kek")
            .arg(self.path("kek"));
        cmd
    }

    /// Rewrites line `n` (from 1) of the first segment with `f`.
    fn edit_line(&self, n: usize, f: impl FnOnce(&str) -> String) {
        let text = ok(std::fs::read_to_string(self.segment()));
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[n - 1] = f(&lines[n - 1]);
        ok(std::fs::write(self.segment(), lines.join("\n") + "\n"));
    }
}

fn no_backtrace() -> impl Predicate<str> {
    contains("panicked").not().and(contains("backtrace").not())
}

// ------------------------------------------------------------------------------ help

#[test]
fn every_subcommand_has_help() {
    let subcommands: &[&[&str]] = &[
        &[],
        &["keygen"],
        &["key"],
        &["key", "list"],
        &["key", "add"],
        &["key", "activate"],
        &["key", "retire"],
        &["key", "rotate"],
        &["key", "checkpoint-public"],
        &["inspect"],
        &["audit"],
        &["audit", "verify"],
        &["audit", "report"],
        &["audit", "tail"],
        &["policy"],
        &["policy", "lint"],
        &["policy", "explain"],
        &["completions"],
        &["seal"],
        &["reveal"],
        &["mask"],
        &["rewrap"],
    ];
    for sub in subcommands {
        fieldseal()
            .args(*sub)
            .arg("--help")
            .assert()
            .success()
            .stdout(contains("Usage: fieldseal"));
    }
}

#[test]
fn usage_errors_exit_2() {
    fieldseal().assert().code(2).stderr(contains("Usage"));
    fieldseal()
        .args(["inspect", "--bogus"])
        .assert()
        .code(2)
        .stderr(contains("--bogus"));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        fieldseal()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains("fieldseal"));
    }
    fieldseal().args(["completions", "tcsh"]).assert().code(2);
}
