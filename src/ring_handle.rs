//! What every queue handle shares: the segment it lives in, its ring, and the mapping from ring
//! outcomes to deadlines and participant records.

use crate::layout::{ClaimRecord, Side};
use crate::mapping::Inner;
use crate::ring::mem::RawRing;
pub(crate) use crate::ring::Fail;
use crate::ring::{Claimant, Filling, LiveRef, Ring};
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

/// What a queue handle runs over: one bounded ring, or the chain of rings of an unbounded queue.
pub(crate) enum Rings {
    One(Ring<RawRing>),
    Chain(crate::chain::SegChain),
}

/// A queue's rings inside a mapped segment, plus the Arc that keeps the mapping alive.
pub(crate) struct RingHandle {
    // The rings point into `seg`'s mapping: keep `seg` declared (and so dropped) after them.
    pub(crate) rings: Rings,
    pub(crate) seg: Arc<Inner>,
    /// Directory index + 1 (0 is "none" in participant records).
    pub(crate) obj: u32,
}

impl Clone for RingHandle {
    fn clone(&self) -> Self {
        let rings = match &self.rings {
            Rings::One(r) => {
                let mut ring = Ring::new(r.mem.clone());
                ring.spin = r.spin;
                ring.live = r.live.clone();
                ring.tomb_cell = r.tomb_cell;
                Rings::One(ring)
            }
            Rings::Chain(c) => Rings::Chain(c.clone()),
        };
        Self {
            rings,
            seg: self.seg.clone(),
            obj: self.obj,
        }
    }
}

