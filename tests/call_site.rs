//! The audit record names the caller's `file:line`, not a line inside the crate: `reveal` and
//! `mask` are `#[track_caller]`. Each call below captures `file!()` and `line!()` on the line of
//! the call itself, so the expected site is exact.

mod common;

use std::sync::Arc;

use common::*;
use fieldseal::builtin::Service;
use fieldseal::*;

/// `file:line` of the line this is written on (for nested macros `line!()` reports the outermost
/// invocation, so the line is the caller's).
macro_rules! here {
    () => {
        concat!(file!(), ":", line!())
    };
}

fn site(loc: &std::panic::Location<'_>) -> String {
    format!("{}:{}", loc.file(), loc.line())
}

fn setup() -> (
    Guard,
    Arc<MemorySink>,
    Sealed<PhoneNumber, Service>,
    Context,
) {
    let sink = Arc::new(MemorySink::new());
    let g = guard_with(
        Keyring::generate().unwrap_or_else(|e| panic!("{e}")),
        Arc::clone(&sink),
    );
    let ctx = Context::new().table("customers").column("phone").row("9");
    let phone = PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}"));
    let sealed = g
        .seal::<PhoneNumber, Service>(&phone, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    (g, sink, sealed, ctx)
}

#[test]
fn reveal_records_the_callers_line() {
    assert_eq!(here!(), concat!(file!(), ":", line!()));
    let (g, sink, s, ctx) = setup();
    let (r, at) = (g.reveal(&tester(), &s, &ctx), here!());
    drop(r.unwrap_or_else(|e| panic!("{e}")));
    let records = sink.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, Outcome::Allowed);
    assert_eq!(site(records[0].call_site), at);
}

#[test]
fn mask_records_the_callers_line() {
    let (g, sink, s, ctx) = setup();
    let (r, at) = (g.mask(&tester(), &s, &ctx), here!());
    r.unwrap_or_else(|e| panic!("{e}"));
    let records = sink.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, Action::Mask);
    assert_eq!(site(records[0].call_site), at);
}

#[test]
fn denials_and_failures_record_the_callers_line() {
    let (g, sink, s, ctx) = setup();
    let intern = Accessor::new("bob", [Role::new("intern")]);
    let (r, denied_at) = (g.reveal(&intern, &s, &ctx), here!());
    assert!(matches!(r, Err(Error::Denied { .. })));
    // Wrong context: allowed and recorded, then authentication fails and a second event follows.
    let other = Context::new().table("customers").column("phone").row("10");
    let (r, failed_at) = (g.mask(&tester(), &s, &other), here!());
    assert!(matches!(r, Err(Error::Integrity)));
    let got: Vec<(Outcome, String)> = sink
        .records()
        .iter()
        .map(|r| (r.outcome, site(r.call_site)))
        .collect();
    assert_eq!(
        got,
        [
            (Outcome::Denied(DenyReason::NotPermitted), denied_at.into()),
            (Outcome::Allowed, failed_at.into()),
            (Outcome::Failed(FailureKind::Integrity), failed_at.into()),
        ]
    );
}

/// The persisted form: the `site` of a `ChainedLog` entry is the same `file:line`.
#[test]
fn the_audit_log_stores_the_callers_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = open_log(dir.path(), Durability::Durable, 1000);
    let log = Arc::new(log);
    let g = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(Arc::clone(&log))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new().table("customers").column("phone").row("9");
    let phone = PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}"));
    let s = g
        .seal::<PhoneNumber, Service>(&phone, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let (r, revealed_at) = (g.reveal(&tester(), &s, &ctx), here!());
    drop(r.unwrap_or_else(|e| panic!("{e}")));
    let (r, masked_at) = (g.mask(&tester(), &s, &ctx), here!());
    r.unwrap_or_else(|e| panic!("{e}"));
    drop(g);
    log.sync().unwrap_or_else(|e| panic!("{e}"));
    let report = verify_dir(dir.path());
    assert!(report.is_valid());
    let sites: Vec<&str> = report.records().iter().map(|r| r.site.as_str()).collect();
    assert_eq!(sites, [revealed_at, masked_at]);
}
