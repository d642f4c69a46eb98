//! The tables, one function each.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use fieldseal::builtin::Service;
use fieldseal::internal::testing::with_sample_event;
use fieldseal::*;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Target;
use crate::alloc;
use crate::measure::{Contender, Plan, Samples, Summary, human_ns, human_rate, paired, ratio_cell};
use crate::setup::{self, Raw, ctx};

const SIZES: [usize; 2] = [32, 4096];

fn threads_label(n: usize) -> String {
    if n == 1 {
        "1 thread".to_owned()
    } else {
        format!("{n} threads")
    }
}

fn size_label(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Runs `op` `k` times on each of `threads` threads, started together; the wall time.
fn on_threads(threads: usize, k: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..k {
                    op();
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins the threads when this closure returns.
        start
    })
    .elapsed()
}

/// Raw contenders for one (size, associated-data length): encrypt or decrypt under both
/// aes-gcm versions. Returns their names.
fn raw_contenders<'a>(
    out: &mut Vec<Contender<'a>>,
    encrypt: bool,
    size: usize,
    aad_len: usize,
) -> Vec<String> {
    let mut names = Vec::new();
    for version in Raw::VERSIONS {
        let raw = Raw::new(version);
        let msg = vec![b'x'; size];
        let aad = vec![7u8; aad_len];
        let name = format!(
            "{version} {}, {}, aad {aad_len} B",
            if encrypt { "encrypt" } else { "decrypt" },
            size_label(size)
        );
        names.push(name.clone());
        out.push(if encrypt {
            Contender::each(name, move || drop(black_box(raw.encrypt(&msg, &aad))))
        } else {
            let ct = raw.prepare(&msg, &aad);
            Contender::each(name, move || drop(black_box(raw.decrypt(&ct, &aad))))
        });
    }
    names
}

fn refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

fn table_header(cols: &str) {
    let n = cols.matches('|').count() - 1;
    println!("{cols}");
    println!("|{}", "---|".repeat(n));
}

/// Prints raw rows (median ns/op only) of a sample set.
fn raw_rows(s: &Samples, names: &[String]) {
    for n in names {
        let t = s.time(n);
        println!("| {n} | {} | | |", human_ns(t.median));
    }
}

/// Columns of a table whose contenders are compared with raw AES-GCM.
const RATIO_COLUMNS: &str = "| contender | ns/op (median) | / fastest raw (median, min–max) | / faster aes-gcm 0.11 API (median, min–max) |";

/// Prints `name`'s row with its ratios to the fastest raw contender of `raw` and to the faster
/// of the aes-gcm 0.11 ones (the first [`Raw::V011_COUNT`]), each per round; returns both.
fn ratio_row(s: &Samples, name: &str, raw: &[String]) -> (Summary, Summary) {
    let fastest = s.ratio(name, &s.fastest_of(&refs(raw)));
    let v011 = s.ratio(name, &s.fastest_of(&refs(&raw[..Raw::V011_COUNT])));
    println!(
        "| {name} | {} | {} | {} |",
        human_ns(s.time(name).median),
        ratio_cell(fastest),
        ratio_cell(v011)
    );
    (fastest, v011)
}

pub fn seal(plan: Plan, targets: &mut Vec<Target>) {
    println!("## 1. Seal / raw encrypt");
    println!();
    let guard = setup::allow_list_guard(NullSink);
    let mut contenders = Vec::new();
    let mut raws = Vec::new();
    for size in SIZES {
        let sealed = setup::seal_service(&guard, size);
        raws.push(raw_contenders(
            &mut contenders,
            true,
            size,
            setup::aad_len(&sealed, size),
        ));
        let (text, ctx, guard) = (setup::text(size), ctx(), &guard);
        contenders.push(Contender::each(
            format!("fieldseal seal, {}", size_label(size)),
            move || {
                drop(black_box(
                    guard.seal::<Text, Service>(&text, &ctx).expect("seal"),
                ))
            },
        ));
    }
    let s = paired(plan, &mut contenders);
    table_header(RATIO_COLUMNS);
    for (size, raw) in SIZES.into_iter().zip(&raws) {
        raw_rows(&s, raw);
        let name = format!("fieldseal seal, {}", size_label(size));
        let (r, v011) = ratio_row(&s, &name, raw);
        targets.push(Target {
            path: format!("seal, {}", size_label(size)),
            target: "≤ 1.25× raw encrypt",
            measured: ratio_cell(r),
            vs_011: ratio_cell(v011),
            met: r.median <= 1.25,
        });
    }
    println!();
}

