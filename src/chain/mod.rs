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
//! names `(queue, c)` (SeqCst), and then it checks that `c` is not behind the chain's head
//! (SeqCst). The announcement stays until the thread touches another link of the same queue, so
//! a thread that keeps working on one link pays one Relaxed load per operation. A thread without
//! a record, one whose hazard word names another queue, or one inside another chain operation's
//! closure counts itself in the chain's `bare` count around its operation instead. A link behind
//! the head is freed only once no live record announces it and `bare` is 0: the SeqCst order makes
//! either the announcer see the new head (and not touch the link) or the freer see the
//! announcement. A dead process's announcement is ignored (dead needs proof, as everywhere); a
//! record-less thread killed inside an operation leaves `bare` raised, which stops link frees on
//! that queue (a leak, never a use-after-free: the degraded mode of a full participant table).

use crate::error::HeapError;
use crate::layout::{align_up, CachePadded, SlotLayout, CLOSED_BIT};
use crate::mapping::Inner;
use crate::ring::mem::{ring_region_size, RawRing};
use crate::ring::{Filling, Ring, RingMem, TryError};
use crate::ring_handle::Fail;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Links a chain can have alive at once (installed and not yet freed): with links of at most
/// 1 MiB of slots, about 1 GiB of slots (a queue holds at most that, below its segment's
/// `max_size`).
pub(crate) const TABLE: usize = 1024;
/// Slots of the first link.
const FIRST_CAP: u64 = 1024;
/// Links stop growing once their slots take this many bytes.
const LINK_BYTES: u64 = 1 << 20;
/// Bytes of a link's header, before its ring.
const LINK_HEADER: u64 = 128;

/// The shared part of an unbounded queue: its directory region.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ChainHeader {
    /// Index of the link producers put to; bit 63 ([`CLOSED_BIT`]) once the queue is closed. The
    /// tail moves only by CAS from a value without the bit, so once closed it never moves again:
    /// the link it names is the last one.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// Index of the link consumers get from.
    pub(crate) head: CachePadded<AtomicU64>,
    pub(crate) meta: CachePadded<ChainMeta>,
    /// Heap block offset of link `c` at `c % TABLE` (0: none).
    pub(crate) table: [AtomicU64; TABLE],
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

/// Bytes of an unbounded queue's directory region.
pub(crate) const CHAIN_REGION: u64 = core::mem::size_of::<ChainHeader>() as u64;

/// A link's header, at the 128-aligned start of its heap block's payload.
#[repr(C)]
struct LinkHeader {
    /// The link's index in its chain.
    index: AtomicU64,
    /// Its first position.
    base: AtomicU64,
    /// Its slots.
    cap: AtomicU64,
    /// The queue (directory index + 1).
    obj: AtomicU64,
}

use crate::heap::LINK_MARK;

/// Capacity of the link after one of `cap` slots.
fn next_cap(cap: u64, layout: SlotLayout) -> u64 {
    let max = (LINK_BYTES / layout.stride.max(1)).max(FIRST_CAP);
    cap.saturating_mul(2).min(max)
}

/// Links whose ring memory a thread remembers (see [`Chain::link`]).
const LINK_CACHE: usize = 4;

/// A remembered link: (mapping id, queue, link index, block offset) and its ring memory.
type CachedLink = ((u64, u32, u64, u64), RawRing);

