//! Sharing with recipients (feature `share`): the reference policy's four recipient classes,
//! HPKE packages that open only for their recipient, purpose and context, and the audit trail.
#![cfg(feature = "share")]

use std::sync::{Arc, OnceLock};

use fieldseal::builtin::{Legal, Marketing, Security, Service};
use fieldseal::*;
use proptest::prelude::*;

const REFERENCE: &str = include_str!("../examples/reference-policy.toml");

struct Fx {
    _dir: tempfile::TempDir,
    guard: Guard,
    sink: Arc<MemorySink>,
}

fn fixture_with(policy: impl AccessPolicy + 'static) -> Fx {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let store =
        FileSubjectKeys::open(dir.path().join("subject-keys")).unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(policy)
        .audit(Arc::clone(&sink))
        .consent(MemoryConsent::new())
        .subject_keys(SubjectKeys::new(kek, Arc::new(store)))
        .subject_key_purpose(PurposeId::of::<Legal>(), SubjectKeyScope::Subject)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Fx {
        _dir: dir,
        guard,
        sink,
    }
}

fn fixture() -> Fx {
    fixture_with(ManifestPolicy::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}")))
}

fn who(role: &str) -> Accessor {
    Accessor::new(&format!("{role}-1"), [Role::new(role)])
}

fn name(n: &str) -> RecipientName {
    RecipientName::new(n).unwrap_or_else(|e| panic!("{e}"))
}

fn purpose(p: &str) -> PurposeId {
    PurposeId::new(p).unwrap_or_else(|e| panic!("{e}"))
}

fn key() -> RecipientPrivateKey {
    RecipientPrivateKey::generate().unwrap_or_else(|e| panic!("{e}"))
}

fn subject() -> SubjectId {
    SubjectId::new("user-42")
}

fn ctx() -> Context {
    ctx_row("7")
}

fn ctx_row(row: &str) -> Context {
    Context::new()
        .table("claims")
        .column("id_number")
        .row(row)
        .subject(&subject())
}

const ID: &str = "11010519491231002X";

fn sealed_id(fx: &Fx) -> Sealed<IdNumber, Legal> {
    let id = IdNumber::parse(ID).unwrap_or_else(|e| panic!("{e}"));
    fx.guard.seal(&id, &ctx()).unwrap_or_else(|e| panic!("{e}"))
}

fn last(fx: &Fx) -> AuditRecord {
    fx.sink
        .records()
        .pop()
        .unwrap_or_else(|| panic!("no record"))
}

fn assert_recorded(fx: &Fx, outcome: &str, recipient: &str) {
    let r = last(fx);
    assert_eq!(r.action, Action::Share);
    assert_eq!(r.outcome.label(), outcome);
    assert_eq!(r.recipient.as_ref().map(|n| n.as_str()), Some(recipient));
}

