//! Fuzz target: see `shmq::fuzzing::hostile_peer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq::fuzzing::hostile_peer(data));
