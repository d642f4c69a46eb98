//! The subject access export: a structured, versioned JSON document of everything the caller
//! handed in that belongs to the verified subject.

use std::fmt;
use std::io;

use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use crate::audit::{EventRecord, Outcome};
use crate::field::FieldKind;
use crate::purpose::PurposeId;

/// The `format` member of every export.
pub const EXPORT_FORMAT: &str = "fieldseal-subject-export";

/// The `version` member of exports this release writes.
pub const EXPORT_VERSION: u32 = 1;

/// One of the subject's values, opened for the export. Holds plaintext: wiped on drop,
/// redacted in `Debug`, not `Clone`.
pub struct ExportedValue {
    pub(crate) kind: FieldKind,
    pub(crate) purpose: PurposeId,
    pub(crate) sealed_at: u64,
    pub(crate) retention_until: Option<u64>,
    pub(crate) legal_basis: Option<&'static str>,
    pub(crate) value: Zeroizing<String>,
}

impl ExportedValue {
    /// The field kind.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }
    /// The purpose it was collected for.
    pub fn purpose(&self) -> &PurposeId {
        &self.purpose
    }
    /// When it was sealed (Unix seconds).
    pub fn sealed_at(&self) -> u64 {
        self.sealed_at
    }
    /// When its retention ends (Unix seconds), if the policy defines the purpose's retention.
    pub fn retention_until(&self) -> Option<u64> {
        self.retention_until
    }
    /// The value in its text form (as the kind's parser accepts it).
    pub fn expose_secret(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for ExportedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ExportedValue<{}, {}>([REDACTED])",
            self.kind,
            self.purpose.as_str()
        )
    }
}

/// A value of the subject that the export lists without its content: the policy did not grant
/// `export` for it (or it did not open: erased, tampered, bound to another context).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Withheld {
    /// The field kind.
    pub kind: FieldKind,
    /// The purpose.
    pub purpose: PurposeId,
    /// When it was sealed (Unix seconds).
    pub sealed_at: u64,
    /// Why it is withheld: `denied:*` or `failed:*`, as in the audit record.
    pub reason: Outcome,
}

/// A subject access export, made by [`Guard::export_subject`](crate::Guard::export_subject).
///
/// Holds the subject's plaintext: wiped on drop, redacted in `Debug`, not `Clone`, not
/// `Serialize`. [`SubjectExport::to_json`] renders the document handed to the subject.
///
/// # Format (version 1)
/// One JSON object, members in this order (serde_json's compact output):
///
/// | member | JSON | meaning |
/// |---|---|---|
/// | `format` | string | always `fieldseal-subject-export` |
/// | `version` | integer | `1`; a reader refuses other versions |
/// | `generated_at` | integer | Unix seconds (the guard's clock) when the export was made |
/// | `values` | array of objects | the subject's values, in the order handed in |
/// | `withheld` | array of objects | the subject's values not included, in the order handed in |
/// | `audit_trail` | array of objects, or `null` | the subject's audit events, oldest first; `null` when no verified log was given |
///
/// Each `values` object: `kind` (field-kind label), `purpose` (label), `sealed_at` (Unix
/// seconds), `retention_until` (Unix seconds or `null` if the policy defines no retention for
/// the purpose), `legal_basis` (`consent`, `contract`, `legal_obligation`,
/// `legitimate_interest`, or `null`), `value` (the text form of the value, as the kind's parser
/// accepts it: E.164 phone numbers, `local@domain`, addresses and device information in their
/// one-line text form).
///
/// Each `withheld` object: `kind`, `purpose`, `sealed_at`, `reason` (an audit outcome label:
/// `denied:not_permitted` when the policy does not grant `export`, `failed:erased` for an
/// erased value, …).
///
/// Each `audit_trail` object: `seq` (the entry's position in the verified log), `time`,
/// `principal` (who acted), `action`, `purpose` and `kind` (`-` when none), `outcome`, all as in
/// the audit log's entry. Subject pseudonyms and context digests are not included.
pub struct SubjectExport {
    pub(crate) generated_at: u64,
    pub(crate) values: Vec<ExportedValue>,
    pub(crate) withheld: Vec<Withheld>,
    pub(crate) trail: Option<Vec<(u64, EventRecord)>>,
}

