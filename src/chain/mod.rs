//! Unbounded queues: a chain of bounded rings ("links") in the segment's heap.
//!
//! Producers put to the tail link; when it is full they *seal* it (close its ring, so no claim
//! can ever land in it again) and move on to the next link, installing it first if nobody has.
//! Consumers get from the head link; when its ring reports `Closed` (sealed and drained) they move
//! on and free it. A link's positions continue where the link before it was sealed, so positions
//! are unique across the chain and the participant records' claims (queue, position) name one
//! link: the ring's crash recovery (tombstones, lost messages) works unchanged inside each link.
//!
//! While consumers keep up, one link is used as an ordinary bounded ring, with the ring's fast
//! path: no allocation, no system call. Links grow geometrically (to 1 MiB of slots, at least
//! 1024 slots), so a million items put before any get take a few dozen links.
//!
//! # Freeing links
//!
//! A thread about to touch link `c` announces it first: its participant record's `hazard` word
//! names `(queue, c)`; then, after a SeqCst fence, it checks that `c` is not behind the chain's
//! head. The announcement is withdrawn (Release) when the operation ends. A thread without
//! a record, one whose hazard word names another queue, or one inside another chain operation's
//! closure counts itself in the chain's `bare` count around its operation instead. A link behind
//! the head is freed only once no live record announces it and `bare` is 0, as the freer reads
//! them after a SeqCst fence of its own, which follows its SeqCst read of the head (or the SeqCst
//! CAS that moved it). Of the two fences, the one first in the single total order makes the other
//! side see: the announcer the new head (and it does not touch the link), or the freer the
//! announcement. (The fences, not SeqCst loads and stores alone, carry the argument, so that loom,
//! which models SeqCst fences but treats SeqCst accesses as AcqRel, checks the code as it
//! ships.) A dead process's announcement is ignored (dead needs proof, as everywhere); a
//! record-less thread killed inside an operation leaves `bare` raised, which stops link frees on
//! that queue (a leak, never a use-after-free: the degraded mode of a full participant table).

use crate::heap::HeapError;
use crate::layout::{CachePadded, SlotLayout, CLOSED_BIT};
use crate::ring::{Fail, Filling, LiveArc, Liveness, Ring, RingMem, TryError, ABANDONED_HEAD};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A link's ring view, made per operation, borrowing the chain's liveness source (see
/// [`crate::ring::LiveRef`]).
type LinkRing<'a, M> = Ring<<M as ChainMem>::Ring, &'a (dyn Liveness + Send + Sync + 'static)>;

crate::sync::native_only! {
    mod block;
    mod segment;
    pub(crate) use segment::{region_blocks, SegChain};
    #[cfg(test)]
    mod tests;
}

/// Links a chain can have alive at once (installed and not yet freed): with links of at most
/// 1 MiB of slots, about 1 GiB of slots (a queue holds at most that, below its segment's
/// `max_size`).
pub(crate) const TABLE: usize = 1024;
/// Slots of the first link (one in a model, so that every second put moves to a new link; four
/// under miri, so that its short runs cross links too).
const FIRST_CAP: u64 = if cfg!(miri) {
    4
} else {
    crate::sync::native_or_loom(1024, 1)
};
/// Links stop growing once their slots take this many bytes (a model's links all have one slot;
/// under miri, links stay small).
const LINK_BYTES: u64 = if cfg!(miri) {
    1 << 10
} else {
    crate::sync::native_or_loom(1 << 20, 0)
};
/// Bytes of a link's header, before its ring.
const LINK_HEADER: u64 = 128;

/// The shared part of an unbounded queue: its directory region.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ChainHeader {
    pub(crate) ends: ChainEnds,
    /// Link `c` at `c % TABLE` as a [`table_entry`] (0: none).
    pub(crate) table: [AtomicU64; TABLE],
}

/// A chain's ends and counters (the start of its [`ChainHeader`]).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ChainEnds {
    /// Index of the link producers put to; bit 63 ([`CLOSED_BIT`]) once the queue is closed. The
    /// tail moves only by CAS from a value without the bit, so once closed it never moves again:
    /// the link it names is the last one.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// Index of the link consumers get from.
    pub(crate) head: CachePadded<AtomicU64>,
    pub(crate) meta: CachePadded<ChainMeta>,
}

