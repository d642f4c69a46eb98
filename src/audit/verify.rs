//! Offline verification of a chained audit log against the audit key and the checkpoint public
//! key, and subject access reports from a verified log.

use std::fmt;
use std::path::Path;

use super::chain::{CHECKPOINT_FILE, read_segments};
use super::event::EventRecord;
use super::keys::{AuditKey, CheckpointVerifyingKey, PseudonymKey, hex};
use super::line::{ChainMac, Checkpoint, GENESIS, ParsedLine, fast_accept, parse_line, quick_seq};
use crate::context::SubjectId;
use crate::error::{AuditError, AuditErrorKind};

/// What kind of damage the verifier found. The sequence number in [`Fault`] is exact; the class
/// is the verifier's best diagnosis of how the log departs from a valid chain at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultClass {
    /// A line was changed (it does not parse, is not canonical, or its MAC is wrong).
    Edited,
    /// The expected entry is missing and does not appear later.
    Deleted,
    /// Entries (or checkpoints) are out of order.
    Reordered,
    /// An entry appears a second time.
    Duplicated,
    /// A line from another log (another key or chain) was put in.
    Spliced,
    /// The log ends before the latest signed checkpoint.
    TruncatedBehindCheckpoint,
    /// The last line is incomplete or bad (a crash during a write, or a cut inside it).
    TornTail,
    /// A checkpoint line is malformed or its signature is invalid.
    BadCheckpointSignature,
    /// A validly signed checkpoint names a head the log does not have at that seq (the chain
    /// was rebuilt or an old chain was replayed).
    CheckpointMismatch,
    /// The log has entries but its checkpoint file is gone or holds no valid checkpoint, so a
    /// cut of the log could not be detected. (A checkpoint file is created holding a signed
    /// genesis checkpoint for seq 0, so it is never legitimately empty.)
    CheckpointsMissing,
}

impl FaultClass {
    /// Stable label (`edited`, `deleted`, …).
    pub fn label(self) -> &'static str {
        match self {
            FaultClass::Edited => "edited",
            FaultClass::Deleted => "deleted",
            FaultClass::Reordered => "reordered",
            FaultClass::Duplicated => "duplicated",
            FaultClass::Spliced => "spliced",
            FaultClass::TruncatedBehindCheckpoint => "truncated_behind_checkpoint",
            FaultClass::TornTail => "torn_tail",
            FaultClass::BadCheckpointSignature => "bad_checkpoint_signature",
            FaultClass::CheckpointMismatch => "checkpoint_mismatch",
            FaultClass::CheckpointsMissing => "checkpoints_missing",
        }
    }
}

/// The first place where a log departs from a valid chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The sequence number expected at the first bad position. For truncation, the first seq
    /// missing; for a malformed or badly signed checkpoint line, one past the last valid
    /// checkpoint before it (the first entry no longer covered by a trusted checkpoint); for a
    /// validly signed checkpoint out of order or naming another head, its own seq (at least 1);
    /// for missing checkpoints, 1.
    pub seq: u64,
    /// The diagnosis.
    pub class: FaultClass,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at seq {}", self.class.label(), self.seq)
    }
}

impl std::error::Error for Fault {}

/// A line of a segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawLine<'a> {
    pub(crate) segment: usize,
    pub(crate) start: usize,
    pub(crate) bytes: &'a [u8],
    pub(crate) terminated: bool,
}

pub(crate) fn split_lines(segments: &[Vec<u8>]) -> Vec<RawLine<'_>> {
    let mut out = Vec::new();
    for (segment, data) in segments.iter().enumerate() {
        let mut start = 0;
        while start < data.len() {
            let rest = data.get(start..).unwrap_or_default();
            match rest.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    out.push(RawLine {
                        segment,
                        start,
                        bytes: rest.get(..n).unwrap_or_default(),
                        terminated: true,
                    });
                    start += n + 1;
                }
                None => {
                    out.push(RawLine {
                        segment,
                        start,
                        bytes: rest,
                        terminated: false,
                    });
                    start = data.len();
                }
            }
        }
    }
    out
}

