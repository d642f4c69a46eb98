//! Streaming verification of the audit chain in PostgreSQL: rows are read in batches through a
//! cursor inside one read-only, repeatable-read transaction (a consistent snapshot), and only
//! the running head, the checkpoints and the report are kept in memory.

use tokio_postgres::{IsolationLevel, Row, Transaction};

use super::worker::Worker;
use super::{PgConfig, config, connect, db_err};
use crate::audit::line::{ChainMac, Checkpoint, GENESIS, fast_accept, parse_line};
use crate::audit::{
    AuditKey, CheckpointVerifyingKey, Fault, FaultClass, SubjectAccess, VerifyReport, hex,
};
use crate::context::SubjectId;
use crate::error::{AuditError, AuditErrorKind};

/// Rows fetched per round trip.
const BATCH: i32 = 1000;

pub(crate) const SELECT_ROWS: &str = "SELECT seq, time, subject, action, outcome, prev, mac, line \
     FROM fieldseal_audit WHERE seq > $1 AND seq <= $2 ORDER BY seq";

/// Walks rows in seq order from a trusted starting point, stopping at the first fault.
pub(crate) struct Walker {
    mac: ChainMac,
    /// The last accepted seq and its MAC.
    pub(crate) last_seq: u64,
    pub(crate) head: [u8; 32],
    pub(crate) fault: Option<Fault>,
    /// Trusted checkpoints (seq, head) not yet reached, in ascending seq order, reversed (the
    /// next one last).
    pending_ckpts: Vec<(u64, [u8; 32])>,
    /// Checkpoints the walk reached and matched (seq 1 or more).
    pub(crate) matched: usize,
    subject: Option<String>,
    pub(crate) accesses: Vec<SubjectAccess>,
}

impl Walker {
    pub(crate) fn new(mac: ChainMac, from_seq: u64, head: [u8; 32]) -> Self {
        Self {
            mac,
            last_seq: from_seq,
            head,
            fault: None,
            pending_ckpts: Vec::new(),
            matched: 0,
            subject: None,
            accesses: Vec::new(),
        }
    }

    fn fail(&mut self, seq: u64, class: FaultClass) -> bool {
        self.fault = Some(Fault { seq, class });
        false
    }

    /// Checks one row; `false` once a fault is found.
    pub(crate) fn push(&mut self, row: &Row) -> bool {
        if self.fault.is_some() {
            return false;
        }
        let expected = self.last_seq + 1;
        let seq = row
            .try_get::<_, i64>(0)
            .ok()
            .and_then(|s| u64::try_from(s).ok());
        match seq {
            Some(s) if s > expected => return self.fail(expected, FaultClass::Deleted),
            Some(s) if s == expected => {}
            _ => return self.fail(expected, FaultClass::Edited),
        }
        let Ok(line) = row.try_get::<_, &str>(7) else {
            return self.fail(expected, FaultClass::Edited);
        };
        let raw = line.as_bytes();
        let Some(parsed) = parse_line(raw) else {
            return self.fail(expected, FaultClass::Edited);
        };
        if parsed.seq != expected {
            return self.fail(expected, FaultClass::Edited);
        }
        if fast_accept(raw, expected, &self.head, &self.mac).is_none() {
            // As the file verifier: a prev one hex digit off is an edit, a prev from another
            // chain a splice.
            let differing = hex(&parsed.prev)
                .bytes()
                .zip(hex(&self.head).bytes())
                .filter(|(a, b)| a != b)
                .count();
            let class = if differing <= 1 {
                FaultClass::Edited
            } else {
                FaultClass::Spliced
            };
            return self.fail(expected, class);
        }
        // The query columns must say what the (authenticated) line says.
        let e = &parsed.entry;
        let columns_match = row.try_get::<_, i64>(1).ok() == i64::try_from(e.time).ok()
            && row.try_get::<_, Option<&str>>(2).ok() == Some(e.subject.as_deref())
            && row.try_get::<_, &str>(3).ok() == Some(e.action.as_str())
            && row.try_get::<_, &str>(4).ok() == Some(e.outcome.as_str())
            && row.try_get::<_, &[u8]>(5).ok() == Some(&parsed.prev[..])
            && row.try_get::<_, &[u8]>(6).ok() == Some(&parsed.mac[..]);
        if !columns_match {
            return self.fail(expected, FaultClass::Edited);
        }
        if let Some(p) = &self.subject
            && e.is_subject(p)
            && e.outcome == "allowed"
            && matches!(e.action.as_str(), "reveal" | "mask" | "anonymize" | "index")
        {
            for (purpose, kind) in e.read_items() {
                self.accesses.push(SubjectAccess {
                    seq: expected,
                    time: e.time,
                    principal: e.principal.clone(),
                    roles: e.roles.clone(),
                    purpose: purpose.to_owned(),
                    kind: kind.to_owned(),
                    action: e.action.clone(),
                });
            }
        }
        self.last_seq = expected;
        self.head = parsed.mac;
        while let Some(&(s, h)) = self.pending_ckpts.last() {
            if s > expected {
                break;
            }
            self.pending_ckpts.pop();
            if s < expected || h != parsed.mac {
                return self.fail(s.max(1), FaultClass::CheckpointMismatch);
            }
            self.matched += 1;
        }
        true
    }
}