#[derive(Debug)]
#[repr(C)]
pub(crate) struct ChainMeta {
    pub(crate) _pad: AtomicU32,
    /// Operations in flight by threads that announce no hazard (see the module docs).
    pub(crate) bare: AtomicU32,
    /// Links below this index are freed, or being freed by the thread that moved it.
    pub(crate) freed: AtomicU64,
    /// Tombstones and lost messages of links already behind the head (for `stats()`).
    pub(crate) tombstones: AtomicU64,
    pub(crate) lost: AtomicU64,
}

crate::sync::loom_only! {
    impl ChainEnds {
        /// The ends of a fresh chain whose link 0 is about to be installed (for models).
        pub(crate) fn new_heap() -> Self {
            Self {
                tail: CachePadded(AtomicU64::new(0)),
                head: CachePadded(AtomicU64::new(0)),
                meta: CachePadded(ChainMeta {
                    _pad: AtomicU32::new(0),
                    bare: AtomicU32::new(0),
                    freed: AtomicU64::new(0),
                    tombstones: AtomicU64::new(0),
                    lost: AtomicU64::new(0),
                }),
            }
        }
    }

    impl LinkHeader {
        /// The header of link `index` of queue `obj` (for models).
        pub(crate) fn new_heap(index: u64, base: u64, cap: u64, obj: u32) -> Self {
            Self {
                index: AtomicU64::new(index),
                base: AtomicU64::new(base),
                cap: AtomicU64::new(cap),
                obj: AtomicU64::new(obj as u64),
            }
        }
    }
}

/// Bits of a table entry that hold the link's block offset (an offset in a segment, below the
/// 2^47 bytes of a process's address space).
const ENTRY_OFF_BITS: u32 = 48;

/// The table entry of link `c` in heap block `off`: the offset, and the low 16 bits of `c` above
/// it. An entry is read before its block is (see [`Chain::link`]): a table slot still holding
/// an older link (`c - TABLE`, about to be freed) is told from link `c` by the entry alone, never
/// by reading a block that may be freed under the reader.
pub(crate) fn table_entry(c: u64, off: u64) -> u64 {
    (c & 0xFFFF) << ENTRY_OFF_BITS | off
}

/// The block offset of table entry `e`.
pub(crate) fn entry_off(e: u64) -> u64 {
    e & ((1 << ENTRY_OFF_BITS) - 1)
}

/// Whether table entry `e` names link `c`.
fn entry_is(e: u64, c: u64) -> bool {
    e != 0 && e >> ENTRY_OFF_BITS == c & 0xFFFF
}

/// Bytes of an unbounded queue's directory region.
pub(crate) const CHAIN_REGION: u64 = core::mem::size_of::<ChainHeader>() as u64;

/// A link's header, at the 128-aligned start of its heap block's payload.
#[repr(C)]
pub(crate) struct LinkHeader {
    /// The link's index in its chain.
    pub(crate) index: AtomicU64,
    /// Its first position.
    pub(crate) base: AtomicU64,
    /// Its slots.
    pub(crate) cap: AtomicU64,
    /// The queue (directory index + 1).
    pub(crate) obj: AtomicU64,
}

/// Capacity of the link after one of `cap` slots.
fn next_cap(cap: u64, layout: SlotLayout) -> u64 {
    let max = (LINK_BYTES / layout.stride.max(1)).max(FIRST_CAP);
    cap.saturating_mul(2).min(max)
}

