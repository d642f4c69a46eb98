//! The PostgreSQL audit chain: lines identical to `ChainedLog`'s, concurrent writers in two
//! processes, append-only tables, tamper detection by the streaming verifier, subject access.
//!
//! Needs the throwaway cluster of `scripts/pg-env` (`scripts/test` sources it); without it every
//! test prints a skip message and passes.
#![cfg(feature = "postgres")]

mod common;
mod pg;

use std::io::BufRead as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use fieldseal::internal::testing::with_sample_event;
use fieldseal::postgres::{
    PgAuditSink, PgCheckpointer, ScheduleStatus, subject_access_pg, verify_pg,
};
use fieldseal::*;
use pg::{PgDb, fresh, psql};

const CHILD_ENV: &str = "FIELDSEAL_PG_CHILD_URL";

fn sink(url: &str) -> PgAuditSink {
    PgAuditSink::builder(url)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .connect()
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

fn checkpointer(db: &PgDb) -> PgCheckpointer {
    db.checkpointer(AUDIT_KEY, CKPT_KEY)
}

fn verify(db: &PgDb) -> VerifyReport {
    verify_pg(&db.owner, &AuditKey::from_bytes(AUDIT_KEY), &ckpt_public())
        .unwrap_or_else(|e| panic!("verify: {e}"))
}

/// `n` sample events (subject `subject-1` on even ones), appended one by one; then a
/// checkpoint.
fn append_samples(db: &PgDb, n: u64) {
    let s = sink(&db.writer);
    let c = checkpointer(db);
    assert_eq!(c.checkpoint().ok(), Some(Some(0)), "genesis");
    for i in 0..n {
        let subject = (i % 2 == 0).then_some("subject-1");
        let seq = with_sample_event(i, subject, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seq, i + 1);
    }
    assert_eq!(c.checkpoint().ok(), Some(Some(n)));
    assert_eq!(c.checkpoint().ok(), Some(None), "nothing new to cover");
}

#[test]
fn rows_hold_chained_log_lines_and_verify() {
    let Some(db) = fresh("lines") else { return };
    assert_eq!(
        fieldseal::postgres::migrate(&db.owner).ok(),
        Some(fieldseal::postgres::SCHEMA_VERSION),
        "a second migration finds the current version and does nothing"
    );
    append_samples(&db, 12);
    let report = verify(&db);
    assert!(report.is_valid(), "{:?}", report.fault);
    assert_eq!((report.entries, report.checkpoints), (12, 1));

    // The same events through ChainedLog give the same bytes, line for line.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = open_log(dir.path(), Durability::Durable, 1000);
    for i in 0..12 {
        let subject = (i % 2 == 0).then_some("subject-1");
        with_sample_event(i, subject, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
    }
    drop(log);
    let file = std::fs::read_to_string(dir.path().join("audit-000001.log"))
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = psql(&db.owner, "SELECT line FROM fieldseal_audit ORDER BY seq")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(format!("{rows}\n"), file);

    // The file verifier accepts the table's lines and checkpoints as they are.
    let ckpts = psql(
        &db.owner,
        "SELECT line FROM fieldseal_audit_checkpoints ORDER BY seq",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = verify_bytes(
        &[format!("{rows}\n").into_bytes()],
        format!("{ckpts}\n").as_bytes(),
        &AuditKey::from_bytes(AUDIT_KEY),
        &ckpt_public(),
    );
    assert!(r.is_valid(), "{:?}", r.fault);
    assert_eq!(r.entries, 12);
}

#[test]
fn subject_access_from_the_table() {
    let Some(db) = fresh("access") else { return };
    append_samples(&db, 10);
    let key = AuditKey::from_bytes(AUDIT_KEY);
    let reads = subject_access_pg(
        &db.owner,
        &key,
        &ckpt_public(),
        &SubjectId::new("subject-1"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Even events have the subject; event 4 is a denial.
    let seqs: Vec<u64> = reads.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [1, 3, 7, 9]);
    assert!(
        reads
            .iter()
            .all(|a| a.action == "reveal" && a.purpose == "service")
    );
    let none = subject_access_pg(&db.owner, &key, &ckpt_public(), &SubjectId::new("other"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.is_empty());
    // No raw subject id anywhere in the table.
    let dump = psql(
        &db.owner,
        "SELECT string_agg(line || coalesce(subject, ''), '') FROM fieldseal_audit",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!dump.contains("subject-1"));
}

#[test]
fn updates_and_deletes_are_refused_for_writer_and_owner() {
    let Some(db) = fresh("appendonly") else {
        return;
    };
    append_samples(&db, 3);
    for (who, url) in [("writer", &db.writer), ("owner", &db.owner)] {
        for sql in [
            "UPDATE fieldseal_audit SET outcome = 'allowed' WHERE seq = 2",
            "DELETE FROM fieldseal_audit WHERE seq = 3",
            "TRUNCATE fieldseal_audit",
            "UPDATE fieldseal_audit_checkpoints SET line = '' WHERE seq = 0",
            "DELETE FROM fieldseal_audit_checkpoints",
            "DELETE FROM fieldseal_audit_head",
            "UPDATE fieldseal_audit_head SET seq = 1",
        ] {
            let r = psql(url, sql);
            assert!(r.is_err(), "{who} could run {sql}");
            let e = r.err().unwrap_or_default();
            assert!(
                e.contains("permission denied")
                    || e.contains("append-only")
                    || e.contains("only moves forward"),
                "{who}, {sql}: {e}"
            );
        }
    }
    // The writer may not write checkpoints either.
    assert!(
        psql(
            &db.writer,
            "INSERT INTO fieldseal_audit_checkpoints (seq, line) VALUES (99, 'x')"
        )
        .is_err()
    );
    let report = verify(&db);
    assert!(report.is_valid(), "{:?}", report.fault);
    assert_eq!(report.entries, 3);
}

/// Tampers as the superuser with the append-only trigger disabled.
fn tamper(db: &PgDb, sql: &str) {
    psql(
        &db.superuser,
        &format!(
            "BEGIN; ALTER TABLE fieldseal_audit DISABLE TRIGGER USER; {sql}; \
             ALTER TABLE fieldseal_audit ENABLE TRIGGER USER; COMMIT;"
        ),
    )
    .unwrap_or_else(|e| panic!("tamper: {e}"));
}

fn fault(db: &PgDb) -> Option<(u64, FaultClass)> {
    verify(db).fault.map(|f| (f.seq, f.class))
}

/// Sets the head row as the superuser, its append-only trigger disabled.
fn tamper_head(db: &PgDb, set: &str) {
    psql(
        &db.superuser,
        &format!(
            "BEGIN; ALTER TABLE fieldseal_audit_head DISABLE TRIGGER USER; \
             UPDATE fieldseal_audit_head SET {set}; \
             ALTER TABLE fieldseal_audit_head ENABLE TRIGGER USER; COMMIT;"
        ),
    )
    .unwrap_or_else(|e| panic!("tamper: {e}"));
}

/// The head row must name the last row and its MAC: rows beyond the head were not appended
/// through it (spliced, reported at the first of them), and a head with the last row's seq but
/// another MAC was edited (reported at that seq). An empty chain needs no checkpoint.
#[test]
fn a_head_row_that_disagrees_with_the_table_is_reported() {
    let Some(db) = fresh("tamper_head") else {
        return;
    };
    // No rows and no checkpoint yet: nothing is missing.
    assert_eq!(fault(&db), None, "an empty chain");
    append_samples(&db, 10);
    assert_eq!(fault(&db), None);
    tamper_head(
        &db,
        "seq = 8, mac = (SELECT mac FROM fieldseal_audit WHERE seq = 8)",
    );
    assert_eq!(fault(&db), Some((9, FaultClass::Spliced)));
    tamper_head(
        &db,
        "seq = 10, mac = (SELECT mac FROM fieldseal_audit WHERE seq = 9)",
    );
    assert_eq!(fault(&db), Some((10, FaultClass::Edited)));
    tamper_head(
        &db,
        "seq = 10, mac = (SELECT mac FROM fieldseal_audit WHERE seq = 10)",
    );
    assert_eq!(fault(&db), None);
    // The checkpointer, whose latest checkpoint (10) covers the head, checks the head against
    // it: a head at 10 with another MAC, and a head behind the checkpoint, are refused.
    let refused = |db: &PgDb| checkpointer(db).checkpoint().err().map(|e| e.kind());
    assert_eq!(
        checkpointer(&db).checkpoint().ok(),
        Some(None),
        "nothing new"
    );
    tamper_head(
        &db,
        "seq = 10, mac = (SELECT mac FROM fieldseal_audit WHERE seq = 9)",
    );
    assert_eq!(refused(&db), Some(AuditErrorKind::Corrupt { seq: 10 }));
    tamper_head(
        &db,
        "seq = 8, mac = (SELECT mac FROM fieldseal_audit WHERE seq = 8)",
    );
    assert_eq!(refused(&db), Some(AuditErrorKind::Corrupt { seq: 9 }));
    tamper_head(
        &db,
        "seq = 10, mac = (SELECT mac FROM fieldseal_audit WHERE seq = 10)",
    );
    assert_eq!(checkpointer(&db).checkpoint().ok(), Some(None));
    // A latest checkpoint whose signature does not verify: refused, reported after its seq.
    psql(
        &db.superuser,
        "BEGIN; ALTER TABLE fieldseal_audit_checkpoints DISABLE TRIGGER USER; \
         UPDATE fieldseal_audit_checkpoints SET line = replace(line, '\"time\":', '\"time\":1') \
         WHERE seq = 10; \
         ALTER TABLE fieldseal_audit_checkpoints ENABLE TRIGGER USER; COMMIT;",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused(&db), Some(AuditErrorKind::Corrupt { seq: 11 }));
}

/// The table's lines, in seq order, as one `ChainedLog` segment, and its checkpoint lines as
/// `checkpoints.log`, read with psql (not through the crate).
fn export(db: &PgDb, dir: &std::path::Path) {
    let lines = |sql: &str| {
        let out = psql(&db.owner, sql).unwrap_or_else(|e| panic!("{e}"));
        out.lines().map(|l| format!("{l}\n")).collect::<String>()
    };
    std::fs::write(
        dir.join("audit-000001.log"),
        lines("SELECT line FROM fieldseal_audit ORDER BY seq"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("checkpoints.log"),
        lines("SELECT line FROM fieldseal_audit_checkpoints ORDER BY seq"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The second verifier of the audit log (written from SECURITY.md, `tests/independent/`)
/// reads the table's lines as a segment: it agrees with `verify_pg` on a sound chain and on the
/// first bad seq of an edited and of a deleted row.
#[test]
fn the_tables_lines_pass_the_second_verifier_and_agree_on_damage() {
    let Some(db) = fresh("second") else { return };
    append_samples(&db, 10);
    let answer = |db: &PgDb| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        export(db, dir.path());
        let v = independent_audit_verify(dir.path(), &ckpt_public().to_bytes(), &AUDIT_KEY);
        (
            v["entries"].as_u64(),
            v["checkpoints"].as_u64(),
            v["fault"].as_u64(),
        )
    };
    let report = verify(&db);
    assert!(report.is_valid(), "{:?}", report.fault);
    assert_eq!(
        answer(&db),
        (Some(10), Some(report.checkpoints as u64), None)
    );
    assert_eq!(report.checkpoints, 1, "the one at 10, after the genesis");
    tamper(
        &db,
        "UPDATE fieldseal_audit SET line = replace(line, '\"principal\":\"p6\"', '\"principal\":\"p5\"') WHERE seq = 7",
    );
    assert_eq!(fault(&db).map(|f| f.0), Some(7));
    assert_eq!(answer(&db).2, Some(7));
    tamper(&db, "DELETE FROM fieldseal_audit WHERE seq = 3");
    assert_eq!(fault(&db).map(|f| f.0), Some(3));
    assert_eq!(answer(&db).2, Some(3));
}

#[test]
fn tampered_rows_are_reported_with_seq_and_class() {
    let Some(db) = fresh("tamper") else { return };
    append_samples(&db, 10);
    assert_eq!(fault(&db), None);
    // An edited line.
    tamper(
        &db,
        "UPDATE fieldseal_audit SET line = replace(line, '\"principal\":\"p6\"', '\"principal\":\"p5\"') WHERE seq = 7",
    );
    assert_eq!(fault(&db), Some((7, FaultClass::Edited)));
    // An edited query column (the line untouched) is reported too, and earlier damage first.
    tamper(
        &db,
        "UPDATE fieldseal_audit SET outcome = 'allowed' WHERE seq = 5",
    );
    assert_eq!(fault(&db), Some((5, FaultClass::Edited)));
    // A deleted row.
    tamper(&db, "DELETE FROM fieldseal_audit WHERE seq = 3");
    assert_eq!(fault(&db), Some((3, FaultClass::Deleted)));
    // Reports and checkpoints refuse the damaged chain.
    let e = subject_access_pg(
        &db.owner,
        &AuditKey::from_bytes(AUDIT_KEY),
        &ckpt_public(),
        &SubjectId::new("subject-1"),
    )
    .err()
    .map(|e| e.kind());
    assert_eq!(e, Some(AuditErrorKind::Corrupt { seq: 3 }));
    // The checkpointer checks what its next checkpoint would cover (from the latest one, seq
    // 10) and refuses to sign over damage there.
    let s = sink(&db.writer);
    for i in 10..12 {
        with_sample_event(i, None, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
    }
    tamper(
        &db,
        "UPDATE fieldseal_audit SET time = time + 1 WHERE seq = 11",
    );
    let e = checkpointer(&db).checkpoint().err().map(|e| e.kind());
    assert_eq!(e, Some(AuditErrorKind::Corrupt { seq: 11 }));

    // A tail cut behind a checkpoint.
    let Some(db) = fresh("tamper_tail") else {
        return;
    };
    append_samples(&db, 10);
    let copied_out = psql(
        &db.owner,
        "SELECT line FROM fieldseal_audit_checkpoints ORDER BY seq",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    tamper(&db, "DELETE FROM fieldseal_audit WHERE seq > 8");
    assert_eq!(fault(&db), Some((9, FaultClass::TruncatedBehindCheckpoint)));
    // The checkpoints cut with it: the table alone looks like a valid shorter chain; a copy of
    // the checkpoints kept outside the database shows the cut.
    psql(
        &db.superuser,
        "BEGIN; ALTER TABLE fieldseal_audit_checkpoints DISABLE TRIGGER USER; \
         DELETE FROM fieldseal_audit_checkpoints WHERE seq > 8; \
         ALTER TABLE fieldseal_audit_checkpoints ENABLE TRIGGER USER; \
         ALTER TABLE fieldseal_audit_head DISABLE TRIGGER USER; \
         UPDATE fieldseal_audit_head SET seq = 8, \
             mac = (SELECT mac FROM fieldseal_audit WHERE seq = 8); \
         ALTER TABLE fieldseal_audit_head ENABLE TRIGGER USER; COMMIT;",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fault(&db), None);
    let with_copy = fieldseal::postgres::verify_pg_with_checkpoints(
        &db.owner,
        &AuditKey::from_bytes(AUDIT_KEY),
        &ckpt_public(),
        copied_out.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        with_copy.fault.map(|f| (f.seq, f.class)),
        Some((9, FaultClass::TruncatedBehindCheckpoint))
    );

    // A row from another chain (same seq, another key).
    let Some(other) = fresh("tamper_other") else {
        return;
    };
    let s = PgAuditSink::builder(&other.writer)
        .key(AuditKey::from_bytes([0x33; 32]))
        .connect()
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..3 {
        with_sample_event(i, None, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
    }
    let foreign = psql(
        &other.owner,
        "SELECT line FROM fieldseal_audit WHERE seq = 2",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let Some(db) = fresh("tamper_splice") else {
        return;
    };
    append_samples(&db, 4);
    let foreign = foreign.replace('\'', "''");
    tamper(
        &db,
        &format!("UPDATE fieldseal_audit SET line = '{foreign}' WHERE seq = 2"),
    );
    assert_eq!(fault(&db), Some((2, FaultClass::Spliced)));

    // No checkpoint at all for a chain with entries.
    let Some(db) = fresh("tamper_nockpt") else {
        return;
    };
    let s = sink(&db.writer);
    with_sample_event(0, None, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fault(&db), Some((1, FaultClass::CheckpointsMissing)));
    let e = checkpointer(&db).checkpoint().err().map(|e| e.kind());
    assert_eq!(e, Some(AuditErrorKind::CheckpointsMissing));
}

/// The child: runs only when re-executed by `two_processes_append_to_one_chain`; appends
/// `FIELDSEAL_PG_CHILD_N` events from each of `FIELDSEAL_PG_CHILD_THREADS` threads, then prints
/// its commit count.
#[test]
fn pg_writer_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let num = |v: &str| -> u64 {
        std::env::var(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{v}"))
    };
    let (threads, n, tag) = (
        num("FIELDSEAL_PG_CHILD_THREADS"),
        num("FIELDSEAL_PG_CHILD_N"),
        num("FIELDSEAL_PG_CHILD_TAG"),
    );
    let s = Arc::new(sink(&url));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..n {
                    let id = tag * 1_000_000 + t * 10_000 + i;
                    with_sample_event(id, Some("subject-1"), |e| s.append(e))
                        .unwrap_or_else(|e| panic!("child append: {e}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
    }
    println!("commits {}", s.commits());
}

/// Runs `procs` writer processes of `threads` threads × `n` appends; returns (seconds, commits).
fn run_children(db: &PgDb, procs: u64, threads: u64, n: u64) -> (f64, u64) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|p| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "pg_writer_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &db.writer)
                .env("FIELDSEAL_PG_CHILD_THREADS", threads.to_string())
                .env("FIELDSEAL_PG_CHILD_N", n.to_string())
                .env("FIELDSEAL_PG_CHILD_TAG", p.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let mut commits = 0;
    for c in children {
        let out = c.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "child failed");
        for line in out.stdout.lines().map_while(Result::ok) {
            // With --nocapture the harness's "test … " prefix shares the line.
            if let Some((_, n)) = line.split_once("commits ") {
                commits += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    (start.elapsed().as_secs_f64(), commits)
}

#[test]
fn two_processes_append_to_one_chain() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(db) = fresh("fleet") else { return };
    assert_eq!(checkpointer(&db).checkpoint().ok(), Some(Some(0)));
    // FIELDSEAL_PG_APPENDS raises the per-thread count for a throughput measurement.
    let n = std::env::var("FIELDSEAL_PG_APPENDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let mut total = 0;
    // One thread alone (one entry per commit), then group commit in one and in two processes.
    for (procs, threads) in [(1, 1), (1, 8), (2, 8)] {
        let (secs, commits) = run_children(&db, procs, threads, n);
        let entries = procs * threads * n;
        total += entries;
        eprintln!(
            "{procs} process(es) x {threads} threads: {entries} appends in {secs:.2} s = {:.0} appends/s, {commits} commits ({:.1} entries per commit)",
            entries as f64 / secs,
            entries as f64 / commits.max(1) as f64,
        );
    }
    assert_eq!(checkpointer(&db).checkpoint().ok(), Some(Some(total)));
    let report = verify(&db);
    assert!(report.is_valid(), "{:?}", report.fault);
    assert_eq!(report.entries, total);
    let stats = psql(
        &db.owner,
        "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM fieldseal_audit",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats, format!("{total}|1|{total}|{total}"), "gapless seqs");
}

/// No server needed: the builder's Debug shows its batch size and never the URL, which may
/// hold a password.
#[test]
fn the_builder_does_not_show_its_url() {
    let b = PgAuditSink::builder("postgresql://writer:hunter2@127.0.0.1/db").max_batch(7);
    assert_eq!(format!("{b:?}"), "PgAuditSinkBuilder { max_batch: 7, .. }");
}

#[test]
fn a_guard_records_through_the_table_and_fails_closed() {
    let Some(db) = fresh("guard") else { return };
    let s = Arc::new(sink(&db.writer));
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(Arc::clone(&s))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new()
        .table("t")
        .row("1")
        .subject(&SubjectId::new("subject-9"));
    let sealed: Sealed<PhoneNumber, builtin::Service> = guard
        .seal(
            &PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}")),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let phone = guard
        .reveal(&tester(), &sealed, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(phone.expose_secret().as_str(), "+8613800138000");
    assert_eq!(s.entries(), 1);
    // An entry too long for a line the verifier accepts is refused before it reaches the
    // table: nothing is revealed and nothing written.
    let huge = Accessor::new(&"p".repeat(70 * 1024), [Role::new(ROLE)]);
    let err = guard.reveal(&huge, &sealed, &ctx).err();
    assert!(
        matches!(&err, Some(Error::Audit(e)) if e.kind() == AuditErrorKind::Rejected),
        "{err:?}"
    );
    assert_eq!(s.entries(), 1);
    assert_eq!(
        psql(&db.owner, "SELECT count(*) FROM fieldseal_audit").as_deref(),
        Ok("1")
    );
    // Debug names the sink and its commits, never the URL (which may hold a password).
    assert_eq!(format!("{s:?}"), "PgAuditSink { commits: 1, .. }");
    // Without the table, nothing is revealed.
    psql(
        &db.owner,
        "REVOKE INSERT ON fieldseal_audit FROM fieldseal_writer",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = guard.reveal(&tester(), &sealed, &ctx).err();
    assert!(
        matches!(&err, Some(Error::Audit(e)) if e.kind() == AuditErrorKind::Io),
        "{err:?}"
    );
    // The failed transaction left the chain as it was; appends resume once permitted.
    psql(
        &db.owner,
        "GRANT INSERT ON fieldseal_audit TO fieldseal_writer",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let _again = guard
        .reveal(&tester(), &sealed, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        psql(&db.owner, "SELECT seq FROM fieldseal_audit_head")
            .ok()
            .as_deref(),
        Some("2")
    );
}

#[test]
fn sync_and_async_appends_inside_a_tokio_runtime() {
    let Some(db) = fresh("tokio") else { return };
    let s = Arc::new(sink(&db.writer));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        // The blocking path from a runtime worker: no nested-runtime panic.
        let seq = with_sample_event(0, None, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seq, 1);
        // The async path, many at once: grouped into few transactions.
        let futures: Vec<_> = (1..=50)
            .map(|i| with_sample_event(i, None, |e| s.append_async(e)))
            .collect();
        let mut seqs = Vec::new();
        for f in futures {
            seqs.push(f.await.unwrap_or_else(|e| panic!("{e}")));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (2..=51).collect::<Vec<u64>>());
    });
    assert!(s.commits() < 51, "{} commits for 51 appends", s.commits());
    drop(s);
    drop(rt);
    let report = {
        assert_eq!(
            checkpointer(&db)
                .dangerous_accept_missing_checkpoints()
                .checkpoint()
                .ok(),
            Some(Some(51))
        );
        // Its checkpoint covers the head: nothing new, though there is no genesis.
        assert_eq!(
            checkpointer(&db)
                .dangerous_accept_missing_checkpoints()
                .checkpoint()
                .ok(),
            Some(None)
        );
        verify(&db)
    };
    assert!(report.is_valid(), "{:?}", report.fault);
}

/// The head row's lock, held by a psql session of the owner until [`HeadLock::release`].
struct HeadLock {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
}

impl HeadLock {
    /// Takes the lock and returns once the session holds it.
    fn take(db: &PgDb) -> Self {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.owner])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("psql: {e}"));
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        writeln!(
            stdin,
            "BEGIN; SELECT seq FROM fieldseal_audit_head FOR UPDATE;"
        )
        .unwrap_or_else(|e| panic!("{e}"));
        stdin.flush().unwrap_or_else(|e| panic!("{e}"));
        wait_until_one(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' \
             AND query LIKE '%FOR UPDATE%' AND datname = current_database()",
            "the lock holder never took the lock",
        );
        Self { child, stdin }
    }

    /// Waits until the sink's writer waits for the lock.
    fn wait_for_writer(db: &PgDb) {
        wait_until_one(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND datname = current_database()",
            "the writer never waited for the lock",
        );
    }

    fn release(mut self) {
        writeln!(self.stdin, "COMMIT;").unwrap_or_else(|e| panic!("{e}"));
        drop(self.stdin);
        let status = self.child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "the lock holder failed");
    }
}

/// Polls `sql` as the superuser (other roles' wait events are hidden from the owner) until it
/// answers 1.
fn wait_until_one(db: &PgDb, sql: &str, what: &str) {
    let waiting = Instant::now();
    while psql(&db.superuser, sql).unwrap_or_else(|e| panic!("{e}")) != "1" {
        assert!(waiting.elapsed().as_secs() < 30, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A sink with `max_batch`, on a chain with its genesis checkpoint (made once: a second run
/// finds nothing new).
fn batching_sink(db: &PgDb, max_batch: usize) -> Arc<PgAuditSink> {
    assert_eq!(checkpointer(db).checkpoint().ok(), Some(Some(0)), "genesis");
    assert_eq!(checkpointer(db).checkpoint().ok(), Some(None));
    Arc::new(
        PgAuditSink::builder(&db.writer)
            .key(AuditKey::from_bytes(AUDIT_KEY))
            .max_batch(max_batch)
            .connect()
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn join_all(threads: Vec<std::thread::JoinHandle<Result<u64, AuditError>>>) -> Vec<u64> {
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| panic!("appender"))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    seqs.sort_unstable();
    seqs
}

/// Appends that queue while another transaction holds the head lock join the next transaction,
/// at most `max_batch` of them per transaction.
#[test]
fn queued_appends_join_one_transaction_up_to_max_batch() {
    let Some(db) = fresh("maxbatch") else { return };
    let s = batching_sink(&db, 3);
    let lock = HeadLock::take(&db);
    // The first append's transaction waits for the lock; seven more queue behind it.
    let append = |i: u64| {
        let s = Arc::clone(&s);
        std::thread::spawn(move || with_sample_event(i, None, |e| s.append(e)))
    };
    let mut appenders = vec![append(0)];
    HeadLock::wait_for_writer(&db);
    appenders.extend((1..8).map(append));
    // Time for the seven to queue (they only send to the writer's channel), then the lock goes.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(s.commits(), 0, "nothing committed while the lock is held");
    lock.release();
    assert_eq!(join_all(appenders), (1..=8).collect::<Vec<_>>());
    assert_eq!(s.entries(), 8);
    // No transaction carried more than max_batch rows (rows of one transaction share its
    // xmin); and they were grouped: 3 + 3 + 2 when the seven queued before the lock went.
    let largest = psql(
        &db.owner,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM fieldseal_audit GROUP BY xmin) AS t",
    );
    assert_eq!(largest.as_deref(), Ok("3"));
    assert!(s.commits() <= 4, "{} commits", s.commits());
    assert_eq!(checkpointer(&db).checkpoint().ok(), Some(Some(8)));
    let report = verify(&db);
    assert!(report.is_valid(), "{:?}", report.fault);
}

/// An erasure (a record that deletes subject keys in its transaction) goes alone: its deletion
/// failing must not fail other callers' records. Appends queued around it go before and after.
#[test]
fn an_erasure_queued_among_appends_commits_alone() {
    let Some(db) = fresh("erasurealone") else {
        return;
    };
    let s = batching_sink(&db, 100);
    let store = Arc::new(
        fieldseal::postgres::PgSubjectKeys::with_audit(Arc::clone(&s))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let id: SubjectKeyId = [7; 16];
    store
        .insert(&id, &[1, 2, 3])
        .unwrap_or_else(|e| panic!("{e}"));
    let lock = HeadLock::take(&db);
    let append = |i: u64| {
        let s = Arc::clone(&s);
        std::thread::spawn(move || with_sample_event(i, None, |e| s.append(e)))
    };
    // One append waits for the lock; behind it an erasure and two appends queue, in any order.
    let mut threads = vec![append(0)];
    HeadLock::wait_for_writer(&db);
    let erasure = {
        let (s, store) = (Arc::clone(&s), Arc::clone(&store));
        std::thread::spawn(move || {
            with_sample_event(1, None, |e| store.delete_audited(&[id], &*s, e))
        })
    };
    threads.extend([append(2), append(3)]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    lock.release();
    erasure
        .join()
        .unwrap_or_else(|_| panic!("erasure"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(join_all(threads).len(), 3);
    assert_eq!(s.entries(), 4);
    // Whatever the order they queued in, the erasure's row (principal `p1`) is the only row of
    // its transaction, and the appends were grouped (the erasure alone, at most 3 commits).
    let alone = psql(
        &db.owner,
        "SELECT count(*) FROM fieldseal_audit WHERE xmin = \
         (SELECT xmin FROM fieldseal_audit WHERE line LIKE '%\"principal\":\"p1\"%')",
    );
    assert_eq!(alone.as_deref(), Ok("1"));
    assert!(s.commits() <= 3, "{} commits", s.commits());
    assert_eq!(store.get(&id).unwrap_or_else(|e| panic!("{e}")), None);
}

#[test]
fn a_held_head_lock_times_out_and_appends_resume() {
    let Some(db) = fresh("locktimeout") else {
        return;
    };
    let s = PgAuditSink::builder(&db.writer)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .lock_timeout(std::time::Duration::from_millis(300))
        .connect()
        .unwrap_or_else(|e| panic!("{e}"));
    let owner = db.owner.clone();
    let holder = std::thread::spawn(move || {
        psql(
            &owner,
            "BEGIN; SELECT seq FROM fieldseal_audit_head FOR UPDATE; SELECT pg_sleep(4); COMMIT;",
        )
    });
    // Wait until the holder sleeps with the lock taken (psql may start slowly on a busy host).
    let waiting = Instant::now();
    loop {
        let n = psql(
            &db.owner,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE state = 'active' AND query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if n == "1" {
            break;
        }
        assert!(
            waiting.elapsed().as_secs() < 20,
            "the lock holder never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = Instant::now();
    let r = with_sample_event(0, None, |e| s.append(e));
    assert_eq!(r.err().map(|e| e.kind()), Some(AuditErrorKind::Io));
    // Refused at the lock timeout, well before the holder lets go.
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "{:?}",
        started.elapsed()
    );
    holder
        .join()
        .unwrap_or_else(|_| panic!("holder"))
        .unwrap_or_else(|e| panic!("{e}"));
    let seq = with_sample_event(1, None, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seq, 1, "the failed transaction left no trace");
}

#[test]
fn a_checkpoint_schedule_covers_new_entries_until_stopped() {
    let Some(db) = fresh("schedule") else { return };
    let s = sink(&db.writer);
    let schedule = checkpointer(&db).every(std::time::Duration::from_millis(50));
    let wait_for = |what: &str, done: &dyn Fn(ScheduleStatus) -> bool| {
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while !done(schedule.status()) {
            assert!(Instant::now() < deadline, "{what}: {:?}", schedule.status());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    wait_for("genesis", &|st| st.last_seq == Some(0));
    for i in 0..30 {
        with_sample_event(i, Some("subject-1"), |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
    }
    wait_for("covering 30", &|st| st.last_seq == Some(30));
    assert!(verify(&db).is_valid());
    // Runs that fail (here: the checkpoint role lost its grant) are counted and retried.
    psql(
        &db.owner,
        "REVOKE SELECT ON fieldseal_audit FROM fieldseal_checkpoint",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    with_sample_event(30, None, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
    wait_for("failing", &|st| st.failures >= 2);
    assert_eq!(schedule.status().last_error, Some(AuditErrorKind::Io));
    assert_eq!(schedule.status().last_seq, Some(30));
    psql(
        &db.owner,
        "GRANT SELECT ON fieldseal_audit TO fieldseal_checkpoint",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    wait_for("recovered", &|st| st.last_seq == Some(31));
    assert_eq!(schedule.status().last_error, None);
    // Stopped: nothing more is signed.
    let stopped = schedule.stop();
    assert_eq!(stopped.last_seq, Some(31));
    with_sample_event(31, None, |e| s.append(e)).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let latest = psql(
        &db.owner,
        "SELECT max(seq) FROM fieldseal_audit_checkpoints",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(latest, "31");
}
