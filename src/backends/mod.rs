//! Storage backends beyond the local file system, and column types for database drivers.

#[cfg(any(feature = "postgres", feature = "sqlx"))]
pub(crate) mod column;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlx")]
pub(crate) mod sqlx;
