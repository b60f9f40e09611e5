//! Memories a [`Ring`](crate::ring::Ring) runs over: raw slot arrays (inside a segment or an aligned
//! heap buffer) natively, plain loom objects under the model checker.

crate::sync::loom_only! {
    pub(crate) use model::*;
}

crate::sync::native_only! {
pub(crate) use native::*;

mod native {
    use crate::layout::{align_up, RingHeader, SlotLayout, Stamp};
    use crate::ring::RingMem;
    use crate::sync::{AtomicU64, Ordering};
    use core::ptr::NonNull;

    /// Bytes from the start of a ring region to its first slot, for slots aligned to `align`.
    fn slots_offset(align: u64) -> Option<u64> {
        align_up(core::mem::size_of::<RingHeader>() as u64, align)
    }

    /// Size of a ring region: header, then `cap` slots.
    pub(crate) fn ring_region_size(cap: u64, layout: SlotLayout) -> Option<u64> {
        slots_offset(layout.align)?.checked_add(cap.checked_mul(layout.stride)?)
    }

    /// A ring over raw memory: a [`RingHeader`] followed by `cap` slots of `layout`.
    #[derive(Debug, Clone)]
    pub(crate) struct RawRing {
        hdr: NonNull<RingHeader>,
        slots: NonNull<u8>,
        layout: SlotLayout,
        /// Non-zero, so that the compiler drops the division-by-zero check of `pos % cap` on the
        /// fast path (a load of this field tells it so).
        cap: core::num::NonZeroU64,
    }

    // SAFETY: RawRing only hands out shared references to atomics and payload access guarded by the
    // slot protocol; the memory it points to is shared by design (see `RawRing::new`).
    unsafe impl Send for RawRing {}
    // SAFETY: as above.
    unsafe impl Sync for RawRing {}

    impl RawRing {
        /// Views `region_len` bytes at `base` as a ring of `cap` slots of `layout`.
        ///
        /// Returns `None` if the parameters do not fit the region (checked with overflow checks),
        /// if `cap` is 0, or if `base` is not aligned to 128.
        ///
        /// # Safety
        ///
        /// `base..base + region_len` must be readable and writable for as long as the returned
        /// value (and anything derived from it) is used, and every other user of that memory must
        /// follow the ring protocol.
        pub(crate) unsafe fn new(
            base: *mut u8,
            region_len: u64,
            cap: u64,
            layout: SlotLayout,
        ) -> Option<Self> {
            if cap == 0 || layout.stride == 0 || base as usize % 128 != 0 {
                return None;
            }
            if !layout.align.is_power_of_two()
                || layout.stride % layout.align != 0
                || layout.align > 128
            {
                return None;
            }
            if layout.payload_off.checked_add(layout.payload_len)? > layout.stride
                || layout.payload_off < 8
            {
                return None;
            }
            let need = ring_region_size(cap, layout)?;
            if need > region_len {
                return None;
            }
            let off = slots_offset(layout.align)?;
            Some(Self {
                hdr: NonNull::new(base.cast())?,
                // SAFETY: off < need <= region_len, so the pointer stays inside the region.
                slots: NonNull::new(unsafe { base.add(off as usize) })?,
                layout,
                cap: core::num::NonZeroU64::new(cap)?,
            })
        }

        /// Writes the initial stamps (`i << 2 | FREE` for slot `i`). The header must already be
        /// zero (a fresh mapping or zeroed allocation), which is its initial state.
        pub(crate) fn init(&self) {
            for i in 0..self.cap.get() {
                self.stamp(i).store(Stamp::free(i), Ordering::Relaxed);
            }
        }

        /// Like [`init`](Self::init), for a ring whose positions start at `base` instead of 0:
        /// stamps `p << 2 | FREE` for positions `base..base + cap`, and `head = tail = base`
        /// (a link of an unbounded queue, whose positions continue those of the link before).
        pub(crate) fn init_at(&self, base: u64) {
            for p in base..base + self.cap.get() {
                self.stamp(p % self.cap)
                    .store(Stamp::free(p), Ordering::Relaxed);
            }
            let h = crate::ring::RingMem::header(self);
            h.tail.store(base, Ordering::Relaxed);
            h.head.store(base, Ordering::Relaxed);
        }

        #[inline]
        fn slot_ptr(&self, idx: u64) -> *mut u8 {
            debug_assert!(idx < self.cap.get());
            // SAFETY: idx < cap and cap * stride fits the region (checked in `new`).
            unsafe { self.slots.as_ptr().add((idx * self.layout.stride) as usize) }
        }

        /// Layout of the slots.
        pub(crate) fn layout(&self) -> SlotLayout {
            self.layout
        }
    }

    // SAFETY: `new` checked that header and all `cap` slots fit the region, slots start after the
    // header, and each slot's payload lies after its 8-byte stamp and within its stride.
    unsafe impl RingMem for RawRing {
        #[inline]
        fn header(&self) -> &RingHeader {
            // SAFETY: the region starts with a RingHeader-sized, 128-aligned block (checked in
            // `new`); all its fields are atomics, valid for any bit pattern.
            unsafe { self.hdr.as_ref() }
        }
        #[inline]
        fn capacity(&self) -> u64 {
            self.cap.get()
        }
        #[inline]
        fn stamp(&self, idx: u64) -> &AtomicU64 {
            // SAFETY: every slot starts 8-aligned (stride and base are multiples of the slot
            // alignment, itself ≥ 8) with an 8-byte stamp; AtomicU64 is valid for any bits.
            unsafe { &*self.slot_ptr(idx).cast::<AtomicU64>() }
        }
        #[inline]
        unsafe fn with_payload_mut<R>(&self, idx: u64, f: impl FnOnce(&mut [u8]) -> R) -> R {
            // SAFETY: payload_off + payload_len <= stride (checked in `new`); the caller holds the
            // slot's claim, so nobody else accesses these bytes while the slice lives.
            let s = unsafe {
                core::slice::from_raw_parts_mut(
                    self.slot_ptr(idx).add(self.layout.payload_off as usize),
                    self.layout.payload_len as usize,
                )
            };
            f(s)
        }
        #[inline]
        unsafe fn with_payload<R>(&self, idx: u64, f: impl FnOnce(&[u8]) -> R) -> R {
            // SAFETY: as in `with_payload_mut`.
            let s = unsafe {
                core::slice::from_raw_parts(
                    self.slot_ptr(idx).add(self.layout.payload_off as usize),
                    self.layout.payload_len as usize,
                )
            };
            f(s)
        }
    }

    /// An aligned, zeroed heap buffer holding a ring region: for unit tests, miri and fuzzing,
    /// where the same code as in a segment runs without an `mmap`.
    #[derive(Debug)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) struct HeapRegion {
        ptr: NonNull<u8>,
        layout: std::alloc::Layout,
    }

    // SAFETY: the buffer is plain memory owned by this value; concurrent access goes through the
    // ring protocol.
    unsafe impl Send for HeapRegion {}
    // SAFETY: as above.
    unsafe impl Sync for HeapRegion {}

    #[cfg_attr(not(test), allow(dead_code))]
    impl HeapRegion {
        /// A zeroed buffer of `len` bytes aligned to 128.
        pub(crate) fn zeroed(len: u64) -> Option<Self> {
            let layout =
                std::alloc::Layout::from_size_align(usize::try_from(len).ok()?.max(1), 128).ok()?;
            // SAFETY: layout has a non-zero size.
            let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
            Some(Self { ptr, layout })
        }
        pub(crate) fn as_ptr(&self) -> *mut u8 {
            self.ptr.as_ptr()
        }
        pub(crate) fn len(&self) -> u64 {
            self.layout.size() as u64
        }
    }

    impl Drop for HeapRegion {
        fn drop(&mut self) {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
        }
    }

    /// A shared state `S` in its own zeroed, 128-aligned buffer: all-zero is every shared
    /// state's initial value, as in a fresh mapping (for unit tests, natively and under miri; `S`
    /// is a shared state, atomics only).
    #[cfg(test)]
    pub(crate) struct Zeroed<S> {
        mem: HeapRegion,
        _s: core::marker::PhantomData<S>,
    }

    #[cfg(test)]
    impl<S> Zeroed<S> {
        pub(crate) fn new() -> Self {
            assert!(core::mem::align_of::<S>() <= 128);
            Self {
                mem: HeapRegion::zeroed(core::mem::size_of::<S>() as u64).expect("memory"),
                _s: core::marker::PhantomData,
            }
        }
        pub(crate) fn get(&self) -> &S {
            // SAFETY: the buffer is zeroed, 128-aligned (at least S's alignment, checked in
            // `new`) and as large as S; S is atomics only, so zero is a valid S (a fresh state),
            // and the buffer lives as long as `self`.
            unsafe { &*self.mem.as_ptr().cast::<S>() }
        }
    }

    /// A ring in its own heap buffer.
    #[derive(Debug)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) struct HeapRing {
        ring: RawRing,
        // Keeps the memory `ring` points into alive; dropped after `ring`.
        _buf: HeapRegion,
    }

    #[cfg_attr(not(test), allow(dead_code))]
    impl HeapRing {
        pub(crate) fn new(cap: u64, layout: SlotLayout) -> Option<Self> {
            let size = ring_region_size(cap, layout)?;
            let buf = HeapRegion::zeroed(size)?;
            // SAFETY: buf is `size` bytes, 128-aligned, owned by the returned value together with
            // the ring, and only used through the ring.
            let ring = unsafe { RawRing::new(buf.as_ptr(), buf.len(), cap, layout)? };
            ring.init();
            Some(Self { ring, _buf: buf })
        }
    }

    // SAFETY: forwards to the RawRing over memory this value owns.
    unsafe impl RingMem for HeapRing {
        #[inline]
        fn header(&self) -> &RingHeader {
            self.ring.header()
        }
        #[inline]
        fn capacity(&self) -> u64 {
            self.ring.capacity()
        }
        #[inline]
        fn stamp(&self, idx: u64) -> &AtomicU64 {
            self.ring.stamp(idx)
        }
        #[inline]
        unsafe fn with_payload_mut<R>(&self, idx: u64, f: impl FnOnce(&mut [u8]) -> R) -> R {
            // SAFETY: the caller's obligation is passed through unchanged.
            unsafe { self.ring.with_payload_mut(idx, f) }
        }
        #[inline]
        unsafe fn with_payload<R>(&self, idx: u64, f: impl FnOnce(&[u8]) -> R) -> R {
            // SAFETY: the caller's obligation is passed through unchanged.
            unsafe { self.ring.with_payload(idx, f) }
        }
    }
}
}

