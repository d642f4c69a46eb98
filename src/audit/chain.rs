//! [`ChainedLog`]: an append-only, MAC-chained, checkpointed audit log in a directory.
//!
//! # Files
//! - Segments `audit-000001.log`, `audit-000002.log`, … (six or more digits, numbered from 1):
//!   the chain runs through them in number order, the first line of segment `k + 1` chaining
//!   from the last line of segment `k`. Only the highest-numbered segment is appended to; a new
//!   one is started when it reaches the configured size (at a batch boundary, so lines are never
//!   split across segments).
//! - `checkpoints.log` (or a path of your choice, ideally on other storage): signed checkpoints.
//! - `audit-NNNNNN.log.torn` (`.torn.2`, … if taken): a torn last line moved aside on open.
//!
//! The line formats are documented in SECURITY.md ("Audit log").

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError, Weak};
use std::time::{Duration, Instant};

use super::ack::{Acknowledge, Flusher};
use super::ckpt_file::{self, io_err, sync_dir};
use super::event::EventRecord;
use super::keys::{AuditKey, CheckpointSigningKey, PseudonymKey};
use super::line::{ChainMac, Checkpoint, GENESIS, entry_fits};
use super::verify::{split_lines, walk};
use super::{AuditEvent, AuditFuture, AuditSink};
use crate::clock::{Clock, SystemClock};
use crate::error::{AuditError, AuditErrorKind};
use crate::telemetry::{SinkOp, SinkSpan};

/// Default checkpoint file name inside the log directory.
pub(crate) const CHECKPOINT_FILE: &str = "checkpoints.log";
/// The writer's lock file inside the log directory.
const LOCK_FILE: &str = "audit.lock";
/// Initial capacity of the pending-lines buffer.
const FLUSH_BYTES: usize = 64 * 1024;
/// A written batch's buffer is reused for the next one unless a burst grew it beyond this.
const MAX_SPARE_BATCH: usize = 1024 * 1024;
/// An appender's entry buffer is kept for its next append unless an entry grew it beyond this.
const MAX_SPARE_ENTRY: usize = 16 * 1024;
/// How long an appender waiting for a buffered batch's `write` (a few microseconds) watches for
/// its end before it sleeps on the condition variable: a sleep and the wake-up that ends it cost
/// more than the write itself, and on a virtual machine an idle CPU's wake-up costs tens of
/// microseconds. Appenders waiting for an `fdatasync` sleep at once.
const SPIN_LIMIT: Duration = Duration::from_micros(20);
/// How long the leader of a buffered batch waits, outside the lock, for appenders whose entry
/// is built to chain it, so that one `write` covers theirs too (see `Shared::lead`): about ten
/// times what chaining an entry takes, far less than a sleep's wake-up.
const ARRIVAL_LIMIT: Duration = Duration::from_micros(5);

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once the line has been written to the log file (handed to the kernel):
    /// appenders that arrive while a write is in progress share the next `write`, so lines are
    /// batched into few system calls. An acknowledged entry survives a crash of the process; it
    /// is made durable against power loss by [`ChainedLog::sync`], by the background timer
    /// (every [`ChainedLogBuilder::sync_interval`]) and on drop. An operating-system crash loses
    /// at most the entries since the last sync; what remains is still a valid chain.
    Buffered,
    /// Acknowledged only after an `fdatasync` that covers the line (group commit: concurrent
    /// appenders share one `write` and one `fdatasync` per batch).
    Durable,
}

/// What [`ChainedLogBuilder::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Sequence number of the last valid entry (0 for an empty log).
    pub last_seq: u64,
    /// Number of segments.
    pub segments: u64,
    /// A torn last line that was moved aside, if there was one.
    pub torn: Option<TornLine>,
    /// Number of valid checkpoints in the checkpoint file (the genesis checkpoint included).
    pub checkpoints: u64,
    /// Length in bytes of an invalid, unterminated last checkpoint line that was dropped (a
    /// crash while it was written; the entries it would have covered stay in the log).
    pub dropped_checkpoint: Option<u64>,
}

/// A torn last line moved aside on open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornLine {
    /// The sequence number the line would have had.
    pub seq: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Where it was moved.
    pub moved_to: PathBuf,
}

/// Configures and opens a [`ChainedLog`].
pub struct ChainedLogBuilder {
    dir: PathBuf,
    key: Option<AuditKey>,
    signer: Option<CheckpointSigningKey>,
    checkpoint_path: Option<PathBuf>,
    durability: Durability,
    max_segment_bytes: u64,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    sync_interval: Duration,
    clock: Arc<dyn Clock>,
    sync_latency: Duration,
    accept_missing_checkpoints: bool,
    lock_wait: Duration,
    /// [`ARRIVAL_LIMIT`], or a longer one in tests.
    arrival_limit: Duration,
}

