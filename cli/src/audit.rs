//! `audit …`: verify a chained audit log, who read a subject's data, the latest entries.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use fieldseal::{
    AuditKey, CheckpointVerifyingKey, EventRecord, Fault, FaultClass, SubjectId, VerifyReport,
    verify_log,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::fail::{Failure, Result, io_at};
use crate::keyfile::{parse_public, read_secret_key};
use crate::keys::{KekArgs, hex, load};
use crate::out::{json_line, utc};

/// Times a fault at the tail of a log is read again, and the wait before each.
const RETRIES: usize = 2;
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// `audit …`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the whole log and its checkpoints; exit 1 naming the first bad seq if damaged
    ///
    /// Checks every entry's MAC and chaining, and every checkpoint's signature and head, with
    /// the audit key and the checkpoint public key. A log that is being written can be
    /// verified: a fault at its tail (a line caught mid-write) is read again before it is
    /// reported.
    Verify {
        #[command(flatten)]
        log: LogArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Who read a subject's data, for which purpose and when (from a verified log)
    Report {
        #[command(flatten)]
        log: LogArgs,
        /// The data subject's identifier (`-` reads it from standard input, so it stays out of
        /// the process list and shell history)
        #[arg(long, value_name = "ID|-")]
        subject: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// The last entries of a verified log
    Tail {
        #[command(flatten)]
        log: LogArgs,
        /// How many entries
        #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
        lines: usize,
        /// Print one JSON object per entry instead of text
        #[arg(long)]
        json: bool,
    },
}

/// The log directory and the keys that verify it.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// The log directory (segments `audit-NNNNNN.log`)
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Keyring file holding the log's audit key and checkpoint key (with --kek or --kek-env)
    #[arg(
        long,
        visible_alias = "keyring",
        value_name = "KEYRING",
        required_unless_present = "audit_key",
        conflicts_with = "audit_key",
        requires = "kek_source"
    )]
    audit_key_from: Option<PathBuf>,
    #[command(flatten)]
    kek: KekArgs,
    /// Raw audit key file instead of a keyring: 32 bytes, 64 hex digits or base64; mode 0600
    #[arg(long, value_name = "FILE", requires = "checkpoint_key")]
    audit_key: Option<PathBuf>,
    /// Checkpoint public key: 64 hex digits or a file holding them (default with a keyring:
    /// the keyring's own)
    #[arg(long, value_name = "HEX|FILE")]
    checkpoint_key: Option<String>,
    /// Checkpoint file (default: DIR/checkpoints.log)
    #[arg(long, value_name = "FILE")]
    checkpoints: Option<PathBuf>,
}

/// Where a checkpoint key came from, for the report.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum KeySource {
    Keyring,
    Argument,
}

struct Keys {
    audit: AuditKey,
    public: CheckpointVerifyingKey,
    public_from: KeySource,
}

impl LogArgs {
    fn keys(&self) -> Result<Keys> {
        let given = self
            .checkpoint_key
            .as_deref()
            .map(parse_public)
            .transpose()?;
        if let Some(ring) = &self.audit_key_from {
            let kr = load(ring, &self.kek)?;
            let (audit, signer) = kr
                .audit_keys()
                .map_err(|e| Failure::input(format_args!("{}: {e}", ring.display())))?;
            return Ok(match given {
                Some(public) => Keys {
                    audit,
                    public,
                    public_from: KeySource::Argument,
                },
                None => Keys {
                    audit,
                    public: signer.verifying_key(),
                    public_from: KeySource::Keyring,
                },
            });
        }
        let (Some(path), Some(public)) = (&self.audit_key, given) else {
            return Err(Failure::input(
                "pass --audit-key-from KEYRING with --kek or --kek-env, or --audit-key FILE \
                 with --checkpoint-key",
            ));
        };
        Ok(Keys {
            audit: AuditKey::from_bytes(read_secret_key(path)?),
            public,
            public_from: KeySource::Argument,
        })
    }

    /// Verifies the log; an unreadable or empty directory is an input error.
    fn verify(&self) -> Result<(VerifyReport, Keys)> {
        let keys = self.keys()?;
        let dir = &self.dir;
        if !dir.is_dir() {
            return Err(Failure::input(format_args!(
                "{}: not a directory",
                dir.display()
            )));
        }
        if segments(dir)?.is_empty() {
            return Err(Failure::input(format_args!(
                "{}: no audit log segments (audit-NNNNNN.log) in this directory",
                dir.display()
            )));
        }
        if let Some(c) = &self.checkpoints
            && let Err(e) = std::fs::metadata(c)
        {
            return Err(io_at(c, &e));
        }
        let verify = || {
            verify_log(dir, self.checkpoints.as_deref(), &keys.audit, &keys.public)
                .map_err(|e| Failure::input(format_args!("{}: {e}", dir.display())))
        };
        let mut report = verify()?;
        // A live log is read while its writer appends: the last line can be caught mid-write,
        // and a checkpoint written after the segments were read names entries not yet seen.
        // Both faults at the tail are read again before they are reported; real damage stays.
        for _ in 0..RETRIES {
            let at_tail = report.fault.is_some_and(|f| {
                matches!(
                    f.class,
                    FaultClass::TornTail | FaultClass::TruncatedBehindCheckpoint
                )
            });
            if !at_tail {
                break;
            }
            std::thread::sleep(RETRY_DELAY);
            report = verify()?;
        }
        Ok((report, keys))
    }

