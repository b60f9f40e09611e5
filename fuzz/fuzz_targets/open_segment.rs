//! Fuzz target: see `shmq::fuzzing::open_segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq::fuzzing::open_segment(data));
