//! Barrier for a fixed number of parties, reusable across generations, with timeouts that withdraw
//! cleanly.
//!
//! `state` packs `generation << 32 | arrived`. Arriving is a CAS on it; the last party CASes
//! `(g, parties - 1) → (g + 1, 0)`, then bumps `epoch` (the futex word) and wakes everyone. A waiter
//! sleeps on `epoch` while `state`'s generation is still its own. A waiter that times out withdraws
//! with a CAS `(g, n) → (g, n - 1)`; if the generation moved on first, it was released instead.

use crate::sync::futex::{Futex, Wake};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// Shared state of a barrier.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct BarrierState {
    /// `generation << 32 | arrived`.
    pub(crate) state: AtomicU64,
    /// Bumped by the last party of each generation (the futex word).
    pub(crate) epoch: Futex,
    pub(crate) waiters: AtomicU32,
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<BarrierState>() == 16);
}

/// Outcome of a barrier wait that did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BarrierTimeout;

impl BarrierState {
    crate::sync::loom_only! {
        pub(crate) fn new() -> Self {
            Self {
                state: AtomicU64::new(0),
                epoch: Futex::new(0),
                waiters: AtomicU32::new(0),
            }
        }
    }

    /// Number of parties waiting in the current generation.
    pub(crate) fn arrived(&self) -> u32 {
        self.state.load(Ordering::Relaxed) as u32
    }

    /// Waits for `parties` (≥ 1) parties; `Ok(true)` for exactly one of them (the last to arrive).
    pub(crate) fn wait(
        &self,
        parties: u32,
        deadline: Option<Instant>,
    ) -> Result<bool, BarrierTimeout> {
        let mut s = self.state.load(Ordering::Relaxed);
        let gen = loop {
            let (g, n) = (s >> 32, s as u32);
            // Saturating: a forged `arrived` at u32::MAX just makes this party the last.
            if n.saturating_add(1) >= parties {
                let next = ((g + 1) & 0xFFFF_FFFF) << 32;
                // SYNC: AcqRel: Acquire sees every earlier arrival's writes (their Release CAS),
                // Release hands ours and theirs to the waiters that see the new generation.
                match self
                    .state
                    .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => {
                        // SYNC: Release pairs with the waiters' Acquire load of `epoch`.
                        self.epoch.word().fetch_add(1, Ordering::Release);
                        // SYNC: Dekker fence, pairs with the waiters' fence.
                        fence(Ordering::SeqCst);
                        if self.waiters.load(Ordering::Relaxed) > 0 {
                            self.epoch.wake(u32::MAX);
                        }
                        return Ok(true);
                    }
                    Err(now) => s = now,
                }
            } else {
                // SYNC: AcqRel, see above.
                match self.state.compare_exchange_weak(
                    s,
                    s + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break g,
                    Err(now) => s = now,
                }
            }
        };
        loop {
            self.waiters.fetch_add(1, Ordering::Relaxed);
            // SYNC: Dekker fence, pairs with the last party's fence.
            fence(Ordering::SeqCst);
            // SYNC: Acquire pairs with the last party's Release bump.
            let e = self.epoch.word().load(Ordering::Acquire);
            // SYNC: Acquire pairs with the last party's AcqRel CAS.
            let released = self.state.load(Ordering::Acquire) >> 32 != gen;
            let r = if released {
                Wake::Woken
            } else {
                self.epoch.wait(e, deadline)
            };
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            if released {
                return Ok(false);
            }
            if r == Wake::TimedOut {
                return self.withdraw(gen);
            }
        }
    }

    fn withdraw(&self, gen: u64) -> Result<bool, BarrierTimeout> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s >> 32 != gen {
                // Released while timing out: the generation completed with us counted.
                return Ok(false);
            }
            if s as u32 == 0 {
                // Our arrival is counted, so a count of 0 was forged: nothing to take back (a
                // decrement would borrow from the generation).
                return Err(BarrierTimeout);
            }
            match self
                .state
                .compare_exchange_weak(s, s - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Err(BarrierTimeout),
                Err(now) => s = now,
            }
        }
    }
}
