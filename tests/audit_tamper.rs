//! Tampering with a 200-entry chained log: every single-byte change, line deletion, adjacent
//! swap, duplication, splice from another log, moved checkpoint and replayed old chain is
//! detected at exactly the first affected seq.

mod common;

use common::*;
use fieldseal::*;

const N: u64 = 200;

struct Fixture {
    log: Vec<u8>,
    ckpt: Vec<u8>,
    /// Byte range of each line (newline included).
    lines: Vec<std::ops::Range<usize>>,
}

fn build(dir: &std::path::Path, key: [u8; 32], salt: u64) -> Fixture {
    let (log, _) = ChainedLog::builder(dir)
        .key(AuditKey::from_bytes(key))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(Durability::Buffered)
        .checkpoint_every(u64::MAX, std::time::Duration::from_secs(3600))
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    for chunk in 0..N / 50 {
        append_n(&log, salt + chunk * 50, salt + chunk * 50 + 50);
        log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    }
    drop(log);
    let bytes = std::fs::read(dir.join("audit-000001.log")).unwrap_or_else(|e| panic!("{e}"));
    let ckpt = std::fs::read(dir.join("checkpoints.log")).unwrap_or_else(|e| panic!("{e}"));
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            lines.push(start..i + 1);
            start = i + 1;
        }
    }
    assert_eq!(lines.len() as u64, N);
    Fixture {
        log: bytes,
        ckpt,
        lines,
    }
}

fn fixtures() -> (Fixture, Fixture, Fixture) {
    let a = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let b = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    (
        build(a.path(), AUDIT_KEY, 0),
        // Same events, another audit key: lines to splice in.
        build(b.path(), [0x33; 32], 0),
        // Same keys, other events: an old chain to replay.
        build(c.path(), AUDIT_KEY, 1000),
    )
}

#[derive(Default)]
struct Tally {
    tried: u64,
    detected: u64,
}

impl Tally {
    fn check(&mut self, what: &str, r: &VerifyReport, seq: u64, class: Option<FaultClass>) {
        self.tried += 1;
        let ok = r
            .fault
            .is_some_and(|f| f.seq == seq && class.is_none_or(|c| c == f.class));
        if ok {
            self.detected += 1;
        } else {
            panic!(
                "{what}: expected fault at seq {seq} ({class:?}), got {:?}",
                r.fault
            );
        }
    }
}

#[test]
fn untampered_log_verifies() {
    let (a, _, _) = fixtures();
    let r = verify_mem(&a.log, &a.ckpt);
    assert_eq!((r.entries, r.checkpoints, r.fault), (N, 4, None));
}

#[test]
fn every_single_byte_change_is_detected_at_its_line() {
    let (a, _, _) = fixtures();
    // Two halves on two threads; each position is flipped in one bit.
    let half = a.lines.len() / 2;
    let run = |lines: &[std::ops::Range<usize>], first: usize| {
        let mut t = Tally::default();
        let mut log = a.log.clone();
        for (i, range) in lines.iter().enumerate() {
            for pos in range.clone() {
                let orig = log[pos];
                log[pos] = orig ^ 0x01;
                let seq = (first + i) as u64 + 1;
                t.check("byte change", &verify_mem(&log, &a.ckpt), seq, None);
                log[pos] = orig;
            }
        }
        t
    };
    let (t1, t2) = std::thread::scope(|s| {
        let h = s.spawn(|| run(&a.lines[half..], half));
        let t1 = run(&a.lines[..half], 0);
        (t1, h.join().unwrap_or_else(|_| panic!("worker panicked")))
    });
    let t = Tally {
        tried: t1.tried + t2.tried,
        detected: t1.detected + t2.detected,
    };
    println!(
        "single-byte changes: tried {}, detected {}",
        t.tried, t.detected
    );
    assert_eq!(t.tried, t.detected);
}

