//! The PostgreSQL backends over TLS (feature `postgres-tls`): the throwaway cluster of
//! `scripts/pg-env` serves a certificate for 127.0.0.1 and localhost signed by a throwaway CA
//! (`FIELDSEAL_PG_CA`); another throwaway CA (`FIELDSEAL_PG_OTHER_CA`) signed nothing.
//!
//! Without the cluster, or without its TLS material (no openssl), every test prints a skip
//! message and passes.
#![cfg(feature = "postgres-tls")]

mod common;
mod pg;

use std::sync::Arc;

use common::*;
use fieldseal::builtin::Service;
use fieldseal::postgres::{
    PgAuditSink, PgCheckpointer, PgConsent, PgSubjectKeys, Roles, SCHEMA_VERSION, grant, migrate,
    subject_access_pg, verify_pg,
};
use fieldseal::*;
use pg::{PgDb, fresh, psql};

/// A fresh database and the paths of the right and the wrong CA.
fn fresh_tls(tag: &str) -> Option<(PgDb, String, String)> {
    let (Ok(ca), Ok(other)) = (
        std::env::var("FIELDSEAL_PG_CA"),
        std::env::var("FIELDSEAL_PG_OTHER_CA"),
    ) else {
        eprintln!(
            "skipping {tag}: FIELDSEAL_PG_CA is not set (scripts/pg-env sets it when openssl \
             is available)"
        );
        return None;
    };
    Some((fresh(tag)?, ca, other))
}

/// `url` with TLS settings appended.
fn tls(url: &str, mode: &str, ca: &str) -> String {
    format!("{url}?sslmode={mode}&sslrootcert={ca}")
}

fn sink(url: &str) -> Result<PgAuditSink, AuditError> {
    PgAuditSink::builder(url)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .connect()
}