pub fn reveal(plan: Plan, targets: &mut Vec<Target>) {
    println!("## 2–3. Reveal / raw decrypt");
    println!();
    println!(
        "AllowList: a one-line allow list. ManifestPolicy: the reference manifest (marketing may \
         reveal text), purpose `marketing` (consent-based: the subject's consent is checked on \
         every reveal, with retention and residency), decision cache warm (one accessor) or cold \
         (each reveal by an accessor with a role set never seen before: `marketing` plus a fresh \
         unknown role, so both cache levels miss and are filled). Both with a `MemorySink` \
         (cleared between batches, outside the timed part)."
    );
    println!();
    let allow_sink = Arc::new(MemorySink::new());
    let allow = setup::allow_list_guard(Arc::clone(&allow_sink));
    let manifest_sink = Arc::new(MemorySink::new());
    let manifest = setup::manifest_guard(Arc::clone(&manifest_sink));
    let fresh = Cell::new(0u64);
    let mut contenders = Vec::new();
    let mut raws = Vec::new();
    for size in SIZES {
        let svc = setup::seal_service(&allow, size);
        let mkt = setup::seal_marketing(&manifest, size);
        let svc_raw = raw_contenders(&mut contenders, false, size, setup::aad_len(&svc, size));
        let mkt_raw = raw_contenders(&mut contenders, false, size, setup::aad_len(&mkt, size));
        raws.push((svc_raw, mkt_raw));
        let input = "x".repeat(size);
        contenders.push(Contender::each(
            format!("Text::parse alone (not a reveal), {}", size_label(size)),
            move || drop(black_box(Text::parse(black_box(&input)).expect("valid"))),
        ));
        let (ctx, agent, allow, allow_sink) = (ctx(), setup::agent(), &allow, &allow_sink);
        contenders.push(Contender::new(
            format!("AllowList + memory sink, {}", size_label(size)),
            move |k| {
                allow_sink.clear();
                let start = Instant::now();
                for _ in 0..k {
                    drop(black_box(allow.reveal(&agent, &svc, &ctx).expect("reveal")));
                }
                start.elapsed()
            },
        ));
        let (ctx, marketer, manifest, manifest_sink) =
            (setup::ctx(), setup::marketer(), &manifest, &manifest_sink);
        let mkt2 = mkt.clone();
        contenders.push(Contender::new(
            format!(
                "ManifestPolicy + consent + memory sink, warm cache, {}",
                size_label(size)
            ),
            move |k| {
                manifest_sink.clear();
                let start = Instant::now();
                for _ in 0..k {
                    drop(black_box(
                        manifest.reveal(&marketer, &mkt2, &ctx).expect("reveal"),
                    ));
                }
                start.elapsed()
            },
        ));
        let (ctx, fresh) = (setup::ctx(), &fresh);
        contenders.push(Contender::new(
            format!(
                "ManifestPolicy + consent + memory sink, cold cache, {}",
                size_label(size)
            ),
            move |k| {
                manifest_sink.clear();
                let accessors: Vec<Accessor> = (0..k)
                    .map(|_| {
                        fresh.set(fresh.get() + 1);
                        Accessor::new(
                            "bench",
                            [
                                Role::new("marketing"),
                                Role::new(&format!("cold{}", fresh.get())),
                            ],
                        )
                    })
                    .collect();
                let start = Instant::now();
                for a in &accessors {
                    drop(black_box(manifest.reveal(a, &mkt, &ctx).expect("reveal")));
                }
                let t = start.elapsed();
                drop(accessors);
                t
            },
        ));
    }
    let s = paired(plan, &mut contenders);
    table_header(RATIO_COLUMNS);
    for (size, (svc_raw, mkt_raw)) in SIZES.into_iter().zip(&raws) {
        raw_rows(&s, svc_raw);
        raw_rows(&s, mkt_raw);
        let l = size_label(size);
        ratio_row(
            &s,
            &format!("Text::parse alone (not a reveal), {l}"),
            svc_raw,
        );
        for (name, raw, target, limit) in [
            (
                format!("AllowList + memory sink, {l}"),
                svc_raw,
                Some("≤ 2.0× raw decrypt"),
                2.0,
            ),
            (
                format!("ManifestPolicy + consent + memory sink, warm cache, {l}"),
                mkt_raw,
                Some("≤ 2.5× raw decrypt"),
                2.5,
            ),
            (
                format!("ManifestPolicy + consent + memory sink, cold cache, {l}"),
                mkt_raw,
                None,
                0.0,
            ),
        ] {
            let (r, v011) = ratio_row(&s, &name, raw);
            if let Some(target) = target {
                targets.push(Target {
                    path: format!("reveal, {}", name.replace(", warm cache", " (warm cache)")),
                    target,
                    measured: ratio_cell(r),
                    vs_011: ratio_cell(v011),
                    met: r.median <= limit,
                });
            }
        }
    }
    println!();
}

/// A guard writing to a buffered chained log in a temporary directory, replaced by a fresh
/// one (outside the timed part) before its log grows past a few million lines.
struct LoggedGuard {
    guard: Guard,
    log: Arc<ChainedLog>,
    _dir: tempfile::TempDir,
}

impl LoggedGuard {
    fn open() -> Self {
        let (log, dir) = setup::chained_log(Durability::Buffered);
        Self {
            guard: setup::manifest_guard(Arc::clone(&log)),
            log,
            _dir: dir,
        }
    }

    fn refresh(slot: &mut Self) {
        if slot.log.last_seq() > 2_000_000 {
            *slot = Self::open();
        }
    }
}

