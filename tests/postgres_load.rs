//! Load test of the example service (`examples/service.rs`): 2 client threads × 5,000 reveals
//! over loopback HTTP/1.1 (keep-alive) per reveal path, the blocking `Guard::reveal` in
//! `spawn_blocking` against `Guard::reveal_async`. Prints p50/p99 latency and requests per
//! second per path, and the lateness of a probe task on the server's runtime that sleeps 1 ms in
//! a loop: a worker held by a database round trip or an fsync would delay it by that much.
//! A control phase calls the blocking `Guard::reveal` straight from tasks on that runtime (what a
//! handler must not do) to show what the probe reports when workers are held. Every request
//! must answer 200 with the value; afterwards the audit chain verifies and holds one entry per
//! reveal.
//!
//! The two paths are served side by side (one server each, on one runtime of 2 workers, one
//! database) and run in alternating rounds, so drift in the machine's load falls on both.
//!
//! Runs only with `FIELDSEAL_LOAD=1` and the cluster of `scripts/pg-env`:
//!
//! ```text
//! source scripts/pg-env
//! FIELDSEAL_LOAD=1 cargo test --features postgres --test postgres_load -- --nocapture
//! ```
#![cfg(feature = "postgres")]

mod common;
mod pg;
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../examples/service.rs"]
mod service;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use fieldseal::builtin::Service;
use fieldseal::postgres::{PgAuditSink, PgCheckpointer, verify_pg};
use fieldseal::*;
use pg::fresh;
use service::RevealPath;

const CLIENTS: usize = 2;
/// Per client and path.
const REQUESTS: usize = 5_000;
const ROUNDS: usize = 5;
const WARM_UP: usize = 100;
const PHONE: &str = "+8613800138000";
const PROBE_PERIOD: Duration = Duration::from_millis(1);
/// Reveals per task in the control phase.
const CONTROL: usize = 500;

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            addr,
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// GET `path` as a support agent; (status, body).
    fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nx-principal: alice\r\nx-roles: support_agent\r\n\
             x-subject: u-42\r\n\r\n",
            self.addr
        );
        self.writer.write_all(req.as_bytes())?;
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("status line"))?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.ok_or_else(|| bad("no content-length"))?];
        self.reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// What one client thread saw in one phase.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// Non-200 answers, wrong bodies and transport errors (after which it reconnects).
    errors: usize,
}

/// `n` reveals of inquiry `id` on one connection.
fn client(addr: SocketAddr, id: i64, n: usize) -> Tally {
    let path = format!("/inquiries/{id}/phone");
    let mut tally = Tally::default();
    let mut conn = None;
    for _ in 0..n {
        let start = Instant::now();
        let answer = match conn.as_mut() {
            Some(c) => Ok(c),
            None => Conn::open(addr).map(|c| conn.insert(c)),
        }
        .and_then(|c| c.get(&path));
        match answer {
            Ok((200, body)) if body == PHONE => tally.latencies.push(start.elapsed()),
            Ok(_) => tally.errors += 1,
            Err(_) => {
                tally.errors += 1;
                conn = None;
            }
        }
    }
    tally
}

/// `CLIENTS` threads of `n` requests each; (merged tallies, wall time).
fn phase(addr: SocketAddr, id: i64, n: usize) -> (Tally, Duration) {
    let start = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| s.spawn(move || client(addr, id, n)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| panic!("client thread")))
            .collect()
    });
    let wall = start.elapsed();
    let mut all = Tally::default();
    for t in tallies {
        all.latencies.extend(t.latencies);
        all.errors += t.errors;
    }
    (all, wall)
}

/// One path's totals over every round.
struct PathRun {
    path: RevealPath,
    addr: SocketAddr,
    id: i64,
    tally: Tally,
    wall: Duration,
    /// Lateness of the probe's wake-ups during this path's phases.
    lateness: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "unknown".into(), |s| s.trim().into())
}

