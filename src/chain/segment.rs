//! The chain over a mapped segment: its directory region, the participant records' hazard
//! words, and link blocks in the segment's heap.

use super::{Chain, ChainEnds, ChainHeader, ChainMem, LinkHeader};
use crate::heap::HeapError;
use crate::layout::SlotLayout;
use crate::mapping::Inner;
use crate::ring::mem::RawRing;
use crate::ring::{Fail, ABANDONED_HEAD};
use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// An unbounded queue in a mapped segment.
pub(crate) type SegChain = Chain<SegLinks>;

/// Links whose ring memory a thread remembers (see [`ChainMem::cached`]).
const LINK_CACHE: usize = 4;

/// A remembered link: (mapping id, queue, link index, block offset) and its ring memory.
type CachedLink = ((u64, u32, u64, u64), RawRing);

thread_local! {
    /// The links this thread used last (see [`ChainMem::cached`]).
    static LINKS: std::cell::RefCell<Vec<CachedLink>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A chain's memory in a mapped segment.
#[derive(Clone)]
pub(crate) struct SegLinks {
    seg: Arc<Inner>,
    hdr: *const ChainHeader,
    obj: u32,
    layout: SlotLayout,
    /// Whether the queue's slots hold references to long messages in the heap.
    heap_refs: bool,
}

// SAFETY: `hdr` points into the mapping `seg` keeps alive; everything behind it is atomics.
unsafe impl Send for SegLinks {}
// SAFETY: as for Send.
unsafe impl Sync for SegLinks {}

impl SegChain {
    /// # Safety
    ///
    /// `hdr` points to the queue's region (at least [`super::CHAIN_REGION`] bytes, 128-aligned)
    /// inside `seg`'s mapping.
    pub(crate) unsafe fn new(
        seg: Arc<Inner>,
        hdr: *const ChainHeader,
        obj: u32,
        layout: SlotLayout,
        heap_refs: bool,
    ) -> Self {
        let live = seg.link_liveness(obj, heap_refs);
        let mem = SegLinks {
            seg,
            hdr,
            obj,
            layout,
            heap_refs,
        };
        Chain::over(mem, Some(live))
    }
}

impl SegLinks {
    fn hdr(&self) -> &ChainHeader {
        // SAFETY: see `SegChain::new`; the mapping lives as long as `self.seg`.
        unsafe { &*self.hdr }
    }

    fn key(&self, c: u64, off: u64) -> (u64, u32, u64, u64) {
        (self.seg.id, self.obj, c, off)
    }
}

impl ChainMem for SegLinks {
    type Ring = RawRing;

    fn ends(&self) -> &ChainEnds {
        &self.hdr().ends
    }

    fn table(&self) -> &[AtomicU64] {
        &self.hdr().table
    }

    fn layout(&self) -> SlotLayout {
        self.layout
    }

    fn obj(&self) -> u32 {
        self.obj
    }

    fn hazard(&self) -> Option<&AtomicU64> {
        self.seg.participant().map(|p| p.hazard())
    }

    fn hazard_announced(&self, hazard: u64) -> bool {
        self.seg.hazard_announced(hazard)
    }

    fn new_link(&self, index: u64, base: u64, cap: u64, seen: u32) -> Result<u64, HeapError> {
        let me = self.seg.holder_tag();
        super::block::new_link(
            &self.seg.heap(),
            me,
            self.obj,
            self.layout,
            index,
            base,
            cap,
            seen,
        )
    }

    fn view(&self, off: u64) -> Result<(&LinkHeader, RawRing), Fail> {
        super::block::view(&self.seg.heap(), self.layout, off)
    }

    fn cached(&self, c: u64, off: u64) -> Option<RawRing> {
        let key = self.key(c, off);
        LINKS
            .try_with(|l| {
                l.borrow()
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, m)| m.clone())
            })
            .ok()
            .flatten()
    }

    fn remember(&self, c: u64, off: u64, ring: &RawRing) {
        let key = self.key(c, off);
        let _ = LINKS.try_with(|l| {
            let mut l = l.borrow_mut();
            if l.len() >= LINK_CACHE {
                l.remove(0);
            }
            l.push((key, ring.clone()));
        });
    }

    fn installed(&self, off: u64) {
        self.seg.heap().own_by_structure(off);
    }

    fn discard(&self, off: u64) {
        let _ = self.seg.heap().free(off);
    }

    fn abandon(&self, pos: u64, head: &[u8; ABANDONED_HEAD]) {
        if self.heap_refs {
            if let Some((_, block)) = crate::heap::read_ref(head) {
                self.seg.heap().abandon(block, self.obj, pos, true);
            }
        }
    }

    fn release(&self, slot: &AtomicU64, e: u64) {
        self.seg.heap().free_link(slot, e, super::entry_off(e));
    }
}

/// Calls `each` with the heap block of every link in the link table of the unbounded queue
/// whose region is at `base` (its [`KindDef::blocks`](crate::kind::KindDef)).
pub(crate) fn region_blocks(_seg: &Inner, base: *mut u8, each: &mut dyn FnMut(u64)) -> bool {
    // SAFETY: the directory lookup behind `blocks` checked that the region is a chain's
    // (CHAIN_REGION bytes, 128-aligned), inside the mapping; ChainHeader is atomics only.
    let hdr = unsafe { &*base.cast::<ChainHeader>() };
    for s in &hdr.table {
        let e = s.load(Ordering::Acquire);
        if e != 0 {
            each(super::entry_off(e));
        }
    }
    true
}
