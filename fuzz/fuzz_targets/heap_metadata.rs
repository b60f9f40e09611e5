//! Fuzz target: see `shmq::fuzzing::heap_metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq::fuzzing::heap_metadata(data));
