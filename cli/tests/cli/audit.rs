//! `audit verify | report | tail` on intact, tampered, truncated and live logs.

use super::*;

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
    let (audit, signer) = ok(ring.audit_keys());
    let (log, _) = ok(ChainedLog::builder(f.path("log"))
        .key(audit)
        .checkpoint_key(signer)
        .durability(Durability::Durable)
        .checkpoint_every(3, std::time::Duration::from_secs(1))
        .open());
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
