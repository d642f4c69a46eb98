//! `seal`, `reveal` and `mask` for operators, through the same guard as any call site: the
//! manifest policy decides, the audit log records, and only then is anything decrypted.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;
use fieldseal::{AllowList, AnySealed, AnyValue, FieldKind, Guard, NullSink, PurposeId};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::fail::{Failure, Result};
use crate::guard::{ContextArgs, GuardArgs, open_error};
use crate::keys::{RingArgs, load};
use crate::out::json_line;

/// Longest value read from standard input.
const MAX_VALUE: u64 = 64 * 1024;

/// `seal`.
#[derive(Debug, Args)]
pub(crate) struct SealArgs {
    #[command(flatten)]
    ring: RingArgs,
    /// Field kind (`phone_number`, `email`, `id_number`, …)
    #[arg(long)]
    kind: String,
    /// Purpose the value is sealed for
    #[arg(long)]
    purpose: String,
    #[command(flatten)]
    context: ContextArgs,
    /// Policy manifest: sealing a kind its categories do not collect for the purpose is
    /// refused (without it, any kind may be sealed)
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Print JSON instead of the envelope alone
    #[arg(long)]
    json: bool,
}

/// `reveal` and `mask`.
#[derive(Debug, Args)]
pub(crate) struct OpenArgs {
    /// The envelope (`fs1:…`); `-` reads it from standard input
    #[arg(value_name = "ENVELOPE|-")]
    envelope: String,
    #[command(flatten)]
    guard: GuardArgs,
    #[command(flatten)]
    context: ContextArgs,
    /// Print JSON instead of the value alone
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SealRow {
    envelope: String,
    kind: &'static str,
    purpose: String,
    key_version: u32,
}

#[derive(Serialize)]
struct OpenRow<'a> {
    kind: &'static str,
    purpose: &'a str,
    value: &'a str,
}

/// Reads standard input whole (at most [`MAX_VALUE`] bytes), without its final line break.
fn read_stdin(what: &str) -> Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(MAX_VALUE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::input(format_args!("stdin: cannot read the {what}: {e}")))?;
    if buf.len() as u64 > MAX_VALUE {
        return Err(Failure::input(format_args!(
            "stdin: the {what} is longer than {MAX_VALUE} bytes"
        )));
    }
    let mut text = match String::from_utf8(std::mem::take(&mut *buf)) {
        Ok(t) => Zeroizing::new(t),
        Err(e) => {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            return Err(Failure::input(format_args!(
                "stdin: the {what} is not UTF-8"
            )));
        }
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(Failure::input(format_args!("stdin: no {what}")));
    }
    Ok(text)
}

pub(crate) fn seal(a: &SealArgs) -> Result<()> {
    let kind = crate::policy::kind_of(&a.kind)?;
    let purpose = PurposeId::new(&a.purpose).map_err(|_| {
        Failure::input(format_args!("--purpose {}: not a purpose label", a.purpose))
    })?;
    let ctx = a.context.context()?;
    let ring = load(&a.ring.keyring, &a.ring.kek)?;
    // Sealing is not an access: it needs no accessor and leaves no audit record. The manifest,
    // if given, still limits the kinds collected per purpose.
    let builder = Guard::builder().keyring(ring).audit(NullSink);
    let guard = match &a.manifest {
        Some(m) => {
            let text = crate::policy::read_manifest(m)?;
            let policy = fieldseal::ManifestPolicy::from_toml(&text).map_err(|_| {
                Failure::input(format_args!(
                    "{}: not a valid manifest (run `fieldseal policy lint {}`)",
                    m.display(),
                    m.display()
                ))
            })?;
            builder.policy(policy).build()
        }
        None => builder.policy(AllowList::new()).build(),
    }
    .map_err(Failure::input)?;
    let text = read_stdin("value")?;
    let value = AnyValue::parse(kind, &text)
        .map_err(|e| Failure::input(format_args!("stdin: not a valid {}: {e}", kind.label())))?;
    let sealed = guard
        .seal_any(&value, &purpose, &ctx)
        .map_err(|e| open_error(&e))?;
    let row = SealRow {
        envelope: sealed.to_text(),
        kind: kind.label(),
        purpose: purpose.as_str().to_owned(),
        key_version: sealed.key_version().get(),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        return json_line(&mut out, &row);
    }
    writeln!(out, "{}", row.envelope)?;
    Ok(())
}

fn envelope_of(arg: &str) -> Result<AnySealed> {
    let text = if arg == "-" {
        read_stdin("envelope")?
    } else {
        Zeroizing::new(arg.to_owned())
    };
    AnySealed::from_text(text.trim()).map_err(|e| Failure::input(format_args!("envelope: {e}")))
}

/// `reveal` (`mask == false`) or `mask`.
pub(crate) fn open(a: &OpenArgs, mask: bool) -> Result<()> {
    let sealed = envelope_of(&a.envelope)?;
    let ctx = a.context.context()?;
    let guard = a.guard.build()?;
    let accessor = a.guard.accessor();
    let kind: FieldKind = sealed.kind();
    let value: Zeroizing<String> = if mask {
        Zeroizing::new(
            guard
                .mask_any(&accessor, &sealed, &ctx)
                .map_err(|e| open_error(&e))?,
        )
    } else {
        guard
            .reveal_any(&accessor, &sealed, &ctx)
            .map_err(|e| open_error(&e))?
            .expose_text()
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        return json_line(
            &mut out,
            &OpenRow {
                kind: kind.label(),
                purpose: sealed.purpose_label(),
                value: &value,
            },
        );
    }
    writeln!(out, "{}", &*value)?;
    Ok(())
}
