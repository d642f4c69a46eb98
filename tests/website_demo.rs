//! The website demo, step by step: every promise of the reference privacy policy behaves as
//! the policy says, and the JSON output carries each step.
#![cfg(feature = "share")]

#[path = "../examples/website/demo.rs"]
#[allow(dead_code, unreachable_pub)]
mod demo;

use std::collections::BTreeMap;

#[test]
fn every_clause_behaves_as_the_policy_says() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Two runs: the second loads the keyring the first created and opens its carried value.
    for run in 0..2 {
        let mut out = Vec::new();
        let steps = with_demo_dir(dir.path(), || demo::run(&mut out, true))
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        let bad: Vec<String> = steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| format!("{} / {}: {}", s.clause, s.step, s.outcome))
            .collect();
        assert!(bad.is_empty(), "run {run}: {bad:#?}");

        // Every line is JSON; steps carry clause, expected and outcome.
        let text = String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
        let mut per_clause: BTreeMap<String, usize> = BTreeMap::new();
        let mut json_steps = 0;
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v.get("step").is_some() {
                json_steps += 1;
                assert_eq!(v["ok"], serde_json::Value::Bool(true), "{line}");
                let expected = v["expected"].as_str().unwrap_or_default();
                let outcome = v["outcome"].as_str().unwrap_or_default();
                match expected {
                    "allowed" => assert!(outcome == "allowed" || outcome == "holds", "{line}"),
                    "refused" => assert!(outcome.starts_with("refused: "), "{line}"),
                    other => panic!("unexpected expectation {other}: {line}"),
                }
                *per_clause
                    .entry(v["clause"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
        assert_eq!(json_steps, steps.len());
        for clause in [
            "collection.inquiry",
            "collection.account",
            "collection.activity",
            "collection.device",
            "collection.cookies",
            "purpose.service",
            "purpose.improvement",
            "purpose.security",
            "purpose.marketing",
            "purpose.legal",
            "storage.location",
            "storage.retention",
            "security.encryption",
            "security.access_control",
            "security.keys",
            "security.audit",
            "rights.erasure",
            "rights.access_report",
            "rights.identity",
            "rights.access",
            "rights.correction",
            "rights.cancellation",
            "sharing",
        ] {
            assert!(
                per_clause.contains_key(clause),
                "run {run}: no step for {clause}"
            );
        }
        if run == 1 {
            assert!(
                steps.iter().any(|s| s.step == "mask it" && s.ok),
                "the second run did not open the value the first carried over"
            );
        }
        // No plaintext of a value the demo only stores (the argon2 password) appears.
        assert!(
            !text.contains("correct horse"),
            "the password reached the output"
        );
    }
}

/// Runs `f` with the demo's data directory set to `dir` (set once per process).
fn with_demo_dir<T>(dir: &std::path::Path, f: impl FnOnce() -> T) -> T {
    demo::set_data_dir(dir.to_path_buf());
    f()
}
