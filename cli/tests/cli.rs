//! End-to-end tests of the `fieldseal` command: every subcommand, its output and its error
//! paths, against real keyrings, envelopes and audit logs made with the library.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use fieldseal::builtin::Service;
use fieldseal::{
    Accessor, Action, AllowList, AuditErrorKind, ChainedLog, Clock, Context, Durability, Field,
    FieldKind, FileKek, FixedClock, Guard, Keyring, PhoneNumber, Role, Sealed, SubjectId,
};
use predicates::prelude::*;
use predicates::str::contains;
use tempfile::TempDir;

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

// ------------------------------------------------------------------------------ keys

#[test]
fn keygen_creates_kek_and_keyring_and_never_overwrites() {
    let dir = ok(tempfile::tempdir());
    let kek = dir.path().join("kek");
    let ring = dir.path().join("ring.json");
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(&kek)
        .arg("--out")
        .arg(&ring)
        .assert()
        .success()
        .stdout(contains("created KEK file"))
        .stdout(contains("version 1 active"))
        .stdout(contains("checkpoint public key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            ok(std::fs::metadata(&kek)).permissions().mode() & 0o777,
            0o600
        );
    }
    let before = ok(std::fs::read(&ring));
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(&kek)
        .arg("--out")
        .arg(&ring)
        .assert()
        .code(2)
        .stderr(contains("ring.json: already exists"));
    assert_eq!(ok(std::fs::read(&ring)), before);
    // An existing KEK is reused, not replaced.
    let second = dir.path().join("second.json");
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(&kek)
        .arg("--out")
        .arg(&second)
        .arg("--json")
        .assert()
        .success()
        .stdout(contains("\"kek_created\":null"));
    let kek = ok(FileKek::open(&kek));
    ok(Keyring::load(&kek, &second));
}

