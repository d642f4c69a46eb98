//! Compile-fail tests of fieldseal's types (see `tests/compile_types.rs`); no code of its own.
#![forbid(unsafe_code)]
