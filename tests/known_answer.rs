//! Frozen known-answer envelopes: format version 1 must keep opening, byte for byte, forever.
//!
//! `tests/data/envelopes_v1.txt` was produced by sealing fixed values under a fixed root key with
//! a deterministic random source and a fixed clock. Each line: `kind<TAB>row<TAB>value<TAB>text`
//! (value with `\n` escaped as `\\n`). This test (1) opens every frozen envelope and compares the
//! value, and (2) re-seals every value and requires the identical text, so any change to
//! derivation, header layout or encoding fails here. Regenerate only for a new format version.

mod common;

use std::sync::Arc;

use common::*;
use fieldseal::builtin::Service;
use fieldseal::hazmat::DeterministicRandom;
use fieldseal::*;

const ROOT: [u8; 32] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const SEED: [u8; 32] = [0x42; 32];
const SEALED_AT: u64 = 1_764_000_000;
const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/envelopes_v1.txt");

fn kat_guard() -> Guard {
    Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes(ROOT)).unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(NullSink)
        .clock(Arc::new(FixedClock::new(SEALED_AT)))
        .dangerous_random_source(Arc::new(DeterministicRandom::dangerous_new(SEED)))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn cases() -> Vec<(FieldKind, &'static str)> {
    vec![
        (FieldKind::IdNumber, "11010519491231002X"),
        (FieldKind::PhoneNumber, "+8613800138000"),
        (FieldKind::PhoneNumber, "+14155552671"),
        (FieldKind::Email, "zhang.san@example.com"),
        (FieldKind::PersonName, "张三"),
        (FieldKind::PersonName, "Jane Q. Doe"),
        (
            FieldKind::PostalAddress,
            "country=CN\nregion=北京市\ncity=北京市\ndistrict=朝阳区\nstreet=建国路88号\npostal_code=100022",
        ),
        (FieldKind::IpAddress, "192.0.2.17"),
        (FieldKind::IpAddress, "2001:db8:1:2::17"),
        (
            FieldKind::DeviceInfo,
            "user_agent=Mozilla/5.0 (X11; Linux x86_64)\nos=Linux\nmodel=ThinkPad X1",
        ),
        (FieldKind::Text, "clicked /products/sensor-a after 42 s"),
    ]
}

fn ctx(row: usize) -> Context {
    Context::new()
        .table("kat")
        .column("value")
        .row(&row.to_string())
}

/// Seals `value` of `kind` and returns the text envelope.
fn seal(g: &Guard, kind: FieldKind, value: &str, row: usize) -> String {
    fn go<F: Field>(g: &Guard, value: &str, row: usize) -> String {
        let v = F::parse(value).unwrap_or_else(|e| panic!("{e}"));
        g.seal::<F, Service>(&v, &ctx(row))
            .unwrap_or_else(|e| panic!("{e}"))
            .to_text()
    }
    match kind {
        FieldKind::IdNumber => go::<IdNumber>(g, value, row),
        FieldKind::PhoneNumber => go::<PhoneNumber>(g, value, row),
        FieldKind::Email => go::<Email>(g, value, row),
        FieldKind::PersonName => go::<PersonName>(g, value, row),
        FieldKind::PostalAddress => go::<PostalAddress>(g, value, row),
        FieldKind::IpAddress => go::<IpAddress>(g, value, row),
        FieldKind::DeviceInfo => go::<DeviceInfo>(g, value, row),
        FieldKind::Text => go::<Text>(g, value, row),
        other => panic!("no case for {other}"),
    }
}

/// Opens `text` and returns the canonical bytes of the value, and of `expected` parsed afresh.
fn open(g: &Guard, kind: FieldKind, text: &str, expected: &str, row: usize) -> (Vec<u8>, Vec<u8>) {
    fn go<F: Field>(g: &Guard, text: &str, expected: &str, row: usize) -> (Vec<u8>, Vec<u8>) {
        let s = Sealed::<F, Service>::from_text(text).unwrap_or_else(|e| panic!("{e}"));
        let r = g
            .reveal(&tester(), &s, &ctx(row))
            .unwrap_or_else(|e| panic!("row {row}: {e}"));
        let want = F::parse(expected).unwrap_or_else(|e| panic!("{e}"));
        (
            r.expose_secret().canonical_bytes().to_vec(),
            want.canonical_bytes().to_vec(),
        )
    }
    match kind {
        FieldKind::IdNumber => go::<IdNumber>(g, text, expected, row),
        FieldKind::PhoneNumber => go::<PhoneNumber>(g, text, expected, row),
        FieldKind::Email => go::<Email>(g, text, expected, row),
        FieldKind::PersonName => go::<PersonName>(g, text, expected, row),
        FieldKind::PostalAddress => go::<PostalAddress>(g, text, expected, row),
        FieldKind::IpAddress => go::<IpAddress>(g, text, expected, row),
        FieldKind::DeviceInfo => go::<DeviceInfo>(g, text, expected, row),
        FieldKind::Text => go::<Text>(g, text, expected, row),
        other => panic!("no case for {other}"),
    }
}

fn generate() -> String {
    let g = kat_guard();
    let mut out = String::new();
    for (row, (kind, value)) in cases().into_iter().enumerate() {
        let text = seal(&g, kind, value, row);
        out.push_str(&format!(
            "{}\t{row}\t{}\t{text}\n",
            kind.label(),
            value.replace('\n', "\\n")
        ));
    }
    out
}

#[test]
fn frozen_envelopes_open_and_reproduce() {
    if std::env::var_os("FIELDSEAL_BLESS_KAT").is_some() && !std::path::Path::new(FILE).exists() {
        std::fs::write(FILE, generate()).unwrap_or_else(|e| panic!("{e}"));
    }
    let frozen = std::fs::read_to_string(FILE).unwrap_or_else(|e| panic!("{FILE}: {e}"));
    let g = kat_guard();
    let mut n = 0;
    for line in frozen.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        assert_eq!(parts.len(), 4, "{line}");
        let kind = FieldKind::from_label(parts[0]).unwrap_or_else(|| panic!("{line}"));
        let row: usize = parts[1].parse().unwrap_or_else(|e| panic!("{e}"));
        let value = parts[2].replace("\\n", "\n");
        let (got, want) = open(&g, kind, parts[3], &value, row);
        assert_eq!(got, want, "row {row}");
        n += 1;
    }
    assert_eq!(n, cases().len());
    // Same key, seed and clock: sealing again yields the identical bytes.
    assert_eq!(generate(), frozen, "envelope format or derivation drifted");
    println!("known-answer: {n} frozen v1 envelopes open and reproduce byte for byte");
}