/// Streams rows `from < seq <= to` through `walker`.
pub(crate) async fn walk_rows(
    tx: &Transaction<'_>,
    walker: &mut Walker,
    from: u64,
    to: u64,
) -> Result<(), tokio_postgres::Error> {
    let stmt = tx.prepare(SELECT_ROWS).await?;
    let (from, to) = (
        i64::try_from(from).unwrap_or(i64::MAX),
        i64::try_from(to).unwrap_or(i64::MAX),
    );
    let portal = tx.bind(&stmt, &[&from, &to]).await?;
    loop {
        let rows = tx.query_portal(&portal, BATCH).await?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            if !walker.push(row) {
                return Ok(());
            }
        }
    }
}

/// Reads the head row: (seq, mac).
pub(crate) async fn read_head(tx: &Transaction<'_>) -> Result<Option<(u64, [u8; 32])>, AuditError> {
    let row = tx
        .query_one("SELECT seq, mac FROM fieldseal_audit_head WHERE id", &[])
        .await
        .map_err(db_err)?;
    let seq: i64 = row.try_get(0).map_err(db_err)?;
    let mac: &[u8] = row.try_get(1).map_err(db_err)?;
    Ok(u64::try_from(seq).ok().zip(mac.try_into().ok()))
}

/// Verifies the whole chain; collects the accesses to `subject` if given.
async fn verify(
    config: PgConfig,
    mac: ChainMac,
    public: CheckpointVerifyingKey,
    subject: Option<String>,
    external: Vec<(u64, [u8; 32])>,
) -> Result<(VerifyReport, Vec<SubjectAccess>), AuditError> {
    let mut client = connect(&config).await.map_err(db_err)?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db_err)?;
    let head = read_head(&tx).await?;
    let mut ckpt_fault = None;
    let mut trusted = Vec::new();
    let mut last_trusted: Option<u64> = None;
    for row in tx
        .query(
            "SELECT seq, line FROM fieldseal_audit_checkpoints ORDER BY seq",
            &[],
        )
        .await
        .map_err(db_err)?
    {
        let seq = row
            .try_get::<_, i64>(0)
            .ok()
            .and_then(|s| u64::try_from(s).ok());
        let line = row.try_get::<_, &str>(1).ok();
        let c = line
            .and_then(|l| Checkpoint::parse(l.as_bytes()))
            .filter(|c| c.verify(&public) && Some(c.seq) == seq);
        let Some(c) = c else {
            // Reported at the first entry no longer covered by a trusted checkpoint; later
            // checkpoints are not trusted either.
            ckpt_fault = Some(Fault {
                seq: last_trusted.map_or(0, |p| p + 1).max(1),
                class: FaultClass::BadCheckpointSignature,
            });
            break;
        };
        last_trusted = Some(c.seq);
        trusted.push((c.seq, c.head));
    }
    // Checkpoints kept outside the database count like the table's: a cut of the table and of
    // its checkpoints shows against them.
    trusted.extend(external);
    trusted.sort_unstable();
    trusted.dedup();
    let mut walker = Walker::new(mac, 0, GENESIS);
    walker.subject = subject;
    let valid_ckpts = trusted.len();
    trusted.reverse();
    while let Some(&(0, h)) = trusted.last() {
        trusted.pop();
        if h != GENESIS {
            walker.fault = Some(Fault {
                seq: 1,
                class: FaultClass::CheckpointMismatch,
            });
        }
    }
    walker.pending_ckpts = trusted;
    if walker.fault.is_none() {
        walk_rows(&tx, &mut walker, 0, u64::MAX)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    let last = walker.last_seq;
    let mut faults: Vec<Fault> = walker.fault.into_iter().chain(ckpt_fault).collect();
    if walker.fault.is_none() {
        // A trusted checkpoint beyond the last row: the table was cut behind it.
        if !walker.pending_ckpts.is_empty() {
            faults.push(Fault {
                seq: last + 1,
                class: FaultClass::TruncatedBehindCheckpoint,
            });
        }
        match head {
            Some((s, _)) if s > last => faults.push(Fault {
                seq: last + 1,
                class: FaultClass::Deleted,
            }),
            // Rows beyond the head were not appended through it.
            Some((s, _)) if s < last => faults.push(Fault {
                seq: s + 1,
                class: FaultClass::Spliced,
            }),
            Some((_, m)) if m == walker.head => {}
            _ => faults.push(Fault {
                seq: last.max(1),
                class: FaultClass::Edited,
            }),
        }
    }
    if valid_ckpts == 0 && ckpt_fault.is_none() && last > 0 {
        faults.push(Fault {
            seq: 1,
            class: FaultClass::CheckpointsMissing,
        });
    }
    let report = VerifyReport::streamed(last, walker.matched, faults.into_iter().min());
    Ok((report, walker.accesses))
}

