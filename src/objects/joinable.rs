//! Unfinished-task accounting of a joinable queue.
//!
//! `unfinished` is incremented before an item becomes visible in the queue (so `join` can never see
//! 0 while an item is queued or being processed) and decremented by `task_done`. The `done` wait cell
//! is bumped when it reaches 0; `join` sleeps on it with the same Dekker registration as the queue.

use crate::layout::WaitCell;
use crate::sync::futex::Wake;
use crate::sync::{AtomicU64, Ordering};
use std::time::Instant;

/// Accounting block, placed before the ring in a joinable queue's region.
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct JoinState {
    pub(crate) unfinished: AtomicU64,
    pub(crate) done: WaitCell,
}

#[cfg(not(shmq_loom))]
const _: () = assert!(core::mem::size_of::<JoinState>() == 128);

impl JoinState {
    #[cfg(shmq_loom)]
    pub(crate) fn new() -> Self {
        Self {
            unfinished: AtomicU64::new(0),
            done: WaitCell {
                epoch: crate::sync::futex::Futex::new(0),
                waiters: crate::sync::AtomicU32::new(0),
            },
        }
    }

    /// Before a put: one more unfinished task.
    #[inline]
    pub(crate) fn add(&self) {
        // SYNC: AcqRel so the increment is ordered before the put's publish (program order + the
        // publish's Release) for anyone who later sees the item.
        self.unfinished.fetch_add(1, Ordering::AcqRel);
    }

    /// A put failed after `add`: take the task back.
    pub(crate) fn undo_add(&self) {
        // SYNC: AcqRel, as in `task_done`.
        if self.unfinished.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_all();
        }
    }

    /// One task finished; `Err(())` if there was none unfinished.
    pub(crate) fn task_done(&self) -> Result<(), ()> {
        let mut c = self.unfinished.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return Err(());
            }
            // SYNC: AcqRel: Release hands the task's effects to a joiner that reads 0 with Acquire.
            match self.unfinished.compare_exchange_weak(
                c,
                c - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        if c == 1 {
            self.done.notify_all();
        }
        Ok(())
    }

    pub(crate) fn unfinished(&self) -> u64 {
        self.unfinished.load(Ordering::Acquire)
    }

    /// Waits until no task is unfinished; `false` if `deadline` passed first.
    pub(crate) fn join(&self, deadline: Option<Instant>) -> bool {
        loop {
            // SYNC: Acquire pairs with the AcqRel decrement in `task_done`.
            if self.unfinished.load(Ordering::Acquire) == 0 {
                return true;
            }
            let e = self.done.register();
            let zero = self.unfinished.load(Ordering::Acquire) == 0;
            let r = if zero {
                Wake::Woken
            } else {
                self.done.epoch.wait(e, deadline)
            };
            self.done.unregister();
            if zero {
                return true;
            }
            if r == Wake::TimedOut {
                return self.unfinished.load(Ordering::Acquire) == 0;
            }
        }
    }
}