/// What a chain runs over: its header, the calling thread's hazard word and everyone else's,
/// and link blocks (allocated, viewed, freed). Natively [`SegLinks`]: the segment's directory
/// region, participant records and heap; under loom a model (`crate::model`) whose freed links
/// turn every later touch into a reported data race. The protocol itself, [`Chain`], is the same
/// code in both.
pub(crate) trait ChainMem {
    /// The memory of one link's ring.
    type Ring: RingMem + Clone;
    fn ends(&self) -> &ChainEnds;
    /// The link table (its length is the number of links alive at once).
    fn table(&self) -> &[AtomicU64];
    fn layout(&self) -> SlotLayout;
    /// The queue's number (directory index + 1), which links and hazard words name.
    fn obj(&self) -> u32;
    /// The calling thread's hazard word, if it has one (its participant record's).
    fn hazard(&self) -> Option<&AtomicU64>;
    /// Whether a thread not proven dead announces `hazard` (Acquire loads, after the caller's
    /// SeqCst fence).
    fn hazard_announced(&self, hazard: u64) -> bool;
    /// Allocates and initialises link `index`: positions from `base`, `cap` slots, `seen`
    /// producers seen. Returns its block offset (nonzero).
    fn new_link(&self, index: u64, base: u64, cap: u64, seen: u32) -> Result<u64, HeapError>;
    /// The header and ring memory of the link in block `off` (`Corrupt` if it cannot be one).
    fn view(&self, off: u64) -> Result<(&LinkHeader, Self::Ring), Fail>;
    /// Ring memory remembered for link `c` in block `off` (see [`Chain::link`]).
    fn cached(&self, _c: u64, _off: u64) -> Option<Self::Ring> {
        None
    }
    /// Remembers the ring memory of link `c` in block `off`.
    fn remember(&self, _c: u64, _off: u64, _ring: &Self::Ring) {}
    /// Link block `off`, just installed in the table, now belongs to the chain.
    fn installed(&self, off: u64);
    /// Frees link block `off`, which never got into the table.
    fn discard(&self, off: u64);
    /// Position `pos` of a link about to be freed was still held by a dead consumer; `head` is
    /// the start of its payload.
    fn abandon(&self, _pos: u64, _head: &[u8; ABANDONED_HEAD]) {}
    /// Clears table slot `slot` if it still holds entry `e`, and frees the entry's block.
    fn release(&self, slot: &AtomicU64, e: u64);
}

/// One chain operation in progress on this thread.
struct Nested {
    /// Whether it is the outermost one (which may use the thread's hazard word).
    outer: bool,
}

crate::sync::thread_local! {
    /// Depth of chain operations on this thread: an operation inside another's closure (a nested
    /// call) must not move the outer one's announcement, so it counts itself as bare instead.
    // Not `const { .. }`: loom's `thread_local!` has no const form.
    #[allow(clippy::missing_const_for_thread_local)]
    static DEPTH: std::cell::Cell<u32> = std::cell::Cell::new(0);
}