/// The result of walking a chain.
#[derive(Debug)]
pub(crate) struct Walk {
    /// MAC of each accepted entry; `macs[i]` belongs to seq `i + 1`.
    pub(crate) macs: Vec<[u8; 32]>,
    pub(crate) entries: Vec<EventRecord>,
    /// The first fault and the index of the line where it was found.
    pub(crate) fault: Option<(Fault, usize)>,
}

impl Walk {
    pub(crate) fn last_seq(&self) -> u64 {
        self.macs.len() as u64
    }
    pub(crate) fn head(&self) -> [u8; 32] {
        self.macs.last().copied().unwrap_or(GENESIS)
    }
}

/// Walks `lines` as one chain, stopping at the first fault.
pub(crate) fn walk(lines: &[RawLine<'_>], mac: &ChainMac) -> Walk {
    let mut w = Walk {
        macs: Vec::with_capacity(lines.len()),
        entries: Vec::new(),
        fault: None,
    };
    for (i, raw) in lines.iter().enumerate() {
        let expected = w.last_seq() + 1;
        let head = w.head();
        let is_last = i + 1 == lines.len();
        let fast = if raw.terminated {
            fast_accept(raw.bytes, expected, &head, mac)
        } else {
            None
        };
        if let Some(m) = fast {
            w.macs.push(m);
            continue;
        }
        let class = if !raw.terminated {
            // A line that ends a non-final segment without its newline was cut.
            if is_last {
                FaultClass::TornTail
            } else {
                FaultClass::Edited
            }
        } else {
            parse_line(raw.bytes)
                .and_then(|l| classify(&l, raw, expected, &head, mac, &w.macs, &lines[i + 1..]))
                .unwrap_or(FaultClass::Edited)
        };
        w.fault = Some((
            Fault {
                seq: expected,
                class,
            },
            i,
        ));
        return w;
    }
    w
}

fn classify(
    line: &ParsedLine,
    raw: &RawLine<'_>,
    expected: u64,
    head: &[u8; 32],
    mac: &ChainMac,
    accepted: &[[u8; 32]],
    rest: &[RawLine<'_>],
) -> Option<FaultClass> {
    use std::cmp::Ordering;
    match line.seq.cmp(&expected) {
        Ordering::Equal => {
            let mac_ok = mac.check(raw.bytes, line);
            if mac_ok && line.prev == *head {
                None
            } else if line.prev == *head {
                Some(FaultClass::Edited)
            } else {
                // A prev one hex digit off is an edit of this line; a prev from another chain
                // is a splice.
                let differing = hex(&line.prev)
                    .bytes()
                    .zip(hex(head).bytes())
                    .filter(|(a, b)| a != b)
                    .count();
                Some(if differing <= 1 {
                    FaultClass::Edited
                } else {
                    FaultClass::Spliced
                })
            }
        }
        Ordering::Greater => {
            let later = rest.iter().any(|r| quick_seq(r.bytes) == Some(expected));
            Some(if later {
                FaultClass::Reordered
            } else {
                FaultClass::Deleted
            })
        }
        Ordering::Less => {
            let earlier = usize::try_from(line.seq)
                .ok()
                .and_then(|s| s.checked_sub(1))
                .and_then(|i| accepted.get(i));
            Some(if earlier == Some(&line.mac) {
                FaultClass::Duplicated
            } else {
                FaultClass::Reordered
            })
        }
    }
}

/// The outcome of verifying a log.
#[derive(Debug)]
#[must_use = "SECURITY WARNING: check `fault` before trusting the log"]
pub struct VerifyReport {
    /// Entries verified (the valid prefix, up to the first fault).
    pub entries: u64,
    /// Checkpoints covering entries (seq 1 or more) whose signature verified and which match
    /// the log; the genesis checkpoint (seq 0) is not counted.
    pub checkpoints: usize,
    /// The first fault, or `None` if the whole log and every checkpoint verified.
    pub fault: Option<Fault>,
    records: Vec<EventRecord>,
}

/// One read of a subject's data, from a subject access report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubjectAccess {
    /// The entry's sequence number.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// Who read.
    pub principal: String,
    /// With which roles.
    pub roles: Vec<String>,
    /// For which purpose.
    pub purpose: String,
    /// Which kind of field.
    pub kind: String,
    /// `reveal` or `mask`.
    pub action: String,
}

impl VerifyReport {
    /// A report from a streaming verifier, which keeps no entries.
    #[cfg(feature = "postgres")]
    pub(crate) fn streamed(entries: u64, checkpoints: usize, fault: Option<Fault>) -> Self {
        Self {
            entries,
            checkpoints,
            fault,
            records: Vec::new(),
        }
    }

    /// Whether the log and every checkpoint verified.
    pub fn is_valid(&self) -> bool {
        self.fault.is_none()
    }

    /// The verified entries, oldest first (entry `i` has seq `i + 1`).
    pub fn records(&self) -> &[EventRecord] {
        &self.records
    }

    /// Every record about subject `subject` (any action and outcome: accesses, denials,
    /// consent changes, shares, erasures, application events), with its seq, oldest first: the
    /// subject's own audit trail, for an access export.
    ///
    /// # Errors
    /// The log's [`Fault`] if it did not verify.
    pub fn subject_events(
        &self,
        key: &PseudonymKey,
        subject: &SubjectId,
    ) -> Result<Vec<(u64, &EventRecord)>, Fault> {
        if let Some(f) = self.fault {
            return Err(f);
        }
        let pseudonym = hex(&key.subject(subject.expose_secret().as_bytes()));
        Ok(self
            .records
            .iter()
            .zip(1u64..)
            .filter(|(r, _)| r.is_subject(&pseudonym))
            .map(|(r, seq)| (seq, r))
            .collect())
    }

    /// Who read subject `subject`'s data (allowed reveals and masks, and the anonymizations and
    /// blind-index computations that used it), for which purpose and when, oldest first. A
    /// record batch ([`Guard::reveal_record`](crate::Guard::reveal_record)) gives one access
    /// per field allowed, all with the record's seq.
    ///
    /// # Errors
    /// The log's [`Fault`] if it did not verify: a report is only made from a verified log.
    pub fn subject_access(
        &self,
        key: &PseudonymKey,
        subject: &SubjectId,
    ) -> Result<Vec<SubjectAccess>, Fault> {
        if let Some(f) = self.fault {
            return Err(f);
        }
        let pseudonym = hex(&key.subject(subject.expose_secret().as_bytes()));
        Ok(self
            .records
            .iter()
            .zip(1u64..)
            .filter(|(r, _)| {
                r.is_subject(&pseudonym)
                    && r.outcome == "allowed"
                    && matches!(r.action.as_str(), "reveal" | "mask" | "anonymize" | "index")
            })
            // A record batch lists its fields: one access per field allowed.
            .flat_map(|(r, seq)| {
                r.read_items()
                    .into_iter()
                    .map(move |(purpose, kind)| SubjectAccess {
                        seq,
                        time: r.time,
                        principal: r.principal.clone(),
                        roles: r.roles.clone(),
                        purpose: purpose.to_owned(),
                        kind: kind.to_owned(),
                        action: r.action.clone(),
                    })
            })
            .collect())
    }
}

/// Verifies in-memory log segments (oldest first) and a checkpoint file's bytes.
///
/// Checks, in order: every line parses canonically, sequence numbers run 1, 2, 3, … without
/// gaps, each `prev` is the previous MAC and each MAC verifies under `key`; then every checkpoint
/// is well-formed, signed by `public`, strictly increasing in seq, matches the log's MAC at its
/// seq and does not lie beyond the log's end.
pub fn verify_bytes(
    segments: &[Vec<u8>],
    checkpoints: &[u8],
    key: &AuditKey,
    public: &CheckpointVerifyingKey,
) -> VerifyReport {
    let lines = split_lines(segments);
    let mut w = walk(&lines, &ChainMac::new(key.mac_key()));
    // Entries are parsed only once their MACs verified, so a damaged log costs no JSON parsing.
    for (raw, seq) in lines.iter().zip(1u64..).take(w.macs.len()) {
        match parse_line(raw.bytes) {
            Some(l) => w.entries.push(l.entry),
            None => {
                w.macs.truncate(w.entries.len());
                w.fault = Some((
                    Fault {
                        seq,
                        class: FaultClass::Edited,
                    },
                    w.entries.len(),
                ));
                break;
            }
        }
    }
    let log_fault = w.fault.map(|(f, _)| f);
    let mut ckpt_fault = None;
    let mut good = 0;
    let mut any_valid = false;
    let mut last_ckpt: Option<u64> = None;
    let mut truncated: Option<Fault> = None;
    // Read on after a fault of the log: a checkpoint out of order is reported at its own seq,
    // which may lie before the log's fault (the earlier of the two is reported).
    for raw in split_lines(&[checkpoints.to_vec()]) {
        // A checkpoint that cannot be trusted (malformed, badly signed) is reported at the first
        // entry no longer covered by a trusted one.
        let prev_seq = last_ckpt.map_or(0, |p| p + 1).max(1);
        let Some(c) = Checkpoint::parse(raw.bytes).filter(|c| c.verify(public)) else {
            ckpt_fault = Some(Fault {
                seq: prev_seq,
                class: FaultClass::BadCheckpointSignature,
            });
            break;
        };
        let class = if last_ckpt.is_some_and(|p| c.seq <= p) {
            Some(FaultClass::Reordered)
        } else if c.seq > w.last_seq() {
            // Beyond the log's end: a truncation, unless the log is already bad earlier (that
            // fault is reported). Either way the checkpoints after it are read on, since one out
            // of order may name an earlier seq.
            if log_fault.is_none_or(|f| f.class == FaultClass::TornTail) {
                truncated.get_or_insert(Fault {
                    seq: w.last_seq() + 1,
                    class: FaultClass::TruncatedBehindCheckpoint,
                });
            }
            None
        } else if match usize::try_from(c.seq).ok().and_then(|s| s.checked_sub(1)) {
            Some(i) => w.macs.get(i),
            None => Some(&GENESIS),
        } != Some(&c.head)
        {
            Some(FaultClass::CheckpointMismatch)
        } else {
            None
        };
        if let Some(class) = class {
            ckpt_fault = Some(Fault {
                seq: c.seq.max(1),
                class,
            });
            break;
        }
        any_valid = true;
        if c.seq <= w.last_seq() && c.seq > 0 {
            good += 1;
        }
        last_ckpt = Some(c.seq);
    }
    let mut ckpt_fault = ckpt_fault.into_iter().chain(truncated).min();
    // A checkpoint file starts with its genesis checkpoint, so entries with no valid checkpoint
    // on record mean the file was lost or emptied: a cut of the log could not be seen.
    if !any_valid && ckpt_fault.is_none() && w.last_seq() > 0 {
        ckpt_fault = Some(Fault {
            seq: 1,
            class: FaultClass::CheckpointsMissing,
        });
    }
    let fault = match (log_fault, ckpt_fault) {
        (Some(l), Some(c)) if c.class == FaultClass::TruncatedBehindCheckpoint => Some(c.min(l)),
        (Some(l), Some(c)) => Some(if c.seq < l.seq { c } else { l }),
        (l, c) => l.or(c),
    };
    VerifyReport {
        entries: w.last_seq(),
        checkpoints: good,
        fault,
        records: w.entries,
    }
}

impl PartialOrd for Fault {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Fault {
    /// By seq; at equal seq a truncation outranks what it explains (a torn or missing line).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.seq.cmp(&other.seq).then_with(|| {
            let t = |f: &Fault| u8::from(f.class != FaultClass::TruncatedBehindCheckpoint);
            t(self).cmp(&t(other))
        })
    }
}

