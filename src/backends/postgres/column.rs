//! `Sealed<F, P>` as a tokio-postgres column value: `bytea` holds the binary envelope, `text` and
//! `varchar` the text form (`fs1:…`). Reading checks the envelope's form, kind and purpose as
//! [`Sealed::from_bytes`] / [`Sealed::from_text`] do; authenticity is checked when it is opened.

use std::error::Error as StdError;

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::backends::column::ColumnForm;
use crate::field::Field;
use crate::purpose::Purpose;
use crate::sealed::Sealed;

type BoxError = Box<dyn StdError + Sync + Send>;

fn form(ty: &Type) -> ColumnForm {
    if *ty == Type::TEXT || *ty == Type::VARCHAR {
        ColumnForm::Text
    } else {
        ColumnForm::Binary
    }
}

fn accepts(ty: &Type) -> bool {
    *ty == Type::BYTEA || *ty == Type::TEXT || *ty == Type::VARCHAR
}

impl<F: Field, P: Purpose> ToSql for Sealed<F, P> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.column_bytes(form(ty)));
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        accepts(ty)
    }

    to_sql_checked!();
}

impl<'a, F: Field, P: Purpose> FromSql<'a> for Sealed<F, P> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Sealed::from_column(form(ty), raw)?)
    }

    fn accepts(ty: &Type) -> bool {
        accepts(ty)
    }
}