/// Verifies the audit chain in the database at `url` the way [`verify_bytes`](crate::verify_bytes)
/// verifies a log file, streaming the table (batches of 1,000 rows through a cursor, in one
/// read-only snapshot), so memory does not grow with the log.
///
/// Checked: every row's line is canonical and MAC-chained under `key` from seq 1 without gaps;
/// the row's query columns (`time`, `subject`, `action`, `outcome`, `prev`, `mac`) agree with its
/// line; the head row names the last row; every checkpoint is well-formed, signed by `public`,
/// matches the chain at its seq and does not lie beyond its end; a chain with entries has at
/// least one checkpoint. The first fault is reported with its seq and class, as for files
/// (`deleted` for a gap or a cut tail the head still counts, `spliced` for rows beyond the head).
///
/// The report keeps no entries: [`VerifyReport::records`] is empty and
/// [`VerifyReport::subject_access`] finds nothing; use [`subject_access_pg`].
///
/// Safe to call from a tokio task (the work runs on a thread of its own), but it blocks the
/// caller until the walk is done: call it from `spawn_blocking` in a service.
///
/// # Errors
/// [`AuditErrorKind::Rejected`] for an invalid URL (or a non-loopback host without
/// `sslmode=disable`), [`AuditErrorKind::Io`] if the database cannot be read. Damage is not an
/// error: it is in [`VerifyReport::fault`].
pub fn verify_pg(
    url: &str,
    key: &AuditKey,
    public: &CheckpointVerifyingKey,
) -> Result<VerifyReport, AuditError> {
    run_verify(url, key, public, None, Vec::new()).map(|(r, _)| r)
}

/// [`verify_pg`] also against checkpoints kept outside the database: `checkpoints` holds
/// checkpoint lines (`checkpoints.log` format, as `SELECT line FROM fieldseal_audit_checkpoints
/// ORDER BY seq` gives them, newline-separated), for example a reviewer's copy of the latest.
///
/// The table's checkpoints live in the same database as the chain: someone able to disable the
/// triggers can cut the chain's tail together with the checkpoints that cover it, leaving a
/// valid shorter chain. A checkpoint copied out before catches that
/// ([`FaultClass::TruncatedBehindCheckpoint`]), as does one naming another head at its seq
/// ([`FaultClass::CheckpointMismatch`]: a rebuilt chain).
///
/// # Errors
/// As [`verify_pg`], and [`AuditErrorKind::Rejected`] if a line of `checkpoints` is not a
/// checkpoint validly signed by `public`.
pub fn verify_pg_with_checkpoints(
    url: &str,
    key: &AuditKey,
    public: &CheckpointVerifyingKey,
    checkpoints: &[u8],
) -> Result<VerifyReport, AuditError> {
    let mut external = Vec::new();
    for line in checkpoints.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let c = Checkpoint::parse(line)
            .filter(|c| c.verify(public))
            .ok_or(AuditError::new(AuditErrorKind::Rejected))?;
        external.push((c.seq, c.head));
    }
    run_verify(url, key, public, None, external).map(|(r, _)| r)
}

/// Who read subject `subject`'s data (allowed reveals and masks), for which purpose and when,
/// from a verified chain in the database at `url`, oldest first. The chain is verified as by
/// [`verify_pg`] in the same pass; only matching entries are kept.
///
/// # Errors
/// As [`verify_pg`], and [`AuditErrorKind::Corrupt`] with the first bad seq (the [`Fault`] as
/// source) if the chain does not verify: a report is only made from a verified log.
pub fn subject_access_pg(
    url: &str,
    key: &AuditKey,
    public: &CheckpointVerifyingKey,
    subject: &SubjectId,
) -> Result<Vec<SubjectAccess>, AuditError> {
    let pseudonym = hex(&key
        .pseudonym_key()
        .subject(subject.expose_secret().as_bytes()));
    let (report, accesses) = run_verify(url, key, public, Some(pseudonym), Vec::new())?;
    match report.fault {
        Some(f) => Err(AuditError::with_source(
            AuditErrorKind::Corrupt { seq: f.seq },
            f,
        )),
        None => Ok(accesses),
    }
}

fn run_verify(
    url: &str,
    key: &AuditKey,
    public: &CheckpointVerifyingKey,
    subject: Option<String>,
    external: Vec<(u64, [u8; 32])>,
) -> Result<(VerifyReport, Vec<SubjectAccess>), AuditError> {
    let config = config(url)?;
    let mac = ChainMac::new(key.mac_key());
    let public = *public;
    let worker = Worker::start("fieldseal-pg-verify")?;
    worker
        .run(verify(config, mac, public, subject, external))
        .unwrap_or_else(|| Err(AuditError::new(AuditErrorKind::Closed)))
}
