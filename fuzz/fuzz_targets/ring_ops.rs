//! Fuzz target: see `shmq::fuzzing::ring_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq::fuzzing::ring_ops(data));