pub fn chained_reveal(plan: Plan, targets: &mut Vec<Target>) {
    println!("## 4. Reveal with ManifestPolicy + ChainedLog (buffered) / raw decrypt");
    println!();
    println!(
        "The ManifestPolicy set-up of table 2–3 (warm cache), audit records MAC-chained into a \
         `ChainedLog` with `Durability::Buffered` in a temporary directory, and the same \
         reveals with no log (`NullSink`). At 2 threads the \
         ns/op column is wall time divided by reveals (the inverse of throughput); the raw \
         decrypt on 2 threads shows what the machine gives two threads at the time."
    );
    println!();
    let size = 32;
    let mut contenders = Vec::new();
    let probe = setup::manifest_guard(NullSink);
    let sealed = setup::seal_marketing(&probe, size);
    let aad_len = setup::aad_len(&sealed, size);
    let raw = raw_contenders(&mut contenders, false, size, aad_len);
    {
        let r = Raw::new("aes-gcm 0.11");
        let (msg, aad) = (vec![b'x'; size], vec![7u8; aad_len]);
        let ct = r.prepare(&msg, &aad);
        contenders.push(
            Contender::new("aes-gcm 0.11 decrypt, 2 threads", move |k| {
                on_threads(2, k, &|| drop(black_box(r.decrypt(&ct, &aad))))
            })
            .ops(2),
        );
    }
    for threads in [1usize, 2] {
        let mut slot = LoggedGuard::open();
        let (sealed, ctx, marketer) = (sealed.clone(), ctx(), setup::marketer());
        contenders.push(
            Contender::new(
                format!(
                    "ManifestPolicy + ChainedLog buffered, {}",
                    threads_label(threads)
                ),
                move |k| {
                    LoggedGuard::refresh(&mut slot);
                    let guard = &slot.guard;
                    on_threads(threads, k, &|| {
                        drop(black_box(
                            guard.reveal(&marketer, &sealed, &ctx).expect("reveal"),
                        ))
                    })
                },
            )
            .ops(threads as u64),
        );
    }
    // The same reveals with no log (`NullSink`): how the policy, consent and decryption part
    // scales on its own.
    let unlogged = std::sync::Arc::new(setup::manifest_guard(NullSink));
    for threads in [1usize, 2] {
        let (guard, sealed, ctx, marketer) = (
            std::sync::Arc::clone(&unlogged),
            sealed.clone(),
            ctx(),
            setup::marketer(),
        );
        contenders.push(
            Contender::new(
                format!("ManifestPolicy + NullSink, {}", threads_label(threads)),
                move |k| {
                    on_threads(threads, k, &|| {
                        drop(black_box(
                            guard.reveal(&marketer, &sealed, &ctx).expect("reveal"),
                        ))
                    })
                },
            )
            .ops(threads as u64),
        );
    }
    let s = paired(plan, &mut contenders);
    let base = s.fastest_of(&refs(&raw));
    table_header(RATIO_COLUMNS);
    raw_rows(&s, &raw);
    ratio_row(&s, "aes-gcm 0.11 decrypt, 2 threads", &raw);
    let (unlogged_one, unlogged_two) = (
        "ManifestPolicy + NullSink, 1 thread",
        "ManifestPolicy + NullSink, 2 threads",
    );
    ratio_row(&s, unlogged_one, &raw);
    ratio_row(&s, unlogged_two, &raw);
    let one = "ManifestPolicy + ChainedLog buffered, 1 thread";
    let two = "ManifestPolicy + ChainedLog buffered, 2 threads";
    let (r1, v011) = ratio_row(&s, one, &raw);
    let t1 = s.time(one);
    ratio_row(&s, two, &raw);
    // Throughput at 2 threads over throughput at 1, per round.
    let scaling = s.speedup(two, s.ns_of(one));
    println!();
    println!(
        "Throughput 2 threads / 1 thread (per round): {}; raw decrypt on 2 threads / fastest raw \
         decrypt on 1: {}.",
        ratio_cell(scaling),
        ratio_cell(s.speedup("aes-gcm 0.11 decrypt, 2 threads", &base))
    );
    println!();
    println!(
        "Without the log (`NullSink`), throughput 2 threads / 1 thread (per round): {}.",
        ratio_cell(s.speedup(unlogged_two, s.ns_of(unlogged_one)))
    );
    println!();
    targets.push(Target {
        path: "reveal, ManifestPolicy + ChainedLog buffered, 32 B".into(),
        target: "≤ 5× raw (≈ 1 µs)",
        measured: format!("{} = {}", ratio_cell(r1), human_ns(t1.median)),
        vs_011: ratio_cell(v011),
        met: r1.median <= 5.0,
    });
    targets.push(Target {
        path: "reveal, ManifestPolicy + ChainedLog buffered, 2 threads / 1".into(),
        target: "≥ 1.8× one thread",
        measured: ratio_cell(scaling),
        vs_011: "-".into(),
        met: scaling.median >= 1.8,
    });
}

/// Events appended and fdatasyncs done by one contender, over every batch it ran.
#[derive(Default)]
struct Syncs {
    events: Cell<u64>,
    syncs: Cell<u64>,
}

