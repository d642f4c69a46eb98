//! Consent and subject keys in PostgreSQL, shared between processes: a withdrawal or an erasure
//! committed by one process is honoured by another's next reveal.
//!
//! Needs the throwaway cluster of `scripts/pg-env`; without it every test prints a skip message
//! and passes.
#![cfg(feature = "postgres")]

mod common;
mod pg;

use std::process::Command;
use std::sync::Arc;

use common::*;
use fieldseal::builtin::{Marketing, Service};
use fieldseal::postgres::{PgAuditSink, PgConsent, PgSubjectKeys, verify_pg};
use fieldseal::*;
use pg::{fresh, psql};

const CONSENT_KEY: [u8; 32] = [0x44; 32];
const CHILD_ENV: &str = "FIELDSEAL_PG_CONSENT_CHILD_URL";
const SUBJECT: &str = "subject-7";

fn reference() -> ManifestPolicy {
    ManifestPolicy::from_toml(include_str!("../examples/reference-policy.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ctx() -> Context {
    Context::new()
        .table("inquiries")
        .column("email")
        .row("7")
        .subject(&SubjectId::new(SUBJECT))
}

fn dpo() -> PrincipalId {
    PrincipalId::new("dpo-1")
}

/// The child: withdraws the subject's marketing consent, then exits.
#[test]
fn pg_consent_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let consent = PgConsent::new(&url, CONSENT_KEY).unwrap_or_else(|e| panic!("{e}"));
    consent
        .withdraw(
            &SubjectId::new(SUBJECT),
            ConsentScope::Purpose("marketing"),
            1_700_000_100,
            &dpo(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_withdrawal_in_another_process_is_honoured_by_the_next_reveal() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(db) = fresh("consent") else { return };
    let consent =
        Arc::new(PgConsent::new(&db.writer, CONSENT_KEY).unwrap_or_else(|e| panic!("{e}")));
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(reference())
        .consent(Arc::clone(&consent))
        .audit(MemorySink::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let marketer = Accessor::new("m-1", [Role::new("marketing")]);
    let sealed: Sealed<Email, Marketing> = guard
        .seal(
            &Email::parse("zhang.san@example.com").unwrap_or_else(|e| panic!("{e}")),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let denied = |r: Result<Revealed<Email>, Error>| match r {
        Err(Error::Denied { reason }) => reason,
        other => panic!("expected a denial, got {:?}", other.map(|_| ())),
    };
    assert_eq!(
        denied(guard.reveal(&marketer, &sealed, &ctx())),
        DenyReason::ConsentMissing
    );
    consent
        .grant(
            &SubjectId::new(SUBJECT),
            ConsentScope::Purpose("marketing"),
            1_700_000_000,
            &dpo(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let email = guard
        .reveal(&marketer, &sealed, &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(email.expose_secret().as_str(), "zhang.san@example.com");

    // Another process withdraws; this process's very next reveal is refused.
    let status = Command::new(std::env::current_exe().unwrap_or_else(|e| panic!("{e}")))
        .args(["--exact", "pg_consent_child", "--test-threads=1"])
        .env(CHILD_ENV, &db.writer)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    assert_eq!(
        denied(guard.reveal(&marketer, &sealed, &ctx())),
        DenyReason::ConsentMissing
    );

    // Rows, not updates: both events are kept with time and actor, under a pseudonym.
    let rows = psql(
        &db.owner,
        "SELECT scope, granted, at, actor, length(subject) FROM fieldseal_consent ORDER BY id",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rows,
        "purpose:marketing|t|1700000000|dpo-1|32\npurpose:marketing|f|1700000100|dpo-1|32"
    );
    let dump = psql(
        &db.owner,
        "SELECT string_agg(encode(subject, 'escape'), '') FROM fieldseal_consent",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!dump.contains(SUBJECT));
    assert!(psql(&db.writer, "DELETE FROM fieldseal_consent").is_err());
    assert!(psql(&db.owner, "UPDATE fieldseal_consent SET granted = true").is_err());

    // An unreachable registry grants nothing.
    let nowhere = PgConsent::new("postgresql://u:p@127.0.0.1:1/none", CONSENT_KEY)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!nowhere.is_granted(&SubjectId::new(SUBJECT), ConsentScope::Purpose("marketing")));
}

#[test]
fn consent_from_async_code() {
    let Some(db) = fresh("consent_async") else {
        return;
    };
    let consent = PgConsent::new(&db.writer, CONSENT_KEY).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let s = SubjectId::new("subject-8");
    rt.block_on(async {
        let scope = ConsentScope::CrossBorder;
        assert!(!consent.is_granted_async(&s, scope).await.unwrap_or(true));
        consent
            .grant_async(&s, scope, 1, &dpo())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(consent.is_granted_async(&s, scope).await.unwrap_or(false));
        // The blocking trait method works from inside the runtime too.
        assert!(consent.is_granted(&s, scope));
        consent
            .withdraw_async(&s, scope, 2, &dpo())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!consent.is_granted(&s, scope));
    });
}

fn guard_with_keys(ring: Arc<Keyring>, kek: Arc<FileKek>, url: &str) -> Guard {
    Guard::builder()
        .shared_keyring(ring)
        .policy(allow_all(&["service", "marketing"]))
        .audit(MemorySink::new())
        .subject_keys(SubjectKeys::new(
            kek,
            Arc::new(PgSubjectKeys::new(url).unwrap_or_else(|e| panic!("{e}"))),
        ))
        .subject_key_purpose(PurposeId::of::<Service>(), SubjectKeyScope::Subject)
        .subject_key_purpose(PurposeId::of::<Marketing>(), SubjectKeyScope::Purpose)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn subject_keys_in_the_table_and_erasure_across_instances() {
    let Some(db) = fresh("keys") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let ring = Arc::new(Keyring::generate().unwrap_or_else(|e| panic!("{e}")));
    // Two guards over two connections, as two processes would have.
    let a = guard_with_keys(Arc::clone(&ring), Arc::clone(&kek), &db.writer);
    let b = guard_with_keys(Arc::clone(&ring), Arc::clone(&kek), &db.writer);
    let email = Email::parse("li.si@example.com").unwrap_or_else(|e| panic!("{e}"));
    let service: Sealed<Email, Service> = a.seal(&email, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    let marketing: Sealed<Email, Marketing> =
        a.seal(&email, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    let other_ctx = Context::new()
        .table("inquiries")
        .row("8")
        .subject(&SubjectId::new("subject-8"));
    let other: Sealed<Email, Service> =
        a.seal(&email, &other_ctx).unwrap_or_else(|e| panic!("{e}"));
    for g in [&a, &b] {
        assert!(g.reveal(&tester(), &service, &ctx()).is_ok());
        assert!(g.reveal(&tester(), &marketing, &ctx()).is_ok());
    }
    // Index key, two subject keys and their slots for subject-7, one key and slot for subject-8.
    assert_eq!(
        psql(&db.owner, "SELECT count(*) FROM fieldseal_subject_keys")
            .ok()
            .as_deref(),
        Some("7")
    );

    // B erases subject-7's marketing key: A's next reveal of it fails, service stays readable.
    let report = b
        .erase(
            &tester(),
            &SubjectId::new(SUBJECT),
            Erasure::Purpose(&PurposeId::of::<Marketing>()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.keys_deleted, 1);
    assert!(matches!(
        a.reveal(&tester(), &marketing, &ctx()),
        Err(Error::Key(KeyError::Erased))
    ));
    assert!(a.reveal(&tester(), &service, &ctx()).is_ok());
    // Then the whole subject.
    b.erase(&tester(), &SubjectId::new(SUBJECT), Erasure::Subject)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        a.reveal(&tester(), &service, &ctx()),
        Err(Error::Key(KeyError::Erased))
    ));
    assert!(
        a.reveal(&tester(), &other, &other_ctx).is_ok(),
        "other subjects are untouched"
    );
    // The async path reads the table without blocking, with the same answers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        assert!(matches!(
            a.reveal_async(&tester(), &service, &ctx()).await,
            Err(Error::Key(KeyError::Erased))
        ));
        assert!(a.reveal_async(&tester(), &other, &other_ctx).await.is_ok());
    });
    assert_eq!(
        psql(&db.owner, "SELECT count(*) FROM fieldseal_subject_keys")
            .ok()
            .as_deref(),
        Some("3")
    );
}

/// Erasure records (allowed `erase` rows) in the audit table.
fn erase_rows(db: &pg::PgDb) -> String {
    psql(
        &db.owner,
        "SELECT count(*) FROM fieldseal_audit WHERE action = 'erase' AND outcome = 'allowed'",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_erasure_and_its_record_commit_in_one_transaction() {
    let Some(db) = fresh("erase_tx") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek = Arc::new(FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}")));
    let audit_key = [0x55; 32];
    let sink = Arc::new(
        PgAuditSink::builder(&db.writer)
            .key(AuditKey::from_bytes(audit_key))
            .connect()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let checkpointer = db.checkpointer(audit_key, CKPT_KEY);
    checkpointer
        .checkpoint()
        .unwrap_or_else(|e| panic!("genesis: {e}"));
    let store =
        Arc::new(PgSubjectKeys::with_audit(Arc::clone(&sink)).unwrap_or_else(|e| panic!("{e}")));
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service", "marketing"]))
        .audit(Arc::clone(&sink))
        .subject_keys(SubjectKeys::new(kek, store))
        .subject_key_purpose(PurposeId::of::<Marketing>(), SubjectKeyScope::Purpose)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let email = Email::parse("li.si@example.com").unwrap_or_else(|e| panic!("{e}"));
    let sealed: Sealed<Email, Marketing> =
        guard.seal(&email, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    let marketing = PurposeId::of::<Marketing>();
    let erase = || {
        guard.erase(
            &tester(),
            &SubjectId::new(SUBJECT),
            Erasure::Purpose(&marketing),
        )
    };

    // The deletion fails inside the transaction: the record is rolled back with it.
    psql(
        &db.superuser,
        "CREATE FUNCTION no_delete() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'no'; END $$; \
         CREATE TRIGGER no_delete BEFORE DELETE ON fieldseal_subject_keys \
         FOR EACH ROW EXECUTE FUNCTION no_delete()",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(erase(), Err(Error::Audit(_))));
    assert_eq!(
        erase_rows(&db),
        "0",
        "no record of an erasure that did not happen"
    );
    assert!(guard.reveal(&tester(), &sealed, &ctx()).is_ok());
    psql(
        &db.superuser,
        "DROP TRIGGER no_delete ON fieldseal_subject_keys",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The record fails: the keys stay.
    psql(
        &db.superuser,
        "CREATE TRIGGER no_erase_row BEFORE INSERT ON fieldseal_audit FOR EACH ROW \
         WHEN (NEW.action = 'erase') EXECUTE FUNCTION no_delete()",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(erase(), Err(Error::Audit(_))));
    assert!(
        guard.reveal(&tester(), &sealed, &ctx()).is_ok(),
        "the key is still there"
    );
    psql(
        &db.superuser,
        "DROP TRIGGER no_erase_row ON fieldseal_audit",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Both succeed together; the chain holds every record and verifies.
    let keys_before: u32 = psql(&db.owner, "SELECT count(*) FROM fieldseal_subject_keys")
        .unwrap_or_else(|e| panic!("{e}"))
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let report = erase().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.keys_deleted, 1);
    assert_eq!(erase_rows(&db), "1");
    let keys_after: u32 = psql(&db.owner, "SELECT count(*) FROM fieldseal_subject_keys")
        .unwrap_or_else(|e| panic!("{e}"))
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys_before - keys_after, 2, "the key and its slot");
    assert!(matches!(
        guard.reveal(&tester(), &sealed, &ctx()),
        Err(Error::Key(KeyError::Erased))
    ));
    checkpointer.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    let verified = verify_pg(&db.owner, &AuditKey::from_bytes(audit_key), &ckpt_public())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        verified.fault, None,
        "the rolled-back attempts left no trace in the chain"
    );
    // Two reveals around the failed attempts, the erasure, then a reveal allowed by policy
    // whose key is gone: nothing of the rolled-back attempts.
    let rows = psql(
        &db.owner,
        "SELECT string_agg(action || ':' || outcome, ',' ORDER BY seq) FROM fieldseal_audit",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rows,
        "reveal:allowed,reveal:allowed,erase:allowed,reveal:allowed,reveal:failed:erased"
    );
    assert_eq!(verified.entries, 5);
}

#[test]
fn reveal_async_keeps_a_single_threaded_runtime_free() {
    let Some(db) = fresh("reveal_async") else {
        return;
    };
    let consent =
        Arc::new(PgConsent::new(&db.writer, CONSENT_KEY).unwrap_or_else(|e| panic!("{e}")));
    let sink = Arc::new(
        fieldseal::postgres::PgAuditSink::builder(&db.writer)
            .key(AuditKey::from_bytes(AUDIT_KEY))
            .connect()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let guard = Arc::new(
        Guard::builder()
            .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
            .policy(reference())
            .consent(Arc::clone(&consent))
            .audit(Arc::clone(&sink))
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let sealed: Sealed<Email, Marketing> = guard
        .seal(
            &Email::parse("zhang.san@example.com").unwrap_or_else(|e| panic!("{e}")),
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    consent
        .grant(
            &SubjectId::new(SUBJECT),
            ConsentScope::Purpose("marketing"),
            1_700_000_000,
            &dpo(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // One runtime thread for 64 concurrent reveals: each awaits its consent lookup and its
    // commit, so they are in flight together and share transactions. A reveal that blocked the
    // thread would run them one by one, one commit each.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (guard, sealed) = (Arc::clone(&guard), sealed.clone());
            tasks.spawn(async move {
                let marketer = Accessor::new("m-1", [Role::new("marketing")]);
                guard
                    .reveal_async(&marketer, &sealed, &ctx())
                    .await
                    .map(|e| e.expose_secret().as_str().len())
            });
        }
        while let Some(r) = tasks.join_next().await {
            let len = r
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(len, "zhang.san@example.com".len());
        }
        // A withdrawal committed by another process: the next async reveal is refused.
        let status = Command::new(std::env::current_exe().unwrap_or_else(|e| panic!("{e}")))
            .args(["--exact", "pg_consent_child", "--test-threads=1"])
            .env(CHILD_ENV, &db.writer)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success());
        let marketer = Accessor::new("m-1", [Role::new("marketing")]);
        let r = guard.reveal_async(&marketer, &sealed, &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::Denied {
                reason: DenyReason::ConsentMissing
            })
        ));
    });
    assert_eq!(sink.entries(), 65);
    assert!(
        sink.commits() < 48,
        "{} commits for 64 concurrent reveals",
        sink.commits()
    );
}

#[test]
fn sealed_values_as_bytea_and_text_columns() {
    use fieldseal::postgres::tokio_postgres::{self, NoTls};
    let Some(db) = fresh("columns") else { return };
    let guard = common::guard();
    let c = Context::new().table("t").column("v").row("1");
    let phone: Sealed<PhoneNumber, Service> = guard
        .seal(
            &PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}")),
            &c,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&db.owner, NoTls)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE t (b bytea, s text, v varchar)")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .execute(
                "INSERT INTO t VALUES ($1, $2, $3)",
                &[&phone, &phone, &phone],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let row = client
            .query_one("SELECT b, s, v, s LIKE 'fs1:%', length(b) FROM t", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..3 {
            let back: Sealed<PhoneNumber, Service> =
                row.try_get(i).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, phone);
        }
        assert!(row.get::<_, bool>(3), "text columns hold the text form");
        assert_eq!(row.get::<_, i32>(4) as usize, phone.as_bytes().len());
        // Another kind or purpose does not read back; nor does a damaged value.
        assert!(row.try_get::<_, Sealed<Email, Service>>(0).is_err());
        assert!(row.try_get::<_, Sealed<PhoneNumber, Marketing>>(1).is_err());
        let bad = client
            .query_one("SELECT 'fs1:AAAA'::text, '\\x00'::bytea", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(bad.try_get::<_, Sealed<PhoneNumber, Service>>(0).is_err());
        // Columns of other types are not sealed values: refused by the client's type check,
        // both ways, before the value is sent or decoded.
        let chain = |e: &dyn std::error::Error| {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        };
        let e = client.execute("SELECT $1::int4", &[&phone]).await.err();
        let shown = e.map(|e| chain(&e)).unwrap_or_default();
        assert!(shown.contains("cannot convert"), "{shown}");
        let int = client
            .query_one("SELECT 1::int4, 'x'::bpchar", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..2 {
            let e = int.try_get::<_, Sealed<PhoneNumber, Service>>(i).err();
            let shown = e.map(|e| chain(&e)).unwrap_or_default();
            assert!(shown.contains("cannot convert"), "{i}: {shown}");
        }
        assert!(bad.try_get::<_, Sealed<PhoneNumber, Service>>(1).is_err());
        // A column of another type is refused before any value is read.
        let n = client
            .query_one("SELECT 1::int4", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(n.try_get::<_, Sealed<PhoneNumber, Service>>(0).is_err());
    });
}

/// The stores through the traits the guard calls: consent changes through
/// `ConsentRegistry::change`; a key deletion says whether a key was there; an erasure recorded
/// to a sink other than the store's own PostgreSQL sink goes through that sink (record first,
/// then the deletion), not into the store's transaction; and `Debug` names the store only (no
/// URL, no password).
#[test]
fn the_stores_through_their_traits() {
    let Some(db) = fresh("store_traits") else {
        return;
    };
    let consent = PgConsent::new(&db.writer, CONSENT_KEY).unwrap_or_else(|e| panic!("{e}"));
    let registry: &dyn ConsentRegistry = &consent;
    let subject = SubjectId::new(SUBJECT);
    let scope = ConsentScope::Purpose("marketing");
    assert!(!registry.is_granted(&subject, scope));
    registry
        .change(&subject, scope, true, 1_700_000_000, &dpo())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        registry.is_granted(&subject, scope),
        "granted through change"
    );
    registry
        .change(&subject, scope, false, 1_700_000_001, &dpo())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !registry.is_granted(&subject, scope),
        "withdrawn through change"
    );
    assert_eq!(format!("{consent:?}"), "PgConsent { .. }");

    let sink = Arc::new(
        PgAuditSink::builder(&db.writer)
            .key(AuditKey::from_bytes([0x55; 32]))
            .connect()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let store = PgSubjectKeys::with_audit(Arc::clone(&sink)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(format!("{store:?}"), "PgSubjectKeys { .. }");
    let keys: &dyn SubjectKeyStore = &store;
    let id: SubjectKeyId = [7; 16];
    keys.insert(&id, &[1, 2, 3])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        keys.delete(&id).unwrap_or_else(|e| panic!("{e}")),
        "a key was there"
    );
    assert!(
        !keys.delete(&id).unwrap_or_else(|e| panic!("{e}")),
        "none any more"
    );

    // An erasure recorded to another sink: its record goes there, and the key is deleted.
    keys.insert(&id, &[1, 2, 3])
        .unwrap_or_else(|e| panic!("{e}"));
    let memory = MemorySink::new();
    fieldseal::internal::testing::with_sample_event(1, None, |e| {
        keys.delete_audited(&[id], &memory, e)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(memory.len(), 1, "recorded by the sink the guard uses");
    assert_eq!(keys.get(&id).unwrap_or_else(|e| panic!("{e}")), None);
    assert_eq!(
        psql(&db.owner, "SELECT count(*) FROM fieldseal_audit").unwrap_or_else(|e| panic!("{e}")),
        "0",
        "nothing went into the store's own sink"
    );
}

/// A store whose connection was closed by the server connects again on its next use: one call
/// may fail with the broken connection, later ones succeed.
#[test]
fn a_store_connects_again_after_the_server_closes_its_connection() {
    let Some(db) = fresh("reconnect") else { return };
    let keys = PgSubjectKeys::new(&db.writer).unwrap_or_else(|e| panic!("{e}"));
    let store: &dyn SubjectKeyStore = &keys;
    let id: SubjectKeyId = [3; 16];
    store
        .insert(&id, &[1, 2, 3])
        .unwrap_or_else(|e| panic!("{e}"));
    let killed = psql(
        &db.superuser,
        "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity \
         WHERE usename = 'fieldseal_writer' AND datname = current_database()",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Waited for: the backend has exited, so the next call cannot succeed on the old
    // connection; it reconnects at once or after one failed call.
    assert_eq!(killed, "1", "the store's one connection");
    let started = std::time::Instant::now();
    let mut failures = 0;
    let back = loop {
        match store.get(&id) {
            Ok(v) => break v,
            Err(_) => failures += 1,
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "still failing after {failures} tries"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(back, Some(vec![1, 2, 3]));
    assert!(failures <= 1, "{failures} failed calls");
}
