//! The caller's binding context: where a sealed value lives.
//!
//! A [`Context`] names the place a value belongs to (table, column, row, subject, or any
//! caller-chosen parts). It is authenticated as associated data but never stored: the caller
//! supplies the same context again to open the value, so a sealed value copied to another row,
//! column or subject does not open.

use std::fmt;

use zeroize::Zeroize;

use crate::error::ContextError;

const MAX_PARTS: usize = 16;
const MAX_NAME: usize = 32;
const MAX_VALUE: usize = 1024;

/// An identifier of a data subject (the person the data is about).
///
/// It is an identifier of a person, so its `Debug` is redacted and it is zeroized on drop.
///
/// ```
/// let s = fieldseal::SubjectId::new("user-42");
/// assert_eq!(format!("{s:?}"), "SubjectId([REDACTED])");
/// ```
pub struct SubjectId(String);

impl SubjectId {
    /// A subject identifier.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The raw identifier.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl Drop for SubjectId {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectId([REDACTED])")
    }
}

/// Where a sealed value belongs; authenticated, never stored.
///
/// Parts are kept sorted by name, so the order of calls does not matter. Bad parts (name not
/// `[a-z0-9_]{1,32}`, value over 1,024 bytes, a name bound twice, more than 16 parts) make every
/// seal and reveal with this context fail with [`ContextError`].
///
/// ```
/// use fieldseal::{Context, SubjectId};
/// let a = Context::new().table("users").column("phone").row("42");
/// let b = Context::new().row("42").column("phone").table("users");
/// assert_eq!(a, b);
/// let c = Context::new().table("users").column("phone").row("43");
/// assert_ne!(a, c);
/// let with_subject = a.subject(&SubjectId::new("u-42"));
/// assert!(with_subject.check().is_ok());
/// ```
///
/// # Security
/// Part values may identify a person (the `subject` part always does), so they are treated as
/// secrets: `Debug` shows part names only, every part value and the canonical encoding are
/// wiped when the context is dropped, and the encoding is never left behind in memory freed by
/// a growing buffer. The context is `Clone` so that one context can serve many seals and
/// reveals and be kept beside a row; a clone is a full, independent copy whose buffers are
/// allocated at their exact size and wiped on drop exactly like the original's. Each clone is
/// one more copy of the subject identifier in memory: clone only what you need, and drop
/// clones promptly. Comparison (`==`) is not constant-time; do not compare contexts built
/// from secret values an attacker can choose against each other.
#[derive(Clone, PartialEq, Eq)]
pub struct Context {
    /// Sorted by name; `(name, value)`.
    parts: Vec<(String, Vec<u8>)>,
    /// Canonical encoding of `parts`, kept up to date so seal/reveal never re-encode.
    encoded: Vec<u8>,
    error: Option<ContextError>,
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl Context {
    /// An empty context. A value sealed with it opens in any place: prefer binding at least the
    /// table and column.
    pub fn new() -> Self {
        let mut c = Self {
            parts: Vec::new(),
            encoded: Vec::new(),
            error: None,
        };
        c.encode();
        c
    }

    /// Binds the table (part `table`).
    #[must_use]
    pub fn table(self, table: &str) -> Self {
        self.with("table", table.as_bytes())
    }

    /// Binds the column (part `column`).
    #[must_use]
    pub fn column(self, column: &str) -> Self {
        self.with("column", column.as_bytes())
    }

    /// Binds the row identifier (part `row`).
    #[must_use]
    pub fn row(self, row: &str) -> Self {
        self.with("row", row.as_bytes())
    }

    /// Binds the data subject (part `subject`).
    #[must_use]
    pub fn subject(self, subject: &SubjectId) -> Self {
        self.with("subject", subject.0.as_bytes())
    }

    /// Binds any named part.
    #[must_use]
    pub fn with(mut self, name: &str, value: &[u8]) -> Self {
        if self.error.is_some() {
            return self;
        }
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        let err = if !name_ok {
            Some(ContextError::InvalidName)
        } else if value.len() > MAX_VALUE {
            Some(ContextError::ValueTooLong)
        } else if self.parts.len() >= MAX_PARTS {
            Some(ContextError::TooManyParts)
        } else {
            match self.parts.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(_) => Some(ContextError::DuplicateName),
                Err(at) => {
                    self.parts.insert(at, (name.to_owned(), value.to_vec()));
                    None
                }
            }
        };
        if err.is_some() {
            self.error = err;
        }
        self.encode();
        self
    }

