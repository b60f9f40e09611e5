//! A growable list in the segment: items are byte strings of any size, in heap blocks.
//!
//! The directory region is a [`SeqHeader`]: the list's lock (a [`HeapLock`]) and the heap block
//! of its array. The array block's payload is `[length, capacity, item × capacity]`; item `i <
//! length` is the heap block of an item, whose payload is `[byte length, bytes…]`, written once
//! before it is linked in. All words are atomics accessed under the lock (Relaxed; the lock's
//! Acquire and Release order them), so the same code runs over a mapping and under loom.
//!
//! # Crash safety
//!
//! Each change has one commit store, made under the lock: a push writes the new item into the
//! first unused slot and then stores the length (the commit); a pop stores the length less one
//! and frees the item in one hold of the heap lock ([`Heap::free_unlinked`]); a set stores the new
//! item into its slot and frees the old one the same way; an insert or a removal in the middle,
//! and a growth, build a new array and store its block into the header (the commit). Items and
//! arrays are allocated `held` by the writer and marked as the list's ([`STRUCTURE_MARK`]), and
//! handed to it after the commit, so a sweep frees what a dead writer left unlinked and keeps what
//! it linked ([`SeqRef::blocks`]: the array, and the items below the length). A writer
//! killed at any step leaves the list as it was before the change or after it.

use super::heaped::{load_bytes, store_bytes, words_for, HeapObjFail, Held};
use crate::heap::{Heap, HeapError, HeapLock, HeapMem, STRUCTURE_MARK};
use crate::sync::{AtomicU64, Ordering};

type Result<T> = core::result::Result<T, HeapObjFail>;

/// Items of a list's first array.
const FIRST_CAP: u64 = 8;
/// Words of an array block before its items (length, capacity).
const ARRAY_HEADER: u64 = 2;

/// The shared part of a growable list: its directory region.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SeqHeader {
    pub(crate) lock: HeapLock,
    /// Heap block of the array (0: none yet, an empty list).
    pub(crate) array: AtomicU64,
    _pad: [AtomicU64; 15],
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<SeqHeader>() == 256);
}

/// Bytes of a growable list's directory region.
pub(crate) const SEQ_REGION: u64 = 256;

crate::sync::loom_only! {
    impl SeqHeader {
        pub(crate) fn new_heap() -> Self {
            Self {
                lock: HeapLock::new(),
                array: AtomicU64::new(0),
                _pad: core::array::from_fn(|_| AtomicU64::new(0)),
            }
        }
    }
}

/// Why an index was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfRange {
    pub(crate) len: u64,
}

/// A list's array: its block, length word, capacity and item words.
struct Array<'a> {
    off: u64,
    len: &'a AtomicU64,
    cap: u64,
    items: &'a [AtomicU64],
}

impl Array<'_> {
    fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }
    fn item(&self, i: u64) -> u64 {
        self.items[i as usize].load(Ordering::Relaxed)
    }
}

/// A growable list over its header and the heap its blocks live in.
pub(crate) struct SeqRef<'a, M: HeapMem> {
    pub(crate) hdr: &'a SeqHeader,
    pub(crate) heap: Heap<'a, M>,
    /// The list's object number (directory index + 1), in its blocks' marks.
    pub(crate) obj: u32,
    /// The owner word of blocks the calling thread allocates (`crate::heap::held`).
    pub(crate) me: u64,
}