pub fn appends(plan: Plan, targets: &mut Vec<Target>) {
    println!("## 5. ChainedLog appends");
    println!();
    println!(
        "`ChainedLog::append` of a prepared event (`internal::testing::with_sample_event`), \
         each thread appending its own; `Buffered` and `Durable` (group commit: callers wait \
         for the `fdatasync` of their batch) in temporary directories on this machine's disk. \
         The `write(2)` rows are the floor of a buffered acknowledgement: the one `write(2)` \
         per entry that a lone appender makes, of a line as long as the log's, alone (no MAC, \
         no JSON, no log), from one thread, and from two threads contending for one file \
         behind a `std` mutex. The row before them is the keyed hashing the line format asks \
         of every entry, alone: HMAC-SHA256 with a prepared key over the chain MAC's input \
         (the line without its MAC, then the previous MAC), the subject's pseudonym and the \
         context digest (SECURITY.md, \"Audit line\"), at the sample entry's lengths. On one \
         thread, a buffered acknowledgement of that entry costs at least the hashing and the \
         one-thread write together."
    );
    println!();
    let configs: [(Durability, &str, usize); 4] = [
        (Durability::Buffered, "buffered", 1),
        (Durability::Buffered, "buffered", 2),
        (Durability::Durable, "durable", 1),
        (Durability::Durable, "durable", 8),
    ];
    let counters: Vec<Syncs> = configs.iter().map(|_| Syncs::default()).collect();
    let mut contenders = Vec::new();
    for ((durability, label, threads), counter) in configs.into_iter().zip(&counters) {
        let mut slot = setup::chained_log(durability);
        contenders.push(
            Contender::new(format!("{label}, {}", threads_label(threads)), move |k| {
                if slot.0.last_seq() > 4_000_000 {
                    slot = setup::chained_log(durability);
                }
                let log = &slot.0;
                let (seq0, sync0) = (log.last_seq(), log.sync_count());
                let barrier = Barrier::new(threads + 1);
                let t = std::thread::scope(|s| {
                    for t in 0..threads {
                        let barrier = &barrier;
                        s.spawn(move || {
                            with_sample_event(t as u64, Some(setup::SUBJECT), |e| {
                                barrier.wait();
                                for _ in 0..k {
                                    black_box(log.append(e).expect("append"));
                                }
                            })
                        });
                    }
                    barrier.wait();
                    Instant::now()
                })
                .elapsed();
                counter
                    .events
                    .set(counter.events.get() + log.last_seq() - seq0);
                counter
                    .syncs
                    .set(counter.syncs.get() + log.sync_count() - sync0);
                t
            })
            .ops(threads as u64),
        );
    }
    // The keyed hashing the line format fixes per entry, with the hmac and sha2 versions
    // fieldseal links and a key schedule prepared once, as fieldseal prepares its keys.
    let line_len = sample_line_len();
    let inputs = hashed_inputs(line_len);
    let hashing_label = format!(
        "keyed hashing of one entry alone (HMAC-SHA256 over {}, {} and {} bytes), 1 thread",
        inputs[0].len(),
        inputs[1].len(),
        inputs[2].len()
    );
    let key = <Hmac<Sha256> as KeyInit>::new_from_slice(&[1u8; 32]).expect("any key length");
    contenders.push(Contender::new(hashing_label, move |k| {
        let t = Instant::now();
        for _ in 0..k {
            for input in &inputs {
                let mut m = key.clone();
                m.update(black_box(input));
                black_box(m.finalize().into_bytes());
            }
        }
        t.elapsed()
    }));
    // The floor of a buffered acknowledgement: the one `write(2)` a lone appender makes per
    // entry, of a line as long as the log's, to a file in a temporary directory on the same disk;
    // no MAC, no JSON, no lock.
    let mut floor = LineFile::new(line_len);
    contenders.push(Contender::new(
        format!("write(2) of one {line_len}-byte line alone, 1 thread"),
        move |k| {
            let t = Instant::now();
            for _ in 0..k {
                floor.write();
            }
            floor.wrote(k);
            t.elapsed()
        },
    ));
    // The same write from two threads contending for one file behind a `std` mutex (which may
    // put a waiter to sleep, where the log's waiters spin first), one write at a time.
    let turns = std::sync::Mutex::new(LineFile::new(line_len));
    contenders.push(
        Contender::new(
            format!("write(2) of one {line_len}-byte line alone, 2 threads behind a mutex"),
            move |k| {
                let t = on_threads(2, k, &|| turns.lock().expect("the file").write());
                turns.lock().expect("the file").wrote(2 * k);
                t
            },
        )
        .ops(2),
    );
    let s = paired(plan, &mut contenders);
    table_header(
        "| log, appenders | events/s (median) | min–max | ns/event (median) | events per fdatasync |",
    );
    for (i, name) in s.names.iter().enumerate() {
        let t = s.time(name);
        // The rows past `configs` (hashing and the write(2) floor) are no log: no syncs, no
        // target.
        let config = configs.get(i);
        let per_sync = match config {
            Some((Durability::Durable, ..)) => {
                let c = &counters[i];
                format!("{:.2}", c.events.get() as f64 / c.syncs.get().max(1) as f64)
            }
            _ => "-".to_owned(),
        };
        println!(
            "| {name} | {} | {}–{} | {} | {per_sync} |",
            human_rate(1e9 / t.median),
            human_rate(1e9 / t.max),
            human_rate(1e9 / t.min),
            human_ns(t.median),
        );
        let Some(config) = config else {
            continue;
        };
        if config.0 == Durability::Buffered {
            targets.push(Target {
                path: format!("ChainedLog buffered appends, {}", threads_label(config.2)),
                target: "≥ 1M events/s",
                measured: format!(
                    "{} ({}–{})",
                    human_rate(1e9 / t.median),
                    human_rate(1e9 / t.max),
                    human_rate(1e9 / t.min)
                ),
                vs_011: "-".into(),
                met: 1e9 / t.median >= 1e6,
            });
        }
    }
    println!();
}

