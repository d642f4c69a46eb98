//! Checkpoint guarantees of the chained log: the time bound holds for an idle log, `sync()` and
//! a clean drop cover every entry, an emptied checkpoint file is reported, checkpoint faults name
//! a defined seq, and one directory has one writer.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fieldseal::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn builder(dir: &Path) -> ChainedLogBuilder {
    ChainedLog::builder(dir)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Keeps the first `n` lines of the only segment (a cut at a line boundary).
fn cut_log(dir: &Path, n: usize) {
    let seg = dir.join("audit-000001.log");
    let kept: Vec<u8> = lines(&seg).into_iter().take(n).flatten().collect();
    std::fs::write(&seg, kept).unwrap_or_else(|e| panic!("{e}"));
}

/// `checkpoint_every(1000, 1 s)`, 50 entries, then the (injected) clock moves 3 s on: the
/// background timer writes a checkpoint in both modes without another append, sync or drop, so a
/// cut of the idle log is reported.
#[test]
fn an_idle_log_gets_its_checkpoint_within_the_time_bound() {
    for durability in [Durability::Durable, Durability::Buffered] {
        let dir = tempdir();
        let clock = Arc::new(FixedClock::new(1_700_000_000));
        let (log, report) = builder(dir.path())
            .durability(durability)
            .checkpoint_every(1000, Duration::from_secs(1))
            .sync_interval(Duration::from_millis(5))
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.checkpoints, 1, "a new log starts with its genesis");
        append_n(&log, 0, 50);
        // No time has passed on the log's clock: the entries stay uncovered (the timer runs but
        // nothing is due).
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(verify_dir(dir.path()).checkpoints, 0, "{durability:?}");
        clock.advance(3);
        let deadline = Instant::now() + Duration::from_secs(10);
        while verify_dir(dir.path()).checkpoints == 0 {
            assert!(
                Instant::now() < deadline,
                "{durability:?}: no checkpoint 3 s after the last entry"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let r = verify_dir(dir.path());
        assert_eq!((r.entries, r.checkpoints, r.fault), (50, 1, None));
        // The attack of an idle log: cut 50 entries to 1.
        let segment =
            std::fs::read(dir.path().join("audit-000001.log")).unwrap_or_else(|e| panic!("{e}"));
        cut_log(dir.path(), 1);
        assert_eq!(
            verify_dir(dir.path()).fault,
            Some(Fault {
                seq: 2,
                class: FaultClass::TruncatedBehindCheckpoint
            }),
            "{durability:?}"
        );
        std::fs::write(dir.path().join("audit-000001.log"), segment)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(log);
    }
}

/// The time bound counts from the oldest uncovered entry, not from the last checkpoint: a log
/// idle for a long time does not checkpoint the first new entry at once, and the bound is met
/// for entries appended later.
#[test]
fn the_time_bound_counts_from_the_oldest_uncovered_entry() {
    let dir = tempdir();
    let clock = Arc::new(FixedClock::new(1_700_000_000));
    let (log, _) = builder(dir.path())
        .durability(Durability::Durable)
        .checkpoint_every(1000, Duration::from_secs(10))
        .sync_interval(Duration::from_secs(3600))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    clock.advance(100);
    append_n(&log, 0, 1);
    assert_eq!(verify_dir(dir.path()).checkpoints, 0);
    clock.advance(9);
    append_n(&log, 1, 2);
    assert_eq!(verify_dir(dir.path()).checkpoints, 0, "9 s < 10 s");
    clock.advance(1);
    append_n(&log, 2, 3);
    let r = verify_dir(dir.path());
    assert_eq!((r.checkpoints, r.entries), (1, 3), "10 s since entry 1");
    drop(log);
}

/// `sync()` and a clean drop cover every entry with a checkpoint, whatever the bounds.
#[test]
fn sync_and_drop_checkpoint_every_uncovered_entry() {
    for durability in [Durability::Durable, Durability::Buffered] {
        let dir = tempdir();
        let (log, _) = open_log(dir.path(), durability, 1000);
        append_n(&log, 0, 50);
        log.sync().unwrap_or_else(|e| panic!("{e}"));
        let r = verify_dir(dir.path());
        assert_eq!((r.entries, r.checkpoints), (50, 1), "{durability:?}");
        // A second sync with nothing new writes nothing.
        log.sync().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verify_dir(dir.path()).checkpoints, 1);
        append_n(&log, 50, 60);
        drop(log);
        let r = verify_dir(dir.path());
        assert_eq!((r.entries, r.checkpoints, r.fault), (60, 2, None));
        cut_log(dir.path(), 55);
        assert_eq!(
            verify_dir(dir.path()).fault.map(|f| f.class),
            Some(FaultClass::TruncatedBehindCheckpoint)
        );
    }
}

