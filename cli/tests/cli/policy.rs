//! `policy lint` and `policy explain` on the reference manifest and broken ones.

use super::*;

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
