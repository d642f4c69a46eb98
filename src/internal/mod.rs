//! Not public API: entry points for fuzz targets and known-answer tests. May change in any
//! release.
#![doc(hidden)]

pub mod analytics;
pub mod fuzzing;
pub mod testing;
pub mod vectors;
