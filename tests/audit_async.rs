//! `ChainedLog` from async code: an async reveal's record is acknowledged by a thread of the
//! log's own, so a single-threaded runtime keeps running other tasks while the `fdatasync` is
//! under way; async and blocking appenders share one chain.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use fieldseal::builtin::Service;
use fieldseal::internal::testing::with_sample_event;
use fieldseal::*;

fn durable_log(dir: &std::path::Path, sync_latency: Duration) -> ChainedLog {
    ChainedLog::builder(dir)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(Durability::Durable)
        .simulated_sync_latency(sync_latency)
        .open()
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

fn verified_entries(dir: &std::path::Path) -> u64 {
    let report = verify_log(dir, None, &AuditKey::from_bytes(AUDIT_KEY), &ckpt_public())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_valid(), "{:?}", report.fault);
    report.entries
}

#[test]
fn async_reveals_leave_a_single_runtime_thread_free_during_the_sync() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Every fdatasync takes at least 60 ms more: a reveal that waited for it on the runtime's
    // only thread would stop the ticker for that long.
    let log = Arc::new(durable_log(dir.path(), Duration::from_millis(60)));
    let guard = Arc::new(
        Guard::builder()
            .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
            .policy(allow_all(&["service"]))
            .audit(Arc::clone(&log))
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let ctx = Context::new().table("t").row("1");
    let sealed: Sealed<Email, Service> = guard
        .seal(
            &Email::parse("a.b@example.com").unwrap_or_else(|e| panic!("{e}")),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ticks = Arc::new(AtomicU64::new(0));
    let (reveals, elapsed, ticks_seen) = rt.block_on(async {
        let t = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(2)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        let start = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (g, s, c) = (Arc::clone(&guard), sealed.clone(), ctx.clone());
                tokio::spawn(async move { g.reveal_async(&tester(), &s, &c).await.is_ok() })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += u64::from(t.await.unwrap_or(false));
        }
        let elapsed = start.elapsed();
        ticker.abort();
        (ok, elapsed, ticks.load(Ordering::Relaxed))
    });
    assert_eq!(reveals, 16);
    assert!(
        elapsed >= Duration::from_millis(60),
        "acknowledged after the sync"
    );
    // About elapsed / 2 ms ticks when the thread is free; none while a sync held it.
    assert!(
        ticks_seen >= 10,
        "the runtime thread was blocked: {ticks_seen} ticks in {elapsed:?}"
    );
    assert!(
        log.sync_count() < 16,
        "async records share syncs: {}",
        log.sync_count()
    );
    drop(guard);
    drop(Arc::into_inner(log));
    assert_eq!(verified_entries(dir.path()), 16);
}

#[test]
fn async_and_blocking_appenders_share_one_gapless_chain() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = Arc::new(durable_log(dir.path(), Duration::ZERO));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seqs: Vec<u64> = std::thread::scope(|s| {
        let blocking: Vec<_> = (0..2u64)
            .map(|t| {
                let log = Arc::clone(&log);
                s.spawn(move || {
                    (0..200)
                        .map(|n| {
                            with_sample_event(t * 1000 + n, Some("s"), |e| log.append(e))
                                .unwrap_or_else(|e| panic!("{e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let from_async: Vec<u64> = rt.block_on(async {
            let tasks: Vec<_> = (0..400u64)
                .map(|n| {
                    let f = with_sample_event(5000 + n, None, |e| log.append_async(e));
                    tokio::spawn(f)
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(
                    t.await
                        .unwrap_or_else(|e| panic!("{e}"))
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            }
            out
        });
        let mut all = from_async;
        for h in blocking {
            all.extend(h.join().unwrap_or_else(|_| panic!("appender panicked")));
        }
        all
    });
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=800).collect::<Vec<_>>());
    drop(Arc::into_inner(log));
    assert_eq!(verified_entries(dir.path()), 800);
}