crate::sync::loom_only! {
mod model {
    use crate::layout::{RingHeader, Stamp};
    use crate::ring::RingMem;
    use crate::sync::{AtomicU64, UnsafeCell};

    /// A ring made of loom objects: every payload access is checked for data races.
    #[derive(Debug)]
    pub(crate) struct LoomRing {
        hdr: RingHeader,
        stamps: Vec<AtomicU64>,
        data: Vec<UnsafeCell<Vec<u8>>>,
    }

    impl LoomRing {
        pub(crate) fn new(cap: u64, payload_len: usize) -> Self {
            Self::new_at(0, cap, payload_len)
        }

        /// A ring whose first position is `base` (a link of an unbounded queue).
        pub(crate) fn new_at(base: u64, cap: u64, payload_len: usize) -> Self {
            let hdr = RingHeader::new_heap();
            hdr.tail.store(base, crate::sync::Ordering::Relaxed);
            hdr.head.store(base, crate::sync::Ordering::Relaxed);
            // Slot `i` waits for the producer of the one position in base..base + cap that
            // falls on it.
            let first = |i: u64| base + (i + cap - base % cap) % cap;
            Self {
                hdr,
                stamps: (0..cap)
                    .map(|i| AtomicU64::new(Stamp::free(first(i))))
                    .collect(),
                data: (0..cap)
                    .map(|_| UnsafeCell::new(vec![0u8; payload_len]))
                    .collect(),
            }
        }
    }

    // SAFETY: stamps and payloads are separate loom objects, one per slot.
    unsafe impl RingMem for LoomRing {
        fn header(&self) -> &RingHeader {
            &self.hdr
        }
        fn capacity(&self) -> u64 {
            self.stamps.len() as u64
        }
        fn stamp(&self, idx: u64) -> &AtomicU64 {
            &self.stamps[idx as usize]
        }
        unsafe fn with_payload_mut<R>(&self, idx: u64, f: impl FnOnce(&mut [u8]) -> R) -> R {
            // SAFETY: the caller holds the slot's claim; loom checks that claim really excludes
            // every other access.
            self.data[idx as usize].with_mut(|p| f(unsafe { &mut *p }))
        }
        unsafe fn with_payload<R>(&self, idx: u64, f: impl FnOnce(&[u8]) -> R) -> R {
            // SAFETY: as above.
            self.data[idx as usize].with(|p| f(unsafe { &*p }))
        }
    }
}
}
