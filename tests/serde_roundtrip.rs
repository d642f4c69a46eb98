//! Seal -> serialize (JSON and postcard) -> deserialize -> reveal, for random values.

mod common;

use common::*;
use fieldseal::builtin::{Marketing, Service};
use fieldseal::*;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Row {
    id: u64,
    email: Sealed<Email, Service>,
    note: Sealed<Text, Marketing>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn seal_serialize_reveal(
        local in "[a-z0-9]{10,20}",
        domain in "[a-z]{1,10}\\.(com|cn|org)",
        note in "\\PC{1,100}",
        row in any::<u64>(),
    ) {
        let g = guard();
        let ctx = Context::new().table("rows").row(&row.to_string());
        let email = Email::parse(&format!("{local}@{domain}")).unwrap_or_else(|e| panic!("{e}"));
        let text = Text::parse(&note).unwrap_or_else(|e| panic!("{e}"));
        let r = Row { id: row, email: g.seal(&email, &ctx)?, note: g.seal(&text, &ctx)? };

        let json = serde_json::to_string(&r).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(json.contains("\"fs1:"));
        prop_assert!(!json.contains(&local));
        let back: Row = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(back.email == r.email && back.note == r.note);

        let bin = postcard::to_allocvec(&r).unwrap_or_else(|e| panic!("{e}"));
        let back2: Row = postcard::from_bytes(&bin).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(back2.email == r.email);

        let a = tester();
        let e = g.reveal(&a, &back.email, &ctx)?;
        prop_assert_eq!(e.expose_secret().as_str(), email.as_str());
        let n = g.reveal(&a, &back2.note, &ctx)?;
        prop_assert_eq!(n.expose_secret().as_str(), note.as_str());
    }
}

#[test]
fn deserializing_checks_kind_and_purpose() {
    let g = guard();
    let ctx = Context::new();
    let s: Sealed<Email, Service> = g
        .seal(
            &Email::parse("a@example.com").unwrap_or_else(|e| panic!("{e}")),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&s).unwrap_or_else(|e| panic!("{e}"));
    assert!(serde_json::from_str::<Sealed<Email, Marketing>>(&json).is_err());
    assert!(serde_json::from_str::<Sealed<Text, Service>>(&json).is_err());
    assert!(serde_json::from_str::<Sealed<Email, Service>>("\"fs1:AAAA\"").is_err());
    assert!(serde_json::from_str::<Sealed<Email, Service>>("17").is_err());
    let bin = postcard::to_allocvec(&s).unwrap_or_else(|e| panic!("{e}"));
    assert!(postcard::from_bytes::<Sealed<Email, Marketing>>(&bin).is_err());
    let mut cut = bin.clone();
    cut.truncate(bin.len() - 1);
    assert!(postcard::from_bytes::<Sealed<Email, Service>>(&cut).is_err());
    // Display / FromStr agree with the text form.
    assert_eq!(s.to_string(), s.to_text());
    assert_eq!(s.to_text().parse::<Sealed<Email, Service>>().ok(), Some(s));
}