    fn checkpoint_file(&self) -> PathBuf {
        self.checkpoints
            .clone()
            .unwrap_or_else(|| self.dir.join("checkpoints.log"))
    }
}

/// The segment files of `dir`, in number order (`audit-` + at least six digits + `.log`).
fn segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_at(dir, &e))? {
        let entry = entry.map_err(|e| io_at(dir, &e))?;
        let name = entry.file_name();
        let Some(digits) = name
            .to_str()
            .and_then(|n| n.strip_prefix("audit-"))
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        if digits.len() >= 6
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = digits.parse::<u64>()
            && n > 0
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The segment file and line (from 1) holding the `seq`th line of the log: every line before
/// the first fault is one entry, so entry `seq` is the log's `seq`th line.
fn locate(dir: &Path, seq: u64) -> Option<(PathBuf, u64)> {
    let mut before = 0u64;
    for path in segments(dir).ok()? {
        let data = std::fs::read(&path).ok()?;
        let mut lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        if data.last().is_some_and(|&b| b != b'\n') {
            lines += 1;
        }
        if seq <= before + lines {
            return Some((path, seq - before));
        }
        before += lines;
    }
    None
}

#[derive(Serialize)]
struct FaultRow {
    seq: u64,
    class: &'static str,
    /// The file holding the fault, if known.
    file: Option<String>,
    /// Its line, from 1, for a fault inside a segment.
    line: Option<u64>,
}

#[derive(Serialize)]
struct VerifyRow {
    dir: String,
    intact: bool,
    entries: u64,
    checkpoints: usize,
    checkpoint_key: String,
    checkpoint_key_from: KeySource,
    fault: Option<FaultRow>,
}

fn fault_row(log: &LogArgs, f: Fault) -> FaultRow {
    let in_checkpoints = matches!(
        f.class,
        FaultClass::BadCheckpointSignature
            | FaultClass::CheckpointMismatch
            | FaultClass::CheckpointsMissing
            | FaultClass::TruncatedBehindCheckpoint
    );
    let (file, line) = if in_checkpoints {
        (Some(log.checkpoint_file()), None)
    } else {
        match locate(&log.dir, f.seq) {
            Some((p, l)) => (Some(p), Some(l)),
            None => (None, None),
        }
    };
    FaultRow {
        seq: f.seq,
        class: f.class.label(),
        file: file.map(|p| p.display().to_string()),
        line,
    }
}

/// The one-line description of a fault for standard error.
fn fault_message(log: &LogArgs, f: Fault, row: &FaultRow) -> String {
    let dir = log.dir.display();
    let at = match (&row.file, row.line) {
        (Some(file), Some(line)) => format!(" ({file} line {line})"),
        (Some(file), None) => format!(" ({file})"),
        (None, _) => String::new(),
    };
    let verified = match f.seq {
        0 | 1 => "no entry verified".to_owned(),
        2 => "entry 1 verified".to_owned(),
        n => format!("entries 1-{} verified", n - 1),
    };
    let hint = match f.class {
        FaultClass::Edited if f.seq == 1 => {
            "; if every entry fails, check that the audit key is this log's"
        }
        FaultClass::BadCheckpointSignature if f.seq == 1 => {
            "; if no checkpoint verifies, check that the checkpoint key is this log's"
        }
        FaultClass::TruncatedBehindCheckpoint => {
            "; the log ends before a signed checkpoint (entries were cut)"
        }
        FaultClass::CheckpointsMissing => "; the checkpoint file is missing or empty",
        _ => "",
    };
    format!(
        "audit log {dir}: verification failed: {} at seq {}{at}; {verified}{hint}",
        f.class.label(),
        f.seq
    )
}

pub(crate) fn run(a: &AuditArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match &a.command {
        AuditCommand::Verify { log, json } => {
            let (report, keys) = log.verify()?;
            let fault = report.fault.map(|f| (f, fault_row(log, f)));
            let message = fault.as_ref().map(|(f, row)| fault_message(log, *f, row));
            let row = VerifyRow {
                dir: log.dir.display().to_string(),
                intact: report.is_valid(),
                entries: report.entries,
                checkpoints: report.checkpoints,
                checkpoint_key: hex(&keys.public.to_bytes()),
                checkpoint_key_from: keys.public_from,
                fault: fault.map(|(_, r)| r),
            };
            if *json {
                json_line(&mut out, &row)?;
            } else {
                let state = if row.intact { "intact" } else { "DAMAGED" };
                writeln!(out, "audit log {}: {state}", row.dir)?;
                let range = match row.entries {
                    0 => String::new(),
                    n => format!(" (seq 1-{n})"),
                };
                let label = if row.intact { "entries" } else { "verified" };
                writeln!(out, "  {label:<14} {}{range}", row.entries)?;
                writeln!(
                    out,
                    "  {:<14} {} signed checkpoint{} the log",
                    "checkpoints",
                    row.checkpoints,
                    if row.checkpoints == 1 {
                        " matches"
                    } else {
                        "s match"
                    }
                )?;
                let from = match row.checkpoint_key_from {
                    KeySource::Keyring => "from the keyring",
                    KeySource::Argument => "given",
                };
                writeln!(
                    out,
                    "  {:<14} {} ({from})",
                    "checkpoint key", row.checkpoint_key
                )?;
                if let Some(f) = &row.fault {
                    let at = match (&f.file, f.line) {
                        (Some(file), Some(line)) => format!(" in {file} line {line}"),
                        (Some(file), None) => format!(" in {file}"),
                        _ => String::new(),
                    };
                    writeln!(out, "  {:<14} {} at seq {}{at}", "fault", f.class, f.seq)?;
                }
            }
            match message {
                Some(m) => Err(Failure::verify(m)),
                None => Ok(()),
            }
        }
        AuditCommand::Report { log, subject, json } => {
            let subject = read_subject(subject)?;
            let (report, keys) = log.verify()?;
            let accesses = match report.subject_access(&keys.audit.pseudonym_key(), &subject) {
                Ok(a) => a,
                Err(f) => {
                    let row = fault_row(log, f);
                    return Err(Failure::verify(format!(
                        "{} (no report is made from a damaged log)",
                        fault_message(log, f, &row)
                    )));
                }
            };
            #[derive(Serialize)]
            struct Access<'a> {
                seq: u64,
                time: u64,
                time_utc: String,
                principal: &'a str,
                roles: &'a [String],
                purpose: &'a str,
                kind: &'a str,
                action: &'a str,
            }
            let rows: Vec<Access<'_>> = accesses
                .iter()
                .map(|a| Access {
                    seq: a.seq,
                    time: a.time,
                    time_utc: utc(a.time),
                    principal: &a.principal,
                    roles: &a.roles,
                    purpose: &a.purpose,
                    kind: &a.kind,
                    action: &a.action,
                })
                .collect();
            if *json {
                #[derive(Serialize)]
                struct ReportRow<'a> {
                    dir: String,
                    entries_verified: u64,
                    accesses: &'a [Access<'a>],
                }
                return json_line(
                    &mut out,
                    &ReportRow {
                        dir: log.dir.display().to_string(),
                        entries_verified: report.entries,
                        accesses: &rows,
                    },
                );
            }
            writeln!(
                out,
                "subject access report from {} ({} entries verified): {} read(s)",
                log.dir.display(),
                report.entries,
                rows.len()
            )?;
            if rows.is_empty() {
                return Ok(());
            }
            writeln!(
                out,
                "{:>6}  {:<20}  {:<16}  {:<20}  {:<12}  {:<14}  action",
                "seq", "time (UTC)", "principal", "roles", "purpose", "kind"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:>6}  {:<20}  {:<16}  {:<20}  {:<12}  {:<14}  {}",
                    r.seq,
                    r.time_utc,
                    r.principal,
                    r.roles.join(","),
                    r.purpose,
                    r.kind,
                    r.action
                )?;
            }
            Ok(())
        }
        AuditCommand::Tail { log, lines, json } => {
            let (report, _) = log.verify()?;
            let records = report.records();
            let start = records.len().saturating_sub(*lines);
            for (i, r) in records.iter().enumerate().skip(start) {
                tail_row(&mut out, i as u64 + 1, r, *json)?;
            }
            if let Some(f) = report.fault {
                let row = fault_row(log, f);
                return Err(Failure::verify(format!(
                    "{} (entries after it are not shown)",
                    fault_message(log, f, &row)
                )));
            }
            Ok(())
        }
    }
}

