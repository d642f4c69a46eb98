//! `Sealed<F, P>` as a sqlx column value (feature `sqlx`): bytea and text columns, the kind and
//! purpose checked on decode, garbage refused cleanly, and a value copied to another row or
//! column not opening there (the context binds table, column and row).
//!
//! The database tests need the throwaway cluster of `scripts/pg-env`; without it they print a
//! skip message and pass. The encode round trip runs without a database.
#![cfg(feature = "sqlx")]

mod common;
mod pg;

use fieldseal::builtin::{Marketing, Service};
use fieldseal::*;
use pg::fresh;
use proptest::prelude::*;
use sqlx::postgres::{PgArgumentBuffer, PgConnection};
use sqlx::{Connection as _, Encode as _, Row as _};

fn ctx(column: &str, row: &str) -> Context {
    Context::new().table("t").column(column).row(row)
}

fn phone(guard: &Guard, column: &str, row: &str) -> Sealed<PhoneNumber, Service> {
    guard
        .seal(
            &PhoneNumber::parse("+8613800138000").unwrap_or_else(|e| panic!("{e}")),
            &ctx(column, row),
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `f` with a connection to a fresh database, on a runtime of its own.
fn with_conn<F>(tag: &str, f: impl FnOnce(PgConnection) -> F)
where
    F: Future<Output = ()>,
{
    let Some(db) = fresh(tag) else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let conn = PgConnection::connect(&db.owner)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        f(conn).await;
    });
}

/// The fieldseal error a failed decode carries, if it is one.
fn decode_error(e: &sqlx::Error) -> Option<&Error> {
    match e {
        sqlx::Error::ColumnDecode { source, .. } => source.downcast_ref::<Error>(),
        _ => None,
    }
}

