//! A full `Guard::reveal` (decision, audit record, decryption) of a 32-byte field with three
//! audit sinks: `MemorySink`, `ChainedLog` (a file, `Durability::Durable`: group commit, one
//! `fdatasync` per batch) and `PgAuditSink` (PostgreSQL, group commit: one transaction per batch
//! under a lock of the chain head row), each with 1 and with 8 concurrent caller threads; and
//! the PostgreSQL sink once more from async code: 1 and 8 tasks calling `Guard::reveal_async` on
//! a tokio runtime of 2 workers.
//!
//! A hand-written harness: the configurations run in paired rounds (round r: every sink at 1
//! caller, then every sink at 8) so that drift in the load of a shared machine falls on every
//! sink alike; the table gives the median over the rounds and the ratio to the
//! memory sink at the same caller count.
//!
//! ```text
//! source scripts/pg-env && cargo bench --features postgres --bench sinks
//! ```
//!
//! Without `FIELDSEAL_PG_URL` (the throwaway cluster of `scripts/pg-env`) the PostgreSQL rows are
//! skipped with a message. `FIELDSEAL_BENCH_ROUNDS` (default 7) and `FIELDSEAL_BENCH_MS` (time
//! per configuration and round, default 1000) change the length of the run.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fieldseal::builtin::Service;
use fieldseal::postgres::tokio_postgres::{self, NoTls};
use fieldseal::postgres::{PgAuditSink, Roles, grant, migrate};
use fieldseal::*;

const CALLERS: [usize; 2] = [1, 8];

/// One sink under test: the guard writing to it, and what to read or reset around a run.
struct Subject {
    name: &'static str,
    guard: Arc<Guard>,
    memory: Option<Arc<MemorySink>>,
    pg: Option<Arc<PgAuditSink>>,
    /// Callers are tasks on this runtime calling `Guard::reveal_async` instead of threads
    /// calling `Guard::reveal`.
    tasks: Option<tokio::runtime::Runtime>,
}

fn guard(sink: impl AuditSink + 'static) -> Arc<Guard> {
    let guard = Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes([3; 32])).expect("static key"))
        .policy(AllowList::new().allow::<Service>(
            Role::new("agent"),
            FieldKind::Text,
            Action::Reveal,
        ))
        .audit(sink)
        .build()
        .expect("complete builder");
    Arc::new(guard)
}

fn ctx() -> Context {
    Context::new()
        .table("users")
        .column("note")
        .row("12345")
        .subject(&SubjectId::new("subject-1"))
}

/// A fresh database on the cluster of `scripts/pg-env`, migrated and granted; the sink writes
/// to it as the writer role. `None` (after a message) without the cluster's environment.
fn pg_sink() -> Option<(Arc<PgAuditSink>, String, String)> {
    let Ok(owner) = std::env::var("FIELDSEAL_PG_URL") else {
        println!(
            "PostgreSQL skipped: FIELDSEAL_PG_URL is not set (source scripts/pg-env to run it)"
        );
        return None;
    };
    let writer = std::env::var("FIELDSEAL_PG_WRITER_URL").expect("scripts/pg-env sets both");
    let with_db = |url: &str, db: &str| {
        let (base, _) = url.rsplit_once('/').expect("a URL with a database");
        format!("{base}/{db}")
    };
    let name = format!(
        "bench_sinks_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    run_sql(&owner, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{e}"));
    let owner_db = with_db(&owner, &name);
    migrate(&owner_db).expect("migrate");
    grant(
        &owner_db,
        Roles::new("fieldseal_writer", "fieldseal_checkpoint"),
    )
    .expect("grant");
    let sink = PgAuditSink::builder(&with_db(&writer, &name))
        .key(AuditKey::from_bytes([1; 32]))
        .connect()
        .expect("connect the sink");
    Some((Arc::new(sink), owner, name))
}

/// Runs one statement on a connection of its own (outside any runtime of the library's).
fn run_sql(url: &str, sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        let conn = tokio::spawn(conn);
        client.batch_execute(sql).await?;
        drop(client);
        let _ = conn.await;
        Ok::<(), tokio_postgres::Error>(())
    })
    .map_err(|e| format!("{sql}: {e}"))
}

/// Reveals for `time` on `callers` threads (or tasks); (reveals, wall time).
fn run(s: &Subject, sealed: &Sealed<Text, Service>, callers: usize, time: Duration) -> (u64, f64) {
    let agent = Accessor::new("bench", [Role::new("agent")]);
    let ctx = ctx();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    if let Some(rt) = &s.tasks {
        let stop = Arc::new(AtomicBool::new(false));
        let done = rt.block_on(async {
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let (guard, stop) = (Arc::clone(&s.guard), Arc::clone(&stop));
                    let (agent, sealed, ctx) = (agent.clone(), sealed.clone(), ctx.clone());
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let v = guard.reveal_async(&agent, &sealed, &ctx).await;
                            drop(black_box(v.expect("reveal")));
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            tokio::time::sleep(time).await;
            stop.store(true, Ordering::Relaxed);
            let mut n = 0;
            for t in tasks {
                n += t.await.expect("caller task");
            }
            n
        });
        return (done, start.elapsed().as_secs_f64());
    }
    std::thread::scope(|scope| {
        for _ in 0..callers {
            scope.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    drop(black_box(
                        s.guard.reveal(&agent, sealed, &ctx).expect("reveal"),
                    ));
                    n += 1;
                    // Bounds the memory sink's vector (about a million records a second).
                    if n.is_multiple_of(65_536)
                        && let Some(m) = &s.memory
                    {
                        m.clear();
                    }
                }
                done.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
    });
    let wall = start.elapsed().as_secs_f64();
    if let Some(m) = &s.memory {
        m.clear();
    }
    (done.load(Ordering::Relaxed), wall)
}

