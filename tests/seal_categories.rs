//! Seal-time data minimization: a manifest's categories say which field kinds are collected for
//! which purposes, and `Guard::seal` refuses any other combination before encrypting.

use std::collections::BTreeSet;
use std::sync::Arc;

use fieldseal::builtin::{Improvement, Legal, Marketing, Security, Service};
use fieldseal::*;

const REFERENCE: &str = include_str!("../examples/reference-policy.toml");

fn guard(policy: Arc<dyn AccessPolicy>, sink: Arc<MemorySink>) -> Guard {
    Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .shared_policy(policy)
        .audit(sink)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn reference() -> Arc<ManifestPolicy> {
    Arc::new(ManifestPolicy::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}")))
}

fn ctx() -> Context {
    Context::new().table("users").column("c").row("1")
}

fn id_number() -> IdNumber {
    IdNumber::parse("11010519491231002X").unwrap_or_else(|e| panic!("{e}"))
}

fn email() -> Email {
    Email::parse("zhang.san@example.com").unwrap_or_else(|e| panic!("{e}"))
}

fn refused<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(
        r,
        Err(Error::Denied {
            reason: DenyReason::PurposeNotAllowedForKind
        })
    )
}

/// The reference policy's categories, written out by hand: (kind, purposes it is collected for).
fn reference_matrix() -> Vec<(FieldKind, Vec<&'static str>)> {
    vec![
        (FieldKind::PersonName, vec!["service", "marketing"]),
        (
            FieldKind::PhoneNumber,
            vec!["service", "marketing", "security"],
        ),
        (FieldKind::Email, vec!["service", "marketing", "security"]),
        (
            FieldKind::Text,
            vec!["service", "marketing", "security", "improvement"],
        ),
        (FieldKind::IdNumber, vec!["service", "legal"]),
        (FieldKind::PostalAddress, vec!["service", "legal"]),
        (FieldKind::IpAddress, vec!["security", "improvement"]),
        (FieldKind::DeviceInfo, vec!["security", "improvement"]),
    ]
}

#[test]
fn id_number_cannot_be_sealed_for_marketing_under_the_reference_policy() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(reference(), Arc::clone(&sink));
    let r: Result<Sealed<IdNumber, Marketing>, Error> = g.seal(&id_number(), &ctx());
    assert!(refused(r), "an ID number was sealed for marketing");
    let msg = g
        .seal::<IdNumber, Marketing>(&id_number(), &ctx())
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(
        msg,
        Err("access denied: the policy does not collect this field kind for this purpose".into())
    );
    // Also refused for purposes the ID number's category does not name.
    assert!(refused(
        g.seal::<IdNumber, Improvement>(&id_number(), &ctx())
    ));
    assert!(refused(g.seal::<IdNumber, Security>(&id_number(), &ctx())));
    assert!(refused(g.seal::<Email, Legal>(&email(), &ctx())));
    // Refused before anything else: even an invalid context gets the policy's answer.
    let bad = Context::new().table("a").table("b");
    assert!(matches!(
        g.seal::<IdNumber, Service>(&id_number(), &bad),
        Err(Error::Context(_))
    ));
    assert!(refused(g.seal::<IdNumber, Marketing>(&id_number(), &bad)));
    // Nothing is audited: sealing has no accessor.
    assert!(sink.records().is_empty());
}

#[test]
fn allowed_combinations_seal_and_open() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(reference(), Arc::clone(&sink));
    let id: Sealed<IdNumber, Service> = g
        .seal(&id_number(), &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let lead = Accessor::new("li", [Role::new("support_lead")]);
    assert_eq!(
        g.reveal(&lead, &id, &ctx())
            .unwrap_or_else(|e| panic!("{e}"))
            .expose_secret()
            .as_str(),
        "11010519491231002X"
    );
    assert!(g.seal::<IdNumber, Legal>(&id_number(), &ctx()).is_ok());
    assert!(g.seal::<Email, Marketing>(&email(), &ctx()).is_ok());
    assert!(g.seal::<Email, Security>(&email(), &ctx()).is_ok());
    let ip = IpAddress::parse("203.0.113.7").unwrap_or_else(|e| panic!("{e}"));
    assert!(g.seal::<IpAddress, Security>(&ip, &ctx()).is_ok());
    assert!(refused(g.seal::<IpAddress, Service>(&ip, &ctx())));
}

