//! The policy manifest, its engine, and the guard's consent, retention and residency checks.

use std::collections::BTreeSet;
use std::sync::Arc;

use fieldseal::builtin::{Legal, Marketing, Service};
use fieldseal::*;

const REFERENCE: &str = include_str!("../examples/reference-policy.toml");
const T0: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

fn reference() -> ManifestPolicy {
    ManifestPolicy::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}"))
}

const ALL_KINDS: [&str; 8] = [
    "id_number",
    "phone_number",
    "email",
    "person_name",
    "postal_address",
    "ip_address",
    "device_info",
    "text",
];

/// The reference policy's effective grants, written out by hand (inheritance expanded, `reveal`
/// implying `mask`): role, purpose, action, kinds.
fn expected_grants() -> Vec<(&'static str, &'static str, &'static str, Vec<&'static str>)> {
    let svc6 = vec![
        "person_name",
        "phone_number",
        "email",
        "text",
        "postal_address",
        "id_number",
    ];
    let legal6 = vec![
        "id_number",
        "person_name",
        "postal_address",
        "phone_number",
        "email",
        "ip_address",
    ];
    let mut g = vec![
        (
            "support_agent",
            "service",
            "reveal",
            vec!["person_name", "phone_number", "email", "text"],
        ),
        ("support_agent", "service", "mask", svc6.clone()),
        ("support_lead", "service", "reveal", svc6.clone()),
        ("support_lead", "service", "mask", svc6.clone()),
        ("support_lead", "service", "export", svc6),
        (
            "support_lead",
            "service",
            "share",
            vec!["person_name", "phone_number", "email"],
        ),
        (
            "security_analyst",
            "security",
            "reveal",
            vec!["ip_address", "device_info"],
        ),
        (
            "security_analyst",
            "security",
            "mask",
            vec!["ip_address", "device_info", "email", "phone_number"],
        ),
        (
            "security_analyst",
            "security",
            "index",
            vec!["ip_address", "email", "phone_number"],
        ),
        (
            "security_analyst",
            "security",
            "anonymize",
            vec!["ip_address"],
        ),
        (
            "security_analyst",
            "security",
            "share",
            vec!["ip_address", "device_info"],
        ),
        ("security_analyst", "legal", "mask", vec!["ip_address"]),
        (
            "marketing",
            "marketing",
            "reveal",
            vec!["email", "person_name"],
        ),
        (
            "marketing",
            "marketing",
            "mask",
            vec!["email", "person_name", "phone_number"],
        ),
        ("marketing", "marketing", "index", vec!["email"]),
        (
            "marketing",
            "marketing",
            "share",
            vec!["email", "person_name"],
        ),
        ("analytics_job", "improvement", "mask", vec!["ip_address"]),
        (
            "analytics_job",
            "improvement",
            "index",
            vec!["ip_address", "device_info", "text"],
        ),
        (
            "analytics_job",
            "improvement",
            "anonymize",
            vec!["ip_address", "device_info", "text"],
        ),
        ("legal_counsel", "legal", "reveal", legal6.clone()),
        ("legal_counsel", "legal", "mask", legal6.clone()),
        (
            "legal_counsel",
            "legal",
            "share",
            vec!["id_number", "person_name", "postal_address"],
        ),
        ("legal_counsel", "legal", "export", legal6.clone()),
        ("dpo", "legal", "reveal", legal6.clone()),
        ("dpo", "legal", "mask", legal6),
        (
            "dpo",
            "legal",
            "share",
            vec!["id_number", "person_name", "postal_address"],
        ),
    ];
    for p in ["service", "improvement", "security", "marketing", "legal"] {
        g.push(("dpo", p, "export", ALL_KINDS.to_vec()));
        g.push(("dpo", p, "erase", ALL_KINDS.to_vec()));
        g.push(("key_admin", p, "rewrap", ALL_KINDS.to_vec()));
    }
    g
}