impl std::fmt::Debug for ChainedLogBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainedLogBuilder")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl ChainedLogBuilder {
    /// The audit key (required).
    #[must_use]
    pub fn key(mut self, key: AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The checkpoint signing key (required).
    #[must_use]
    pub fn checkpoint_key(mut self, key: CheckpointSigningKey) -> Self {
        self.signer = Some(key);
        self
    }

    /// Where checkpoints go (default `checkpoints.log` in the log directory). Keep it on
    /// storage the log's writer cannot rewrite, if you can.
    #[must_use]
    pub fn checkpoint_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.checkpoint_path = Some(path.into());
        self
    }

    /// Buffered or durable acknowledgement (default [`Durability::Durable`]).
    #[must_use]
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Segment size that triggers rotation (default 64 MiB).
    #[must_use]
    pub fn max_segment_bytes(mut self, n: u64) -> Self {
        self.max_segment_bytes = n.max(1);
        self
    }

    /// A checkpoint once `entries` entries are uncovered or the oldest uncovered entry is
    /// `interval` old, whichever comes first (default 1,000 entries, 10 s). The time bound is
    /// read on the log's [clock](ChainedLogBuilder::clock) in whole seconds (at least 1 s) and
    /// holds for an idle log too: the background timer (every
    /// [`sync_interval`](ChainedLogBuilder::sync_interval)) writes a checkpoint when one is due.
    /// [`ChainedLog::sync`] and a clean drop write one whenever entries are uncovered.
    /// Checkpoints are written only for synced entries, right after the sync.
    #[must_use]
    pub fn checkpoint_every(mut self, entries: u64, interval: Duration) -> Self {
        self.checkpoint_every = entries.max(1);
        self.checkpoint_interval = interval;
        self
    }

    /// How often the background timer runs (default 1 s): it syncs a buffered log and, in both
    /// modes, writes a checkpoint when the time bound of
    /// [`checkpoint_every`](ChainedLogBuilder::checkpoint_every) is due.
    #[must_use]
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// Sleeps this long after every `fdatasync`, to model a slower disk than the one at hand
    /// (benchmarks and tests of group commit only; the default is zero).
    #[doc(hidden)]
    #[must_use]
    pub fn simulated_sync_latency(mut self, latency: Duration) -> Self {
        self.sync_latency = latency;
        self
    }

    /// The clock for checkpoint times and the checkpoint time bound (default the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long `open` waits for the directory lock before it reports
    /// [`AuditErrorKind::Locked`] (default 200 ms). A previous holder in the middle of closing —
    /// or a child process forked by this one that has not yet reached `exec`, which briefly
    /// shares the lock — is waited out; a live second writer is refused.
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Opens a log with entries whose checkpoint file is missing or holds no valid checkpoint,
    /// re-anchoring it with a new checkpoint of the current head.
    ///
    /// # Security
    /// Only for an operator who knows the checkpoint file was lost: a cut of the log made
    /// before this call can no longer be detected. Verify the log against a copy of the old
    /// checkpoints first, if one exists.
    #[must_use]
    pub fn dangerous_accept_missing_checkpoints(mut self) -> Self {
        self.accept_missing_checkpoints = true;
        self
    }

    /// Opens (or creates) the log, recovering from a crash: a torn last line is moved aside and
    /// reported, and so is a torn last checkpoint line.
    ///
    /// The log's directory is locked (an exclusive `flock` on `audit.lock`) for the life of the
    /// returned log, so a second writer cannot interleave appends and break the chain.
    ///
    /// # Errors
    /// [`AuditErrorKind::Rejected`] without a key or checkpoint key,
    /// [`AuditErrorKind::Locked`] if another `ChainedLog` (in this process or another) has the
    /// directory open, [`AuditErrorKind::Io`] on I/O failure,
    /// [`AuditErrorKind::CheckpointsMissing`] if the log has entries but no valid checkpoint
    /// on record, [`AuditErrorKind::Corrupt`] naming the first bad seq if a line before the
    /// last is bad, a checkpoint line before the last is bad, or the log ends before its
    /// latest checkpoint.
    pub fn open(self) -> Result<(ChainedLog, OpenReport), AuditError> {
        let key = self.key.ok_or(AuditError::new(AuditErrorKind::Rejected))?;
        let signer = self
            .signer
            .ok_or(AuditError::new(AuditErrorKind::Rejected))?;
        std::fs::create_dir_all(&self.dir).map_err(io_err)?;
        let lock = lock_dir(&self.dir, self.lock_wait)?;
        let mac = ChainMac::new(key.mac_key());
        let mut segments = read_segments(&self.dir)?;
        let mut created = false;
        if segments.is_empty() {
            create_file(&self.dir, &segment_path(&self.dir, 1))?;
            segments.push((1, segment_path(&self.dir, 1), Vec::new()));
            created = true;
        }
        let data: Vec<Vec<u8>> = segments.iter().map(|(_, _, d)| d.clone()).collect();
        let lines = split_lines(&data);
        let w = walk(&lines, &mac);
        let ckpt_path = self
            .checkpoint_path
            .unwrap_or_else(|| self.dir.join(CHECKPOINT_FILE));
        let scan = ckpt_file::scan(&ckpt_path, &signer)?;
        // A checkpoint file is created with its genesis checkpoint, so a log with entries and
        // no valid checkpoint has lost its file (or had it emptied): a cut could go unseen.
        let missing = scan.valid() == 0 && w.last_seq() > 0;
        if missing && !self.accept_missing_checkpoints {
            return Err(AuditError::new(AuditErrorKind::CheckpointsMissing));
        }
        let last_ckpt = scan.latest();
        if let Some(c) = last_ckpt {
            if c.seq > w.last_seq() {
                return Err(AuditError::new(AuditErrorKind::Corrupt {
                    seq: w.last_seq() + 1,
                }));
            }
            // The checkpoint must name this chain's head at its seq (not a rebuilt or replayed
            // chain's).
            let expected = match usize::try_from(c.seq).ok().and_then(|s| s.checked_sub(1)) {
                Some(i) => w.macs.get(i),
                None => Some(&GENESIS),
            };
            if expected != Some(&c.head) {
                return Err(AuditError::new(AuditErrorKind::Corrupt {
                    seq: c.seq.max(1),
                }));
            }
        }
        let now = self.clock.now();
        let mut ckpt_file = ckpt_file::open(&ckpt_path, &scan, &signer, now)?;
        let mut torn = None;
        if let Some((fault, at)) = w.fault {
            let line = lines.get(at).copied();
            let last_seg = data.len() - 1;
            match line {
                Some(l) if at + 1 == lines.len() && l.segment == last_seg => {
                    let (_, path, _) = &segments[last_seg];
                    let moved_to = move_aside(&self.dir, path, l.start as u64, l.bytes)?;
                    torn = Some(TornLine {
                        seq: fault.seq,
                        len: (l.bytes.len() + usize::from(l.terminated)) as u64,
                        moved_to,
                    });
                }
                _ => {
                    return Err(AuditError::new(AuditErrorKind::Corrupt { seq: fault.seq }));
                }
            }
        }
        let (seg_no, seg_path, _) = segments.last().ok_or(AuditError::new(AuditErrorKind::Io))?;
        let file = OpenOptions::new()
            .append(true)
            .open(seg_path)
            .map_err(io_err)?;
        let seg_len = file.metadata().map_err(io_err)?.len();
        if created {
            sync_dir(&self.dir)?;
        }
        let mut ckpt_seq = last_ckpt.map_or(0, |c| c.seq);
        if missing {
            // Re-anchored on the operator's word (see `dangerous_accept_missing_checkpoints`).
            let c = Checkpoint::sign(&signer, w.last_seq(), w.head(), now);
            ckpt_file.write_all(&c.to_line()).map_err(io_err)?;
            ckpt_file.sync_data().map_err(io_err)?;
            ckpt_seq = w.last_seq();
        }
        let report = OpenReport {
            last_seq: w.last_seq(),
            segments: segments.len() as u64,
            torn,
            checkpoints: scan.valid().max(1) + u64::from(missing),
            dropped_checkpoint: scan.dropped(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                seq: w.last_seq(),
                head: w.head(),
                pending: Vec::with_capacity(FLUSH_BYTES),
                durable_seq: w.last_seq(),
                written_seq: w.last_seq(),
                busy: false,
                syncs: 0,
                last_batch: 0,
                gather: Duration::ZERO,
                failed: false,
                waiting: 0,
                ckpt_seq,
                // Entries left uncovered by an earlier run count from now.
                uncovered_since: (ckpt_seq < w.last_seq()).then_some(now),
                io: Some(Io {
                    dir: self.dir.clone(),
                    file,
                    seg_no: *seg_no,
                    seg_len,
                    ckpt: ckpt_file,
                }),
                #[cfg(test)]
                gathers: (0, 0),
                #[cfg(test)]
                ticks: 0,
                #[cfg(test)]
                spins: (0, 0),
            }),
            cond: Condvar::new(),
            batches: AtomicU64::new(0),
            arriving: AtomicUsize::new(0),
            chained: AtomicU64::new(w.last_seq()),
            arrival_limit: self.arrival_limit,
            #[cfg(test)]
            awaits: AtomicU64::new(0),
            #[cfg(test)]
            data_syncs: AtomicU64::new(0),
            mac,
            pseudonym: key.pseudonym_key(),
            signer,
            durability: self.durability,
            max_segment_bytes: self.max_segment_bytes,
            checkpoint_every: self.checkpoint_every,
            checkpoint_interval: self.checkpoint_interval,
            clock: self.clock,
            sync_latency: self.sync_latency,
            _lock: lock,
        });
        // Both modes: a buffered log is synced, and an idle log of either mode gets its
        // checkpoint when the time bound is due.
        let timer = Arc::new(Timer {
            stopped: Mutex::new(false),
            cond: Condvar::new(),
        });
        // Without its timer the checkpoint time bound would not hold: no timer, no log.
        let thread = Some(
            spawn_timer(
                Arc::downgrade(&shared),
                Arc::clone(&timer),
                self.sync_interval,
            )
            .map_err(io_err)?,
        );
        Ok((
            ChainedLog {
                shared,
                timer,
                thread,
                flusher: OnceLock::new(),
            },
            report,
        ))
    }
}

/// An [`AuditSink`] writing a MAC-chained, checkpointed log of JSON lines to a directory.
///
/// Thread-safe; share it with `Arc`. Once a write or `fdatasync` fails, every later append and
/// sync fails with [`AuditErrorKind::Closed`]: the log never retries, so no acknowledged entry
/// can be silently lost behind a failed sync.
///
/// ```
/// use fieldseal::{AuditKey, ChainedLog, CheckpointSigningKey, Durability};
/// # let dir = std::env::temp_dir().join(format!("fieldseal-doc-{}", std::process::id()));
/// let (log, report) = ChainedLog::builder(&dir)
///     .key(AuditKey::generate()?)
///     .checkpoint_key(CheckpointSigningKey::generate()?)
///     .durability(Durability::Durable)
///     .open()?;
/// assert!(report.torn.is_none());
/// # drop(log); std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ChainedLog {
    shared: Arc<Shared>,
    timer: Arc<Timer>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Acknowledges async appends ([`ChainedLog::append_async`]); started on first use.
    flusher: OnceLock<Flusher>,
}

/// Stops the background timer: set on drop, which then joins the timer thread so that no tick
/// outlives the handle (and the directory lock is released when the handle is gone).
struct Timer {
    stopped: Mutex<bool>,
    cond: Condvar,
}

impl std::fmt::Debug for ChainedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainedLog")
            .field("durability", &self.shared.durability)
            .finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    /// Batches led so far, bumped under the lock as a leader hands back `io`: an appender
    /// spinning outside the lock ([`SPIN_LIMIT`]) watches it for the end of the batch.
    batches: AtomicU64,
    /// Appenders whose entry is built and who found the lock taken when they came to chain
    /// it, until it is chained (the leader of a buffered batch waits for them; see `lead`).
    arriving: AtomicUsize,
    /// `State::seq`, stored under the lock whenever it changes, for a leader watching arrivals
    /// outside the lock.
    chained: AtomicU64,
    /// [`ARRIVAL_LIMIT`] (longer in some tests).
    arrival_limit: Duration,
    /// Test builds only: how many leaders waited for arriving appenders.
    #[cfg(test)]
    awaits: AtomicU64,
    /// Test builds only: `fdatasync`s of the log file actually made (`sync_count` counts the
    /// batches a leader asked to sync; this, what `write_batch` did).
    #[cfg(test)]
    data_syncs: AtomicU64,
    mac: ChainMac,
    pseudonym: PseudonymKey,
    signer: CheckpointSigningKey,
    durability: Durability,
    max_segment_bytes: u64,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    clock: Arc<dyn Clock>,
    /// Added after every `fdatasync` (see [`ChainedLogBuilder::simulated_sync_latency`]).
    sync_latency: Duration,
    /// The exclusive lock on the directory, released when the last handle is gone.
    _lock: File,
}

/// Whether a sync should also write a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ckpt {
    /// When the entry count or the time bound says so.
    IfDue,
    /// Whenever entries are uncovered ([`ChainedLog::sync`], drop).
    IfUncovered,
    /// For the current head unless one exists for it ([`ChainedLog::checkpoint`]).
    Force,
}

