//! cargo-fuzz target: see [`calsync::fuzzing::ical`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| calsync::fuzzing::ical(data));