/// One configuration's result in one round.
#[derive(Clone, Copy)]
struct Sample {
    /// Mean time a caller waits for one reveal (µs).
    per_reveal_us: f64,
    reveals_per_s: f64,
    /// PostgreSQL only: entries per transaction in this run.
    per_commit: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "unknown".into(), |s| s.trim().into())
}

fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` passes `--test`: one short round, to show the bench still runs.
    let smoke = std::env::args().any(|a| a == "--test");
    let rounds = if smoke {
        1
    } else {
        env_or("FIELDSEAL_BENCH_ROUNDS", 7).max(1)
    };
    let time = Duration::from_millis(if smoke {
        50
    } else {
        env_or("FIELDSEAL_BENCH_MS", 1000)
    });
    println!(
        "sinks: reveal of a 32-byte text, {rounds} rounds of {} ms per configuration",
        time.as_millis()
    );
    println!(
        "load at start: {} ({} CPUs)",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let memory = Arc::new(MemorySink::new());
    let dir = tempfile::tempdir().expect("temporary directory");
    let (log, _) = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes([1; 32]))
        .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
        .durability(Durability::Durable)
        .max_segment_bytes(256 * 1024 * 1024)
        .open()
        .expect("open the log");
    let mut subjects = vec![
        Subject {
            name: "memory",
            guard: guard(Arc::clone(&memory)),
            memory: Some(memory),
            pg: None,
            tasks: None,
        },
        Subject {
            name: "file (ChainedLog, durable)",
            guard: guard(log),
            memory: None,
            pg: None,
            tasks: None,
        },
    ];
    let pg = pg_sink();
    if let Some((sink, _, _)) = &pg {
        subjects.push(Subject {
            name: "PostgreSQL (PgAuditSink)",
            guard: guard(Arc::clone(sink)),
            memory: None,
            pg: Some(Arc::clone(sink)),
            tasks: None,
        });
        // The same sink from async code: tasks on a runtime of 2 workers (as many as the
        // machine has cores), calling `reveal_async`.
        subjects.push(Subject {
            name: "PostgreSQL, reveal_async (tasks, 2 workers)",
            guard: guard(Arc::clone(sink)),
            memory: None,
            pg: Some(Arc::clone(sink)),
            tasks: Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime"),
            ),
        });
    }
    // The same envelope opens under every guard: one keyring, one context.
    let sealed: Sealed<Text, Service> = subjects[0]
        .guard
        .seal(&Text::parse(&"x".repeat(32)).expect("valid text"), &ctx())
        .expect("seal");

    // Warm-up: connections, files, decision caches.
    for s in &subjects {
        for callers in CALLERS {
            run(s, &sealed, callers, Duration::from_millis(100));
        }
    }
    // samples[subject][callers index][round]
    let mut samples = vec![vec![Vec::<Sample>::new(); CALLERS.len()]; subjects.len()];
    for round in 0..rounds {
        for (ci, callers) in CALLERS.into_iter().enumerate() {
            for (si, s) in subjects.iter().enumerate() {
                let before = s.pg.as_ref().map(|p| (p.commits(), p.entries()));
                let (n, wall) = run(s, &sealed, callers, time);
                let per_commit = s.pg.as_ref().zip(before).map(|(p, (c0, e0))| {
                    (p.entries() - e0) as f64 / (p.commits() - c0).max(1) as f64
                });
                samples[si][ci].push(Sample {
                    per_reveal_us: wall * 1e6 * callers as f64 / n.max(1) as f64,
                    reveals_per_s: n as f64 / wall,
                    per_commit,
                });
            }
        }
        eprintln!("round {}/{rounds} done, load {}", round + 1, loadavg());
    }

    println!();
    println!(
        "| sink | callers | per reveal (median) | reveals/s (median) | x memory | events per commit |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (ci, callers) in CALLERS.into_iter().enumerate() {
        let base = median(samples[0][ci].iter().map(|x| x.per_reveal_us).collect());
        for (si, s) in subjects.iter().enumerate() {
            let runs = &samples[si][ci];
            let per = median(runs.iter().map(|x| x.per_reveal_us).collect());
            let rate = median(runs.iter().map(|x| x.reveals_per_s).collect());
            let commit = if s.pg.is_some() {
                format!(
                    "{:.2}",
                    median(runs.iter().filter_map(|x| x.per_commit).collect())
                )
            } else {
                "-".to_owned()
            };
            let ratio = per / base;
            let ratio = if ratio < 10.0 {
                format!("{ratio:.1}")
            } else {
                format!("{ratio:.0}")
            };
            println!(
                "| {} | {callers} | {} | {rate:.0} | {ratio}x | {commit} |",
                s.name,
                human(per)
            );
        }
    }
    println!();
    println!("load at end: {}", loadavg());

    drop(subjects);
    if let Some((sink, owner, name)) = pg {
        drop(sink);
        // The sink's connection closes as its thread ends; give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        if let Err(e) = run_sql(&owner, &format!("DROP DATABASE IF EXISTS {name}")) {
            println!("database {name} left behind ({e})");
        }
    }
}

/// Microseconds with a unit that suits them.
fn human(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.2} µs")
    }
}