struct State {
    /// Last sequence number assigned and its MAC.
    seq: u64,
    head: [u8; 32],
    /// Lines not yet handed to the file.
    pending: Vec<u8>,
    /// Last sequence number handed to the file by a successful `write`.
    written_seq: u64,
    /// Last sequence number covered by a successful `fdatasync`.
    durable_seq: u64,
    /// A leader is writing or syncing (it holds `io`).
    busy: bool,
    /// Successful `fdatasync` calls on segments.
    syncs: u64,
    /// Entries covered by the last sync, and how long a leader gathers before the next one (see
    /// `lead`).
    last_batch: u64,
    gather: Duration,
    failed: bool,
    /// Threads waiting on the condition variable: a leader wakes them only if there are any
    /// (a lone appender pays no wake-up system call).
    waiting: usize,
    /// Last sequence number covered by a checkpoint.
    ckpt_seq: u64,
    /// Clock time (seconds) from which the oldest entry not covered by a checkpoint counts.
    uncovered_since: Option<u64>,
    io: Option<Io>,
    /// Test builds only: how many leaders gathered, and how many of those stopped early.
    #[cfg(test)]
    gathers: (u64, u64),
    /// Test builds only: how many times the background timer ran.
    #[cfg(test)]
    ticks: u64,
    /// Test builds only: how many appenders spun, and how many of them saw the batch end.
    #[cfg(test)]
    spins: (u64, u64),
}

struct Io {
    dir: PathBuf,
    file: File,
    seg_no: u64,
    seg_len: u64,
    ckpt: File,
}

impl ChainedLog {
    /// Starts configuring a log in directory `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> ChainedLogBuilder {
        ChainedLogBuilder {
            dir: dir.as_ref().to_path_buf(),
            key: None,
            signer: None,
            checkpoint_path: None,
            durability: Durability::Durable,
            max_segment_bytes: 64 * 1024 * 1024,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            sync_interval: Duration::from_secs(1),
            sync_latency: Duration::ZERO,
            clock: Arc::new(SystemClock),
            accept_missing_checkpoints: false,
            lock_wait: Duration::from_millis(200),
            arrival_limit: ARRIVAL_LIMIT,
        }
    }

    /// Appends `event` and returns its sequence number once acknowledged (see [`Durability`]).
    ///
    /// # Errors
    /// [`AuditErrorKind::Closed`] after an earlier write or sync failure, [`AuditErrorKind::Io`]
    /// if the write or sync covering this entry fails.
    pub fn append(&self, event: &AuditEvent<'_>) -> Result<u64, AuditError> {
        let span = SinkSpan::start(SinkOp::Append);
        span.run(|| {
            let seq = with_entry_buffer(|buf| {
                self.entry_into(event, buf)?;
                self.shared.chain_and_acknowledge(buf)
            })?;
            span.number("seq", seq);
            Ok(seq)
        })
    }

    /// As [`ChainedLog::append`], without blocking the caller on the file: the entry is chained
    /// at once (its seq is assigned before this returns), and the future resolves when the
    /// write (and, if durable, the `fdatasync`) covering it is done — the same acknowledgement
    /// as `append`'s, by the same group commit, driven by a thread of the log's own (started
    /// on first use). An async task never waits on the file on its runtime's thread.
    ///
    /// # Errors
    /// As [`ChainedLog::append`]; [`AuditErrorKind::Io`] if the acknowledging thread cannot
    /// start.
    pub fn append_async(
        &self,
        event: &AuditEvent<'_>,
    ) -> impl Future<Output = Result<u64, AuditError>> + Send + use<> {
        let span = SinkSpan::start(SinkOp::Append);
        let queued = with_entry_buffer(|buf| {
            self.entry_into(event, buf)?;
            let flusher = self.flusher()?;
            let seq = self.shared.chain(buf)?;
            Ok((seq, flusher.wait_for(seq)))
        });
        async move {
            span.run_async(async {
                let (seq, acked) = queued?;
                acked.await?;
                span.number("seq", seq);
                Ok(seq)
            })
            .await
        }
    }

    /// Serializes the event's entry into `entry` (outside the lock; only the chaining happens
    /// under it).
    fn entry_into(&self, event: &AuditEvent<'_>, entry: &mut Vec<u8>) -> Result<(), AuditError> {
        EventRecord::json_of(event, &self.shared.pseudonym, entry);
        if !entry_fits(entry.len()) {
            return Err(AuditError::new(AuditErrorKind::Rejected));
        }
        Ok(())
    }

    fn flusher(&self) -> Result<&Flusher, AuditError> {
        if let Some(f) = self.flusher.get() {
            return Ok(f);
        }
        let started = Flusher::start(Arc::downgrade(&self.shared))
            .map_err(|e| AuditError::with_source(AuditErrorKind::Io, e))?;
        // Two first callers may race: the loser's thread is stopped at once.
        if let Err(extra) = self.flusher.set(started) {
            extra.stop();
        }
        self.flusher
            .get()
            .ok_or(AuditError::new(AuditErrorKind::Closed))
    }

    /// Writes and `fdatasync`s everything appended so far, then writes a checkpoint if any
    /// entry is not yet covered by one.
    ///
    /// # Errors
    /// As [`ChainedLog::append`].
    pub fn sync(&self) -> Result<(), AuditError> {
        self.shared.sync_to(None, Ckpt::IfUncovered)
    }

    /// Syncs, then writes a checkpoint for the current head (unless one exists for it).
    ///
    /// # Errors
    /// As [`ChainedLog::append`].
    pub fn checkpoint(&self) -> Result<(), AuditError> {
        let span = SinkSpan::start(SinkOp::Checkpoint);
        span.run(|| self.shared.sync_to(None, Ckpt::Force))
    }

    /// How many `fdatasync` batches this handle has completed (group commit makes it much
    /// smaller than the number of durable appends under concurrency).
    pub fn sync_count(&self) -> u64 {
        self.shared.lock().map_or(0, |s| s.syncs)
    }

    /// The sequence number of the last appended entry.
    pub fn last_seq(&self) -> u64 {
        self.shared.lock().map_or(0, |s| s.seq)
    }
}

impl Drop for ChainedLog {
    fn drop(&mut self) {
        // Async appenders still waiting are acknowledged first.
        if let Some(f) = self.flusher.get() {
            f.stop();
        }
        if let Ok(mut stopped) = self.timer.stopped.lock() {
            *stopped = true;
        }
        self.timer.cond.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Best effort: a failure here was either reported to an appender already or leaves a
        // valid, shorter chain.
        let _ = self.shared.sync_to(None, Ckpt::IfUncovered);
    }
}

impl AuditSink for ChainedLog {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        self.append(event).map(|_| ())
    }

    fn record_async(&self, event: &AuditEvent<'_>) -> AuditFuture {
        let appended = self.append_async(event);
        Box::pin(async move { appended.await.map(|_| ()) })
    }
}

impl Acknowledge for Shared {
    fn acknowledge(&self, seq: u64) -> Result<(), AuditError> {
        let st = self.lock()?;
        self.acknowledge_locked(st, seq)
    }
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, State>, AuditError> {
        self.state
            .lock()
            .map_err(|_| AuditError::new(AuditErrorKind::Closed))
    }

    /// Chains one serialized entry: assigns its seq and adds its line to the pending batch (no
    /// I/O; [`Acknowledge::acknowledge`] waits for the batch).
    fn chain(&self, entry_json: &[u8]) -> Result<u64, AuditError> {
        let (mut st, arriving) = self.lock_to_chain()?;
        let seq = self.chain_locked(&mut st, entry_json);
        drop(arriving);
        seq
    }

    /// Takes the lock to chain a built entry. If another thread holds it, this appender is
    /// counted as arriving while it waits (and until the returned guard is dropped, once its
    /// entry is chained), so that a leader taking over in the meantime waits for its entry
    /// (see `lead`). An appender that gets the lock at once is not counted: a lone appender
    /// makes no read-modify-write of the count and never waits.
    fn lock_to_chain(&self) -> Result<(MutexGuard<'_, State>, Option<Arriving<'_>>), AuditError> {
        match self.state.try_lock() {
            Ok(st) => Ok((st, None)),
            Err(TryLockError::WouldBlock) => {
                let arriving = Arriving::new(&self.arriving);
                Ok((self.lock()?, Some(arriving)))
            }
            Err(TryLockError::Poisoned(_)) => Err(AuditError::new(AuditErrorKind::Closed)),
        }
    }

    /// Chains `entry_json` and waits for its acknowledgement, taking the lock once for both
    /// when no batch is being written (a lone appender).
    fn chain_and_acknowledge(&self, entry_json: &[u8]) -> Result<u64, AuditError> {
        let (mut st, arriving) = self.lock_to_chain()?;
        let seq = self.chain_locked(&mut st, entry_json)?;
        drop(arriving);
        self.acknowledge_locked(st, seq)?;
        Ok(seq)
    }

