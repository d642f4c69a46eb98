//! [`PgAuditSink`]: the MAC chain of [`ChainedLog`](crate::ChainedLog) in a PostgreSQL table,
//! one chain for a fleet of processes; [`PgCheckpointer`] signs its head.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, IsolationLevel, Statement};

use super::stream::{Walker, read_head, walk_rows};
use super::worker::Worker;
use super::{PgConfig, config, connect, db_err, shared_db_err};
use crate::audit::line::{ChainMac, Checkpoint, GENESIS, entry_fits};
use crate::audit::{
    AuditEvent, AuditFuture, AuditKey, AuditSink, CheckpointSigningKey, CheckpointVerifyingKey,
    EventRecord, PseudonymKey,
};
use crate::clock::{Clock, SystemClock};
use crate::error::{AuditError, AuditErrorKind};
use crate::keys::SubjectKeyId;
use crate::telemetry::{SinkOp, SinkSpan};

const LOCK_HEAD: &str = "SELECT seq, mac FROM fieldseal_audit_head WHERE id FOR UPDATE";
const INSERT: &str = "INSERT INTO fieldseal_audit (seq, time, subject, action, outcome, prev, mac, line) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], \
     $6::bytea[], $7::bytea[], $8::text[])";
const UPDATE_HEAD: &str = "UPDATE fieldseal_audit_head SET seq = $1, mac = $2 WHERE id";
/// Waits until the WAL is flushed past every transaction this session committed before: a
/// synchronous commit of a transaction that wrote WAL (here: its session's counter row in
/// `fieldseal_audit_flush`) flushes the WAL up to its commit record, which lies after theirs.
/// (A transaction that wrote nothing, even with a transaction id, commits without a flush.)
/// Concurrent waits of the fleet's writers share one flush, and none holds the head lock.
const FLUSH: &str = "BEGIN; SET LOCAL synchronous_commit = on; \
     INSERT INTO fieldseal_audit_flush (pid, n) VALUES (pg_backend_pid(), 1) \
     ON CONFLICT (pid) DO UPDATE SET n = fieldseal_audit_flush.n + 1; COMMIT";
/// An erasure's key deletion, in the transaction carrying its record.
const DELETE_KEYS: &str = "DELETE FROM fieldseal_subject_keys WHERE id = ANY($1::bytea[])";

/// Configures and connects a [`PgAuditSink`].
pub struct PgAuditSinkBuilder {
    url: String,
    key: Option<AuditKey>,
    max_batch: usize,
    timeouts: Timeouts,
}

/// Session settings of the writer's connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// `idle_in_transaction_session_timeout`, ms.
    stall_ms: u64,
    /// `lock_timeout`, ms (0: wait).
    lock_ms: u64,
}