impl Nested {
    fn enter() -> Self {
        let outer = DEPTH
            .try_with(|d| {
                let n = d.get();
                d.set(n + 1);
                n == 0
            })
            .unwrap_or(false);
        Nested { outer }
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// How a thread announced the link it works on; withdrawn on drop.
enum Announced<'a> {
    Hazard(&'a AtomicU64),
    Bare(&'a AtomicU32),
}

impl Announced<'_> {
    /// 1 if this announcement is counted in `bare` (so a freer running inside the operation
    /// does not wait for itself).
    fn bare(&self) -> u32 {
        matches!(self, Announced::Bare(_)) as u32
    }
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        match self {
            // SYNC: Release: our accesses to the link happen before a freer's SeqCst load that
            // sees the word cleared (and so frees the link).
            Announced::Hazard(w) => w.store(0, Ordering::Release),
            // SYNC: Release, as the hazard word's clear.
            Announced::Bare(b) => {
                b.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

/// The process-local view of one unbounded queue.
pub(crate) struct Chain<M> {
    mem: M,
    /// Where a link's ring asks whether a claimant is dead (`None`: it never recovers anything).
    live: Option<LiveArc>,
    /// The disconnect check's last verdict, carried from one link view to the next (the views
    /// are made per operation; without it every blocking get would scan the participants again).
    seen_at: Arc<crate::sync::local::AtomicU64>,
    pub(crate) spin: bool,
}

impl<M: Clone> Clone for Chain<M> {
    fn clone(&self) -> Self {
        Self {
            mem: self.mem.clone(),
            live: self.live.clone(),
            seen_at: self.seen_at.clone(),
            spin: self.spin,
        }
    }
}

impl<M: ChainMem> Chain<M> {
    pub(crate) fn over(mem: M, live: Option<LiveArc>) -> Self {
        Self {
            mem,
            live,
            seen_at: Arc::new(crate::sync::local::AtomicU64::new(u64::MAX)),
            spin: true,
        }
    }

    fn ends(&self) -> &ChainEnds {
        self.mem.ends()
    }

    /// The table entry of link `c`.
    fn slot(&self, c: u64) -> &AtomicU64 {
        let t = self.mem.table();
        &t[(c % t.len() as u64) as usize]
    }

    /// The hazard word value that names link `c` of this queue.
    fn hazard_of(&self, c: u64) -> u64 {
        (self.mem.obj() as u64) << 40 | (c.wrapping_add(1) & ((1 << 40) - 1))
    }

    /// Announces that the calling thread is about to touch link `c` (`outer`: the outermost
    /// chain operation of the thread, which may use its hazard word); `None` if `c` is already
    /// behind the head (it may be freed: look again).
    fn announce(&self, c: u64, outer: bool) -> Option<Announced<'_>> {
        let h = self.ends();
        let record = if outer { self.mem.hazard() } else { None };
        let how = match record {
            // Relaxed: our own record; 0 outside chain operations (withdrawn on drop).
            Some(w) if w.load(Ordering::Relaxed) == 0 => {
                // Relaxed: ordered before the head check by the fence below.
                w.store(self.hazard_of(c), Ordering::Relaxed);
                Announced::Hazard(w)
            }
            _ => {
                // Relaxed: as the hazard store.
                h.meta.bare.fetch_add(1, Ordering::Relaxed);
                Announced::Bare(&h.meta.bare)
            }
        };
        // SYNC: SeqCst fence between our announcement and our look at the head; pairs with the
        // fence in `free_retired` (see the module docs).
        fence(Ordering::SeqCst);
        if h.head.load(Ordering::Relaxed) > c {
            return None; // dropping `how` withdraws it
        }
        Some(how)
    }

    /// The ring of link `c`, if installed (`Err(Corrupt)` if the table names a block that is not
    /// a link of this queue).
    ///
    /// Call only while link `c` is announced. Its ring memory may be remembered per thread
    /// (keyed by link and table entry), so an operation on the link used last skips the link's
    /// validation: while `c` is announced it cannot be freed, so its entry still names the same
    /// block.
    fn link(&self, c: u64) -> Result<Option<LinkRing<'_, M>>, Fail> {
        // SYNC: Acquire pairs with the installer's Release CAS: the link's header and ring
        // initialisation are visible.
        let e = self.slot(c).load(Ordering::Acquire);
        if !entry_is(e, c) {
            // Empty, or an older link not yet freed from this slot (which may be being freed:
            // it is not read).
            return Ok(None);
        }
        let off = entry_off(e);
        let mem = match self.mem.cached(c, off) {
            Some(mem) => mem,
            None => {
                let (lh, mem) = self.mem.view(off)?;
                if lh.obj.load(Ordering::Relaxed) != self.mem.obj() as u64
                    || lh.index.load(Ordering::Relaxed) != c
                {
                    return Err(Fail::Corrupt);
                }
                self.mem.remember(c, off, &mem);
                mem
            }
        };
        let mut ring = Ring::view(mem);
        ring.spin = self.spin;
        ring.live = self.live.as_deref();
        Ok(Some(ring))
    }

    /// Installs link `t + 1` (sealing link `t` first) unless someone did, then moves the tail
    /// past `t` (which fails, harmlessly, once the queue is closed). `a`: the caller's
    /// announcement (of link `t`). Link `t + 1` is not announced: its slot may still hold link
    /// `t + 1 - TABLE`, which another thread may be freeing, and `link` tells the two apart by
    /// the table entry without reading either block.
    fn advance(&self, t: u64, ring_t: &LinkRing<'_, M>, a: &Announced<'_>) -> Result<(), Fail> {
        let h = self.ends();
        let next = t.checked_add(1).ok_or(Fail::Corrupt)?;
        ring_t.close();
        if self.link(next)?.is_none() {
            let slot = self.slot(next);
            if slot.load(Ordering::Acquire) != 0 {
                self.free_retired(a.bare());
                if slot.load(Ordering::Acquire) != 0 {
                    // A table's worth of links alive at once (some announced by a stalled
                    // thread).
                    return Err(Fail::NoSpace);
                }
            }
            // SYNC: Acquire: the sealed tail of link t (its final position) is visible.
            let base = ring_t.mem.header().tail.load(Ordering::Acquire) & !CLOSED_BIT;
            let cap = next_cap(ring_t.capacity(), self.mem.layout());
            // The producers link t has seen carry over (a getter on the new link must not take
            // a live producer that put only to earlier links for gone).
            let seen = ring_t
                .mem
                .header()
                .counters
                .producers
                .load(Ordering::Acquire);
            let fresh = |cap| self.mem.new_link(next, base, cap, seen);
            let off = match fresh(cap) {
                Err(HeapError::NoSpace { .. }) => {
                    // Links behind the head may be holding the room: free them and try once more.
                    self.free_retired(a.bare());
                    match fresh(cap) {
                        // Link t itself may hold the room a link twice its size needs, even with
                        // the queue empty: a link of the first size may still fit (and the
                        // links grow again from there).
                        Err(HeapError::NoSpace { .. }) if cap > FIRST_CAP => fresh(FIRST_CAP),
                        r => r,
                    }
                }
                r => r,
            }
            .map_err(|e| match e {
                HeapError::NoSpace { .. } => Fail::NoSpace,
                _ => Fail::Corrupt,
            })?;
            // SYNC: Release publishes the link's header and ring; pairs with `link`'s Acquire.
            if slot
                .compare_exchange(
                    0,
                    table_entry(next, off),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                self.mem.discard(off);
            } else {
                crate::fault::point("chain-installed");
                self.mem.installed(off);
            }
        }
        // SYNC: AcqRel: the link installed above (or seen installed) happens before any thread
        // that reads the new tail and then the table.
        let _ = h
            .tail
            .compare_exchange(t, next, Ordering::AcqRel, Ordering::Relaxed);
        Ok(())
    }

    /// Moves the head past drained link `h` (the caller still announces it).
    fn retire(&self, h: u64, ring: &LinkRing<'_, M>) {
        let hdr = self.ends();
        let c = &ring.mem.header().counters;
        // SYNC: SeqCst: the head move precedes, in the single total order, the fence of any
        // freer that reads the new head with its SeqCst load (see the module docs).
        if hdr
            .head
            .compare_exchange(h, h.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            hdr.meta
                .tombstones
                .fetch_add(c.tombstones.load(Ordering::Relaxed), Ordering::Relaxed);
            hdr.meta
                .lost
                .fetch_add(c.lost.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Frees links behind the head, in order, while nobody live announces them. `mine`: 1 if the
    /// caller itself is counted in `bare`.
    fn free_retired(&self, mine: u32) {
        let hdr = self.ends();
        // At most a table's worth per call (a forged `freed` far behind the head must not keep
        // a caller here).
        for _ in 0..self.mem.table().len() {
            let f = hdr.meta.freed.load(Ordering::Acquire);
            // SYNC: SeqCst pairs with the SeqCst head CAS in `retire`, so that the CAS precedes
            // the fence below in the single total order.
            if f >= hdr.head.load(Ordering::SeqCst) {
                return;
            }
            // SYNC: SeqCst fence between our look at the head and our look at announcements;
            // pairs with the fence in `announce`. The Acquire loads pair with the Release
            // withdrawals: an operation that withdrew its announcement happens before the free.
            fence(Ordering::SeqCst);
            if hdr.meta.bare.load(Ordering::Acquire) > mine
                || self.mem.hazard_announced(self.hazard_of(f))
            {
                return;
            }
            // One CAS decides who frees link f.
            if hdr
                .meta
                .freed
                .compare_exchange(f, f + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.free_link(f);
            }
        }
    }

    /// Frees link `f` (behind the head, announced by nobody: only this thread can touch it).
    /// Messages still claimed in it belong to dead consumers: they are counted lost, and their
    /// heap blocks given back. A freer killed here leaves the link in the table; `advance` and
    /// later freers find it by its index below `freed` and free it then.
    fn free_link(&self, f: u64) {
        let hdr = self.ends();
        let slot = self.slot(f);
        let e = slot.load(Ordering::Acquire);
        if !entry_is(e, f) {
            return;
        }
        let off = entry_off(e);
        let Ok((lh, mem)) = self.mem.view(off) else {
            return;
        };
        if lh.index.load(Ordering::Relaxed) != f {
            return;
        }
        let ring = Ring::new(mem);
        let held = ring.held_by_dead_consumers();
        if !held.is_empty() {
            hdr.meta
                .lost
                .fetch_add(held.len() as u64, Ordering::Relaxed);
        }
        for (pos, head) in &held {
            self.mem.abandon(*pos, head);
        }
        self.mem.release(slot, e);
    }

    /// Puts up to `max` items (never waits for room: a full link is sealed and the next one
    /// used, also when a consumer still holds the slot needed). `who` gives the claimant for a
    /// link's ring (registering the caller as its producer). `NoSpace` when the heap has no room
    /// for a new link.
    pub(crate) fn put<'w>(
        &self,
        who: impl Fn(&LinkRing<'_, M>) -> Option<crate::ring::Claimant<'w>>,
        max: usize,
        mut write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, Fail> {
        let h = self.ends();
        let nested = Nested::enter();
        loop {
            // SYNC: Acquire pairs with the AcqRel tail CAS in `advance`.
            let tw = h.tail.load(Ordering::Acquire);
            if tw & CLOSED_BIT != 0 {
                return Err(Fail::Closed);
            }
            let Some(a) = self.announce(tw, nested.outer) else {
                // The head is never past the tail: unless the tail moved meanwhile, it is forged.
                if h.tail.load(Ordering::Acquire) == tw {
                    return Err(Fail::Corrupt);
                }
                continue;
            };
            let ring = self.link(tw)?.ok_or(Fail::Corrupt)?;
            match ring.put_exact(who(&ring), max, &mut write) {
                Ok(n) => return Ok(n),
                Err(TryError::WouldBlock) | Err(TryError::Closed) | Err(TryError::Pending) => {
                    self.advance(tw, &ring, &a)?;
                }
                Err(TryError::Corrupt) => return Err(Fail::Corrupt),
            }
        }
    }

    /// Gets up to `max` items, waiting until `wait`'s deadline (`None`: not at all;
    /// `Some(None)`: for ever) while the queue is empty.
    pub(crate) fn get(
        &self,
        who: Option<crate::ring::Claimant<'_>>,
        max: usize,
        wait: Option<Option<Instant>>,
        mut read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, Fail> {
        self.at_head(wait, |ring| match wait {
            None => ring.get_now(who, max, &mut read).map_err(Fail::from),
            Some(d) => ring.get_batch(who, max, d, &mut read).map_err(Fail::from),
        })
    }

    /// Waits until `deadline` (`None`: for ever) until a message is there to take, without
    /// taking it (see [`Ring::wait_ready`]): `Ok(1)` then.
    pub(crate) fn wait_ready(
        &self,
        who: Option<crate::ring::Claimant<'_>>,
        deadline: Option<Instant>,
    ) -> Result<usize, Fail> {
        self.at_head(Some(deadline), |ring| {
            ring.wait_ready(who, deadline).map_err(Fail::from)
        })
    }

    /// A get of what is published at the head now, reading only the head and its slot (see
    /// `RingHandle::get_look`), moving past drained, sealed links as a get does.
    pub(crate) fn get_look(
        &self,
        who: Option<crate::ring::Claimant<'_>>,
        max: usize,
        mut read: impl FnMut(usize, &[u8]),
    ) -> Result<usize, Fail> {
        self.at_head(None, |ring| {
            ring.get_look(who, max, &mut read).map_err(Fail::from)
        })
    }

    /// Runs `op` (a get, or a wait for something to get, until `wait`'s deadline) on the head
    /// link, announced; moves past drained, sealed links (retiring and freeing them, or helping
    /// the producer that sealed one install the next) until `op` has an answer there.
    fn at_head(
        &self,
        wait: Option<Option<Instant>>,
        mut op: impl FnMut(&LinkRing<'_, M>) -> Result<usize, Fail>,
    ) -> Result<usize, Fail> {
        let h = self.ends();
        let nested = Nested::enter();
        loop {
            let c = h.head.load(Ordering::Acquire);
            let Some(a) = self.announce(c, nested.outer) else {
                continue; // the head moved on
            };
            let ring = self.link(c)?.ok_or(Fail::Corrupt)?;
            ring.set_seen_at(self.seen_at.load(Ordering::Relaxed));
            let r = op(&ring);
            self.seen_at.store(ring.seen_at(), Ordering::Relaxed);
            match r {
                Err(Fail::Closed) => {
                    // Link c is sealed and drained.
                    let tw = h.tail.load(Ordering::Acquire);
                    if c < tw & !CLOSED_BIT {
                        self.retire(c, &ring);
                        drop(a);
                        self.free_retired(0);
                        continue;
                    }
                    if tw & CLOSED_BIT != 0 {
                        // The tail never moves once closed: c is the last link, drained.
                        return Err(Fail::Closed);
                    }
                    // Sealed by a producer that has not moved the tail yet (or died before):
                    // help it. With no room for a new link nothing can be put either: the queue
                    // is empty until room comes back.
                    match self.advance(c, &ring, &a) {
                        Err(Fail::NoSpace) => match wait {
                            None => return Err(Fail::WouldBlock),
                            Some(Some(d)) if Instant::now() >= d => return Err(Fail::Timeout),
                            _ => std::thread::sleep(std::time::Duration::from_millis(1)),
                        },
                        r => r?,
                    }
                }
                r => return r,
            }
        }
    }

    /// Runs `f` on the ring of the tail link (registering a producer, checking producers).
    pub(crate) fn with_tail(&self, f: impl FnOnce(&LinkRing<'_, M>)) {
        let t = self.ends().tail.load(Ordering::Acquire) & !CLOSED_BIT;
        let nested = Nested::enter();
        if let Some(_a) = self.announce(t, nested.outer) {
            if let Ok(Some(r)) = self.link(t) {
                f(&r);
            }
        }
    }

    /// Runs `f` on the ring of each live link, head to tail, while it is announced; with
    /// `announce == false`, without announcing it (see [`Chain::stats`]).
    fn each_link(&self, announce: bool, mut f: impl FnMut(&LinkRing<'_, M>)) {
        let h = self.ends();
        let head = h.head.load(Ordering::Acquire);
        let tail = h.tail.load(Ordering::Acquire) & !CLOSED_BIT;
        let _nested = Nested::enter();
        // At most a table's worth of links can be alive (a forged gap is not walked).
        for c in (head..=tail).take(self.mem.table().len()) {
            // Bare announcements: a snapshot does not take the thread's hazard word.
            let announced = if announce {
                match self.announce(c, false) {
                    Some(a) => Some(a),
                    None => continue,
                }
            } else {
                None
            };
            if let Ok(Some(r)) = self.link(c) {
                f(&r);
            }
            drop(announced);
        }
    }

    /// Messages in the queue (a snapshot).
    pub(crate) fn len(&self) -> u64 {
        let mut n = 0;
        self.each_link(true, |r| n += r.len());
        n
    }

    /// Closes the queue: no put succeeds afterwards; getters drain what was put, then get
    /// `Closed`. Returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        let h = self.ends();
        // SYNC: SeqCst RMW on the tail word: every later tail CAS (a producer moving to a new
        // link) fails, so the link named here is the last; a producer's Acquire load of the
        // tail then sees the bit.
        let prev = h.tail.fetch_or(CLOSED_BIT, Ordering::SeqCst);
        let t = prev & !CLOSED_BIT;
        let _nested = Nested::enter();
        // Seal the last link, waking its blocked getters (they then see the closed tail).
        if let Some(_a) = self.announce(t, false) {
            if let Ok(Some(ring)) = self.link(t) {
                ring.close();
            }
        }
        prev & CLOSED_BIT == 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ends().tail.load(Ordering::Acquire) & CLOSED_BIT != 0
    }

    /// Messages in the queue and its counters for `stats()`: the live links' summed with those of
    /// links behind the head.
    ///
    /// With `announce == false` the links are read without being announced, so the caller
    /// changes nothing in shared memory (an observer that may be killed at any instruction
    /// must not leave a raised `bare` count behind, which would stop link freeing for good).
    /// A link freed meanwhile is then read as whatever its block holds by then: its figures
    /// are a hint, never a fault (the block stays inside the mapping, and every word is an
    /// atomic valid for any bits).
    pub(crate) fn stats(&self, announce: bool) -> (u64, crate::ring::RingStats) {
        let h = self.ends();
        let mut len = 0;
        let mut out = crate::ring::RingStats {
            waiting_getters: 0,
            waiting_putters: 0,
            tombstones: h.meta.tombstones.load(Ordering::Relaxed),
            lost: h.meta.lost.load(Ordering::Relaxed),
            unattributed_claims: 0,
            puts: 0,
            gets: 0,
        };
        self.each_link(announce, |r| {
            let s = r.stats();
            len += r.len();
            out.waiting_getters += s.waiting_getters;
            out.waiting_putters += s.waiting_putters;
            out.tombstones += s.tombstones;
            out.lost += s.lost;
            out.unattributed_claims += s.unattributed_claims;
            // Positions continue from link to link: the furthest link has the totals.
            out.puts = out.puts.max(s.puts);
            out.gets = out.gets.max(s.gets);
        });
        (len, out)
    }

    /// Installs link 0 (at creation, before the chain is shared).
    pub(crate) fn install_first(&self) -> Result<(), HeapError> {
        let off = self.mem.new_link(0, 0, FIRST_CAP, 0)?;
        self.slot(0).store(table_entry(0, off), Ordering::Release);
        self.mem.installed(off);
        Ok(())
    }

    /// The links' liveness source.
    pub(crate) fn live(&self) -> Option<LiveArc> {
        self.live.clone()
    }
}

crate::sync::loom_only! {
    impl<M: ChainMem> Chain<M> {
        /// The chain's memory (for models).
        pub(crate) fn mem(&self) -> &M {
            &self.mem
        }

        /// Links freed so far.
        pub(crate) fn freed(&self) -> u64 {
            self.ends().meta.freed.load(Ordering::Acquire)
        }

        /// The link consumers get from.
        pub(crate) fn head(&self) -> u64 {
            self.ends().head.load(Ordering::Acquire)
        }
    }
}
