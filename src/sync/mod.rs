//! The one std/loom switch.
//!
//! Every atomic, cell, spin hint and yield in the crate comes from here, so that building with
//! `RUSTFLAGS="--cfg shmq_loom"` swaps the whole concurrency core onto loom's model checker without
//! touching a call site. `.ci/run` fails if a std atomic type is named anywhere else in `src/`
//! (a line may opt out with a `shim-exempt` comment, for process-local state never shared).
//!
//! Under loom, atomics cannot overlay `mmap`ed bytes, so the segment layer is not compiled; the ring
//! and the objects run over ordinary heap values and processes are modelled as threads.

pub(crate) mod backoff;
pub(crate) mod fault;
pub(crate) mod futex;
pub(crate) mod owner;

#[cfg(shmq_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

#[cfg(not(shmq_loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64};

pub(crate) use core::sync::atomic::Ordering;

/// Thread-local storage: per model thread under loom (its threads share one OS thread).
#[cfg(shmq_loom)]
pub(crate) use loom::thread_local;
#[cfg(not(shmq_loom))]
pub(crate) use std::thread_local;

/// Process-local atomics: counters, caches and flags that never live in shared memory and that
/// no protocol orders anything by, so loom need not model them (it would only multiply the
/// interleavings it explores). Named here, so that `.ci/run`'s check that no std atomic is named
/// outside `src/sync` needs no exemption for them.
pub(crate) mod local {
    // Under loom the segment layer, which uses most of them, is not built.
    #[cfg_attr(shmq_loom, allow(unused_imports))]
    pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
}

/// The end of a sleep slice: `slice` from now, never past `deadline`. Under loom the deadline
/// itself: a model's timed wait gives up at once, which explores "the slice ended" at every
/// point without a clock, so slices add nothing there.
#[inline]
pub(crate) fn slice_end(
    deadline: Option<std::time::Instant>,
    slice: std::time::Duration,
) -> Option<std::time::Instant> {
    #[cfg(shmq_loom)]
    {
        let _ = slice;
        deadline
    }
    #[cfg(not(shmq_loom))]
    {
        let end = std::time::Instant::now() + slice;
        Some(deadline.map_or(end, |d| d.min(end)))
    }
}

