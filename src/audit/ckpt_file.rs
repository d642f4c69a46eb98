//! The checkpoint file of a [`ChainedLog`](super::ChainedLog): scanning it on open, creating it
//! with its genesis checkpoint, and repairing a crash-torn last line.
//!
//! A checkpoint file is created holding one signed checkpoint for seq 0 (head
//! [`GENESIS`]), written to a temporary file and renamed into place, so a checkpoint file is
//! never legitimately empty: a file with no valid checkpoint under a log with entries is
//! reported as [`AuditErrorKind::CheckpointsMissing`], exactly like a missing file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::keys::CheckpointSigningKey;
use super::line::{Checkpoint, GENESIS};
use super::verify::split_lines;
use crate::error::{AuditError, AuditErrorKind};

/// The checkpoint file as found on open: nothing is changed until the log is known to be sound.
pub(super) struct CheckpointScan {
    pub(super) last: Option<Checkpoint>,
    /// Valid, terminated checkpoint lines (the genesis checkpoint included).
    pub(super) count: u64,
    /// Bytes of complete, valid checkpoint lines.
    keep: u64,
    len: u64,
    /// The unterminated last line is a complete, validly signed checkpoint (a crash between the
    /// line and its newline): it is kept and terminated, not dropped.
    pub(super) tail_valid: Option<Checkpoint>,
}

impl CheckpointScan {
    /// The latest checkpoint on record, a kept unterminated one included.
    pub(super) fn latest(&self) -> Option<Checkpoint> {
        self.tail_valid.or(self.last)
    }

    /// Valid checkpoints on record, a kept unterminated one included.
    pub(super) fn valid(&self) -> u64 {
        self.count + u64::from(self.tail_valid.is_some())
    }

    /// Bytes of an invalid, unterminated last line that opening drops (a crash while it was
    /// written: the entries it would cover are durable and stay in the log).
    pub(super) fn dropped(&self) -> Option<u64> {
        (self.tail_valid.is_none() && self.keep < self.len).then_some(self.len - self.keep)
    }
}

/// Reads and checks the checkpoint file at `path`.
///
/// # Errors
/// [`AuditErrorKind::Io`] if it cannot be read; [`AuditErrorKind::Corrupt`] for a bad line
/// before the last (malformed or badly signed: `seq` is one past the last valid checkpoint
/// before it, the first entry no longer covered by a trusted checkpoint) or a validly signed
/// checkpoint out of order (its own seq).
pub(super) fn scan(
    path: &Path,
    signer: &CheckpointSigningKey,
) -> Result<CheckpointScan, AuditError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(e)),
    };
    let public = signer.verifying_key();
    let mut scan = CheckpointScan {
        last: None,
        count: 0,
        keep: 0,
        len: data.len() as u64,
        tail_valid: None,
    };
    for l in split_lines(std::slice::from_ref(&data)) {
        let first_uncovered = scan.last.map_or(0, |p| p.seq + 1);
        match Checkpoint::parse(l.bytes).filter(|c| c.verify(&public)) {
            Some(c) if scan.last.is_some_and(|p| p.seq >= c.seq) => {
                return Err(AuditError::new(AuditErrorKind::Corrupt { seq: c.seq }));
            }
            Some(c) if l.terminated => {
                scan.last = Some(c);
                scan.count += 1;
                scan.keep = (l.start + l.bytes.len() + 1) as u64;
            }
            Some(c) => scan.tail_valid = Some(c),
            None if !l.terminated => {}
            None => {
                return Err(AuditError::new(AuditErrorKind::Corrupt {
                    seq: first_uncovered.max(1),
                }));
            }
        }
    }
    Ok(scan)
}

/// Opens the checkpoint file for appending after the log was found sound: creates it (with its
/// genesis checkpoint) for a new log, terminates a valid unterminated last checkpoint, drops an
/// invalid partial one.
pub(super) fn open(
    path: &Path,
    scan: &CheckpointScan,
    signer: &CheckpointSigningKey,
    now: u64,
) -> Result<File, AuditError> {
    if scan.valid() == 0 {
        // A new log, or an empty file under an empty log: nothing to lose by starting afresh.
        create_with_genesis(path, signer, now)?;
    }
    let mut file = OpenOptions::new().append(true).open(path).map_err(io_err)?;
    if scan.valid() == 0 {
        return Ok(file);
    }
    if scan.tail_valid.is_some() {
        file.write_all(b"\n").map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    } else if scan.keep < scan.len {
        file.set_len(scan.keep).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    }
    Ok(file)
}

/// Writes a checkpoint file holding only the genesis checkpoint, atomically: a temporary file
/// in the same directory, synced, renamed over `path`, then the directory synced.
fn create_with_genesis(
    path: &Path,
    signer: &CheckpointSigningKey,
    now: u64,
) -> Result<(), AuditError> {
    let dir = parent_dir(path);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let line = Checkpoint::sign(signer, 0, GENESIS, now).to_line();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err)?;
    f.write_all(&line).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    sync_dir(&dir)
}

fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

pub(super) fn io_err(e: std::io::Error) -> AuditError {
    AuditError::with_source(AuditErrorKind::Io, e)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CheckpointSigningKey {
        CheckpointSigningKey::from_bytes([2; 32])
    }

    fn line(seq: u64) -> Vec<u8> {
        Checkpoint::sign(&signer(), seq, [seq as u8; 32], 1_700_000_000 + seq).to_line()
    }

    fn scan_of(bytes: &[u8]) -> Result<CheckpointScan, AuditError> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("checkpoints.log");
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        scan(&path, &signer())
    }

    #[test]
    fn a_clean_file_drops_nothing_and_a_valid_unterminated_tail_is_kept() {
        let mut clean = line(0);
        clean.extend(line(4));
        let s = scan_of(&clean).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.count, s.valid(), s.dropped()), (2, 2, None));
        assert_eq!(s.latest().map(|c| c.seq), Some(4));

        let mut tail = clean.clone();
        let mut last = line(9);
        last.pop();
        tail.extend(&last);
        let s = scan_of(&tail).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.count, s.valid(), s.dropped()),
            (2, 3, None),
            "kept, not dropped"
        );
        assert_eq!(s.latest().map(|c| c.seq), Some(9));

        let mut torn = clean.clone();
        torn.extend(&last[..last.len() / 2]);
        let s = scan_of(&torn).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.valid(), 2);
        assert_eq!(s.dropped(), Some((last.len() / 2) as u64));
        assert_eq!(s.latest().map(|c| c.seq), Some(4));
    }

    #[test]
    fn checkpoints_must_rise() {
        for (later, seq) in [(3, 3), (5, 5)] {
            let mut bytes = line(0);
            bytes.extend(line(5));
            bytes.extend(line(later));
            assert_eq!(
                scan_of(&bytes).err().map(|e| e.kind()),
                Some(AuditErrorKind::Corrupt { seq }),
                "{later} after 5"
            );
        }
    }

    #[test]
    fn a_missing_file_is_empty_but_an_unreadable_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = scan(&dir.path().join("absent"), &signer()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.valid(), s.dropped()), (0, None));
        // A directory where the file should be: reading it fails, and that is not "no file".
        let r = scan(dir.path(), &signer());
        assert_eq!(r.err().map(|e| e.kind()), Some(AuditErrorKind::Io));
        // Syncing a directory reports failure too (not silently `Ok`).
        assert!(sync_dir(dir.path()).is_ok());
        let gone = sync_dir(&dir.path().join("absent"));
        assert_eq!(gone.err().map(|e| e.kind()), Some(AuditErrorKind::Io));
    }
}
