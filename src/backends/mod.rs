//! Storage backends beyond the local file system.

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