    /// The bound `subject` part, if any (for consent lookups; never logged).
    pub(crate) fn subject_id(&self) -> Option<SubjectId> {
        let at = self
            .parts
            .binary_search_by(|(n, _)| n.as_str().cmp("subject"))
            .ok()?;
        let bytes = &self.parts.get(at)?.1;
        std::str::from_utf8(bytes).ok().map(SubjectId::new)
    }

    /// Whether the context is usable.
    ///
    /// # Errors
    /// The first problem recorded while building it.
    pub fn check(&self) -> Result<(), ContextError> {
        self.error.map_or(Ok(()), Err)
    }

    /// The canonical encoding authenticated as associated data:
    /// `u8 count`, then per part in name order `u8 name length, name, u16 BE value length, value`.
    pub(crate) fn encoded(&self) -> Result<&[u8], ContextError> {
        self.check()?;
        Ok(&self.encoded)
    }

    /// The value bound to part `name`, if any (the audit log pseudonymizes `subject` with it).
    pub(crate) fn part(&self, name: &str) -> Option<&[u8]> {
        self.parts
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|i| self.parts.get(i))
            .map(|(_, v)| v.as_slice())
    }

    /// Length of the canonical encoding of the current parts.
    fn encoded_len(&self) -> usize {
        1 + self
            .parts
            .iter()
            .map(|(name, value)| 1 + name.len() + 2 + value.len())
            .sum::<usize>()
    }

    fn encode(&mut self) {
        // The buffer must never grow while it holds part values: a growing `Vec` frees its old
        // block unwiped. So the old contents are wiped, and a buffer too small for the new
        // encoding is replaced (its wiped block freed) by one of the exact size before writing.
        self.encoded.zeroize();
        let needed = self.encoded_len();
        if self.encoded.capacity() < needed {
            self.encoded = Vec::with_capacity(needed);
        }
        // Lengths are bounded above (16 parts, 32-byte names, 1,024-byte values), so the casts
        // below cannot truncate.
        self.encoded.push(self.parts.len() as u8);
        for (name, value) in &self.parts {
            self.encoded.push(name.len() as u8);
            self.encoded.extend_from_slice(name.as_bytes());
            self.encoded
                .extend_from_slice(&(value.len() as u16).to_be_bytes());
            self.encoded.extend_from_slice(value);
        }
        debug_assert_eq!(self.encoded.len(), needed);
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        for (_, v) in &mut self.parts {
            v.zeroize();
        }
        self.encoded.zeroize();
    }
}

impl fmt::Debug for Context {
    /// Shows part names only: values may be identifiers of people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field(
                "parts",
                &self
                    .parts
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("error", &self.error)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_canonical_and_unambiguous() {
        let a = Context::new().with("ab", b"c");
        let b = Context::new().with("a", b"bc");
        assert_ne!(a.encoded().ok(), b.encoded().ok());
        let e = Context::new().table("t").row("1");
        assert_eq!(
            e.encoded().ok(),
            Some(&b"\x02\x03row\x00\x011\x05table\x00\x01t"[..])
        );
    }

    #[test]
    fn part_lookup() {
        let c = Context::new().row("7").subject(&SubjectId::new("u-1"));
        assert_eq!(c.part("subject"), Some(&b"u-1"[..]));
        assert_eq!(c.part("row"), Some(&b"7"[..]));
        assert_eq!(c.part("table"), None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Context::new().with("", b"x").check(),
            Err(ContextError::InvalidName)
        );
        assert_eq!(
            Context::new().with("A", b"x").check(),
            Err(ContextError::InvalidName)
        );
        assert_eq!(
            Context::new().with(&"a".repeat(33), b"x").check(),
            Err(ContextError::InvalidName)
        );
        assert_eq!(
            Context::new().with("a", &[0; 1025]).check(),
            Err(ContextError::ValueTooLong)
        );
        assert!(Context::new().with("a", &[0; 1024]).check().is_ok());
        assert_eq!(
            Context::new().row("1").row("2").check(),
            Err(ContextError::DuplicateName)
        );
        let mut c = Context::new();
        for i in 0..16 {
            c = c.with(&format!("p{i}"), b"v");
        }
        assert!(c.check().is_ok());
        assert_eq!(c.with("p99", b"v").check(), Err(ContextError::TooManyParts));
    }

    #[test]
    fn debug_hides_values() {
        let c = Context::new()
            .row("CANARY-ROW")
            .subject(&SubjectId::new("CANARY-SUBJ"));
        let d = format!("{c:?}");
        assert!(!d.contains("CANARY"), "{d}");
        assert!(d.contains("row"));
    }
}
