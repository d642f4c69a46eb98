//! The steps of the website demo, one or more per promise of the reference privacy policy
//! (`examples/reference-policy.toml` is the policy as code). Shared with `tests/website_demo.rs`,
//! which runs it and checks every step.

use std::io::Write;
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use fieldseal::builtin::{Improvement, Legal, Marketing, Security, Service};
use fieldseal::*;

const DAY: u64 = 86_400;

static DATA_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Overrides the data directory (the tests use a temporary one); otherwise
/// `FIELDSEAL_DEMO_DIR`, or `target/fieldseal-demo`.
pub fn set_data_dir(dir: std::path::PathBuf) {
    let _ = DATA_DIR.set(dir);
}

/// What a step should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The operation succeeds (or the check holds).
    Allowed,
    /// The operation is refused.
    Refused,
}

/// One checked step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Clause id, e.g. `purpose.marketing`.
    pub clause: &'static str,
    /// What the step tried.
    pub step: String,
    /// What the policy says should happen.
    pub expected: Expect,
    /// What happened: `allowed` or `refused: <error>`.
    pub outcome: String,
    /// What the step shows (masked values, counts, reasons).
    pub detail: String,
    /// Whether it behaved as the policy says.
    pub ok: bool,
}

struct Run<'w> {
    out: &'w mut dyn Write,
    json: bool,
    clause: &'static str,
    steps: Vec<Step>,
}

impl Run<'_> {
    fn clause(&mut self, id: &'static str, promise: &str) -> std::io::Result<()> {
        self.clause = id;
        if self.json {
            let line = serde_json::json!({ "clause": id, "promise": promise });
            writeln!(self.out, "{line}")
        } else {
            writeln!(self.out, "\n[{id}] {promise}")
        }
    }

    fn push(&mut self, step: &str, expected: Expect, outcome: String, detail: String, ok: bool) {
        let s = Step {
            clause: self.clause,
            step: step.to_owned(),
            expected,
            outcome,
            detail,
            ok,
        };
        let _ = if self.json {
            let line = serde_json::json!({
                "clause": s.clause,
                "step": s.step,
                "expected": match s.expected { Expect::Allowed => "allowed", Expect::Refused => "refused" },
                "outcome": s.outcome,
                "detail": s.detail,
                "ok": s.ok,
            });
            writeln!(self.out, "{line}")
        } else {
            let mark = if s.ok { "ok " } else { "BAD" };
            let detail = if s.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", s.detail)
            };
            writeln!(self.out, "  {mark} {}: {}{detail}", s.step, s.outcome)
        };
        self.steps.push(s);
    }

    /// A step that must succeed; `show` renders what it produced.
    fn allowed<T>(
        &mut self,
        step: &str,
        r: Result<T, Error>,
        show: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match r {
            Ok(v) => {
                let detail = show(&v);
                self.push(step, Expect::Allowed, "allowed".into(), detail, true);
                Some(v)
            }
            Err(e) => {
                self.push(
                    step,
                    Expect::Allowed,
                    format!("refused: {e}"),
                    String::new(),
                    false,
                );
                None
            }
        }
    }

    /// A step that must be refused, with an error `why` accepts.
    fn refused<T>(&mut self, step: &str, r: Result<T, Error>, why: impl FnOnce(&Error) -> bool) {
        match r {
            Ok(_) => self.push(
                step,
                Expect::Refused,
                "allowed".into(),
                String::new(),
                false,
            ),
            Err(e) => {
                let ok = why(&e);
                self.push(
                    step,
                    Expect::Refused,
                    format!("refused: {e}"),
                    String::new(),
                    ok,
                );
            }
        }
    }

    /// A check on something the program computed.
    fn check(&mut self, step: &str, holds: bool, detail: String) {
        let outcome = if holds { "holds" } else { "does not hold" };
        self.push(step, Expect::Allowed, outcome.into(), detail, holds);
    }
}

fn denied(reason: DenyReason) -> impl FnOnce(&Error) -> bool {
    move |e| matches!(e, Error::Denied { reason: r } if *r == reason)
}