#[test]
fn reference_decision_matrix() {
    let policy = reference();
    let roles = [
        "support_agent",
        "support_lead",
        "security_analyst",
        "marketing",
        "analytics_job",
        "legal_counsel",
        "dpo",
        "key_admin",
    ];
    let purposes = ["service", "improvement", "security", "marketing", "legal"];
    let mut allowed: BTreeSet<(&str, &str, &str, &str)> = BTreeSet::new();
    for (r, p, a, ks) in expected_grants() {
        for k in ks {
            allowed.insert((r, p, a, k));
        }
    }
    let (mut cells, mut allows) = (0, 0);
    for role in roles {
        let acc = Accessor::new("matrix", [Role::new(role)]);
        for purpose in purposes {
            for kind in FieldKind::ALL {
                for action in Action::ALL {
                    let req = AccessRequest {
                        accessor: &acc,
                        purpose,
                        kind,
                        action,
                    };
                    let want = allowed.contains(&(role, purpose, action.label(), kind.label()));
                    let got = policy.decide(&req);
                    let expect = if want {
                        Decision::Allow
                    } else {
                        Decision::Deny(DenyReason::NotPermitted)
                    };
                    assert_eq!(got, expect, "{role} {purpose} {kind} {action}");
                    // Second ask comes from the cache and must agree.
                    assert_eq!(policy.decide(&req), expect);
                    assert_eq!(policy.decide_uncached(&req), expect);
                    assert_eq!(policy.explain_grant(&req).decision, expect);
                    cells += 1;
                    allows += usize::from(want);
                }
            }
        }
    }
    assert_eq!(cells, 8 * 5 * 8 * Action::ALL.len());
    println!("decision matrix: {cells} cells, {allows} allowed");
    // An unknown role and an unknown purpose are denied everywhere.
    let nobody = Accessor::new("x", [Role::new("intern")]);
    for kind in FieldKind::ALL {
        let req = AccessRequest {
            accessor: &nobody,
            purpose: "service",
            kind,
            action: Action::Mask,
        };
        assert_eq!(
            policy.decide(&req),
            Decision::Deny(DenyReason::NotPermitted)
        );
    }
}

#[test]
fn reference_metadata() {
    let m = Manifest::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.home_region().as_str(), "CN");
    assert_eq!(m.cross_border(), CrossBorderRule::Consent);
    let mk = m
        .purpose("marketing")
        .unwrap_or_else(|| panic!("marketing"));
    assert_eq!(mk.legal_basis, LegalBasis::Consent);
    assert!(mk.consent_required && mk.withdrawable);
    assert_eq!(mk.retention_secs, 365 * DAY);
    let svc = m.purpose("service").unwrap_or_else(|| panic!("service"));
    assert!(!svc.consent_required);
    assert_eq!(m.purposes().count(), 5);
    assert_eq!(m.roles().count(), 8);
    assert!(m.may_share_with("authorities", "legal"));
    assert!(!m.may_share_with("affiliates", "marketing"));
    let basis = |r: &str| m.recipient(r).map(|r| r.basis);
    assert_eq!(basis("affiliates"), Some(RecipientBasis::Affiliate));
    assert_eq!(basis("authorities"), Some(RecipientBasis::LegalObligation));
    assert_eq!(basis("security_partner"), Some(RecipientBasis::Protection));
    assert_eq!(basis("marketing_partner"), Some(RecipientBasis::Consent));
    assert_eq!(m.recipients().count(), 4);
    assert!(
        m.category("device")
            .is_some_and(|k| k.contains(&FieldKind::IpAddress))
    );
}

// ---------------------------------------------------------------- lint and parse errors

const BASE: &str = r#"
version = 1
home_region = "CN"
[purposes.service]
legal_basis = "contract"
retention_days = 30
"#;

fn lint(extra: &str) -> Vec<LintError> {
    match Manifest::from_toml(&format!("{BASE}{extra}")) {
        Err(ManifestError::Lint(v)) => v,
        other => panic!("expected lint errors, got {other:?}"),
    }
}

