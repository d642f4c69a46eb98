//! The reference privacy policy, end to end: a company website collects inquiries, activity
//! registrations and visit logs (only for the purposes the policy's data categories name); staff
//! open them under the policy manifest in `examples/reference-policy.toml`; consent, retention
//! and residency are enforced; every access lands in a MAC-chained, checkpointed audit log that
//! is verified at the end, and a single edited byte is caught.
//!
//! Keys survive restarts: a file KEK and a keyring file (root, audit and checkpoint keys) live
//! in a local data directory (`FIELDSEAL_DEMO_DIR`, default `target/fieldseal-demo`), and a value
//! sealed by one run is opened by the next. Marketing data is sealed under per-subject,
//! per-purpose keys, so a data subject's marketing data can be crypto-shredded.
//!
//! Run: `cargo run --example website` (writes its audit log under the system temp directory and
//! removes it afterwards).

use std::sync::Arc;

use fieldseal::builtin::{Improvement, Marketing, Security, Service};
use fieldseal::*;

const DAY: u64 = 86_400;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ------------------------------------------------------------------ set-up
    let policy = Arc::new(ManifestPolicy::from_toml(include_str!(
        "reference-policy.toml"
    ))?);
    let consent = Arc::new(MemoryConsent::new());
    let clock = Arc::new(FixedClock::new(1_764_000_000));
    let dir = std::env::temp_dir().join(format!("fieldseal-website-{}", std::process::id()));
    // ------------------------------------------------------------------ keys
    // A file KEK (mode 0600) wraps the keyring file's key; root, audit and checkpoint keys
    // live in the keyring file. Both survive restarts; nothing on the hot path calls the KEK.
    let data = std::env::var_os("FIELDSEAL_DEMO_DIR").map_or_else(
        || std::path::PathBuf::from("target/fieldseal-demo"),
        Into::into,
    );
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
    println!(
        "keys: {} keyring {} (active version {})",
        if first_run { "created" } else { "loaded" },
        ring_path.display(),
        keyring.active_version()
    );
    // The verifier needs the audit key too: both come from the keyring file.
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
        .shared_policy(Arc::clone(&policy) as Arc<dyn AccessPolicy>)
        .consent(Arc::clone(&consent))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .audit(Arc::clone(&log))
        .build()?;
    println!("policy: reference manifest, version {}", policy.version());

    // ------------------------------------------------------------------ collection
    // An inquiry through the contact form (name, phone, email) and a raffle registration
    // (ID number, address), all for the `service` purpose; the visit log for `security`.
    let visitor = SubjectId::new("visitor-1001");
    let row = |column: &str| {
        Context::new()
            .table("inquiries")
            .column(column)
            .row("1001")
            .subject(&visitor)
    };
    let name: Sealed<PersonName, Service> =
        guard.seal(&PersonName::parse("张三")?, &row("name"))?;
    let phone: Sealed<PhoneNumber, Service> =
        guard.seal(&PhoneNumber::parse("138 0013 8000")?, &row("phone"))?;
    let email: Sealed<Email, Service> =
        guard.seal(&Email::parse("zhang.san@example.com")?, &row("email"))?;
    let id: Sealed<IdNumber, Service> =
        guard.seal(&IdNumber::parse("11010519491231002X")?, &row("id_number"))?;
    let ip: Sealed<IpAddress, Security> =
        guard.seal(&IpAddress::parse("203.0.113.77")?, &row("ip"))?;
    println!("stored phone: {}…", &phone.to_text()[..40]);
    // The policy collects ID numbers for prize claims and identity verification only.
    report(
        "ID number sealed for marketing",
        guard.seal::<IdNumber, Marketing>(&IdNumber::parse("11010519491231002X")?, &row("id")),
    );

    // ------------------------------------------------------------------ restart
    // The previous run left a sealed phone number behind; this run's keys open it.
    let carried = data.join("carried-over.txt");
    let carried_ctx = Context::new().table("inquiries").column("phone").row("0");
    if let Ok(text) = std::fs::read_to_string(&carried) {
        let old: Sealed<PhoneNumber, Service> = text.trim().parse()?;
        let agent = Accessor::new("alice", [Role::new("support_agent")]);
        println!(
            "restart: the phone sealed by the previous run (key version {}) opens: {}",
            old.key_version(),
            guard.mask(&agent, &old, &carried_ctx)?
        );
    }
    let keep: Sealed<PhoneNumber, Service> =
        guard.seal(&PhoneNumber::parse("139 1234 5678")?, &carried_ctx)?;
    std::fs::write(&carried, keep.to_text())?;

    // ------------------------------------------------------------------ service
    let agent = Accessor::new("alice", [Role::new("support_agent")]);
    let lead = Accessor::new("li", [Role::new("support_lead")]);
    println!("\n[service] support agent answers the inquiry");
    println!(
        "  name {} / phone {} / email {}",
        guard
            .reveal(&agent, &name, &row("name"))?
            .expose_secret()
            .as_str(),
        guard
            .reveal(&agent, &phone, &row("phone"))?
            .expose_secret()
            .as_str(),
        guard
            .reveal(&agent, &email, &row("email"))?
            .expose_secret()
            .as_str(),
    );
    println!(
        "  ID number (mask only): {}",
        guard.mask(&agent, &id, &row("id_number"))?
    );
    report(
        "  agent reveals the ID number",
        guard.reveal(&agent, &id, &row("id_number")),
    );
    println!(
        "  support lead (inherits agent, may reveal IDs for prize claims): {}",
        guard
            .reveal(&lead, &id, &row("id_number"))?
            .expose_secret()
            .as_str()
    );
    println!(
        "  why: {}",
        guard.explain(&lead, &id, &row("id_number"), Action::Reveal)?
    );

    // ------------------------------------------------------------------ residency
    println!("\n[residency] data stays in CN; access from elsewhere needs consent");
    let abroad = Accessor::new("sam", [Role::new("support_agent")]).in_region("SG");
    report(
        "  agent in SG reveals the phone",
        guard.reveal(&abroad, &phone, &row("phone")),
    );

    // ------------------------------------------------------------------ marketing
    println!("\n[marketing] consent-based, withdrawable");
    let marketer = Accessor::new("mia", [Role::new("marketing")]);
    let promo_ctx = Context::new()
        .table("newsletter")
        .column("email")
        .row("1001")
        .subject(&visitor);
    let promo: Sealed<Email, Marketing> =
        guard.seal(&Email::parse("zhang.san@example.com")?, &promo_ctx)?;
    report(
        "  without consent",
        guard.reveal(&marketer, &promo, &promo_ctx),
    );
    consent.grant(&visitor, ConsentScope::Purpose("marketing"), clock.now());
    println!(
        "  after consent: {}",
        guard
            .reveal(&marketer, &promo, &promo_ctx)?
            .expose_secret()
            .as_str()
    );
    clock.advance(3 * DAY);
    consent.withdraw(&visitor, ConsentScope::Purpose("marketing"), clock.now());
    report(
        "  after withdrawal",
        guard.reveal(&marketer, &promo, &promo_ctx),
    );
    report(
        "  marketing masks the service email",
        guard.mask(&marketer, &email, &row("email")),
    );

    // ------------------------------------------------------------------ erasure
    println!("\n[erasure] the visitor asks for their marketing data to be erased");
    let dpo = Accessor::new("dora", [Role::new("dpo")]);
    let backup = promo.to_text(); // a copy taken before the erasure, as a backup holds
    let erased = guard.erase(
        &dpo,
        &visitor,
        Erasure::Purpose(&PurposeId::of::<Marketing>()),
    )?;
    println!(
        "  DPO erased the subject's key for: {:?}",
        erased
            .purposes
            .iter()
            .map(PurposeId::as_str)
            .collect::<Vec<_>>()
    );
    let from_backup: Sealed<Email, Marketing> = backup.parse()?;
    // Even with consent given again, the erased data is gone: its key no longer exists.
    consent.grant(&visitor, ConsentScope::Purpose("marketing"), clock.now());
    report(
        "  marketing email from the backup copy",
        guard.reveal(&marketer, &from_backup, &promo_ctx),
    );
    println!(
        "  service data of the same visitor still opens: {}",
        guard.mask(&agent, &phone, &row("phone"))?
    );
    consent.withdraw(&visitor, ConsentScope::Purpose("marketing"), clock.now());

    // ------------------------------------------------------------------ security
    println!("\n[security] fraud review of the visit log");
    let analyst = Accessor::new("sec-bot", [Role::new("security_analyst")]);
    println!(
        "  IP {} (for reports, anonymized: {})",
        guard
            .reveal(&analyst, &ip, &row("ip"))?
            .expose_secret()
            .addr(),
        guard.anonymize(&analyst, &ip, &row("ip"), Anonymization::IpNetwork)?
    );
    // Repeat visitors are found by a blind index over the visit log's addresses, not by
    // decrypting it: equal addresses give equal terms.
    let repeat = BlindIndex::<IpAddress, Security>::builder("repeat_visitor")
        .expected_rows(1_000_000)
        .distinct_values(200_000)
        .build()?;
    let stored = guard.blind_index_sealed(&analyst, &ip, &row("ip"), &repeat)?;
    let query = guard.index_query(
        &analyst,
        &IpAddress::parse("203.0.113.77")?,
        &Context::new().table("inquiries"),
        &repeat,
    )?;
    println!(
        "  repeat-visitor index ({} bits): the visit matches: {}",
        repeat.bits(),
        query.matches(&stored)
    );

    // ------------------------------------------------------------------ improvement
    println!("\n[improvement] analytics on the visit log (pseudonymized)");
    let job = Accessor::new("nightly-report", [Role::new("analytics_job")]);
    let visit = |n: &str| Context::new().table("visits").column("ip").row(n);
    let visits: Vec<Sealed<IpAddress, Improvement>> =
        ["203.0.113.77", "203.0.113.77", "198.51.100.4"]
            .iter()
            .enumerate()
            .map(|(n, ip)| guard.seal(&IpAddress::parse(ip)?, &visit(&n.to_string())))
            .collect::<Result<_, Error>>()?;
    for (n, v) in visits.iter().enumerate() {
        let ctx = visit(&n.to_string());
        let who = guard.anonymize(&job, v, &ctx, Anonymization::Pseudonym)?;
        let net = guard.anonymize(&job, v, &ctx, Anonymization::IpNetwork)?;
        println!(
            "  visit {n}: visitor {}… from {net}",
            &who.to_string()[..12]
        );
    }
    report(
        "  analytics job reveals a visit's IP",
        guard.reveal(&job, &visits[0], &visit("0")),
    );

    // ------------------------------------------------------------------ retention
    println!("\n[retention] one year later");
    clock.advance(365 * DAY);
    consent.grant(&visitor, ConsentScope::Purpose("marketing"), clock.now());
    report(
        "  newsletter email (365-day retention)",
        guard.reveal(&marketer, &promo, &promo_ctx),
    );

    // ------------------------------------------------------------------ audit
    log.checkpoint()?;
    let verified = verify_log(&dir, None, &audit_key, &public)?;
    println!(
        "\n[audit] {} entries, verification: {}",
        verified.entries,
        verified
            .fault
            .map_or_else(|| "intact".to_owned(), |f| f.to_string())
    );
    println!("  subject access report for visitor-1001 (who read their data):");
    for a in verified.subject_access(&pseudonyms, &visitor)? {
        println!(
            "    #{:<3} {:<8} {:<12} {:<13} {}",
            a.seq, a.principal, a.purpose, a.kind, a.action
        );
    }
    // Edit one byte of the log, as an insider covering their tracks would.
    let segment = dir.join("audit-000001.log");
    let mut bytes = std::fs::read(&segment)?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&segment, &bytes)?;
    let tampered = verify_log(&dir, None, &audit_key, &public)?;
    println!(
        "  after editing one byte: {}",
        tampered
            .fault
            .map_or_else(|| "not detected".to_owned(), |f| f.to_string())
    );

    drop(guard);
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn report<T>(what: &str, r: Result<T, Error>) {
    match r {
        Ok(_) => println!("{what}: allowed"),
        Err(e) => println!("{what}: refused ({e})"),
    }
}
