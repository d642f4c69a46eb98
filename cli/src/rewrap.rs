//! `rewrap`: re-seal the envelopes of a row file under the keyring's active key version.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use fieldseal::AnySealed;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::fail::{Failure, Result};
use crate::guard::{GuardArgs, context_of};
use crate::out::json_line;
use crate::rows::{self, Format, Item, Job, Layout, Outcome, Paths};

/// `rewrap`.
#[derive(Debug, Args)]
pub(crate) struct RewrapArgs {
    /// Input rows: JSON lines or CSV with a header
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Output file: written as FILE.partial and renamed when every row is done; never
    /// overwritten
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Input format (default: from the extension, .jsonl or .csv)
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// The JSON field or CSV column holding the envelope
    #[arg(long, value_name = "NAME", default_value = "envelope")]
    envelope_field: String,
    /// A context part taken from each row: PART=FIELD (repeat, e.g. --context-from row=id)
    #[arg(long = "context-from", value_name = "PART=FIELD")]
    context_from: Vec<String>,
    /// A context part the same for every row: PART=VALUE (repeat, e.g. --context table=users)
    #[arg(long = "context", value_name = "PART=VALUE")]
    context: Vec<String>,
    /// Rows per batch: one policy decision per purpose and kind, one commit point
    #[arg(long, value_name = "N", default_value_t = 1000)]
    batch: usize,
    /// Start over instead of resuming an interrupted run (discards its progress)
    #[arg(long)]
    restart: bool,
    #[command(flatten)]
    guard: GuardArgs,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

fn pairs(list: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| Failure::input(format_args!("{flag} {p}: `PART=…` expected")))
        })
        .collect()
}

#[derive(Serialize)]
struct Report<'a> {
    out: String,
    errors: Option<String>,
    active_version: u32,
    #[serde(flatten)]
    summary: &'a rows::Summary,
}

pub(crate) fn run(a: &RewrapArgs) -> Result<()> {
    let format = match a.format.or_else(|| Format::of(&a.input)) {
        Some(f) => f,
        None => {
            return Err(Failure::input(format_args!(
                "{}: unknown format; pass --format jsonl or --format csv",
                a.input.display()
            )));
        }
    };
    let layout = Layout {
        envelope: a.envelope_field.clone(),
        from_fields: pairs(&a.context_from, "--context-from")?,
        fixed: pairs(&a.context, "--context")?,
    };
    // Bad fixed parts fail now, not once per row.
    context_of(
        layout
            .fixed
            .iter()
            .map(|(p, v)| Ok((p.as_str(), v.as_str()))),
    )?;
    let guard = a.guard.build()?;
    let accessor = a.guard.accessor();
    let active = guard.keyring().active_version().get();
    let paths = Paths::new(&a.out);
    let job = Job {
        input: &a.input,
        format,
        layout: &layout,
        paths: &paths,
        batch: a.batch,
        restart: a.restart,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} rows, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let transform = |items: &[Item]| -> Result<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
        let mut batch = Vec::with_capacity(items.len());
        for item in items {
            let parsed = AnySealed::from_text(item.envelope.trim())
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    context_of(
                        item.context
                            .iter()
                            .map(|(p, v)| Ok((p.as_str(), v.as_str()))),
                    )
                    .map(|c| (s, c))
                    .map_err(|f| match f {
                        Failure::Report { message, .. } => message,
                        _ => "invalid context".to_owned(),
                    })
                });
            match parsed {
                Ok(pair) => {
                    batch.push(pair);
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        // One call per batch: the batch's audit records are written before anything is
        // re-sealed; an audit failure stops the run (what was committed stays committed).
        let report = guard
            .rewrap_batch(&accessor, batch)
            .map_err(|e| crate::guard::open_error(&e))?;
        let mut results = report.into_results().into_iter();
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                Some(e) => e,
                None => match results.next() {
                    Some(Ok(s)) => Ok(s.to_text()),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("no result for this row".to_owned()),
                },
            })
            .collect())
    };
    let summary = rows::run(&job, transform, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let summary = summary?;
    let report = Report {
        out: paths.out.display().to_string(),
        errors: (summary.failed > 0).then(|| paths.errors.display().to_string()),
        active_version: active,
        summary: &summary,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        json_line(&mut out, &report)?;
    } else {
        let resumed = match summary.resumed_at {
            0 => String::new(),
            n => format!(" (resumed after row {n})"),
        };
        writeln!(
            out,
            "{}: {} of {} rows rewrapped to key version {active}{resumed}",
            report.out, summary.rewritten, summary.rows
        )?;
    }
    if summary.failed > 0 {
        return Err(Failure::verify(format_args!(
            "{} rows not rewrapped (still under their old key version): see {}",
            summary.failed,
            paths.errors.display()
        )));
    }
    Ok(())
}