#[test]
fn every_lint_class() {
    let cases: Vec<(&str, String, LintError)> = vec![
        (
            "unknown kind",
            "[roles.a.grants.service]\nreveal = [\"shoe_size\"]\n".into(),
            LintError::UnknownKind {
                at: "roles.a.grants.service.reveal".into(),
                kind: "shoe_size".into(),
            },
        ),
        (
            "unknown kind in category",
            "[categories.c]\nkinds = [\"dna\"]\n".into(),
            LintError::UnknownKind {
                at: "categories.c.kinds".into(),
                kind: "dna".into(),
            },
        ),
        (
            "unknown action",
            "[roles.a.grants.service]\nsell = [\"email\"]\n".into(),
            LintError::UnknownAction {
                at: "roles.a.grants.service".into(),
                action: "sell".into(),
            },
        ),
        (
            "purpose without retention",
            "[purposes.x]\nlegal_basis = \"contract\"\n".into(),
            LintError::MissingRetention("x".into()),
        ),
        (
            "zero retention",
            "[purposes.x]\nlegal_basis = \"contract\"\nretention_days = 0\n".into(),
            LintError::MissingRetention("x".into()),
        ),
        (
            "role granting undefined purpose",
            "[roles.a.grants.telemarketing]\nreveal = [\"email\"]\n".into(),
            LintError::UndefinedPurpose {
                at: "roles.a.grants.telemarketing".into(),
                purpose: "telemarketing".into(),
            },
        ),
        (
            "recipient of undefined purpose",
            "[recipients.r]\npurposes = [\"resale\"]\n".into(),
            LintError::UndefinedPurpose {
                at: "recipients.r.purposes".into(),
                purpose: "resale".into(),
            },
        ),
        (
            "unknown recipient basis",
            "[recipients.r]\nbasis = \"friendship\"\npurposes = [\"service\"]\n".into(),
            LintError::UnknownRecipientBasis {
                recipient: "r".into(),
                basis: "friendship".into(),
            },
        ),
        (
            "consent without withdrawal",
            "[purposes.m]\nlegal_basis = \"consent\"\nretention_days = 1\n".into(),
            LintError::ConsentNotWithdrawable("m".into()),
        ),
        (
            "consent basis without consent",
            "[purposes.m]\nlegal_basis = \"consent\"\nretention_days = 1\nconsent_required = false\n"
                .into(),
            LintError::ConsentBasisWithoutConsent("m".into()),
        ),
        (
            "inheritance cycle",
            "[roles.a]\ninherits = [\"b\"]\n[roles.b]\ninherits = [\"c\"]\n[roles.c]\ninherits = [\"a\"]\n"
                .into(),
            LintError::InheritanceCycle(vec!["a".into(), "b".into(), "c".into()]),
        ),
        (
            "self inheritance",
            "[roles.a]\ninherits = [\"a\"]\n".into(),
            LintError::InheritanceCycle(vec!["a".into()]),
        ),
        (
            "undefined parent role",
            "[roles.a]\ninherits = [\"ghost\"]\n".into(),
            LintError::UndefinedRole {
                role: "a".into(),
                parent: "ghost".into(),
            },
        ),
        (
            "invalid purpose label",
            "[purposes.Bad-Label]\nlegal_basis = \"contract\"\nretention_days = 1\n".into(),
            LintError::InvalidPurposeLabel("Bad-Label".into()),
        ),
        (
            "invalid role name",
            "[roles.\"a, b\"]\n".into(),
            LintError::InvalidName("a, b".into()),
        ),
    ];
    let n = cases.len();
    for (what, extra, want) in cases {
        let got = lint(&extra);
        assert_eq!(got, vec![want], "{what}");
        assert!(!got[0].to_string().is_empty());
    }
    // Version and home region are checked at the top level.
    let v2 = Manifest::from_toml("version = 2\nhome_region = \" \"\n");
    assert_eq!(
        v2,
        Err(ManifestError::Lint(vec![
            LintError::UnsupportedVersion(2),
            LintError::InvalidHomeRegion(" ".into())
        ]))
    );
    println!("lint classes: {} cases", n + 1);
}

#[test]
fn all_lint_errors_reported_at_once() {
    let errs = lint(concat!(
        "[purposes.m]\nlegal_basis = \"consent\"\n",
        "[roles.a]\ninherits = [\"a\"]\n",
        "[roles.a.grants.nowhere]\nreveal = [\"shoe\"]\n",
    ));
    assert_eq!(errs.len(), 5, "{errs:?}");
    let msg = ManifestError::Lint(errs).to_string();
    assert!(msg.contains("5 problem"), "{msg}");
}

