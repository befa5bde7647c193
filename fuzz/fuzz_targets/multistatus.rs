//! cargo-fuzz target: see [`calsync::fuzzing::multistatus`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| calsync::fuzzing::multistatus(data));
