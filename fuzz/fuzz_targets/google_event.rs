//! cargo-fuzz target: see [`calsync::fuzzing::google_event`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| calsync::fuzzing::google_event(data));