/// Items only the loom build has: heap constructors of shared states (natively a state overlays
/// mapped memory and is never constructed) and loom-only hooks. The one place their cfg is
/// written.
macro_rules! loom_only {
    ($($item:item)*) => { $(#[cfg(shmq_loom)] $item)* };
}
pub(crate) use loom_only;

/// Items only the native build has: layout assertions (loom's atomics are larger than the
/// hardware's, so shared structs have other sizes there) and what overlays a mapping.
macro_rules! native_only {
    ($($item:item)*) => { $(#[cfg(not(shmq_loom))] $item)* };
}
pub(crate) use native_only;

/// Items for unit tests and the loom models only (raw attempts a real caller never makes).
macro_rules! model_or_test {
    ($($item:item)*) => { $(#[cfg(any(test, shmq_loom))] $item)* };
}
pub(crate) use model_or_test;

/// `order`, or `Relaxed` in a build with `--cfg shmq_loom_broken`: the mutation build that shows
/// the loom models catch a ring whose publish is too weak.
pub(crate) const fn unless_broken(order: Ordering) -> Ordering {
    #[cfg(shmq_loom_broken)]
    {
        let _ = order;
        Ordering::Relaxed
    }
    #[cfg(not(shmq_loom_broken))]
    order
}

/// How long a non-blocking call waits for a live claimant that holds the position it needs (a
/// producer between claim and publish, a consumer between claim and release) before it gives up
/// and reports `Empty` / `Full` anyway. Normally the claimant finishes within nanoseconds; only a
/// descheduled, stopped or slow-closure claimant takes longer.
///
/// 50 ms: on a 2-core machine running a dozen runnable threads, a claimant preempted inside its
/// claim can stay off the CPU for tens of milliseconds, and each time this bound is reached the
/// answer is one that is not linearizable.
pub(crate) const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Sleep slice of that wait: a wake-up spent on another waiter costs at most this long.
const CLAIM_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

/// The end of a wait for a claimant ([`CLAIM_WAIT`] from now); `None` under loom, where the
/// wait ends only when the claim settles or the claimant is found dead (a model has no clock).
#[inline]
pub(crate) fn claim_wait_end() -> Option<std::time::Instant> {
    #[cfg(shmq_loom)]
    return None;
    #[cfg(all(not(shmq_loom), not(feature = "fuzzing")))]
    return Some(std::time::Instant::now() + CLAIM_WAIT);
    #[cfg(all(not(shmq_loom), feature = "fuzzing"))]
    return Some(std::time::Instant::now() + fuzzing::claim_wait());
}

/// The fuzz entry points forge stamps that read as claims no one will ever settle, and each
/// operation that meets one waits out [`CLAIM_WAIT`]: they shorten it (for the whole process,
/// which runs nothing else) so that a fuzzer spends its time on inputs rather than on waits.
#[cfg(all(not(shmq_loom), feature = "fuzzing"))]
pub(crate) mod fuzzing {
    use super::local::AtomicU64;
    use core::sync::atomic::Ordering;
    use std::time::Duration;

    /// Nanoseconds of a claim wait; 0 for [`super::CLAIM_WAIT`].
    static CLAIM_WAIT_NS: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn shorten_claim_waits() {
        CLAIM_WAIT_NS.store(1_000_000, Ordering::Relaxed);
    }

    pub(crate) fn claim_wait() -> Duration {
        match CLAIM_WAIT_NS.load(Ordering::Relaxed) {
            0 => super::CLAIM_WAIT,
            ns => Duration::from_nanos(ns),
        }
    }
}

/// Whether a wait ending at `end` (from [`claim_wait_end`]) is over.
#[inline]
pub(crate) fn claim_wait_over(end: Option<std::time::Instant>) -> bool {
    end.is_some_and(|e| std::time::Instant::now() >= e)
}

/// The end of one sleep of a wait for a claimant that ends at `end`: a [`CLAIM_SLICE`] from
/// now, never past `end`. Under loom a timed wait gives up at once, which stands for the end of a
/// slice: with a liveness source (`recovers`) the claimant may die while we sleep, and only a
/// slice ending lets us see it; without one, the sleep is untimed, so that a lost wake-up shows
/// up as a deadlock.
#[inline]
pub(crate) fn claim_slice_end(
    end: Option<std::time::Instant>,
    recovers: bool,
) -> Option<std::time::Instant> {
    #[cfg(shmq_loom)]
    {
        let _ = end;
        recovers.then(std::time::Instant::now)
    }
    #[cfg(not(shmq_loom))]
    {
        let _ = recovers;
        let s = std::time::Instant::now() + CLAIM_SLICE;
        Some(end.map_or(s, |e| e.min(s)))
    }
}

/// A deadline that, under loom, makes a wait give up at once (so a loop of such waits looks at
/// a dead owner on every round, as a native untimed wait does at every slice); natively none.
#[inline]
pub(crate) fn model_round() -> Option<std::time::Instant> {
    #[cfg(shmq_loom)]
    return Some(std::time::Instant::now());
    #[cfg(not(shmq_loom))]
    return None;
}

/// A yield point for the model checker under loom (a loop that waits for another thread must
/// let loom schedule it); nothing natively.
#[inline(always)]
pub(crate) fn model_yield() {
    #[cfg(shmq_loom)]
    loom::thread::yield_now();
}

/// A counter that only the loom models read (takeovers of a dead owner's lock): a zero-sized
/// no-op natively, so shared layouts do not change.
#[derive(Debug, Default)]
pub(crate) struct ModelCount(#[cfg(shmq_loom)] AtomicU32);

impl ModelCount {
    #[inline(always)]
    pub(crate) fn bump(&self) {
        #[cfg(shmq_loom)]
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count (0 natively).
    #[allow(dead_code)]
    pub(crate) fn get(&self) -> u32 {
        #[cfg(shmq_loom)]
        return self.0.load(Ordering::Relaxed);
        #[cfg(not(shmq_loom))]
        0
    }
}

/// `native` natively, `miri` under miri: for the sizes of unit-test runs, which miri interprets
/// (about a thousand times slower).
#[cfg(test)]
pub(crate) const fn native_or_miri<T: Copy>(native: T, miri: T) -> T {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

/// `native` natively, `loom` under the model checker: for bounds a model must reach with fewer
/// steps than real hardware needs.
pub(crate) const fn native_or_loom<T: Copy>(native: T, loom: T) -> T {
    #[cfg(shmq_loom)]
    {
        let _ = native;
        loom
    }
    #[cfg(not(shmq_loom))]
    {
        let _ = loom;
        native
    }
}

/// Spin-loop hint: a `pause` natively, a yield point for the model checker under loom.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(shmq_loom)]
    loom::hint::spin_loop();
    #[cfg(not(shmq_loom))]
    core::hint::spin_loop();
}

/// Gives the CPU away: `sched_yield` natively, a loom yield point under loom.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(shmq_loom)]
    loom::thread::yield_now();
    #[cfg(not(shmq_loom))]
    std::thread::yield_now();
}

/// A cell whose accesses loom can check for data races.
///
/// Natively it is a plain `core::cell::UnsafeCell`; the `with`/`with_mut` closures mirror loom's API
/// so call sites are identical in both builds.
#[cfg(shmq_loom)]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

#[cfg(shmq_loom)]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(v: T) -> Self {
        Self(loom::cell::UnsafeCell::new(v))
    }
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        self.0.with(f)
    }
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }
}

/// A cell whose accesses loom can check for data races (native build: a plain `UnsafeCell`).
#[cfg(not(shmq_loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(not(shmq_loom))]
impl<T> UnsafeCell<T> {
    #[allow(dead_code)]
    pub(crate) const fn new(v: T) -> Self {
        Self(core::cell::UnsafeCell::new(v))
    }
}

#[cfg(not(shmq_loom))]
#[allow(dead_code)]
impl<T: ?Sized> UnsafeCell<T> {
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
