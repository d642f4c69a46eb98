//! `rewrap`: a row file re-sealed under the active key version, resumably.

use fieldseal::EnvelopeInfo;

use super::*;

/// `n` rows `{"id":…,"envelope":…,"note":…}` sealed under the fixture's keyring (version 1),
/// each bound to `table=users`, `row=<id>`.
fn rows(f: &Fixture, n: usize) -> Vec<(usize, String)> {
    let kek = ok(FileKek::open(f.path("kek")));
    let ring = ok(Keyring::load(&kek, f.path("ring.json")));
    let guard = ok(Guard::builder()
        .keyring(ring)
        .policy(AllowList::new())
        .audit(fieldseal::NullSink)
        .build());
    let phone = ok(PhoneNumber::parse("13800138000"));
    (1..=n)
        .map(|id| {
            let ctx = Context::new().table("users").row(&id.to_string());
            let s: Sealed<PhoneNumber, Service> = ok(guard.seal(&phone, &ctx));
            (id, s.to_text())
        })
        .collect()
}

fn rewrap_args(f: &Fixture, input: &Path, out: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["rewrap".into(), "--in".into(), input.into()];
    args.extend(["--out".into(), out.into()]);
    for a in ["--context", "table=users", "--context-from", "row=id"] {
        args.push(a.into());
    }
    args.extend(["--keyring".into(), f.path("ring.json").into()]);
    args.extend(["--kek".into(), f.path("kek").into()]);
    for a in [
        "--manifest",
        REFERENCE,
        "--principal",
        "rotation-job",
        "--role",
        "key_admin",
    ] {
        args.push(a.into());
    }
    args.extend(["--audit-dir".into(), f.path("cli-log").into()]);
    args
}

fn rewrap(f: &Fixture, input: &Path, out: &Path) -> Command {
    let mut cmd = fieldseal();
    cmd.args(rewrap_args(f, input, out));
    cmd
}

fn versions_in(text: &str, field: impl Fn(&str) -> String) -> Vec<u32> {
    text.lines()
        .map(|l| {
            EnvelopeInfo::from_text(&field(l))
                .map(|i| i.key_version().get())
                .unwrap_or(0)
        })
        .collect()
}

fn json_envelope(line: &str) -> String {
    let v: serde_json::Value = ok(serde_json::from_str(line));
    v["envelope"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn rewrap_jsonl_to_the_active_version_keeping_other_fields() {
    let f = Fixture::new();
    let input = f.path("rows.jsonl");
    let mut text = String::new();
    for (id, env) in rows(&f, 5) {
        text.push_str(&format!(
            "{{\"id\":{id},\"envelope\":\"{env}\",\"note\":\"n{id}\"}}\n"
        ));
    }
    ok(std::fs::write(&input, &text));
    f.key(&["rotate"]).assert().success();
    let out = f.path("rows.v2.jsonl");
    rewrap(&f, &input, &out)
        .assert()
        .success()
        .stdout(contains("5 of 5 rows rewrapped to key version 2"));
    let new = ok(std::fs::read_to_string(&out));
    assert_eq!(versions_in(&new, json_envelope), vec![2; 5]);
    assert!(new.contains(r#""note":"n3""#), "{new}");
    assert!(!f.path("rows.v2.jsonl.partial").exists());
    assert!(!f.path("rows.v2.jsonl.checkpoint").exists());
    // Never overwritten.
    rewrap(&f, &input, &out)
        .assert()
        .code(2)
        .stderr(contains("already exists"));
    // The batch was recorded like any rewrap.
    fieldseal()
        .args(["audit", "tail", "--json"])
        .arg(f.path("cli-log"))
        .arg("--keyring")
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("kek"))
        .assert()
        .success()
        .stdout(contains(r#""action":"rewrap""#))
        .stdout(contains(r#""principal":"rotation-job""#));
}

#[test]
fn rewrap_csv_reports_bad_rows_and_keeps_them() {
    let f = Fixture::new();
    let input = f.path("rows.csv");
    let mut text = String::from("id,envelope,comment\n");
    for (id, env) in rows(&f, 4) {
        // Row 3 is bound to another row id than its own: it does not authenticate.
        let row = if id == 3 { 99 } else { id };
        text.push_str(&format!("{row},{env},\"a, b\"\n"));
    }
    text.push_str("5,fs1:AAAA,\n");
    ok(std::fs::write(&input, &text));
    f.key(&["rotate"]).assert().success();
    let out = f.path("rows.v2.csv");
    rewrap(&f, &input, &out)
        .assert()
        .code(1)
        .stdout(contains("3 of 5 rows rewrapped"))
        .stderr(contains("2 rows not rewrapped"));
    let new = ok(std::fs::read_to_string(&out));
    let envelopes = versions_in(&new, |l| l.split(',').nth(1).unwrap_or_default().to_owned());
    assert_eq!(envelopes, vec![0, 2, 2, 1, 2, 0], "{new}");
    let errors = ok(std::fs::read_to_string(f.path("rows.v2.csv.errors.jsonl")));
    assert!(
        errors.contains(r#"{"row":3,"error":"sealed value failed authentication"}"#),
        "{errors}"
    );
    assert!(
        errors.contains(r#"{"row":5,"error":"malformed sealed value"#),
        "{errors}"
    );
}

#[test]
fn rewrap_resumes_after_being_killed() {
    let f = Fixture::new();
    let input = f.path("rows.jsonl");
    let mut text = String::new();
    for (id, env) in rows(&f, 3000) {
        text.push_str(&format!("{{\"id\":{id},\"envelope\":\"{env}\"}}\n"));
    }
    ok(std::fs::write(&input, &text));
    f.key(&["rotate"]).assert().success();
    let out = f.path("rows.v2.jsonl");
    let mut child = ok(std::process::Command::new(env!("CARGO_BIN_EXE_fieldseal"))
        .args(rewrap_args(&f, &input, &out))
        .args(["--batch", "20"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn());
    let checkpoint = f.path("rows.v2.jsonl.checkpoint");
    let started = std::time::Instant::now();
    while !checkpoint.exists() && started.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ok(child.kill());
    ok(child.wait());
    assert!(!out.exists(), "no output before every row is done");
    rewrap(&f, &input, &out)
        .arg("--json")
        .assert()
        .success()
        .stdout(contains(r#""resumed_at":"#))
        .stdout(contains(r#""resumed_at":0"#).not());
    let new = ok(std::fs::read_to_string(&out));
    assert_eq!(versions_in(&new, json_envelope), vec![2; 3000]);
    assert_eq!(new.lines().count(), 3000);
}
