//! A heap in plain memory, for unit tests natively and under miri: a fixed-size zeroed buffer,
//! nobody ever dies, the lock is never taken over. The same heap code as over a mapping.

use super::{ByteHeap, Heap, HeapError, HeapHeader, HeapMem, HEAP_HEADER_SIZE};
use crate::ring::mem::HeapRegion;
use crate::sync::AtomicU64;

/// A heap of fixed size in a zeroed, 128-aligned buffer: the control block at 0, blocks after
/// it. Nobody ever dies here, so every structure block counts as used.
pub(crate) struct PlainHeap {
    mem: HeapRegion,
}

impl PlainHeap {
    pub(crate) fn new(bytes: u64) -> Self {
        let mem = HeapRegion::zeroed(HEAP_HEADER_SIZE + bytes).expect("memory");
        // SAFETY: the region is zeroed, 128-aligned and ours alone; the control block is its
        // first HEAP_HEADER_SIZE bytes and the blocks the rest.
        unsafe {
            crate::heap::init(
                mem.as_ptr(),
                mem.as_ptr().cast(),
                HEAP_HEADER_SIZE,
                HEAP_HEADER_SIZE + bytes,
            )
        };
        Self { mem }
    }

    pub(crate) fn hdr(&self) -> &HeapHeader {
        // SAFETY: `init` wrote a control block at the start of the region, which lives as long
        // as `self`; HeapHeader is atomics only.
        unsafe { &*self.mem.as_ptr().cast::<HeapHeader>() }
    }

    pub(crate) fn heap(&self) -> Heap<'_, PlainHeap> {
        Heap::over(self, self.hdr())
    }
}

impl HeapMem for PlainHeap {
    fn word(&self, off: u64) -> Result<&AtomicU64, HeapError> {
        self.words(off, 1).map(|w| &w[0])
    }
    fn words(&self, off: u64, n: u64) -> Result<&[AtomicU64], HeapError> {
        let end = n
            .checked_mul(8)
            .and_then(|b| b.checked_add(off))
            .ok_or(HeapError::Corrupt)?;
        if off % 8 != 0 || end > self.mem.len() {
            return Err(HeapError::Corrupt);
        }
        // SAFETY: [off, end) lies in the region (checked), 8-aligned; AtomicU64 is valid for any
        // bits, and the region lives as long as `self`.
        Ok(unsafe {
            core::slice::from_raw_parts(
                self.mem.as_ptr().add(off as usize).cast::<AtomicU64>(),
                n as usize,
            )
        })
    }
    fn holder_gone(&self, _rec: u32, _inc: u32) -> bool {
        false
    }
    fn structure_blocks(&self, _obj: u32, _each: &mut dyn FnMut(u64)) -> bool {
        false // nobody dies here: take every structure block as used
    }
    fn committed(&self) -> u64 {
        self.mem.len()
    }
    fn max_size(&self) -> u64 {
        self.mem.len()
    }
    fn commit(&self, _from: u64, to: u64) -> Result<(), HeapError> {
        Err(HeapError::NoSpace { requested: to })
    }
    fn lock_token(&self) -> u32 {
        1
    }
    fn token_gone(&self, _token: u32) -> bool {
        false
    }
}

impl ByteHeap for PlainHeap {
    fn bytes(&self, off: u64, len: u64) -> Result<*mut u8, HeapError> {
        match off.checked_add(len) {
            Some(end) if end <= self.mem.len() => {
                // SAFETY: off < end <= the buffer's length, so the pointer stays inside it.
                Ok(unsafe { self.mem.as_ptr().add(off as usize) })
            }
            _ => Err(HeapError::Corrupt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PlainHeap;
    use crate::heap::held;
    use crate::sync::native_or_miri;

    /// Two threads allocate blocks of assorted sizes, fill them with their own pattern, check
    /// and free them, at once: no block is handed to both (miri reports a data race on the
    /// bytes if it were; the patterns would not survive natively), and the heap ends whole and
    /// empty.
    #[test]
    fn two_threads_allocating_and_freeing_keep_the_heap_whole() {
        let heap = PlainHeap::new(1 << 18);
        std::thread::scope(|s| {
            for t in 0..2u32 {
                let heap = &heap;
                s.spawn(move || {
                    let h = heap.heap();
                    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ t as u64;
                    let mut mine: Vec<(u64, u64, u8)> = Vec::new();
                    let check_and_free = |(off, len, pat): (u64, u64, u8)| {
                        let p = h.payload(off, len).expect("our block");
                        // SAFETY: the block is ours (allocated by this thread, not freed yet):
                        // nobody else reads or writes its payload.
                        let bytes = unsafe { core::slice::from_raw_parts(p, len as usize) };
                        assert!(bytes.iter().all(|&b| b == pat), "block {off} overwritten");
                        h.free(off).expect("free");
                    };
                    for i in 0..native_or_miri(5000, 40) {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        if rng % 3 != 0 || mine.is_empty() {
                            let len = 1 + rng % 2000;
                            let Ok(off) = h.alloc(len, held(t, 0)) else {
                                continue; // full for now: the other thread frees
                            };
                            let pat = (i % 251) as u8 | 1;
                            let p = h.payload(off, len).expect("our block");
                            // SAFETY: just allocated to us, `len` payload bytes.
                            unsafe { core::ptr::write_bytes(p, pat, len as usize) };
                            mine.push((off, len, pat));
                        } else {
                            let k = (rng >> 32) as usize % mine.len();
                            check_and_free(mine.swap_remove(k));
                        }
                    }
                    mine.into_iter().for_each(check_and_free);
                });
            }
        });
        assert_eq!(heap.heap().check(), Ok((0, 0)));
    }
}