    /// Waits until `seq` is acknowledged (written; and synced if durable), leading the write or
    /// sync when no one else is.
    fn acknowledge_locked<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        seq: u64,
    ) -> Result<(), AuditError> {
        match self.durability {
            Durability::Durable => self.sync_locked(st, seq, Ckpt::IfDue),
            Durability::Buffered => {
                self.wait_until(st, false, Ckpt::IfDue, |st| st.written_seq >= seq)
            }
        }
    }

    fn chain_locked(&self, st: &mut State, entry_json: &[u8]) -> Result<u64, AuditError> {
        if st.failed {
            return Err(AuditError::new(AuditErrorKind::Closed));
        }
        let seq = st.seq + 1;
        let prev = st.head;
        st.head = self
            .mac
            .write_line_json(&mut st.pending, seq, &prev, entry_json);
        st.seq = seq;
        self.chained.store(seq, Ordering::Release);
        if st.uncovered_since.is_none() {
            st.uncovered_since = Some(self.clock.now());
        }
        Ok(seq)
    }

    /// Whether a checkpoint is wanted now for the entries up to `upto`.
    fn wants_checkpoint(&self, st: &State, upto: u64, mode: Ckpt) -> bool {
        if upto <= st.ckpt_seq {
            return false;
        }
        match mode {
            Ckpt::Force | Ckpt::IfUncovered => true,
            Ckpt::IfDue => {
                let interval = self.checkpoint_interval.as_secs().max(1);
                upto - st.ckpt_seq >= self.checkpoint_every
                    || st
                        .uncovered_since
                        .is_some_and(|t| self.clock.now().saturating_sub(t) >= interval)
            }
        }
    }

    /// Waits until `target` (default: everything appended so far) is durable and, as `mode`
    /// asks, checkpointed, leading a write and sync when no one else is.
    fn sync_to(&self, target: Option<u64>, mode: Ckpt) -> Result<(), AuditError> {
        let st = self.lock()?;
        let target = target.unwrap_or(st.seq);
        self.sync_locked(st, target, mode)
    }

    fn sync_locked<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        target: u64,
        mode: Ckpt,
    ) -> Result<(), AuditError> {
        self.wait_until(st, true, mode, |st| {
            st.durable_seq >= target && !self.wants_checkpoint(st, st.durable_seq, mode)
        })
    }

    /// Group commit: returns once `done` holds, becoming the leader (write, and `fdatasync` if
    /// `sync`) whenever no one else is; a leader covers everything pending, so `done` holds when
    /// it returns.
    fn wait_until<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        sync: bool,
        mode: Ckpt,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), AuditError> {
        // Outer `None`: not decided yet. The clock is read only once a batch is in the way, so
        // a lone appender (who leads at once) pays nothing for spinning.
        let mut spin_until: Option<Option<Instant>> = None;
        loop {
            if done(&st) {
                return Ok(());
            }
            if st.failed {
                return Err(AuditError::new(AuditErrorKind::Closed));
            }
            if !st.busy {
                return self.lead(st, sync, mode);
            }
            st = match *spin_until.get_or_insert_with(|| spin_deadline(sync, Instant::now())) {
                Some(until) => {
                    let (st, ended) = self.spin(st, until)?;
                    if !ended {
                        spin_until = Some(None);
                    }
                    st
                }
                None => self.wait(st)?,
            };
        }
    }

    /// Waits outside the lock, without sleeping, until the batch being written ends or `until`
    /// passes; returns the lock again and whether the batch ended.
    fn spin<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        until: Instant,
    ) -> Result<(MutexGuard<'a, State>, bool), AuditError> {
        // Read under the lock while `busy`: the leader bumps it under the lock when it is done.
        let seen = self.batches.load(Ordering::Acquire);
        drop(st);
        let mut turns = 0u32;
        let ended = loop {
            if self.batches.load(Ordering::Acquire) != seen {
                break true;
            }
            std::hint::spin_loop();
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(64) && Instant::now() >= until {
                break false;
            }
        };
        #[allow(unused_mut)]
        let mut st = self.lock()?;
        #[cfg(test)]
        {
            st.spins.0 += 1;
            st.spins.1 += u64::from(ended);
        }
        Ok((st, ended))
    }

    fn wait<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
    ) -> Result<MutexGuard<'a, State>, AuditError> {
        st.waiting += 1;
        let mut st = self
            .cond
            .wait(st)
            .map_err(|_| AuditError::new(AuditErrorKind::Closed))?;
        st.waiting -= 1;
        Ok(st)
    }

    /// Becomes the leader: writes the pending batch (and syncs it) outside the lock.
    fn lead<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        sync: bool,
        mode: Ckpt,
    ) -> Result<(), AuditError> {
        let Some(mut io) = st.io.take() else {
            return Err(AuditError::new(AuditErrorKind::Closed));
        };
        st.busy = true;
        // Under concurrency (the last sync covered several entries), the appenders its sync
        // just released are about to append again: a leader that took the batch at once would
        // leave them for the sync after, so each appender would be served by every other sync.
        // Gathering for an eighth of the last sync's duration (at most 500 µs) lets them join.
        if sync && st.last_batch > 1 && !st.gather.is_zero() {
            let gather = st.gather;
            drop(st);
            let t = Instant::now();
            while t.elapsed() < gather {
                std::thread::yield_now();
            }
            st = self.lock()?;
            #[cfg(test)]
            note_gather(&mut st, t, gather);
        }
        // A buffered batch's `write` costs about as much as chaining an entry: the appenders
        // waiting for the lock to chain a built entry when the leader takes over are waited
        // for, briefly and without the lock, so that one `write` acknowledges them too instead
        // of one each. Appenders still building an entry are not waited for: the `write`
        // overlaps their work.
        let arriving = self.arriving.load(Ordering::Acquire);
        if !sync && arriving > 0 {
            let target = st.seq + arriving as u64;
            drop(st);
            self.await_arrivals(target);
            st = self.lock()?;
        }
        let first = st.durable_seq;
        let batch = std::mem::take(&mut st.pending);
        let (upto, head) = (st.seq, st.head);
        let rotate = io.seg_len + batch.len() as u64 >= self.max_segment_bytes;
        // Checkpoints cover synced entries only: a batch is synced when asked or on rotation.
        let checkpoint = (sync || rotate) && self.wants_checkpoint(&st, upto, mode);
        // The clocks are read only where their reading is used (a checkpoint's start of the
        // uncovered span, a sync's duration): a lone buffered append pays no clock read.
        let taken_at = checkpoint.then(|| self.clock.now());
        drop(st);
        let span = SinkSpan::start(SinkOp::Batch);
        span.number("entries", upto - first);
        span.flag("synced", sync || rotate);
        span.flag("checkpoint", checkpoint);
        let started = sync.then(Instant::now);
        let res = self.write_batch(&mut io, &batch, upto, head, sync || rotate, checkpoint);
        let took = started.map(|t| t.elapsed());
        span.finish(
            res.as_ref()
                .err()
                .map(|_| AuditError::new(AuditErrorKind::Io))
                .as_ref(),
        );
        let mut st = self.lock()?;
        // The batch's allocation is kept for the next one (nothing secret: lines hold no
        // plaintext), unless a burst made it large.
        if st.pending.is_empty() && batch.capacity() <= MAX_SPARE_BATCH {
            let mut batch = batch;
            batch.clear();
            st.pending = batch;
        }
        st.io = Some(io);
        st.busy = false;
        match &res {
            Ok(()) => {
                st.written_seq = upto;
                if sync || rotate {
                    st.durable_seq = upto;
                }
                if let Some(took) = took {
                    st.syncs += 1;
                    st.last_batch = upto - first;
                    st.gather = (took / 8).min(Duration::from_micros(500));
                }
                if let Some(taken_at) = taken_at {
                    st.ckpt_seq = upto;
                    // Entries appended while this batch was written count from when it was
                    // taken.
                    st.uncovered_since = (st.seq > upto).then_some(taken_at);
                }
            }
            Err(_) => st.failed = true,
        }
        // Anyone who takes the lock from here on sees the new state before deciding to wait;
        // spinning appenders see the count change.
        self.batches.fetch_add(1, Ordering::Release);
        let wake = st.waiting > 0;
        drop(st);
        if wake {
            self.cond.notify_all();
        }
        res.map_err(|e| AuditError::with_source(AuditErrorKind::Io, e))
    }

    /// Spins until `target` entries are chained, no appender is arriving (waiting for the lock
    /// to chain a built entry), or the arrival limit passes.
    fn await_arrivals(&self, target: u64) {
        #[cfg(test)]
        self.awaits.fetch_add(1, Ordering::AcqRel);
        let until = Instant::now() + self.arrival_limit;
        let mut turns = 0u32;
        while self.chained.load(Ordering::Acquire) < target
            && self.arriving.load(Ordering::Acquire) > 0
        {
            std::hint::spin_loop();
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(16) && Instant::now() >= until {
                break;
            }
        }
    }

    fn write_batch(
        &self,
        io: &mut Io,
        batch: &[u8],
        upto: u64,
        head: [u8; 32],
        sync: bool,
        checkpoint: bool,
    ) -> std::io::Result<()> {
        if !batch.is_empty() {
            io.file.write_all(batch)?;
            io.seg_len += batch.len() as u64;
        }
        if sync {
            io.file.sync_data()?;
            #[cfg(test)]
            self.data_syncs.fetch_add(1, Ordering::Relaxed);
            if !self.sync_latency.is_zero() {
                std::thread::sleep(self.sync_latency);
            }
        }
        if checkpoint {
            let c = Checkpoint::sign(&self.signer, upto, head, self.clock.now());
            io.ckpt.write_all(&c.to_line())?;
            io.ckpt.sync_data()?;
        }
        if io.seg_len >= self.max_segment_bytes {
            let next = io.seg_no + 1;
            let path = segment_path(&io.dir, next);
            let file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&path)?;
            file.sync_all()?;
            File::open(&io.dir)?.sync_all()?;
            io.file = file;
            io.seg_no = next;
            io.seg_len = 0;
        }
        Ok(())
    }
}