impl std::fmt::Debug for PgAuditSinkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PgAuditSinkBuilder")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl PgAuditSinkBuilder {
    /// The audit key (required): the same key for every process writing the chain.
    #[must_use]
    pub fn key(mut self, key: AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The most entries one transaction carries (default 1,000, at least 1).
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// How long the server lets this writer's session sit idle inside a transaction before it
    /// ends the session (default 5 s; zero: never). A writer process that stalls while it holds
    /// the head lock (paused, swapping, debugged) would otherwise stall every writer of the
    /// fleet; past this bound its transaction is rolled back, its appends fail (those operations
    /// are refused) and the lock is free.
    #[must_use]
    pub fn stall_timeout(mut self, t: std::time::Duration) -> Self {
        self.timeouts.stall_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// How long an append transaction waits for the head lock before it fails (default: no
    /// limit). A bound trades availability of reveals (they fail closed when it is hit) for
    /// latency.
    #[must_use]
    pub fn lock_timeout(mut self, t: std::time::Duration) -> Self {
        self.timeouts.lock_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Connects (as the writer role) and starts the writer thread.
    ///
    /// # Errors
    /// [`AuditErrorKind::Rejected`] without a key or for an invalid URL (or a non-loopback host
    /// without `sslmode=disable`), [`AuditErrorKind::Io`] if the database cannot be reached or
    /// has no audit schema (run [`migrate`](super::migrate) first).
    pub fn connect(self) -> Result<PgAuditSink, AuditError> {
        let key = self.key.ok_or(AuditError::new(AuditErrorKind::Rejected))?;
        let config = config(&self.url)?;
        let worker = Worker::start("fieldseal-pg-audit")?;
        let timeouts = self.timeouts;
        let conn = {
            let config = config.clone();
            worker
                .run(async move { Conn::open(&config, timeouts).await })
                .unwrap_or_else(|| Err(AuditError::new(AuditErrorKind::Closed)))?
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let writer = Writer {
            held: None,
            config,
            conn: Some(conn),
            mac: ChainMac::new(key.mac_key()),
            max_batch: self.max_batch,
            timeouts,
            stats: Arc::clone(&stats),
        };
        worker.handle().spawn(writer.run(rx));
        Ok(PgAuditSink {
            queue: tx,
            pseudonym: key.pseudonym_key(),
            stats,
            url: self.url,
            _worker: worker,
        })
    }
}

/// An [`AuditSink`] appending to the MAC-chained audit table in PostgreSQL. Many processes may
/// append to one chain.
///
/// Each append transaction (group commit: one transaction carries every event pending in this
/// process, up to [`max_batch`](PgAuditSinkBuilder::max_batch)) locks the chain's head row
/// (`SELECT … FOR UPDATE`), chains its entries from it with the MAC of
/// [`ChainedLog`](crate::ChainedLog) (each row's `line` is byte for byte a `ChainedLog` line),
/// inserts them, moves the head and commits. An append is acknowledged only after the commit;
/// a failed transaction fails every append it carried (the guard refuses those operations) and
/// leaves the chain as it was, so the next batch goes on from the committed head, over a new
/// connection if the old one broke.
///
/// # Threads and async
/// The connection lives on a dedicated thread with its own single-threaded tokio runtime.
/// [`AuditSink::record`] hands the event over and blocks on a standard channel until the
/// commit: it works from any thread, a tokio worker included, without panicking; but it blocks
/// that worker for a commit's duration. From async code use
/// [`Guard::reveal_async`](crate::Guard::reveal_async) (which awaits
/// [`AuditSink::record_async`]), [`PgAuditSink::append_async`], or call the blocking guard in
/// `tokio::task::spawn_blocking`.
///
/// ```no_run
/// use fieldseal::{AuditKey, postgres::PgAuditSink};
/// let url = std::env::var("FIELDSEAL_PG_WRITER_URL")?;
/// let sink = PgAuditSink::builder(&url).key(AuditKey::from_bytes([7; 32])).connect()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PgAuditSink {
    queue: mpsc::UnboundedSender<Job>,
    pseudonym: PseudonymKey,
    stats: Arc<Stats>,
    /// For a subject-key store in the same database ([`PgSubjectKeys::with_audit`]).
    url: String,
    // Dropped last: the writer task stops with the runtime once the queue is closed.
    _worker: Worker,
}

impl std::fmt::Debug for PgAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditSink")
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    entries: AtomicU64,
}

/// One event's row, prepared by the caller (the pseudonyms are computed outside the writer).
struct Pending {
    entry: Vec<u8>,
    time: i64,
    subject: Option<String>,
    action: std::borrow::Cow<'static, str>,
    outcome: &'static str,
}

enum Ack {
    Blocking(std::sync::mpsc::SyncSender<Result<u64, AuditError>>),
    Async(oneshot::Sender<Result<u64, AuditError>>),
}

impl Ack {
    fn send(self, r: Result<u64, AuditError>) {
        // A caller that went away (a cancelled future) needs no answer.
        match self {
            Ack::Blocking(tx) => {
                let _ = tx.send(r);
            }
            Ack::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

struct Job {
    row: Pending,
    ack: Ack,
    /// Subject keys to delete in the same transaction (an erasure); committed alone.
    deletes: Vec<SubjectKeyId>,
}

impl PgAuditSink {
    /// Starts configuring a sink for the database at `url` (a `postgresql://` URL; without TLS,
    /// the host must be loopback or a unix socket unless the URL says `sslmode=disable`; with
    /// the feature `postgres-tls`, `sslmode=verify-full&sslrootcert=PATH` connects over TLS to
    /// any host: see [`crate::postgres`]).
    pub fn builder(url: &str) -> PgAuditSinkBuilder {
        PgAuditSinkBuilder {
            url: url.to_owned(),
            key: None,
            max_batch: 1000,
            timeouts: Timeouts {
                stall_ms: 5000,
                lock_ms: 0,
            },
        }
    }

    fn prepare(&self, event: &AuditEvent<'_>) -> Result<Pending, AuditError> {
        let record = EventRecord::from_event(event, &self.pseudonym);
        let entry = serde_json::to_vec(&record)
            .map_err(|e| AuditError::with_source(AuditErrorKind::Rejected, e))?;
        // As ChainedLog: a line the verifier would refuse is not written; the operation fails.
        if !entry_fits(entry.len()) {
            return Err(AuditError::new(AuditErrorKind::Rejected));
        }
        Ok(Pending {
            entry,
            time: i64::try_from(event.time())
                .map_err(|_| AuditError::new(AuditErrorKind::Rejected))?,
            subject: record.subject,
            action: event.action().label(),
            outcome: event.outcome().label(),
        })
    }

    /// Appends `event` and returns its sequence number once the transaction carrying it
    /// committed. Blocks the calling thread (see the type's documentation).
    ///
    /// # Errors
    /// [`AuditErrorKind::Rejected`] for an entry too long for a line, [`AuditErrorKind::Io`]
    /// (the driver's error as source) if the transaction failed, [`AuditErrorKind::Corrupt`] if
    /// the head row is malformed, [`AuditErrorKind::Closed`] if the writer is gone.
    pub fn append(&self, event: &AuditEvent<'_>) -> Result<u64, AuditError> {
        self.append_blocking(event, Vec::new())
    }

    /// Queues `event` (with the subject keys its transaction deletes) and blocks until the
    /// writer answers.
    fn append_blocking(
        &self,
        event: &AuditEvent<'_>,
        deletes: Vec<SubjectKeyId>,
    ) -> Result<u64, AuditError> {
        let span = SinkSpan::start(SinkOp::PgAppend);
        span.run(|| {
            let row = self.prepare(event)?;
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            self.queue
                .send(Job {
                    row,
                    ack: Ack::Blocking(tx),
                    deletes,
                })
                .map_err(|_| AuditError::new(AuditErrorKind::Closed))?;
            let seq = rx
                .recv()
                .unwrap_or_else(|_| Err(AuditError::new(AuditErrorKind::Closed)))?;
            span.number("seq", seq);
            Ok(seq)
        })
    }

    /// As [`PgAuditSink::append`], without blocking: the event is taken at once, the returned
    /// future resolves after the commit.
    ///
    /// # Errors
    /// As [`PgAuditSink::append`].
    pub fn append_async(
        &self,
        event: &AuditEvent<'_>,
    ) -> impl Future<Output = Result<u64, AuditError>> + Send + use<> {
        let (tx, rx) = oneshot::channel();
        let queued = self.prepare(event).and_then(|row| {
            self.queue
                .send(Job {
                    row,
                    ack: Ack::Async(tx),
                    deletes: Vec::new(),
                })
                .map_err(|_| AuditError::new(AuditErrorKind::Closed))
        });
        let span = SinkSpan::start(SinkOp::PgAppend);
        async move {
            span.run_async(async {
                queued?;
                let seq = rx
                    .await
                    .unwrap_or_else(|_| Err(AuditError::new(AuditErrorKind::Closed)))?;
                span.number("seq", seq);
                Ok(seq)
            })
            .await
        }
    }

    /// Appends an erasure's `event` and deletes the subject keys `ids` in one transaction: both
    /// commit or neither does. Blocks as [`PgAuditSink::append`].
    ///
    /// # Errors
    /// As [`PgAuditSink::append`]; a failed deletion fails the append.
    pub(crate) fn append_deleting(
        &self,
        event: &AuditEvent<'_>,
        ids: &[SubjectKeyId],
    ) -> Result<u64, AuditError> {
        self.append_blocking(event, ids.to_vec())
    }

    /// The URL this sink connects with.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Transactions committed by this sink so far (group commit makes it smaller than
    /// [`PgAuditSink::entries`] under concurrency).
    pub fn commits(&self) -> u64 {
        self.stats.commits.load(Ordering::Relaxed)
    }

    /// Entries committed by this sink so far.
    pub fn entries(&self) -> u64 {
        self.stats.entries.load(Ordering::Relaxed)
    }
}

impl AuditSink for PgAuditSink {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        self.append(event).map(|_| ())
    }

    fn record_async(&self, event: &AuditEvent<'_>) -> AuditFuture {
        let appended = self.append_async(event);
        Box::pin(async move { appended.await.map(|_| ()) })
    }
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    lock_head: Statement,
    insert: Statement,
    update_head: Statement,
}

impl Conn {
    async fn open(config: &PgConfig, t: Timeouts) -> Result<Self, AuditError> {
        let client = connect(config).await.map_err(db_err)?;
        client
            .batch_execute(&format!(
                // The chaining transaction commits without waiting for the WAL flush, so the
                // head lock is not held through an fsync; `FLUSH` waits for it before any
                // append is acknowledged (see `Writer::commit`).
                "SET idle_in_transaction_session_timeout = {}; SET lock_timeout = {}; \
                 SET synchronous_commit = off",
                t.stall_ms.min(i32::MAX as u64),
                t.lock_ms.min(i32::MAX as u64)
            ))
            .await
            .map_err(db_err)?;
        let lock_head = client.prepare(LOCK_HEAD).await.map_err(db_err)?;
        let insert = client.prepare(INSERT).await.map_err(db_err)?;
        let update_head = client.prepare(UPDATE_HEAD).await.map_err(db_err)?;
        Ok(Self {
            client,
            lock_head,
            insert,
            update_head,
        })
    }
}

/// Why a batch failed; shared by every appender in it.
enum BatchError {
    Db(Arc<tokio_postgres::Error>),
    Audit(AuditErrorKind),
}

/// The audit error class of a failed commit, for its span (the driver's error is not
/// recorded: it may quote statement parameters).
fn batch_error_class(e: &BatchError) -> AuditError {
    match e {
        BatchError::Db(_) => AuditError::new(AuditErrorKind::Io),
        BatchError::Audit(k) => AuditError::new(*k),
    }
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        BatchError::Db(Arc::new(e))
    }
}

impl From<AuditError> for BatchError {
    fn from(e: AuditError) -> Self {
        BatchError::Audit(e.kind())
    }
}

struct Writer {
    /// A job taken from the queue that must go in a transaction of its own (an erasure).
    held: Option<Job>,
    config: PgConfig,
    conn: Option<Conn>,
    mac: ChainMac,
    max_batch: usize,
    timeouts: Timeouts,
    stats: Arc<Stats>,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Job>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            let job = match self.held.take() {
                Some(job) => job,
                None => match queue.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            batch.push(job);
            let span = SinkSpan::start(SinkOp::PgCommit);
            let committed = self.commit(&mut batch, &mut queue).await;
            span.number("entries", batch.len() as u64);
            span.finish(committed.as_ref().err().map(batch_error_class).as_ref());
            match committed {
                Ok(first) => {
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .entries
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for (job, seq) in batch.drain(..).zip(first..) {
                        job.ack.send(Ok(seq));
                    }
                }
                Err(e) => {
                    if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
                        self.conn = None;
                    }
                    for job in batch.drain(..) {
                        job.ack.send(Err(match &e {
                            BatchError::Db(e) => shared_db_err(e),
                            BatchError::Audit(k) => AuditError::new(*k),
                        }));
                    }
                }
            }
        }
    }

    /// One transaction for `batch`; returns the first seq it was given.
    async fn commit(
        &mut self,
        batch: &mut Vec<Job>,
        queue: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Result<u64, BatchError> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.config, self.timeouts).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(BatchError::Audit(AuditErrorKind::Closed));
        };
        // BEGIN and the head lock in one round trip.
        let client = &conn.client;
        let (begun, head) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.query_one(&conn.lock_head, &[])
        );
        let head = match begun.and(head) {
            Ok(head) => head,
            Err(e) => {
                rollback(client).await;
                return Err(e.into());
            }
        };
        // Events that queued while the last transaction ran, and while this one waited for the
        // head (held by another process's transaction), join this one. They are taken only now,
        // after the lock: a batch grows with the contention it waits through.
        // An erasure goes alone: its deletion failing must not fail other callers' records.
        let max_batch = self.max_batch;
        while batch.len() < max_batch && batch.iter().all(|j| j.deletes.is_empty()) {
            match queue.try_recv() {
                Ok(job) if !job.deletes.is_empty() => {
                    self.held = Some(job);
                    break;
                }
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let rows = match Rows::chain(&self.mac, batch, &head) {
            Ok(rows) => rows,
            Err(e) => {
                rollback(client).await;
                return Err(e);
            }
        };
        let deletes: Vec<&[u8]> = batch
            .iter()
            .flat_map(|j| j.deletes.iter().map(|id| id.as_slice()))
            .collect();
        // The rows, the head and COMMIT in one round trip (prepared statements go out in the
        // order they are first polled): the head lock is held for about one round trip. A
        // statement that fails aborts the transaction and the COMMIT behind it then rolls back
        // (the server answers it without an error), so the statements' results are checked.
        let insert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &rows.seqs,
            &rows.times,
            &rows.subjects,
            &rows.actions,
            &rows.outcomes,
            &rows.prevs,
            &rows.macs,
            &rows.lines,
        ];
        let update_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&rows.last, &rows.head_mac];
        let inserted = if deletes.is_empty() {
            let (inserted, updated, committed) = tokio::join!(
                client.execute(&conn.insert, &insert_params),
                client.execute(&conn.update_head, &update_params),
                client.batch_execute("COMMIT"),
            );
            let inserted = inserted?;
            updated?;
            committed?;
            inserted
        } else {
            // An erasure (alone in its batch): every statement answered before COMMIT is sent.
            let written = async {
                let (inserted, _) = tokio::try_join!(
                    client.execute(&conn.insert, &insert_params),
                    client.execute(&conn.update_head, &update_params),
                )?;
                client.execute(DELETE_KEYS, &[&deletes]).await?;
                Ok::<_, tokio_postgres::Error>(inserted)
            };
            match written.await {
                Ok(inserted) => {
                    client.batch_execute("COMMIT").await?;
                    inserted
                }
                Err(e) => {
                    rollback(client).await;
                    return Err(e.into());
                }
            }
        };
        if inserted != batch.len() as u64 {
            // Not expected from one INSERT … SELECT unnest; the rows may be committed, but no
            // append is acknowledged (fail closed).
            return Err(BatchError::Audit(AuditErrorKind::Io));
        }
        // Committed without waiting for the flush: the head lock is free for the next writer
        // at once (it may chain from these rows). Nothing is acknowledged before `FLUSH`
        // returns; a crash before the flush loses these rows and everything chained after
        // them (the WAL is replayed as a prefix), none of it acknowledged.
        client.batch_execute(FLUSH).await?;
        Ok(rows.first)
    }
}