/// The length of one log line of the sample event (newline included): one entry appended to a
/// fresh buffered log, whose files then hold that line and nothing else but checkpoints.
fn sample_line_len() -> usize {
    let (log, dir) = setup::chained_log(Durability::Buffered);
    with_sample_event(0, Some(setup::SUBJECT), |e| log.append(e).expect("append"));
    drop(log);
    let mut len = 0;
    for entry in std::fs::read_dir(dir.path()).expect("read the log directory") {
        let bytes = std::fs::read(entry.expect("a directory entry").path()).unwrap_or_default();
        if bytes.starts_with(b"{\"seq\":1,\"prev\":") {
            len = bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| p + 1);
        }
    }
    assert!(len > 0, "the sample line was not found");
    len
}

/// The three inputs HMAC-SHA256 hashes for the sample entry (SECURITY.md, "Audit line"): the
/// chain MAC's (the line without its newline and its `,"mac":"…"}` suffix of 74 bytes, its
/// closing brace, then the previous entry's 32-byte MAC), the subject pseudonym's
/// (`lp("fieldseal/v1/audit-subject")` then the subject) and the context digest's
/// (`lp("fieldseal/v1/audit-context")` then the context encoding of the sample event's
/// `table` = `users`, `row` = `0`, `subject`). Only lengths matter here, not contents.
fn hashed_inputs(line_len: usize) -> [Vec<u8>; 3] {
    let lp = |label: &str| 2 + label.len();
    // Each context part: a 1-byte name length, the name, a 2-byte value length, the value.
    let part = |name: &str, value: &str| 1 + name.len() + 2 + value.len();
    let context = 1 + part("row", "0") + part("subject", setup::SUBJECT) + part("table", "users");
    [
        vec![b'x'; line_len - 1 - 74 + 1 + 32],
        vec![b's'; lp("fieldseal/v1/audit-subject") + setup::SUBJECT.len()],
        vec![b'c'; lp("fieldseal/v1/audit-context") + context],
    ]
}

/// A file in a temporary directory on this machine's disk that the `write(2)` rows append a
/// line (of `line_len` bytes) to, one `write(2)` at a time; emptied after each GiB.
struct LineFile {
    _dir: tempfile::TempDir,
    file: std::fs::File,
    line: Vec<u8>,
    bytes: u64,
}

impl LineFile {
    fn new(line_len: usize) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = open_append(&dir.path().join("lines"));
        Self {
            _dir: dir,
            file,
            line: vec![b'x'; line_len],
            bytes: 0,
        }
    }

    /// One `write(2)` of the line.
    fn write(&self) {
        std::io::Write::write_all(&mut &self.file, black_box(&self.line)).expect("write");
    }

    /// Counts `lines` more lines written; empties the file once it passes a GiB (outside the
    /// timed part).
    fn wrote(&mut self, lines: u64) {
        self.bytes += lines * self.line.len() as u64;
        if self.bytes > 1 << 30 {
            self.file.set_len(0).expect("truncate");
            self.bytes = 0;
        }
    }
}

fn open_append(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a file to append to")
}

