#![no_main]
use fieldseal::builtin::Service;
use fieldseal::{Email, Sealed};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fieldseal::internal::fuzzing::sealed_binary(
        postcard::from_bytes::<Sealed<Email, Service>>(data),
        |s| postcard::to_allocvec(s).ok(),
        |b| postcard::from_bytes(b).ok(),
    )
});