/// Ends the open transaction after a failure (best effort: a broken connection ends it too).
async fn rollback(client: &Client) {
    let _ = client.batch_execute("ROLLBACK").await;
}

/// A batch's rows, chained from the head.
struct Rows<'a> {
    first: u64,
    last: i64,
    head_mac: Vec<u8>,
    seqs: Vec<i64>,
    times: Vec<i64>,
    subjects: Vec<Option<&'a str>>,
    actions: Vec<&'a str>,
    outcomes: Vec<&'static str>,
    prevs: Vec<Vec<u8>>,
    macs: Vec<Vec<u8>>,
    lines: Vec<String>,
}

impl<'a> Rows<'a> {
    /// Chains `batch` from `head` (the locked head row: seq, MAC).
    fn chain(
        mac: &ChainMac,
        batch: &'a [Job],
        head: &tokio_postgres::Row,
    ) -> Result<Self, BatchError> {
        let seq: i64 = head.try_get(0)?;
        let head_mac: &[u8] = head.try_get(1)?;
        let corrupt = || {
            BatchError::Audit(AuditErrorKind::Corrupt {
                seq: u64::try_from(seq).unwrap_or(0).saturating_add(1),
            })
        };
        let mut prev: [u8; 32] = head_mac.try_into().map_err(|_| corrupt())?;
        let first = u64::try_from(seq).map_err(|_| corrupt())? + 1;
        let n = batch.len();
        let mut rows = Rows {
            first,
            last: seq,
            head_mac: Vec::new(),
            seqs: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
            subjects: Vec::with_capacity(n),
            actions: Vec::with_capacity(n),
            outcomes: Vec::with_capacity(n),
            prevs: Vec::with_capacity(n),
            macs: Vec::with_capacity(n),
            lines: Vec::with_capacity(n),
        };
        let mut buf = Vec::with_capacity(512);
        for (job, s) in batch.iter().zip(first..) {
            buf.clear();
            let m = mac.write_line_json(&mut buf, s, &prev, &job.row.entry);
            buf.pop(); // the newline: rows hold lines without it
            let line = String::from_utf8(std::mem::take(&mut buf))
                .map_err(|_| BatchError::Audit(AuditErrorKind::Rejected))?;
            rows.last = i64::try_from(s).map_err(|_| corrupt())?;
            rows.seqs.push(rows.last);
            rows.times.push(job.row.time);
            rows.subjects.push(job.row.subject.as_deref());
            rows.actions.push(job.row.action.as_ref());
            rows.outcomes.push(job.row.outcome);
            rows.prevs.push(prev.to_vec());
            rows.macs.push(m.to_vec());
            rows.lines.push(line);
            prev = m;
        }
        rows.head_mac = prev.to_vec();
        Ok(rows)
    }
}