pub fn round_trips(plan: Plan, targets: &mut Vec<Target>) {
    println!("## 6. Seal + reveal round trip / peers");
    println!();
    println!(
        "fieldseal: `seal` then `reveal` under a one-line allow list and `NullSink` (the least \
         policy and audit a reveal can have). ironcore-alloy 0.16 standalone: `encrypt` then \
         `decrypt` of a one-field document (the document map is built per call, as its API \
         takes it by value; its async calls complete on the first poll). tink-rust 0.3 \
         AES256_GCM: `encrypt` then `decrypt` with associated data of fieldseal's length. \
         Raw: aes-gcm encrypt then decrypt (the faster version per round)."
    );
    println!();
    let guard = setup::allow_list_guard(NullSink);
    #[cfg(feature = "alloy")]
    let alloy = crate::peers::alloy::Alloy::new();
    #[cfg(feature = "tink")]
    let tink = crate::peers::tink::Tink::new();
    let mut contenders = Vec::new();
    let mut raws = Vec::new();
    for size in SIZES {
        let l = size_label(size);
        let sealed = setup::seal_service(&guard, size);
        let aad_len = setup::aad_len(&sealed, size);
        let mut names = Vec::new();
        for version in Raw::VERSIONS {
            let raw = Raw::new(version);
            let (msg, aad) = (vec![b'x'; size], vec![7u8; aad_len]);
            let name = format!("{version} encrypt + decrypt, {l}");
            names.push(name.clone());
            contenders.push(Contender::each(name, move || {
                drop(black_box(raw.round_trip(&msg, &aad)))
            }));
        }
        raws.push(names);
        let (text, ctx, agent, guard) = (setup::text(size), ctx(), setup::agent(), &guard);
        contenders.push(Contender::each(format!("fieldseal, {l}"), move || {
            let s: Sealed<Text, Service> = guard.seal(&text, &ctx).expect("seal");
            drop(black_box(guard.reveal(&agent, &s, &ctx).expect("reveal")));
        }));
        #[cfg(feature = "alloy")]
        {
            let (alloy, value) = (&alloy, vec![b'x'; size]);
            contenders.push(Contender::each(
                format!("ironcore-alloy standalone, {l}"),
                move || drop(black_box(alloy.round_trip(&value))),
            ));
        }
        #[cfg(feature = "tink")]
        {
            let (tink, value, aad) = (&tink, vec![b'x'; size], vec![7u8; aad_len]);
            contenders.push(Contender::each(
                format!("tink-rust AES256_GCM, {l}"),
                move || drop(black_box(tink.round_trip(&value, &aad))),
            ));
        }
    }
    let s = paired(plan, &mut contenders);
    table_header(
        "| contender | ns per round trip (median) | / fastest raw (median, min–max) | / faster aes-gcm 0.11 API | peer / fieldseal (median, min–max) |",
    );
    for (size, raw) in SIZES.into_iter().zip(&raws) {
        let l = size_label(size);
        let base = s.fastest_of(&refs(raw));
        let v011 = &s.fastest_of(&refs(&raw[..Raw::V011_COUNT]));
        for n in raw {
            println!("| {n} | {} | | | |", human_ns(s.time(n).median));
        }
        let fs = format!("fieldseal, {l}");
        println!(
            "| {fs} | {} | {} | {} | 1 |",
            human_ns(s.time(&fs).median),
            ratio_cell(s.ratio(&fs, &base)),
            ratio_cell(s.ratio(&fs, v011))
        );
        for (peer, enabled, target, limit) in [
            (
                format!("ironcore-alloy standalone, {l}"),
                cfg!(feature = "alloy"),
                "≥ 10× faster",
                10.0,
            ),
            (
                format!("tink-rust AES256_GCM, {l}"),
                cfg!(feature = "tink"),
                "faster than tink",
                1.0,
            ),
        ] {
            if !enabled {
                println!("| {peer} | not built (feature off) | | | |");
                continue;
            }
            let r = s.ratio(&peer, s.ns_of(&fs));
            println!(
                "| {peer} | {} | {} | {} | {} |",
                human_ns(s.time(&peer).median),
                ratio_cell(s.ratio(&peer, &base)),
                ratio_cell(s.ratio(&peer, v011)),
                ratio_cell(r)
            );
            targets.push(Target {
                path: format!("seal + reveal round trip vs {peer} (peer time / fieldseal time)"),
                target,
                measured: ratio_cell(r),
                vs_011: "-".into(),
                met: if limit > 1.0 {
                    r.median >= limit
                } else {
                    r.median > limit
                },
            });
        }
    }
    println!();
}

/// The RBAC-with-domains model of benches/policy.rs (`g()` last in the matcher).
const MODEL: &str = "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\n\
    p = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\n\
    e = some(where (p.eft == allow))\n[matchers]\n\
    m = r.dom == p.dom && r.obj == p.obj && r.act == p.act && g(r.sub, p.sub, r.dom)\n";

/// `rules` roles, each granting itself `reveal` of `email` for `service`.
fn rules_manifest(rules: usize) -> String {
    let mut t = String::from(
        "version = 1\nhome_region = \"CN\"\n[purposes.service]\nlegal_basis = \"contract\"\nretention_days = 30\n",
    );
    for i in 0..rules {
        t.push_str(&format!(
            "[roles.role{i}.grants.service]\nreveal = [\"email\"]\n"
        ));
    }
    t
}

