//! Concurrent appenders produce one unbroken chain with no gaps in seq.

mod common;

use std::sync::Arc;

use common::*;
use fieldseal::*;

fn run(
    durability: Durability,
    threads: u64,
    per_thread: u64,
) -> (u64, ChainedLog, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = open_log(dir.path(), durability, 1000);
    let log = Arc::new(log);
    let seqs: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let log = Arc::clone(&log);
                s.spawn(move || {
                    (0..per_thread)
                        .map(|n| {
                            fieldseal::internal::testing::with_sample_event(
                                t * per_thread + n,
                                Some("s"),
                                |e| log.append(e).unwrap_or_else(|e| panic!("{e}")),
                            )
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("appender panicked")))
            .collect()
    });
    let mut all: Vec<u64> = seqs.into_iter().flatten().collect();
    all.sort_unstable();
    let n = threads * per_thread;
    assert_eq!(all, (1..=n).collect::<Vec<_>>(), "seq has gaps or repeats");
    let log = Arc::try_unwrap(log).unwrap_or_else(|_| panic!("log still shared"));
    (n, log, dir)
}

#[test]
fn eight_threads_ten_thousand_appends_each() {
    let (n, log, dir) = run(Durability::Buffered, 8, 10_000);
    log.sync().unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (n, None));
    println!(
        "concurrency: 8 threads x 10,000 appends -> {} entries, one unbroken chain",
        r.entries
    );
}

#[test]
fn durable_group_commit_shares_fsyncs() {
    let (n, log, dir) = run(Durability::Durable, 8, 100);
    let syncs = log.sync_count();
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (n, None));
    assert!(syncs < n, "{syncs} syncs for {n} entries");
    println!("group commit: 8 threads x 100 durable appends, {syncs} fdatasyncs for {n} entries");
}

/// On a modelled 2.5 ms disk, one fdatasync must serve nearly every waiting appender: 64
/// appenders x 10 durable appends must need far fewer syncs than entries.
#[test]
fn group_commit_shares_fsyncs_on_a_slow_disk() {
    const THREADS: u64 = 64;
    const EACH: u64 = 10;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(Durability::Durable)
        .simulated_sync_latency(std::time::Duration::from_micros(2500))
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = &log;
            s.spawn(move || {
                for n in 0..EACH {
                    fieldseal::internal::testing::with_sample_event(t * EACH + n, None, |e| {
                        log.append(e).unwrap_or_else(|e| panic!("{e}"))
                    });
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let entries = THREADS * EACH;
    let syncs = log.sync_count();
    // Per-event fsync would need `entries` syncs (640 x 2.5 ms = 1.6 s).
    println!(
        "group commit on a 2.5 ms disk: {THREADS} appenders, {entries} durable entries, {syncs} fdatasyncs ({:.1} entries per sync), {elapsed:?}",
        entries as f64 / syncs as f64
    );
    assert!(syncs * 8 <= entries, "{syncs} syncs for {entries} entries");
    drop(log);
    let r = verify_dir(dir.path());
    assert_eq!((r.entries, r.fault), (entries, None));
}
