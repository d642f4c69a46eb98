//! The retention sweep's vocabulary: what [`Guard::retention_sweep`](crate::Guard::retention_sweep)
//! is handed (stored envelopes, text or binary) and what it answers per item.
//!
//! The sweep reads only an envelope's public header (kind, purpose, sealed-at): it never derives
//! a key, never decrypts and needs no context. The decision is the purpose's retention
//! (`retention_days` in the manifest) and its `on_expiry` rule, on the guard's clock.

use std::collections::BTreeMap;

use crate::any::AnySealed;
use crate::error::Error;
use crate::field::FieldKind;
use crate::purpose::PurposeId;

/// One stored envelope handed to a sweep: its text form (`fs1:…`) or its binary form, as the
/// application's column holds it.
#[derive(Debug, Clone, Copy)]
pub enum Stored<'a> {
    /// The text form, `fs1:` and base64url.
    Text(&'a str),
    /// The binary form.
    Binary(&'a [u8]),
}

impl<'a> From<&'a str> for Stored<'a> {
    fn from(text: &'a str) -> Self {
        Stored::Text(text)
    }
}

impl<'a> From<&'a String> for Stored<'a> {
    fn from(text: &'a String) -> Self {
        Stored::Text(text)
    }
}

impl<'a> From<&'a [u8]> for Stored<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Stored::Binary(bytes)
    }
}

impl<'a> From<&'a AnySealed> for Stored<'a> {
    fn from(sealed: &'a AnySealed) -> Self {
        Stored::Binary(sealed.as_bytes())
    }
}

impl Stored<'_> {
    /// The envelope, checked for structure only (no key, no decryption).
    pub(crate) fn parse(self) -> Result<AnySealed, Error> {
        match self {
            Stored::Text(t) => AnySealed::from_text(t),
            Stored::Binary(b) => AnySealed::from_bytes(b),
        }
    }
}

/// What to do with one stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetentionDecision {
    /// Retention has not passed: keep the value. It becomes due at `until` (Unix seconds).
    Keep {
        /// sealed-at plus the purpose's retention: the first second the value is expired.
        until: u64,
    },
    /// Retention has passed and the purpose's rule is `delete`: delete the value.
    Delete,
    /// Retention has passed and the purpose's rule is `anonymize`: derive the anonymized form
    /// the purpose keeps, then delete the value. The sweep only decides; the anonymization is
    /// the application's (or the crate's anonymization API's) next step.
    AnonymizeThenDelete,
}

impl RetentionDecision {
    /// Stable label: `keep`, `delete`, `anonymize_then_delete`.
    pub const fn label(self) -> &'static str {
        match self {
            RetentionDecision::Keep { .. } => "keep",
            RetentionDecision::Delete => "delete",
            RetentionDecision::AnonymizeThenDelete => "anonymize_then_delete",
        }
    }

    /// Whether the value is due for removal (deletion, with or without anonymization first).
    pub const fn is_due(self) -> bool {
        !matches!(self, RetentionDecision::Keep { .. })
    }
}

/// The decision for one item of a sweep, with the header fields it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepItem {
    /// The envelope's field kind.
    pub kind: FieldKind,
    /// The envelope's purpose.
    pub purpose: PurposeId,
    /// The envelope's sealed-at (Unix seconds).
    pub sealed_at: u64,
    /// The decision.
    pub decision: RetentionDecision,
}

/// Per-purpose counts of a sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepCounts {
    /// Items kept.
    pub keep: usize,
    /// Items to delete.
    pub delete: usize,
    /// Items to anonymize, then delete.
    pub anonymize_then_delete: usize,
}

impl SweepCounts {
    fn add(&mut self, d: RetentionDecision) {
        match d {
            RetentionDecision::Keep { .. } => self.keep += 1,
            RetentionDecision::Delete => self.delete += 1,
            RetentionDecision::AnonymizeThenDelete => self.anonymize_then_delete += 1,
        }
    }
}

/// What [`Guard::retention_sweep`](crate::Guard::retention_sweep) decided: one result per item,
/// in input order, and the totals the summary audit record was made from.
#[derive(Debug)]
#[non_exhaustive]
pub struct SweepReport {
    /// The guard's clock when the sweep decided (every item was decided at this time).
    pub now: u64,
    /// Per item, in input order: the decision, or why the item could not be decided (a
    /// malformed envelope: [`Error::Format`]; a purpose the policy defines no rules for:
    /// [`crate::ConfigError::NoPurposeRules`]). An undecided item is neither kept nor deleted
    /// by the sweep: the application decides what to do with it.
    pub items: Vec<Result<SweepItem, Error>>,
    /// Counts per purpose label, over the decided items.
    pub per_purpose: BTreeMap<PurposeId, SweepCounts>,
    /// Counts over every decided item.
    pub total: SweepCounts,
    /// Items that could not be decided.
    pub errors: usize,
}

impl SweepReport {
    pub(crate) fn new(now: u64) -> Self {
        Self {
            now,
            items: Vec::new(),
            per_purpose: BTreeMap::new(),
            total: SweepCounts::default(),
            errors: 0,
        }
    }

    pub(crate) fn push(&mut self, item: Result<SweepItem, Error>) {
        match &item {
            Ok(i) => {
                self.total.add(i.decision);
                self.per_purpose
                    .entry(i.purpose.clone())
                    .or_default()
                    .add(i.decision);
            }
            Err(_) => self.errors += 1,
        }
        self.items.push(item);
    }

    /// Indices (in input order) of the items due for removal with this decision.
    pub fn indices(&self, decision: RetentionDecision) -> impl Iterator<Item = usize> + '_ {
        self.items.iter().enumerate().filter_map(move |(i, r)| {
            r.as_ref()
                .ok()
                .filter(|it| it.decision == decision)
                .map(|_| i)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct() {
        let all = [
            RetentionDecision::Keep { until: 1 },
            RetentionDecision::Delete,
            RetentionDecision::AnonymizeThenDelete,
        ];
        let mut labels: Vec<_> = all.iter().map(|d| d.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), 3);
        assert!(!all[0].is_due() && all[1].is_due() && all[2].is_due());
    }

    #[test]
    fn malformed_items_are_errors_not_panics() {
        for bad in ["", "fs1:", "fs1:AAAA", "xyz", "fs9:AQ"] {
            assert!(Stored::Text(bad).parse().is_err(), "{bad:?}");
        }
        for bad in [&[][..], &[1u8][..], &[2u8, 3, 0][..]] {
            assert!(Stored::Binary(bad).parse().is_err());
        }
    }
}
