//! Edge paths of the guard: every reveal or mask that reaches it leaves an audit record, and a
//! purpose implemented by hand with a bad label is a typed error, never a panic.

mod common;

use std::sync::Arc;

use common::*;
use fieldseal::builtin::Service;
use fieldseal::*;

/// A purpose implemented by hand through the hidden path, skipping the macro's label check.
#[derive(Debug)]
struct BadLabel;
impl fieldseal::__private::PurposeSealed for BadLabel {}
impl Purpose for BadLabel {
    const LABEL: &'static str = "Bad-Label";
}

#[test]
fn a_hand_made_purpose_with_a_bad_label_is_a_typed_error() {
    let g = guard();
    let value = Text::parse("hello").unwrap_or_else(|e| panic!("{e}"));
    let got = g.seal::<Text, BadLabel>(&value, &Context::new());
    assert!(
        matches!(got, Err(Error::Format(FormatError::InvalidPurposeLabel))),
        "{got:?}"
    );
    // No envelope can claim it either: parsing checks labels.
    let sealed: Sealed<Text, Service> = g
        .seal(&value, &Context::new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(Sealed::<Text, BadLabel>::from_bytes(sealed.as_bytes()).is_err());
}

/// An invalid context is recorded (`failed:context`) before the error is returned, for reveal
/// and mask; a denied accessor with an invalid context is recorded as denied.
#[test]
fn an_invalid_context_leaves_a_record() {
    let sink = Arc::new(MemorySink::new());
    let g = guard_with(
        Keyring::generate().unwrap_or_else(|e| panic!("{e}")),
        Arc::clone(&sink),
    );
    let value = PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}"));
    let good = Context::new().table("t").row("1");
    let sealed: Sealed<PhoneNumber, Service> =
        g.seal(&value, &good).unwrap_or_else(|e| panic!("{e}"));
    let bad = Context::new().table("t").row(&"x".repeat(5000));
    assert!(matches!(
        g.reveal(&tester(), &sealed, &bad),
        Err(Error::Context(_))
    ));
    assert!(matches!(
        g.mask(&tester(), &sealed, &bad),
        Err(Error::Context(_))
    ));
    let stranger = Accessor::new("eve", [Role::new("nobody")]);
    assert!(matches!(
        g.reveal(&stranger, &sealed, &bad),
        Err(Error::Denied { .. })
    ));
    let labels: Vec<&str> = sink.records().iter().map(|r| r.outcome.label()).collect();
    assert_eq!(
        labels,
        ["failed:context", "failed:context", "denied:not_permitted"]
    );
}

/// A sink that refuses the record of an invalid-context attempt turns it into an audit error:
/// the attempt still fails, and it is the sink's failure that is reported.
#[test]
fn an_unrecorded_invalid_context_reports_the_sink() {
    #[derive(Debug)]
    struct Refusing;
    impl AuditSink for Refusing {
        fn record(&self, _: &AuditEvent<'_>) -> Result<(), AuditError> {
            Err(AuditError::new(AuditErrorKind::Rejected))
        }
    }
    let g = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(Refusing)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let value = Text::parse("x").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Text, Service> = g
        .seal(&value, &Context::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let bad = Context::new().row(&"x".repeat(5000));
    assert!(matches!(
        g.reveal(&tester(), &sealed, &bad),
        Err(Error::Audit(_))
    ));
}

/// `EnvelopeInfo` applies the same per-kind cap as `Sealed`: an IP address envelope with a
/// 17-byte ciphertext is refused by both.
#[test]
fn envelope_info_applies_the_per_kind_cap() {
    let g = guard();
    let long = Text::parse(&"a".repeat(17)).unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Text, Service> = g
        .seal(&long, &Context::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut bytes = sealed.as_bytes().to_vec();
    // Relabel the kind byte (offset 1) as an IP address: a well-formed header whose ciphertext
    // is over the IP address cap of 16 bytes.
    bytes[1] = FieldKind::IpAddress.code();
    assert!(matches!(
        Sealed::<IpAddress, Service>::from_bytes(&bytes),
        Err(Error::Format(FormatError::CiphertextLength))
    ));
    assert!(matches!(
        EnvelopeInfo::from_bytes(&bytes),
        Err(Error::Format(FormatError::CiphertextLength))
    ));
    let text = Sealed::<Text, Service>::from_bytes(&bytes).map(|_| ());
    assert!(text.is_err(), "kind mismatch");
    // Text-form parsing agrees.
    let info = EnvelopeInfo::from_text(&sealed.to_text()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.kind(), FieldKind::Text);
}