/// Runs every step, writing human or JSON lines to `out`; returns the steps.
///
/// # Errors
/// Set-up failures (key files, audit directory); a step that misbehaves is a failed step, not
/// an error.
pub fn run(out: &mut dyn Write, json: bool) -> Result<Vec<Step>, Box<dyn std::error::Error>> {
    let mut run = Run {
        out,
        json,
        clause: "setup",
        steps: Vec::new(),
    };
    let r = &mut run;

    // ------------------------------------------------------------------ set-up
    let policy = Arc::new(ManifestPolicy::from_toml(include_str!(
        "../reference-policy.toml"
    ))?);
    let consent = Arc::new(MemoryConsent::new());
    let clock = Arc::new(FixedClock::new(1_764_000_000));
    let dir = std::env::temp_dir().join(format!(
        "fieldseal-website-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    // A file KEK (mode 0600) wraps the keyring file's key; root, audit and checkpoint keys live
    // in the keyring file. Both survive restarts; nothing on the hot path calls the KEK.
    let data = DATA_DIR.get().cloned().unwrap_or_else(|| {
        std::env::var_os("FIELDSEAL_DEMO_DIR").map_or_else(
            || std::path::PathBuf::from("target/fieldseal-demo"),
            Into::into,
        )
    });
    std::fs::create_dir_all(&data)?;
    let kek_path = data.join("kek");
    let ring_path = data.join("keyring.json");
    let kek = Arc::new(if kek_path.exists() {
        FileKek::open(&kek_path)?
    } else {
        FileKek::create(&kek_path)?
    });
    let first_run = !ring_path.exists();
    let keyring = Arc::new(if first_run {
        Keyring::create(&*kek, &ring_path)?
    } else {
        Keyring::load(&*kek, &ring_path)?
    });
    let (audit_key, checkpoint_key) = keyring.audit_keys()?;
    let public = checkpoint_key.verifying_key();
    let pseudonyms = audit_key.pseudonym_key();
    let (log, _) = ChainedLog::builder(&dir)
        .key(keyring.audit_keys()?.0)
        .checkpoint_key(checkpoint_key)
        .durability(Durability::Durable)
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .open()?;
    let log = Arc::new(log);
    let guard = Guard::builder()
        .shared_keyring(Arc::clone(&keyring))
        .subject_keys(SubjectKeys::new(
            Arc::clone(&kek) as Arc<dyn KeyProvider>,
            Arc::new(FileSubjectKeys::open(data.join("subject-keys"))?),
        ))
        .subject_key_purpose(PurposeId::of::<Marketing>(), SubjectKeyScope::Purpose)
        .subject_key_purpose(PurposeId::of::<Legal>(), SubjectKeyScope::Purpose)
        .shared_policy(Arc::clone(&policy) as Arc<dyn AccessPolicy>)
        .consent(Arc::clone(&consent))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .audit(Arc::clone(&log))
        .build()?;
    r.clause(
        "setup",
        "keys in a keyring file under a file KEK; the policy manifest; a MAC-chained audit log",
    )?;
    r.check(
        if first_run {
            "keyring created"
        } else {
            "keyring loaded from the previous run"
        },
        true,
        format!(
            "{}, active key version {}, policy version {}",
            ring_path.display(),
            keyring.active_version(),
            policy.version()
        ),
    );

    // People and staff.
    let visitor = SubjectId::new("visitor-1001");
    let other = SubjectId::new("visitor-2002");
    let agent = Accessor::new("alice", [Role::new("support_agent")]);
    let lead = Accessor::new("li", [Role::new("support_lead")]);
    let analyst = Accessor::new("sec-bot", [Role::new("security_analyst")]);
    let analytics = Accessor::new("stats-job", [Role::new("analytics_job")]);
    let marketer = Accessor::new("mia", [Role::new("marketing")]);
    let counsel = Accessor::new("lu", [Role::new("legal_counsel")]);
    let dpo = Accessor::new("dora", [Role::new("dpo")]);
    let intern = Accessor::new("ivan", [Role::new("intern")]);
    let web = Accessor::new("website", [Role::new("web_frontend")]);
    let row = |table: &str, column: &str, subject: &SubjectId| {
        Context::new()
            .table(table)
            .column(column)
            .row("1001")
            .subject(subject)
    };
    let inq = |column: &str| row("inquiries", column, &visitor);

    // ------------------------------------------------------------------ collection
    r.clause(
        "collection.inquiry",
        "inquiries: name, phone number, email, company name — sealed for the service purpose",
    )?;
    let name = r.allowed(
        "seal name",
        guard.seal::<PersonName, Service>(&PersonName::parse("张三")?, &inq("name")),
        |s| format!("stored as {}…", &s.to_text()[..24]),
    );
    let phone = r.allowed(
        "seal phone",
        guard.seal::<PhoneNumber, Service>(&PhoneNumber::parse("138 0013 8000")?, &inq("phone")),
        |_| String::new(),
    );
    let email = r.allowed(
        "seal email",
        guard.seal::<Email, Service>(&Email::parse("zhang.san@example.com")?, &inq("email")),
        |_| String::new(),
    );
    r.allowed(
        "seal company name",
        guard.seal::<Text, Service>(&Text::parse("Acme Trading Co.")?, &inq("company")),
        |_| String::new(),
    );

    r.clause(
        "collection.account",
        "accounts: username, password, contact details — the password is hashed, never sealed",
    )?;
    let argon = argon2::Argon2::default();
    let salt = SaltString::encode_b64(b"demo-salt-1001..").map_err(|e| format!("salt: {e}"))?;
    let hash = argon
        .hash_password(b"correct horse battery staple", &salt)
        .map_err(|e| format!("argon2: {e}"))?
        .to_string();
    let parsed = argon2::PasswordHash::new(&hash).map_err(|e| format!("argon2: {e}"))?;
    r.check(
        "password stored as an argon2id hash, verifies",
        argon
            .verify_password(b"correct horse battery staple", &parsed)
            .is_ok()
            && argon.verify_password(b"wrong", &parsed).is_err(),
        format!("{}…", &hash[..30]),
    );
    let account_email = r.allowed(
        "seal account email for the service purpose",
        guard.seal::<Email, Service>(
            &Email::parse("zhang.san@example.com")?,
            &row("accounts", "email", &visitor),
        ),
        |_| String::new(),
    );

    r.clause(
        "collection.activity",
        "activities: ID number and address — only for prize claims and identity verification",
    )?;
    let id = r.allowed(
        "seal ID number for the service purpose (prize claim)",
        guard.seal::<IdNumber, Service>(&IdNumber::parse("11010519491231002X")?, &inq("id_number")),
        |_| String::new(),
    );
    let address = r.allowed(
        "seal postal address for the service purpose",
        guard.seal::<PostalAddress, Service>(
            &PostalAddress::parse(
                "country=CN\nregion=北京市\ncity=北京市\ndistrict=朝阳区\nstreet=建国路 1 号\npostal_code=100022",
            )?,
            &inq("address"),
        ),
        |_| String::new(),
    );
    r.refused(
        "seal ID number for marketing",
        guard.seal::<IdNumber, Marketing>(&IdNumber::parse("11010519491231002X")?, &inq("id")),
        denied(DenyReason::PurposeNotAllowedForKind),
    );

    r.clause(
        "collection.device",
        "visits: IP address, browser, OS, visit time, pages, device model — recorded by the server",
    )?;
    let ip = r.allowed(
        "seal the visitor's IP for security",
        guard.seal::<IpAddress, Security>(
            &IpAddress::parse("203.0.113.77")?,
            &row("visits", "ip", &visitor),
        ),
        |_| String::new(),
    );
    r.allowed(
        "seal device information for security",
        guard.seal::<DeviceInfo, Security>(
            &DeviceInfo::parse(
                "user_agent=Mozilla/5.0 (X11; Linux x86_64)\nos=Linux\nmodel=ThinkPad X1",
            )?,
            &row("visits", "device", &visitor),
        ),
        |_| String::new(),
    );
    let visit_ip = r.allowed(
        "seal the IP for improvement (analytics)",
        guard.seal::<IpAddress, Improvement>(
            &IpAddress::parse("203.0.113.77")?,
            &row("analytics", "ip", &visitor),
        ),
        |_| String::new(),
    );

    r.refused(
        "seal device information for marketing (the policy names no such use)",
        guard.seal::<DeviceInfo, Marketing>(
            &DeviceInfo::parse("os=Linux")?,
            &row("visits", "device", &visitor),
        ),
        denied(DenyReason::PurposeNotAllowedForKind),
    );

    r.clause(
        "collection.cookies",
        "browsing habits: click records, dwell time, cookie ids — for improvement and marketing",
    )?;
    r.allowed(
        "seal a cookie id for improvement",
        guard.seal::<Text, Improvement>(
            &Text::parse("ck_7f3a91c2")?,
            &row("browsing", "cookie", &visitor),
        ),
        |_| String::new(),
    );
    r.allowed(
        "seal a cookie id for marketing",
        guard.seal::<Text, Marketing>(
            &Text::parse("ck_7f3a91c2")?,
            &row("browsing", "cookie", &visitor),
        ),
        |_| String::new(),
    );

    // ------------------------------------------------------------------ restart
    // The previous run left a sealed phone number behind; this run's keys open it.
    let carried = data.join("carried-over.txt");
    let carried_ctx = Context::new().table("inquiries").column("phone").row("0");
    if let Ok(text) = std::fs::read_to_string(&carried) {
        r.clause(
            "setup",
            "a value sealed by the previous run opens after a restart",
        )?;
        let old: Result<Sealed<PhoneNumber, Service>, Error> = text.trim().parse();
        if let Some(old) = r.allowed("parse the stored value", old, |o| {
            format!("key version {}", o.key_version())
        }) {
            r.allowed(
                "mask it",
                guard.mask(&agent, &old, &carried_ctx),
                Clone::clone,
            );
        }
    }

    // ------------------------------------------------------------------ purposes
    r.clause(
        "purpose.service",
        "provide requested services: respond to inquiries, handle cooperation, send event notices",
    )?;
    if let (Some(name), Some(phone), Some(email)) = (&name, &phone, &email) {
        r.allowed(
            "support agent reveals the name",
            guard.reveal(&agent, name, &inq("name")),
            |v| v.expose_secret().as_str().to_owned(),
        );
        r.allowed(
            "support agent reveals the phone",
            guard.reveal(&agent, phone, &inq("phone")),
            |v| v.expose_secret().as_str().to_owned(),
        );
        r.allowed(
            "support agent reveals the email",
            guard.reveal(&agent, email, &inq("email")),
            |v| v.expose_secret().as_str().to_owned(),
        );
    }
    if let Some(id) = &id {
        r.allowed(
            "support agent sees the ID number masked",
            guard.mask(&agent, id, &inq("id_number")),
            Clone::clone,
        );
        r.refused(
            "support agent reveals the ID number",
            guard.reveal(&agent, id, &inq("id_number")),
            denied(DenyReason::NotPermitted),
        );
        r.allowed(
            "support lead reveals the ID number (prize claim)",
            guard.reveal(&lead, id, &inq("id_number")),
            |_| {
                guard
                    .explain(&lead, id, &inq("id_number"), Action::Reveal)
                    .map_or_else(|e| e.to_string(), |x| x.to_string())
            },
        );
    }

    r.clause(
        "purpose.improvement",
        "improve website functions and content: analytics see generalized data only",
    )?;
    if let Some(visit_ip) = &visit_ip {
        let actx = row("analytics", "ip", &visitor);
        let p1 = r.allowed(
            "analytics job takes a keyed pseudonym of the visitor's IP",
            guard.anonymize(&analytics, visit_ip, &actx, Anonymization::Pseudonym),
            |a| format!("{}…", &a.to_string()[..12]),
        );
        r.allowed(
            "analytics job generalizes the IP to its network",
            guard.anonymize(&analytics, visit_ip, &actx, Anonymization::IpNetwork),
            ToString::to_string,
        );
        // A second visit from the same address: same pseudonym within the purpose.
        let again_ctx = Context::new().table("analytics").column("ip").row("1002");
        let again =
            guard.seal::<IpAddress, Improvement>(&IpAddress::parse("203.0.113.77")?, &again_ctx)?;
        let p2 = guard.anonymize(&analytics, &again, &again_ctx, Anonymization::Pseudonym);
        r.check(
            "two visits from one address share a pseudonym (stable within the purpose)",
            matches!((&p1, &p2), (Some(a), Ok(b)) if a.to_string() == b.to_string()),
            String::new(),
        );
        r.refused(
            "analytics job reveals the IP",
            guard.reveal(&analytics, visit_ip, &row("analytics", "ip", &visitor)),
            denied(DenyReason::NotPermitted),
        );
    }

    r.clause(
        "purpose.security",
        "ensure website security and prevent risks (fraud, abuse)",
    )?;
    if let Some(ip) = &ip {
        let vctx = row("visits", "ip", &visitor);
        r.allowed(
            "security analyst reveals the visitor's IP",
            guard.reveal(&analyst, ip, &vctx),
            |v| v.expose_secret().addr().to_string(),
        );
        r.allowed(
            "the fraud report shows the IP anonymized, not revealed again",
            guard.anonymize(&analyst, ip, &vctx, Anonymization::IpNetwork),
            ToString::to_string,
        );
        // Repeat visitors are found by a blind index over the visit log, not by decrypting it.
        let repeat = BlindIndex::<IpAddress, Security>::builder("repeat_visitor")
            .expected_rows(1_000_000)
            .distinct_values(200_000)
            .build()?;
        let term = guard.blind_index_sealed(&analyst, ip, &vctx, &repeat);
        let query = guard.index_query(
            &analyst,
            &IpAddress::parse("203.0.113.77")?,
            &Context::new().table("visits"),
            &repeat,
        );
        r.check(
            "a blind-index query finds the visit without decrypting the log",
            matches!((&term, &query), (Ok(t), Ok(q)) if q.matches(t)),
            format!("{} bits per term", repeat.bits()),
        );
    }

    r.clause(
        "purpose.marketing",
        "send product and service information — with consent, which can be withdrawn",
    )?;
    let promo_ctx = row("newsletter", "email", &visitor);
    let promo = r.allowed(
        "seal the newsletter email for marketing (under a per-subject key)",
        guard.seal::<Email, Marketing>(&Email::parse("zhang.san@example.com")?, &promo_ctx),
        |_| String::new(),
    );
    if let Some(promo) = &promo {
        r.refused(
            "marketing reveals the email without consent",
            guard.reveal(&marketer, promo, &promo_ctx),
            denied(DenyReason::ConsentMissing),
        );
        r.allowed(
            "the visitor ticks the newsletter box (consent recorded and audited)",
            guard.grant_consent(&web, &visitor, ConsentScope::Purpose("marketing")),
            |_| String::new(),
        );
        r.allowed(
            "marketing reveals the email",
            guard.reveal(&marketer, promo, &promo_ctx),
            |v| v.expose_secret().as_str().to_owned(),
        );
        clock.advance(3 * DAY);
        r.allowed(
            "the visitor unsubscribes (withdrawal recorded and audited)",
            guard.withdraw_consent(&web, &visitor, ConsentScope::Purpose("marketing")),
            |_| String::new(),
        );
        r.refused(
            "marketing reveals the email after withdrawal",
            guard.reveal(&marketer, promo, &promo_ctx),
            denied(DenyReason::ConsentMissing),
        );
    }
    if let Some(email) = &email {
        r.refused(
            "marketing reads the inquiry email (collected for service, not marketing)",
            guard.reveal(&marketer, email, &inq("email")),
            denied(DenyReason::NotPermitted),
        );
    }

    r.clause(
        "purpose.legal",
        "comply with laws and respond to legitimate requests of authorities",
    )?;
    let legal_ctx = row("prize_claims", "id_number", &visitor);
    let held_id = r.allowed(
        "seal the prize winner's ID number for the legal purpose (tax record)",
        guard.seal::<IdNumber, Legal>(&IdNumber::parse("11010519491231002X")?, &legal_ctx),
        |_| String::new(),
    );
    if let Some(held) = &held_id {
        r.allowed(
            "legal counsel reveals it",
            guard.reveal(&counsel, held, &legal_ctx),
            |v| v.mask(),
        );
        r.refused(
            "support agent reveals it",
            guard.reveal(&agent, held, &legal_ctx),
            denied(DenyReason::NotPermitted),
        );
    }

    // ------------------------------------------------------------------ storage location
    r.clause(
        "storage.location",
        "stored in the PRC; cross-border transfer needs the person's consent",
    )?;
    let abroad = Accessor::new("sam", [Role::new("support_agent")]).in_region("SG");
    if let Some(phone) = &phone {
        r.refused(
            "agent in Singapore reveals the phone",
            guard.reveal(&abroad, phone, &inq("phone")),
            denied(DenyReason::CrossBorder),
        );
        r.allowed(
            "the visitor consents to cross-border access",
            guard.grant_consent(&web, &visitor, ConsentScope::CrossBorder),
            |_| String::new(),
        );
        r.allowed(
            "agent in Singapore reveals the phone",
            guard.reveal(&abroad, phone, &inq("phone")),
            |v| v.mask(),
        );
        r.allowed(
            "the visitor withdraws it",
            guard.withdraw_consent(&web, &visitor, ConsentScope::CrossBorder),
            |_| String::new(),
        );
    }

    // ------------------------------------------------------------------ security measures
    r.clause(
        "security.encryption",
        "encryption: what is stored is sealed, bound to its row, and opens nowhere else",
    )?;
    if let Some(phone) = &phone {
        let text = phone.to_text();
        r.check(
            "the stored phone holds no digit run of the number",
            !text.contains("13800138000") && !text.contains("8000"),
            format!("{}…", &text[..32]),
        );
        let copied: Sealed<PhoneNumber, Service> = text.parse()?;
        let other_row = Context::new()
            .table("inquiries")
            .column("phone")
            .row("2002")
            .subject(&other);
        r.refused(
            "the phone copied into another person's row",
            guard.reveal(&agent, &copied, &other_row),
            |e| matches!(e, Error::Integrity),
        );
    }

    r.clause(
        "security.access_control",
        "access control: only roles the policy names, only for their purposes",
    )?;
    if let Some(phone) = &phone {
        r.refused(
            "an intern (no grants) reveals the phone",
            guard.reveal(&intern, phone, &inq("phone")),
            denied(DenyReason::NotPermitted),
        );
    }

    // ------------------------------------------------------------------ sharing
    r.clause(
        "sharing",
        "shared only with consent, with authorities, for protection, or with affiliates bound to the policy",
    )?;
    let partner_key = RecipientPrivateKey::generate()?;
    let authority_key = RecipientPrivateKey::generate()?;
    let affiliate_key = RecipientPrivateKey::generate()?;
    let name_of = |n: &str| RecipientName::new(n);
    let (partner, authorities, affiliates, broker) = (
        name_of("marketing_partner")?,
        name_of("authorities")?,
        name_of("affiliates")?,
        name_of("data_broker")?,
    );
    let newsletter_ctx = row("newsletter", "email", &visitor);
    let shareable =
        guard.seal::<Email, Marketing>(&Email::parse("zhang.san@example.com")?, &newsletter_ctx)?;
    let _ = guard.grant_consent(&web, &visitor, ConsentScope::Purpose("marketing"));
    r.refused(
        "marketing shares the email with the mailing partner without the visitor's consent to it",
        guard.share(
            &marketer,
            &shareable,
            &partner,
            &partner_key.public_key(),
            &newsletter_ctx,
        ),
        denied(DenyReason::ConsentMissing),
    );
    r.allowed(
        "the visitor agrees to the mailing partner (consent recorded and audited)",
        guard.grant_consent(&web, &visitor, ConsentScope::Share("marketing_partner")),
        |_| String::new(),
    );
    let pkg = r.allowed(
        "marketing shares it, encrypted to the partner's public key (HPKE)",
        guard.share(
            &marketer,
            &shareable,
            &partner,
            &partner_key.public_key(),
            &newsletter_ctx,
        ),
        |p| format!("{}…", &p.to_text()[..24]),
    );
    if let Some(pkg) = &pkg {
        let mk = PurposeId::of::<Marketing>();
        r.allowed(
            "the partner opens it with its private key alone",
            open_shared(&partner_key, pkg, &partner, &mk, &newsletter_ctx),
            |v| v.mask(),
        );
        r.refused(
            "another recipient's key cannot open the package",
            open_shared(&affiliate_key, pkg, &partner, &mk, &newsletter_ctx),
            |e| matches!(e, Error::Integrity),
        );
    }
    r.allowed(
        "the visitor withdraws the partner consent",
        guard.withdraw_consent(&web, &visitor, ConsentScope::Share("marketing_partner")),
        |_| String::new(),
    );
    r.refused(
        "the next share to the partner",
        guard.share(
            &marketer,
            &shareable,
            &partner,
            &partner_key.public_key(),
            &newsletter_ctx,
        ),
        denied(DenyReason::ConsentMissing),
    );
    let _ = guard.withdraw_consent(&web, &visitor, ConsentScope::Purpose("marketing"));
    if let Some(held) = &held_id {
        r.allowed(
            "legal counsel discloses the ID number to a court (legal obligation, no consent needed)",
            guard.share(&counsel, held, &authorities, &authority_key.public_key(), &legal_ctx),
            |_| String::new(),
        );
        r.allowed(
            "the disclosure's court order is recorded as an application event",
            guard.record_event(
                &counsel,
                &AppEvent::new(AppEventName::new("court_order")?)
                    .purpose(PurposeId::of::<Legal>())
                    .kind(FieldKind::IdNumber)
                    .context(legal_ctx.clone())
                    .recipient(authorities.clone())
                    .reference(Reference::new("CASE-2026-0117")?),
            ),
            |_| String::new(),
        );
    }
    if let Some(phone) = &phone {
        r.allowed(
            "the support lead passes the inquiry phone to an affiliate (service purpose)",
            guard.share(
                &lead,
                phone,
                &affiliates,
                &affiliate_key.public_key(),
                &inq("phone"),
            ),
            |_| String::new(),
        );
        r.refused(
            "a share to a recipient the policy does not name",
            guard.share(
                &lead,
                phone,
                &broker,
                &affiliate_key.public_key(),
                &inq("phone"),
            ),
            denied(DenyReason::RecipientNotAllowed),
        );
    }
    if let Some(ip) = &ip {
        r.allowed(
            "the security analyst reports the abusive IP to the security partner (protection)",
            guard.share(
                &analyst,
                ip,
                &name_of("security_partner")?,
                &affiliate_key.public_key(),
                &row("visits", "ip", &visitor),
            ),
            |_| String::new(),
        );
    }

    // ------------------------------------------------------------------ rights: access, correction
    r.clause(
        "rights.identity",
        "the person exercises their rights after identity verification",
    )?;
    let codes = OneTimeCodes::new(Arc::clone(&clock) as Arc<dyn Clock>, 600);
    let code = codes.issue(&visitor)?; // sent by text message to the verified phone
    r.refused(
        "a wrong code",
        guard.verify_identity(&codes, &visitor, &Evidence::new(b"00000000".to_vec())),
        denied(DenyReason::IdentityNotVerified),
    );
    let proof = r.allowed(
        "the code sent to the visitor's phone",
        guard.verify_identity(&codes, &visitor, &code),
        |p| format!("verified by {}", p.method()),
    );
    let other_proof = codes
        .issue(&other)
        .and_then(|c| guard.verify_identity(&codes, &other, &c))?;
    if let (Some(proof), Some(phone), Some(email), Some(name)) = (&proof, &phone, &email, &name) {
        r.clause(
            "rights.access",
            "the person may obtain a copy of their data",
        )?;
        let held: Vec<(AnySealed, Context)> = vec![
            (AnySealed::from(name.clone()), inq("name")),
            (AnySealed::from(phone.clone()), inq("phone")),
            (AnySealed::from(email.clone()), inq("email")),
        ];
        r.refused(
            "an export with another person's proof",
            guard.export_subject(
                &dpo,
                &visitor,
                &other_proof,
                held.iter().map(|(s, c)| (s, c)),
                None,
            ),
            denied(DenyReason::IdentityNotVerified),
        );
        r.allowed(
            "the DPO exports the visitor's data as JSON (values, purposes, retention)",
            guard.export_subject(
                &dpo,
                &visitor,
                proof,
                held.iter().map(|(s, c)| (s, c)),
                None,
            ),
            |x| {
                format!(
                    "{} values, {} withheld",
                    x.values().len(),
                    x.withheld().len()
                )
            },
        );
        r.clause("rights.correction", "the person may correct their data")?;
        let corrected = r.allowed(
            "the visitor's new phone number replaces the old one, in the same row",
            guard.correct(
                &dpo,
                &visitor,
                proof,
                &AnySealed::from(phone.clone()),
                &inq("phone"),
                &AnyValue::parse(FieldKind::PhoneNumber, "139 0000 1111")?,
            ),
            |_| String::new(),
        );
        if let Some(c) = &corrected {
            r.allowed(
                "the agent now sees the new number",
                guard.mask_any(&agent, c, &inq("phone")),
                Clone::clone,
            );
        }
    }

    // ------------------------------------------------------------------ rights: erasure
    r.clause(
        "rights.erasure",
        "the person may ask for erasure; data under an erased key is gone, backups included",
    )?;
    if let Some(promo) = &promo {
        let backup = promo.to_text(); // a copy taken before the erasure, as a backup holds
        r.allowed(
            "DPO erases the visitor's marketing data (crypto-shredding)",
            guard.erase(
                &dpo,
                &visitor,
                Erasure::Purpose(&PurposeId::of::<Marketing>()),
            ),
            |rep| format!("{} key(s) destroyed", rep.keys_deleted),
        );
        let from_backup: Sealed<Email, Marketing> = backup.parse()?;
        let _ = guard.grant_consent(&web, &visitor, ConsentScope::Purpose("marketing"));
        r.refused(
            "marketing reads the email from the backup copy, even with consent given again",
            guard.reveal(&marketer, &from_backup, &promo_ctx),
            |e| matches!(e, Error::Key(KeyError::Erased)),
        );
        let _ = guard.withdraw_consent(&web, &visitor, ConsentScope::Purpose("marketing"));
    }
    if let Some(phone) = &phone {
        r.allowed(
            "the visitor's service data still opens",
            guard.mask(&agent, phone, &inq("phone")),
            Clone::clone,
        );
    }

    // ------------------------------------------------------------------ keys
    r.clause(
        "security.keys",
        "key rotation: new values under the new key, old values re-sealed without exposure",
    )?;
    let old_version = keyring.active_version();
    let rotated = r.allowed("rotate the root key", keyring.rotate(), |v| {
        format!("version {old_version} → {v}")
    });
    if let (Some(new), Some(phone)) = (rotated, &phone) {
        r.allowed(
            "a value sealed before rotation still opens",
            guard.mask(&agent, phone, &inq("phone")),
            Clone::clone,
        );
        let key_admin = Accessor::new("kim", [Role::new("key_admin")]);
        let rewrapped = r.allowed(
            "key admin re-seals it under the new version (no plaintext handed out)",
            guard.rewrap(&key_admin, phone, &inq("phone")),
            |s| format!("key version {}", s.key_version()),
        );
        r.check(
            "the re-sealed value is under the new version",
            rewrapped.as_ref().is_some_and(|s| s.key_version() == new),
            String::new(),
        );
        // The value carried over to the next run, under the new version.
        let keep = guard
            .seal::<PhoneNumber, Service>(&PhoneNumber::parse("139 1234 5678")?, &carried_ctx)?;
        std::fs::write(&carried, keep.to_text())?;
    }

    // ------------------------------------------------------------------ retention
    r.clause(
        "storage.retention",
        "kept only as long as the purpose needs, then deleted or anonymized",
    )?;
    clock.advance(365 * DAY);
    if let Some(account_email) = &account_email {
        r.allowed(
            "a year later, the account email (service, 730 days) still opens",
            guard.mask(&agent, account_email, &row("accounts", "email", &visitor)),
            Clone::clone,
        );
    }
    if let Some(ip) = &ip {
        r.refused(
            "a year later, the visit-log IP (security, 180 days) is expired",
            guard.reveal(&analyst, ip, &row("visits", "ip", &visitor)),
            denied(DenyReason::Expired),
        );
    }
    let _ = address;
    let janitor = Accessor::new("retention-job", [Role::new("retention_job")]);
    let stored: Vec<String> = [
        account_email.as_ref().map(Sealed::to_text),
        ip.as_ref().map(Sealed::to_text),
        visit_ip.as_ref().map(Sealed::to_text),
    ]
    .into_iter()
    .flatten()
    .collect();
    let swept = r.allowed(
        "the nightly sweep reads only headers: keep, delete or anonymize-then-delete",
        guard.retention_sweep(&janitor, stored.iter()),
        |rep| {
            format!(
                "keep {}, delete {}, anonymize then delete {}",
                rep.total.keep, rep.total.delete, rep.total.anonymize_then_delete
            )
        },
    );
    r.check(
        "the account email is kept, the security IP deleted, the analytics IP anonymized first",
        swept.as_ref().is_some_and(|rep| {
            let d: Vec<_> = rep
                .items
                .iter()
                .map(|i| i.as_ref().map(|i| i.decision).ok())
                .collect();
            matches!(
                d.as_slice(),
                [
                    Some(RetentionDecision::Keep { .. }),
                    Some(RetentionDecision::Delete),
                    Some(RetentionDecision::AnonymizeThenDelete)
                ]
            )
        }),
        String::new(),
    );

    r.clause(
        "rights.cancellation",
        "the person may cancel their account; data under a legal hold is kept",
    )?;
    if let Some(stale) = &proof {
        r.refused(
            "with last year's proof of identity",
            guard.cancel_account(&dpo, &visitor, stale),
            denied(DenyReason::IdentityNotVerified),
        );
    }
    let fresh = codes
        .issue(&visitor)
        .and_then(|c| guard.verify_identity(&codes, &visitor, &c));
    if let Some(proof) = r.allowed("a fresh code sent to the visitor", fresh, |_| String::new()) {
        r.allowed(
            "the DPO cancels the visitor's account",
            guard.cancel_account(&dpo, &visitor, &proof),
            |c| {
                format!(
                    "erased: {:?}, held: {:?}",
                    c.erased.iter().map(PurposeId::as_str).collect::<Vec<_>>(),
                    c.held.iter().map(PurposeId::as_str).collect::<Vec<_>>()
                )
            },
        );
    }
    if let Some(held) = &held_id {
        r.allowed(
            "the legal record (held by law) still opens for counsel",
            guard.mask(&counsel, held, &legal_ctx),
            Clone::clone,
        );
    }

    // ------------------------------------------------------------------ audit
    r.clause(
        "security.audit",
        "security auditing: every access is recorded in a tamper-evident log",
    )?;
    log.checkpoint()?;
    let verified = verify_log(&dir, None, &audit_key, &public)?;
    r.check(
        "the audit log verifies",
        verified.is_valid(),
        format!("{} entries", verified.entries),
    );
    r.clause(
        "rights.access_report",
        "the person may ask who read their data",
    )?;
    let report = verified.subject_access(&pseudonyms, &visitor)?;
    let readers: Vec<String> = report
        .iter()
        .map(|a| format!("{} {} {} {}", a.principal, a.action, a.purpose, a.kind))
        .collect();
    r.check(
        "the report lists the reads of the visitor's data, and no one else's",
        report.iter().any(|a| a.principal == "alice")
            && report.iter().any(|a| a.principal == "mia")
            && report.iter().all(|a| a.principal != "ivan"),
        format!("{} reads: {}", report.len(), readers.join("; ")),
    );
    let trail = verified.subject_events(&pseudonyms, &visitor)?;
    let shares: Vec<String> = trail
        .iter()
        .filter(|(_, e)| e.recipient.is_some())
        .map(|(_, e)| {
            format!(
                "{} {} to {}",
                e.principal,
                e.action,
                e.recipient.as_deref().unwrap_or_default()
            )
        })
        .collect();
    r.check(
        "the visitor's full trail names every share and disclosure, with its recipient",
        shares.iter().any(|s| s.contains("marketing_partner"))
            && shares
                .iter()
                .any(|s| s.contains("app.court_order to authorities"))
            && trail.iter().any(|(_, e)| e.action == "consent.withdraw"),
        format!("{} records; shares: {}", trail.len(), shares.join("; ")),
    );
    r.clause(
        "security.audit",
        "an insider who edits one byte of the log is caught",
    )?;
    let segment = dir.join("audit-000001.log");
    let mut bytes = std::fs::read(&segment)?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&segment, &bytes)?;
    let tampered = verify_log(&dir, None, &audit_key, &public)?;
    r.check(
        "verification after a one-byte edit names the entry",
        !tampered.is_valid(),
        tampered
            .fault
            .map_or_else(|| "not detected".to_owned(), |f| f.to_string()),
    );

    // Versions before this run's rotation are retired: every stored value this demo keeps (the
    // one carried to the next run) is under the new one.
    let active = keyring.active_version();
    for (v, state) in keyring.versions() {
        if v != active && state != KeyState::Retired {
            keyring.retire(v)?;
        }
    }

    drop(guard);
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    let failed = run.steps.iter().filter(|s| !s.ok).count();
    if !run.json {
        writeln!(
            run.out,
            "\n{} steps, {} as the policy says, {} not",
            run.steps.len(),
            run.steps.len() - failed,
            failed
        )?;
    }
    Ok(run.steps)
}
