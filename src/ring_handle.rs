//! What every queue handle shares: the segment it lives in, its ring, and the mapping from ring
//! outcomes to deadlines and participant records.

use crate::layout::{ClaimRecord, Side};
use crate::mapping::Inner;
use crate::ring::mem::RawRing;
use crate::ring::{Claimant, Filling, Ring, TryError, WaitError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an operation may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Do not wait at all.
    No,
    /// Wait until this deadline (`None`: forever).
    Until(Option<Instant>),
}

impl Wait {
    pub(crate) fn forever() -> Self {
        Wait::Until(None)
    }
    /// A deadline `d` from now; a duration too large to represent waits forever.
    pub(crate) fn timeout(d: Duration) -> Self {
        Wait::Until(Instant::now().checked_add(d))
    }
}

/// Why a raw operation moved nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    WouldBlock,
    Closed,
    Timeout,
    Corrupt,
    Disconnected,
}

impl From<TryError> for Fail {
    fn from(e: TryError) -> Self {
        match e {
            // `put_now` / `get_now` never return `Pending`; a raw attempt's is "nothing moved".
            TryError::WouldBlock | TryError::Pending => Fail::WouldBlock,
            TryError::Closed => Fail::Closed,
            TryError::Corrupt => Fail::Corrupt,
        }
    }
}

impl From<WaitError> for Fail {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Timeout => Fail::Timeout,
            WaitError::Closed => Fail::Closed,
            WaitError::Corrupt => Fail::Corrupt,
            WaitError::Disconnected => Fail::Disconnected,
        }
    }
}

/// `record`, unless its put (`Side::Put`) or get side already names a claim of this thread's that is
/// not settled yet: a call made inside a `put_with` / `get_with` closure (on this queue or
/// another of the segment). Naming its own claim there would overwrite the outer claim's
/// position, and a crash inside the closure would then leave the outer claim with no record (never
/// recovered), or with a record naming the wrong position. The inner call goes on without a
/// record instead, counted as unattributed while its claim is in flight (see `Unattributed` in
/// `ring.rs`), which keeps recovery sound on its queue.
#[inline]
fn free_side(record: &ClaimRecord, side: Side) -> Option<&ClaimRecord> {
    // Relaxed: our own record, written only by this thread.
    let (obj, _, _) = record.side(side);
    (obj.load(crate::sync::Ordering::Relaxed) == 0).then_some(record)
}

/// A ring inside a mapped segment, plus the Arc that keeps the mapping alive.
pub(crate) struct RingHandle {
    // `ring` points into `seg`'s mapping: keep `seg` declared (and so dropped) after it.
    pub(crate) ring: Ring<RawRing>,
    pub(crate) seg: Arc<Inner>,
    /// Directory index + 1 (0 is "none" in participant records).
    pub(crate) obj: u32,
}

impl Clone for RingHandle {
    fn clone(&self) -> Self {
        let mut ring = Ring::new(self.ring.mem.clone());
        ring.spin = self.ring.spin;
        ring.live = self.ring.live.clone();
        ring.tomb_cell = self.ring.tomb_cell;
        Self {
            ring,
            seg: self.seg.clone(),
            obj: self.obj,
        }
    }
}

impl RingHandle {
    /// This thread's participant record for claims on this ring (`None` if the table is full,
    /// or if the record's get side names a claim of ours in progress: see [`free_side`]).
    #[inline]
    fn claimant(&self) -> Option<Claimant<'_>> {
        self.seg
            .participant()
            .and_then(|p| free_side(p.claim, Side::Get))
            .map(|record| Claimant {
                record,
                obj: self.obj,
            })
    }

    /// Registers the calling thread as a producer of this ring (once per thread and ring: one
    /// Relaxed load of its own record on later puts), or marks the ring as having a producer
    /// that cannot be tracked, so that no getter ever reports `Disconnected` on a guess.
    #[inline]
    fn note_producer(&self) -> Option<Claimant<'_>> {
        use crate::layout::{PRODUCER_SEEN, PRODUCER_UNATTRIBUTED};
        use crate::ring::RingMem;
        use crate::sync::Ordering;
        let counters = &self.ring.mem.header().counters;
        let Some(p) = self.seg.participant() else {
            if counters.producers.load(Ordering::Relaxed) & PRODUCER_UNATTRIBUTED == 0 {
                // SYNC: Release, as below (the getter's Acquire load then sees this bit).
                counters
                    .producers
                    .fetch_or(PRODUCER_UNATTRIBUTED, Ordering::Release);
            }
            return None;
        };
        let bit = 1u64 << (self.obj % 64);
        if p.producer_of.load(Ordering::Relaxed) & bit == 0 {
            p.producer_of.fetch_or(bit, Ordering::Relaxed);
            // SYNC: Release orders the `producer_of` bit before this flag; pairs with the Acquire
            // load in `Ring::disconnected`, whose record scan then sees the bit.
            counters
                .producers
                .fetch_or(PRODUCER_SEEN, Ordering::Release);
        }
        free_side(p.claim, Side::Put).map(|record| Claimant {
            record,
            obj: self.obj,
        })
    }

    /// Whether a thread that has put to this ring is alive (or one that cannot be tracked has
    /// put). `false` also when nobody has put yet.
    /// Counts the calling thread as a producer of this ring from now on (see
    /// `Queue::register_producer`).
    pub(crate) fn register_producer(&self) {
        let _ = self.note_producer();
    }

    pub(crate) fn producers_alive(&self) -> bool {
        use crate::layout::PRODUCER_UNATTRIBUTED;
        use crate::ring::RingMem;
        use crate::sync::Ordering;
        // SYNC: Acquire pairs with the Release `fetch_or` in `note_producer`.
        let seen = self
            .ring
            .mem
            .header()
            .counters
            .producers
            .load(Ordering::Acquire);
        seen & PRODUCER_UNATTRIBUTED != 0
            || self
                .ring
                .live
                .as_deref()
                .is_some_and(|l| l.live_producers() > 0)
    }

    #[inline]
    pub(crate) fn put(
        &self,
        wait: Wait,
        max: usize,
        write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, Fail> {
        let who = self.note_producer();
        match wait {
            Wait::No => self.ring.put_now(who, max, write).map_err(Fail::from),
            Wait::Until(d) => self.ring.put_batch(who, max, d, write).map_err(Fail::from),
        }
    }

    #[inline]
    pub(crate) fn get(
        &self,
        wait: Wait,
        max: usize,
        read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, Fail> {
        let who = self.claimant();
        match wait {
            Wait::No => self.ring.get_now(who, max, read).map_err(Fail::from),
            Wait::Until(d) => self.ring.get_batch(who, max, d, read).map_err(Fail::from),
        }
    }
}

impl RingHandle {
    pub(crate) fn stats(&self) -> crate::stats::QueueStats {
        let s = self.ring.stats();
        crate::stats::QueueStats {
            len: s.len as usize,
            capacity: s.capacity as usize,
            closed: s.closed,
            waiting_getters: s.waiting_getters,
            waiting_putters: s.waiting_putters,
            tombstones: s.tombstones,
            lost: s.lost,
            unattributed_claims: s.unattributed_claims,
            producers: self.ring.live.as_deref().map_or(0, |l| l.live_producers()),
            participants: self
                .ring
                .live
                .as_deref()
                .map_or(0, |l| l.live_participants()),
        }
    }
}