impl<'a, M: HeapMem> SeqRef<'a, M> {
    fn lock(&self) -> Result<Held<'a>> {
        // Nothing is derived: every word of the list is a commit or written before one.
        Held::take(&self.hdr.lock, &self.heap, "list-locked", || {
            self.array().map(|_| ())
        })
    }

    fn array(&self) -> Result<Option<Array<'a>>> {
        let off = self.hdr.array.load(Ordering::Relaxed);
        if off == 0 {
            return Ok(None);
        }
        let head = self.heap.block_words(off, ARRAY_HEADER)?;
        let cap = head[1].load(Ordering::Relaxed);
        if cap > 1 << 40 {
            return Err(HeapObjFail::Corrupt);
        }
        let w = self.heap.block_words(off, ARRAY_HEADER + cap)?;
        let a = Array {
            off,
            len: &w[0],
            cap,
            items: &w[ARRAY_HEADER as usize..],
        };
        if a.len() > cap {
            return Err(HeapObjFail::Corrupt);
        }
        Ok(Some(a))
    }

    /// The bytes of item block `off`.
    fn read_item(&self, off: u64, out: &mut Vec<u8>) -> Result<()> {
        let n = self.heap.block_words(off, 1)?[0].load(Ordering::Relaxed);
        let words = words_for(n).ok_or(HeapObjFail::Corrupt)?;
        let w = self.heap.block_words(off, 1 + words)?;
        load_bytes(
            &w[1..],
            usize::try_from(n).map_err(|_| HeapObjFail::Corrupt)?,
            out,
        );
        Ok(())
    }

    /// A new item block holding `bytes`, held by the caller and marked as the list's.
    fn new_item(&self, bytes: &[u8]) -> Result<u64> {
        let words = words_for(bytes.len() as u64)
            .and_then(|w| w.checked_add(1))
            .ok_or(HeapError::NoSpace {
                requested: u64::MAX,
            })?;
        let off = self.heap.alloc(words * 8, self.me)?;
        self.heap.mark(off, STRUCTURE_MARK | self.obj as u64)?;
        let w = self.heap.block_words(off, words)?;
        w[0].store(bytes.len() as u64, Ordering::Relaxed);
        store_bytes(&w[1..], bytes);
        Ok(off)
    }

    /// A new array of `cap` items holding `items` (length `items.len()`), held and marked.
    fn new_array(&self, cap: u64, items: &[u64]) -> Result<u64> {
        let words = cap.checked_add(ARRAY_HEADER).ok_or(HeapError::NoSpace {
            requested: u64::MAX,
        })?;
        let off = self.heap.alloc(words * 8, self.me)?;
        self.heap.mark(off, STRUCTURE_MARK | self.obj as u64)?;
        let w = self.heap.block_words(off, words)?;
        w[0].store(items.len() as u64, Ordering::Relaxed);
        w[1].store(cap, Ordering::Relaxed);
        for (i, x) in w[ARRAY_HEADER as usize..].iter().enumerate() {
            x.store(items.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
        Ok(off)
    }

    /// Makes the array with `items` current (the commit), freeing the old one in the same heap
    /// lock hold.
    fn replace_array(&self, old: Option<&Array<'_>>, cap: u64, items: &[u64]) -> Result<()> {
        let new = self.new_array(cap, items)?;
        crate::fault::point("list-array-filled");
        match old {
            Some(a) => self.heap.free_unlinked(a.off, "list-array-replaced", || {
                self.hdr.array.store(new, Ordering::Relaxed);
                true
            }),
            None => self.hdr.array.store(new, Ordering::Relaxed),
        }
        self.heap.own_by_structure(new);
        Ok(())
    }

    /// The items of `a` below its length.
    fn items(a: &Array<'_>) -> Vec<u64> {
        (0..a.len()).map(|i| a.item(i)).collect()
    }

    pub(crate) fn len(&self) -> Result<u64> {
        let _g = self.lock()?;
        Ok(self.array()?.map_or(0, |a| a.len()))
    }

    /// Item `i` into `out`.
    pub(crate) fn get(
        &self,
        i: u64,
        out: &mut Vec<u8>,
    ) -> Result<core::result::Result<(), OutOfRange>> {
        let _g = self.lock()?;
        let Some(a) = self.array()?.filter(|a| i < a.len()) else {
            return Ok(Err(OutOfRange {
                len: self.array()?.map_or(0, |a| a.len()),
            }));
        };
        self.read_item(a.item(i), out)?;
        Ok(Ok(()))
    }

    /// Items `from..to` (clamped to the length), each passed to `each` (one hold of the lock).
    pub(crate) fn slice(&self, from: u64, to: u64, mut each: impl FnMut(&[u8])) -> Result<()> {
        let _g = self.lock()?;
        let Some(a) = self.array()? else {
            return Ok(());
        };
        let mut buf = Vec::new();
        for i in from..to.min(a.len()) {
            self.read_item(a.item(i), &mut buf)?;
            each(&buf);
        }
        Ok(())
    }

    /// Appends every item of `items`; returns the new length.
    pub(crate) fn extend<'b>(&self, items: impl IntoIterator<Item = &'b [u8]>) -> Result<u64> {
        let mut g = self.lock()?;
        g.ok = false;
        let mut n = self.array()?.map_or(0, |a| a.len());
        for bytes in items {
            let a = match self.array()? {
                Some(a) if a.len() < a.cap => a,
                old => {
                    let (cap, items) = old
                        .as_ref()
                        .map_or((0, Vec::new()), |a| (a.cap, Self::items(a)));
                    let cap = cap.saturating_mul(2).max(FIRST_CAP);
                    self.replace_array(old.as_ref(), cap, &items)?;
                    self.array()?.ok_or(HeapObjFail::Corrupt)?
                }
            };
            let item = self.new_item(bytes)?;
            let at = a.len();
            a.items[at as usize].store(item, Ordering::Relaxed);
            crate::fault::point("list-item-written");
            // The commit.
            a.len.store(at + 1, Ordering::Relaxed);
            crate::fault::point("list-pushed");
            self.heap.own_by_structure(item);
            n = at + 1;
        }
        g.ok = true;
        Ok(n)
    }

    /// Replaces item `i` by `bytes`; its old bytes into `old`.
    pub(crate) fn set(
        &self,
        i: u64,
        bytes: &[u8],
        old: &mut Vec<u8>,
    ) -> Result<core::result::Result<(), OutOfRange>> {
        let _g = self.lock()?;
        let Some(a) = self.array()?.filter(|a| i < a.len()) else {
            return Ok(Err(OutOfRange {
                len: self.array()?.map_or(0, |a| a.len()),
            }));
        };
        let prev = a.item(i);
        self.read_item(prev, old)?;
        let item = self.new_item(bytes)?;
        self.heap.free_unlinked(prev, "list-set", || {
            a.items[i as usize].store(item, Ordering::Relaxed);
            true
        });
        self.heap.own_by_structure(item);
        Ok(Ok(()))
    }

    /// Removes item `i` (the last one for `None`); its bytes into `out`.
    pub(crate) fn pop(
        &self,
        i: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<core::result::Result<(), OutOfRange>> {
        let _g = self.lock()?;
        let Some(a) = self.array()? else {
            return Ok(Err(OutOfRange { len: 0 }));
        };
        let len = a.len();
        let i = i.unwrap_or(len.wrapping_sub(1));
        if len == 0 || i >= len {
            return Ok(Err(OutOfRange { len }));
        }
        self.read_item(a.item(i), out)?;
        self.remove_locked(&a, i)?;
        Ok(Ok(()))
    }

    /// Removes the first item equal to `bytes`; whether there was one.
    pub(crate) fn remove_first(&self, bytes: &[u8]) -> Result<bool> {
        let _g = self.lock()?;
        let Some(a) = self.array()? else {
            return Ok(false);
        };
        let mut buf = Vec::new();
        for i in 0..a.len() {
            self.read_item(a.item(i), &mut buf)?;
            if buf == bytes {
                self.remove_locked(&a, i)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes item `i < length` of `a`, under the lock.
    fn remove_locked(&self, a: &Array<'_>, i: u64) -> Result<()> {
        let len = a.len();
        let item = a.item(i);
        if i + 1 == len {
            // The last item: the commit is the length, in the heap lock hold that frees it.
            self.heap.free_unlinked(item, "list-popped", || {
                a.len.store(len - 1, Ordering::Relaxed);
                true
            });
            return Ok(());
        }
        let mut items = Self::items(a);
        items.remove(i as usize);
        let new = self.new_array(a.cap, &items)?;
        crate::fault::point("list-array-filled");
        // The commit, and the frees of the old array and of the item, in one heap lock hold (the
        // one store unlinks both).
        self.heap
            .free_all_unlinked(&[a.off, item], "list-array-replaced", || {
                self.hdr.array.store(new, Ordering::Relaxed);
                true
            });
        self.heap.own_by_structure(new);
        Ok(())
    }

    /// Inserts `bytes` before item `i` (at the end if `i` is the length or more).
    pub(crate) fn insert(&self, i: u64, bytes: &[u8]) -> Result<()> {
        let mut g = self.lock()?;
        g.ok = false;
        let old = self.array()?;
        let (cap, mut items) = old
            .as_ref()
            .map_or((0, Vec::new()), |a| (a.cap, Self::items(a)));
        let item = self.new_item(bytes)?;
        let at = (i as usize).min(items.len());
        items.insert(at, item);
        let cap = if (items.len() as u64) > cap {
            cap.saturating_mul(2).max(FIRST_CAP)
        } else {
            cap
        };
        self.replace_array(old.as_ref(), cap, &items)?;
        self.heap.own_by_structure(item);
        g.ok = true;
        Ok(())
    }

    /// Replaces items `from..to` (both clamped to the length, `from` to `to`) by `items`: a new
    /// array with the change, committed by one store in the heap lock hold that frees the old
    /// array and the items taken out, so a crash leaves the list wholly before or after. Returns
    /// the new length.
    pub(crate) fn splice<'b>(
        &self,
        from: u64,
        to: u64,
        items: impl IntoIterator<Item = &'b [u8]>,
    ) -> Result<u64> {
        let mut g = self.lock()?;
        g.ok = false;
        let old = self.array()?;
        let (cap, cur) = old
            .as_ref()
            .map_or((0, Vec::new()), |a| (a.cap, Self::items(a)));
        let to = (to.min(cur.len() as u64)) as usize;
        let from = (from as usize).min(to);
        let mut added = Vec::new();
        let made = items.into_iter().try_for_each(|b| {
            added.push(self.new_item(b)?);
            Ok(())
        });
        if let Err(e) = made {
            for &off in &added {
                let _ = self.heap.free(off);
            }
            return Err(e);
        }
        let mut next = Vec::with_capacity(cur.len() - (to - from) + added.len());
        next.extend_from_slice(&cur[..from]);
        next.extend_from_slice(&added);
        next.extend_from_slice(&cur[to..]);
        let mut cap = cap.max(FIRST_CAP);
        while (next.len() as u64) > cap {
            cap = cap.saturating_mul(2);
        }
        let new = match self.new_array(cap, &next) {
            Ok(new) => new,
            Err(e) => {
                for &off in &added {
                    let _ = self.heap.free(off);
                }
                return Err(e);
            }
        };
        crate::fault::point("list-array-filled");
        // The commit, and the frees of the old array and of the items taken out, in one heap
        // lock hold (the one store unlinks them all).
        let mut gone: Vec<u64> = cur[from..to].to_vec();
        if let Some(a) = &old {
            gone.push(a.off);
        }
        self.heap
            .free_all_unlinked(&gone, "list-array-replaced", || {
                self.hdr.array.store(new, Ordering::Relaxed);
                true
            });
        self.heap.own_by_structure(new);
        for &off in &added {
            self.heap.own_by_structure(off);
        }
        g.ok = true;
        Ok(next.len() as u64)
    }

    /// Removes every item (one at a time from the end: a crash in the middle leaves a prefix).
    pub(crate) fn clear(&self) -> Result<()> {
        let _g = self.lock()?;
        let Some(a) = self.array()? else {
            return Ok(());
        };
        for len in (1..=a.len()).rev() {
            let item = a.item(len - 1);
            self.heap.free_unlinked(item, "list-popped", || {
                a.len.store(len - 1, Ordering::Relaxed);
                true
            });
        }
        Ok(())
    }

    /// Calls `each` with this list's array and its items below the length; `false` if the
    /// array cannot be read (for the heap's sweeps, as for dictionaries).
    pub(crate) fn blocks(&self, each: &mut dyn FnMut(u64)) -> bool {
        // Relaxed, like every store of these words: what orders a sweep after the links it
        // must see is the heap lock (unlinks and replacements happen under it), the death
        // proof of a dead holder (read after its last store), and the takeover of a dead
        // owner's lock. (The owner word's Release in `own_by_structure` pairs with the sweep's
        // own Acquire load of that word, not with these.)
        let array = self.hdr.array.load(Ordering::Relaxed);
        if array == 0 {
            return true;
        }
        each(array);
        match self.array() {
            Ok(Some(a)) => {
                for i in 0..a.len() {
                    each(a.items[i as usize].load(Ordering::Relaxed));
                }
                true
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }
}
