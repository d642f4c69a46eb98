//! Line and column of a manifest problem.
//!
//! The library reports syntax and shape errors with a position, and semantic problems
//! ([`LintError`]) with the dotted path of the field at fault. This module finds that field in
//! the TOML document (with the parser's spans), so every problem carries a line and a column.

use std::ops::Range;

use fieldseal::LintError;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A parsed manifest document with the spans of its keys and values.
pub(crate) struct Doc<'i> {
    text: &'i str,
    root: Spanned<DeTable<'i>>,
}

impl<'i> Doc<'i> {
    /// Parses `text`, collecting every syntax error instead of stopping at the first.
    pub(crate) fn parse(text: &'i str) -> (Self, Vec<toml::de::Error>) {
        let (root, errors) = DeTable::parse_recoverable(text);
        (Self { text, root }, errors)
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(self.text, offset)
    }

    /// Where `e` is, if it can be found.
    pub(crate) fn find(&self, e: &LintError) -> Option<(usize, usize)> {
        let span = match e {
            LintError::UnsupportedVersion(_) => self.value(&["version"]),
            LintError::InvalidHomeRegion(_) => self.value(&["home_region"]),
            LintError::UnknownKind { at, kind } => {
                let path = self.resolve(at)?;
                self.element(&path, kind).or_else(|| self.value(&path))
            }
            LintError::UnknownAction { at, action } => {
                let mut path = self.resolve(at)?;
                path.push(action);
                self.key(&path)
            }
            LintError::UndefinedPurpose { at, purpose } => {
                let path = self.resolve(at)?;
                match self.get(&path).map(|v| v.get_ref()) {
                    Some(DeValue::Array(_)) => self.element(&path, purpose),
                    _ => self.key(&path),
                }
            }
            LintError::InvalidPurposeLabel(p) => self.key(&["purposes", p]),
            LintError::MissingRetention(p) => self
                .value(&["purposes", p, "retention_days"])
                .or_else(|| self.key(&["purposes", p])),
            LintError::ConsentNotWithdrawable(p) => self
                .value(&["purposes", p, "withdrawable"])
                .or_else(|| self.key(&["purposes", p])),
            LintError::ConsentBasisWithoutConsent(p) => self
                .value(&["purposes", p, "consent_required"])
                .or_else(|| self.key(&["purposes", p])),
            LintError::UndefinedRole { role, parent } => {
                self.element(&["roles", role, "inherits"], parent)
            }
            LintError::InheritanceCycle(cycle) => {
                let first = cycle.first()?;
                let next = cycle.get(1).unwrap_or(first);
                self.element(&["roles", first, "inherits"], next)
            }
            LintError::InvalidName(n) => self
                .key(&["roles", n])
                .or_else(|| self.key(&["recipients", n])),
            LintError::UnknownRecipientBasis { recipient, .. } => self
                .value(&["recipients", recipient, "basis"])
                .or_else(|| self.key(&["recipients", recipient])),
            LintError::InheritanceTooDeep { role, .. } => self
                .value(&["roles", role, "inherits"])
                .or_else(|| self.key(&["roles", role])),
            LintError::TooManyRoles { .. } | LintError::TooManyExpandedGrants { .. } => {
                self.key(&["roles"])
            }
            _ => None,
        }?;
        Some(self.line_col(span.start))
    }

    /// The keys named by the dotted path `at`. Keys may themselves contain dots (a quoted key
    /// with an invalid name), so each step takes the longest key of the table that matches.
    fn resolve<'a>(&self, at: &'a str) -> Option<Vec<&'a str>> {
        let mut path = Vec::new();
        let mut rest = at;
        let mut table = self.root.get_ref();
        loop {
            let (key, value) = table
                .iter()
                .map(|(k, v)| (&**k.get_ref(), v))
                .filter(|(k, _)| {
                    rest == *k || (rest.starts_with(k) && rest[k.len()..].starts_with('.'))
                })
                .max_by_key(|(k, _)| k.len())?;
            path.push(&rest[..key.len()]);
            if rest.len() == key.len() {
                return Some(path);
            }
            rest = &rest[key.len() + 1..];
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
    }

    fn entry(&self, path: &[&str]) -> Option<(Range<usize>, &Spanned<DeValue<'i>>)> {
        let (last, parents) = path.split_last()?;
        let mut table = self.root.get_ref();
        for p in parents {
            match lookup(table, p)?.1.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
        let (k, v) = lookup(table, last)?;
        Some((k.span(), v))
    }

    fn get(&self, path: &[&str]) -> Option<&Spanned<DeValue<'i>>> {
        self.entry(path).map(|(_, v)| v)
    }

    fn key(&self, path: &[&str]) -> Option<Range<usize>> {
        self.entry(path).map(|(k, _)| k)
    }

    fn value(&self, path: &[&str]) -> Option<Range<usize>> {
        self.get(path).map(Spanned::span)
    }

    /// The span of the string `wanted` in the array at `path`.
    fn element(&self, path: &[&str], wanted: &str) -> Option<Range<usize>> {
        let DeValue::Array(items) = self.get(path)?.get_ref() else {
            return None;
        };
        items
            .iter()
            .find(|v| v.get_ref().as_str() == Some(wanted))
            .map(Spanned::span)
    }
}

type Entry<'a, 'i> = (
    &'a Spanned<toml::de::DeString<'i>>,
    &'a Spanned<DeValue<'i>>,
);

fn lookup<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<Entry<'a, 'i>> {
    table.iter().find(|(k, _)| &**k.get_ref() == key)
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lint_errors() {
        let text = "version = 1\nhome_region = \"CN\"\n[purposes.\"a.b\"]\nlegal_basis = \"contract\"\nretention_days = 1\n[roles.x]\ninherits = [\"y\", \"ghost\"]\n[roles.y]\ninherits = [\"x\"]\n[roles.x.grants.\"a.b\"]\nreveal = [\"phone\"]\n";
        let (doc, errors) = Doc::parse(text);
        assert!(errors.is_empty());
        let kind = LintError::UnknownKind {
            at: "roles.x.grants.a.b.reveal".into(),
            kind: "phone".into(),
        };
        assert_eq!(doc.find(&kind), Some((11, 11)));
        let role = LintError::UndefinedRole {
            role: "x".into(),
            parent: "ghost".into(),
        };
        assert_eq!(doc.find(&role), Some((7, 18)));
        let cycle = LintError::InheritanceCycle(vec!["x".into(), "y".into()]);
        assert_eq!(doc.find(&cycle), Some((7, 13)));
        assert_eq!(
            doc.find(&LintError::InvalidPurposeLabel("a.b".into())),
            Some((3, 11))
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 1), (1, 1));
        assert_eq!(line_col("", 9), (1, 1));
    }
}