fn tail_row(out: &mut impl Write, seq: u64, r: &EventRecord, json: bool) -> Result<()> {
    if json {
        #[derive(Serialize)]
        struct Row<'a> {
            seq: u64,
            time_utc: String,
            #[serde(flatten)]
            entry: &'a EventRecord,
        }
        return json_line(
            out,
            &Row {
                seq,
                time_utc: utc(r.time),
                entry: r,
            },
        );
    }
    writeln!(
        out,
        "{seq:>6}  {}  {} [{}]  {} {} for {}  {}  key v{}  at {}",
        utc(r.time),
        r.principal,
        r.roles.join(","),
        r.action,
        r.kind,
        r.purpose,
        r.outcome,
        r.key_version,
        r.site
    )?;
    Ok(())
}

/// The subject id from the argument, or from the first line of standard input for `-`.
fn read_subject(arg: &str) -> Result<SubjectId> {
    if arg != "-" {
        if arg.is_empty() {
            return Err(Failure::input("--subject: empty subject id"));
        }
        return Ok(SubjectId::new(arg));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_line(&mut line)
        .map_err(|e| Failure::input(format_args!("stdin: cannot read the subject id: {e}")))?;
    let id = line.trim_end_matches(['\r', '\n']);
    if id.is_empty() {
        return Err(Failure::input("stdin: no subject id"));
    }
    Ok(SubjectId::new(id))
}
