//! cargo-fuzz target: see [`calsync::fuzzing::jscalendar`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| calsync::fuzzing::jscalendar(data));