impl RingHandle {
    /// The bounded ring (`None` for an unbounded queue).
    #[inline]
    pub(crate) fn one(&self) -> Option<&Ring<RawRing>> {
        match &self.rings {
            Rings::One(r) => Some(r),
            Rings::Chain(_) => None,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match &self.rings {
            Rings::One(r) => r.len(),
            Rings::Chain(c) => c.len(),
        }
    }

    /// Slots (`u64::MAX`: unbounded).
    pub(crate) fn capacity(&self) -> u64 {
        match &self.rings {
            Rings::One(r) => r.capacity(),
            Rings::Chain(_) => u64::MAX,
        }
    }

    pub(crate) fn close(&self) -> bool {
        match &self.rings {
            Rings::One(r) => r.close(),
            Rings::Chain(c) => c.close(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match &self.rings {
            Rings::One(r) => r.is_closed(),
            Rings::Chain(c) => c.is_closed(),
        }
    }

    pub(crate) fn set_spin(&mut self, spin: bool) {
        match &mut self.rings {
            Rings::One(r) => r.spin = spin,
            Rings::Chain(c) => c.spin = spin,
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
            .and_then(|p| free_side(p.claim(), Side::Get))
            .map(|record| Claimant {
                record,
                obj: self.obj,
            })
    }

    /// Registers the calling thread as a producer of this ring (once per thread and ring: one
    /// Relaxed load of its own record on later puts), or marks the ring as having a producer
    /// that cannot be tracked, so that no getter ever reports `Disconnected` on a guess.
    #[inline]
    fn note_producer<L: LiveRef>(&self, ring: &Ring<RawRing, L>) -> Option<Claimant<'_>> {
        use crate::layout::{PRODUCER_SEEN, PRODUCER_UNATTRIBUTED};
        use crate::ring::RingMem;
        use crate::sync::Ordering;
        let counters = &ring.mem.header().counters;
        let Some(p) = self.seg.participant() else {
            if counters.producers.load(Ordering::Relaxed) & PRODUCER_UNATTRIBUTED == 0 {
                // SYNC: Release, as below (the getter's Acquire load then sees this bit).
                counters
                    .producers
                    .fetch_or(PRODUCER_UNATTRIBUTED, Ordering::Release);
            }
            return None;
        };
        if p.producer_of().load(Ordering::Relaxed) >> (self.obj % 64) & 1 == 0 {
            // Once per thread and ring: out of line.
            #[cold]
            #[inline(never)]
            fn first_put(
                producer_of: &crate::sync::AtomicU64,
                producers: &crate::sync::AtomicU32,
                obj: u32,
            ) {
                producer_of.fetch_or(1u64 << (obj % 64), Ordering::Relaxed);
                // SYNC: Release orders the `producer_of` bit before this flag; pairs with the
                // Acquire load in `Ring::disconnected`, whose record scan then sees the bit.
                producers.fetch_or(PRODUCER_SEEN, Ordering::Release);
            }
            first_put(p.producer_of(), &counters.producers, self.obj);
        }
        free_side(p.claim(), Side::Put).map(|record| Claimant {
            record,
            obj: self.obj,
        })
    }

    /// Whether a thread that has put to this ring is alive (or one that cannot be tracked has
    /// put). `false` also when nobody has put yet.
    /// Counts the calling thread as a producer of this ring from now on (see
    /// `Queue::register_producer`).
    pub(crate) fn register_producer(&self) {
        match &self.rings {
            Rings::One(r) => {
                let _ = self.note_producer(r);
            }
            Rings::Chain(c) => c.with_tail(|r| {
                let _ = self.note_producer(r);
            }),
        }
    }

    pub(crate) fn producers_alive(&self) -> bool {
        use crate::layout::PRODUCER_UNATTRIBUTED;
        use crate::ring::RingMem;
        use crate::sync::Ordering;
        fn seen<L: LiveRef>(r: &Ring<RawRing, L>) -> bool {
            // SYNC: Acquire pairs with the Release `fetch_or` in `note_producer`.
            r.mem.header().counters.producers.load(Ordering::Acquire) & PRODUCER_UNATTRIBUTED != 0
                || r.live.as_deref().is_some_and(|l| l.live_producers() > 0)
        }
        match &self.rings {
            Rings::One(r) => seen(r),
            Rings::Chain(c) => {
                let mut any = false;
                c.with_tail(|r| any = seen(r));
                any
            }
        }
    }

    // Always inlined: the match on the rings' kind must not push the bounded queues' one-item
    // path out of line (callgrind showed `Queue::put_value` and `get_value` no longer inlined
    // into their callers, about 85 more instructions per put + get).
    #[inline(always)]
    pub(crate) fn put(
        &self,
        wait: Wait,
        max: usize,
        write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, Fail> {
        match &self.rings {
            Rings::One(ring) => {
                let who = self.note_producer(ring);
                match wait {
                    Wait::No => ring.put_now(who, max, write).map_err(Fail::from),
                    Wait::Until(d) => ring.put_batch(who, max, d, write).map_err(Fail::from),
                }
            }
            // Never waits for room: `wait` does not matter.
            Rings::Chain(c) => self.chain_put(c, max, write),
        }
    }

    // Out of line, so that the bounded queues' fast path above stays as small as it was.
    #[inline(never)]
    fn chain_put(
        &self,
        c: &crate::chain::SegChain,
        max: usize,
        write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, Fail> {
        c.put(|r| self.note_producer(r), max, write)
    }

    // Out of line, as `chain_put`.
    #[inline(never)]
    fn chain_get(
        &self,
        c: &crate::chain::SegChain,
        who: Option<Claimant<'_>>,
        max: usize,
        wait: Wait,
        read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, Fail> {
        let w = match wait {
            Wait::No => None,
            Wait::Until(d) => Some(d),
        };
        c.get(who, max, w, read)
    }

    #[inline(always)]
    pub(crate) fn get(
        &self,
        wait: Wait,
        max: usize,
        read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, Fail> {
        let who = self.claimant();
        match &self.rings {
            Rings::One(ring) => match wait {
                Wait::No => ring.get_now(who, max, read).map_err(Fail::from),
                Wait::Until(d) => ring.get_batch(who, max, d, read).map_err(Fail::from),
            },
            Rings::Chain(c) => self.chain_get(c, who, max, wait, read),
        }
    }
}

impl RingHandle {
    /// A get of what is published at the head now, reading only the head and its slot, never
    /// the producers' `tail` (not linearizable: a message being written counts as none; see
    /// `BytesQueue::get_ready_with`).
    pub(crate) fn get_look(
        &self,
        max: usize,
        read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, Fail> {
        let who = self.claimant();
        match &self.rings {
            Rings::One(ring) => ring.get_look(who, max, read).map_err(Fail::from),
            Rings::Chain(c) => c.get_look(who, max, read),
        }
    }

    /// Waits until `deadline` (`None`: for ever) until a message is there to take, without
    /// taking it (see `Ring::wait_ready`).
    pub(crate) fn wait_ready(&self, deadline: Option<Instant>) -> Result<usize, Fail> {
        let who = self.claimant();
        match &self.rings {
            Rings::One(ring) => ring.wait_ready(who, deadline).map_err(Fail::from),
            Rings::Chain(c) => c.wait_ready(who, deadline),
        }
    }

    pub(crate) fn stats(&self) -> crate::stats::QueueStats {
        self.stats_with(true)
    }

    /// [`stats`](Self::stats); with `announce == false` an unbounded queue's links are read
    /// without announcing them (see `Chain::stats`): for an observer that writes nothing.
    pub(crate) fn stats_with(&self, announce: bool) -> crate::stats::QueueStats {
        let (len, s, live) = match &self.rings {
            Rings::One(r) => (r.len(), r.stats(), r.live.clone()),
            Rings::Chain(c) => {
                let (len, s) = c.stats(announce);
                (len, s, c.live())
            }
        };
        crate::stats::QueueStats {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            capacity: usize::try_from(self.capacity()).unwrap_or(usize::MAX),
            closed: self.is_closed(),
            waiting_getters: s.waiting_getters,
            waiting_putters: s.waiting_putters,
            tombstones: s.tombstones,
            lost: s.lost,
            unattributed_claims: s.unattributed_claims,
            producers: live.as_deref().map_or(0, |l| l.live_producers()),
            participants: live.as_deref().map_or(0, |l| l.live_participants()),
            puts: s.puts,
            gets: s.gets,
        }
    }
}
