//! Rewriting the envelopes of a row file (JSON lines or CSV), resumably.
//!
//! The output is written to `OUT.partial` and renamed to `OUT` only when every row is done, so
//! `OUT` is never half-written. After every batch the partial output and the error report are
//! synced and a checkpoint (`OUT.checkpoint`) records how many input rows and output bytes are
//! committed; a run that was interrupted resumes from there (the partial files are cut back to
//! the committed length first). A row whose envelope cannot be rewritten is copied unchanged
//! (it is still valid as it was) and listed in `OUT.errors.jsonl` with its row number.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fail::{Failure, Result, io_at};

/// Input and output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line; other fields are kept as they are.
    Jsonl,
    /// CSV with a header row; other columns are kept.
    Csv,
}

impl Format {
    /// From the file name's extension.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Which field holds the envelope and where the context parts come from.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) envelope: String,
    /// (part, field): the context part's value is the row's field.
    pub(crate) from_fields: Vec<(String, String)>,
    /// (part, value): the same for every row.
    pub(crate) fixed: Vec<(String, String)>,
}

/// One row's envelope and context, as the transform sees it.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) envelope: String,
    /// Context parts, in the order given on the command line.
    pub(crate) context: Vec<(String, String)>,
}

/// A transform's verdict on one item: the new envelope, or why there is none. The message
/// must not contain the row's values.
pub(crate) type Outcome = std::result::Result<String, String>;

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) rows: u64,
    pub(crate) rewritten: u64,
    pub(crate) failed: u64,
    /// Rows committed by an earlier, interrupted run.
    pub(crate) resumed_at: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    /// Identifies the input, so a run never resumes over another file.
    input_len: u64,
    input_modified_ns: u128,
    format: String,
    rows: u64,
    out_len: u64,
    errors_len: u64,
    rewritten: u64,
    failed: u64,
}

#[derive(Serialize)]
struct ErrorRow<'a> {
    row: u64,
    error: &'a str,
}

/// The files of one run.
#[derive(Debug)]
pub(crate) struct Paths {
    pub(crate) out: PathBuf,
    pub(crate) partial: PathBuf,
    pub(crate) checkpoint: PathBuf,
    pub(crate) errors: PathBuf,
}

impl Paths {
    pub(crate) fn new(out: &Path) -> Self {
        let with = |suffix: &str| {
            let mut name = out.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self {
            out: out.to_path_buf(),
            partial: with(".partial"),
            checkpoint: with(".checkpoint"),
            errors: with(".errors.jsonl"),
        }
    }
}

/// One run: which rows, in which format, into which files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job<'a> {
    pub(crate) input: &'a Path,
    pub(crate) format: Format,
    pub(crate) layout: &'a Layout,
    pub(crate) paths: &'a Paths,
    /// Rows per batch: one transform call and one commit each.
    pub(crate) batch: usize,
    /// Discard an interrupted run's progress instead of resuming it.
    pub(crate) restart: bool,
}

