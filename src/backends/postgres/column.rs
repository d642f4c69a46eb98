//! `Sealed<F, P>` as a column value: `bytea` holds the binary envelope, `text` and `varchar`
//! the text form (`fs1:…`). Reading checks the envelope's form, kind and purpose as
//! [`Sealed::from_bytes`] / [`Sealed::from_text`] do; authenticity is checked when it is opened.

use std::error::Error as StdError;

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::field::Field;
use crate::purpose::Purpose;
use crate::sealed::Sealed;

type BoxError = Box<dyn StdError + Sync + Send>;

fn is_text(ty: &Type) -> bool {
    *ty == Type::TEXT || *ty == Type::VARCHAR
}

impl<F: Field, P: Purpose> ToSql for Sealed<F, P> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        if is_text(ty) {
            out.extend_from_slice(self.to_text().as_bytes());
        } else {
            out.extend_from_slice(self.as_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::BYTEA || is_text(ty)
    }

    to_sql_checked!();
}

impl<'a, F: Field, P: Purpose> FromSql<'a> for Sealed<F, P> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        // Errors name the format rule that failed, never content.
        if is_text(ty) {
            let text = std::str::from_utf8(raw)?;
            Ok(Sealed::from_text(text)?)
        } else {
            Ok(Sealed::from_bytes(raw)?)
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::BYTEA || is_text(ty)
    }
}