/// Signs checkpoints of the PostgreSQL audit chain, as the checkpoint role.
///
/// Before signing, it verifies the entries added since the latest checkpoint (MAC chain, seqs
/// without gaps, the head row naming the last one), starting from that checkpoint, whose
/// signature it checks: it never signs a head it has not seen chained from a signed one. Run
/// it on a schedule (every few seconds or thousand entries), ideally in another process than
/// the writers, with a signing key they do not hold.
pub struct PgCheckpointer {
    inner: Arc<CheckpointInner>,
    worker: Worker,
}

struct CheckpointInner {
    config: PgConfig,
    mac: ChainMac,
    signer: CheckpointSigningKey,
    public: CheckpointVerifyingKey,
    clock: Arc<dyn Clock>,
    accept_missing: bool,
}

impl std::fmt::Debug for PgCheckpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCheckpointer")
            .field("public", &self.inner.public)
            .finish_non_exhaustive()
    }
}

impl PgCheckpointer {
    /// A checkpointer for the chain in the database at `url` (the checkpoint role's URL).
    ///
    /// # Errors
    /// [`AuditErrorKind::Rejected`] for an invalid URL, [`AuditErrorKind::Io`] if the runtime
    /// thread cannot start.
    pub fn new(
        url: &str,
        key: &AuditKey,
        signer: CheckpointSigningKey,
    ) -> Result<Self, AuditError> {
        Ok(Self {
            inner: Arc::new(CheckpointInner {
                config: config(url)?,
                mac: ChainMac::new(key.mac_key()),
                public: signer.verifying_key(),
                signer,
                clock: Arc::new(SystemClock),
                accept_missing: false,
            }),
            worker: Worker::start("fieldseal-pg-checkpoint")?,
        })
    }

