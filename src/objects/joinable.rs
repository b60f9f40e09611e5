//! Unfinished-task accounting of a joinable queue.
//!
//! Tasks are not counted by the producer before its put (a producer killed between counting and
//! putting would leave a task no consumer can ever finish, and `join` would wait for good).
//! Instead the count is derived from what the ring already records:
//!
//! `unfinished = puts - done`, with `puts = tail - tombstones` (positions ever claimed by
//! producers, minus those given up by dead producers and turned into tombstones) and `done` the
//! number of `task_done` calls, the one word this block keeps.
//!
//! A put counts from its claim CAS on (before the item becomes visible, as `multiprocessing`
//! counts it before it is enqueued); a put that never claims (full, closed, timed out, or killed
//! first) counts nothing; a claim whose producer dies is tombstoned by recovery and stops
//! counting. `join` reads `done` first, then `tombstones`, then `tail`: all three only grow, so
//! when the difference is 0, it was 0 at the instant `tail` was read (the later reads can only have
//! lowered it, and it is never below 0). `task_done` refuses to make `done` exceed `puts`.
//!
//! A tombstone can finish the accounting without anyone calling `task_done`, so whoever makes one
//! notifies this block's wait cell too (`Ring::tomb_cell`). A joiner still re-checks every
//! [`JOIN_SLICE`] (natively) as a backstop.

use crate::layout::WaitCell;
use crate::sync::futex::Wake;
use crate::sync::{AtomicU64, Ordering};
use std::time::Instant;

/// Accounting block, placed before the ring in a joinable queue's region.
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct JoinState {
    /// `task_done` calls so far.
    pub(crate) done: AtomicU64,
    pub(crate) cell: WaitCell,
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<JoinState>() == 128);
}

/// How long a joiner sleeps before it re-checks (see the module docs): a backstop only, since
/// both ways to finish the last task (`task_done`, a tombstone) wake joiners.
const JOIN_SLICE: std::time::Duration = std::time::Duration::from_secs(5);

impl JoinState {
    crate::sync::loom_only! {
        pub(crate) fn new() -> Self {
            Self {
                done: AtomicU64::new(0),
                cell: WaitCell {
                    epoch: crate::sync::futex::Futex::new(0),
                    waiters: crate::sync::AtomicU32::new(0),
                },
            }
        }
    }

    /// Tasks put and not yet done; `puts()` reads `tail - tombstones` of the ring (in that order:
    /// tombstones first, see the module docs). `done` is read before it.
    pub(crate) fn unfinished(&self, puts: impl Fn() -> u64) -> u64 {
        // SYNC: Acquire pairs with the AcqRel increment in `task_done`: a joiner that counts a
        // task done sees what its consumer did before.
        let done = self.done.load(Ordering::Acquire);
        puts().saturating_sub(done)
    }

    /// One task finished; `Err(())` if every task put so far is done already.
    pub(crate) fn task_done(&self, puts: impl Fn() -> u64) -> Result<(), ()> {
        let mut d = self.done.load(Ordering::Relaxed);
        loop {
            if d >= puts() {
                return Err(());
            }
            // SYNC: AcqRel: Release hands the task's effects to a joiner that reads the count
            // with Acquire.
            match self
                .done
                .compare_exchange_weak(d, d + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => d = now,
            }
        }
        if self.unfinished(&puts) == 0 {
            self.cell.notify_all();
        }
        Ok(())
    }

    /// Waits until no task is unfinished; `false` if `deadline` passed first.
    pub(crate) fn join(&self, puts: impl Fn() -> u64, deadline: Option<Instant>) -> bool {
        loop {
            if self.unfinished(&puts) == 0 {
                return true;
            }
            let slice = crate::sync::slice_end(deadline, crate::fault::watched_slice(JOIN_SLICE));
            let (e, registered) = self.cell.register_guarded(None, crate::layout::Side::Get);
            let zero = self.unfinished(&puts) == 0;
            let r = if zero {
                Wake::Woken
            } else {
                self.cell.epoch.wait(e, slice)
            };
            drop(registered);
            if zero {
                return true;
            }
            if r == Wake::TimedOut && deadline.is_some_and(|d| Instant::now() >= d) {
                return self.unfinished(&puts) == 0;
            }
        }
    }
}
