//! `inspect`: what an envelope's public header says, without a key and without decrypting.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use clap::Args;
use fieldseal::{EnvelopeInfo, MAX_ENVELOPE_LEN, TEXT_PREFIX};
use serde::Serialize;

use crate::fail::{Exit, Failure, Result, io_at};
use crate::out::{json_line, utc};

/// `inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Envelopes (`fs1:…`); `-` reads them from standard input, one per line
    #[arg(value_name = "ENVELOPE|-", required_unless_present = "file")]
    envelopes: Vec<String>,
    /// Read envelopes from this file, one per line (`-` for standard input)
    #[arg(long, short, value_name = "FILE", conflicts_with = "envelopes")]
    file: Option<PathBuf>,
    /// Print one JSON object per envelope instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    /// Line number (file or standard input) or argument position, from 1.
    line: usize,
    version: u8,
    kind: &'static str,
    purpose: String,
    key_version: u32,
    sealed_at: u64,
    sealed_at_utc: String,
    subject_key: bool,
    text_len: usize,
    binary_len: usize,
    ciphertext_len: usize,
}

#[derive(Serialize)]
struct ErrorRow {
    line: usize,
    error: String,
}

/// Longest line read: the longest text envelope plus slack for `\r\n` and spaces.
fn max_line() -> usize {
    TEXT_PREFIX.len() + MAX_ENVELOPE_LEN.div_ceil(3) * 4 + 64
}

/// Where an envelope came from, for messages.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    /// The nth command-line argument.
    Argument(usize),
    /// Line n of a file or of standard input.
    Line(&'a str, usize),
}

impl Origin<'_> {
    fn number(self) -> usize {
        match self {
            Origin::Argument(n) | Origin::Line(_, n) => n,
        }
    }
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Argument(n) => write!(f, "argument {n}"),
            Origin::Line(name, n) => write!(f, "{name}:{n}"),
        }
    }
}

/// One line of input.
enum Line<'a> {
    Text(&'a str),
    TooLong,
    NotUtf8,
}

pub(crate) fn run(a: &InspectArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if a.envelopes.len() > 1 && a.envelopes.iter().any(|e| e == "-") {
        return Err(Failure::input(
            "`-` (standard input) cannot be combined with envelope arguments",
        ));
    }
    let stdin_wanted = a.file.as_deref().is_some_and(|f| f.as_os_str() == "-")
        || a.envelopes.first().is_some_and(|e| e == "-");
    let (mut seen, mut failed) = (0usize, 0usize);
    let mut one = |out: &mut std::io::StdoutLock<'_>, origin: Origin<'_>, line: Line<'_>| {
        seen += 1;
        let ok = describe(out, origin, line, a.json)?;
        failed += usize::from(!ok);
        Ok(())
    };
    if stdin_wanted {
        let stdin = std::io::stdin().lock();
        each_line(stdin, "stdin", |o, l| one(&mut out, o, l))?;
    } else if let Some(path) = &a.file {
        let f = std::fs::File::open(path).map_err(|e| io_at(path, &e))?;
        let name = path.display().to_string();
        each_line(std::io::BufReader::new(f), &name, |o, l| {
            one(&mut out, o, l)
        })?;
    } else {
        for (i, text) in a.envelopes.iter().enumerate() {
            one(&mut out, Origin::Argument(i + 1), Line::Text(text.trim()))?;
        }
    }
    if seen == 0 {
        return Err(Failure::input(
            "no envelope to inspect (the input is empty)",
        ));
    }
    if failed > 0 {
        if seen > 1 {
            eprintln!("fieldseal: {failed} of {seen} envelopes are malformed");
        }
        return Err(Failure::Reported(Exit::Input));
    }
    Ok(())
}

/// Calls `f` with each non-blank line (trimmed). A line too long to be an envelope is
/// reported as such without being held in memory.
fn each_line(
    mut r: impl BufRead,
    name: &str,
    mut f: impl FnMut(Origin<'_>, Line<'_>) -> Result<()>,
) -> Result<()> {
    let max = max_line();
    let read_err = |e: std::io::Error| Failure::input(format_args!("{name}: cannot read: {e}"));
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let read = (&mut r)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(read_err)?;
        if read == 0 {
            break;
        }
        let origin = Origin::Line(name, n);
        if buf.len() > max && buf.last() != Some(&b'\n') {
            // Skip the rest of the line.
            loop {
                buf.clear();
                let k = (&mut r)
                    .take(64 * 1024)
                    .read_until(b'\n', &mut buf)
                    .map_err(read_err)?;
                if k == 0 || buf.last() == Some(&b'\n') {
                    break;
                }
            }
            f(origin, Line::TooLong)?;
            continue;
        }
        match std::str::from_utf8(&buf) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => f(origin, Line::Text(text.trim()))?,
            Err(_) => f(origin, Line::NotUtf8)?,
        }
    }
    Ok(())
}

/// Describes one envelope; `Ok(false)` if it is malformed (reported on stderr, and as a JSON
/// error row with `--json`).
fn describe(out: &mut impl Write, origin: Origin<'_>, line: Line<'_>, json: bool) -> Result<bool> {
    let parsed = match line {
        Line::TooLong => Err("line longer than any envelope".to_owned()),
        Line::NotUtf8 => Err("not UTF-8 text".to_owned()),
        Line::Text(text) => EnvelopeInfo::from_text(text)
            .map(|i| (i, text.len()))
            .map_err(|e| e.to_string()),
    };
    let (info, text_len) = match parsed {
        Ok(i) => i,
        Err(e) => {
            // The message names the rule that failed, never the input.
            if json {
                json_line(
                    out,
                    &ErrorRow {
                        line: origin.number(),
                        error: e.clone(),
                    },
                )?;
            }
            eprintln!("fieldseal: {origin}: {e}");
            return Ok(false);
        }
    };
    // Canonical unpadded base64 of n bytes is ceil(4n/3) characters, so this is exact.
    let binary_len = (text_len - TEXT_PREFIX.len()) * 3 / 4;
    let row = Row {
        line: origin.number(),
        version: info.version(),
        kind: info.kind().label(),
        purpose: info.purpose().as_str().to_owned(),
        key_version: info.key_version().get(),
        sealed_at: info.sealed_at(),
        sealed_at_utc: utc(info.sealed_at()),
        subject_key: info.has_subject_key(),
        text_len,
        binary_len,
        ciphertext_len: info.ciphertext_len(),
    };
    if json {
        json_line(out, &row)?;
        return Ok(true);
    }
    writeln!(out, "{origin}")?;
    writeln!(out, "  format       envelope v{}", row.version)?;
    writeln!(out, "  kind         {}", row.kind)?;
    writeln!(out, "  purpose      {}", row.purpose)?;
    writeln!(out, "  key version  {}", row.key_version)?;
    writeln!(
        out,
        "  sealed at    {} ({})",
        row.sealed_at_utc, row.sealed_at
    )?;
    let subject = if row.subject_key { "yes" } else { "no" };
    writeln!(out, "  subject key  {subject}")?;
    writeln!(
        out,
        "  size         {} chars text, {} bytes binary, {} bytes ciphertext + 16 bytes tag",
        row.text_len, row.binary_len, row.ciphertext_len
    )?;
    Ok(true)
}
