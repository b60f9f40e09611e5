//! Event: a flag processes can wait on (`set`, `clear`, `is_set`, `wait`).

use crate::sync::futex::{Futex, Wake};
use crate::sync::{fence, AtomicU32, Ordering};
use std::time::Instant;

/// Shared state of an event: `word` is 0 (clear) or 1 (set) and is also the futex word.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct EventState {
    pub(crate) word: Futex,
    pub(crate) waiters: AtomicU32,
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<EventState>() == 8);
}

impl EventState {
    crate::sync::loom_only! {
        pub(crate) fn new() -> Self {
            Self {
                word: Futex::new(0),
                waiters: AtomicU32::new(0),
            }
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        // SYNC: Acquire pairs with the Release swap in `set`: what the setter wrote before
        // setting is visible once we see the flag.
        self.word.word().load(Ordering::Acquire) == 1
    }

    pub(crate) fn set(&self) {
        // SYNC: Release, see `is_set`.
        if self.word.word().swap(1, Ordering::Release) == 0 {
            // SYNC: Dekker fence, pairs with the fence in `wait`: either the waiter sees the flag
            // before sleeping, or we see its registration and wake it.
            fence(Ordering::SeqCst);
            if self.waiters.load(Ordering::Relaxed) > 0 {
                self.word.wake(u32::MAX);
            }
        }
    }

    pub(crate) fn clear(&self) {
        self.word.word().store(0, Ordering::Relaxed);
    }

    /// Waits until set; `false` if `deadline` passed first.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.is_set() {
                return true;
            }
            self.waiters.fetch_add(1, Ordering::Relaxed);
            // SYNC: Dekker fence, pairs with the fence in `set`.
            fence(Ordering::SeqCst);
            // The kernel sleeps only while the word is still 0, so a `set` between the check
            // above and the sleep makes the wait return at once.
            let r = if self.is_set() {
                Wake::Woken
            } else {
                self.word.wait(0, deadline)
            };
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            if r == Wake::TimedOut {
                return self.is_set();
            }
        }
    }
}