/// Truncating `checkpoints.log` to 0 bytes and cutting the log to 3 lines is reported by both
/// `open` and `verify_log`.
#[test]
fn an_emptied_checkpoint_file_is_reported() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Buffered, 1000);
    append_n(&log, 0, 50);
    drop(log);
    let ckpt = dir.path().join("checkpoints.log");
    std::fs::write(&ckpt, b"").unwrap_or_else(|e| panic!("{e}"));
    cut_log(dir.path(), 3);
    assert_eq!(
        builder(dir.path()).open().err().map(|e| e.kind()),
        Some(AuditErrorKind::CheckpointsMissing)
    );
    assert_eq!(
        verify_dir(dir.path()).fault,
        Some(Fault {
            seq: 1,
            class: FaultClass::CheckpointsMissing
        })
    );
    // A file holding only a torn line is no better.
    std::fs::write(&ckpt, b"{\"seq\":50,\"he").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        builder(dir.path()).open().err().map(|e| e.kind()),
        Some(AuditErrorKind::CheckpointsMissing)
    );
    // An empty file under an empty log is a log that never got going: it starts afresh.
    let fresh = tempdir();
    std::fs::write(fresh.path().join("checkpoints.log"), b"").unwrap_or_else(|e| panic!("{e}"));
    let (log, report) = builder(fresh.path())
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.checkpoints, 1);
    drop(log);
    assert_eq!(lines(&fresh.path().join("checkpoints.log")).len(), 1);
}

/// `open` reports the torn last checkpoint line it drops; a bad checkpoint line before the last
/// is refused at one past the last valid checkpoint before it, by `open` and the verifier alike.
#[test]
fn checkpoint_faults_are_reported_with_a_defined_seq() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Durable, 10);
    append_n(&log, 0, 30);
    drop(log);
    let ckpt = dir.path().join("checkpoints.log");
    let good = lines(&ckpt);
    // genesis, 10, 20, 30
    assert_eq!(good.len(), 4);

    let torn = b"{\"seq\":40,\"head\":\"00";
    let mut bytes: Vec<u8> = good.concat();
    bytes.extend_from_slice(torn);
    std::fs::write(&ckpt, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let (log, report) = builder(dir.path()).open().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.dropped_checkpoint, Some(torn.len() as u64));
    assert_eq!(report.checkpoints, 4);
    drop(log);
    assert_eq!(lines(&ckpt), good, "the torn line is gone, the rest kept");

    // A damaged line between the checkpoints for 10 and 20.
    for bad in [b"not a checkpoint\n".to_vec(), {
        // Validly formed, badly signed: the 20 checkpoint with its signature altered.
        let mut l = good[2].clone();
        let at = l.len() - 4;
        l[at] = if l[at] == b'0' { b'1' } else { b'0' };
        l
    }] {
        let mut damaged = good.clone();
        damaged.insert(2, bad);
        std::fs::write(&ckpt, damaged.concat()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            builder(dir.path()).open().err().map(|e| e.kind()),
            Some(AuditErrorKind::Corrupt { seq: 11 })
        );
        assert_eq!(
            verify_dir(dir.path()).fault,
            Some(Fault {
                seq: 11,
                class: FaultClass::BadCheckpointSignature
            })
        );
    }
    // Damage right after the genesis checkpoint: the first entry is uncovered.
    let mut damaged = good.clone();
    damaged.insert(1, b"{}\n".to_vec());
    std::fs::write(&ckpt, damaged.concat()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        builder(dir.path()).open().err().map(|e| e.kind()),
        Some(AuditErrorKind::Corrupt { seq: 1 })
    );
    std::fs::write(&ckpt, good.concat()).unwrap_or_else(|e| panic!("{e}"));
    assert!(builder(dir.path()).open().is_ok());
}

