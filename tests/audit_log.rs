//! The chained audit log: round trips, rotation, recovery, subject access reports.

mod common;

use std::io::Write as _;

use common::*;
use fieldseal::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn append_reopen_continue_verify() {
    let dir = tempdir();
    let (log, report) = open_log(dir.path(), Durability::Buffered, 10);
    assert_eq!(report.last_seq, 0);
    append_n(&log, 0, 50);
    assert_eq!(log.last_seq(), 50);
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (50, None));
    // Buffered: checkpoints are made at syncs only (here the one on drop).
    assert_eq!(r.checkpoints, 1);
    let (log, report) = open_log(dir.path(), Durability::Durable, 10);
    assert_eq!(report.last_seq, 50);
    assert_eq!(report.torn, None);
    append_n(&log, 50, 60);
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (60, None));
    assert_eq!(r.checkpoints, 2);
    let text = std::fs::read_to_string(dir.path().join("audit-000001.log"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(text.starts_with("{\"seq\":1,\"prev\":\"0000"), "{text}");
    assert!(!text.contains("\"s1\""), "raw subject id in the log");
}

#[test]
fn rotation_continues_the_chain() {
    let dir = tempdir();
    let (log, _) = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(Durability::Durable)
        .max_segment_bytes(2_000)
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    append_n(&log, 0, 40);
    drop(log);
    let (log, report) = open_log(dir.path(), Durability::Durable, 1000);
    assert!(report.segments > 3, "{report:?}");
    append_n(&log, 40, 45);
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (45, None));
    // A missing middle segment is a deletion at its first seq.
    let second =
        std::fs::read(dir.path().join("audit-000002.log")).unwrap_or_else(|e| panic!("{e}"));
    let first_seq = r.entries - (r.entries - 1); // seq 1 is in segment 1
    assert_eq!(first_seq, 1);
    let n_first = std::fs::read(dir.path().join("audit-000001.log"))
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    std::fs::remove_file(dir.path().join("audit-000002.log")).unwrap_or_else(|e| panic!("{e}"));
    let r = verify_dir(dir.path());
    assert_eq!(
        r.fault,
        Some(Fault {
            seq: n_first + 1,
            class: FaultClass::Deleted
        }),
        "{} bytes removed",
        second.len()
    );
}