pub fn casbin(plan: Plan) {
    println!("## 7. casbin `enforce` / fieldseal's decision, by policy size");
    println!();
    println!(
        "casbin 2.20 `enforce` through `CasbinPolicy::enforce` (the RBAC-with-domains model of \
         benches/policy.rs, one `p` line per rule) against `ManifestPolicy::decide` for a \
         manifest of the same grants (one role per rule), with the native engine and with \
         `Engine::Casbin` (which compiles each `reveal` grant into two lines, reveal and mask), \
         warm cache and uncached (`decide_uncached`). The request names the last rule's role."
    );
    println!();
    let counts = [10usize, 100, 1000];
    let accessors: Vec<Accessor> = counts
        .iter()
        .map(|n| Accessor::new("bench", [Role::new(&format!("role{}", n - 1))]))
        .collect();
    let mut contenders = Vec::new();
    for (&n, accessor) in counts.iter().zip(&accessors) {
        let mut lines = String::new();
        for i in 0..n {
            lines.push_str(&format!("p, role{i}, service, email, reveal\n"));
        }
        let raw = CasbinPolicy::from_text(MODEL, &lines).expect("casbin policy");
        let role = format!("role{}", n - 1);
        contenders.push(Contender::each(
            format!("casbin enforce, {n} rules"),
            move || {
                assert!(black_box(
                    raw.enforce(&role, "service", "email", "reveal")
                        .expect("enforce")
                ));
            },
        ));
        let manifest = Manifest::from_toml(&rules_manifest(n)).expect("a valid manifest");
        let engines: [(&str, Engine); 2] = [("native", Engine::Native), ("casbin", Engine::Casbin)];
        for (label, engine) in engines {
            let policy = Arc::new(ManifestPolicy::new(manifest.clone(), engine).expect("compiles"));
            let p2 = Arc::clone(&policy);
            let req = move || AccessRequest {
                accessor,
                purpose: "service",
                kind: FieldKind::Email,
                action: Action::Reveal,
            };
            contenders.push(Contender::each(
                format!("ManifestPolicy ({label}) decide, warm, {n} rules"),
                move || assert!(black_box(policy.decide(black_box(&req()))) == Decision::Allow),
            ));
            contenders.push(Contender::each(
                format!("ManifestPolicy ({label}) decide_uncached, {n} rules"),
                move || {
                    assert!(black_box(p2.decide_uncached(black_box(&req()))) == Decision::Allow)
                },
            ));
        }
    }
    let s = paired(plan, &mut contenders);
    table_header("| contender | ns/decision (median) | casbin enforce / this (median, min–max) |");
    for n in counts {
        let raw = format!("casbin enforce, {n} rules");
        println!("| {raw} | {} | 1 |", human_ns(s.time(&raw).median));
        for label in ["native", "casbin"] {
            for kind in ["decide, warm", "decide_uncached"] {
                let name = format!("ManifestPolicy ({label}) {kind}, {n} rules");
                println!(
                    "| {name} | {} | {} |",
                    human_ns(s.time(&name).median),
                    ratio_cell(s.speedup(&name, s.ns_of(&raw)))
                );
            }
        }
    }
    println!();
}

pub fn rewrap(plan: Plan) {
    println!("## 9. Rewrap");
    println!();
    println!(
        "`Guard::rewrap_batch` of 32-byte values sealed under key version 1 after a rotation to \
         version 2 (a one-line allow list, `MemorySink`), one item per call and 10,000 per \
         call, against single `Guard::rewrap` calls and a raw decrypt + encrypt per item (the \
         faster aes-gcm version per round). Inputs are cloned before the timed part."
    );
    println!();
    const MANY: usize = 10_000;
    let sink = Arc::new(MemorySink::new());
    let guard = setup::allow_list_guard(Arc::clone(&sink));
    let row_ctx = |i: usize| {
        Context::new()
            .table("users")
            .column("note")
            .row(&i.to_string())
            .subject(&setup::subject())
    };
    let items: Vec<(AnySealed, Context)> = (0..MANY)
        .map(|i| {
            let s: Sealed<Text, Service> = guard.seal(&setup::text(32), &row_ctx(i)).expect("seal");
            (s.into(), row_ctx(i))
        })
        .collect();
    let typed: Vec<(Sealed<Text, Service>, Context)> = items
        .iter()
        .map(|(s, c)| {
            (
                Sealed::try_from(s.clone()).expect("text for service"),
                c.clone(),
            )
        })
        .collect();
    let aad_len = setup::aad_len(&typed[0].0, 32);
    guard.keyring().rotate().expect("rotate");
    let custodian = setup::agent();
    let mut contenders = Vec::new();
    let mut raw = Vec::new();
    for version in Raw::VERSIONS {
        let r = Raw::new(version);
        let (msg, aad) = (vec![b'x'; 32], vec![7u8; aad_len]);
        let ct = r.prepare(&msg, &aad);
        let name = format!("{version} decrypt + encrypt");
        raw.push(name.clone());
        contenders.push(Contender::each(name, move || {
            let pt = r.decrypt(&ct, &aad);
            drop(black_box(r.encrypt(&pt, &aad)));
        }));
    }
    let (g, c, sk, it) = (&guard, &custodian, &sink, &items);
    let next = Cell::new(0usize);
    contenders.push(Contender::new("rewrap_batch, 1 item per call", move |k| {
        sk.clear();
        let batches: Vec<Vec<(AnySealed, Context)>> = (0..k)
            .map(|_| {
                next.set((next.get() + 1) % MANY);
                vec![it[next.get()].clone()]
            })
            .collect();
        let start = Instant::now();
        for b in batches {
            let report = g.rewrap_batch(c, b).expect("batch");
            assert_eq!(report.rewrapped(), 1);
        }
        start.elapsed()
    }));
    contenders.push(
        Contender::new("rewrap_batch, 10,000 items per call", move |k| {
            sk.clear();
            let batches: Vec<Vec<(AnySealed, Context)>> = (0..k).map(|_| it.clone()).collect();
            let start = Instant::now();
            for b in batches {
                let report = g.rewrap_batch(c, b).expect("batch");
                assert_eq!(report.rewrapped(), MANY);
            }
            start.elapsed()
        })
        .ops(MANY as u64),
    );
    let (typed, next) = (&typed, Cell::new(0usize));
    contenders.push(Contender::new("rewrap (single calls)", move |k| {
        sk.clear();
        let start = Instant::now();
        for _ in 0..k {
            next.set((next.get() + 1) % MANY);
            let (s, cx) = &typed[next.get()];
            drop(black_box(g.rewrap(c, s, cx).expect("rewrap")));
        }
        start.elapsed()
    }));
    let s = paired(plan, &mut contenders);
    let base = s.fastest_of(&refs(&raw));
    table_header(
        "| contender | items/s (median) | ns/item (median) | ratio to raw (median, min–max) |",
    );
    for n in &s.names {
        let t = s.time(n);
        println!(
            "| {n} | {} | {} | {} |",
            human_rate(1e9 / t.median),
            human_ns(t.median),
            ratio_cell(s.ratio(n, &base))
        );
    }
    println!();
}

