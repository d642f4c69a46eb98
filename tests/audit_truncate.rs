//! Truncation at every byte offset: behind the latest checkpoint it is reported as truncation;
//! inside an uncheckpointed last line it is a torn tail that recovery moves aside.

mod common;

use common::*;
use fieldseal::*;

/// A 200-entry log with checkpoints at 50, 100, 150 and, if `final_checkpoint`, 200.
fn build(dir: &std::path::Path, final_checkpoint: bool) -> (Vec<u8>, Vec<u8>) {
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = open_log(dir, Durability::Buffered, u64::MAX);
    for chunk in 0..3 {
        append_n(&log, chunk * 50, chunk * 50 + 50);
        log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    }
    let before_last = read("checkpoints.log");
    append_n(&log, 150, 200);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    if !final_checkpoint {
        // The state a crash leaves before the last checkpoint (a clean drop writes one).
        std::fs::write(dir.join("checkpoints.log"), &before_last).unwrap_or_else(|e| panic!("{e}"));
    }
    (read("audit-000001.log"), read("checkpoints.log"))
}

fn complete_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

#[test]
fn every_cut_behind_the_latest_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, ckpt) = build(dir.path(), true);
    let run = |range: std::ops::Range<usize>| {
        let mut reported = 0u64;
        for cut in range {
            let r = verify_mem(&log[..cut], &ckpt);
            let want = Fault {
                seq: complete_lines(&log[..cut]) + 1,
                class: FaultClass::TruncatedBehindCheckpoint,
            };
            assert_eq!(r.fault, Some(want), "cut at byte {cut}");
            reported += 1;
        }
        reported
    };
    let half = log.len() / 2;
    let (a, b) = std::thread::scope(|s| {
        let h = s.spawn(|| run(half..log.len()));
        (
            run(0..half),
            h.join().unwrap_or_else(|_| panic!("worker panicked")),
        )
    });
    println!(
        "cuts behind the latest checkpoint: tried {}, reported as truncation {}, silently accepted 0",
        log.len(),
        a + b
    );
    assert_eq!(a + b, log.len() as u64);

    // On disk, opening such a log for appending is refused, naming the first missing seq.
    let seg = dir.path().join("audit-000001.log");
    let mut refused = 0;
    for cut in (0..log.len()).step_by(997) {
        std::fs::write(&seg, &log[..cut]).unwrap_or_else(|e| panic!("{e}"));
        let err = ChainedLog::builder(dir.path())
            .key(AuditKey::from_bytes(AUDIT_KEY))
            .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
            .open()
            .err()
            .unwrap_or_else(|| panic!("opened a log cut at {cut}"));
        let seq = complete_lines(&log[..cut]) + 1;
        assert_eq!(err.kind(), AuditErrorKind::Corrupt { seq }, "cut at {cut}");
        for e in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
            let p = e.unwrap_or_else(|e| panic!("{e}")).path();
            if p.to_string_lossy().contains(".torn") {
                std::fs::remove_file(p).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        refused += 1;
    }
    println!("on-disk cuts behind the latest checkpoint: {refused} opens refused");
}

#[test]
fn cuts_in_the_uncheckpointed_tail() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, ckpt) = build(dir.path(), false);
    // Lines 151..=200 are not covered by a checkpoint.
    let covered_end = log
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(149)
        .map_or(0, |(i, _)| i + 1);
    let last_start = log[..log.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let (mut torn, mut boundary, mut behind) = (0u64, 0u64, 0u64);
    // Behind the checkpoint every offset is covered by the test above; sample it here.
    for cut in (0..covered_end).step_by(101).chain(covered_end..log.len()) {
        let r = verify_mem(&log[..cut], &ckpt);
        let seq = complete_lines(&log[..cut]) + 1;
        if cut < covered_end {
            assert_eq!(
                r.fault,
                Some(Fault {
                    seq,
                    class: FaultClass::TruncatedBehindCheckpoint
                }),
                "cut at {cut}"
            );
            behind += 1;
        } else if log[cut - 1] == b'\n' {
            // A whole-line cut after the latest checkpoint leaves a valid, shorter chain: this
            // is why checkpoints bound what can be cut unnoticed.
            assert_eq!(r.fault, None, "cut at {cut}");
            boundary += 1;
        } else {
            assert_eq!(
                r.fault,
                Some(Fault {
                    seq,
                    class: FaultClass::TornTail
                }),
                "cut at {cut}"
            );
            torn += 1;
        }
    }
    println!(
        "cuts: {behind} behind a checkpoint reported as truncation, {torn} torn tails reported, \
         {boundary} whole-line cuts in the uncheckpointed tail (valid shorter chain)"
    );

    // On disk: every cut inside the last line recovers to the verified prefix.
    let seg = dir.path().join("audit-000001.log");
    let mut recovered = 0;
    for cut in last_start + 1..log.len() {
        std::fs::write(&seg, &log[..cut]).unwrap_or_else(|e| panic!("{e}"));
        let (l, report) = open_log(dir.path(), Durability::Durable, u64::MAX);
        drop(l);
        let t = report
            .torn
            .unwrap_or_else(|| panic!("cut at {cut}: no torn line"));
        assert_eq!((t.seq, t.len), (200, (cut - last_start) as u64));
        assert_eq!(
            std::fs::read(&t.moved_to).unwrap_or_else(|e| panic!("{e}")),
            &log[last_start..cut]
        );
        std::fs::remove_file(&t.moved_to).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.last_seq, 199);
        let r = verify_dir(dir.path());
        assert_eq!((r.entries, r.fault), (199, None));
        recovered += 1;
    }
    println!("torn last line on disk: {recovered} cuts recovered to the verified prefix");
}
