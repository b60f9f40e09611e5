//! Bounded append-only list written by many processes.
//!
//! `claimed` counts pushes that took an index (it may run past the capacity: those pushes fail).
//! Each slot is `ready: u64` (0 until its writer finished, then 1, stored with Release) followed by
//! the element; readers check `ready` with Acquire before reading, so they never see a half-written
//! element.

use crate::sync::{AtomicU64, Ordering};

/// Header of a list region (the slots follow it).
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct ListHeader {
    pub(crate) claimed: AtomicU64,
}

impl ListHeader {
    crate::sync::loom_only! {
        pub(crate) fn new() -> Self {
            Self {
                claimed: AtomicU64::new(0),
            }
        }
    }

    /// Takes the next index, or `None` if the list is full.
    #[inline]
    pub(crate) fn claim(&self, cap: u64) -> Option<u64> {
        // Cheap refusal when full, so a full list is not pushed further past its capacity.
        if self.claimed.load(Ordering::Relaxed) >= cap {
            return None;
        }
        let i = self.claimed.fetch_add(1, Ordering::Relaxed);
        (i < cap).then_some(i)
    }

    /// Number of indices taken (elements written or being written), at most `cap`.
    pub(crate) fn len(&self, cap: u64) -> u64 {
        self.claimed.load(Ordering::Relaxed).min(cap)
    }
}

/// Marks slot `ready` published after its element was written.
#[inline]
pub(crate) fn publish(ready: &AtomicU64) {
    // SYNC: Release pairs with the Acquire in `is_ready`: the element bytes are visible to a
    // reader that sees 1.
    ready.store(1, Ordering::Release);
}

/// Whether a slot's element is complete.
#[inline]
pub(crate) fn is_ready(ready: &AtomicU64) -> bool {
    // SYNC: Acquire, see `publish`.
    ready.load(Ordering::Acquire) == 1
}