#[test]
fn deletions_swaps_duplicates_splices() {
    let (a, b, _) = fixtures();
    let line = |f: &Fixture, i: usize| f.log[f.lines[i].clone()].to_vec();
    let join = |parts: Vec<Vec<u8>>| parts.concat();
    let all: Vec<Vec<u8>> = (0..N as usize).map(|i| line(&a, i)).collect();
    let (mut del, mut swap, mut dup, mut splice) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    for i in 0..N as usize {
        let seq = i as u64 + 1;
        let mut v = all.clone();
        v.remove(i);
        let class = if seq == N {
            FaultClass::TruncatedBehindCheckpoint
        } else {
            FaultClass::Deleted
        };
        del.check("deletion", &verify_mem(&join(v), &a.ckpt), seq, Some(class));

        if i + 1 < N as usize {
            let mut v = all.clone();
            v.swap(i, i + 1);
            swap.check(
                "swap",
                &verify_mem(&join(v), &a.ckpt),
                seq,
                Some(FaultClass::Reordered),
            );
        }

        let mut v = all.clone();
        v.insert(i + 1, all[i].clone());
        dup.check(
            "duplicate",
            &verify_mem(&join(v), &a.ckpt),
            seq + 1,
            Some(FaultClass::Duplicated),
        );

        let mut v = all.clone();
        v[i] = line(&b, i);
        // At seq 1 both chains start from the same zero MAC, so a splice looks like an edit.
        let class = (seq > 1).then_some(FaultClass::Spliced);
        splice.check("splice", &verify_mem(&join(v), &a.ckpt), seq, class);
    }
    for (name, t) in [
        ("line deletions", &del),
        ("adjacent swaps", &swap),
        ("duplicated lines", &dup),
        ("spliced lines", &splice),
    ] {
        println!("{name}: tried {}, detected {}", t.tried, t.detected);
        assert_eq!(t.tried, t.detected);
    }
}

#[test]
fn moved_checkpoints_and_replayed_chains() {
    let (a, _, c) = fixtures();
    let mut t = Tally::default();
    let mut ck: Vec<Vec<u8>> = a
        .ckpt
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    // The genesis checkpoint (seq 0) stays first; the four after it are moved about.
    assert_eq!(ck.len(), 5);
    let genesis = ck.remove(0);
    let with_genesis = |v: &[Vec<u8>]| [std::slice::from_ref(&genesis), v].concat().concat();
    // A checkpoint moved to another place in the checkpoint file: the first one out of order.
    for from in 0..4 {
        for to in 0..4 {
            if from == to {
                continue;
            }
            let mut v = ck.clone();
            let moved = v.remove(from);
            v.insert(to, moved);
            let seqs = [50u64, 100, 150, 200];
            let order: Vec<u64> = v
                .iter()
                .map(|l| seqs[ck.iter().position(|x| x == l).unwrap_or(0)])
                .collect();
            let first_bad = order.windows(2).find(|w| w[1] <= w[0]).map_or(0, |w| w[1]);
            t.check(
                "moved checkpoint",
                &verify_mem(&a.log, &with_genesis(&v)),
                first_bad,
                Some(FaultClass::Reordered),
            );
            // And the log edited after it: the checkpoint out of order is still the first
            // fault, even when a checkpoint before it lies beyond the edit.
            let edited = first_bad + 10;
            let mut log = a.log.clone();
            log[a.lines[edited as usize - 1].start + 2] ^= 0x01;
            t.check(
                "moved checkpoint, log edited after it",
                &verify_mem(&log, &with_genesis(&v)),
                first_bad,
                Some(FaultClass::Reordered),
            );
        }
    }
    // A checkpoint re-pointed at another seq (its signature no longer matches): reported at
    // the first entry no longer covered by a trusted checkpoint.
    for (k, line) in ck.iter().enumerate() {
        let seq = 50 * (k as u64 + 1);
        let text = String::from_utf8_lossy(line)
            .replace(&format!("\"seq\":{seq},"), &format!("\"seq\":{},", seq - 1));
        let mut v = ck.clone();
        v[k] = text.into_bytes();
        t.check(
            "re-pointed checkpoint",
            &verify_mem(&a.log, &with_genesis(&v)),
            seq - 49,
            Some(FaultClass::BadCheckpointSignature),
        );
    }
    // Rolled back to an older copy of the log: truncation behind the latest checkpoint.
    for keep in [0usize, 1, 49, 50, 120, 199] {
        let end = if keep == 0 { 0 } else { a.lines[keep - 1].end };
        t.check(
            "rolled-back log",
            &verify_mem(&a.log[..end], &a.ckpt),
            keep as u64 + 1,
            Some(FaultClass::TruncatedBehindCheckpoint),
        );
    }
    // Another chain under the same keys replayed in place of this one.
    t.check(
        "replayed chain",
        &verify_mem(&c.log, &a.ckpt),
        50,
        Some(FaultClass::CheckpointMismatch),
    );
    // Its tail spliced onto this log's head at a segment boundary.
    let mut mixed = a.log[..a.lines[99].end].to_vec();
    mixed.extend_from_slice(&c.log[c.lines[100].start..]);
    t.check(
        "replayed tail",
        &verify_mem(&mixed, &a.ckpt),
        101,
        Some(FaultClass::Spliced),
    );
    println!(
        "checkpoint moves and replays: tried {}, detected {}",
        t.tried, t.detected
    );
    assert_eq!(t.tried, t.detected);
}
