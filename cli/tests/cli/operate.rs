//! `seal`, `reveal` and `mask`: through the manifest policy, recorded in the audit log.

use super::*;

/// `reveal`/`mask` with the reference manifest, the fixture's keyring and `audit-dir`.
fn open(f: &Fixture, sub: &str, envelope: &str, roles: &[&str], ctx: &[&str]) -> Command {
    let mut cmd = fieldseal();
    cmd.arg(sub)
        .arg(envelope)
        .arg("--keyring")
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("kek"))
        .args(["--manifest", REFERENCE, "--principal", "ops-1"])
        .arg("--audit-dir")
        .arg(f.path("cli-log"));
    for r in roles {
        cmd.args(["--role", r]);
    }
    for c in ctx {
        cmd.args(["--context", c]);
    }
    cmd
}

fn seal(f: &Fixture, value: &str, ctx: &[&str]) -> String {
    let mut cmd = fieldseal();
    cmd.args(["seal", "--kind", "phone_number", "--purpose", "service"])
        .arg("--keyring")
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("kek"))
        .args(["--manifest", REFERENCE]);
    for c in ctx {
        cmd.args(["--context", c]);
    }
    let out = cmd
        .write_stdin(value)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8_lossy(&out).trim().to_owned()
}

fn cli_log(f: &Fixture) -> Command {
    let mut cmd = fieldseal();
    cmd.args(["audit", "tail", "--json"])
        .arg(f.path("cli-log"))
        .arg("--keyring")
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("kek"));
    cmd
}

#[test]
fn seal_then_reveal_and_mask_with_an_audit_record_each() {
    let f = Fixture::new();
    let ctx = ["table=users", "column=phone", "row=17"];
    let envelope = seal(&f, "138 0013 8000\n", &ctx);
    assert!(envelope.starts_with("fs1:"), "{envelope}");
    fieldseal()
        .args(["inspect", &envelope])
        .assert()
        .success()
        .stdout(contains("kind         phone_number"));
    open(&f, "reveal", &envelope, &["support_agent"], &ctx)
        .assert()
        .success()
        .stdout("+8613800138000\n");
    open(&f, "mask", &envelope, &["support_agent"], &ctx)
        .assert()
        .success()
        .stdout("+86 138****8000\n");
    open(&f, "reveal", "-", &["support_agent"], &ctx)
        .arg("--json")
        .write_stdin(format!("{envelope}\n"))
        .assert()
        .success()
        .stdout(contains(r#""value":"+8613800138000""#));
    // The same records as any call site: principal, roles, outcome, and this command's site.
    cli_log(&f)
        .assert()
        .success()
        .stdout(contains(r#""principal":"ops-1""#))
        .stdout(contains(r#""action":"reveal""#))
        .stdout(contains(r#""action":"mask""#))
        .stdout(contains(r#""site":"cli/src/operate.rs:"#));
}

#[test]
fn reveal_denied_and_failed_are_recorded_too() {
    let f = Fixture::new();
    let ctx = ["table=users", "row=1"];
    let envelope = seal(&f, "13800138000", &ctx);
    open(&f, "reveal", &envelope, &["marketing"], &ctx)
        .assert()
        .code(3)
        .stdout("")
        .stderr(contains("access denied (not_permitted)"));
    open(
        &f,
        "reveal",
        &envelope,
        &["support_agent"],
        &["table=users", "row=2"],
    )
    .assert()
    .code(1)
    .stdout("")
    .stderr(contains("does not authenticate in this context"));
    cli_log(&f)
        .assert()
        .success()
        .stdout(contains(r#""outcome":"denied:not_permitted""#))
        .stdout(contains(r#""outcome":"failed:integrity""#));
}

#[test]
fn seal_and_reveal_input_errors() {
    let f = Fixture::new();
    let mut cmd = fieldseal();
    cmd.args(["seal", "--kind", "phone_number", "--purpose", "service"])
        .arg("--keyring")
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("kek"));
    cmd.write_stdin("12ab")
        .assert()
        .code(2)
        .stderr(contains("stdin: not a valid phone_number"))
        .stderr(contains("12ab").not());
    open(&f, "reveal", "fs1:AAAA", &["support_agent"], &[])
        .assert()
        .code(2)
        .stderr(contains("envelope: malformed sealed value"));
    open(
        &f,
        "reveal",
        &f.envelope,
        &["support_agent"],
        &["no-equals-sign"],
    )
    .assert()
    .code(2)
    .stderr(contains("--context: `PART=VALUE` expected"));
    open(
        &f,
        "reveal",
        &f.envelope,
        &["support_agent"],
        &["Bad Name=x"],
    )
    .assert()
    .code(2)
    .stderr(contains("context part `Bad Name`"));
    // A log directory held by a running writer is refused, not shared.
    let kek = ok(FileKek::open(f.path("kek")));
    let ring = ok(Keyring::load(&kek, f.path("ring.json")));
    let (audit, signer) = ok(ring.audit_keys());
    let (_held, _) = ok(ChainedLog::builder(f.path("cli-log"))
        .key(audit)
        .checkpoint_key(signer)
        .open());
    open(&f, "reveal", &f.envelope, &["support_agent"], &[])
        .assert()
        .code(2)
        .stderr(contains("in use by another process"));
}
