//! Tamper suite: every single-bit flip, truncation, extension and text-character change of
//! random envelopes is rejected, and so is every swap to another place, purpose, kind or key.

mod common;

use std::sync::Arc;

use common::*;
use fieldseal::builtin::{Marketing, Service};
use fieldseal::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

fieldseal::purposes! {
    /// Same length as "service", one letter off: a header relabelling target.
    Servicf = "servicf";
}

const ENVELOPES: usize = 1000;
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Opening any bytes as `Sealed<Text, Service>` must fail (parse or authenticate).
fn rejected_bytes(g: &Guard, bytes: &[u8], ctx: &Context) -> bool {
    match Sealed::<Text, Service>::from_bytes(bytes) {
        Err(_) => true,
        Ok(s) => g.reveal(&tester(), &s, ctx).is_err(),
    }
}

fn rejected_text(g: &Guard, text: &str, ctx: &Context) -> bool {
    match Sealed::<Text, Service>::from_text(text) {
        Err(_) => true,
        Ok(s) => g.reveal(&tester(), &s, ctx).is_err(),
    }
}

#[test]
fn every_mutation_of_1000_random_envelopes_is_rejected() {
    let g = guard_with(
        Keyring::generate().unwrap_or_else(|e| panic!("{e}")),
        Arc::new(MemorySink::new()),
    );
    let mut runner = TestRunner::new(Config::default());
    let strat = ("[ -~\u{4e00}-\u{4e20}]{1,64}", "[a-z]{1,8}", "[0-9]{1,6}");
    let (mut tried, mut accepted) = (0u64, 0u64);
    let mut text_alternatives = 0u64;
    for i in 0..ENVELOPES {
        let (value, table, row) = strat
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("{e}"))
            .current();
        let ctx = Context::new().table(&table).column("note").row(&row);
        let text = Text::parse(&value).unwrap_or_else(|e| panic!("{e}"));
        let sealed: Sealed<Text, Service> = g.seal(&text, &ctx).unwrap_or_else(|e| panic!("{e}"));
        let bytes = sealed.as_bytes().to_vec();
        // The unmodified envelope opens.
        assert!(!rejected_bytes(&g, &bytes, &ctx));

        for bit in 0..bytes.len() * 8 {
            let mut m = bytes.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            tried += 1;
            accepted += u64::from(!rejected_bytes(&g, &m, &ctx));
        }
        for len in 0..bytes.len() {
            tried += 1;
            accepted += u64::from(!rejected_bytes(&g, &bytes[..len], &ctx));
        }
        for extra in [&[0u8][..], &[0xff], &[0; 16], &bytes[..1]] {
            let mut m = bytes.clone();
            m.extend_from_slice(extra);
            tried += 1;
            accepted += u64::from(!rejected_bytes(&g, &m, &ctx));
        }
        let t = sealed.to_text();
        let tb = t.as_bytes();
        for pos in 0..tb.len() {
            // One replacement everywhere; every replacement for the first envelopes.
            let all = i < 20;
            let choices: Vec<u8> = if all {
                B64.iter()
                    .copied()
                    .chain([b'=', b'+', b'/', b' ', b':', b'.'])
                    .collect()
            } else {
                vec![B64[(B64.iter().position(|&c| c == tb[pos]).unwrap_or(0) + 1) % 64]]
            };
            for c in choices {
                if c == tb[pos] {
                    continue;
                }
                let mut m = tb.to_vec();
                m[pos] = c;
                let m = String::from_utf8(m).unwrap_or_else(|e| panic!("{e}"));
                tried += 1;
                text_alternatives += 1;
                accepted += u64::from(!rejected_text(&g, &m, &ctx));
            }
        }
    }
    println!(
        "tamper: {ENVELOPES} envelopes, {tried} mutations tried ({text_alternatives} text), {accepted} accepted"
    );
    assert_eq!(accepted, 0);
}

