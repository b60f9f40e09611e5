//! Fuzz target: see `shmq::fuzzing::segment_layout`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq::fuzzing::segment_layout(data));
