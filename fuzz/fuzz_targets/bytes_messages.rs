//! Fuzz target: see `shmq::fuzzing::bytes_messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq::fuzzing::bytes_messages(data));
