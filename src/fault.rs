//! Crash points for the crash-survival tests (feature `fault-injection`, off by default).
//!
//! With the feature on, a process whose `SHMQ_FAULT` environment variable names a point holds there
//! (blocked reading its stdin) after printing `SHMQ_FAULT_HIT <point>` to stderr, the
//! `SHMQ_FAULT_SKIP`-th time it passes it (default: the first). The test then kills it with
//! SIGKILL, or, with `SHMQ_FAULT_RESUME` set, writes a byte to its stdin to let it go on. Without the
//! feature every point compiles to nothing.

/// Marks a protocol step where a test may stop this process.
#[inline(always)]
pub(crate) fn point(_name: &'static str) {
    #[cfg(all(feature = "fault-injection", not(shmq_loom)))]
    hit(_name);
}

#[cfg(all(feature = "fault-injection", not(shmq_loom)))]
fn hit(name: &'static str) {
    use std::sync::atomic::{AtomicU64, Ordering}; // shim-exempt: process-local test counter
    static PASSED: AtomicU64 = AtomicU64::new(0);
    if std::env::var("SHMQ_FAULT").as_deref() != Ok(name) {
        return;
    }
    let skip: u64 = std::env::var("SHMQ_FAULT_SKIP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if PASSED.fetch_add(1, Ordering::Relaxed) != skip {
        return;
    }
    eprintln!("SHMQ_FAULT_HIT {name}");
    // Hold here until the test acts: it SIGKILLs us (a crash at this step), or, for a slow but
    // live process, writes a byte to our stdin to let us go on.
    let mut byte = [0u8; 1];
    let resumed = std::io::Read::read(&mut std::io::stdin(), &mut byte).is_ok_and(|n| n == 1);
    if resumed && std::env::var_os("SHMQ_FAULT_RESUME").is_some() {
        return;
    }
    loop {
        std::thread::park();
    }
}
