//! Spin, then yield, then give up (and let the caller sleep on a futex).

use super::spin_hint;
#[cfg(not(shmq_loom))]
use super::yield_now;

/// The adaptive wait's budget before sleeping: poll on every spin hint for about
/// [`SPIN_BUDGET`], then yield the CPU [`YIELD_ROUNDS`] times, then [`Backoff::is_completed`]
/// says "sleep now". Also the exponential back-off between failed CAS retries
/// ([`Backoff::spin`]).
///
/// **Where the budget comes from.** Sleeping costs a `futex_wait` and, for the peer, a
/// `futex_wake` and a context switch: the `futex_floor` bench measures a sleeping hand-off at
/// 4–20 µs one way on the development VM (docs/benchmarks.md). Spinning for about as long as
/// that before sleeping keeps any wait within about 2× of the better of the two choices made
/// in hindsight (the rent-or-buy argument): a peer that answers within the budget is met
/// without a sleep, one that takes longer costs at most the budget on top of the sleep it needed
/// anyway. The waiter checks its condition after **every** hint: an exponential schedule (1, 2,
/// 4 … 64 hints between checks, as before) rounds every hand-off up to the next check and, in a
/// ping-pong, feeds on itself until both sides sleep.
///
/// On a crowded machine (more spinners than cores) the yield rounds let a preempted peer run
/// before the waiter commits to a sleep.
#[derive(Debug)]
pub(crate) struct Backoff {
    /// CAS back-off exponent ([`Backoff::spin`]).
    step: u32,
    /// Spin hints so far in the wait.
    spins: u32,
    /// When the clock was first read (after [`CLOCK_EVERY`] hints): a wait that ends sooner
    /// never reads it.
    since: Option<std::time::Instant>,
    /// Yield rounds so far, once the spin budget is spent.
    yields: u32,
}

/// The spin phase's length (see [`Backoff`]).
#[cfg(not(shmq_loom))]
const SPIN_BUDGET: std::time::Duration = std::time::Duration::from_micros(20);
/// Yields after the spin phase, before sleeping.
#[cfg(not(shmq_loom))]
const YIELD_ROUNDS: u32 = 4;
/// The clock is read once per this many hints (a vDSO call, about 20 ns, against about 30–140
/// cycles a hint).
#[cfg(not(shmq_loom))]
const CLOCK_EVERY: u32 = 64;
/// Exponent bound of the CAS back-off: at most 2^6 hints between retries.
const SPIN_LIMIT: u32 = 6;

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            step: 0,
            spins: 0,
            since: None,
            yields: 0,
        }
    }

    /// Waits a little before the next attempt: one spin hint during the spin budget, then one
    /// yield of the CPU per call.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        #[cfg(shmq_loom)]
        {
            // Under loom every spin multiplies the explored state space and proves nothing new:
            // one hint (a loom yield point), then callers go to the futex path, which is the part
            // that needs checking.
            spin_hint();
            self.yields += 1;
        }
        #[cfg(not(shmq_loom))]
        {
            if self.yields == 0 && !self.spin_budget_spent() {
                spin_hint();
                self.spins += 1;
                return;
            }
            yield_now();
            self.yields += 1;
        }
    }

    /// Whether the spin phase is over (reads the clock every [`CLOCK_EVERY`] hints).
    #[cfg(not(shmq_loom))]
    #[inline]
    fn spin_budget_spent(&mut self) -> bool {
        if self.spins == 0 || self.spins % CLOCK_EVERY != 0 {
            return false;
        }
        let now = std::time::Instant::now();
        let since = *self.since.get_or_insert(now);
        now.duration_since(since) >= SPIN_BUDGET
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
        #[cfg(shmq_loom)]
        {
            let _ = (self.spins, self.since);
            self.yields > 0
        }
        #[cfg(not(shmq_loom))]
        {
            self.yields >= YIELD_ROUNDS
        }
    }
}

crate::sync::native_only! {
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_spins_for_the_budget_checking_after_every_hint_then_yields_then_completes() {
        let start = std::time::Instant::now();
        let mut b = Backoff::new();
        let mut calls = 0u64;
        while !b.is_completed() {
            // Every call is one check of the caller's condition: the spin phase must give many
            // (not the 7 of an exponential schedule) and then exactly the yield rounds.
            b.snooze();
            calls += 1;
        }
        let took = start.elapsed();
        assert!(took >= SPIN_BUDGET, "completed after {took:?}");
        assert_eq!(b.yields, YIELD_ROUNDS);
        assert_eq!(u64::from(b.spins) + u64::from(YIELD_ROUNDS), calls);
        assert!(b.spins >= CLOCK_EVERY, "only {} hints", b.spins);
    }
}
}