/// When the log's own fault and a checkpoint's fault fall on the same seq, a truncation
/// outranks the torn line it explains, and any other checkpoint fault yields to the log's.
#[test]
fn a_log_fault_and_a_checkpoint_fault_on_one_seq() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Buffered, u64::MAX);
    append_n(&log, 0, 4);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    let at_four =
        std::fs::read(dir.path().join("checkpoints.log")).unwrap_or_else(|e| panic!("{e}"));
    append_n(&log, 4, 6);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    let seg = std::fs::read(dir.path().join("audit-000001.log")).unwrap_or_else(|e| panic!("{e}"));
    let at_six =
        std::fs::read(dir.path().join("checkpoints.log")).unwrap_or_else(|e| panic!("{e}"));
    // Four whole lines and half of the fifth.
    let four: usize = seg
        .split_inclusive(|&b| b == b'\n')
        .take(4)
        .map(<[u8]>::len)
        .sum();
    let torn = &seg[..four + 10];
    let at = |seq, class| Some(Fault { seq, class });

    // Checkpointed up to 6: the cut inside line 5 is a truncation, not just a torn tail.
    assert_eq!(
        verify_mem(torn, &at_six).fault,
        at(5, FaultClass::TruncatedBehindCheckpoint)
    );
    // Checkpointed up to 4: only the torn tail.
    assert_eq!(
        verify_mem(torn, &at_four).fault,
        at(5, FaultClass::TornTail)
    );
    // Checkpointed up to 4, then a damaged checkpoint line (reported at 5, one past the last
    // trusted checkpoint): the log's torn tail at the same seq is the one reported.
    let mut damaged = at_four.clone();
    damaged.extend_from_slice(b"not a checkpoint\n");
    assert_eq!(
        verify_mem(torn, &damaged).fault,
        at(5, FaultClass::TornTail)
    );
    // The same damaged checkpoint line before damage in line 6: the earlier fault is reported.
    let five: usize = seg
        .split_inclusive(|&b| b == b'\n')
        .take(5)
        .map(<[u8]>::len)
        .sum();
    let mut edited = seg.clone();
    edited[five + 20] ^= 1;
    assert_eq!(verify_mem(&edited, &at_six).fault.map(|f| f.seq), Some(6));
    assert_eq!(
        verify_mem(&edited, &damaged).fault,
        at(5, FaultClass::BadCheckpointSignature)
    );
    // The whole log verifies, with its records and each subject's own trail.
    let whole = verify_mem(&seg, &at_six);
    assert!(whole.is_valid(), "{:?}", whole.fault);
    assert_eq!((whole.entries, whole.checkpoints), (6, 2));
    assert_eq!(whole.records().len(), 6);
    let key = AuditKey::from_bytes(AUDIT_KEY).pseudonym_key();
    // Sample event n has seq n + 1 and subject `s<n % 3>`.
    let trail: Vec<u64> = whole
        .subject_events(&key, &SubjectId::new("s1"))
        .unwrap_or_else(|f| panic!("{f}"))
        .iter()
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(trail, [2, 5]);
}

