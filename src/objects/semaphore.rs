//! Counting semaphore, optionally bounded; the count itself is the futex word.

use crate::sync::backoff::Backoff;
use crate::sync::futex::{Futex, Wake};
use crate::sync::{fence, AtomicU32, Ordering};
use std::time::Instant;

/// Shared state of a semaphore: `count` (the futex word) and a sleeper count.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SemaphoreState {
    pub(crate) count: Futex,
    pub(crate) waiters: AtomicU32,
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<SemaphoreState>() == 8);
}

impl SemaphoreState {
    crate::sync::loom_only! {
        pub(crate) fn new(initial: u32) -> Self {
            Self {
                count: Futex::new(initial),
                waiters: AtomicU32::new(0),
            }
        }
    }

    pub(crate) fn value(&self) -> u32 {
        self.count.word().load(Ordering::Relaxed)
    }

    pub(crate) fn try_acquire(&self) -> bool {
        let w = self.count.word();
        let mut c = w.load(Ordering::Relaxed);
        while c > 0 {
            // SYNC: Acquire pairs with the Release in `release`.
            match w.compare_exchange_weak(c, c - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Takes one unit, sleeping while the count is 0; `false` if `deadline` passed first.
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> bool {
        let mut backoff = Backoff::new();
        loop {
            if self.try_acquire() {
                return true;
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            self.waiters.fetch_add(1, Ordering::Relaxed);
            // SYNC: Dekker fence, pairs with the fence in `release`.
            fence(Ordering::SeqCst);
            // The kernel only sleeps while the count is still 0.
            let r = self.count.wait(0, deadline);
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            if r == Wake::TimedOut {
                return self.try_acquire();
            }
        }
    }

    /// Gives one unit back; `Err(current)` if the count is already `max`.
    pub(crate) fn release(&self, max: u32) -> Result<(), u32> {
        let w = self.count.word();
        let mut c = w.load(Ordering::Relaxed);
        loop {
            if c >= max {
                return Err(c);
            }
            // SYNC: Release pairs with the Acquire in `try_acquire`.
            match w.compare_exchange_weak(c, c + 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        // SYNC: Dekker fence, pairs with the fence in `acquire`.
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.count.wake(1);
        }
        Ok(())
    }
}
