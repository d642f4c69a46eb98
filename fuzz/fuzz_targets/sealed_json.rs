#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fieldseal::internal::fuzzing::sealed_json(data));
