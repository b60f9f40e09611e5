//! Cross-process mutex on a futex word (the classic three-state futex mutex).
//!
//! `word`: 0 unlocked, 1 locked, 2 locked with (possible) sleepers. Lock: CAS 0 → 1, else spin a
//! little, else swap in 2 and sleep while the swap did not return 0. Unlock: swap 0; if it was 2,
//! wake one sleeper. Sleepers always re-mark the word 2 when they take the lock, so a lock with
//! sleepers is never released without a wake.

use crate::sync::backoff::Backoff;
use crate::sync::futex::{Futex, Wake};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// Shared state of a lock: 128 bytes natively, zero = unlocked.
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct LockState {
    /// 0 unlocked, 1 locked, 2 locked and contended (the futex word).
    pub(crate) word: Futex,
    /// pid of the holder (0 when unlocked), for dead-owner detection.
    pub(crate) owner_pid: AtomicU32,
    /// Start time of the holder's process.
    pub(crate) owner_start: AtomicU64,
}

#[cfg(not(shmq_loom))]
const _: () = assert!(core::mem::size_of::<LockState>() == 128);

impl LockState {
    #[cfg(shmq_loom)]
    pub(crate) fn new() -> Self {
        Self {
            word: Futex::new(UNLOCKED),
            owner_pid: AtomicU32::new(0),
            owner_start: AtomicU64::new(0),
        }
    }

    /// One attempt, never blocks.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        // SYNC: Acquire on success pairs with the Release swap in `unlock`: the previous holder's
        // writes to the protected data are visible to us.
        let ok = self
            .word
            .word()
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.set_owner();
        }
        ok
    }

    /// Takes the lock, sleeping while it is held; `false` if `deadline` passed first.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> bool {
        if self.try_lock() {
            return true;
        }
        let w = self.word.word();
        let mut backoff = Backoff::new();
        while !backoff.is_completed() {
            if w.load(Ordering::Relaxed) == UNLOCKED && self.try_lock() {
                return true;
            }
            backoff.snooze();
        }
        loop {
            // SYNC: Acquire as in `try_lock`. Swapping in CONTENDED (not LOCKED) keeps the "someone
            // may sleep" mark when we take the lock while others sleep.
            if w.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                self.set_owner();
                return true;
            }
            if self.word.wait(CONTENDED, deadline) == Wake::TimedOut {
                // One last attempt; if it fails the word stays CONTENDED, which costs the holder
                // at most one spurious wake.
                if w.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                    self.set_owner();
                    return true;
                }
                return false;
            }
        }
    }

    /// Releases the lock (only a guard calls this).
    pub(crate) fn unlock(&self) {
        self.owner_pid.store(0, Ordering::Relaxed);
        self.owner_start.store(0, Ordering::Relaxed);
        // SYNC: Release pairs with the Acquire in `try_lock`/`lock` of the next holder.
        if self.word.word().swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.word.wake(1);
        }
    }

    /// True if some holder holds it now (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.word.word().load(Ordering::Relaxed) != UNLOCKED
    }

    #[inline]
    fn set_owner(&self) {
        #[cfg(not(shmq_loom))]
        {
            let (pid, start) = crate::segment::os::self_identity();
            self.owner_pid.store(pid, Ordering::Relaxed);
            self.owner_start.store(start, Ordering::Relaxed);
        }
        #[cfg(shmq_loom)]
        self.owner_pid.store(1, Ordering::Relaxed);
    }
}