    /// Signs a checkpoint even though the chain has entries and no checkpoint (the first
    /// checkpoint then covers everything so far).
    ///
    /// # Security
    /// Only for an operator who knows the checkpoints were lost, or who starts checkpointing a
    /// chain that never had any: a cut made before this call can no longer be detected.
    #[must_use]
    pub fn dangerous_accept_missing_checkpoints(mut self) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.accept_missing = true;
        }
        self
    }

    /// Checkpoints the current head: returns its seq, or `None` if the latest checkpoint already
    /// covers it. An empty chain gets its genesis checkpoint (seq 0).
    ///
    /// # Errors
    /// [`AuditErrorKind::CheckpointsMissing`] if the chain has entries but no checkpoint (see
    /// [`PgCheckpointer::dangerous_accept_missing_checkpoints`]),
    /// [`AuditErrorKind::Corrupt`] naming the first bad seq if the latest checkpoint does not
    /// verify or the entries after it do not (the [`Fault`](crate::Fault) as source),
    /// [`AuditErrorKind::Io`] for database errors.
    pub fn checkpoint(&self) -> Result<Option<u64>, AuditError> {
        let inner = Arc::clone(&self.inner);
        let span = SinkSpan::start(SinkOp::PgCheckpoint);
        span.run(|| {
            let seq = self
                .worker
                .run(async move { inner.checkpoint().await })
                .unwrap_or_else(|| Err(AuditError::new(AuditErrorKind::Closed)))?;
            if let Some(seq) = seq {
                span.number("seq", seq);
            }
            Ok(seq)
        })
    }
}

