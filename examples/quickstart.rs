//! fieldseal in one screen: seal an inquiry's contact details, store the text form, reveal them
//! for an authorized support agent, show only masks to marketing, refuse an intern, reject a
//! value copied to another row, and print the audit trail.
//!
//! Run: `cargo run --example quickstart`

use std::sync::Arc;

use fieldseal::builtin::Service;
use fieldseal::*;

fn main() -> Result<(), Error> {
    let audit = Arc::new(MemorySink::new());
    let support = Role::new("support_agent");
    let marketing = Role::new("marketing");
    let guard = Guard::builder()
        // A fresh key per run; production loads versioned root keys from a key provider.
        .keyring(Keyring::generate()?)
        .policy(
            AllowList::new()
                .allow::<Service>(support.clone(), FieldKind::PhoneNumber, Action::Reveal)
                .allow::<Service>(support.clone(), FieldKind::Email, Action::Reveal)
                .allow::<Service>(support.clone(), FieldKind::IdNumber, Action::Mask)
                .allow::<Service>(marketing.clone(), FieldKind::PhoneNumber, Action::Mask)
                .allow::<Service>(marketing.clone(), FieldKind::Email, Action::Mask),
        )
        .audit(Arc::clone(&audit))
        .build()?;

    // An inquiry arrives through the website form (reference policy: name, phone, email).
    let row = Context::new()
        .table("inquiries")
        .column("contact")
        .row("1001");
    let phone: Sealed<PhoneNumber, Service> =
        guard.seal(&PhoneNumber::parse("+86 138-0013-8000")?, &row)?;
    let email: Sealed<Email, Service> =
        guard.seal(&Email::parse("Zhang.San@Example.COM")?, &row)?;
    let id: Sealed<IdNumber, Service> =
        guard.seal(&IdNumber::parse("11010519491231002x")?, &row)?;

    // What the database stores: versioned text envelopes, no plaintext.
    let stored = phone.to_text();
    println!("stored phone : {}...", &stored[..48]);
    println!("header       : {:?}", phone.info());

    // A support agent answers the inquiry.
    let alice = Accessor::new("alice", [support]);
    let phone: Sealed<PhoneNumber, Service> = stored.parse()?;
    let p = guard.reveal(&alice, &phone, &row)?;
    println!("alice reveals: {} ({p:?})", p.expose_secret().as_str());
    println!(
        "alice email  : {}",
        guard.reveal(&alice, &email, &row)?.expose_secret().as_str()
    );
    println!("alice ID mask: {}", guard.mask(&alice, &id, &row)?);

    // Marketing sees masks only.
    let mia = Accessor::new("mia", [marketing]);
    println!(
        "mia masks    : {} / {}",
        guard.mask(&mia, &phone, &row)?,
        guard.mask(&mia, &email, &row)?
    );
    match guard.reveal(&mia, &phone, &row) {
        Err(e) => println!("mia reveal   : refused: {e}"),
        Ok(_) => unreachable!("marketing holds no reveal grant"),
    }

    // An intern has no grant at all.
    let ivan = Accessor::new("ivan", [Role::new("intern")]);
    if let Err(e) = guard.mask(&ivan, &phone, &row) {
        println!("ivan mask    : refused: {e}");
    }

    // A value copied into another row does not open.
    let other_row = Context::new()
        .table("inquiries")
        .column("contact")
        .row("1002");
    if let Err(e) = guard.reveal(&alice, &phone, &other_row) {
        println!("copied value : {e}");
    }

    println!("\naudit trail ({} records):", audit.len());
    for r in audit.records() {
        println!(
            "  {} {:<6} {:<12} {:<8} {:<22} at {}:{}",
            r.principal,
            r.action.label(),
            r.kind.map_or("-", FieldKind::label),
            r.purpose.as_ref().map_or("-", PurposeId::as_str),
            r.outcome.label(),
            r.call_site.file(),
            r.call_site.line()
        );
    }
    Ok(())
}
