//! A link in a heap block: its [`LinkHeader`] at the payload's first 128-aligned byte, its ring
//! right after. The one place that layout is written, for every heap with addressable bytes
//! (a segment's, or a plain buffer's in unit tests and under miri).

use super::{LinkHeader, LINK_HEADER};
use crate::heap::{ByteHeap, Heap, HeapError, STRUCTURE_MARK};
use crate::layout::{align_up, SlotLayout};
use crate::ring::mem::{ring_region_size, RawRing};
use crate::ring::{Fail, RingMem};
use crate::sync::Ordering;

/// Allocates link `index` of queue `obj` in `heap`, held by `me` until it is installed: a ring of
/// `cap` slots of `layout` whose positions start at `base`, with `seen` producers seen. Returns
/// its block offset.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_link<M: ByteHeap>(
    heap: &Heap<'_, M>,
    me: u64,
    obj: u32,
    layout: SlotLayout,
    index: u64,
    base: u64,
    cap: u64,
    seen: u32,
) -> Result<u64, HeapError> {
    let size = ring_region_size(cap, layout).ok_or(HeapError::Corrupt)?;
    let len = 127 + LINK_HEADER + size;
    let off = heap.alloc(len, me)?;
    heap.mark(off, STRUCTURE_MARK | obj as u64)?;
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
        lh.obj.store(obj as u64, Ordering::Relaxed);
        let mem = RawRing::new(lh_ptr.add(LINK_HEADER as usize), size, cap, layout)
            .ok_or(HeapError::Corrupt)?;
        mem.init_at(base);
        mem.header()
            .counters
            .producers
            .store(seen, Ordering::Relaxed);
    }
    Ok(off)
}

/// The header and ring of the link in block `off` of `heap` (`Corrupt` if it cannot be one: every
/// size it reads is checked against the heap's bounds, whatever the block holds).
pub(crate) fn view<'a, M: ByteHeap>(
    heap: &Heap<'a, M>,
    layout: SlotLayout,
    off: u64,
) -> Result<(&'a LinkHeader, RawRing), Fail> {
    let corrupt = |_| Fail::Corrupt;
    let p = heap.payload(off, 128 + LINK_HEADER).map_err(corrupt)?;
    let start = align_up(p as u64, 128).ok_or(Fail::Corrupt)? - p as u64;
    // SAFETY: `payload` checked that the first 128 + LINK_HEADER payload bytes lie in memory
    // that lives for 'a; start < 128, so the 128-aligned LinkHeader at `start` does too.
    // LinkHeader is atomics only, valid for any bits.
    let lh = unsafe { &*p.add(start as usize).cast::<LinkHeader>() };
    let cap = lh.cap.load(Ordering::Relaxed);
    let size = ring_region_size(cap, layout).ok_or(Fail::Corrupt)?;
    let ring_at = start + LINK_HEADER;
    let total = ring_at.checked_add(size).ok_or(Fail::Corrupt)?;
    let p = heap.payload(off, total).map_err(corrupt)?;
    // SAFETY: `payload` checked that [0, total) of the payload lies in memory that lives for 'a,
    // as long as the ring's users hold what keeps the heap alive; RawRing::new checks that the
    // ring fits its region.
    let mem = unsafe { RawRing::new(p.add(ring_at as usize), size, cap, layout) }
        .ok_or(Fail::Corrupt)?;
    Ok((lh, mem))
}
