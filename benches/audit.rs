//! Audit log throughput: buffered appends, and durable group commit at 1, 8 and 64 concurrent
//! appenders against a baseline that writes and `fdatasync`s every event on its own.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fieldseal::internal::testing::with_sample_event;
use fieldseal::{AuditKey, ChainedLog, CheckpointSigningKey, Durability};

/// A log in `dir`; `sync_latency` is added after every `fdatasync` to model a slower disk.
fn open(dir: &std::path::Path, durability: Durability, sync_latency: Duration) -> ChainedLog {
    ChainedLog::builder(dir)
        .key(AuditKey::from_bytes([1; 32]))
        .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
        .durability(durability)
        .max_segment_bytes(256 * 1024 * 1024)
        .simulated_sync_latency(sync_latency)
        .open()
        .map(|(l, _)| l)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `iters` appends spread over `threads` threads (`body(thread, count)` appends `count`
/// events); returns the wall time.
fn concurrent(threads: u64, iters: u64, body: &(dyn Fn(u64, u64) + Sync)) -> Duration {
    let per = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || body(t, per));
        }
    });
    start.elapsed()
}

/// Appends one prepared event `count` times.
fn append_prepared(log: &ChainedLog, thread: u64, count: u64) {
    with_sample_event(thread, Some("subject-1"), |e| {
        for _ in 0..count {
            let _ = black_box(log.append(e));
        }
    });
}

fn buffered(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = open(dir.path(), Durability::Buffered, Duration::ZERO);
    let mut g = c.benchmark_group("audit_buffered");
    g.throughput(Throughput::Elements(1));
    with_sample_event(1, Some("subject-1"), |e| {
        g.bench_function("append_1_thread", |b| b.iter(|| black_box(log.append(e))));
    });
    for threads in [2u64, 8] {
        g.bench_function(format!("append_{threads}_threads"), |b| {
            b.iter_custom(|iters| concurrent(threads, iters, &|t, n| append_prepared(&log, t, n)));
        });
    }
    g.finish();
}

/// Group commit at 1, 8 and 64 appenders against one write + `fdatasync` per event, with
/// `latency` added after every `fdatasync` on both sides (zero: the disk at hand).
fn durable_group(c: &mut Criterion, group: &str, latency: Duration) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    for threads in [1u64, 8, 64] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = open(dir.path(), Durability::Durable, latency);
        g.bench_function(format!("group_commit_{threads}"), |b| {
            b.iter_custom(|iters| concurrent(threads, iters, &|t, n| append_prepared(&log, t, n)));
        });
        drop(log);
        // Baseline: one write and one fdatasync per event, serialized.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("baseline.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        let file = Arc::new(Mutex::new(file));
        let line = [b'x'; 400];
        g.bench_function(format!("fsync_per_event_{threads}"), |b| {
            b.iter_custom(|iters| {
                concurrent(threads, iters, &|_, count| {
                    for _ in 0..count {
                        if let Ok(mut f) = file.lock() {
                            let _ = f.write_all(&line);
                            let _ = f.sync_data();
                            if !latency.is_zero() {
                                std::thread::sleep(latency);
                            }
                        }
                    }
                })
            });
        });
    }
    g.finish();
}

fn durable(c: &mut Criterion) {
    durable_group(c, "audit_durable", Duration::ZERO);
}

/// The same comparison on a modelled 2.5 ms disk, the latency the durability target assumes.
fn durable_slow_disk(c: &mut Criterion) {
    durable_group(c, "audit_durable_2_5ms_disk", Duration::from_micros(2500));
}

criterion_group!(benches, buffered, durable, durable_slow_disk);
criterion_main!(benches);