#[test]
fn keygen_with_an_environment_kek() {
    let dir = ok(tempfile::tempdir());
    let ring = dir.path().join("ring.json");
    fieldseal()
        .env(
            "FS_TEST_KEK",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .args(["keygen", "--kek-env", "FS_TEST_KEK", "--out"])
        .arg(&ring)
        .assert()
        .success()
        .stdout(contains("under env:"));
    fieldseal()
        .env(
            "FS_TEST_KEK",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .args(["key", "list", "--kek-env", "FS_TEST_KEK", "--keyring"])
        .arg(&ring)
        .assert()
        .success();
    fieldseal()
        .env_remove("FS_TEST_KEK")
        .args(["key", "list", "--kek-env", "FS_TEST_KEK", "--keyring"])
        .arg(&ring)
        .assert()
        .code(2)
        .stderr(contains("environment variable FS_TEST_KEK is not set"));
    fieldseal()
        .env("FS_TEST_KEK", "c2hvcnQ=")
        .args(["key", "list", "--kek-env", "FS_TEST_KEK", "--keyring"])
        .arg(&ring)
        .assert()
        .code(2)
        .stderr(contains("FS_TEST_KEK: not a KEK"));
}

#[test]
fn keygen_kek_in_a_missing_directory() {
    let dir = ok(tempfile::tempdir());
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(dir.path().join("no/such/dir/kek"))
        .arg("--out")
        .arg(dir.path().join("ring.json"))
        .assert()
        .code(2)
        .stderr(contains("kek"))
        .stderr(no_backtrace());
    assert!(!dir.path().join("ring.json").exists());
}

#[test]
fn key_lifecycle() {
    let f = Fixture::new();
    f.key(&["list"])
        .assert()
        .success()
        .stdout(contains("1  active"));
    f.key(&["add"]).assert().success().stdout(contains(
        "added version 2 (now decrypt_only); active version 1",
    ));
    f.key(&["activate", "2", "--json"])
        .assert()
        .success()
        .stdout(contains(r#""changed":2,"state":"active","active":2"#));
    f.key(&["retire", "1"])
        .assert()
        .code(2)
        .stderr(contains("pass --yes"));
    f.key(&["retire", "1", "--yes"])
        .assert()
        .success()
        .stdout(contains("retired version 1"));
    f.key(&["rotate"])
        .assert()
        .success()
        .stdout(contains("rotated to version 3 (now active)"));
    f.key(&["list", "--json"]).assert().success().stdout(contains(
        r#""versions":[{"version":1,"state":"retired"},{"version":2,"state":"decrypt_only"},{"version":3,"state":"active"}]"#,
    ));
    f.key(&["retire", "3", "--yes"])
        .assert()
        .code(2)
        .stderr(contains("version 3 is active"));
    f.key(&["activate", "1"])
        .assert()
        .code(2)
        .stderr(contains("version 1 is retired"));
    f.key(&["activate", "9"])
        .assert()
        .code(2)
        .stderr(contains("no key version 9"));
    // The file holds the changes: a fresh load sees them.
    let kek = ok(FileKek::open(f.path("kek")));
    let ring = ok(Keyring::load(&kek, f.path("ring.json")));
    assert_eq!(ring.active_version().get(), 3);
}

#[test]
fn key_checkpoint_public_matches_the_keyring() {
    let f = Fixture::new();
    let kek = ok(FileKek::open(f.path("kek")));
    let ring = ok(Keyring::load(&kek, f.path("ring.json")));
    let (_, signer) = ok(ring.audit_keys());
    let hex: String = signer
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    f.key(&["checkpoint-public"])
        .assert()
        .success()
        .stdout(format!("{hex}\n"));
}

#[test]
fn wrong_kek_damaged_keyring_and_missing_files() {
    let f = Fixture::new();
    ok(FileKek::create(f.path("other-kek")));
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("other-kek"))
        .assert()
        .code(2)
        .stderr(contains(
            "ring.json: the keyring was written under another key-encryption key",
        ))
        .stderr(no_backtrace());
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("missing-kek"))
        .assert()
        .code(2)
        .stderr(contains("missing-kek: KEK file not found"));
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("missing.json"))
        .arg("--kek")
        .arg(f.path("kek"))
        .assert()
        .code(2)
        .stderr(contains("missing.json: no such file or directory"));
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("ring.json"))
        .assert()
        .code(2)
        .stderr(contains("pass --kek FILE or --kek-env VAR"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        ok(std::fs::set_permissions(
            f.path("kek"),
            std::fs::Permissions::from_mode(0o644),
        ));
        f.key(&["list"])
            .assert()
            .code(2)
            .stderr(contains("readable or writable by group or others"));
        ok(std::fs::set_permissions(
            f.path("kek"),
            std::fs::Permissions::from_mode(0o600),
        ));
    }
    let text = ok(std::fs::read_to_string(f.path("ring.json")));
    ok(std::fs::write(
        f.path("ring.json"),
        text.replacen("\"generation\":", "\"generation\" :", 1),
    ));
    f.key(&["list"])
        .assert()
        .code(2)
        .stderr(contains("keyring integrity check failed"));
    ok(std::fs::write(f.path("ring.json"), "not a keyring\n"));
    f.key(&["list"])
        .assert()
        .code(2)
        .stderr(contains("not a fieldseal keyring file"));
}

// ------------------------------------------------------------------------------ inspect

#[test]
fn inspect_one_envelope() {
    let f = Fixture::new();
    fieldseal()
        .args(["inspect", &f.envelope])
        .assert()
        .success()
        .stdout(contains("kind         phone_number"))
        .stdout(contains("purpose      service"))
        .stdout(contains("key version  1"))
        .stdout(contains("sealed at    2023-11-14T22:13:20Z (1700000000)"))
        .stdout(contains("subject key  no"))
        .stdout(contains(format!("{} chars text", f.envelope.len())));
    fieldseal()
        .args(["inspect", "--json", &f.envelope])
        .assert()
        .success()
        .stdout(contains(r#""kind":"phone_number","purpose":"service","key_version":1,"sealed_at":1700000000,"sealed_at_utc":"2023-11-14T22:13:20Z","subject_key":false"#));
}

#[test]
fn inspect_never_prints_the_value() {
    let f = Fixture::new();
    fieldseal()
        .args(["inspect", &f.envelope])
        .assert()
        .success()
        .stdout(contains("8613800138000").not())
        .stdout(contains("138").not());
}

#[test]
fn inspect_many_reports_each_bad_line_with_its_number() {
    let f = Fixture::new();
    let list = f.path("envelopes.txt");
    let lines = [
        f.envelope.clone(),
        "fs1:AAAA".to_owned(),
        String::new(),
        format!("  {}  \r", f.envelope),
        "hello".to_owned(),
    ];
    ok(std::fs::write(&list, lines.join("\n")));
    fieldseal()
        .arg("inspect")
        .arg("--file")
        .arg(&list)
        .assert()
        .code(2)
        .stdout(contains("envelopes.txt:1"))
        .stdout(contains("envelopes.txt:4"))
        .stderr(contains("envelopes.txt:2: malformed sealed value"))
        .stderr(contains(
            "envelopes.txt:5: malformed sealed value: text form has an unknown prefix",
        ))
        .stderr(contains("2 of 4 envelopes are malformed"))
        .stderr(contains("hello").not());
    // The same from standard input, as JSON lines.
    fieldseal()
        .args(["inspect", "--json", "-"])
        .write_stdin(lines.join("\n"))
        .assert()
        .code(2)
        .stdout(contains(r#"{"line":1,"#))
        .stdout(contains(r#"{"line":2,"error":"malformed sealed value"#))
        .stdout(contains(r#"{"line":4,"#))
        .stderr(contains("stdin:5:"));
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    use std::io::Read as _;
    let f = Fixture::new();
    let list = f.path("many.txt");
    ok(std::fs::write(
        &list,
        format!("{}\n", f.envelope).repeat(5000),
    ));
    let mut child = ok(std::process::Command::new(env!("CARGO_BIN_EXE_fieldseal"))
        .arg("inspect")
        .arg("--file")
        .arg(&list)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn());
    let mut first = [0u8; 16];
    if let Some(out) = child.stdout.as_mut() {
        ok(out.read_exact(&mut first));
    }
    drop(child.stdout.take());
    let out = ok(child.wait_with_output());
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inspect_errors() {
    fieldseal()
        .args(["inspect", "fs1:AAAA"])
        .assert()
        .code(2)
        .stderr(contains("fieldseal: argument 1: malformed sealed value"))
        .stderr(no_backtrace());
    fieldseal()
        .args(["inspect", "--file", "/no/such/envelopes.txt"])
        .assert()
        .code(2)
        .stderr(contains(
            "/no/such/envelopes.txt: no such file or directory",
        ));
    fieldseal()
        .args(["inspect", "-"])
        .write_stdin("\n\n")
        .assert()
        .code(2)
        .stderr(contains("no envelope to inspect"));
    // A line far longer than any envelope is reported, not buffered.
    fieldseal()
        .args(["inspect", "-"])
        .write_stdin(format!("fs1:{}\n", "A".repeat(200_000)))
        .assert()
        .code(2)
        .stderr(contains("stdin:1: line longer than any envelope"));
}

// ------------------------------------------------------------------------------ audit

#[test]
fn audit_verify_intact() {
    let f = Fixture::new();
    f.audit("verify")
        .assert()
        .success()
        .stdout(contains("intact"))
        .stdout(contains("6 (seq 1-6)"))
        .stdout(contains("(from the keyring)"));
    f.audit("verify")
        .arg("--json")
        .assert()
        .success()
        .stdout(contains(r#""intact":true,"entries":6"#))
        .stdout(contains(r#""fault":null"#));
}

#[test]
fn audit_verify_names_the_edited_entry() {
    let f = Fixture::new();
    f.edit_line(3, |l| l.replacen("agent-7", "agent-8", 1));
    f.audit("verify")
        .assert()
        .code(1)
        .stdout(contains("DAMAGED"))
        .stderr(contains("verification failed: edited at seq 3"))
        .stderr(contains("audit-000001.log line 3"))
        .stderr(contains("entries 1-2 verified"))
        .stderr(no_backtrace());
    f.audit("verify")
        .arg("--json")
        .assert()
        .code(1)
        .stdout(contains(r#""fault":{"seq":3,"class":"edited","#))
        .stdout(contains(r#""line":3"#));
}

#[test]
fn audit_verify_one_flipped_byte() {
    let f = Fixture::new();
    let mut bytes = ok(std::fs::read(f.segment()));
    let second_line = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    // A byte inside the MAC of entry 2.
    let at = second_line
        + bytes[second_line..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(0)
        - 5;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    ok(std::fs::write(f.segment(), bytes));
    f.audit("verify")
        .assert()
        .code(1)
        .stderr(contains("edited at seq 2"));
}

#[test]
fn audit_verify_deleted_and_truncated() {
    let f = Fixture::new();
    f.edit_line(2, |_| String::new());
    let text = ok(std::fs::read_to_string(f.segment())).replacen("\n\n", "\n", 1);
    ok(std::fs::write(f.segment(), text));
    f.audit("verify")
        .assert()
        .code(1)
        .stderr(contains("deleted at seq 2"));

    let g = Fixture::new();
    let text = ok(std::fs::read_to_string(g.segment()));
    let keep: Vec<&str> = text.lines().take(4).collect();
    ok(std::fs::write(g.segment(), keep.join("\n") + "\n"));
    g.audit("verify")
        .assert()
        .code(1)
        .stderr(contains("truncated_behind_checkpoint at seq 5"))
        .stderr(contains("checkpoints.log"));
}

#[test]
fn audit_verify_a_live_log() {
    // A writer appends (with a checkpoint every 3 entries) while the log is verified: a tail
    // caught mid-write must not be reported as damage.
    let f = Fixture::new();
    let kek = ok(FileKek::open(f.path("kek")));
    let ring = ok(Keyring::load(&kek, f.path("ring.json")));
    // The fixture's log is dropped, but its background timer may still hold it (and the
    // directory lock) for a moment.
    let mut tries = 0;
    let log = loop {
        let (audit, signer) = ok(ring.audit_keys());
        match ChainedLog::builder(f.path("log"))
            .key(audit)
            .checkpoint_key(signer)
            .durability(Durability::Durable)
            .checkpoint_every(3, std::time::Duration::from_secs(1))
            .open()
        {
            Ok((log, _)) => break log,
            Err(e) if e.kind() == AuditErrorKind::Locked && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let guard = ok(Guard::builder()
        .keyring(ring)
        .policy(AllowList::new().allow::<Service>(
            Role::new("support_agent"),
            FieldKind::PhoneNumber,
            Action::Reveal,
        ))
        .audit(log)
        .build());
    let sealed: Sealed<PhoneNumber, Service> =
        ok(guard.seal(&ok(PhoneNumber::parse("13800138000")), &Context::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let agent = Accessor::new("agent-7", [Role::new("support_agent")]);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop(ok(guard.reveal(&agent, &sealed, &Context::new())));
            }
        })
    };
    for _ in 0..20 {
        f.audit("verify").assert().success();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ok(writer.join().map_err(|_| "writer panicked"));
    f.audit("verify").assert().success();
}

#[test]
fn audit_verify_with_the_wrong_keys() {
    let f = Fixture::new();
    let other = Fixture::new();
    fieldseal()
        .args(["audit", "verify"])
        .arg(f.path("log"))
        .arg("--audit-key-from")
        .arg(other.path("ring.json"))
        .arg("--kek")
        .arg(other.path("kek"))
        .assert()
        .code(1)
        .stderr(contains("edited at seq 1"))
        .stderr(contains("check that the audit key is this log's"));
    // The right audit key with another log's checkpoint key.
    let other_public = String::from_utf8(
        other
            .key(&["checkpoint-public"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap_or_default();
    f.audit("verify")
        .arg("--checkpoint-key")
        .arg(other_public.trim())
        .assert()
        .code(1)
        .stderr(contains("bad_checkpoint_signature at seq 1"))
        .stderr(contains("check that the checkpoint key"));
    // A keyring under the wrong KEK is an input error, not a verification failure.
    fieldseal()
        .args(["audit", "verify"])
        .arg(f.path("log"))
        .arg("--audit-key-from")
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(other.path("kek"))
        .assert()
        .code(2)
        .stderr(contains("written under another key-encryption key"));
}

#[test]
fn audit_verify_with_a_raw_audit_key_file() {
    let f = Fixture::new();
    // A 32-byte key that is not this log's: every entry fails from seq 1.
    let key = f.path("audit.key");
    ok(std::fs::write(&key, "11".repeat(32)));
    let public = String::from_utf8(
        f.key(&["checkpoint-public"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap_or_default();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        ok(std::fs::set_permissions(
            &key,
            std::fs::Permissions::from_mode(0o644),
        ));
        fieldseal()
            .args(["audit", "verify"])
            .arg(f.path("log"))
            .arg("--audit-key")
            .arg(&key)
            .arg("--checkpoint-key")
            .arg(public.trim())
            .assert()
            .code(2)
            .stderr(contains("readable or writable by group or others"));
        ok(std::fs::set_permissions(
            &key,
            std::fs::Permissions::from_mode(0o600),
        ));
    }
    fieldseal()
        .args(["audit", "verify"])
        .arg(f.path("log"))
        .arg("--audit-key")
        .arg(&key)
        .arg("--checkpoint-key")
        .arg(public.trim())
        .assert()
        .code(1)
        .stderr(contains("edited at seq 1"));
    // A raw audit key needs a checkpoint key.
    fieldseal()
        .args(["audit", "verify"])
        .arg(f.path("log"))
        .arg("--audit-key")
        .arg(&key)
        .assert()
        .code(2)
        .stderr(contains("--checkpoint-key"));
    // A checkpoint key from a file, and one that is neither hex nor a file.
    ok(std::fs::write(f.path("ckpt.pub"), public.as_bytes()));
    f.audit("verify")
        .arg("--checkpoint-key")
        .arg(f.path("ckpt.pub"))
        .assert()
        .success()
        .stdout(contains("(given)"));
    f.audit("verify")
        .args(["--checkpoint-key", "zz"])
        .assert()
        .code(2)
        .stderr(contains("neither 64 hex digits nor an existing file"));
}

#[test]
fn audit_missing_inputs() {
    let f = Fixture::new();
    fieldseal()
        .args(["audit", "verify", "/no/such/log", "--audit-key-from"])
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("kek"))
        .assert()
        .code(2)
        .stderr(contains("/no/such/log: not a directory"));
    let empty = f.path("empty");
    ok(std::fs::create_dir(&empty));
    fieldseal()
        .args(["audit", "verify"])
        .arg(&empty)
        .arg("--audit-key-from")
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("kek"))
        .assert()
        .code(2)
        .stderr(contains("no audit log segments"));
    // No keys at all: clap's usage error.
    fieldseal()
        .args(["audit", "verify"])
        .arg(f.path("log"))
        .assert()
        .code(2);
    ok(std::fs::remove_file(f.path("log").join("checkpoints.log")));
    f.audit("verify")
        .assert()
        .code(1)
        .stderr(contains("checkpoints_missing at seq 1"));
}

#[test]
fn audit_report_lists_who_read_a_subject() {
    let f = Fixture::new();
    f.audit("report")
        .args(["--subject", "alice"])
        .assert()
        .success()
        .stdout(contains("4 read(s)"))
        .stdout(contains("agent-7"))
        .stdout(contains("intern-2").not())
        .stdout(contains("alice").not());
    f.audit("report")
        .args(["--subject", "-", "--json"])
        .write_stdin("bob\n")
        .assert()
        .success()
        .stdout(contains(r#""accesses":[{"seq":5,"#))
        .stdout(contains(r#""action":"reveal""#));
    f.audit("report")
        .args(["--subject", "nobody"])
        .assert()
        .success()
        .stdout(contains("0 read(s)"));
    f.edit_line(2, |l| l.replacen("reveal", "revea1", 1));
    f.audit("report")
        .args(["--subject", "alice"])
        .assert()
        .code(1)
        .stderr(contains("edited at seq 2"))
        .stderr(contains("no report is made from a damaged log"));
}

#[test]
fn audit_tail() {
    let f = Fixture::new();
    let out = f.audit("tail").args(["-n", "2"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("     6  "), "{text}");
    assert!(text.contains("denied:not_permitted"), "{text}");
    f.audit("tail")
        .arg("--json")
        .assert()
        .success()
        .stdout(contains(r#"{"seq":1,"time_utc":"#))
        .stdout(contains(r#""outcome":"allowed""#));
    f.edit_line(5, |l| l.replacen("agent-7", "agent-9", 1));
    f.audit("tail")
        .assert()
        .code(1)
        .stdout(contains("     4  "))
        .stdout(contains("     5  ").not())
        .stderr(contains("edited at seq 5"));
}

// ------------------------------------------------------------------------------ policy

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/reference-policy.toml"
);

fn manifest(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("policy.toml");
    ok(std::fs::write(&p, text));
    p
}

#[test]
fn policy_lint_ok() {
    fieldseal()
        .args(["policy", "lint", REFERENCE])
        .assert()
        .success()
        .stdout(contains("ok (5 purposes, 8 roles)"));
}

#[test]
fn policy_lint_lists_every_problem_with_line_and_column() {
    let dir = ok(tempfile::tempdir());
    let p = manifest(
        dir.path(),
        r#"version = 1
home_region = "CN"

[purposes.service]
legal_basis = "contract"

[purposes.marketing]
legal_basis = "consent"
retention_days = 365

[roles.agent]
inherits = ["lead"]
[roles.agent.grants.service]
reveal = ["phone_numbr"]
peek = ["email"]

[roles.lead]
inherits = ["agent"]
[roles.lead.grants.sales]
reveal = ["email"]
"#,
    );
    let out = fieldseal()
        .args(["policy", "lint"])
        .arg(&p)
        .assert()
        .code(1)
        .stderr(contains("policy.toml: 6 problems"))
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out).into_owned();
    let expected = [
        "policy.toml:4:11: lint: purposes.service: no retention period (retention_days)",
        "policy.toml:7:11: lint: purposes.marketing: consent-based purpose must be withdrawable",
        "policy.toml:12:13: lint: role inheritance cycle: agent -> lead",
        "policy.toml:14:11: lint: roles.agent.grants.service.reveal: unknown field kind `phone_numbr`",
        "policy.toml:15:1: lint: roles.agent.grants.service: unknown action `peek`",
        "policy.toml:19:20: lint: roles.lead.grants.sales: undefined purpose `sales`",
    ];
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
    fieldseal()
        .args(["policy", "lint", "--json"])
        .arg(&p)
        .assert()
        .code(1)
        .stdout(contains(r#""ok":false"#))
        .stdout(contains(r#"{"line":14,"column":11,"stage":"lint","#));
}

#[test]
fn policy_lint_syntax_and_shape_errors() {
    let dir = ok(tempfile::tempdir());
    let p = manifest(
        dir.path(),
        "version = 1\nhome_region = \"CN\"\n[purposes.service\nlegal_basis = \"contract\"\nretention_days = = 3\n",
    );
    fieldseal()
        .args(["policy", "lint"])
        .arg(&p)
        .assert()
        .code(1)
        .stdout(contains("policy.toml:3:"))
        .stdout(contains("policy.toml:5:"))
        .stdout(contains(": syntax: unclosed table"))
        .stderr(contains("3 problems"));
    let p = manifest(
        dir.path(),
        "version = 1\nhome_region = \"CN\"\n[purposes.service]\nretention_days = 3\n",
    );
    fieldseal()
        .args(["policy", "lint"])
        .arg(&p)
        .assert()
        .code(1)
        .stdout(contains(
            "policy.toml:3:1: shape: missing field `legal_basis`",
        ))
        .stderr(contains("1 problem"));
    ok(std::fs::write(&p, b"version = 1\nhome_region = \"\xff\"\n"));
    fieldseal()
        .args(["policy", "lint"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(contains("policy.toml:2:16: not UTF-8 text"));
    fieldseal()
        .args(["policy", "lint", "/no/such/policy.toml"])
        .assert()
        .code(2)
        .stderr(contains("/no/such/policy.toml: no such file or directory"));
}

#[test]
fn policy_lint_limits() {
    let dir = ok(tempfile::tempdir());
    // A chain r0 -> r1 -> … -> r70: deeper than the library allows.
    let mut text = String::from("version = 1\nhome_region = \"CN\"\n");
    for i in 0..70 {
        text.push_str(&format!(
            "[roles.r{i:02}]\ninherits = [\"r{:02}\"]\n",
            i + 1
        ));
    }
    text.push_str("[roles.r70]\n");
    let p = manifest(dir.path(), &text);
    fieldseal()
        .args(["policy", "lint"])
        .arg(&p)
        .assert()
        .code(1)
        .stdout(contains("policy.toml:4:12: lint: "))
        .stdout(contains("r00"));
    let p = manifest(dir.path(), &"# padding\n".repeat(200_000));
    fieldseal()
        .args(["policy", "lint"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(contains("the most a manifest may have"));
}

#[test]
fn policy_explain_allowed_through_inheritance() {
    fieldseal()
        .args([
            "policy", "explain", "--manifest", REFERENCE, "--role", "support_lead", "--purpose",
            "service", "--kind", "phone_number", "--action", "mask",
        ])
        .assert()
        .success()
        .stdout(contains(
            "allowed: role `support_lead` holds roles.support_agent.grants.service.reveal on phone_number",
        ))
        .stdout(contains("(inherited: support_lead -> support_agent)"))
        .stdout(contains("(reveal implies mask)"))
        .stdout(contains("retention  730 days from sealed-at"));
}

#[test]
fn policy_explain_denied_names_the_check() {
    fieldseal()
        .args([
            "policy",
            "explain",
            "--manifest",
            REFERENCE,
            "--role",
            "support_agent",
            "--purpose",
            "service",
            "--kind",
            "id_number",
            "--action",
            "reveal",
            "--json",
        ])
        .assert()
        .success()
        .stdout(contains(
            r#""decision":"deny","reason":"not_permitted","failed_check":"grant""#,
        ))
        .stdout(contains(r#""held_actions":["mask"]"#));
    fieldseal()
        .args([
            "policy",
            "explain",
            "--manifest",
            REFERENCE,
            "--role",
            "ghost",
            "--purpose",
            "service",
            "--kind",
            "email",
            "--action",
            "reveal",
        ])
        .assert()
        .success()
        .stdout(contains("denied by the grant check"))
        .stdout(contains("role `ghost` is not defined"));
    fieldseal()
        .args([
            "policy",
            "explain",
            "--manifest",
            REFERENCE,
            "--role",
            "dpo",
            "--purpose",
            "service",
            "--kind",
            "phone",
            "--action",
            "reveal",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "--kind phone: unknown field kind (known: id_number",
        ));
    fieldseal()
        .args([
            "policy",
            "explain",
            "--manifest",
            REFERENCE,
            "--role",
            "dpo",
            "--purpose",
            "service",
            "--kind",
            "email",
            "--action",
            "read",
        ])
        .assert()
        .code(2)
        .stderr(contains("--action read: unknown action"));
    let dir = ok(tempfile::tempdir());
    let bad = manifest(dir.path(), "version = 2\nhome_region = \"CN\"\n");
    fieldseal()
        .args(["policy", "explain", "--manifest"])
        .arg(&bad)
        .args([
            "--role",
            "dpo",
            "--purpose",
            "service",
            "--kind",
            "email",
            "--action",
            "reveal",
        ])
        .assert()
        .code(2)
        .stderr(contains("not a valid manifest (run `fieldseal policy lint"));
}