/// One appender waiting for the lock to chain a built entry, counted in [`Shared::arriving`]
/// until dropped (once its entry is chained, or when chaining fails).
struct Arriving<'a>(&'a AtomicUsize);

impl<'a> Arriving<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Arriving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Until when a waiter that starts waiting at `now` may spin: buffered waits only, and for
/// [`SPIN_LIMIT`] in all per call.
fn spin_deadline(sync: bool, now: Instant) -> Option<Instant> {
    (!sync).then(|| now + SPIN_LIMIT)
}

/// Test builds only: counts a gather, and whether it stopped before its time.
#[cfg(test)]
fn note_gather(st: &mut State, started: Instant, gather: Duration) {
    st.gathers.0 += 1;
    st.gathers.1 += u64::from(started.elapsed() < gather);
}

/// Test builds only: counts a run of the background timer.
#[cfg(test)]
fn note_tick(shared: &Shared) {
    if let Ok(mut st) = shared.lock() {
        st.ticks += 1;
    }
}

/// Runs `f` with this thread's entry buffer, emptied (it is kept between appends, so an append
/// allocates nothing for its entry; an entry holds labels, pseudonyms and digests only, never a
/// value or a raw identifier).
fn with_entry_buffer<T>(
    f: impl FnOnce(&mut Vec<u8>) -> Result<T, AuditError>,
) -> Result<T, AuditError> {
    thread_local! {
        static ENTRY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    ENTRY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let out = f(&mut buf);
            if buf.capacity() > MAX_SPARE_ENTRY {
                *buf = Vec::new();
            }
            out
        }
        // Only if an append ran inside another on this thread: a buffer of its own.
        Err(_) => f(&mut Vec::with_capacity(512)),
    })
}

/// The background timer: syncs a buffered log and writes checkpoints that the time bound makes
/// due, until the log is dropped or closed.
fn spawn_timer(
    shared: Weak<Shared>,
    timer: Arc<Timer>,
    interval: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("audit-sync".into())
        .spawn(move || {
            loop {
                let Ok(stopped) = timer.stopped.lock() else {
                    return;
                };
                let Ok((stopped, _)) =
                    timer
                        .cond
                        .wait_timeout_while(stopped, interval, |stopped| !*stopped)
                else {
                    return;
                };
                if *stopped {
                    return;
                }
                drop(stopped);
                let Some(s) = shared.upgrade() else { return };
                #[cfg(test)]
                note_tick(&s);
                if s.sync_to(None, Ckpt::IfDue).is_err() {
                    return;
                }
            }
        })
}

/// Takes the exclusive lock on the log directory, waiting at most `wait` for it.
fn lock_dir(dir: &Path, wait: Duration) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io_err)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::new(AuditErrorKind::Locked));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("audit-{n:06}.log"))
}

fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("audit-")?.strip_suffix(".log")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// Every segment in `dir`, in number order, with its contents.
///
/// # Errors
/// [`AuditErrorKind::Io`] if the directory or a segment cannot be read.
pub(crate) fn read_segments(dir: &Path) -> Result<Vec<(u64, PathBuf, Vec<u8>)>, AuditError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if let Some(n) = entry.file_name().to_str().and_then(segment_number) {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(n, p)| std::fs::read(&p).map(|d| (n, p, d)).map_err(io_err))
        .collect()
}

fn create_file(dir: &Path, path: &Path) -> Result<(), AuditError> {
    let f = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(path)
        .map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    sync_dir(dir)
}

