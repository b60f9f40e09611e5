//! `shmq`: look at, and clean up, the shmq segments of this host (docs/operations.md).
//!
//! Every figure comes from [`shmq::inspect`], which changes nothing in the segments it reads.
//! The argument parser is hand-written (a handful of flags) and so is the JSON writer: the
//! binary adds no dependency to the crate.

#[cfg(not(shmq_loom))]
mod bridge;
#[cfg(not(shmq_loom))]
mod cli;
#[cfg(not(shmq_loom))]
mod json;
#[cfg(not(shmq_loom))]
mod nats;

fn main() -> std::process::ExitCode {
    #[cfg(not(shmq_loom))]
    return cli::main();
    // A loom build compiles only the crate's concurrency core (no segments): nothing to run.
    #[cfg(shmq_loom)]
    std::process::ExitCode::FAILURE
}
