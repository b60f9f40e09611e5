//! Event: a flag processes can wait on (`set`, `clear`, `is_set`, `wait`).

use crate::sync::futex::{Futex, Wake};
use crate::sync::{fence, AtomicU32, Ordering};
use std::time::Instant;

/// Bit 0 of the event word: the flag.
const SET: u32 = 1;
/// The rest of the word counts `set`s that raised the flag (wrapping): a waiter woken by a
/// `set` that a `clear` undid before the waiter looked still sees the word moved on, and
/// returns (a pulse is never lost, as with `threading.Event`).
const GENERATION: u32 = 2;

/// Shared state of an event: `word` is the flag (bit 0) and the generation (bits 1..), and is
/// also the futex word.
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

    /// The word: flag and generation. SYNC: Acquire pairs with the Release CAS in `set`: what
    /// the setter wrote before setting is visible once we see the flag (or the generation it
    /// bumped).
    fn load(&self) -> u32 {
        self.word.word().load(Ordering::Acquire)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.load() & SET != 0
    }

    pub(crate) fn set(&self) {
        let w = self.word.word();
        // Relaxed: a first look; the CAS below publishes.
        let mut cur = w.load(Ordering::Relaxed);
        let raised = loop {
            if cur & SET != 0 {
                break false;
            }
            // SYNC: Release, see `load`.
            match w.compare_exchange_weak(
                cur,
                (cur & !SET).wrapping_add(GENERATION) | SET,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break true,
                Err(now) => cur = now,
            }
        };
        if raised {
            // SYNC: Dekker fence, pairs with the fence in `wait`: either the waiter sees the flag
            // before sleeping, or we see its registration and wake it.
            fence(Ordering::SeqCst);
            if self.waiters.load(Ordering::Relaxed) > 0 {
                self.word.wake(u32::MAX);
            }
        }
    }

    pub(crate) fn clear(&self) {
        // Keeps the generation. Relaxed: clearing publishes nothing.
        self.word.word().fetch_and(!SET, Ordering::Relaxed);
    }

    /// The word now, to wait from ([`wait_from`](Self::wait_from)).
    pub(crate) fn epoch(&self) -> u32 {
        self.load()
    }

    /// Waits until set, or until a `set` happened since the call began (even one a `clear`
    /// undid since); `false` if `deadline` passed first.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        self.wait_from(self.load(), deadline)
    }

    /// As [`wait`](Self::wait), counting from `seen`, a word read earlier by [`epoch`]
    /// (Self::epoch): returns at once if a `set` happened since.
    pub(crate) fn wait_from(&self, seen: u32, deadline: Option<Instant>) -> bool {
        if seen & SET != 0 || self.load() != seen {
            return true;
        }
        loop {
            self.waiters.fetch_add(1, Ordering::Relaxed);
            // SYNC: Dekker fence, pairs with the fence in `set`.
            fence(Ordering::SeqCst);
            // The kernel sleeps only while the word still reads `seen`, so a `set` between the
            // look above and the sleep makes the wait return at once.
            let r = if self.load() != seen {
                Wake::Woken
            } else {
                self.word.wait(seen, deadline)
            };
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            // Only a `set` changes the word while it is clear (a `clear` of a clear word
            // leaves it as it is): a new word means set now, or set and cleared since.
            if self.load() != seen {
                return true;
            }
            if r == Wake::TimedOut {
                return false;
            }
        }
    }
}
