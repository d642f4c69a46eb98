//! `Sealed<F, P>` as a sqlx column value for PostgreSQL (feature `sqlx`).
//!
//! A sealed value binds as `bytea` (the binary envelope); [`SealedText`] binds it as `text`, the
//! text form (`fs1:…`). `SealedText` is exported at the crate root: a `fieldseal::sqlx` module
//! would make `sqlx::…` ambiguous after `use fieldseal::*`. Both read back from `bytea`, `text` and `varchar` columns, with the
//! checks of [`Sealed::from_bytes`] / [`Sealed::from_text`] (form, kind, purpose); authenticity
//! is checked when the value is opened, with the context it was sealed for.
//!
//! sqlx declares a parameter's type itself, so the column's type cannot choose the form as it
//! does with tokio-postgres: bind [`SealedText`] for a text column. A `Sealed` bound to a text
//! column is stored by PostgreSQL's `bytea` to `text` conversion (`\x…` hex) and does not read
//! back.

use std::fmt;

use ::sqlx::encode::IsNull;
use ::sqlx::error::BoxDynError;
use ::sqlx::postgres::types::Oid;
use ::sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
use ::sqlx::{Decode, Encode, Type, ValueRef as _};

use super::column::ColumnForm;
use crate::field::Field;
use crate::purpose::Purpose;
use crate::sealed::Sealed;

const BYTEA: Oid = Oid(17);
const TEXT: Oid = Oid(25);
const VARCHAR: Oid = Oid(1043);

/// The form a column of type `ty` holds, if it can hold a sealed value.
fn form(ty: &PgTypeInfo) -> Option<ColumnForm> {
    if *ty == PgTypeInfo::with_oid(BYTEA) {
        Some(ColumnForm::Binary)
    } else if *ty == PgTypeInfo::with_oid(TEXT) || *ty == PgTypeInfo::with_oid(VARCHAR) {
        Some(ColumnForm::Text)
    } else {
        None
    }
}

/// A column of a type that cannot hold a sealed value.
#[derive(Debug)]
struct NotASealedColumn;

impl fmt::Display for NotASealedColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sealed value is read from a bytea, text or varchar column")
    }
}

impl std::error::Error for NotASealedColumn {}

impl<F: Field, P: Purpose> Type<Postgres> for Sealed<F, P> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(BYTEA)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        form(ty).is_some()
    }
}

impl<F: Field, P: Purpose> Encode<'_, Postgres> for Sealed<F, P> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.column_bytes(ColumnForm::Binary));
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        self.as_bytes().len()
    }
}

impl<'r, F: Field, P: Purpose> Decode<'r, Postgres> for Sealed<F, P> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let form = form(&value.type_info()).ok_or(NotASealedColumn)?;
        // sqlx's own decoders read both wire formats (a simple query sends bytea as `\x…`).
        let raw = match form {
            ColumnForm::Binary => <Vec<u8> as Decode<Postgres>>::decode(value)?,
            ColumnForm::Text => <String as Decode<Postgres>>::decode(value)?.into_bytes(),
        };
        Ok(Sealed::from_column(form, &raw)?)
    }
}

/// A sealed value bound as `text` with sqlx: its text form, `fs1:` and base64url.
///
/// `Sealed<F, P>` itself implements sqlx's `Type`, `Encode` and `Decode` for PostgreSQL: it binds
/// as `bytea`, and reads back from `bytea`, `text` and `varchar` columns with the kind and
/// purpose checked as [`Sealed::from_bytes`] / [`Sealed::from_text`] do (a mismatch is a
/// `sqlx::Error::ColumnDecode` whose source is the [`crate::FormatError`]). Bind a `SealedText`
/// for a `text` or `varchar` column: sqlx declares parameter types itself, and a `Sealed` bound
/// to a text column is stored as PostgreSQL's `\x…` output of `bytea`, which does not read back.
///
/// # Examples
/// ```no_run
/// # async fn f(pool: &sqlx::PgPool, email: &fieldseal::Sealed<fieldseal::Email,
/// #     fieldseal::builtin::Service>) -> Result<(), sqlx::Error> {
/// use fieldseal::{Email, Sealed, SealedText, builtin::Service};
/// sqlx::query("INSERT INTO inquiries (id, email, email_text) VALUES ($1, $2, $3)")
///     .bind(7_i64)
///     .bind(email)
///     .bind(SealedText::new(email))
///     .execute(pool)
///     .await?;
/// let back: Sealed<Email, Service> =
///     sqlx::query_scalar("SELECT email_text FROM inquiries WHERE id = 7")
///         .fetch_one(pool)
///         .await?;
/// # Ok(()) }
/// ```
pub struct SealedText<'a, F, P>(&'a Sealed<F, P>);

impl<'a, F: Field, P: Purpose> SealedText<'a, F, P> {
    /// Binds `sealed` as `text`.
    pub fn new(sealed: &'a Sealed<F, P>) -> Self {
        Self(sealed)
    }
}

impl<'a, F: Field, P: Purpose> From<&'a Sealed<F, P>> for SealedText<'a, F, P> {
    fn from(sealed: &'a Sealed<F, P>) -> Self {
        Self(sealed)
    }
}

impl<F: Field, P: Purpose> fmt::Debug for SealedText<'_, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SealedText").field(self.0).finish()
    }
}

impl<F: Field, P: Purpose> Type<Postgres> for SealedText<'_, F, P> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TEXT)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        form(ty) == Some(ColumnForm::Text)
    }
}

impl<F: Field, P: Purpose> Encode<'_, Postgres> for SealedText<'_, F, P> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.0.column_bytes(ColumnForm::Text));
        Ok(IsNull::No)
    }
}
