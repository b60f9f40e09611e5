//! The heap over a mapped segment: its control block at the header's `heap_offset`, words
//! anywhere in the (growing) mapping, holders judged by the participant table.

use super::*;
use crate::mapping::Inner;

impl Inner {
    /// This segment's heap.
    pub(crate) fn heap(&self) -> Heap<'_, Inner> {
        // SAFETY: `heap_offset` was validated (header and creation) to leave HEAP_HEADER_SIZE
        // bytes inside the mapping, 128-aligned; the control block is atomics only, valid for
        // any bits.
        let hdr = unsafe {
            &*self
                .base()
                .add(self.heap_offset as usize)
                .cast::<HeapHeader>()
        };
        Heap { seg: self, hdr }
    }

    /// The owner word for a block the calling thread holds: its participant record, or
    /// [`UNATTRIBUTED`] if it has none.
    pub(crate) fn holder_tag(self: &std::sync::Arc<Self>) -> u64 {
        match self.participant() {
            Some(p) => {
                // Relaxed: our own record; its owner count changes only when it is taken.
                let inc = (p.claim().waiting.load(Ordering::Relaxed) >> 32) as u32;
                held(self.record_index(&p), inc)
            }
            None => UNATTRIBUTED,
        }
    }
}

impl HeapMem for Inner {
    #[inline]
    fn word(&self, off: u64) -> Result<&AtomicU64, HeapError> {
        let p = self.heap_bytes(off, 8)?;
        if off % 8 != 0 {
            return Err(HeapError::Corrupt);
        }
        // SAFETY: heap_bytes checked the 8 bytes lie in the mapping, which lives as long as
        // `self`; `off` is 8-aligned and the mapping page-aligned; AtomicU64 is valid for any
        // bits.
        Ok(unsafe { &*p.cast::<AtomicU64>() })
    }
    fn holder_gone(&self, rec: u32, inc: u32) -> bool {
        Inner::holder_gone(self, rec, inc)
    }
    fn words(&self, off: u64, n: u64) -> Result<&[AtomicU64], HeapError> {
        let p = self.heap_bytes(off, n.checked_mul(8).ok_or(HeapError::Corrupt)?)?;
        if off % 8 != 0 {
            return Err(HeapError::Corrupt);
        }
        // SAFETY: heap_bytes checked that the n words lie in the mapping, which lives as long as
        // `self`; `off` is 8-aligned; AtomicU64 is valid for any bits.
        Ok(unsafe { core::slice::from_raw_parts(p.cast::<AtomicU64>(), n as usize) })
    }
    fn structure_blocks(&self, obj: u32, each: &mut dyn FnMut(u64)) -> bool {
        Inner::structure_blocks(self, obj, each)
    }
    fn committed(&self) -> u64 {
        // SYNC: Acquire pairs with the Release store in `commit` of an earlier grower (of any
        // process): the file is at least that long.
        self.header().total_size.load(Ordering::Acquire)
    }
    fn max_size(&self) -> u64 {
        self.max_size
    }
    fn lock_token(&self) -> u32 {
        // A record index that does not fit the token, or no record: an owner that can never
        // be proven dead (its crash while holding the lock would stop the heap; size the table
        // for the threads you run, as for claims).
        lock_token_of(self.heap_holder())
    }
    fn token_gone(&self, token: u32) -> bool {
        // A token names record `rec + 1` (see `lock_token_of`; `TOKEN` itself, "no record",
        // never gets here). 0 there, or a record the table does not have, is a token no process
        // wrote: only a forged or corrupt lock word holds one, and no holder stands behind it,
        // so the lock is taken over (and the heap rebuilt) rather than waited on for good.
        let Some(rec) = (token >> TOKEN_INC_BITS)
            .checked_sub(1)
            .filter(|&r| r < self.part_count())
        else {
            return true;
        };
        let mask = (1 << TOKEN_INC_BITS) - 1;
        Inner::holder_gone_masked(self, rec, token & mask, mask)
    }
    fn lock_taken_over(&self, token: u32) {
        // The record still names the dead owner unless it was taken over since (then the pid
        // reads as that of the new owner's process: the log says "pid unknown" instead).
        let rec = (token >> TOKEN_INC_BITS).wrapping_sub(1);
        let pid = (rec < self.part_count())
            .then(|| self.record(rec))
            .filter(|r| (r.claim.waiting.load(Ordering::Relaxed) >> 32) as u32 & ((1 << TOKEN_INC_BITS) - 1) == token & ((1 << TOKEN_INC_BITS) - 1))
            .map_or(0, |r| r.pid.load(Ordering::Relaxed));
        self.recovered(crate::mapping::recovery::Recovery::LockTakenOver {
            what: "the heap lock",
            pid,
        });
    }
    fn commit(&self, from: u64, to: u64) -> Result<(), HeapError> {
        self.map.with_file(|f| crate::os::grow_file(f, from, to))?;
        crate::fault::point("heap-grown-file");
        // SYNC: Release publishes the growth (the file's new pages) to every process that maps
        // more of the segment; pairs with the Acquire loads in `Inner::heap_bytes` and
        // `committed`.
        self.header().total_size.store(to, Ordering::Release);
        Ok(())
    }
}

impl ByteHeap for Inner {
    fn bytes(&self, off: u64, len: u64) -> Result<*mut u8, HeapError> {
        self.heap_bytes(off, len)
    }
}

/// The lock token of a holder `(record, owner count)` ([`HeapMem::lock_token`]).
fn lock_token_of(holder: Option<(u32, u32)>) -> u32 {
    match holder {
        Some((rec, inc)) if rec + 1 < (TOKEN >> TOKEN_INC_BITS) => {
            (rec + 1) << TOKEN_INC_BITS | (inc & ((1 << TOKEN_INC_BITS) - 1))
        }
        _ => TOKEN,
    }
}

impl Heap<'_, Inner> {
    /// Marks the heap lock as left by a dead owner (fuzzing: its next taker rebuilds).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_inconsistent(&self) {
        self.hdr.lock.forge_inconsistent()
    }
}