/// Runs `transform` over every row of the job's input, batch by batch.
///
/// `transform` gets the well-formed items of a batch and returns one outcome per item, in
/// order; an `Err` from it stops the run (what was committed stays committed). `progress` is
/// called with (rows done, total rows) after every batch.
pub(crate) fn run(
    job: &Job<'_>,
    mut transform: impl FnMut(&[Item]) -> Result<Vec<Outcome>>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Summary> {
    let Job {
        input,
        format,
        layout,
        paths,
        batch,
        restart,
    } = *job;
    let batch = batch.max(1);
    if paths.out.exists() {
        return Err(Failure::input(format_args!(
            "{}: already exists (never overwritten; choose another --out)",
            paths.out.display()
        )));
    }
    let meta = std::fs::metadata(input).map_err(|e| io_at(input, &e))?;
    let identity = (
        meta.len(),
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos()),
    );
    let format_name = format!("{format:?}").to_ascii_lowercase();
    let resume = if restart {
        None
    } else {
        load_checkpoint(&paths.checkpoint)?
    };
    if let Some(c) = &resume
        && ((c.input_len, c.input_modified_ns) != identity || c.format != format_name)
    {
        return Err(Failure::input(format_args!(
            "{}: the input changed since the interrupted run recorded in {}; pass --restart \
             to start over",
            input.display(),
            paths.checkpoint.display()
        )));
    }
    let total = count_rows(input, format)?;
    let (mut out, mut errors) = open_outputs(paths, resume.as_ref())?;
    let mut summary = Summary::default();
    let mut committed = Checkpoint {
        input_len: identity.0,
        input_modified_ns: identity.1,
        format: format_name,
        rows: 0,
        out_len: 0,
        errors_len: 0,
        rewritten: 0,
        failed: 0,
    };
    if let Some(c) = resume {
        summary.resumed_at = c.rows;
        summary.rewritten = c.rewritten;
        summary.failed = c.failed;
        committed = c;
    }
    let file = File::open(input).map_err(|e| io_at(input, &e))?;
    let mut reader = Reader::new(format, BufReader::new(file), input)?;
    if committed.rows == 0
        && let Some(header) = reader.header_line()
    {
        out.write_all(header.as_bytes())
            .map_err(|e| io_at(&paths.partial, &e))?;
    }
    reader.skip(committed.rows)?;
    let mut row = committed.rows;
    progress(row, total);
    loop {
        let mut rows = Vec::with_capacity(batch);
        while rows.len() < batch {
            match reader.next_row()? {
                Some(r) => rows.push(r),
                None => break,
            }
        }
        if rows.is_empty() {
            break;
        }
        // Rows whose envelope or context cannot be read fail here; the rest go to the
        // transform in one call.
        let mut items = Vec::new();
        let mut verdicts: Vec<Option<Outcome>> = Vec::with_capacity(rows.len());
        for r in &rows {
            row += 1;
            match reader.item(r, layout) {
                Ok(item) => {
                    items.push(item);
                    verdicts.push(None);
                }
                Err(e) => verdicts.push(Some(Err(e))),
            }
        }
        let mut outcomes = transform(&items)?.into_iter();
        let first = row - rows.len() as u64 + 1;
        for (i, (r, v)) in rows.iter().zip(verdicts).enumerate() {
            let v = match v {
                Some(v) => v,
                None => outcomes
                    .next()
                    .unwrap_or_else(|| Err("no result for this row".to_owned())),
            };
            let n = first + i as u64;
            let line = match &v {
                Ok(new) => {
                    summary.rewritten += 1;
                    reader.replace(r, layout, new)?
                }
                Err(e) => {
                    summary.failed += 1;
                    serde_json::to_writer(&mut errors, &ErrorRow { row: n, error: e })
                        .map_err(|e| Failure::input(format_args!("error report: {e}")))?;
                    errors
                        .write_all(b"\n")
                        .map_err(|e| io_at(&paths.errors, &e))?;
                    reader.unchanged(r)
                }
            };
            out.write_all(line.as_bytes())
                .map_err(|e| io_at(&paths.partial, &e))?;
        }
        committed.rows = row;
        committed.rewritten = summary.rewritten;
        committed.failed = summary.failed;
        committed.out_len = sync(&mut out, &paths.partial)?;
        committed.errors_len = sync(&mut errors, &paths.errors)?;
        save_checkpoint(&paths.checkpoint, &committed)?;
        progress(row, total);
    }
    summary.rows = row;
    sync(&mut out, &paths.partial)?;
    drop(out);
    std::fs::rename(&paths.partial, &paths.out).map_err(|e| io_at(&paths.out, &e))?;
    sync_dir(&paths.out)?;
    drop(errors);
    if summary.failed == 0 {
        let _ = std::fs::remove_file(&paths.errors);
    }
    std::fs::remove_file(&paths.checkpoint).map_err(|e| io_at(&paths.checkpoint, &e))?;
    Ok(summary)
}

fn load_checkpoint(path: &Path) -> Result<Option<Checkpoint>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|_| {
            Failure::input(format_args!(
                "{}: not a rewrap checkpoint; pass --restart to start over",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path, &e)),
    }
}

/// Temporary file, fsync, rename, fsync the directory.
fn save_checkpoint(path: &Path, c: &Checkpoint) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let bytes = serde_json::to_vec(c).map_err(|e| Failure::input(format_args!("{e}")))?;
    let mut f = File::create(&tmp).map_err(|e| io_at(&tmp, &e))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_at(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_at(path, &e))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_at(dir, &e))
}

/// Flushes and fsyncs; returns the file's length.
fn sync(w: &mut BufWriter<File>, path: &Path) -> Result<u64> {
    w.flush().map_err(|e| io_at(path, &e))?;
    let f = w.get_ref();
    f.sync_data().map_err(|e| io_at(path, &e))?;
    f.metadata().map(|m| m.len()).map_err(|e| io_at(path, &e))
}

/// The partial output and the error report, cut back to what `resume` committed (or empty).
fn open_outputs(
    paths: &Paths,
    resume: Option<&Checkpoint>,
) -> Result<(BufWriter<File>, BufWriter<File>)> {
    let open = |path: &Path, keep: u64| -> Result<BufWriter<File>> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io_at(path, &e))?;
        let len = f.metadata().map_err(|e| io_at(path, &e))?.len();
        if len < keep {
            return Err(Failure::input(format_args!(
                "{}: shorter than its checkpoint records; pass --restart to start over",
                path.display()
            )));
        }
        f.set_len(keep).map_err(|e| io_at(path, &e))?;
        f.seek(SeekFrom::Start(keep)).map_err(|e| io_at(path, &e))?;
        Ok(BufWriter::new(f))
    };
    Ok((
        open(&paths.partial, resume.map_or(0, |c| c.out_len))?,
        open(&paths.errors, resume.map_or(0, |c| c.errors_len))?,
    ))
}

