//! cargo-fuzz target: see [`calsync::fuzzing::batch`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| calsync::fuzzing::batch(data));
