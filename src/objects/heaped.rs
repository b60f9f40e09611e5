//! What the objects that live in the heap (dictionaries, growable lists) share: the lock with its
//! repair after a dead holder, byte strings in heap words, and their failures.

use crate::heap::{Heap, HeapError, HeapLock, HeapMem};
use crate::sync::{AtomicU64, Ordering};

pub(crate) fn words_for(bytes: u64) -> Option<u64> {
    bytes.checked_add(7).map(|b| b / 8)
}

/// Writes `bytes` into `words` (8 per word, the last one zero-padded).
pub(crate) fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (w, c) in words.iter().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

/// Reads `len` bytes out of `words`.
pub(crate) fn load_bytes(words: &[AtomicU64], len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(len);
    for w in words {
        let b = w.load(Ordering::Relaxed).to_le_bytes();
        let n = (len - out.len()).min(8);
        out.extend_from_slice(&b[..n]);
        if out.len() == len {
            break;
        }
    }
}

/// Why an operation on a heap-backed object failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeapObjFail {
    Heap(HeapError),
    /// The object's own words are inconsistent (a forged segment).
    Corrupt,
}

impl From<HeapError> for HeapObjFail {
    fn from(e: HeapError) -> Self {
        match e {
            HeapError::Corrupt => HeapObjFail::Corrupt,
            e => HeapObjFail::Heap(e),
        }
    }
}

/// An object's lock, held; released on drop, consistent unless a failure was noted (`ok`).
pub(crate) struct Held<'d> {
    lock: &'d HeapLock,
    pub(crate) ok: bool,
}

impl<'d> Held<'d> {
    /// Takes `lock` (a [`HeapLock`]: a dead holder is taken over at any instruction); after a
    /// dead holder, `repair` recomputes the object's derived words, and a heap sweep gives back
    /// what the dead holder had allocated or left unlinked. Crash point `point` is just after the
    /// lock is taken.
    pub(crate) fn take<M: HeapMem>(
        lock: &'d HeapLock,
        heap: &Heap<'_, M>,
        point: &'static str,
        repair: impl FnOnce() -> Result<(), HeapObjFail>,
    ) -> Result<Self, HeapObjFail> {
        let how = lock.lock(heap.mem());
        let mut g = Held { lock, ok: false };
        crate::fault::point(point);
        if how.owner_died() {
            repair()?;
            heap.sweep();
        }
        g.ok = true;
        Ok(g)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.lock.unlock(self.ok && !std::thread::panicking());
    }
}

crate::sync::native_only! {
    #[cfg(test)]
    mod tests;
}