/// Rows in the input (for the progress bar).
fn count_rows(input: &Path, format: Format) -> Result<u64> {
    let f = File::open(input).map_err(|e| io_at(input, &e))?;
    let mut r = Reader::new(format, BufReader::new(f), input)?;
    let mut n = 0;
    while r.next_row()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// One input row as read.
pub(crate) enum Row {
    /// A JSON line (without its newline) and the object parsed from it, if it parsed.
    Json(String, Option<serde_json::Map<String, serde_json::Value>>),
    Csv(csv::StringRecord),
}

/// Reads rows of either format and writes them back.
enum Reader<R: Read> {
    Jsonl {
        r: R,
        name: String,
    },
    Csv {
        r: csv::Reader<R>,
        header: csv::StringRecord,
        name: String,
    },
}

impl<R: BufRead> Reader<R> {
    fn new(format: Format, r: R, path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        Ok(match format {
            Format::Jsonl => Reader::Jsonl { r, name },
            Format::Csv => {
                let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(r);
                let header = r
                    .headers()
                    .map_err(|e| Failure::input(format_args!("{name}: CSV header: {e}")))?
                    .clone();
                Reader::Csv { r, header, name }
            }
        })
    }

    /// The CSV header as written to the output.
    fn header_line(&self) -> Option<String> {
        match self {
            Reader::Jsonl { .. } => None,
            Reader::Csv { header, .. } => Some(csv_line(header)),
        }
    }

    fn skip(&mut self, rows: u64) -> Result<()> {
        for _ in 0..rows {
            if self.next_row()?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        match self {
            Reader::Jsonl { r, name } => {
                let mut line = String::new();
                let n = r
                    .read_line(&mut line)
                    .map_err(|e| Failure::input(format_args!("{name}: {e}")))?;
                if n == 0 {
                    return Ok(None);
                }
                if line.ends_with('\n') {
                    line.pop();
                    if line.ends_with('\r') {
                        line.pop();
                    }
                }
                let obj = serde_json::from_str(&line).ok();
                Ok(Some(Row::Json(line, obj)))
            }
            Reader::Csv { r, name, .. } => {
                let mut rec = csv::StringRecord::new();
                match r.read_record(&mut rec) {
                    Ok(true) => Ok(Some(Row::Csv(rec))),
                    Ok(false) => Ok(None),
                    Err(e) => Err(Failure::input(format_args!("{name}: {e}"))),
                }
            }
        }
    }

    /// A field of a row, as text.
    fn field(&self, row: &Row, name: &str) -> std::result::Result<String, String> {
        match (self, row) {
            (_, Row::Json(_, None)) => Err("not a JSON object".to_owned()),
            (_, Row::Json(_, Some(obj))) => match obj.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                Some(_) => Err(format!("field `{name}` is not a string")),
                None => Err(format!("no field `{name}`")),
            },
            (Reader::Csv { header, .. }, Row::Csv(rec)) => header
                .iter()
                .position(|h| h == name)
                .and_then(|i| rec.get(i))
                .map(str::to_owned)
                .ok_or_else(|| format!("no column `{name}`")),
            (Reader::Jsonl { .. }, Row::Csv(_)) => Err("internal: CSV row in JSON input".into()),
        }
    }

    fn item(&self, row: &Row, layout: &Layout) -> std::result::Result<Item, String> {
        let envelope = self.field(row, &layout.envelope)?;
        let mut context = layout.fixed.clone();
        for (part, field) in &layout.from_fields {
            context.push((part.clone(), self.field(row, field)?));
        }
        Ok(Item { envelope, context })
    }

    /// The row with its envelope replaced by `new`, as an output line.
    fn replace(&self, row: &Row, layout: &Layout, new: &str) -> Result<String> {
        match (self, row) {
            (Reader::Jsonl { .. }, Row::Json(line, Some(obj))) => {
                let old = match obj.get(&layout.envelope) {
                    Some(serde_json::Value::String(s)) => s,
                    _ => return Ok(format!("{line}\n")),
                };
                // Envelopes are `fs1:` and base64url: no escaping, so the quoted text appears
                // verbatim once; the line is then kept byte for byte around it. Otherwise the
                // object is written anew.
                let quoted = format!("\"{old}\"");
                if line.matches(&quoted).count() == 1 {
                    return Ok(format!(
                        "{}\n",
                        line.replacen(&quoted, &format!("\"{new}\""), 1)
                    ));
                }
                let mut obj = obj.clone();
                obj.insert(
                    layout.envelope.clone(),
                    serde_json::Value::String(new.into()),
                );
                let text =
                    serde_json::to_string(&obj).map_err(|e| Failure::input(format_args!("{e}")))?;
                Ok(format!("{text}\n"))
            }
            (Reader::Csv { header, .. }, Row::Csv(rec)) => {
                let at = header.iter().position(|h| h == layout.envelope);
                let fields: csv::StringRecord = rec
                    .iter()
                    .enumerate()
                    .map(|(i, f)| if Some(i) == at { new } else { f })
                    .collect();
                Ok(csv_line(&fields))
            }
            _ => Ok(self.unchanged(row)),
        }
    }

    fn unchanged(&self, row: &Row) -> String {
        match row {
            Row::Json(line, _) => format!("{line}\n"),
            Row::Csv(rec) => csv_line(rec),
        }
    }
}

/// One CSV record as a line (quoted only where needed).
fn csv_line(rec: &csv::StringRecord) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = w.write_record(rec);
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests;
