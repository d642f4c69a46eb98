#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fieldseal::internal::fuzzing::seal_mutate_reveal(data));