/// Verifies the log in `dir` (all segments) and its checkpoint file `checkpoints` (by default
/// `dir/checkpoints.log`).
///
/// # Errors
/// [`AuditErrorKind::Io`] if the files cannot be read. Damage is not an error: it is reported in
/// [`VerifyReport::fault`].
pub fn verify_log(
    dir: &Path,
    checkpoints: Option<&Path>,
    key: &AuditKey,
    public: &CheckpointVerifyingKey,
) -> Result<VerifyReport, AuditError> {
    let segments = read_segments(dir)?;
    let data: Vec<Vec<u8>> = segments.into_iter().map(|(_, _, d)| d).collect();
    let default = dir.join(CHECKPOINT_FILE);
    let path = checkpoints.unwrap_or(&default);
    // A missing checkpoint file verifies as an empty one: a log with entries and no valid
    // checkpoint is reported as `CheckpointsMissing` (a cut at a line boundary would otherwise
    // look complete).
    let ckpt = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AuditError::with_source(AuditErrorKind::Io, e)),
    };
    Ok(verify_bytes(&data, &ckpt, key, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels are the stable names SECURITY.md lists (operators' tools match on them), and
    /// a fault displays as its label and seq.
    #[test]
    fn fault_labels_are_the_documented_ones() {
        let all = [
            (FaultClass::Edited, "edited"),
            (FaultClass::Deleted, "deleted"),
            (FaultClass::Reordered, "reordered"),
            (FaultClass::Duplicated, "duplicated"),
            (FaultClass::Spliced, "spliced"),
            (
                FaultClass::TruncatedBehindCheckpoint,
                "truncated_behind_checkpoint",
            ),
            (FaultClass::TornTail, "torn_tail"),
            (
                FaultClass::BadCheckpointSignature,
                "bad_checkpoint_signature",
            ),
            (FaultClass::CheckpointMismatch, "checkpoint_mismatch"),
            (FaultClass::CheckpointsMissing, "checkpoints_missing"),
        ];
        for (class, label) in all {
            assert_eq!(class.label(), label);
        }
        let fault = Fault {
            seq: 42,
            class: FaultClass::TornTail,
        };
        assert_eq!(fault.to_string(), "torn_tail at seq 42");
    }

    /// Faults order by seq; at one seq a truncation comes first (it explains a torn or missing
    /// line there), and the order is total and agrees with `PartialOrd`.
    #[test]
    fn faults_order_by_seq_then_truncation_first() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let f = |seq, class| Fault { seq, class };
        let cut = f(5, FaultClass::TruncatedBehindCheckpoint);
        let torn = f(5, FaultClass::TornTail);
        let bad = f(5, FaultClass::BadCheckpointSignature);
        let later = f(6, FaultClass::TruncatedBehindCheckpoint);
        let cases = [
            (cut, torn, Less),
            (torn, cut, Greater),
            (torn, bad, Equal),
            (cut, cut, Equal),
            (torn, later, Less),
            (later, cut, Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.cmp(&b), want, "{a} vs {b}");
            assert_eq!(a.partial_cmp(&b), Some(want), "{a} vs {b}");
        }
        assert_eq!(torn.min(cut), cut);
        assert!(cut < torn && torn < later);
    }

    /// A report is valid exactly when it has no fault, whatever it counted before the fault.
    #[test]
    fn a_report_with_a_fault_is_not_valid() {
        let report = |fault| VerifyReport {
            entries: 7,
            checkpoints: 2,
            fault,
            records: Vec::new(),
        };
        assert!(report(None).is_valid());
        for class in [FaultClass::TornTail, FaultClass::Edited] {
            assert!(
                !report(Some(Fault { seq: 8, class })).is_valid(),
                "{class:?}"
            );
        }
    }
}
