//! Crash safety of group commit, durable and buffered: a child process appends from 4 threads
//! and prints each acknowledged seq; it is SIGKILLed at random moments. After every kill, every
//! acknowledged entry must be present and the log must verify after recovery. (A buffered
//! acknowledgement promises exactly this: the line is in the kernel, so it survives the process.)
//!
//! The child is this test binary itself, re-run with `FIELDSEAL_CRASH_CHILD` set. Kills: 200 per
//! mode by default, `FIELDSEAL_CRASH_KILLS=1000` for the long run.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldseal::*;

const CHILD_ENV: &str = "FIELDSEAL_CRASH_CHILD";
/// The child's durability: `buffered` or (anything else) durable.
const MODE_ENV: &str = "FIELDSEAL_CRASH_MODE";

/// The child: runs only when re-executed by `survives_sigkill`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let durability = match std::env::var(MODE_ENV).as_deref() {
        Ok("buffered") => Durability::Buffered,
        _ => Durability::Durable,
    };
    let (log, _) = ChainedLog::builder(&dir)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(durability)
        .checkpoint_every(16, Duration::from_millis(20))
        .max_segment_bytes(32 * 1024)
        .open()
        .unwrap_or_else(|e| panic!("child open: {e}"));
    let log = Arc::new(log);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for n in 0.. {
                    let seq = fieldseal::internal::testing::with_sample_event(
                        t * 1_000_000 + n,
                        Some("crash-subject"),
                        |e| log.append(e),
                    )
                    .unwrap_or_else(|e| panic!("child append: {e}"));
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "ack {seq}");
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn durable_log_survives_sigkill() {
    survives_sigkill(Durability::Durable);
}

#[test]
fn buffered_log_survives_sigkill() {
    survives_sigkill(Durability::Buffered);
}

fn survives_sigkill(durability: Durability) {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let buffered = durability == Durability::Buffered;
    let kills: u64 = std::env::var("FIELDSEAL_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut rng = XorShift(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1,
    );
    let (mut acked_total, mut torn_total, mut max_acked) = (0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    for round in 0..kills {
        // A buffered child appends tens of times faster: a fresh log every 10 kills keeps the
        // verification after each kill from reading an ever longer log.
        if buffered && round > 0 && round % 10 == 0 {
            dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        }
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(MODE_ENV, if buffered { "buffered" } else { "durable" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line
                    .strip_prefix("ack ")
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    acked.push(seq);
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_micros(2_000 + rng.next() % 40_000));
        child.kill().unwrap_or_else(|e| panic!("kill: {e}"));
        let _ = child.wait();
        let acked = reader.join().unwrap_or_else(|_| panic!("reader panicked"));

        let (log, report) = open_log(dir.path(), durability, u64::MAX);
        drop(log);
        if report.torn.is_some() {
            torn_total += 1;
        }
        let r = verify_dir(dir.path());
        assert_eq!(r.fault, None, "round {round}: {report:?}");
        let last = r.entries;
        for &s in &acked {
            assert!(
                s <= last,
                "round {round}: acknowledged seq {s} lost (log ends at {last})"
            );
        }
        max_acked = max_acked.max(acked.iter().copied().max().unwrap_or(0));
        acked_total += acked.len() as u64;
    }
    println!(
        "crash test ({durability:?}): {kills} SIGKILLs survived, {acked_total} acknowledged entries all present, \
         {torn_total} torn tails recovered, highest acknowledged seq {max_acked}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