#[test]
fn swaps_to_another_place_purpose_kind_or_key_are_rejected() {
    let sink = Arc::new(MemorySink::new());
    let ring = Keyring::builder()
        .key(v(1), RootKey::from_bytes([1; 32]))
        .key(v(2), RootKey::from_bytes([2; 32]))
        .active(v(1))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let g = guard_with(ring, sink);
    let a = tester();
    let subject = SubjectId::new("subject-1");
    let ctx = Context::new()
        .table("users")
        .column("email")
        .row("1")
        .subject(&subject);
    let email = Email::parse("someone@example.com").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Email, Service> = g.seal(&email, &ctx).unwrap_or_else(|e| panic!("{e}"));
    assert!(g.reveal(&a, &sealed, &ctx).is_ok());

    let other_places = [
        Context::new()
            .table("users")
            .column("email")
            .row("2")
            .subject(&subject),
        Context::new()
            .table("users")
            .column("backup_email")
            .row("1")
            .subject(&subject),
        Context::new()
            .table("admins")
            .column("email")
            .row("1")
            .subject(&subject),
        Context::new()
            .table("users")
            .column("email")
            .row("1")
            .subject(&SubjectId::new("subject-2")),
        Context::new().table("users").column("email").row("1"),
        Context::new(),
    ];
    for (i, c) in other_places.iter().enumerate() {
        assert!(
            matches!(g.reveal(&a, &sealed, c), Err(Error::Integrity)),
            "place {i}"
        );
    }

    // Another purpose or kind: the type system refuses to parse it as such.
    let bytes = sealed.as_bytes();
    assert!(matches!(
        Sealed::<Email, Marketing>::from_bytes(bytes),
        Err(Error::Format(FormatError::PurposeMismatch { .. }))
    ));
    assert!(matches!(
        Sealed::<PhoneNumber, Service>::from_bytes(bytes),
        Err(Error::Format(FormatError::KindMismatch { .. }))
    ));

    // Relabel the header: purpose "service" -> "servicf" (same length).
    let mut relabel = bytes.to_vec();
    relabel[4 + 6] = b'f';
    let forged = Sealed::<Email, Servicf>::from_bytes(&relabel).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(g.reveal(&a, &forged, &ctx), Err(Error::Integrity)));

    // Change the kind byte to Text (the canonical bytes of an email are valid text).
    let mut rekind = bytes.to_vec();
    rekind[1] = FieldKind::Text.code();
    let forged = Sealed::<Text, Service>::from_bytes(&rekind).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(g.reveal(&a, &forged, &ctx), Err(Error::Integrity)));

    // Claim key version 2 (which exists).
    let mut rekey = bytes.to_vec();
    rekey[4 + 7..4 + 7 + 4].copy_from_slice(&2u32.to_be_bytes());
    let forged = Sealed::<Email, Service>::from_bytes(&rekey).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(g.reveal(&a, &forged, &ctx), Err(Error::Integrity)));

    // Claim a version that does not exist.
    rekey[4 + 7..4 + 7 + 4].copy_from_slice(&9u32.to_be_bytes());
    let forged = Sealed::<Email, Service>::from_bytes(&rekey).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        g.reveal(&a, &forged, &ctx),
        Err(Error::Key(KeyError::UnknownVersion(_)))
    ));

    // A different keyring with the same versions but other key bytes.
    let other = guard_with(
        Keyring::single(RootKey::from_bytes([7; 32])).unwrap_or_else(|e| panic!("{e}")),
        Arc::new(MemorySink::new()),
    );
    assert!(matches!(
        other.reveal(&a, &sealed, &ctx),
        Err(Error::Integrity)
    ));

    // Retired key: minimum version above the envelope's.
    let retired = guard_with(
        Keyring::builder()
            .key(v(1), RootKey::from_bytes([1; 32]))
            .key(v(2), RootKey::from_bytes([2; 32]))
            .minimum(v(2))
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
        Arc::new(MemorySink::new()),
    );
    assert!(matches!(
        retired.reveal(&a, &sealed, &ctx),
        Err(Error::Key(KeyError::Retired { .. }))
    ));
    println!(
        "swap: 6 places, purpose, kind, relabelled purpose/kind, 2 key versions, foreign and retired keys rejected"
    );
}

proptest! {
    #![proptest_config(Config::with_cases(64))]
    /// Random byte strings never open and never panic.
    #[test]
    fn random_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let g = guard();
        prop_assert!(rejected_bytes(&g, &bytes, &Context::new()));
    }
}