#[test]
fn parse_errors_name_position_and_field() {
    let text = format!("{BASE}[purposes.x]\nlegal_basis = \"contract\"\nretension_days = 3\n");
    match Manifest::from_toml(&text) {
        Err(ManifestError::Parse(p)) => {
            assert!(p.message.contains("retension_days"), "{p:?}");
            assert_eq!(p.line, 9, "{p:?}");
            assert!(p.column >= 1);
        }
        other => panic!("{other:?}"),
    }
    match Manifest::from_toml(
        "version = 1\nhome_region = \"CN\"\n[purposes.x]\nlegal_basis = \"vibes\"\n",
    ) {
        Err(ManifestError::Parse(p)) => {
            assert_eq!(p.line, 4, "{p:?}");
            assert!(p.message.contains("vibes"), "{p:?}");
        }
        other => panic!("{other:?}"),
    }
    match Manifest::from_toml("version = 1\n") {
        Err(ManifestError::Parse(p)) => assert!(p.message.contains("home_region"), "{p:?}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ManifestPolicy::from_toml("[[["),
        Err(Error::Manifest(ManifestError::Parse(_)))
    ));
}

// ---------------------------------------------------------------- guard checks

struct Fixture {
    guard: Guard,
    policy: Arc<ManifestPolicy>,
    consent: Arc<MemoryConsent>,
    clock: Arc<FixedClock>,
    sink: Arc<MemorySink>,
}

fn fixture() -> Fixture {
    let policy = Arc::new(reference());
    let consent = Arc::new(MemoryConsent::new());
    let clock = Arc::new(FixedClock::new(T0));
    let sink = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .shared_policy(Arc::clone(&policy) as Arc<dyn AccessPolicy>)
        .consent(Arc::clone(&consent))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .audit(Arc::clone(&sink))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        guard,
        policy,
        consent,
        clock,
        sink,
    }
}

fn subject() -> SubjectId {
    SubjectId::new("subject-7")
}

fn ctx() -> Context {
    Context::new()
        .table("inquiries")
        .column("email")
        .row("7")
        .subject(&subject())
}

fn denied(r: Result<impl Sized, Error>) -> DenyReason {
    match r {
        Err(Error::Denied { reason }) => reason,
        Err(e) => panic!("expected a denial, got {e}"),
        Ok(_) => panic!("expected a denial, got a value"),
    }
}

fn last_outcome(sink: &MemorySink) -> Outcome {
    sink.records()
        .last()
        .map(|r| r.outcome)
        .unwrap_or_else(|| panic!("no audit record"))
}

#[test]
fn consent_grant_and_withdrawal() {
    let f = fixture();
    let email = Email::parse("lin@example.com").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Email, Marketing> = f
        .guard
        .seal(&email, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let mk = Accessor::new("m1", [Role::new("marketing")]);

    assert_eq!(
        denied(f.guard.reveal(&mk, &sealed, &ctx())),
        DenyReason::ConsentMissing
    );
    assert_eq!(
        last_outcome(&f.sink),
        Outcome::Denied(DenyReason::ConsentMissing)
    );
    assert_eq!(last_outcome(&f.sink).label(), "denied:consent_missing");

    f.consent
        .grant(&subject(), ConsentScope::Purpose("marketing"), T0);
    let v = f
        .guard
        .reveal(&mk, &sealed, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.expose_secret().as_str(), "lin@example.com");
    assert_eq!(last_outcome(&f.sink), Outcome::Allowed);

    f.consent
        .withdraw(&subject(), ConsentScope::Purpose("marketing"), T0 + 5);
    assert_eq!(
        denied(f.guard.reveal(&mk, &sealed, &ctx())),
        DenyReason::ConsentMissing
    );
    assert_eq!(
        last_outcome(&f.sink),
        Outcome::Denied(DenyReason::ConsentMissing)
    );
    assert_eq!(
        f.consent
            .record(&subject(), ConsentScope::Purpose("marketing")),
        Some(ConsentRecord {
            granted_at: T0,
            withdrawn_at: Some(T0 + 5)
        })
    );
    let ex = f
        .guard
        .explain(&mk, &sealed, &ctx(), Action::Reveal)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ex.failed, Some(Check::Consent));

    // Without a subject in the context, consent cannot be checked: denied.
    let no_subject = Context::new().table("inquiries").column("email").row("7");
    let sealed2: Sealed<Email, Marketing> = f
        .guard
        .seal(&email, &no_subject)
        .unwrap_or_else(|e| panic!("{e}"));
    f.consent
        .grant(&subject(), ConsentScope::Purpose("marketing"), T0 + 6);
    assert_eq!(
        denied(f.guard.reveal(&mk, &sealed2, &no_subject)),
        DenyReason::ConsentMissing
    );
    assert_eq!(f.sink.len(), 4);
    // The subject identifier never reaches the audit records or the registry's Debug.
    assert!(!format!("{:?} {:?}", f.sink.records(), f.consent).contains("subject-7"));
}

#[test]
fn retention_expiry() {
    let f = fixture();
    let phone = PhoneNumber::parse("+86 138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<PhoneNumber, Service> = f
        .guard
        .seal(&phone, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let agent = Accessor::new("a1", [Role::new("support_agent")]);
    f.clock.set(T0 + 730 * DAY - 1);
    assert!(f.guard.reveal(&agent, &sealed, &ctx()).is_ok());
    f.clock.set(T0 + 730 * DAY);
    assert_eq!(
        denied(f.guard.reveal(&agent, &sealed, &ctx())),
        DenyReason::Expired
    );
    assert_eq!(last_outcome(&f.sink), Outcome::Denied(DenyReason::Expired));
    assert_eq!(last_outcome(&f.sink).label(), "denied:expired");
    assert_eq!(
        denied(f.guard.mask(&agent, &sealed, &ctx())),
        DenyReason::Expired
    );
    let ex = f
        .guard
        .explain(&agent, &sealed, &ctx(), Action::Reveal)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ex.failed, Some(Check::Retention));
    assert!(ex.to_string().contains("Retention"), "{ex}");
}

#[test]
fn cross_border_needs_consent() {
    let f = fixture();
    let phone = PhoneNumber::parse("+86 138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<PhoneNumber, Service> = f
        .guard
        .seal(&phone, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let home = Accessor::new("a1", [Role::new("support_agent")]).in_region("CN");
    let abroad = Accessor::new("a2", [Role::new("support_agent")]).in_region("SG");
    assert!(f.guard.reveal(&home, &sealed, &ctx()).is_ok());
    assert_eq!(
        denied(f.guard.reveal(&abroad, &sealed, &ctx())),
        DenyReason::CrossBorder
    );
    assert_eq!(
        last_outcome(&f.sink),
        Outcome::Denied(DenyReason::CrossBorder)
    );
    assert_eq!(last_outcome(&f.sink).label(), "denied:cross_border");
    f.consent.grant(&subject(), ConsentScope::CrossBorder, T0);
    assert!(f.guard.reveal(&abroad, &sealed, &ctx()).is_ok());
    f.consent
        .withdraw(&subject(), ConsentScope::CrossBorder, T0);
    let ex = f
        .guard
        .explain(&abroad, &sealed, &ctx(), Action::Reveal)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (ex.decision, ex.failed),
        (
            Decision::Deny(DenyReason::CrossBorder),
            Some(Check::Residency)
        )
    );
}

#[test]
fn inheritance_masking_and_plain_denial() {
    let f = fixture();
    let addr = PostalAddress::parse(
        "country=CN\nregion=北京市\ncity=北京市\nstreet=建国路88号\npostal_code=100022",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let phone = PhoneNumber::parse("+86 138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
    let s_addr: Sealed<PostalAddress, Service> = f
        .guard
        .seal(&addr, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let s_phone: Sealed<PhoneNumber, Service> = f
        .guard
        .seal(&phone, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let agent = Accessor::new("a1", [Role::new("support_agent")]);
    let lead = Accessor::new("l1", [Role::new("support_lead")]);

    // The lead's own grant, and one inherited from support_agent.
    assert!(f.guard.reveal(&lead, &s_addr, &ctx()).is_ok());
    assert!(f.guard.reveal(&lead, &s_phone, &ctx()).is_ok());
    let ex = f
        .guard
        .explain(&lead, &s_phone, &ctx(), Action::Mask)
        .unwrap_or_else(|e| panic!("{e}"));
    let g = ex.grant.unwrap_or_else(|| panic!("a grant"));
    assert_eq!(
        (g.granted_by.as_str(), g.action),
        ("support_agent", Action::Reveal)
    );

    // The agent may only mask addresses; revealing is denied and audited.
    assert_eq!(
        denied(f.guard.reveal(&agent, &s_addr, &ctx())),
        DenyReason::NotPermitted
    );
    assert_eq!(
        last_outcome(&f.sink),
        Outcome::Denied(DenyReason::NotPermitted)
    );
    assert!(f.guard.mask(&agent, &s_addr, &ctx()).is_ok());
    // Reveal implies mask.
    assert_eq!(
        f.guard
            .mask(&agent, &s_phone, &ctx())
            .unwrap_or_else(|e| panic!("{e}")),
        "+86 138****8000"
    );
    // Legal data is not the agent's business at all. (The reference policy collects addresses
    // for the legal purpose but not phone numbers: those may not be sealed for it.)
    let legal: Sealed<PostalAddress, Legal> = f
        .guard
        .seal(&addr, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        denied(f.guard.mask(&agent, &legal, &ctx())),
        DenyReason::NotPermitted
    );
    let recs = f.sink.records();
    assert_eq!(recs.len(), 6);
    assert_eq!(
        recs.iter()
            .filter(|r| r.outcome == Outcome::Denied(DenyReason::NotPermitted))
            .count(),
        2
    );
}

#[test]
fn hot_reload_takes_effect() {
    let f = fixture();
    let phone = PhoneNumber::parse("+86 138 0013 8000").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<PhoneNumber, Service> = f
        .guard
        .seal(&phone, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    let agent = Accessor::new("a1", [Role::new("support_agent")]);
    assert!(f.guard.reveal(&agent, &sealed, &ctx()).is_ok());
    // The native engine decides from its table every time: nothing is cached.
    assert_eq!(f.policy.cached_len(), 0);
    assert_eq!(f.policy.version(), 1);

    let stricter = REFERENCE.replace(
        "reveal = [\"person_name\", \"phone_number\", \"email\", \"text\"]",
        "reveal = [\"person_name\"]",
    );
    f.policy
        .reload_toml(&stricter)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.policy.version(), 2);
    assert_eq!(f.policy.cached_len(), 0);
    assert_eq!(
        denied(f.guard.reveal(&agent, &sealed, &ctx())),
        DenyReason::NotPermitted
    );
    // A bad manifest leaves the rules in force.
    assert!(f.policy.reload_toml("version = 1\n").is_err());
    assert_eq!(f.policy.version(), 2);
    assert!(f.guard.reveal(&agent, &sealed, &ctx()).is_err());
    // Every audit record names the policy version that decided it.
    let versions: Vec<u64> = f.sink.records().iter().map(|r| r.policy_version).collect();
    assert_eq!(versions, [1, 2, 2]);
}

#[test]
fn deny_reasons_have_labels() {
    let labels: BTreeSet<&str> = DenyReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), DenyReason::ALL.len());
    for r in DenyReason::ALL {
        assert_eq!(Outcome::Denied(r).label(), format!("denied:{}", r.label()));
        assert!(!r.to_string().is_empty());
    }
}

#[cfg(feature = "casbin")]
#[test]
fn casbin_engine_agrees_on_reference() {
    let native = reference();
    let casbin = ManifestPolicy::new(
        Manifest::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}")),
        Engine::Casbin,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(casbin.engine(), Engine::Casbin);
    let mut n = 0;
    for role in native.manifest().roles() {
        let acc = Accessor::new("c", [Role::new(role), Role::new("intern")]);
        for purpose in [
            "service",
            "improvement",
            "security",
            "marketing",
            "legal",
            "nope",
        ] {
            for kind in FieldKind::ALL {
                for action in Action::ALL {
                    let req = AccessRequest {
                        accessor: &acc,
                        purpose,
                        kind,
                        action,
                    };
                    assert_eq!(
                        native.decide(&req),
                        casbin.decide(&req),
                        "{role} {purpose} {kind} {action}"
                    );
                    n += 1;
                }
            }
        }
    }
    println!("casbin vs native on the reference manifest: {n} requests agree");
}

#[cfg(feature = "casbin")]
#[test]
fn casbin_user_model() {
    let model = "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\n\
        p = sub, dom, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\n\
        e = some(where (p.eft == allow))\n[matchers]\n\
        m = r.dom == p.dom && r.obj == p.obj && r.act == p.act && g(r.sub, p.sub)\n";
    let policy = CasbinPolicy::from_text(
        model,
        "p, staff, service, email, mask\ng, support_agent, staff\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = Accessor::new("a", [Role::new("support_agent")]);
    let req = |action| AccessRequest {
        accessor: &a,
        purpose: "service",
        kind: FieldKind::Email,
        action,
    };
    assert_eq!(policy.decide(&req(Action::Mask)), Decision::Allow);
    assert_eq!(
        policy.decide(&req(Action::Reveal)),
        Decision::Deny(DenyReason::NotPermitted)
    );
    // A model whose request does not have four parts cannot evaluate: denied (fail closed), and
    // the raw call reports the engine error.
    let two = "[request_definition]\nr = sub, obj\n[policy_definition]\np = sub, obj\n\
        [policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\n\
        m = r.sub == p.sub && r.obj == p.obj\n";
    let broken = CasbinPolicy::from_text(two, "p, support_agent, service\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        broken.decide(&req(Action::Mask)),
        Decision::Deny(DenyReason::NotPermitted)
    );
    assert!(matches!(
        broken.enforce("support_agent", "service", "email", "mask"),
        Err(Error::Engine(_))
    ));
}

/// The casbin engine's decisions are cached, and a reload starts from an empty cache.
#[cfg(feature = "casbin")]
#[test]
fn casbin_decisions_are_cached_and_a_reload_clears_them() {
    let policy = reference_with(Engine::Casbin);
    let agent = Accessor::new("a1", [Role::new("support_agent")]);
    let req = AccessRequest {
        accessor: &agent,
        purpose: "service",
        kind: FieldKind::PhoneNumber,
        action: Action::Reveal,
    };
    assert_eq!(policy.decide(&req), Decision::Allow);
    assert!(policy.cached_len() > 0);
    policy
        .reload_toml(&REFERENCE.replace(
            "reveal = [\"person_name\", \"phone_number\", \"email\", \"text\"]",
            "reveal = [\"person_name\"]",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.cached_len(), 0);
    assert_eq!(
        policy.decide(&req),
        Decision::Deny(DenyReason::NotPermitted)
    );
    assert!(policy.cached_len() > 0);
}

/// Through the `AccessPolicy` trait (what the guard calls), both engines report the version in
/// force and the manifest's recipients.
#[test]
fn trait_reports_version_and_recipients() {
    let policies = [
        reference(),
        #[cfg(feature = "casbin")]
        reference_with(Engine::Casbin),
    ];
    for policy in policies {
        assert_eq!(AccessPolicy::policy_version(&policy), 1);
        policy
            .reload_toml(REFERENCE)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(AccessPolicy::policy_version(&policy), 2);
        let authorities = AccessPolicy::recipient_rules(&policy, "authorities")
            .unwrap_or_else(|| panic!("authorities are a recipient"));
        assert!(authorities.may_receive("legal"));
        assert!(!authorities.may_receive("service"));
        assert!(AccessPolicy::recipient_rules(&policy, "nobody").is_none());
    }
}

/// A cache key is exact: the same roles in another order or repeated are one request (one
/// entry however often it is asked), and nothing else shares its entry.
#[cfg(feature = "casbin")]
#[test]
fn casbin_cache_holds_one_entry_per_distinct_request() {
    let policy = reference_with(Engine::Casbin);
    assert_eq!(policy.engine(), Engine::Casbin);
    assert!(format!("{policy:?}").contains("Casbin"));
    let same = [
        Accessor::new("a", [Role::new("support_agent"), Role::new("marketing")]),
        Accessor::new("a", [Role::new("marketing"), Role::new("support_agent")]),
        Accessor::new(
            "a",
            [
                Role::new("marketing"),
                Role::new("support_agent"),
                Role::new("marketing"),
            ],
        ),
    ];
    for _ in 0..5 {
        for accessor in &same {
            let req = AccessRequest {
                accessor,
                purpose: "service",
                kind: FieldKind::PhoneNumber,
                action: Action::Reveal,
            };
            assert_eq!(policy.decide(&req), Decision::Allow);
        }
    }
    assert_eq!(policy.cached_len(), 1);
}

/// Every cached answer is the uncached one, over 1,800 distinct requests (enough that the
/// cache's hash table compares many keys that differ), asked twice: once filling the cache,
/// once answered from it.
#[cfg(feature = "casbin")]
#[test]
fn casbin_cached_decisions_equal_uncached_ones() {
    let policy = reference_with(Engine::Casbin);
    let names = [
        "support_agent",
        "security_analyst",
        "marketing",
        "legal_counsel",
    ];
    let accessors: Vec<Accessor> = (1u32..16)
        .map(|mask| {
            let roles = names
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| Role::new(n));
            Accessor::new("a", roles)
        })
        .collect();
    let purposes = ["service", "improvement", "security", "marketing", "legal"];
    let actions = [Action::Reveal, Action::Mask, Action::Index];
    let mut allowed = 0;
    for pass in 0..2 {
        for accessor in &accessors {
            for purpose in purposes {
                for kind in FieldKind::ALL {
                    for action in actions {
                        let req = AccessRequest {
                            accessor,
                            purpose,
                            kind,
                            action,
                        };
                        let d = policy.decide(&req);
                        assert_eq!(d, policy.decide_uncached(&req), "pass {pass}: {req:?}");
                        allowed += usize::from(pass == 0 && d == Decision::Allow);
                    }
                }
            }
        }
    }
    assert_eq!(policy.cached_len(), 15 * 5 * 8 * 3);
    // Both answers are common, so a wrong entry would be seen.
    assert!(allowed > 100 && allowed < 1700, "{allowed} allowed");
}

/// Requests with up to eight distinct roles are cached; with more they are decided uncached
/// (the key would not hold them all), so a role beyond the eighth is never lost from a key.
#[cfg(feature = "casbin")]
#[test]
fn casbin_cache_takes_up_to_eight_roles() {
    let policy = reference_with(Engine::Casbin);
    let fillers: Vec<Role> = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"]
        .into_iter()
        .map(Role::new)
        .collect();
    let ask = |roles: Vec<Role>| {
        let accessor = Accessor::new("a", roles);
        policy.decide(&AccessRequest {
            accessor: &accessor,
            purpose: "service",
            kind: FieldKind::PhoneNumber,
            action: Action::Reveal,
        })
    };
    // Nine roles; the one that grants sorts last.
    let mut nine = fillers.clone();
    nine.push(Role::new("support_agent"));
    assert_eq!(ask(nine), Decision::Allow);
    assert_eq!(policy.cached_len(), 0);
    // The first eight alone grant nothing, and are not answered from a truncated key.
    assert_eq!(ask(fillers), Decision::Deny(DenyReason::NotPermitted));
    assert_eq!(policy.cached_len(), 1);
}

#[cfg(feature = "casbin")]
fn reference_with(engine: Engine) -> ManifestPolicy {
    ManifestPolicy::new(
        Manifest::from_toml(REFERENCE).unwrap_or_else(|e| panic!("{e}")),
        engine,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A reload is seen by a thread that asked before it, with both engines (the casbin engine's
/// per-thread cache must not answer with the old rules).
#[test]
fn reload_invalidates_other_threads_caches() {
    reload_reaches_other_threads(reference());
    #[cfg(feature = "casbin")]
    reload_reaches_other_threads(reference_with(Engine::Casbin));
}

fn reload_reaches_other_threads(policy: ManifestPolicy) {
    use std::sync::mpsc;
    let policy = Arc::new(policy);
    let stricter = REFERENCE.replace(
        "reveal = [\"person_name\", \"phone_number\", \"email\", \"text\"]",
        "reveal = [\"person_name\"]",
    );
    let (to_reader, from_main) = mpsc::channel::<()>();
    let (to_main, from_reader) = mpsc::channel::<Decision>();
    let reader = {
        let policy = Arc::clone(&policy);
        std::thread::spawn(move || {
            let agent = Accessor::new("a", [Role::new("support_agent")]);
            let req = AccessRequest {
                accessor: &agent,
                purpose: "service",
                kind: FieldKind::PhoneNumber,
                action: Action::Reveal,
            };
            while from_main.recv().is_ok() {
                // Twice: the second answer comes from this thread's cache.
                let _ = policy.decide(&req);
                let _ = to_main.send(policy.decide(&req));
            }
        })
    };
    let ask = || {
        to_reader.send(()).unwrap_or_else(|e| panic!("{e}"));
        from_reader.recv().unwrap_or_else(|e| panic!("{e}"))
    };
    for round in 0..20 {
        assert_eq!(ask(), Decision::Allow, "round {round}");
        policy
            .reload_toml(&stricter)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ask(),
            Decision::Deny(DenyReason::NotPermitted),
            "round {round}"
        );
        policy
            .reload_toml(REFERENCE)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    drop(to_reader);
    reader.join().unwrap_or_else(|_| panic!("reader panicked"));
    assert_eq!(policy.version(), 41);
}
