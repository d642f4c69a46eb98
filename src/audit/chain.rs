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
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::ack::{Acknowledge, Flusher};
use super::ckpt_file::{self, io_err, sync_dir};
use super::event::EventRecord;
use super::keys::{AuditKey, CheckpointSigningKey, PseudonymKey};
use super::line::{ChainMac, Checkpoint, GENESIS};
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
            }),
            cond: Condvar::new(),
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
        // seq, prev and mac add under 200 bytes; the verifier refuses longer lines, so they are
        // refused here (the operation fails closed) rather than written.
        if entry.len() + 256 > super::line::MAX_LINE {
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
        let mut st = self.lock()?;
        self.chain_locked(&mut st, entry_json)
    }

    /// Chains `entry_json` and waits for its acknowledgement, taking the lock once for both
    /// when no batch is being written (a lone appender).
    fn chain_and_acknowledge(&self, entry_json: &[u8]) -> Result<u64, AuditError> {
        let mut st = self.lock()?;
        let seq = self.chain_locked(&mut st, entry_json)?;
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
            st = self.wait(st)?;
        }
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
        }
        let first = st.durable_seq;
        let batch = std::mem::take(&mut st.pending);
        let (upto, head) = (st.seq, st.head);
        let rotate = io.seg_len + batch.len() as u64 >= self.max_segment_bytes;
        // Checkpoints cover synced entries only: a batch is synced when asked or on rotation.
        let checkpoint = (sync || rotate) && self.wants_checkpoint(&st, upto, mode);
        let taken_at = self.clock.now();
        drop(st);
        let span = SinkSpan::start(SinkOp::Batch);
        span.number("entries", upto - first);
        span.flag("synced", sync || rotate);
        span.flag("checkpoint", checkpoint);
        let started = Instant::now();
        let res = self.write_batch(&mut io, &batch, upto, head, sync || rotate, checkpoint);
        let took = started.elapsed();
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
                if sync {
                    st.syncs += 1;
                    st.last_batch = upto - first;
                    st.gather = (took / 8).min(Duration::from_micros(500));
                }
                if checkpoint {
                    st.ckpt_seq = upto;
                    // Entries appended while this batch was written count from when it was
                    // taken.
                    st.uncovered_since = (st.seq > upto).then_some(taken_at);
                }
            }
            Err(_) => st.failed = true,
        }
        // Anyone who takes the lock from here on sees the new state before deciding to wait.
        let wake = st.waiting > 0;
        drop(st);
        if wake {
            self.cond.notify_all();
        }
        res.map_err(|e| AuditError::with_source(AuditErrorKind::Io, e))
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

    fn test_log(dir: &Path, durability: Durability) -> ChainedLog {
        ChainedLog::builder(dir)
            .key(AuditKey::from_bytes([1; 32]))
            .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
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
        let (log, _) = ChainedLog::builder(dir.path())
            .key(AuditKey::from_bytes([1; 32]))
            .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
            .durability(Durability::Buffered)
            .sync_interval(Duration::from_secs(3600))
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

    #[test]
    fn a_genesis_checkpoint_must_name_the_genesis_head() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let signer = CheckpointSigningKey::from_bytes([2; 32]);
        let forged = Checkpoint::sign(&signer, 0, [7; 32], 1).to_line();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), forged).unwrap_or_else(|e| panic!("{e}"));
        let opened = ChainedLog::builder(dir.path())
            .key(AuditKey::from_bytes([1; 32]))
            .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
            .open();
        assert_eq!(
            opened.err().map(|e| e.kind()),
            Some(AuditErrorKind::Corrupt { seq: 1 })
        );
    }
}