thread_local! {
    /// The links this thread used last (see [`Chain::link`]).
    static LINKS: std::cell::RefCell<Vec<CachedLink>> = const { std::cell::RefCell::new(Vec::new()) };

    /// Depth of chain operations on this thread: an operation inside another's closure (a nested
    /// call) must not move the outer one's announcement, so it counts itself as bare instead.
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One chain operation in progress on this thread.
struct Nested {
    /// Whether it is the outermost one (which may use the thread's hazard word).
    outer: bool,
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
            // SYNC: SeqCst, as the raise (see the module docs).
            Announced::Bare(b) => {
                b.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// The process-local view of one unbounded queue.
pub(crate) struct Chain {
    seg: Arc<Inner>,
    hdr: *const ChainHeader,
    obj: u32,
    layout: SlotLayout,
    heap_refs: bool,
    live: Arc<dyn crate::ring::Liveness + Send + Sync>,
    /// The disconnect check's last verdict, carried from one link view to the next (the views
    /// are made per operation; without it every blocking get would scan the participants again).
    seen_at: Arc<crate::sync::local::AtomicU64>,
    pub(crate) spin: bool,
}

// SAFETY: `hdr` points into the mapping `seg` keeps alive; everything behind it is atomics.
unsafe impl Send for Chain {}
// SAFETY: as for Send.
unsafe impl Sync for Chain {}

impl Clone for Chain {
    fn clone(&self) -> Self {
        Self {
            seg: self.seg.clone(),
            hdr: self.hdr,
            obj: self.obj,
            layout: self.layout,
            heap_refs: self.heap_refs,
            live: self.live.clone(),
            seen_at: self.seen_at.clone(),
            spin: self.spin,
        }
    }
}

impl Chain {
    /// # Safety
    ///
    /// `hdr` points to the queue's region (at least [`CHAIN_REGION`] bytes, 128-aligned) inside
    /// `seg`'s mapping.
    pub(crate) unsafe fn new(
        seg: Arc<Inner>,
        hdr: *const ChainHeader,
        obj: u32,
        layout: SlotLayout,
        heap_refs: bool,
    ) -> Self {
        let live = seg.link_liveness(obj, heap_refs);
        Self {
            seg,
            hdr,
            obj,
            layout,
            heap_refs,
            live,
            seen_at: Arc::new(crate::sync::local::AtomicU64::new(u64::MAX)),
            spin: true,
        }
    }

    fn hdr(&self) -> &ChainHeader {
        // SAFETY: see `new`; the mapping lives as long as `self.seg`.
        unsafe { &*self.hdr }
    }

    /// The hazard word value that names link `c` of this queue.
    fn hazard_of(&self, c: u64) -> u64 {
        (self.obj as u64) << 40 | (c.wrapping_add(1) & ((1 << 40) - 1))
    }

    /// Announces that the calling thread is about to touch link `c` (`outer`: the outermost
    /// chain operation of the thread, which may use its hazard word); `None` if `c` is already
    /// behind the head (it may be freed: look again).
    fn announce(&self, c: u64, outer: bool) -> Option<Announced<'_>> {
        let h = self.hdr();
        let record = if outer { self.seg.participant() } else { None };
        let how = match record {
            // Relaxed: our own record; 0 outside chain operations (withdrawn on drop).
            Some(p) if p.hazard().load(Ordering::Relaxed) == 0 => {
                // SYNC: SeqCst pairs with the freer's SeqCst head CAS and hazard loads.
                p.hazard().store(self.hazard_of(c), Ordering::SeqCst);
                Announced::Hazard(p.hazard())
            }
            _ => {
                // SYNC: SeqCst, as the hazard store.
                h.meta.bare.fetch_add(1, Ordering::SeqCst);
                Announced::Bare(&h.meta.bare)
            }
        };
        // SYNC: SeqCst: after our announcement in the single total order (see the module docs).
        if h.head.load(Ordering::SeqCst) > c {
            return None; // dropping `how` withdraws it
        }
        Some(how)
    }

    /// The ring of link `c`, if installed (`Err(Corrupt)` if the table names a block that is not
    /// a link of this queue).
    ///
    /// Call only while link `c` is announced. Its ring memory is remembered per thread (keyed
    /// by mapping, queue, link and table entry), so an operation on the link used last skips
    /// the link's validation: while `c` is announced it cannot be freed, so its entry still
    /// names the same block.
    fn link(&self, c: u64) -> Result<Option<Ring<RawRing>>, Fail> {
        let h = self.hdr();
        // SYNC: Acquire pairs with the installer's Release CAS: the link's header and ring
        // initialisation are visible.
        let off = h.table[(c % TABLE as u64) as usize].load(Ordering::Acquire);
        if off == 0 {
            return Ok(None);
        }
        let key = (self.seg.id, self.obj, c, off);
        let cached = LINKS
            .try_with(|l| {
                l.borrow()
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, m)| m.clone())
            })
            .ok()
            .flatten();
        let mem = match cached {
            Some(mem) => mem,
            None => {
                let (lh, mem) = self.view(off)?;
                if lh.obj.load(Ordering::Relaxed) != self.obj as u64 {
                    return Err(Fail::Corrupt);
                }
                if lh.index.load(Ordering::Relaxed) != c {
                    return Ok(None); // an older link not yet freed from this table entry
                }
                let _ = LINKS.try_with(|l| {
                    let mut l = l.borrow_mut();
                    if l.len() >= LINK_CACHE {
                        l.remove(0);
                    }
                    l.push((key, mem.clone()));
                });
                mem
            }
        };
        let mut ring = Ring::new(mem);
        ring.spin = self.spin;
        ring.live = Some(self.live.clone());
        Ok(Some(ring))
    }

    /// The header and ring memory of the link in heap block `off`.
    fn view(&self, off: u64) -> Result<(&LinkHeader, RawRing), Fail> {
        let heap = self.seg.heap();
        let corrupt = |_| Fail::Corrupt;
        let p = heap.payload(off, 128 + LINK_HEADER).map_err(corrupt)?;
        let start = align_up(p as u64, 128).ok_or(Fail::Corrupt)? - p as u64;
        // SAFETY: `payload` checked that the first 128 + LINK_HEADER payload bytes lie in the
        // mapping; start < 128, so the 128-aligned LinkHeader at `start` does too. LinkHeader is
        // atomics only, valid for any bits; the mapping lives as long as `self.seg`.
        let lh = unsafe { &*p.add(start as usize).cast::<LinkHeader>() };
        let cap = lh.cap.load(Ordering::Relaxed);
        let size = ring_region_size(cap, self.layout).ok_or(Fail::Corrupt)?;
        let ring_at = start + LINK_HEADER;
        let total = ring_at.checked_add(size).ok_or(Fail::Corrupt)?;
        let p = heap.payload(off, total).map_err(corrupt)?;
        // SAFETY: `payload` checked that [0, total) of the payload lies in the mapping, which
        // `self.seg` keeps alive for as long as the ring is used (its users hold `self`);
        // RawRing::new checks that the ring fits its region.
        let mem = unsafe { RawRing::new(p.add(ring_at as usize), size, cap, self.layout) }
            .ok_or(Fail::Corrupt)?;
        Ok((lh, mem))
    }

    /// Installs link `t + 1` (sealing link `t` first) unless someone did, then moves the tail
    /// past `t` (which fails, harmlessly, once the queue is closed). `a`: the caller's
    /// announcement (of link `t`).
    fn advance(&self, t: u64, ring_t: &Ring<RawRing>, a: &Announced<'_>) -> Result<(), Fail> {
        let h = self.hdr();
        let next = t.checked_add(1).ok_or(Fail::Corrupt)?;
        ring_t.close();
        if self.link(next)?.is_none() {
            let slot = &h.table[(next % TABLE as u64) as usize];
            if slot.load(Ordering::Acquire) != 0 {
                self.free_retired(a.bare());
                if slot.load(Ordering::Acquire) != 0 {
                    // TABLE links alive at once (some announced by a stalled thread).
                    return Err(Fail::NoSpace);
                }
            }
            // SYNC: Acquire: the sealed tail of link t (its final position) is visible.
            let base = ring_t.mem.header().tail.load(Ordering::Acquire) & !CLOSED_BIT;
            let cap = next_cap(ring_t.capacity(), self.layout);
            // The producers link t has seen carry over (a getter on the new link must not take
            // a live producer that put only to earlier links for gone).
            let seen = ring_t
                .mem
                .header()
                .counters
                .producers
                .load(Ordering::Acquire);
            let off = match self.new_link(next, base, cap, seen) {
                Err(HeapError::NoSpace { .. }) => {
                    // Links behind the head may be holding the room: free them and try once more.
                    self.free_retired(a.bare());
                    self.new_link(next, base, cap, seen)
                }
                r => r,
            }
            .map_err(|e| match e {
                HeapError::NoSpace { .. } => Fail::NoSpace,
                _ => Fail::Corrupt,
            })?;
            // SYNC: Release publishes the link's header and ring; pairs with `link`'s Acquire.
            if slot
                .compare_exchange(0, off, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                let _ = self.seg.heap().free(off);
            } else {
                crate::fault::point("chain-installed");
                self.seg.heap().own_by_structure(off);
            }
        }
        // SYNC: AcqRel: the link installed above (or seen installed) happens before any thread
        // that reads the new tail and then the table.
        let _ = h
            .tail
            .compare_exchange(t, next, Ordering::AcqRel, Ordering::Relaxed);
        Ok(())
    }

    /// Allocates and initialises link `index` (positions from `base`, `cap` slots, producers
    /// seen `seen`).
    fn new_link(&self, index: u64, base: u64, cap: u64, seen: u32) -> Result<u64, HeapError> {
        let size = ring_region_size(cap, self.layout).ok_or(HeapError::Corrupt)?;
        let len = 127 + LINK_HEADER + size;
        let heap = self.seg.heap();
        let me = self.seg.holder_tag();
        let off = heap.alloc(len, me)?;
        heap.mark(off, LINK_MARK | self.obj as u64)?;
        let p = heap.payload(off, len)?;
        let start = (align_up(p as u64, 128).ok_or(HeapError::Corrupt)? - p as u64) as usize;
        // SAFETY: the block is ours (just allocated, nobody else knows it), with `len` payload
        // bytes, so the header at the 128-aligned `start` < 128 and the ring after it fit; zero
        // bytes are a valid LinkHeader and ring header.
        unsafe {
            let lh_ptr = p.add(start);
            core::ptr::write_bytes(lh_ptr, 0, (LINK_HEADER + size) as usize);
            let lh = &*lh_ptr.cast::<LinkHeader>();
            lh.index.store(index, Ordering::Relaxed);
            lh.base.store(base, Ordering::Relaxed);
            lh.cap.store(cap, Ordering::Relaxed);
            lh.obj.store(self.obj as u64, Ordering::Relaxed);
            let mem = RawRing::new(lh_ptr.add(LINK_HEADER as usize), size, cap, self.layout)
                .ok_or(HeapError::Corrupt)?;
            mem.init_at(base);
            mem.header()
                .counters
                .producers
                .store(seen, Ordering::Relaxed);
        }
        Ok(off)
    }

    /// Moves the head past drained link `h` (the caller still announces it).
    fn retire(&self, h: u64, ring: &Ring<RawRing>) {
        let hdr = self.hdr();
        let c = &ring.mem.header().counters;
        // SYNC: SeqCst: orders the head move before the freer's look at announcements (the
        // module docs' argument).
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
        let hdr = self.hdr();
        // At most a table's worth per call (a forged `freed` far behind the head must not keep
        // a caller here).
        for _ in 0..TABLE {
            let f = hdr.meta.freed.load(Ordering::Acquire);
            // SYNC: SeqCst (see `retire`).
            if f >= hdr.head.load(Ordering::SeqCst) {
                return;
            }
            // SYNC: SeqCst pairs with the raise in `announce`.
            if hdr.meta.bare.load(Ordering::SeqCst) > mine
                || self.seg.hazard_announced(self.hazard_of(f))
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
        let hdr = self.hdr();
        let slot = &hdr.table[(f % TABLE as u64) as usize];
        let off = slot.load(Ordering::Acquire);
        let Ok((lh, mem)) = (if off == 0 {
            Err(Fail::Corrupt)
        } else {
            self.view(off)
        }) else {
            return;
        };
        let ring = Ring::new(mem);
        if lh.index.load(Ordering::Relaxed) != f {
            return;
        }
        let held = ring.held_by_dead_consumers();
        if !held.is_empty() {
            hdr.meta
                .lost
                .fetch_add(held.len() as u64, Ordering::Relaxed);
        }
        if self.heap_refs {
            for (pos, head) in &held {
                if let Some((_, block)) = crate::heap::read_ref(head) {
                    self.seg.heap().abandon(block, self.obj, *pos, true);
                }
            }
        }
        self.seg.heap().free_link(slot, off);
    }

    /// Puts up to `max` items (never waits for room: a full link is sealed and the next one
    /// used, also when a consumer still holds the slot needed). `who` gives the claimant for a
    /// link's ring (registering the caller as its producer). `NoSpace` when the heap has no room
    /// for a new link.
    pub(crate) fn put<'w>(
        &self,
        who: impl Fn(&Ring<RawRing>) -> Option<crate::ring::Claimant<'w>>,
        max: usize,
        mut write: impl FnMut(Filling, &mut [u8]),
    ) -> Result<usize, Fail> {
        let h = self.hdr();
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
        let h = self.hdr();
        let nested = Nested::enter();
        loop {
            let c = h.head.load(Ordering::Acquire);
            let Some(a) = self.announce(c, nested.outer) else {
                continue; // the head moved on
            };
            let ring = self.link(c)?.ok_or(Fail::Corrupt)?;
            ring.set_seen_at(self.seen_at.load(Ordering::Relaxed));
            let r = match wait {
                None => ring.get_now(who, max, &mut read).map_err(Fail::from),
                Some(d) => ring.get_batch(who, max, d, &mut read).map_err(Fail::from),
            };
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
    pub(crate) fn with_tail(&self, f: impl FnOnce(&Ring<RawRing>)) {
        let t = self.hdr().tail.load(Ordering::Acquire) & !CLOSED_BIT;
        let nested = Nested::enter();
        if let Some(_a) = self.announce(t, nested.outer) {
            if let Ok(Some(r)) = self.link(t) {
                f(&r);
            }
        }
    }

    /// The links' liveness source.
    pub(crate) fn live(&self) -> Arc<dyn crate::ring::Liveness + Send + Sync> {
        self.live.clone()
    }

    /// Runs `f` on the ring of each live link, head to tail, while it is announced.
    fn each_link(&self, mut f: impl FnMut(&Ring<RawRing>)) {
        let h = self.hdr();
        let head = h.head.load(Ordering::Acquire);
        let tail = h.tail.load(Ordering::Acquire) & !CLOSED_BIT;
        let _nested = Nested::enter();
        // At most a table's worth of links can be alive (a forged gap is not walked).
        for c in (head..=tail).take(TABLE) {
            // Bare announcements: a snapshot does not take the thread's hazard word.
            if let Some(_a) = self.announce(c, false) {
                if let Ok(Some(r)) = self.link(c) {
                    f(&r);
                }
            }
        }
    }

    /// Messages in the queue (a snapshot).
    pub(crate) fn len(&self) -> u64 {
        let mut n = 0;
        self.each_link(|r| n += r.len());
        n
    }

    /// Closes the queue: no put succeeds afterwards; getters drain what was put, then get
    /// `Closed`. Returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        let h = self.hdr();
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
        self.hdr().tail.load(Ordering::Acquire) & CLOSED_BIT != 0
    }

    /// Counters for `stats()`: the live links' summed with those of links behind the head.
    pub(crate) fn stats(&self) -> crate::ring::RingStats {
        let h = self.hdr();
        let mut out = crate::ring::RingStats {
            waiting_getters: 0,
            waiting_putters: 0,
            tombstones: h.meta.tombstones.load(Ordering::Relaxed),
            lost: h.meta.lost.load(Ordering::Relaxed),
            unattributed_claims: 0,
        };
        self.each_link(|r| {
            let s = r.stats();
            out.waiting_getters += s.waiting_getters;
            out.waiting_putters += s.waiting_putters;
            out.tombstones += s.tombstones;
            out.lost += s.lost;
            out.unattributed_claims += s.unattributed_claims;
        });
        out
    }

    /// Installs link 0 (at creation, before the segment is published).
    pub(crate) fn install_first(&self) -> Result<(), HeapError> {
        let off = self.new_link(0, 0, FIRST_CAP, 0)?;
        self.hdr().table[0].store(off, Ordering::Release);
        self.seg.heap().own_by_structure(off);
        Ok(())
    }
}

impl Inner {
    /// Whether heap block `off` is installed in the link table of unbounded queue `obj`
    /// (directory index + 1).
    pub(crate) fn link_installed(&self, obj: u32, off: u64) -> bool {
        let Some(base) = self.chain_region(obj) else {
            return false;
        };
        // SAFETY: `chain_region` checked that the region is a chain's (CHAIN_REGION bytes,
        // 128-aligned), inside the mapping; ChainHeader is atomics only.
        let hdr = unsafe { &*base.cast::<ChainHeader>() };
        hdr.table.iter().any(|s| s.load(Ordering::Acquire) == off)
    }
}