#[test]
fn decide_seal_matches_the_reference_categories_for_every_pair() {
    let policy = reference();
    let manifest = policy.manifest();
    let matrix = reference_matrix();
    assert_eq!(matrix.len(), FieldKind::ALL.len());
    let mut allowed = 0;
    for (kind, purposes) in matrix {
        let purposes: BTreeSet<&str> = purposes.into_iter().collect();
        for purpose in manifest.purposes().chain(["undefined"]) {
            let want = purposes.contains(purpose);
            let got = policy.decide_seal(purpose, kind);
            let expected = if want {
                Decision::Allow
            } else {
                Decision::Deny(DenyReason::PurposeNotAllowedForKind)
            };
            assert_eq!(got, expected, "{kind} for {purpose}");
            assert_eq!(
                manifest.may_seal(kind, purpose),
                want,
                "{kind} for {purpose}"
            );
            allowed += usize::from(want);
        }
    }
    assert_eq!(allowed, 20);
    assert_eq!(
        manifest
            .category_purposes("activity")
            .map(|p| p.collect::<Vec<_>>()),
        Some(vec!["legal", "service"])
    );
}

const NO_CATEGORIES: &str = r#"
version = 1
home_region = "CN"
[purposes.marketing]
legal_basis = "consent"
retention_days = 30
withdrawable = true
[purposes.service]
legal_basis = "contract"
retention_days = 30
"#;

#[test]
fn a_manifest_without_categories_allows_every_kind_for_every_purpose() {
    let policy =
        Arc::new(ManifestPolicy::from_toml(NO_CATEGORIES).unwrap_or_else(|e| panic!("{e}")));
    for kind in FieldKind::ALL {
        for purpose in ["marketing", "service", "undefined"] {
            assert_eq!(policy.decide_seal(purpose, kind), Decision::Allow);
            assert!(policy.manifest().may_seal(kind, purpose));
        }
    }
    let g = guard(policy, Arc::new(MemorySink::new()));
    assert!(g.seal::<IdNumber, Marketing>(&id_number(), &ctx()).is_ok());
}

#[test]
fn a_category_without_purposes_allows_none() {
    let text = format!("{NO_CATEGORIES}[categories.inquiry]\nkinds = [\"email\"]\n");
    let policy = ManifestPolicy::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        policy.decide_seal("service", FieldKind::Email),
        Decision::Deny(DenyReason::PurposeNotAllowedForKind)
    );
    let text = format!("{text}purposes = [\"service\"]\n");
    let policy = ManifestPolicy::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        policy.decide_seal("service", FieldKind::Email),
        Decision::Allow
    );
    // Kinds no category names are not collected at all.
    assert_eq!(
        policy.decide_seal("service", FieldKind::PhoneNumber),
        Decision::Deny(DenyReason::PurposeNotAllowedForKind)
    );
}

#[test]
fn allow_list_and_default_policies_are_unaffected() {
    let list = AllowList::new().allow::<Service>(
        Role::new("support_agent"),
        FieldKind::Email,
        Action::Reveal,
    );
    for kind in FieldKind::ALL {
        assert_eq!(list.decide_seal("marketing", kind), Decision::Allow);
    }
    let g = guard(Arc::new(list), Arc::new(MemorySink::new()));
    assert!(g.seal::<IdNumber, Marketing>(&id_number(), &ctx()).is_ok());
}

#[test]
fn the_rule_follows_reloads() {
    let policy = reference();
    let g = guard(
        Arc::clone(&policy) as Arc<dyn AccessPolicy>,
        Arc::new(MemorySink::new()),
    );
    assert!(refused(g.seal::<IdNumber, Marketing>(&id_number(), &ctx())));
    policy
        .reload_toml(NO_CATEGORIES)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(g.seal::<IdNumber, Marketing>(&id_number(), &ctx()).is_ok());
    policy
        .reload_toml(REFERENCE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused(g.seal::<IdNumber, Marketing>(&id_number(), &ctx())));
}
