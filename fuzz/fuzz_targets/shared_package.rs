#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fieldseal::internal::fuzzing::shared_package(data));