/// Whether the server sees the connections of `user` to `db` as TLS: `Some` only if there are
/// some and they all agree.
fn server_sees_ssl(db: &PgDb, user: &str) -> Option<bool> {
    let out = psql(
        &db.superuser,
        &format!(
            "SELECT DISTINCT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{}' AND a.usename = '{user}'",
            db.name
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match out.as_str() {
        "t" => Some(true),
        "f" => Some(false),
        _ => None,
    }
}

#[test]
fn a_sink_appends_and_verifies_over_tls() {
    let Some((db, ca, _)) = fresh_tls("tls_sink") else {
        return;
    };
    let writer = tls(&db.writer, "require", &ca);
    let checkpointer = PgCheckpointer::new(
        &tls(&db.checkpoint, "verify-full", &ca),
        &AuditKey::from_bytes(AUDIT_KEY),
        CheckpointSigningKey::from_bytes(CKPT_KEY),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checkpointer.checkpoint().ok(), Some(Some(0)), "genesis");
    let s = sink(&writer).unwrap_or_else(|e| panic!("connect: {e}"));
    for i in 0..5 {
        let seq =
            fieldseal::internal::testing::with_sample_event(i, Some("subject-1"), |e| s.append(e))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seq, i + 1);
    }
    assert_eq!(server_sees_ssl(&db, "fieldseal_writer"), Some(true));
    assert_eq!(checkpointer.checkpoint().ok(), Some(Some(5)));
    let owner = tls(&db.owner, "verify-full", &ca);
    let report = verify_pg(&owner, &AuditKey::from_bytes(AUDIT_KEY), &ckpt_public())
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert!(report.is_valid(), "{:?}", report.fault);
    assert_eq!((report.entries, report.checkpoints), (5, 1));
    let reads = subject_access_pg(
        &owner,
        &AuditKey::from_bytes(AUDIT_KEY),
        &ckpt_public(),
        &SubjectId::new("subject-1"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!reads.is_empty());
}

#[test]
fn the_server_sees_tls_and_plaintext_stays_plaintext() {
    let Some((db, ca, _)) = fresh_tls("tls_ssl") else {
        return;
    };
    // Different roles: a closed connection may linger in pg_stat_activity for a moment.
    let _plain = sink(&db.owner).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server_sees_ssl(&db, "fieldseal_owner"), Some(false));
    let _tls = sink(&tls(&db.writer, "require", &ca)).unwrap_or_else(|e| panic!("{e}"));
    // libpq, given the same URL, agrees about the cluster.
    let row = psql(
        &tls(&db.writer, "verify-full", &ca),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert_eq!(row.as_deref(), Ok("t"));
    assert_eq!(server_sees_ssl(&db, "fieldseal_writer"), Some(true));
}

#[test]
fn every_backend_connects_over_tls() {
    let Some((db, ca, _)) = fresh_tls("tls_all") else {
        return;
    };
    let owner = tls(&db.owner, "verify-full", &ca);
    let writer = tls(&db.writer, "require", &ca);
    assert_eq!(migrate(&owner).ok(), Some(SCHEMA_VERSION));
    grant(
        &owner,
        Roles::new("fieldseal_writer", "fieldseal_checkpoint"),
    )
    .unwrap_or_else(|e| panic!("grant: {e}"));

    let consent = Arc::new(PgConsent::new(&writer, [0x44; 32]).unwrap_or_else(|e| panic!("{e}")));
    let subject = SubjectId::new("subject-7");
    consent
        .grant(
            &subject,
            ConsentScope::Purpose("service"),
            1,
            &PrincipalId::new("dpo-1"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(consent.is_granted(&subject, ConsentScope::Purpose("service")));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let keys = Arc::new(PgSubjectKeys::new(&writer).unwrap_or_else(|e| panic!("{e}")));
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(sink(&writer).unwrap_or_else(|e| panic!("{e}")))
        .subject_keys(SubjectKeys::new(kek, keys))
        .subject_key_purpose(PurposeId::of::<Service>(), SubjectKeyScope::Subject)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new()
        .table("t")
        .column("email")
        .row("7")
        .subject(&subject);
    let email = Email::parse("li.si@example.com").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Email, Service> = guard.seal(&email, &ctx).unwrap_or_else(|e| panic!("{e}"));
    assert!(guard.reveal(&tester(), &sealed, &ctx).is_ok());
    assert_eq!(server_sees_ssl(&db, "fieldseal_writer"), Some(true));
    let count = psql(&db.owner, "SELECT count(*) > 0 FROM fieldseal_subject_keys");
    assert_eq!(count.as_deref(), Ok("t"));
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let Some((db, _, other)) = fresh_tls("tls_wrong_ca") else {
        return;
    };
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = tls(&db.writer, mode, &other);
        let e = sink(&url)
            .err()
            .unwrap_or_else(|| panic!("{mode}: connected"));
        assert_eq!(e.kind(), AuditErrorKind::Io, "{mode}");
        assert!(chain(&e).contains("certificate"), "{mode}: {}", chain(&e));
        let e = migrate(&url).err().map(|e| e.kind());
        assert_eq!(e, Some(AuditErrorKind::Io), "{mode}");
        let e = verify_pg(&url, &AuditKey::from_bytes(AUDIT_KEY), &ckpt_public()).err();
        assert_eq!(e.map(|e| e.kind()), Some(AuditErrorKind::Io), "{mode}");
        // The stores open their connection on first use: the first call fails.
        let consent = PgConsent::new(&url, [0x44; 32]).unwrap_or_else(|e| panic!("{e}"));
        let r = consent.grant(
            &SubjectId::new("s"),
            ConsentScope::Purpose("service"),
            1,
            &PrincipalId::new("dpo-1"),
        );
        assert!(matches!(r, Err(Error::Io(_))), "{mode}");
    }
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let Some((db, ca, _)) = fresh_tls("tls_name") else {
        return;
    };
    // The socket goes to the cluster (hostaddr); the certificate must name the host asked for.
    let url = db.writer.replace("@127.0.0.1:", "@db.fieldseal.invalid:");
    let url = format!("{url}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}");
    let e = sink(&url).err().unwrap_or_else(|| panic!("connected"));
    assert_eq!(e.kind(), AuditErrorKind::Io);
    assert!(chain(&e).contains("certificate"), "{}", chain(&e));
    // The names the certificate carries are accepted, as a DNS name too.
    let localhost = db.writer.replace("@127.0.0.1:", "@localhost:");
    assert!(sink(&tls(&localhost, "verify-full", &ca)).is_ok());
}

#[test]
fn a_server_that_cannot_be_verified_is_not_connected_to_without_roots() {
    let Some((db, _, _)) = fresh_tls("tls_no_roots") else {
        return;
    };
    let url = format!("{}?sslmode=require", db.writer);
    assert_eq!(
        sink(&url).err().map(|e| e.kind()),
        Some(AuditErrorKind::Rejected)
    );
    let url = format!("{}?sslmode=prefer&sslrootcert=/nonexistent.pem", db.writer);
    assert_eq!(
        sink(&url).err().map(|e| e.kind()),
        Some(AuditErrorKind::Rejected)
    );
}

/// The error and its sources, joined.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// Values larger than the socket's buffers cross the TLS stream both ways: writes that would
/// block part-way, reads of many records. 16 MiB, through the subject-key store (which stores
/// bytes as given).
#[test]
fn a_value_larger_than_the_socket_buffers_crosses_tls_both_ways() {
    let Some((db, ca, _)) = fresh_tls("tls_large") else {
        return;
    };
    let writer = tls(&db.writer, "verify-full", &ca);
    let keys = PgSubjectKeys::new(&writer).unwrap_or_else(|e| panic!("{e}"));
    let store: &dyn SubjectKeyStore = &keys;
    let id: SubjectKeyId = [9; 16];
    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    let kept = store.insert(&id, &big).unwrap_or_else(|e| panic!("{e}"));
    assert!(kept == big, "the stored value is the one given");
    let back = store.get(&id).unwrap_or_else(|e| panic!("{e}"));
    assert!(back.as_deref() == Some(big.as_slice()), "read back whole");
    assert_eq!(server_sees_ssl(&db, "fieldseal_writer"), Some(true));
}
