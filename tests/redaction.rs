//! Canary scan: Debug, Display and error messages of every type that holds plaintext, keys or
//! identifiers never contain them.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::*;
use fieldseal::builtin::Service;
use fieldseal::*;

const CANARY: &str = "CANARYqv";
const KEY: [u8; 32] = *b"KEYCANARYKEYCANARYKEYCANARYKEY!!";

fn assert_clean(what: &str, s: &str) {
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
    let key_dbg = format!("{:?}", &KEY[..8]);
    for needle in [
        CANARY,
        "KEYCANARY",
        &key_b64[..12],
        &key_dbg[1..12],
        "13800138000",
        "1101051949",
    ] {
        assert!(!s.contains(needle), "{what} leaks {needle:?}: {s}");
    }
}

fn scan<T: std::fmt::Debug>(what: &str, v: &T) {
    assert_clean(what, &format!("{v:?}"));
    assert_clean(what, &format!("{v:#?}"));
}

#[test]
fn no_plaintext_keys_or_identifiers_in_debug_display_or_errors() {
    let sink = Arc::new(MemorySink::new());
    let ring = Keyring::single(RootKey::from_bytes(KEY)).unwrap_or_else(|e| panic!("{e}"));
    scan("Keyring", &ring);
    let guard = guard_with(ring, Arc::clone(&sink));
    scan("Guard", &guard);
    scan("RootKey", &RootKey::from_bytes(KEY));
    let subject = SubjectId::new(CANARY);
    scan("SubjectId", &subject);
    let ctx = Context::new().table("t").row(CANARY).subject(&subject);
    scan("Context", &ctx);

    let text = Text::parse(&format!("note {CANARY}")).unwrap_or_else(|e| panic!("{e}"));
    let phone = PhoneNumber::parse("13800138000").unwrap_or_else(|e| panic!("{e}"));
    let id = IdNumber::parse("11010519491231002X").unwrap_or_else(|e| panic!("{e}"));
    let name = PersonName::parse(CANARY).unwrap_or_else(|e| panic!("{e}"));
    scan("Text", &text);
    scan("PhoneNumber", &phone);
    scan("IdNumber", &id);
    scan("PersonName", &name);

    let s_text: Sealed<Text, Service> = guard.seal(&text, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let s_phone: Sealed<PhoneNumber, Service> =
        guard.seal(&phone, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let s_id: Sealed<IdNumber, Service> = guard.seal(&id, &ctx).unwrap_or_else(|e| panic!("{e}"));
    assert_clean(
        "Sealed<Text>",
        &format!("{s_text:?} {s_text} {:?}", s_text.info()),
    );
    scan("Sealed<Phone>", &s_phone);
    scan("Sealed<Id>", &s_id);

    let a = tester();
    let r_text = guard
        .reveal(&a, &s_text, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let r_phone = guard
        .reveal(&a, &s_phone, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let r_id = guard
        .reveal(&a, &s_id, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    scan("Revealed<Text>", &r_text);
    scan("Revealed<Phone>", &r_phone);
    scan("Revealed<Id>", &r_id);
    // The plaintext is really there, behind the one accessor.
    assert!(r_text.expose_secret().as_str().contains(CANARY));

    // Errors from every failing path.
    let other = Context::new().table("t").row("elsewhere");
    let mut errors: Vec<Error> = vec![
        guard
            .reveal(&a, &s_text, &other)
            .err()
            .unwrap_or_else(|| panic!("opened elsewhere")),
        guard
            .reveal(&Accessor::new("x", [Role::new("none")]), &s_text, &ctx)
            .err()
            .unwrap_or_else(|| panic!("no grant")),
        Sealed::<Text, Service>::from_text(&format!("fs1:{CANARY}"))
            .err()
            .unwrap_or_else(|| panic!()),
        Sealed::<Text, Service>::from_text(CANARY)
            .err()
            .unwrap_or_else(|| panic!()),
        RootKey::from_base64(CANARY)
            .err()
            .unwrap_or_else(|| panic!()),
        Error::from(
            Context::new()
                .with(CANARY, b"v")
                .check()
                .err()
                .unwrap_or_else(|| panic!()),
        ),
    ];
    for input in [
        format!("1101051949123100{CANARY}"),
        format!("+86 {CANARY}"),
        format!("{CANARY}@"),
        format!("{CANARY}@{CANARY}"),
        format!("\u{0}{CANARY}"),
        "11010519491231002Y".to_owned(),
        "13800138000x".to_owned(),
    ] {
        for e in [
            IdNumber::parse(&input).err(),
            PhoneNumber::parse(&input).err(),
            Email::parse(&input).err(),
            IpAddress::parse(&input).err(),
            PostalAddress::parse(&input).err(),
            DeviceInfo::parse(&input).err(),
        ]
        .into_iter()
        .flatten()
        {
            errors.push(e.into());
        }
    }
    for e in &errors {
        assert_clean("Error Display", &e.to_string());
        scan("Error Debug", e);
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            assert_clean("Error source", &s.to_string());
            src = s.source();
        }
    }

    // Audit records.
    for r in sink.records() {
        scan("AuditRecord", &r);
    }
    assert!(sink.len() >= 5);
    println!(
        "redaction: {} errors, {} audit records and 20 values scanned",
        errors.len(),
        sink.len()
    );
}

/// A guard's Debug names its parts (so a log line is useful) without their contents; a
/// builder's names nothing.
#[test]
fn guard_debug_names_its_parts() {
    let sink = Arc::new(MemorySink::new());
    let ring = Keyring::single(RootKey::from_bytes(KEY)).unwrap_or_else(|e| panic!("{e}"));
    let s = format!("{:?}", guard_with(ring, sink));
    assert!(s.starts_with("Guard {"), "{s}");
    for part in ["keyring:", "policy:", "audit:", "consent:"] {
        assert!(s.contains(part), "{part} missing from {s}");
    }
    assert_eq!(format!("{:?}", Guard::builder()), "GuardBuilder { .. }");
}
