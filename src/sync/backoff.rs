//! Spin, then yield, then give up (and let the caller sleep on a futex).

use super::{spin_hint, yield_now};

/// Exponential backoff for the adaptive wait: `2^step` spin hints per round while
/// `step <= SPIN_LIMIT`, then `sched_yield` rounds, then [`Backoff::is_completed`] says "sleep now".
///
/// On a 2-core machine a spinning waiter steals the core its peer needs, so the spin phase is short
/// and the yield phase lets the peer run before the waiter commits to a futex sleep.
#[derive(Debug)]
pub(crate) struct Backoff {
    step: u32,
}

#[cfg(not(shmq_loom))]
const SPIN_LIMIT: u32 = 6;
#[cfg(not(shmq_loom))]
const YIELD_LIMIT: u32 = 10;
// Under loom every spin multiplies the explored state space and proves nothing new: go straight
// to the futex path, which is the part that needs checking.
#[cfg(shmq_loom)]
const SPIN_LIMIT: u32 = 0;
#[cfg(shmq_loom)]
const YIELD_LIMIT: u32 = 0;

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Self { step: 0 }
    }

    /// Waits a little before the next attempt: busy-spins early on, yields the CPU later.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        if self.step <= SPIN_LIMIT {
            for _ in 0..(1u32 << self.step) {
                spin_hint();
            }
        } else {
            yield_now();
        }
        if self.step <= YIELD_LIMIT {
            self.step += 1;
        }
    }

    /// Short spin used between CAS retries under contention (never yields).
    #[inline]
    pub(crate) fn spin(&mut self) {
        for _ in 0..(1u32 << self.step.min(SPIN_LIMIT)) {
            spin_hint();
        }
        if self.step <= SPIN_LIMIT {
            self.step += 1;
        }
    }

    /// True once spinning and yielding are exhausted: time to sleep on the futex.
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        self.step > YIELD_LIMIT
    }
}