impl fmt::Debug for SubjectExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectExport")
            .field("generated_at", &self.generated_at)
            .field("values", &self.values.len())
            .field("withheld", &self.withheld)
            .field("audit_trail", &self.trail.as_ref().map(Vec::len))
            .finish()
    }
}

#[derive(Serialize)]
struct Doc<'a> {
    format: &'static str,
    version: u32,
    generated_at: u64,
    values: Vec<ValueRef<'a>>,
    withheld: Vec<WithheldRef<'a>>,
    audit_trail: Option<Vec<TrailRef<'a>>>,
}

#[derive(Serialize)]
struct ValueRef<'a> {
    kind: &'static str,
    purpose: &'a str,
    sealed_at: u64,
    retention_until: Option<u64>,
    legal_basis: Option<&'static str>,
    value: &'a str,
}

#[derive(Serialize)]
struct WithheldRef<'a> {
    kind: &'static str,
    purpose: &'a str,
    sealed_at: u64,
    reason: &'static str,
}

#[derive(Serialize)]
struct TrailRef<'a> {
    seq: u64,
    time: u64,
    principal: &'a str,
    action: &'a str,
    purpose: &'a str,
    kind: &'a str,
    outcome: &'a str,
}

/// A byte sink that never leaves a copy behind when it grows: the old buffer is wiped.
struct WipingWriter(Zeroizing<Vec<u8>>);

impl io::Write for WipingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let need = self.0.len().saturating_add(buf.len());
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(need.saturating_mul(2)));
            bigger.extend_from_slice(&self.0);
            std::mem::swap(&mut self.0, &mut bigger);
            // `bigger` (the old buffer) is wiped when dropped here.
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SubjectExport {
    /// The values included, in the order handed in.
    pub fn values(&self) -> &[ExportedValue] {
        &self.values
    }

    /// The subject's values not included, and why.
    pub fn withheld(&self) -> &[Withheld] {
        &self.withheld
    }

    /// The subject's audit trail (seq, entry), if a verified log was given.
    pub fn audit_trail(&self) -> Option<&[(u64, EventRecord)]> {
        self.trail.as_deref()
    }

    /// When the export was made (Unix seconds).
    pub fn generated_at(&self) -> u64 {
        self.generated_at
    }

    /// The export document (format above), in a buffer wiped on drop.
    pub fn to_json(&self) -> Zeroizing<String> {
        let doc = Doc {
            format: EXPORT_FORMAT,
            version: EXPORT_VERSION,
            generated_at: self.generated_at,
            values: self
                .values
                .iter()
                .map(|v| ValueRef {
                    kind: v.kind.label(),
                    purpose: v.purpose.as_str(),
                    sealed_at: v.sealed_at,
                    retention_until: v.retention_until,
                    legal_basis: v.legal_basis,
                    value: &v.value,
                })
                .collect(),
            withheld: self
                .withheld
                .iter()
                .map(|w| WithheldRef {
                    kind: w.kind.label(),
                    purpose: w.purpose.as_str(),
                    sealed_at: w.sealed_at,
                    reason: w.reason.label(),
                })
                .collect(),
            audit_trail: self.trail.as_ref().map(|t| {
                t.iter()
                    .map(|(seq, r)| TrailRef {
                        seq: *seq,
                        time: r.time,
                        principal: &r.principal,
                        action: &r.action,
                        purpose: &r.purpose,
                        kind: &r.kind,
                        outcome: &r.outcome,
                    })
                    .collect()
            }),
        };
        let mut w = WipingWriter(Zeroizing::new(Vec::with_capacity(4096)));
        // Writing strings and integers into memory cannot fail.
        let _ = serde_json::to_writer(&mut w, &doc);
        let mut bytes = std::mem::take(&mut *w.0);
        // serde_json writes UTF-8 only; the fallback (never taken) wipes what it got.
        match String::from_utf8(bytes) {
            Ok(s) => Zeroizing::new(s),
            Err(e) => {
                bytes = e.into_bytes();
                bytes.zeroize();
                Zeroizing::new(String::new())
            }
        }
    }
}
