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

/// Links a chain can have alive at once (installed and not yet freed).
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
    /// Index of the link producers put to.
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
    /// 1 once `close()` was called.
    pub(crate) closed: AtomicU32,
    /// Operations in flight by threads that announce no hazard (see the module docs).
    pub(crate) bare: AtomicU32,
    /// Links below this index are freed.
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

thread_local! {
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

/// How a thread announced the link it works on (undone on drop for `Bare`).
enum Announced<'a> {
    Hazard,
    Bare(&'a AtomicU32),
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        if let Announced::Bare(b) = self {
            // SYNC: SeqCst, as the raise (see the module docs).
            b.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The process-local view of one unbounded queue.
pub(crate) struct Chain {
    seg: Arc<Inner>,
    hdr: *const ChainHeader,
    obj: u32,
    layout: SlotLayout,
    live: Arc<dyn crate::ring::Liveness + Send + Sync>,
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
            live: self.live.clone(),
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
            live,
            spin: true,
        }
    }

    fn hdr(&self) -> &ChainHeader {
        // SAFETY: see `new`; the mapping lives as long as `self.seg`.
        unsafe { &*self.hdr }
    }

    /// The hazard word value that names link `c` of this queue.
    fn hazard_of(&self, c: u64) -> u64 {
        (self.obj as u64) << 40 | ((c + 1) & ((1 << 40) - 1))
    }

    /// Announces that the calling thread is about to touch link `c` (`outer`: the outermost
    /// chain operation of the thread, which may use its hazard word); `None` if `c` is already
    /// behind the head (it may be freed: look again).
    fn announce(&self, c: u64, outer: bool) -> Option<Announced<'_>> {
        let h = self.hdr();
        let want = self.hazard_of(c);
        let record = if outer { self.seg.participant() } else { None };
        let bare = || {
            // SYNC: SeqCst, as the hazard store.
            h.meta.bare.fetch_add(1, Ordering::SeqCst);
            Announced::Bare(&h.meta.bare)
        };
        let how = match record {
            Some(p) => {
                // Relaxed: our own record.
                let cur = p.hazard().load(Ordering::Relaxed);
                if cur == want {
                    // Announced before and never withdrawn: the link cannot have been freed
                    // since (a freer checks announcements after moving the head).
                    return Some(Announced::Hazard);
                }
                if cur == 0 || cur >> 40 == self.obj as u64 {
                    // SYNC: SeqCst pairs with the freer's SeqCst head RMW and hazard loads.
                    p.hazard().store(want, Ordering::SeqCst);
                    Announced::Hazard
                } else {
                    bare()
                }
            }
            None => bare(),
        };
        // SYNC: SeqCst: after our announcement in the single total order (see the module docs).
        if h.head.load(Ordering::SeqCst) > c {
            return None;
        }
        Some(how)
    }

    /// The ring of link `c`, if installed (`Err(Corrupt)` if the table names a block that is not
    /// a link of this queue).
    fn link(&self, c: u64) -> Result<Option<Ring<RawRing>>, Fail> {
        let h = self.hdr();
        // SYNC: Acquire pairs with the installer's Release CAS: the link's header and ring
        // initialisation are visible.
        let off = h.table[(c % TABLE as u64) as usize].load(Ordering::Acquire);
        if off == 0 {
            return Ok(None);
        }
        let (lh, ring) = self.view(off)?;
        if lh.obj.load(Ordering::Relaxed) != self.obj as u64 {
            return Err(Fail::Corrupt);
        }
        if lh.index.load(Ordering::Relaxed) != c {
            return Ok(None); // an older link not yet freed from this table entry
        }
        Ok(Some(ring))
    }

    /// The header and ring of the link in heap block `off`.
    fn view(&self, off: u64) -> Result<(&LinkHeader, Ring<RawRing>), Fail> {
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
        let mut ring = Ring::new(mem);
        ring.spin = self.spin;
        ring.live = Some(self.live.clone());
        Ok((lh, ring))
    }

    /// Installs link `t + 1` (sealing link `t` first) unless someone did, then moves the tail
    /// past `t`.
    fn advance(&self, t: u64, ring_t: &Ring<RawRing>) -> Result<(), Fail> {
        let h = self.hdr();
        let next = t + 1;
        ring_t.close();
        if self.link(next)?.is_none() {
            let slot = &h.table[(next % TABLE as u64) as usize];
            if slot.load(Ordering::Acquire) != 0 {
                self.free_retired();
                if slot.load(Ordering::Acquire) != 0 {
                    // TABLE links alive at once (some announced by a stalled thread).
                    return Err(Fail::NoSpace);
                }
            }
            // SYNC: Acquire: the sealed tail of link t (its final position) is visible.
            let base = ring_t.mem.header().tail.load(Ordering::Acquire) & !CLOSED_BIT;
            let cap = next_cap(ring_t.capacity(), self.layout);
            let off = self.new_link(next, base, cap).map_err(|e| match e {
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

    /// Allocates and initialises link `index` (positions from `base`, `cap` slots).
    fn new_link(&self, index: u64, base: u64, cap: u64) -> Result<u64, HeapError> {
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
        }
        Ok(off)
    }

    /// Moves the head past drained link `h` and frees what may be freed.
    fn retire(&self, h: u64, ring: &Ring<RawRing>) {
        let hdr = self.hdr();
        let c = &ring.mem.header().counters;
        // SYNC: SeqCst: orders the head move before the freer's look at announcements (the
        // module docs' argument).
        if hdr
            .head
            .compare_exchange(h, h + 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            hdr.meta
                .tombstones
                .fetch_add(c.tombstones.load(Ordering::Relaxed), Ordering::Relaxed);
            hdr.meta
                .lost
                .fetch_add(c.lost.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.free_retired();
    }

    /// Frees links behind the head, in order, while nobody live announces them.
    fn free_retired(&self) {
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
            if hdr.meta.bare.load(Ordering::SeqCst) != 0
                || self.seg.hazard_announced(self.hazard_of(f))
            {
                return;
            }
            let slot = &hdr.table[(f % TABLE as u64) as usize];
            let off = slot.load(Ordering::Acquire);
            if hdr
                .meta
                .freed
                .compare_exchange(f, f + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // We own freeing link f now (one CAS of `freed` per link).
            if off != 0
                && slot
                    .compare_exchange(off, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                let _ = self.seg.heap().free(off);
            }
        }
    }

    /// Puts up to `max` items (never waits for room: a full link is sealed and the next one
    /// used). `who` gives the claimant for a link's ring (registering the caller as its producer).
    /// `NoSpace` when the heap has no room for a new link.
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
            let t = h.tail.load(Ordering::Acquire);
            let Some(_a) = self.announce(t, nested.outer) else {
                continue;
            };
            let ring = self.link(t)?.ok_or(Fail::Corrupt)?;
            match ring.put_now(who(&ring), max, &mut write) {
                Ok(n) => return Ok(n),
                Err(TryError::WouldBlock) | Err(TryError::Closed) | Err(TryError::Pending) => {
                    // SYNC: Acquire pairs with the SeqCst swap in `close`.
                    if h.meta.closed.load(Ordering::Acquire) != 0 {
                        return Err(Fail::Closed);
                    }
                    self.advance(t, &ring)?;
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
                continue;
            };
            // Links behind us that a retirer could not free yet (our own announcement of the
            // link we just left may have pinned the last one). Relaxed: a hint; `free_retired`
            // decides with its own orderings.
            if h.meta.freed.load(Ordering::Relaxed) < c {
                self.free_retired();
            }
            let ring = self.link(c)?.ok_or(Fail::Corrupt)?;
            let r = match wait {
                None => ring.get_now(who, max, &mut read).map_err(Fail::from),
                Some(d) => ring.get_batch(who, max, d, &mut read).map_err(Fail::from),
            };
            match r {
                Err(Fail::Closed) => {
                    // Link c is sealed and drained.
                    let t = h.tail.load(Ordering::Acquire);
                    if c < t {
                        self.retire(c, &ring);
                        drop(a);
                        continue;
                    }
                    if h.meta.closed.load(Ordering::Acquire) != 0 {
                        return Err(Fail::Closed);
                    }
                    // Sealed by a producer that has not moved the tail yet (or died before):
                    // help it. With no room for a new link nothing can be put either: the queue
                    // is empty until room comes back.
                    match self.advance(c, &ring) {
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
        let t = self.hdr().tail.load(Ordering::Acquire);
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

    /// The rings of the live links, head to tail, each looked at under an announcement.
    fn each_link(&self, mut f: impl FnMut(&Ring<RawRing>)) {
        let h = self.hdr();
        let head = h.head.load(Ordering::Acquire);
        let tail = h.tail.load(Ordering::Acquire);
        let nested = Nested::enter();
        // At most a table's worth of links can be alive (a forged gap is not walked).
        for c in (head..=tail).take(TABLE) {
            // Bare announcements: a snapshot must not move the thread's hazard word.
            let _ = nested.outer;
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
        // SYNC: SeqCst: before the seal of the tail link below; pairs with producers' Acquire
        // loads after a failed put.
        let first = h.meta.closed.swap(1, Ordering::SeqCst) == 0;
        loop {
            let t = h.tail.load(Ordering::Acquire);
            if let Some(_a) = self.announce(t, false) {
                if let Ok(Some(ring)) = self.link(t) {
                    ring.close();
                }
            }
            if h.tail.load(Ordering::Acquire) == t {
                return first;
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.hdr().meta.closed.load(Ordering::Acquire) != 0
    }

    /// Tombstones and lost messages of links behind the head, and the live links' rings.
    pub(crate) fn totals(&self) -> (u64, u64, Vec<Ring<RawRing>>) {
        let h = self.hdr();
        let mut rings = Vec::new();
        self.each_link(|r| {
            let mut c = Ring::new(r.mem.clone());
            c.live = r.live.clone();
            rings.push(c);
        });
        (
            h.meta.tombstones.load(Ordering::Relaxed),
            h.meta.lost.load(Ordering::Relaxed),
            rings,
        )
    }

    /// Installs link 0 (at creation, before the segment is published).
    pub(crate) fn install_first(&self) -> Result<(), HeapError> {
        let off = self.new_link(0, 0, FIRST_CAP)?;
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

impl Inner {
    /// Counts one message of queue `obj` (directory index + 1) lost: a consumer died holding a
    /// long message it had taken out of its slot.
    pub(crate) fn count_lost(&self, obj: u32) {
        if let Some(base) = self.chain_region(obj) {
            // SAFETY: as in `link_installed`.
            let hdr = unsafe { &*base.cast::<ChainHeader>() };
            hdr.meta.lost.fetch_add(1, Ordering::Relaxed);
        } else if let Some(ring) = self.ring_of_obj(obj) {
            ring.mem
                .header()
                .counters
                .lost
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
