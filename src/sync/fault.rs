//! Crash points for the crash-survival tests (feature `fault-injection`, off by default).
//!
//! With the feature on, a process whose `SHMQ_FAULT` environment variable names a point holds there
//! (blocked reading its stdin) after printing `SHMQ_FAULT_HIT <point>` to stderr, the
//! `SHMQ_FAULT_SKIP`-th time it passes it (default: the first). The test then kills it with
//! SIGKILL, or, with `SHMQ_FAULT_RESUME` set, writes a byte to its stdin to let it go on. Without the
//! feature every point compiles to nothing.
//!
//! Under loom (`--cfg shmq_loom`) a model thread stands in for a process and "dies" instead: for a
//! thread that called `die_at` (loom builds only), [`dies`] returns `true` at that point, and the
//! code there returns at once, leaving shared state exactly as a SIGKILL at that step would.
//! Outside loom [`dies`] is a constant `false`.

/// Marks a protocol step where a test may stop this process.
#[inline(always)]
pub(crate) fn point(_name: &'static str) {
    #[cfg(all(feature = "fault-injection", not(shmq_loom)))]
    hit(_name);
}

/// A backstop sleep slice (the death watch's `ring::WATCHED_SLICE`, a joiner's `JOIN_SLICE`):
/// `default`, or with the feature on, `SHMQ_FAULT_WATCHED_SLICE_MS` milliseconds, so a test can
/// tell a sleeper woken by a notification from one woken by the backstop.
pub(crate) fn watched_slice(default: std::time::Duration) -> std::time::Duration {
    #[cfg(all(feature = "fault-injection", not(shmq_loom)))]
    {
        static SET: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        let ms = SET.get_or_init(|| {
            std::env::var("SHMQ_FAULT_WATCHED_SLICE_MS")
                .ok()
                .and_then(|v| v.parse().ok())
        });
        if let Some(ms) = *ms {
            return std::time::Duration::from_millis(ms);
        }
    }
    default
}

/// Whether the calling thread dies at point `name`: always `false` outside loom.
#[cfg(not(shmq_loom))]
#[inline(always)]
pub(crate) const fn dies(_name: &'static str) -> bool {
    false
}

#[cfg(shmq_loom)]
loom::thread_local! {
    /// The point where this model thread is to die, if any.
    static DIE_AT: std::cell::Cell<Option<&'static str>> = std::cell::Cell::new(None);
}

/// Whether the calling model thread dies at point `name` (set by [`die_at`]; the setting is used up
/// by the hit). The caller must then return without any further shared-memory step.
#[cfg(shmq_loom)]
pub(crate) fn dies(name: &'static str) -> bool {
    DIE_AT.with(|d| {
        let hit = d.get() == Some(name);
        if hit {
            d.set(None);
        }
        hit
    })
}

/// Makes the calling model thread die at point `name` the next time it passes it (`None`: never).
#[cfg(shmq_loom)]
pub(crate) fn die_at(name: Option<&'static str>) {
    DIE_AT.with(|d| d.set(name));
}

#[cfg(all(feature = "fault-injection", not(shmq_loom)))]
fn hit(name: &'static str) {
    use crate::sync::local::AtomicU64;
    use crate::sync::Ordering;
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