/// A checkpoint file that is missing verifies as an empty one; one that cannot be read is an
/// error, not an empty file.
#[test]
fn a_missing_checkpoint_file_is_reported_and_an_unreadable_one_is_an_error() {
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Buffered, u64::MAX);
    append_n(&log, 0, 3);
    drop(log);
    let key = AuditKey::from_bytes(AUDIT_KEY);
    let gone = dir.path().join("no-such-file");
    let report =
        verify_log(dir.path(), Some(&gone), &key, &ckpt_public()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.fault,
        Some(Fault {
            seq: 1,
            class: FaultClass::CheckpointsMissing
        })
    );
    // A directory where the file should be: reading it fails, and that is an I/O error.
    let err = verify_log(dir.path(), Some(dir.path()), &key, &ckpt_public())
        .err()
        .map(|e| e.kind());
    assert_eq!(err, Some(AuditErrorKind::Io));
    assert!(verify_dir(dir.path()).is_valid());
}

/// An empty log needs no checkpoint; a log with entries and no valid checkpoint is reported.
#[test]
fn an_empty_log_without_checkpoints_is_valid() {
    let empty = verify_mem(b"", b"");
    assert!(empty.is_valid(), "{:?}", empty.fault);
    assert_eq!((empty.entries, empty.checkpoints), (0, 0));
    let dir = tempdir();
    let (log, _) = open_log(dir.path(), Durability::Buffered, u64::MAX);
    append_n(&log, 0, 1);
    drop(log);
    let seg = std::fs::read(dir.path().join("audit-000001.log")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        verify_mem(&seg, b"").fault,
        Some(Fault {
            seq: 1,
            class: FaultClass::CheckpointsMissing
        })
    );
}

/// Dropping a log releases its directory at once: the background timer is stopped and joined
/// first, so an immediate reopen is never refused as locked.
#[test]
fn a_dropped_log_can_be_reopened_at_once() {
    let dir = tempdir();
    for round in 0..200u64 {
        let (log, _) = builder(dir.path())
            .durability(Durability::Buffered)
            .sync_interval(Duration::from_micros(50))
            .open()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        append_n(&log, round, round + 1);
        drop(log);
    }
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (200, None));
}

const CHILD_ENV: &str = "FIELDSEAL_LOCK_CHILD";

/// The child: opens the log named by `FIELDSEAL_LOCK_CHILD`, says what happened, and holds the
/// log open until its stdin closes.
#[test]
fn lock_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let opened = builder(Path::new(&dir)).open();
    let mut out = std::io::stdout().lock();
    let _ = match &opened {
        Ok(_) => writeln!(out, "\nlock-child: opened"),
        Err(e) if e.kind() == AuditErrorKind::Locked => writeln!(out, "\nlock-child: locked"),
        Err(e) => writeln!(out, "\nlock-child: error {e}"),
    };
    let _ = out.flush();
    drop(out);
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn spawn_child(dir: &Path) -> (std::process::Child, String) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(exe)
        .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let said = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("lock-child: ").map(str::to_owned))
        .unwrap_or_default();
    // The rest of the child's output is drained, so its harness can finish writing.
    std::thread::spawn(move || lines.for_each(drop));
    (child, said)
}

fn finish(mut child: std::process::Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn one_directory_has_one_writer() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempdir();
    // In one process: a second open (an overlapping restart, a second guard) is refused.
    let (log, _) = builder(dir.path()).open().unwrap_or_else(|e| panic!("{e}"));
    append_n(&log, 0, 5);
    assert_eq!(
        builder(dir.path()).open().err().map(|e| e.kind()),
        Some(AuditErrorKind::Locked)
    );
    // Across processes, both ways.
    let (child, said) = spawn_child(dir.path());
    assert_eq!(said, "locked");
    finish(child);
    drop(log);
    let (child, said) = spawn_child(dir.path());
    assert_eq!(said, "opened");
    assert_eq!(
        builder(dir.path()).open().err().map(|e| e.kind()),
        Some(AuditErrorKind::Locked)
    );
    finish(child);
    // The lock goes with its holder: the log opens again and its chain is intact.
    let (log, report) = builder(dir.path()).open().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.last_seq, 5);
    append_n(&log, 5, 10);
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (10, None));
}