/// Copies the torn tail `bytes` (at `offset` in `segment`) to a `.torn` file, then truncates.
fn move_aside(
    dir: &Path,
    segment: &Path,
    offset: u64,
    bytes: &[u8],
) -> Result<PathBuf, AuditError> {
    let base = segment.with_extension("log.torn");
    let mut path = base.clone();
    let mut n = 1;
    let mut f = loop {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                path = PathBuf::from(format!("{}.{n}", base.display()));
            }
            Err(e) => return Err(io_err(e)),
        }
    };
    f.write_all(bytes).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    let seg = OpenOptions::new()
        .write(true)
        .open(segment)
        .map_err(io_err)?;
    seg.set_len(offset).map_err(io_err)?;
    seg.sync_all().map_err(io_err)?;
    sync_dir(dir)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::testing::with_sample_event;

    /// A builder with the tests' keys.
    fn builder(dir: impl AsRef<Path>) -> ChainedLogBuilder {
        ChainedLog::builder(dir)
            .key(AuditKey::from_bytes([1; 32]))
            .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
    }

    /// Three entries, each checkpointed as it is appended, then a clean close.
    fn three_checkpointed_entries(dir: &Path, max_segment_bytes: u64) {
        let (log, _) = builder(dir)
            .checkpoint_every(1, Duration::from_secs(3600))
            .max_segment_bytes(max_segment_bytes)
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        for n in 0..3 {
            with_sample_event(n, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// A log of `durability` whose background timer never syncs during a test.
    fn timerless(dir: &Path, durability: Durability) -> ChainedLogBuilder {
        builder(dir)
            .durability(durability)
            .sync_interval(Duration::from_secs(3600))
    }

    fn test_log(dir: &Path, durability: Durability) -> ChainedLog {
        builder(dir)
            .durability(durability)
            .open()
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    /// Swaps the segment for a read-only handle: the next write fails like a full disk or a
    /// failed fdatasync would.
    fn make_writes_fail(log: &ChainedLog, dir: &Path) {
        let mut st = log.shared.lock().unwrap_or_else(|e| panic!("{e}"));
        let io = st.io.as_mut().unwrap_or_else(|| panic!("no io"));
        io.file = File::open(segment_path(dir, 1)).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn async_appends_are_acknowledged_by_the_same_group_commit_and_fail_the_same_way() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        for durability in [Durability::Durable, Durability::Buffered] {
            let sub = dir.path().join(format!("{durability:?}"));
            let log = test_log(&sub, durability);
            let append = |n| with_sample_event(n, None, |e| log.append_async(e));
            // The seq is assigned when the call returns, before the future is awaited.
            let (a, b) = (append(0), append(1));
            assert_eq!(log.last_seq(), 2);
            assert_eq!(rt.block_on(b).ok(), Some(2));
            assert_eq!(rt.block_on(a).ok(), Some(1));
            let durable = log.shared.lock().map(|s| s.durable_seq).unwrap_or(0);
            let written = log.shared.lock().map(|s| s.written_seq).unwrap_or(0);
            assert_eq!(written, 2, "acknowledged means written");
            assert_eq!(
                durable >= 2,
                durability == Durability::Durable,
                "and synced if durable"
            );
            make_writes_fail(&log, &sub);
            let failed = rt.block_on(append(2)).err().map(|e| e.kind());
            assert_eq!(failed, Some(AuditErrorKind::Io), "{durability:?}");
            let closed = rt.block_on(append(3)).err().map(|e| e.kind());
            assert_eq!(closed, Some(AuditErrorKind::Closed), "{durability:?}");
        }
    }

    #[test]
    fn a_failed_write_or_sync_closes_the_log_for_good() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for durability in [Durability::Durable, Durability::Buffered] {
            let sub = dir.path().join(format!("{durability:?}"));
            let log = test_log(&sub, durability);
            let append = |n| with_sample_event(n, None, |e| log.append(e));
            assert_eq!(append(0).ok(), Some(1));
            make_writes_fail(&log, &sub);
            let first = match durability {
                Durability::Durable => append(1).map(|_| ()),
                Durability::Buffered => append(1).and_then(|_| log.sync()),
            };
            assert_eq!(first.map_err(|e| e.kind()), Err(AuditErrorKind::Io));
            for n in 2..5 {
                let kind = append(n).err().map(|e| e.kind());
                assert_eq!(kind, Some(AuditErrorKind::Closed), "{durability:?}");
            }
            assert_eq!(
                log.sync().err().map(|e| e.kind()),
                Some(AuditErrorKind::Closed)
            );
        }
    }

    #[test]
    fn buffered_acknowledges_after_the_write_before_any_sync() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (log, _) = timerless(dir.path(), Durability::Buffered)
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        for n in 0..5 {
            let seq =
                with_sample_event(n, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
            // Another reader of the file (a crash-surviving observer) sees every acknowledged
            // line: nothing acknowledged is still inside this process.
            let on_disk =
                std::fs::read(segment_path(dir.path(), 1)).unwrap_or_else(|e| panic!("{e}"));
            let lines = on_disk.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(lines, seq, "entry {seq} acknowledged before it was written");
        }
        assert_eq!(
            log.sync_count(),
            0,
            "no fdatasync was needed to acknowledge"
        );
    }

    /// Concurrent buffered appenders wait for a batch's `write` by spinning, and see it end
    /// (the leader's count moves); every acknowledged entry is on disk. Durable appenders never
    /// spin: they sleep through the `fdatasync`.
    ///
    /// Leaders here do not wait for arriving appenders (limit zero): with the wait, an appender
    /// that arrives during a batch is mostly written by it and rarely needs to spin. Whether two
    /// appenders overlap at all still depends on the scheduler (on a busy machine the two
    /// threads may rarely run at once), so buffered appends go on in rounds of 4,000 until a
    /// spin that saw its batch end was counted, for at most 100 rounds; a log whose waiters
    /// never spin fails after them.
    #[test]
    fn buffered_waiters_spin_until_the_batch_ends_durable_ones_sleep() {
        for durability in [Durability::Buffered, Durability::Durable] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let log = arrival_log(dir.path(), durability, Duration::ZERO);
            let (per_thread, rounds) = if durability == Durability::Buffered {
                (2000, 100)
            } else {
                (50, 1)
            };
            let mut appended = 0;
            for round in 0..rounds {
                std::thread::scope(|s| {
                    for t in 0..2 {
                        let log = &log;
                        s.spawn(move || {
                            for n in 0..per_thread {
                                let id = (round * 2 + t) * 10_000 + n;
                                with_sample_event(id, None, |e| log.append(e))
                                    .unwrap_or_else(|e| panic!("{e}"));
                            }
                        });
                    }
                });
                appended += 2 * per_thread;
                let (spun, ended) = log.shared.lock().map(|s| s.spins).unwrap_or_default();
                if spun > 0 && ended > 0 {
                    break;
                }
            }
            let (spun, ended) = log.shared.lock().map(|s| s.spins).unwrap_or_default();
            match durability {
                Durability::Buffered => {
                    assert!(spun > 0, "no appender spun in {appended} appends");
                    assert!(ended > 0, "{spun} spins, none saw its batch end");
                }
                _ => assert_eq!(spun, 0, "a durable appender spun"),
            }
            let written = log.shared.lock().map(|s| s.written_seq).unwrap_or(0);
            assert_eq!(written, appended);
            drop(log);
            // Every segment (many rounds may fill more than one).
            let lines: u64 = (1..)
                .map(|n| std::fs::read(segment_path(dir.path(), n)))
                .take_while(Result::is_ok)
                .flatten()
                .map(|d| d.iter().filter(|&&b| b == b'\n').count() as u64)
                .sum();
            assert_eq!(lines, appended);
        }
    }

    #[test]
    fn only_buffered_waits_spin_and_for_the_limit() {
        let now = Instant::now();
        assert_eq!(spin_deadline(false, now), Some(now + SPIN_LIMIT));
        assert_eq!(spin_deadline(true, now), None);
        assert_eq!(SPIN_LIMIT, Duration::from_micros(20));
    }

    /// A spin lasts until its deadline when no batch ends (it does not give up early), and ends
    /// as soon as the leader's count moves.
    #[test]
    fn a_spin_waits_for_the_batch_or_its_deadline() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = test_log(dir.path(), Durability::Buffered);
        let shared = &log.shared;
        let wait = Duration::from_millis(5);
        let started = Instant::now();
        let st = shared.lock().unwrap_or_else(|e| panic!("{e}"));
        let (st, ended) = shared
            .spin(st, started + wait)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(st);
        assert!(!ended, "no batch ended");
        assert!(started.elapsed() >= wait, "gave up before its deadline");
        std::thread::scope(|s| {
            let st = shared.lock().unwrap_or_else(|e| panic!("{e}"));
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(1));
                shared.batches.fetch_add(1, Ordering::Release);
            });
            let (_st, ended) = shared
                .spin(st, Instant::now() + Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(ended, "the leader's count moved");
        });
    }

    /// While a long batch is being written (a sync the background timer or `sync` leads), a
    /// buffered appender spins once, up to its limit, then sleeps: it does not spin again and
    /// again for the batch's whole length.
    #[test]
    fn a_long_batch_is_waited_for_asleep() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (log, _) = timerless(dir.path(), Durability::Buffered)
            .simulated_sync_latency(Duration::from_millis(100))
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        with_sample_event(1, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        std::thread::scope(|s| {
            s.spawn(|| log.sync().unwrap_or_else(|e| panic!("{e}")));
            // The sync leads (busy) for 100 ms; the append arrives in the middle of it.
            while !log.shared.lock().map(|st| st.busy).unwrap_or(true) {
                std::thread::yield_now();
            }
            with_sample_event(2, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        });
        let (spun, ended) = log.shared.lock().map(|s| s.spins).unwrap_or((99, 99));
        assert!(spun <= 2, "spun {spun} times during one long batch");
        assert_eq!(ended, 0, "the batch outlasted the spin");
    }

    /// Keeps the first `n` lines of the checkpoint file (the genesis checkpoint is the first).
    fn keep_checkpoints(dir: &Path, n: usize) {
        let path = dir.join(CHECKPOINT_FILE);
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let end = data
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(n - 1)
            .map_or(data.len(), |(i, _)| i + 1);
        std::fs::write(&path, &data[..end]).unwrap_or_else(|e| panic!("{e}"));
    }

    fn reopen(dir: &Path) -> Result<(ChainedLog, OpenReport), AuditError> {
        builder(dir).open()
    }

    /// Flips a bit inside line `line` (from 1) of `segment`; returns the segment's new bytes.
    fn damage_line(dir: &Path, segment: u64, line: usize) -> Vec<u8> {
        let path = segment_path(dir, segment);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let start = match line {
            1 => 0,
            _ => bytes
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'\n')
                .nth(line - 2)
                .map_or(0, |(i, _)| i + 1),
        };
        bytes[start + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        bytes
    }

    #[test]
    fn a_bad_line_before_the_last_is_corruption_not_a_torn_tail() {
        // Only the very last line of the last segment can be torn by a crash. The checkpoints
        // are cut back to seq 1 so that the check against the latest checkpoint (which would
        // also refuse) does not decide: the torn-tail rule alone must.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        three_checkpointed_entries(dir.path(), u64::MAX);
        keep_checkpoints(dir.path(), 2);
        let damaged = damage_line(dir.path(), 1, 2);
        let opened = reopen(dir.path());
        assert_eq!(
            opened.err().map(|e| e.kind()),
            Some(AuditErrorKind::Corrupt { seq: 2 })
        );
        let after = std::fs::read(segment_path(dir.path(), 1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after, damaged, "nothing was moved aside or truncated");
    }

    #[test]
    fn a_bad_last_line_of_an_earlier_segment_is_corruption() {
        // Every batch fills a segment: segments 1 to 3 hold one line each, segment 4 is empty.
        // The last line of the chain is then in segment 3, which a crash cannot tear (a new
        // segment is started only after the previous one's batch was written).
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        three_checkpointed_entries(dir.path(), 1);
        assert!(segment_path(dir.path(), 4).exists());
        keep_checkpoints(dir.path(), 3);
        let damaged = damage_line(dir.path(), 3, 1);
        let opened = reopen(dir.path());
        assert_eq!(
            opened.err().map(|e| e.kind()),
            Some(AuditErrorKind::Corrupt { seq: 3 })
        );
        let after = std::fs::read(segment_path(dir.path(), 3)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after, damaged, "nothing was moved aside or truncated");
    }

    #[test]
    fn debug_names_settings_not_keys() {
        let b = ChainedLog::builder("/var/log/fieldseal")
            .key(AuditKey::from_bytes([0xab; 32]))
            .durability(Durability::Buffered);
        let text = format!("{b:?}");
        assert!(text.starts_with("ChainedLogBuilder"), "{text}");
        assert!(
            text.contains("/var/log/fieldseal") && text.contains("Buffered"),
            "{text}"
        );
        assert!(!text.contains("ab, ab") && !text.contains("171"), "{text}");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = test_log(dir.path(), Durability::Durable);
        let text = format!("{log:?}");
        assert_eq!(text, "ChainedLog { durability: Durable, .. }");
    }

    #[test]
    fn batch_and_entry_buffers_are_kept_unless_a_burst_grew_them() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = test_log(dir.path(), Durability::Buffered);
        let pending = || log.shared.lock().map_or(0, |s| s.pending.capacity());
        assert_eq!(pending(), FLUSH_BYTES, "room for a batch from the start");
        assert_eq!(FLUSH_BYTES, 64 * 1024);
        for n in 0..3 {
            with_sample_event(n, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(pending(), FLUSH_BYTES, "a written batch's buffer is reused");
        }
        // A burst larger than the spare limit: its buffer is not kept.
        {
            let mut st = log.shared.lock().unwrap_or_else(|e| panic!("{e}"));
            st.pending.reserve(MAX_SPARE_BATCH + 1);
        }
        with_sample_event(3, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pending(), 0, "a large batch buffer is released");
        assert_eq!(MAX_SPARE_BATCH, 1024 * 1024);
        // A burst up to the limit is kept.
        {
            let mut st = log.shared.lock().unwrap_or_else(|e| panic!("{e}"));
            st.pending.reserve(MAX_SPARE_BATCH / 2);
        }
        with_sample_event(4, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            pending() >= MAX_SPARE_BATCH / 2,
            "a moderate batch buffer is kept"
        );

        // The thread's entry buffer: kept up to MAX_SPARE_ENTRY, released beyond.
        let grow = |n: usize| {
            with_entry_buffer(|b| {
                b.reserve_exact(n);
                Ok(b.capacity())
            })
        };
        let kept = |min: usize| with_entry_buffer(|b| Ok(b.capacity() >= min));
        assert_eq!(MAX_SPARE_ENTRY, 16 * 1024);
        assert!(grow(MAX_SPARE_ENTRY).is_ok());
        assert_eq!(kept(MAX_SPARE_ENTRY).ok(), Some(true), "kept at the limit");
        assert!(grow(MAX_SPARE_ENTRY + 1).is_ok());
        assert_eq!(kept(1).ok(), Some(false), "released beyond it");
    }

    #[test]
    fn the_builder_defaults_are_the_documented_ones() {
        let b = ChainedLog::builder("logs");
        assert_eq!(b.durability, Durability::Durable);
        assert_eq!(b.max_segment_bytes, 64 << 20);
        assert_eq!(b.checkpoint_every, 1000);
        assert_eq!(b.checkpoint_interval, Duration::from_secs(10));
        assert_eq!(b.sync_interval, Duration::from_secs(1));
        assert_eq!(b.lock_wait, Duration::from_millis(200));
        assert_eq!(b.sync_latency, Duration::ZERO);
        assert!(!b.accept_missing_checkpoints);
        assert_eq!(
            b.max_segment_bytes(0).max_segment_bytes,
            1,
            "at least one byte"
        );
    }

    fn latest_checkpoint(dir: &Path) -> Option<u64> {
        let signer = CheckpointSigningKey::from_bytes([2; 32]);
        ckpt_file::scan(&dir.join(CHECKPOINT_FILE), &signer)
            .ok()
            .and_then(|s| s.latest())
            .map(|c| c.seq)
    }

    #[test]
    fn checkpoint_covers_the_head_and_durable_appends_are_counted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (log, _) = builder(dir.path())
            .sync_interval(Duration::from_secs(3600))
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        for n in 0..3 {
            with_sample_event(n, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            log.sync_count(),
            3,
            "a lone durable appender syncs each entry"
        );
        assert_eq!(
            log.shared.data_syncs.load(Ordering::Relaxed),
            3,
            "each durable acknowledgement followed an fdatasync of the log file"
        );
        assert_eq!(
            latest_checkpoint(dir.path()),
            Some(0),
            "1,000 entries not reached"
        );
        log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(latest_checkpoint(dir.path()), Some(3));
        let lines = |d: &Path| {
            std::fs::read(d.join(CHECKPOINT_FILE))
                .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        };
        let before = lines(dir.path());
        log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lines(dir.path()), before, "none again for the same head");
    }

    #[test]
    fn a_terminated_bad_last_line_is_moved_aside_with_its_newline() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        three_checkpointed_entries(dir.path(), u64::MAX);
        keep_checkpoints(dir.path(), 3);
        let damaged = damage_line(dir.path(), 1, 3);
        let third = damaged
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(1)
            .map_or(0, |(i, _)| i + 1);
        let (_, report) = reopen(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let torn = report.torn.unwrap_or_else(|| panic!("no torn line"));
        assert_eq!(torn.seq, 3);
        assert_eq!(
            torn.len,
            (damaged.len() - third) as u64,
            "the line and its newline"
        );
        let moved = std::fs::read(&torn.moved_to).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            moved,
            damaged[third..damaged.len() - 1],
            "the line, not its newline"
        );
    }

    #[test]
    fn entries_left_uncovered_by_a_crash_get_their_checkpoint_when_due() {
        // A crash left entries 2 and 3 without a checkpoint (the file is cut back to seq 1).
        // Reopened and left idle, the log must still checkpoint them once the time bound
        // passes: the bound counts from the reopening.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        three_checkpointed_entries(dir.path(), u64::MAX);
        keep_checkpoints(dir.path(), 2);
        let clock = Arc::new(crate::clock::FixedClock::new(1_800_000_000));
        let (log, _) = builder(dir.path())
            .checkpoint_every(1000, Duration::from_secs(10))
            .sync_interval(Duration::from_millis(5))
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(latest_checkpoint(dir.path()), Some(1), "not yet due");
        clock.advance(10);
        let waited = Instant::now();
        while latest_checkpoint(dir.path()) != Some(3) && waited.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            latest_checkpoint(dir.path()),
            Some(3),
            "the timer covered them"
        );
        drop(log);
    }

    /// A buffered log whose leaders wait up to `limit` for arriving appenders.
    fn arrival_log(dir: &Path, durability: Durability, limit: Duration) -> ChainedLog {
        let mut b = timerless(dir, durability);
        b.arrival_limit = limit;
        b.open().unwrap_or_else(|e| panic!("{e}")).0
    }

    /// Waits (at most a minute) until `n` leaders have started waiting for arrivals.
    fn until_awaits(log: &ChainedLog, n: u64) {
        let started = Instant::now();
        while log.shared.awaits.load(Ordering::Acquire) < n
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::yield_now();
        }
        assert_eq!(log.shared.awaits.load(Ordering::Acquire), n);
    }

    #[test]
    fn a_buffered_leader_waits_for_an_arriving_appender_and_writes_both_lines_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = arrival_log(dir.path(), Durability::Buffered, Duration::from_secs(60));
        // This thread has built an entry and is waiting for the lock to chain it.
        let arriving = Arriving::new(&log.shared.arriving);
        std::thread::scope(|s| {
            let leader = s.spawn(|| with_sample_event(0, None, |e| log.append(e)));
            until_awaits(&log, 1);
            // One that starts after the leader began waiting is not waited for.
            let late = Arriving::new(&log.shared.arriving);
            let mut entry = Vec::new();
            with_sample_event(1, None, |e| log.entry_into(e, &mut entry))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(log.shared.chain(&entry).ok(), Some(2));
            let chained = Instant::now();
            drop(arriving);
            assert_eq!(leader.join().ok().and_then(Result::ok), Some(1));
            assert!(chained.elapsed() < Duration::from_secs(30), "not the limit");
            drop(late);
        });
        let st = log.shared.lock().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            st.written_seq, 2,
            "one write covered the arrival's line too"
        );
        assert_eq!(log.shared.batches.load(Ordering::Acquire), 1);
        drop(st);
        assert_eq!(log.shared.acknowledge(2).ok(), Some(()));
        assert_eq!(
            log.shared.batches.load(Ordering::Acquire),
            1,
            "no second write"
        );
        assert_eq!(log.shared.arriving.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_arrival_that_never_comes_delays_a_leader_for_the_limit_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let limit = Duration::from_millis(50);
        let log = arrival_log(dir.path(), Durability::Buffered, limit);
        let stalled = Arriving::new(&log.shared.arriving);
        std::thread::scope(|s| {
            let (done, appended) = std::sync::mpsc::channel();
            let log = &log;
            s.spawn(move || {
                let started = Instant::now();
                let seq = with_sample_event(0, None, |e| log.append(e));
                let _ = done.send((seq.ok(), started.elapsed()));
            });
            // The leader returns although the arrival never comes while this test waits.
            let got = appended.recv_timeout(Duration::from_secs(30));
            // Let a leader that did not stop at the limit go, so that the scope can end.
            drop(stalled);
            let (seq, took) = got.unwrap_or_else(|e| panic!("the leader still waits: {e}"));
            assert_eq!(seq, Some(1));
            assert!(took >= limit, "the leader waited");
        });
        assert_eq!(log.shared.awaits.load(Ordering::Acquire), 1);
        assert_eq!(log.shared.arriving.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_arrival_that_fails_to_chain_ends_the_wait_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = arrival_log(dir.path(), Durability::Buffered, Duration::from_secs(60));
        let failing = Arriving::new(&log.shared.arriving);
        std::thread::scope(|s| {
            let leader = s.spawn(|| with_sample_event(0, None, |e| log.append(e)));
            until_awaits(&log, 1);
            // It stops arriving without chaining anything (as when chaining fails).
            let gave_up = Instant::now();
            drop(failing);
            assert_eq!(leader.join().ok().and_then(Result::ok), Some(1));
            assert!(gave_up.elapsed() < Duration::from_secs(30), "not the limit");
        });
        assert_eq!(log.last_seq(), 1);
    }

    #[test]
    fn only_buffered_leaders_with_entries_arriving_wait_and_failures_stop_arriving() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A lone appender, buffered: nobody arriving, nobody waited for.
        let alone = arrival_log(
            &dir.path().join("alone"),
            Durability::Buffered,
            ARRIVAL_LIMIT,
        );
        for n in 0..20 {
            with_sample_event(n, None, |e| alone.append(e)).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(alone.shared.awaits.load(Ordering::Acquire), 0);
        // An appender that finds the lock taken is arriving while it waits for it, until its
        // entry is chained (it does not then wait for itself as the leader), or until chaining
        // fails.
        let contended = |expected: Result<u64, AuditErrorKind>| {
            std::thread::scope(|s| {
                let st = alone.shared.lock().unwrap_or_else(|e| panic!("{e}"));
                let blocked = s.spawn(|| with_sample_event(0, None, |e| alone.append(e)));
                let started = Instant::now();
                while alone.shared.arriving.load(Ordering::Acquire) == 0
                    && started.elapsed() < Duration::from_secs(60)
                {
                    std::thread::yield_now();
                }
                assert_eq!(alone.shared.arriving.load(Ordering::Acquire), 1);
                drop(st);
                let got = blocked
                    .join()
                    .unwrap_or_else(|_| panic!("appender panicked"));
                assert_eq!(got.map_err(|e| e.kind()), expected);
            });
            assert_eq!(alone.shared.arriving.load(Ordering::Acquire), 0);
        };
        contended(Ok(21));
        assert_eq!(alone.shared.awaits.load(Ordering::Acquire), 0);
        make_writes_fail(&alone, &dir.path().join("alone"));
        let failed = with_sample_event(0, None, |e| alone.append(e));
        assert_eq!(failed.err().map(|e| e.kind()), Some(AuditErrorKind::Io));
        contended(Err(AuditErrorKind::Closed));
        // Durable leaders sync at once (they gather by the last sync's duration instead).
        let durable = arrival_log(
            &dir.path().join("durable"),
            Durability::Durable,
            ARRIVAL_LIMIT,
        );
        let arriving = Arriving::new(&durable.shared.arriving);
        assert_eq!(
            with_sample_event(0, None, |e| durable.append(e)).ok(),
            Some(1)
        );
        assert_eq!(durable.shared.awaits.load(Ordering::Acquire), 0);
        drop(arriving);
    }

    #[test]
    fn group_commit_gathers_only_under_concurrency_and_leaves_no_waiter_counted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (log, _) = builder(dir.path())
            .simulated_sync_latency(Duration::from_millis(2))
            .sync_interval(Duration::from_secs(3600))
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        let gathers = || log.shared.lock().map_or((9, 9), |s| s.gathers);
        for n in 0..10 {
            with_sample_event(n, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(gathers(), (0, 0), "a lone appender is never held back");
        std::thread::scope(|s| {
            for t in 0..4 {
                let log = &log;
                s.spawn(move || {
                    for n in 0..30 {
                        with_sample_event(t * 100 + n, None, |e| log.append(e))
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                });
            }
        });
        assert_eq!(log.last_seq(), 130);
        let (gathered, cut_short) = gathers();
        assert!(gathered > 0, "appenders released by a sync were waited for");
        assert_eq!(cut_short, 0, "every gather lasted its full time");
        assert!(log.sync_count() < 130, "concurrent appenders shared syncs");
        let waiting = log.shared.lock().map_or(9, |s| s.waiting);
        assert_eq!(
            waiting, 0,
            "no waiter is still counted once all have returned"
        );
    }

    #[test]
    fn a_filled_segment_is_synced_before_the_next_is_started() {
        // Even a buffered log syncs the batch that fills a segment: a power loss must not keep
        // a later segment while losing the end of an earlier one (a gap in the chain).
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (log, _) = timerless(dir.path(), Durability::Buffered)
            .max_segment_bytes(5000)
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        let durable = || log.shared.lock().map_or(0, |s| s.durable_seq);
        let data_syncs = || log.shared.data_syncs.load(Ordering::Relaxed);
        with_sample_event(0, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(durable(), 0, "a buffered append alone is not synced");
        assert_eq!(data_syncs(), 0, "nor fdatasynced");
        let mut n = 1;
        while !segment_path(dir.path(), 2).exists() {
            assert_eq!(
                durable(),
                0,
                "synced before segment 1 was full ({n} entries)"
            );
            with_sample_event(n, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
            assert!(n < 100, "the segment never filled");
        }
        assert_eq!(durable(), n, "the batch that filled segment 1 was synced");
        assert_eq!(data_syncs(), 1, "by an fdatasync of the log file");
        log.sync().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            data_syncs(),
            2,
            "an explicit sync of a buffered log fdatasyncs it"
        );
    }

    #[test]
    fn the_timer_runs_at_its_interval_and_stops_with_the_log() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let open = |sub: &str, interval| {
            ChainedLog::builder(dir.path().join(sub))
                .key(AuditKey::from_bytes([1; 32]))
                .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
                .sync_interval(interval)
                .open()
                .unwrap_or_else(|e| panic!("{e}"))
                .0
        };
        let (idle, busy) = (
            open("idle", Duration::from_secs(3600)),
            open("busy", Duration::from_millis(20)),
        );
        let ticks = |log: &ChainedLog| log.shared.lock().map_or(0, |s| s.ticks);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(ticks(&idle), 0, "an hour's interval has not passed");
        let n = ticks(&busy);
        assert!((1..=30).contains(&n), "{n} ticks in 300 ms at 20 ms");
        // Dropping joins the timer at once, whatever its interval (a test run would otherwise
        // wait an hour).
        drop(idle);
        drop(busy);
    }

    #[test]
    fn open_waits_out_a_closing_holder_of_the_lock() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = test_log(dir.path(), Durability::Durable);
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        let second = builder(dir.path())
            .lock_wait(Duration::from_secs(30))
            .open();
        assert!(second.is_ok(), "the lock was released within the wait");
        assert!(closer.join().is_ok());
        let third = builder(dir.path())
            .lock_wait(Duration::from_millis(50))
            .open();
        assert_eq!(third.err().map(|e| e.kind()), Some(AuditErrorKind::Locked));
    }

    #[test]
    fn segment_names_are_six_or_more_digits_from_one() {
        assert_eq!(segment_number("audit-000001.log"), Some(1));
        assert_eq!(segment_number("audit-123456.log"), Some(123_456));
        assert_eq!(segment_number("audit-1234567.log"), Some(1_234_567));
        for bad in [
            "audit-000000.log",
            "audit-00001.log",
            "audit-1.log",
            "audit-00000a.log",
            "audit-+00001.log",
            "audit-000001.log.torn",
            "audit-000001.txt",
            "x-000001.log",
        ] {
            assert_eq!(segment_number(bad), None, "{bad}");
        }
        assert_eq!(
            segment_path(Path::new("d"), 7),
            Path::new("d").join("audit-000007.log")
        );
    }

    #[test]
    fn torn_tails_are_moved_aside_under_names_never_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        drop(test_log(dir.path(), Durability::Durable));
        let seg = segment_path(dir.path(), 1);
        let mut moved = Vec::new();
        for n in 0..3 {
            let (log, _) = reopen(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            with_sample_event(n, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
            drop(log);
            // A crash in the middle of the next line.
            let mut f = OpenOptions::new()
                .append(true)
                .open(&seg)
                .unwrap_or_else(|e| panic!("{e}"));
            f.write_all(format!("{{\"seq\":{n}").as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            drop(f);
            let (_, report) = reopen(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            let torn = report.torn.unwrap_or_else(|| panic!("no torn line"));
            moved.push(torn.moved_to);
        }
        let names: Vec<_> = moved
            .iter()
            .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let expected = [
            "audit-000001.log.torn",
            "audit-000001.log.torn.2",
            "audit-000001.log.torn.3",
        ];
        assert_eq!(names, expected.map(|n| Some(n.to_owned())));
        for (n, p) in moved.iter().enumerate() {
            let text = std::fs::read(p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                text,
                format!("{{\"seq\":{n}").into_bytes(),
                "each kept its own tail"
            );
        }
    }

    /// A durable log on `clock` whose checkpoints are due after 10 s (or 1,000 entries), its
    /// timer every 5 ms.
    fn timed_log(dir: &Path, clock: &Arc<crate::clock::FixedClock>, latency_ms: u64) -> ChainedLog {
        builder(dir)
            .checkpoint_every(1000, Duration::from_secs(10))
            .sync_interval(Duration::from_millis(5))
            .simulated_sync_latency(Duration::from_millis(latency_ms))
            .clock(Arc::clone(clock) as Arc<dyn Clock>)
            .open()
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    fn wait_for_checkpoint(dir: &Path, seq: u64) -> Option<u64> {
        let waited = Instant::now();
        while latest_checkpoint(dir) != Some(seq) && waited.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        latest_checkpoint(dir)
    }

    #[test]
    fn the_time_bound_counts_from_the_first_uncovered_entry() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let clock = Arc::new(crate::clock::FixedClock::new(1_800_000_000));
        let log = timed_log(dir.path(), &clock, 0);
        with_sample_event(0, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(latest_checkpoint(dir.path()), Some(1));
        // Nothing is uncovered now; an entry appended 5 s later is due 10 s after that, not 10 s
        // after the checkpoint.
        clock.advance(5);
        with_sample_event(1, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        clock.advance(5);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            latest_checkpoint(dir.path()),
            Some(1),
            "due only 10 s after entry 2"
        );
        clock.advance(5);
        assert_eq!(wait_for_checkpoint(dir.path(), 2), Some(2));
    }

    #[test]
    fn entries_appended_while_a_checkpoint_is_written_keep_their_time_bound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let clock = Arc::new(crate::clock::FixedClock::new(1_800_000_000));
        let log = timed_log(dir.path(), &clock, 100);
        with_sample_event(0, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        std::thread::scope(|s| {
            // The checkpoint's batch sleeps 100 ms after its sync; entry 2 is appended then.
            s.spawn(|| log.checkpoint().unwrap_or_else(|e| panic!("{e}")));
            std::thread::sleep(Duration::from_millis(30));
            with_sample_event(1, None, |e| log.append(e)).unwrap_or_else(|e| panic!("{e}"));
        });
        assert_eq!(log.last_seq(), 2);
        // No further append: only the time bound can cover entry 2.
        clock.advance(10);
        assert_eq!(wait_for_checkpoint(dir.path(), 2), Some(2));
    }

    #[test]
    fn a_genesis_checkpoint_must_name_the_genesis_head() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let signer = CheckpointSigningKey::from_bytes([2; 32]);
        let forged = Checkpoint::sign(&signer, 0, [7; 32], 1).to_line();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), forged).unwrap_or_else(|e| panic!("{e}"));
        let opened = builder(dir.path()).open();
        assert_eq!(
            opened.err().map(|e| e.kind()),
            Some(AuditErrorKind::Corrupt { seq: 1 })
        );
    }
}