#[test]
fn reveal_paths_under_load() {
    if std::env::var("FIELDSEAL_LOAD").as_deref() != Ok("1") {
        eprintln!(
            "skipping the load test: it runs 20,000 HTTP requests for a minute or more; set \
             FIELDSEAL_LOAD=1 (and source scripts/pg-env) to run it"
        );
        return;
    }
    let Some(db) = fresh("load") else { return };
    let key = || AuditKey::from_bytes(AUDIT_KEY);
    // Signs the chain's head as the checkpoint role (the first on the empty chain).
    let checkpoint = || {
        PgCheckpointer::new(
            &db.checkpoint,
            &key(),
            CheckpointSigningKey::from_bytes(CKPT_KEY),
        )
        .and_then(|c| c.checkpoint())
        .unwrap_or_else(|e| panic!("{e}"))
    };
    checkpoint();
    println!("load at start: {}", loadavg());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    // The probe: sleeps 1 ms in a loop on the server's runtime and records how late it wakes.
    let lateness = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let probe = {
        let lateness = Arc::clone(&lateness);
        rt.spawn(async move {
            loop {
                let start = Instant::now();
                tokio::time::sleep(PROBE_PERIOD).await;
                let late = start.elapsed().saturating_sub(PROBE_PERIOD);
                if let Ok(mut l) = lateness.lock() {
                    l.push(late);
                }
            }
        })
    };

    let mut runs: Vec<PathRun> = [RevealPath::Blocking, RevealPath::Async]
        .into_iter()
        .map(|path| {
            let addr = rt.block_on(async {
                let state = service::setup(service::Config {
                    owner_url: db.owner.clone(),
                    writer_url: db.writer.clone(),
                    audit_key: AuditKey::from_bytes(AUDIT_KEY),
                    consent_key: [5; 32],
                    reveal: path,
                })
                .await
                .unwrap_or_else(|e| panic!("setup: {e}"));
                service::spawn_on_loopback(state)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            });
            // Each server seals with a keyring of its own: one inquiry each.
            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
            let body = r#"{"subject":"u-42","phone":"+86 138 0013 8000","email":"a@example.com"}"#;
            write!(
                s,
                "POST /inquiries HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let mut resp = String::new();
            s.read_to_string(&mut resp)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
            let id = resp
                .rsplit_once("{\"id\":")
                .and_then(|(_, rest)| rest.trim_end_matches('}').parse().ok())
                .unwrap_or_else(|| panic!("no id in {resp}"));
            PathRun {
                path,
                addr,
                id,
                tally: Tally::default(),
                wall: Duration::ZERO,
                lateness: Vec::new(),
            }
        })
        .collect();

    for run in &runs {
        let (warm, _) = phase(run.addr, run.id, WARM_UP);
        assert_eq!(warm.errors, 0, "warm-up of {:?}", run.path);
    }
    for round in 0..ROUNDS {
        for run in &mut runs {
            if let Ok(mut l) = lateness.lock() {
                l.clear();
            }
            let (tally, wall) = phase(run.addr, run.id, REQUESTS / ROUNDS);
            if let Ok(mut l) = lateness.lock() {
                run.lateness.append(&mut l);
            }
            run.tally.latencies.extend(tally.latencies);
            run.tally.errors += tally.errors;
            run.wall += wall;
        }
        eprintln!("round {}/{ROUNDS} done, load {}", round + 1, loadavg());
    }

    // Control: what the probe shows when workers are held. The blocking `Guard::reveal` called
    // straight from tasks on the server's runtime, what the example must not do; no HTTP.
    let control = {
        let sink = PgAuditSink::builder(&db.writer)
            .key(key())
            .connect()
            .unwrap_or_else(|e| panic!("{e}"));
        let guard = Guard::builder()
            .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
            .policy(AllowList::new().allow::<Service>(
                Role::new("agent"),
                FieldKind::Text,
                Action::Reveal,
            ))
            .audit(sink)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let guard = Arc::new(guard);
        let ctx = Context::new().table("t").column("c").row("1");
        let text = Text::parse("x").unwrap_or_else(|e| panic!("{e}"));
        let sealed: Sealed<Text, Service> =
            guard.seal(&text, &ctx).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(mut l) = lateness.lock() {
            l.clear();
        }
        let start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (guard, sealed, ctx) = (Arc::clone(&guard), sealed.clone(), ctx.clone());
                    tokio::spawn(async move {
                        let agent = Accessor::new("control", [Role::new("agent")]);
                        for _ in 0..CONTROL {
                            drop(guard.reveal(&agent, &sealed, &ctx));
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap_or_else(|e| panic!("{e}"));
            }
        });
        let wall = start.elapsed();
        let mut late = lateness
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        late.sort();
        (wall, late)
    };
    probe.abort();

    println!(
        "\n{CLIENTS} clients × {REQUESTS} reveals per path, keep-alive, server runtime of 2 \
         workers\n"
    );
    println!(
        "| path | requests | errors | requests/s | p50 | p99 | max | probe wake-ups | probe late p50 | p99 | max | late > 5 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in &mut runs {
        run.tally.latencies.sort();
        run.lateness.sort();
        let n = run.tally.latencies.len() + run.tally.errors;
        let late = &run.lateness;
        println!(
            "| {} | {n} | {} | {:.0} | {} | {} | {} | {} |",
            match run.path {
                RevealPath::Blocking => "blocking reveal in spawn_blocking",
                RevealPath::Async => "reveal_async",
            },
            run.tally.errors,
            n as f64 / run.wall.as_secs_f64(),
            ms(percentile(&run.tally.latencies, 50)),
            ms(percentile(&run.tally.latencies, 99)),
            ms(run.tally.latencies.last().copied().unwrap_or_default()),
            probe_columns(late),
        );
    }
    let (wall, late) = &control;
    println!(
        "| control: blocking reveal called on the workers (no HTTP) | {} | 0 | {:.0} | - | - | - | {} |",
        CLIENTS * CONTROL,
        (CLIENTS * CONTROL) as f64 / wall.as_secs_f64(),
        probe_columns(late),
    );
    println!("\nload at end: {}", loadavg());
    for run in &runs {
        assert_eq!(run.tally.errors, 0, "{:?}", run.path);
        assert_eq!(run.tally.latencies.len(), CLIENTS * REQUESTS);
    }

    // Every reveal, warm-up included, left one entry in the shared chain, and the chain verifies.
    checkpoint();
    let report = verify_pg(&db.owner, &key(), &ckpt_public()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_valid(), "{:?}", report.fault);
    assert_eq!(
        report.entries,
        (2 * CLIENTS * (WARM_UP + REQUESTS) + CLIENTS * CONTROL) as u64
    );
    drop(rt);
}

/// The probe's table cells for sorted lateness samples: count, p50, p99, max, and how many were
/// more than 5 ms late.
fn probe_columns(late: &[Duration]) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        late.len(),
        ms(percentile(late, 50)),
        ms(percentile(late, 99)),
        ms(late.last().copied().unwrap_or_default()),
        late.iter()
            .filter(|d| **d > Duration::from_millis(5))
            .count(),
    )
}