#[test]
fn the_recipient_opens_with_its_private_key() {
    let fx = fixture();
    let sealed = sealed_id(&fx);
    let authority = key();
    let package = fx
        .guard
        .share(
            &who("legal_counsel"),
            &sealed,
            &name("authorities"),
            &authority.public_key(),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_recorded(&fx, "allowed", "authorities");
    assert_eq!(package.kind(), FieldKind::IdNumber);
    assert_eq!(package.purpose_label(), "legal");
    assert_eq!(package.recipient(), "authorities");

    // Through the text form, as it would travel.
    let received = SharedPackage::from_text(&package.to_text()).unwrap_or_else(|e| panic!("{e}"));
    let value = open_shared(
        &authority,
        &received,
        &name("authorities"),
        &purpose("legal"),
        &ctx(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value.kind(), FieldKind::IdNumber);
    assert_eq!(value.expose_text().as_str(), ID);

    // The runtime-typed form takes the same path.
    let any = AnySealed::from_bytes(sealed.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let again = fx
        .guard
        .share_any(
            &who("legal_counsel"),
            &any,
            &name("authorities"),
            &authority.public_key(),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_recorded(&fx, "allowed", "authorities");
    assert_ne!(again, package, "every share has a fresh ephemeral key");
    let value = open_shared(
        &authority,
        &again,
        &name("authorities"),
        &purpose("legal"),
        &ctx(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value.expose_text().as_str(), ID);
}

#[test]
fn the_package_fails_for_another_recipient_purpose_context_or_key() {
    let fx = fixture();
    let authority = key();
    let package = fx
        .guard
        .share(
            &who("legal_counsel"),
            &sealed_id(&fx),
            &name("authorities"),
            &authority.public_key(),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let open = |k: &RecipientPrivateKey, r: &str, p: &str, c: &Context| {
        open_shared(k, &package, &name(r), &purpose(p), c)
    };
    assert!(open(&authority, "authorities", "legal", &ctx()).is_ok());
    let integrity = |r: Result<AnyRevealed, Error>| matches!(r, Err(Error::Integrity));
    assert!(integrity(open(&authority, "affiliates", "legal", &ctx())));
    assert!(integrity(open(
        &authority,
        "authorities",
        "service",
        &ctx()
    )));
    assert!(integrity(open(
        &authority,
        "authorities",
        "legal",
        &ctx_row("8")
    )));
    assert!(integrity(open(
        &authority,
        "authorities",
        "legal",
        &Context::new()
    )));
    // Another recipient's private key.
    assert!(integrity(open(&key(), "authorities", "legal", &ctx())));
    // An invalid context is its own error.
    let bad = Context::new().with("Bad Name", b"x");
    assert!(matches!(
        open(&authority, "authorities", "legal", &bad),
        Err(Error::Context(_))
    ));
}

#[test]
fn a_recipient_or_purpose_the_manifest_does_not_allow_is_denied_and_audited() {
    let fx = fixture();
    let sealed = sealed_id(&fx);
    let pk = key().public_key();
    let counsel = who("legal_counsel");
    let denied = |r: Result<SharedPackage, Error>, reason: DenyReason| {
        assert!(
            matches!(r, Err(Error::Denied { reason: got }) if got == reason),
            "{r:?}"
        );
    };
    // Not a recipient at all.
    denied(
        fx.guard
            .share(&counsel, &sealed, &name("data_broker"), &pk, &ctx()),
        DenyReason::RecipientNotAllowed,
    );
    assert_recorded(&fx, "denied:recipient_not_allowed", "data_broker");
    // A recipient that may not receive `legal` data (affiliates: service only).
    denied(
        fx.guard
            .share(&counsel, &sealed, &name("affiliates"), &pk, &ctx()),
        DenyReason::RecipientNotAllowed,
    );
    assert_recorded(&fx, "denied:recipient_not_allowed", "affiliates");
    // A role without a `share` grant for the purpose and kind.
    denied(
        fx.guard.share(
            &who("support_agent"),
            &sealed,
            &name("authorities"),
            &pk,
            &ctx(),
        ),
        DenyReason::NotPermitted,
    );
    assert_recorded(&fx, "denied:not_permitted", "authorities");
    // `reveal` does not imply `share`: the security analyst reveals IP addresses for security
    // but may share only addresses and devices, and only with a recipient allowed security.
    let ip = IpAddress::parse("203.0.113.9").unwrap_or_else(|e| panic!("{e}"));
    let sealed_ip: Sealed<IpAddress, Security> =
        fx.guard.seal(&ip, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    denied(
        fx.guard.share(
            &who("security_analyst"),
            &sealed_ip,
            &name("authorities"),
            &pk,
            &ctx(),
        ),
        DenyReason::RecipientNotAllowed,
    );
    assert_eq!(fx.sink.len(), 4);
}

#[test]
fn recipients_on_a_non_consent_basis_need_no_share_consent() {
    let fx = fixture();
    let ip = IpAddress::parse("203.0.113.9").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<IpAddress, Security> =
        fx.guard.seal(&ip, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    let partner = key();
    let package = fx
        .guard
        .share(
            &who("security_analyst"),
            &sealed,
            &name("security_partner"),
            &partner.public_key(),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_recorded(&fx, "allowed", "security_partner");
    let v = open_shared(
        &partner,
        &package,
        &name("security_partner"),
        &purpose("security"),
        &ctx(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.expose_text().as_str(), "203.0.113.9");

    // Affiliates (service purpose), no consent on record either.
    let phone = PhoneNumber::parse("138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<PhoneNumber, Service> = fx
        .guard
        .seal(&phone, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        fx.guard
            .share(
                &who("support_lead"),
                &sealed,
                &name("affiliates"),
                &partner.public_key(),
                &ctx()
            )
            .is_ok()
    );
}

#[test]
fn consent_withdrawal_blocks_the_next_share() {
    let fx = fixture();
    let dpo = who("dpo");
    let email = Email::parse("zhang.san@example.com").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Email, Marketing> = fx
        .guard
        .seal(&email, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let partner = key();
    let share = || {
        fx.guard.share(
            &who("marketing"),
            &sealed,
            &name("marketing_partner"),
            &partner.public_key(),
            &ctx(),
        )
    };
    let consent_missing = |r: Result<SharedPackage, Error>| {
        matches!(
            r,
            Err(Error::Denied {
                reason: DenyReason::ConsentMissing
            })
        )
    };

    // Purpose consent alone is not consent to sharing with the partner.
    fx.guard
        .grant_consent(&dpo, &subject(), ConsentScope::Purpose("marketing"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(consent_missing(share()));
    assert_recorded(&fx, "denied:consent_missing", "marketing_partner");

    // Both: allowed.
    fx.guard
        .grant_consent(&dpo, &subject(), ConsentScope::Share("marketing_partner"))
        .unwrap_or_else(|e| panic!("{e}"));
    let consent_record = last(&fx);
    assert_eq!(consent_record.action, AuditAction::ConsentGranted);
    assert_eq!(
        consent_record.recipient.as_ref().map(|r| r.as_str()),
        Some("marketing_partner")
    );
    let package = share().unwrap_or_else(|e| panic!("{e}"));
    assert_recorded(&fx, "allowed", "marketing_partner");
    let v = open_shared(
        &partner,
        &package,
        &name("marketing_partner"),
        &purpose("marketing"),
        &ctx(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.expose_text().as_str(), "zhang.san@example.com");

    // Withdrawing the share consent blocks the next share...
    fx.guard
        .withdraw_consent(&dpo, &subject(), ConsentScope::Share("marketing_partner"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(consent_missing(share()));
    assert_recorded(&fx, "denied:consent_missing", "marketing_partner");
    // ...and so does withdrawing the purpose consent.
    fx.guard
        .grant_consent(&dpo, &subject(), ConsentScope::Share("marketing_partner"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(share().is_ok());
    fx.guard
        .withdraw_consent(&dpo, &subject(), ConsentScope::Purpose("marketing"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(consent_missing(share()));
    // A package made before the withdrawal still opens: sharing ends our control.
    assert!(
        open_shared(
            &partner,
            &package,
            &name("marketing_partner"),
            &purpose("marketing"),
            &ctx()
        )
        .is_ok()
    );
}

#[test]
fn consent_is_the_default_basis() {
    let m = Manifest::from_toml(
        r#"
        version = 1
        home_region = "CN"
        [purposes.service]
        legal_basis = "contract"
        retention_days = 30
        [roles.agent.grants.service]
        share = ["email"]
        [recipients.partner]
        purposes = ["service"]
        "#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.recipient("partner").map(|r| r.basis),
        Some(RecipientBasis::Consent)
    );
    let fx = fixture_with(ManifestPolicy::new(m, Engine::Native).unwrap_or_else(|e| panic!("{e}")));
    let email = Email::parse("a@example.com").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Email, Service> = fx
        .guard
        .seal(&email, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let pk = key().public_key();
    let r = fx
        .guard
        .share(&who("agent"), &sealed, &name("partner"), &pk, &ctx());
    assert!(matches!(
        r,
        Err(Error::Denied {
            reason: DenyReason::ConsentMissing
        })
    ));
    fx.guard
        .grant_consent(&who("agent"), &subject(), ConsentScope::Share("partner"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        fx.guard
            .share(&who("agent"), &sealed, &name("partner"), &pk, &ctx())
            .is_ok()
    );
}

#[test]
fn policies_without_recipients_refuse_every_share() {
    let policy =
        AllowList::new().allow::<Service>(Role::new("agent"), FieldKind::Email, Action::Share);
    let fx = fixture_with(policy);
    let email = Email::parse("a@example.com").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Email, Service> = fx
        .guard
        .seal(&email, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = fx.guard.share(
        &who("agent"),
        &sealed,
        &name("anyone"),
        &key().public_key(),
        &ctx(),
    );
    assert!(matches!(
        r,
        Err(Error::Denied {
            reason: DenyReason::RecipientNotAllowed
        })
    ));
    assert_recorded(&fx, "denied:recipient_not_allowed", "anyone");
}

#[test]
fn a_share_of_an_erased_subjects_value_fails() {
    let fx = fixture();
    let sealed = sealed_id(&fx);
    let pk = key().public_key();
    let counsel = who("legal_counsel");
    assert!(
        fx.guard
            .share(&counsel, &sealed, &name("authorities"), &pk, &ctx())
            .is_ok()
    );
    fx.guard
        .erase(&who("dpo"), &subject(), Erasure::Subject)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = fx
        .guard
        .share(&counsel, &sealed, &name("authorities"), &pk, &ctx());
    assert!(matches!(r, Err(Error::Key(KeyError::Erased))), "{r:?}");
    assert_recorded(&fx, "failed:erased", "authorities");
}

#[test]
fn a_wrong_context_at_share_time_fails_and_is_recorded() {
    let fx = fixture();
    let sealed = sealed_id(&fx);
    let r = fx.guard.share(
        &who("legal_counsel"),
        &sealed,
        &name("authorities"),
        &key().public_key(),
        &ctx_row("8"),
    );
    assert!(matches!(r, Err(Error::Integrity)), "{r:?}");
    assert_recorded(&fx, "failed:integrity", "authorities");
}

#[test]
fn debug_shows_no_secret_bytes() {
    let fx = fixture();
    let sk = key();
    let package = fx
        .guard
        .share(
            &who("legal_counsel"),
            &sealed_id(&fx),
            &name("authorities"),
            &sk.public_key(),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let secret: String = sk
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sk_debug = format!("{sk:?}");
    assert_eq!(sk_debug, "RecipientPrivateKey([REDACTED])");
    assert!(!format!("{:?}", sk.public_key()).contains(&secret[..8]));
    let pkg_debug = format!("{package:?}");
    assert!(pkg_debug.contains("authorities") && pkg_debug.contains("legal"));
    assert!(!pkg_debug.contains(ID) && !pkg_debug.contains("0519491231"));
    // No run of the package's encrypted bytes appears.
    let body: String = package.as_bytes()[package.as_bytes().len() - 20..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!pkg_debug.contains(&body[..8]));
    let err = open_shared(
        &key(),
        &package,
        &name("authorities"),
        &purpose("legal"),
        &ctx(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(!err.contains(ID) && !err.contains(&secret[..8]));
}

/// One package for the tamper properties: (recipient key, package).
fn tamper_fixture() -> &'static (RecipientPrivateKey, Vec<u8>) {
    static F: OnceLock<(RecipientPrivateKey, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let fx = fixture();
        let sk = key();
        let package = fx
            .guard
            .share(
                &who("legal_counsel"),
                &sealed_id(&fx),
                &name("authorities"),
                &sk.public_key(),
                &ctx(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        (sk, package.into_bytes())
    })
}

fn opens(bytes: &[u8]) -> bool {
    let (sk, _) = tamper_fixture();
    SharedPackage::from_bytes(bytes)
        .and_then(|p| open_shared(sk, &p, &name("authorities"), &purpose("legal"), &ctx()))
        .is_ok()
}

#[test]
fn every_truncation_is_rejected() {
    let (_, bytes) = tamper_fixture();
    assert!(opens(bytes));
    for n in 0..bytes.len() {
        assert!(!opens(&bytes[..n]), "prefix of {n} bytes opened");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(!opens(&longer));
}

proptest! {
    #[test]
    fn any_single_byte_change_is_rejected(at in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let (_, bytes) = tamper_fixture();
        let mut changed = bytes.clone();
        let i = at.index(changed.len());
        changed[i] ^= delta;
        prop_assert!(!opens(&changed), "byte {} changed by {:#04x} still opens", i, delta);
    }

    #[test]
    fn text_packages_never_panic(s in "fss1:[A-Za-z0-9_-]{0,200}") {
        let _ = SharedPackage::from_text(&s);
    }
}

/// With `FIELDSEAL_WRITE_SEEDS=1`, writes seed inputs for the `shared_package` fuzz target.
#[test]
fn fuzz_seeds() {
    if std::env::var_os("FIELDSEAL_WRITE_SEEDS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/shared_package");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (_, bytes) = tamper_fixture();
    let text = SharedPackage::from_bytes(bytes)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_text();
    for (i, seed) in [bytes.clone(), text.into_bytes()].into_iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), seed).unwrap_or_else(|e| panic!("{e}"));
    }
}
