//! Condition variable state: a sequence number that every notify bumps (the futex word) and a
//! count of registered waiters.
//!
//! Protocol (the lock is the condition's own `RLock`): a waiter, **holding the lock**, registers
//! and reads the sequence (`prepare`), releases the lock, and sleeps while the sequence still reads
//! what it saw; a notifier, **also holding the lock**, bumps the sequence and wakes. No wake-up is
//! lost: the lock orders the two critical sections, so either the notify came first (and was not
//! meant for this waiter, which had not started waiting) or the waiter's read came first, and then
//! the bump is visible to its futex wait, which returns at once or is woken. A woken waiter may
//! find its condition still false (several woken, a spurious wake-up): callers loop, as with any
//! condition variable (`wait_for`).

use crate::sync::futex::{Futex, Wake};
use crate::sync::{AtomicU32, Ordering};
use std::time::Instant;

/// Shared state of a condition variable.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct CondState {
    pub(crate) seq: Futex,
    pub(crate) waiters: AtomicU32,
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<CondState>() == 8);
}

impl CondState {
    crate::sync::loom_only! {
        pub(crate) fn new() -> Self {
            Self {
                seq: Futex::new(0),
                waiters: AtomicU32::new(0),
            }
        }
    }

    /// Registers a waiter and returns the sequence to wait on. The caller holds the lock.
    pub(crate) fn prepare(&self) -> u32 {
        // Relaxed: the lock the caller holds orders this before any notifier's look (the
        // notifier takes the lock after our release of it).
        self.waiters.fetch_add(1, Ordering::Relaxed);
        // SYNC: Acquire pairs with the Release bump of a notify: reading its value sees what the
        // notifier wrote before (under the lock, which also orders it).
        self.seq.word().load(Ordering::Acquire)
    }

    /// Sleeps while the sequence reads `seen` (the caller released the lock after `prepare`),
    /// until woken or `deadline`; then unregisters.
    pub(crate) fn wait(&self, seen: u32, deadline: Option<Instant>) -> Wake {
        let r = self.seq.wait(seen, deadline);
        // Saturating: a count a dead waiter left raised only costs notifiers a futex_wake.
        let _ = self
            .waiters
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(1));
        r
    }

    /// Wakes up to `n` waiters. The caller holds the lock.
    pub(crate) fn notify(&self, n: u32) {
        // Relaxed: the lock orders every `prepare` that came before this critical section.
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.seq.bump_and_wake(n);
        }
    }
}
