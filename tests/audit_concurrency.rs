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
