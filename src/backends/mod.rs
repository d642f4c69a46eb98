//! Storage backends beyond the local file system, and column types for database drivers.

#[cfg(feature = "postgres")]
pub(crate) mod column;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