pub fn allocations(n: u64) {
    println!("## 8. Allocations per operation");
    println!();
    println!(
        "A counting global allocator in this harness, over {n} operations after {n} uncounted \
         ones, in every thread of the process (a log's writer included); a memory sink is \
         cleared between the two (it keeps its vector's capacity, so the amortized growth of \
         its storage is not counted); a reallocation counts as one allocation of its new size. \
         Bytes are bytes requested, not retained."
    );
    println!();
    table_header("| operation | allocations/op | bytes/op |");
    let row = |name: String, (a, b): (f64, f64)| println!("| {name} | {a:.2} | {b:.0} |");
    let allow_sink = Arc::new(MemorySink::new());
    let allow = setup::allow_list_guard(Arc::clone(&allow_sink));
    let manifest_sink = Arc::new(MemorySink::new());
    let manifest = setup::manifest_guard(Arc::clone(&manifest_sink));
    let (agent, marketer, ctx) = (setup::agent(), setup::marketer(), ctx());
    for size in SIZES {
        let l = size_label(size);
        let text = setup::text(size);
        let svc = setup::seal_service(&allow, size);
        let mkt = setup::seal_marketing(&manifest, size);
        let aad = vec![7u8; setup::aad_len(&svc, size)];
        let msg = vec![b'x'; size];
        let raw = Raw::new("aes-gcm 0.11");
        let ct = raw.prepare(&msg, &aad);
        row(
            format!("aes-gcm 0.11 encrypt, {l}"),
            alloc::count(n, || drop(black_box(raw.encrypt(&msg, &aad))), || ()),
        );
        row(
            format!("aes-gcm 0.11 decrypt, {l}"),
            alloc::count(n, || drop(black_box(raw.decrypt(&ct, &aad))), || ()),
        );
        row(
            format!("seal, {l}"),
            alloc::count(
                n,
                || {
                    drop(black_box(
                        allow.seal::<Text, Service>(&text, &ctx).expect("seal"),
                    ))
                },
                || (),
            ),
        );
        allow_sink.clear();
        row(
            format!("reveal, AllowList + memory sink, {l}"),
            alloc::count(
                n,
                || drop(black_box(allow.reveal(&agent, &svc, &ctx).expect("reveal"))),
                || allow_sink.clear(),
            ),
        );
        manifest_sink.clear();
        row(
            format!("reveal, ManifestPolicy + consent + memory sink, warm cache, {l}"),
            alloc::count(
                n,
                || {
                    drop(black_box(
                        manifest.reveal(&marketer, &mkt, &ctx).expect("reveal"),
                    ))
                },
                || manifest_sink.clear(),
            ),
        );
        manifest_sink.clear();
        let cold: Vec<Accessor> = (0..2 * n)
            .map(|i| {
                Accessor::new(
                    "bench",
                    [
                        Role::new("marketing"),
                        Role::new(&format!("alloc{size}-{i}")),
                    ],
                )
            })
            .collect();
        let mut it = cold.iter();
        row(
            format!("reveal, ManifestPolicy + consent + memory sink, cold cache, {l}"),
            alloc::count(
                n,
                || {
                    let a = it.next().expect("one accessor per call");
                    drop(black_box(manifest.reveal(a, &mkt, &ctx).expect("reveal")))
                },
                || manifest_sink.clear(),
            ),
        );
        manifest_sink.clear();
        let logged = LoggedGuard::open();
        row(
            format!("reveal, ManifestPolicy + ChainedLog buffered, {l}"),
            alloc::count(
                n,
                || {
                    drop(black_box(
                        logged.guard.reveal(&marketer, &mkt, &ctx).expect("reveal"),
                    ))
                },
                || (),
            ),
        );
        drop(logged);
        #[cfg(feature = "alloy")]
        {
            let alloy = crate::peers::alloy::Alloy::new();
            row(
                format!("ironcore-alloy standalone round trip, {l}"),
                alloc::count(n, || drop(black_box(alloy.round_trip(&msg))), || ()),
            );
        }
        #[cfg(feature = "tink")]
        {
            let tink = crate::peers::tink::Tink::new();
            row(
                format!("tink-rust AES256_GCM round trip, {l}"),
                alloc::count(n, || drop(black_box(tink.round_trip(&msg, &aad))), || ()),
            );
        }
        row(
            format!("fieldseal seal + reveal round trip (AllowList + memory sink), {l}"),
            alloc::count(
                n,
                || {
                    let s: Sealed<Text, Service> = allow.seal(&text, &ctx).expect("seal");
                    drop(black_box(allow.reveal(&agent, &s, &ctx).expect("reveal")))
                },
                || allow_sink.clear(),
            ),
        );
        allow_sink.clear();
    }
    println!();
}