#[test]
fn sealed_values_as_bytea_and_text_columns() {
    let guard = common::guard();
    let value = phone(&guard, "v", "1");
    with_conn("sqlx_columns", |mut conn| async move {
        sqlx::raw_sql("CREATE TABLE t (b bytea, s text, v varchar)")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("INSERT INTO t VALUES ($1, $2, $3)")
            .bind(&value)
            .bind(SealedText::new(&value))
            .bind(SealedText::from(&value))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let row = sqlx::query("SELECT b, s, v, s LIKE 'fs1:%', length(b) FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..3 {
            let back: Sealed<PhoneNumber, Service> =
                row.try_get(i).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, value);
        }
        assert!(row.get::<bool, _>(3), "text columns hold the text form");
        assert_eq!(row.get::<i32, _>(4) as usize, value.as_bytes().len());

        // The simple-query protocol sends values as text (bytea as `\x…`): the same answers.
        let row = sqlx::raw_sql("SELECT b, s, v FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..3 {
            let back: Sealed<PhoneNumber, Service> =
                row.try_get(i).unwrap_or_else(|e| panic!("{i}: {e}"));
            assert_eq!(back, value);
        }
        let scalar: Sealed<PhoneNumber, Service> = sqlx::query_scalar("SELECT s FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scalar, value);

        // A `Sealed` bound to a text column goes through PostgreSQL's bytea-to-text conversion
        // (as the module docs warn): stored as `\x…`, it does not read back.
        sqlx::query("UPDATE t SET s = $1")
            .bind(&value)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let row = sqlx::query("SELECT s, left(s, 2) = '\\x' FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(row.get::<bool, _>(1));
        let e = row.try_get::<Sealed<PhoneNumber, Service>, _>(0).err();
        assert!(
            matches!(e.as_ref().and_then(decode_error), Some(Error::Format(_))),
            "{e:?}"
        );
    });
}

#[test]
fn another_kind_or_purpose_does_not_decode() {
    let guard = common::guard();
    let value = phone(&guard, "v", "1");
    with_conn("sqlx_kind", |mut conn| async move {
        let row = sqlx::query("SELECT $1::bytea, $2::text, $2::varchar")
            .bind(&value)
            .bind(SealedText::new(&value))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..3 {
            let e = row.try_get::<Sealed<Email, Service>, _>(i).err();
            let kind = e.as_ref().and_then(decode_error);
            assert!(
                matches!(kind, Some(Error::Format(FormatError::KindMismatch { .. }))),
                "{i}: {e:?}"
            );
            let e = row.try_get::<Sealed<PhoneNumber, Marketing>, _>(i).err();
            let purpose = e.as_ref().and_then(decode_error);
            assert!(
                matches!(
                    purpose,
                    Some(Error::Format(FormatError::PurposeMismatch { .. }))
                ),
                "{i}: {e:?}"
            );
        }
    });
}

#[test]
fn garbage_and_other_types_fail_cleanly() {
    with_conn("sqlx_garbage", |mut conn| async move {
        let row = sqlx::query(
            "SELECT 'fs1:AAAA'::text, '\\x00'::bytea, 'hello'::varchar, ''::bytea, \
             'fs1:'::text, NULL::bytea, 1::int4, 'fs1:AAAA'::name",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..5 {
            let e = row.try_get::<Sealed<PhoneNumber, Service>, _>(i).err();
            assert!(
                matches!(e.as_ref().and_then(decode_error), Some(Error::Format(_))),
                "{i}: {e:?}"
            );
        }
        // NULL is an error for a value and `None` for an option.
        assert!(row.try_get::<Sealed<PhoneNumber, Service>, _>(5).is_err());
        let none = row.try_get::<Option<Sealed<PhoneNumber, Service>>, _>(5);
        assert!(matches!(none, Ok(None)));
        // Columns of other types are refused before a value is read; so is an unchecked decode.
        for i in 6..8 {
            let e = row.try_get::<Sealed<PhoneNumber, Service>, _>(i).err();
            assert!(
                matches!(e, Some(sqlx::Error::ColumnDecode { .. })),
                "{i}: {e:?}"
            );
            assert!(
                row.try_get_unchecked::<Sealed<PhoneNumber, Service>, _>(i)
                    .is_err()
            );
        }
    });
}

#[test]
fn a_value_copied_to_another_row_or_column_does_not_open() {
    let guard = common::guard();
    let one = phone(&guard, "b", "1");
    let two = phone(&guard, "b", "2");
    with_conn("sqlx_swap", |mut conn| async move {
        sqlx::raw_sql("CREATE TABLE t (id int PRIMARY KEY, b bytea, c bytea, s text)")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (id, v) in [(1, &one), (2, &two)] {
            sqlx::query("INSERT INTO t (id, b, s) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(v)
                .bind(SealedText::new(v))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // The attacker copies row 1's value over row 2's, and into another column.
        sqlx::raw_sql(
            "UPDATE t SET b = (SELECT b FROM t WHERE id = 1), \
                          s = (SELECT s FROM t WHERE id = 1) WHERE id = 2; \
             UPDATE t SET c = b WHERE id = 1",
        )
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let rows = sqlx::query("SELECT id, b, c, s FROM t ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let get = |row: &sqlx::postgres::PgRow, i: usize| -> Sealed<PhoneNumber, Service> {
            row.try_get(i).unwrap_or_else(|e| panic!("{e}"))
        };
        let reveal = |s: &Sealed<PhoneNumber, Service>, column: &str, row: &str| {
            guard
                .reveal(&common::tester(), s, &ctx(column, row))
                .map(|_| ())
        };
        // In place it opens.
        assert!(reveal(&get(&rows[0], 1), "b", "1").is_ok());
        // Moved to row 2, in bytea or text, it decodes (the form is fine) but does not open.
        assert!(matches!(
            reveal(&get(&rows[1], 1), "b", "2"),
            Err(Error::Integrity)
        ));
        assert!(matches!(
            reveal(&get(&rows[1], 3), "b", "2"),
            Err(Error::Integrity)
        ));
        // Copied to column c of the same row, read as c's value.
        assert!(matches!(
            reveal(&get(&rows[0], 2), "c", "1"),
            Err(Error::Integrity)
        ));
    });
}

proptest! {
    /// What `Encode` writes is what `Decode` parses (the same `from_column` as the database
    /// path; sqlx has no public way to make a `PgValueRef` without a connection).
    #[test]
    fn encode_buffers_parse_back(digits in "[1-9][0-9]{6,13}", row in "[0-9]{1,6}") {
        let guard = common::guard();
        let number = PhoneNumber::parse(&format!("+{digits}"));
        prop_assume!(number.is_ok());
        let number = number.unwrap_or_else(|e| panic!("{e}"));
        let sealed: Sealed<PhoneNumber, Service> =
            guard.seal(&number, &ctx("b", &row)).unwrap_or_else(|e| panic!("{e}"));

        let mut buf = PgArgumentBuffer::default();
        let _ = sealed.encode_by_ref(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(&Sealed::<PhoneNumber, Service>::from_bytes(&buf).ok(), &Some(sealed.clone()));
        prop_assert!(Sealed::<Email, Service>::from_bytes(&buf).is_err());

        let mut buf = PgArgumentBuffer::default();
        let _ = SealedText::new(&sealed).encode_by_ref(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        let text = std::str::from_utf8(&buf).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(&Sealed::<PhoneNumber, Service>::from_text(text).ok(), &Some(sealed.clone()));
        prop_assert!(Sealed::<PhoneNumber, Marketing>::from_text(text).is_err());
        let opened = guard.reveal(&common::tester(), &sealed, &ctx("b", &row));
        prop_assert!(opened.is_ok());
    }
}