impl PgCheckpointer {
    /// Checkpoints every `interval` on this checkpointer's own thread until the returned
    /// schedule is stopped or dropped: the first run is immediate, a failed run is counted and
    /// kept in [`CheckpointSchedule::status`] and retried at the next tick (a chain that does
    /// not verify keeps failing, with its first bad seq, until an operator acts).
    pub fn every(self, interval: std::time::Duration) -> CheckpointSchedule {
        let status = Arc::new(Mutex::new(ScheduleStatus::default()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (inner, st) = (Arc::clone(&self.inner), Arc::clone(&status));
        let interval = interval.max(std::time::Duration::from_millis(1));
        self.worker.handle().spawn(async move {
            loop {
                let span = SinkSpan::start(SinkOp::PgCheckpoint);
                let result = inner.checkpoint().await;
                span.finish(result.as_ref().err());
                if let Ok(mut s) = st.lock() {
                    s.runs += 1;
                    match result {
                        Ok(Some(seq)) => {
                            s.checkpoints += 1;
                            s.last_seq = Some(seq);
                            s.last_error = None;
                        }
                        Ok(None) => s.last_error = None,
                        Err(e) => {
                            s.failures += 1;
                            s.last_error = Some(e.kind());
                        }
                    }
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
        CheckpointSchedule {
            stop: Some(stop),
            status,
            _checkpointer: self,
        }
    }
}

/// A [`PgCheckpointer`] running on a schedule ([`PgCheckpointer::every`]); stops when dropped.
pub struct CheckpointSchedule {
    stop: Option<oneshot::Sender<()>>,
    status: Arc<Mutex<ScheduleStatus>>,
    // Dropped last: its thread runs the schedule.
    _checkpointer: PgCheckpointer,
}

impl std::fmt::Debug for CheckpointSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSchedule")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// What a [`CheckpointSchedule`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleStatus {
    /// Runs finished (successful or not).
    pub runs: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Runs that failed.
    pub failures: u64,
    /// The seq of the last checkpoint written by this schedule.
    pub last_seq: Option<u64>,
    /// The error of the last run, if it failed.
    pub last_error: Option<AuditErrorKind>,
}

impl CheckpointSchedule {
    /// What the schedule has done so far.
    pub fn status(&self) -> ScheduleStatus {
        self.status.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the schedule (a run under way is cancelled; what it committed stays).
    pub fn stop(mut self) -> ScheduleStatus {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.status()
    }
}

impl Drop for CheckpointSchedule {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl CheckpointInner {
    async fn checkpoint(&self) -> Result<Option<u64>, AuditError> {
        let mut client = connect(&self.config).await.map_err(db_err)?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(db_err)?;
        let (head_seq, head_mac) = read_head(&tx)
            .await?
            .ok_or(AuditError::new(AuditErrorKind::Corrupt { seq: 1 }))?;
        let latest = tx
            .query_opt(
                "SELECT seq, line FROM fieldseal_audit_checkpoints ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(db_err)?;
        let (from, from_mac) = match latest {
            None if head_seq > 0 && !self.accept_missing => {
                return Err(AuditError::new(AuditErrorKind::CheckpointsMissing));
            }
            None => (0, GENESIS),
            Some(row) => {
                let seq = row.try_get::<_, i64>(0).map_err(db_err)?;
                let line: &str = row.try_get(1).map_err(db_err)?;
                let c = Checkpoint::parse(line.as_bytes())
                    .filter(|c| c.verify(&self.public) && i64::try_from(c.seq) == Ok(seq))
                    .ok_or(AuditError::new(AuditErrorKind::Corrupt {
                        seq: u64::try_from(seq).unwrap_or(0) + 1,
                    }))?;
                (c.seq, c.head)
            }
        };
        if latest_covers(from, head_seq) {
            if from == head_seq && from_mac != head_mac {
                return Err(AuditError::new(AuditErrorKind::Corrupt {
                    seq: head_seq.max(1),
                }));
            }
            if from > head_seq {
                return Err(AuditError::new(AuditErrorKind::Corrupt {
                    seq: head_seq + 1,
                }));
            }
            if from > 0 || self.has_genesis(&tx).await? {
                return Ok(None);
            }
        } else {
            let mut walker = Walker::new(self.mac.clone(), from, from_mac);
            walk_rows(&tx, &mut walker, from, head_seq)
                .await
                .map_err(db_err)?;
            if let Some(f) = walker.fault {
                return Err(AuditError::with_source(
                    AuditErrorKind::Corrupt { seq: f.seq },
                    f,
                ));
            }
            if walker.last_seq != head_seq || walker.head != head_mac {
                return Err(AuditError::new(AuditErrorKind::Corrupt {
                    seq: walker.last_seq + 1,
                }));
            }
        }
        let c = Checkpoint::sign(&self.signer, head_seq, head_mac, self.clock.now());
        let mut line = c.to_line();
        line.pop();
        let line =
            String::from_utf8(line).map_err(|_| AuditError::new(AuditErrorKind::Rejected))?;
        let seq = i64::try_from(head_seq).map_err(|_| AuditError::new(AuditErrorKind::Rejected))?;
        tx.execute(
            "INSERT INTO fieldseal_audit_checkpoints (seq, line) VALUES ($1, $2) \
             ON CONFLICT (seq) DO NOTHING",
            &[&seq, &line],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(head_seq))
    }

    async fn has_genesis(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<bool, AuditError> {
        Ok(tx
            .query_opt(
                "SELECT 1 FROM fieldseal_audit_checkpoints WHERE seq = 0",
                &[],
            )
            .await
            .map_err(db_err)?
            .is_some())
    }
}

/// Whether the latest checkpoint (at `from`) already reaches the head.
fn latest_covers(from: u64, head: u64) -> bool {
    from >= head
}