#[test]
fn torn_tail_is_moved_aside_and_middle_damage_is_fatal() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Durable, 1000);
    append_n(&log, 0, 20);
    drop(log);
    let seg = dir.path().join("audit-000001.log");
    let good = std::fs::read(&seg).unwrap_or_else(|e| panic!("{e}"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(b"{\"seq\":21,\"prev\":\"ab")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    assert_eq!(
        verify_dir(dir.path()).fault,
        Some(Fault {
            seq: 21,
            class: FaultClass::TornTail
        })
    );
    let (log, report) = open_log(dir.path(), Durability::Durable, 1000);
    let torn = report
        .torn
        .unwrap_or_else(|| panic!("no torn line reported"));
    assert_eq!((torn.seq, torn.len), (21, 20));
    assert!(torn.moved_to.exists());
    assert_eq!(std::fs::read(&seg).unwrap_or_else(|e| panic!("{e}")), good);
    append_n(&log, 20, 25);
    drop(log);
    assert_eq!(verify_dir(dir.path()).fault, None);

    // Damage before the last line: open refuses, naming the seq.
    let mut bytes = std::fs::read(&seg).unwrap_or_else(|e| panic!("{e}"));
    let line5 = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(3)
        .map_or(0, |(i, _)| i + 20);
    bytes[line5] ^= 1;
    std::fs::write(&seg, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let err = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .open()
        .err()
        .unwrap_or_else(|| panic!("opened a corrupt log"));
    assert_eq!(err.kind(), AuditErrorKind::Corrupt { seq: 5 });
}

#[test]
fn subject_access_report() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Buffered, 1000);
    append_n(&log, 0, 30);
    drop(log);
    let r = verify_dir(dir.path());
    let key = AuditKey::from_bytes(AUDIT_KEY).pseudonym_key();
    let rows = r
        .subject_access(&key, &SubjectId::new("s1"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Events n = 1, 4, 7, … (n % 3 == 1) minus denials (n % 5 == 4): 4, 19 are denied.
    let expected: Vec<u64> = (0..30u64)
        .filter(|n| n % 3 == 1 && n % 5 != 4)
        .map(|n| n + 1)
        .collect();
    assert_eq!(rows.iter().map(|a| a.seq).collect::<Vec<_>>(), expected);
    assert!(
        rows.iter()
            .all(|a| a.purpose == "service" && a.action == "reveal")
    );
    assert_eq!(rows[0].principal, "p1");
    let none = r
        .subject_access(&key, &SubjectId::new("nobody"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.is_empty());
    println!("subject access report: {} reads of subject s1", rows.len());
}

#[test]
fn secret_types_are_redacted() {
    let k = AuditKey::from_bytes([0xAB; 32]);
    assert_eq!(format!("{k:?}"), "AuditKey([REDACTED])");
    assert_eq!(
        format!("{:?}", k.pseudonym_key()),
        "PseudonymKey([REDACTED])"
    );
    let s = CheckpointSigningKey::from_bytes([0xAB; 32]);
    assert_eq!(format!("{s:?}"), "CheckpointSigningKey([REDACTED])");
}

/// A line the verifier would refuse (over 64 KiB: an enormous principal) is refused at append,
/// so the reveal fails closed and the log stays verifiable.
#[test]
fn oversized_entries_are_refused_not_written() {
    use fieldseal::builtin::Service;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = open_log(dir.path(), Durability::Durable, 1000);
    let log = std::sync::Arc::new(log);
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(std::sync::Arc::clone(&log))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new().table("t").row("1");
    let sealed: Sealed<Text, Service> = guard
        .seal(
            &Text::parse("secret").unwrap_or_else(|e| panic!("{e}")),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(guard.reveal(&tester(), &sealed, &ctx).is_ok());
    let huge = Accessor::new(&"p".repeat(70 * 1024), [Role::new(ROLE)]);
    match guard.reveal(&huge, &sealed, &ctx) {
        Err(Error::Audit(e)) => assert_eq!(e.kind(), AuditErrorKind::Rejected),
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("revealed without an accepted record"),
    }
    let many_roles = Accessor::new("x", (0..8000).map(|i| Role::new(&format!("role_{i:05}"))));
    assert!(matches!(
        guard.reveal(&many_roles, &sealed, &ctx),
        Err(Error::Audit(_))
    ));
    assert!(guard.reveal(&tester(), &sealed, &ctx).is_ok());
    drop(guard);
    let log = std::sync::Arc::try_unwrap(log).unwrap_or_else(|_| panic!("shared"));
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (2, None));
}

fn try_open(dir: &std::path::Path) -> Result<ChainedLog, AuditErrorKind> {
    ChainedLog::builder(dir)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .open()
        .map(|(l, _)| l)
        .map_err(|e| e.kind())
}

/// Deleting the checkpoint file must not hide a truncation: open refuses, the verifier reports.
#[test]
fn a_missing_checkpoint_file_is_reported() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Durable, 10);
    append_n(&log, 0, 30);
    drop(log);
    let ckpt = dir.path().join("checkpoints.log");
    std::fs::remove_file(&ckpt).unwrap_or_else(|e| panic!("{e}"));
    // Cut the last 10 entries too: without checkpoints this would look like a complete log.
    let seg = dir.path().join("audit-000001.log");
    let text = std::fs::read(&seg).unwrap_or_else(|e| panic!("{e}"));
    let cut: usize = text
        .split_inclusive(|&b| b == b'\n')
        .take(20)
        .map(<[u8]>::len)
        .sum();
    std::fs::write(&seg, &text[..cut]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        try_open(dir.path()).err(),
        Some(AuditErrorKind::CheckpointsMissing)
    );
    assert!(!ckpt.exists(), "a refused open must not recreate the file");
    let r = verify_dir(dir.path());
    assert_eq!(
        r.fault.map(|f| f.class),
        Some(FaultClass::CheckpointsMissing)
    );
    // An empty file is no better: a checkpoint file always starts with its genesis checkpoint.
    std::fs::write(&ckpt, b"").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        try_open(dir.path()).err(),
        Some(AuditErrorKind::CheckpointsMissing)
    );
    // An operator who knows the file was lost accepts the log explicitly: it is re-anchored.
    let (log, report) = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .dangerous_accept_missing_checkpoints()
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.last_seq, report.checkpoints), (20, 2));
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.checkpoints, r.fault), (20, 1, None));
}

/// A checkpoint naming another chain's head (a rebuilt or replayed log under the same keys)
/// stops the log from being opened for appending.
#[test]
fn open_refuses_a_chain_that_does_not_match_its_checkpoint() {
    let (a, b) = (tempdir(), tempdir());
    for (dir, first) in [(&a, 0), (&b, 1000)] {
        let (log, _) = open_log(dir.path(), Durability::Durable, 10);
        append_n(&log, first, first + 30);
        drop(log);
    }
    // Log A's segment replaced by log B's (same keys, same length, other events).
    std::fs::copy(
        b.path().join("audit-000001.log"),
        a.path().join("audit-000001.log"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        try_open(a.path()).err(),
        Some(AuditErrorKind::Corrupt { .. })
    ));
    let r = verify_dir(a.path());
    assert!(r.fault.is_some());
}

/// A complete, validly signed checkpoint whose newline was lost in a crash is kept (terminated),
/// not dropped.
#[test]
fn an_unterminated_valid_checkpoint_is_kept() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Durable, 10);
    append_n(&log, 0, 20);
    drop(log);
    let ckpt = dir.path().join("checkpoints.log");
    let before = std::fs::read(&ckpt).unwrap_or_else(|e| panic!("{e}"));
    let n = before.iter().filter(|&&b| b == b'\n').count();
    assert!(n >= 2);
    std::fs::write(&ckpt, &before[..before.len() - 1]).unwrap_or_else(|e| panic!("{e}"));
    let log = try_open(dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
    drop(log);
    let after = std::fs::read(&ckpt).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        after.starts_with(&before),
        "the last checkpoint was dropped"
    );
    let r = verify_dir(dir.path());
    assert_eq!(r.fault, None);
}
