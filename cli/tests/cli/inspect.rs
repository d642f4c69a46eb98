//! `inspect`: envelope headers, one or many, and malformed input.

use super::*;

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
