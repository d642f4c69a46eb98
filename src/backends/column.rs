//! The column forms of `Sealed<F, P>`, shared by the drivers' column types (tokio-postgres's
//! `ToSql`/`FromSql`, sqlx's `Encode`/`Decode`): a binary column (`bytea`) holds the binary
//! envelope, a text column (`text`, `varchar`) the text form (`fs1:…`).
//!
//! Reading goes through [`Sealed::from_bytes`] / [`Sealed::from_text`], the same checks as
//! serde's `Deserialize`: the envelope's form, kind and purpose. Authenticity is checked when
//! the value is opened, with the context (table, column, row) it was sealed for.

use std::borrow::Cow;

use crate::field::Field;
use crate::purpose::Purpose;
use crate::sealed::Sealed;

/// How a column holds a sealed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnForm {
    /// The binary envelope (`bytea`).
    Binary,
    /// The text form, `fs1:` and base64url (`text`, `varchar`).
    Text,
}

impl<F: Field, P: Purpose> Sealed<F, P> {
    /// The bytes a column of `form` stores.
    pub(crate) fn column_bytes(&self, form: ColumnForm) -> Cow<'_, [u8]> {
        match form {
            ColumnForm::Binary => Cow::Borrowed(self.as_bytes()),
            ColumnForm::Text => Cow::Owned(self.to_text().into_bytes()),
        }
    }

    /// Parses what a column of `form` stores.
    ///
    /// Errors name the format rule that failed, never content.
    pub(crate) fn from_column(form: ColumnForm, raw: &[u8]) -> Result<Self, crate::Error> {
        match form {
            ColumnForm::Binary => Self::from_bytes(raw),
            // Text that is not UTF-8 is not a text form either: with the invalid bytes replaced
            // (by a character outside base64url), parsing fails on the rule the value breaks.
            ColumnForm::Text => Self::from_text(&String::from_utf8_lossy(raw)),
        }
    }
}
