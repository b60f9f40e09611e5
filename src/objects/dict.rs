//! A hash map in the segment: byte-string keys and values of any size, in heap blocks.
//!
//! # Layout
//!
//! The directory region is a [`DictHeader`]: the dictionary's lock (a [`HeapLock`], whose word
//! names its owner by participant record, so a holder killed at any instruction is proven dead
//! and the lock taken over), the heap block of its slot table, and two derived counters. The
//! table block's payload is `[capacity, (entry, hash) × capacity]`: open addressing with linear
//! probing over a power-of-two capacity, an entry word of 0 for an empty slot, [`TOMB`] for a
//! removed one, else the heap block of the entry. An entry block's payload is
//! `[hash, key length, value length, key words…, value words…]`, written once before it is
//! linked in and never changed after. Every word is an atomic (Relaxed: all accesses happen under
//! the lock, whose Acquire and Release order them), so the same code runs over a mapping and
//! under loom.
//!
//! # Crash safety
//!
//! Every change has one commit store, made while the dictionary's lock is held: an insert of a
//! new key stores the new entry's block into its slot; a replacement does the same over the old
//! one; a removal stores [`TOMB`]; a growth stores the new table's block into the header. A
//! block leaves the dictionary in the same hold of the heap lock as it is freed
//! ([`Heap::free_unlinked`]). Blocks are allocated `held` by the writer and marked as the
//! dictionary's ([`STRUCTURE_MARK`]); after the commit they are handed to the structure (owner 0).
//! So a writer killed at any point leaves, besides a dictionary where every entry is old or new:
//! a block not yet linked in and held by a dead thread (a sweep frees it), one linked in and
//! still held (a sweep hands it to the dictionary: [`DictRef::blocks`] lists it), or one unlinked
//! and not yet freed (a sweep frees it as an orphan). The counters and the slots' hash words
//! are derived: the next lock taker that finds the last owner dead ([`Acquired::OwnerDead`])
//! recomputes them from the entries.
//!
//! # Locking
//!
//! Lookups take the lock too, for as long as a probe and a copy of the value take: a lock-free
//! reader would read entry blocks that a writer may free (and the heap hand out again) under it,
//! which needs safe memory reclamation this first version does not have. The lock spins briefly,
//! then sleeps on its futex.

pub(crate) use super::heaped::HeapObjFail as DictFail;
use super::heaped::{load_bytes, store_bytes, words_for, Held};
use crate::heap::{Heap, HeapError, HeapLock, HeapMem, STRUCTURE_MARK};
use crate::sync::{AtomicU64, Ordering};

/// An entry word of a removed slot (block offsets are multiples of 16, never 1).
pub(crate) const TOMB: u64 = 1;
/// Slots of a dictionary's first table.
const FIRST_CAP: u64 = 16;
/// Words of an entry's header (hash, key length, value length).
const HEADER_WORDS: u64 = 3;

/// The shared part of a dictionary: its directory region.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct DictHeader {
    pub(crate) lock: HeapLock,
    /// Heap block of the slot table (0: no table yet, an empty dictionary).
    pub(crate) table: AtomicU64,
    /// Entries (derived, recounted after a crash).
    pub(crate) len: AtomicU64,
    /// Slots not empty: entries and tombstones (derived).
    pub(crate) used: AtomicU64,
    _pad: [AtomicU64; 13],
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<DictHeader>() == 256);
}

/// Bytes of a dictionary's directory region.
pub(crate) const DICT_REGION: u64 = 256;

crate::sync::loom_only! {
    impl DictHeader {
        pub(crate) fn new_heap() -> Self {
            Self {
                lock: HeapLock::new(),
                table: AtomicU64::new(0),
                len: AtomicU64::new(0),
                used: AtomicU64::new(0),
                _pad: core::array::from_fn(|_| AtomicU64::new(0)),
            }
        }
    }
}

/// A 64-bit hash of a key, the same in every process (no per-process seed): 8 bytes at a time,
/// multiplied and rotated, then finalised (splitmix64's mixer).
///
/// Unseeded, so keys with equal hashes are easy to make (see [`absorb`]): lookups compare the
/// keys themselves, and colliding keys only cost probes.
pub(crate) fn hash(key: &[u8]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64 ^ key.len() as u64;
    for c in key.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h = absorb(h, u64::from_le_bytes(w));
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// One step of [`hash`]: the state after 8 more bytes of key, `w`. A bijection of `h ^ w`, so
/// two keys of one length whose states differ after some chunk collide whenever their next
/// chunks differ by the same bits.
#[inline]
pub(crate) fn absorb(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(31)
}

type Result<T> = core::result::Result<T, DictFail>;

/// A dictionary over its header and the heap its blocks live in.
pub(crate) struct DictRef<'a, M: HeapMem> {
    pub(crate) hdr: &'a DictHeader,
    pub(crate) heap: Heap<'a, M>,
    /// The dictionary's object number (directory index + 1), in its blocks' marks.
    pub(crate) obj: u32,
    /// The owner word of blocks the calling thread allocates (`crate::heap::held`).
    pub(crate) me: u64,
}

/// A table: its block, capacity and slot words.
struct Table<'a> {
    off: u64,
    cap: u64,
    slots: &'a [AtomicU64],
}

impl Table<'_> {
    fn entry(&self, i: u64) -> &AtomicU64 {
        &self.slots[(2 * i) as usize]
    }
    fn hash(&self, i: u64) -> &AtomicU64 {
        &self.slots[(2 * i + 1) as usize]
    }
}

/// Where a key is, or would go.
struct Probe {
    /// The slot holding the key.
    found: Option<u64>,
    /// The first slot a new entry for it may take (a tombstone or an empty slot).
    free: Option<u64>,
}

impl<'a, M: HeapMem> DictRef<'a, M> {
    /// Takes the lock; after a dead owner, first repairs the derived words.
    fn lock(&self) -> Result<Held<'a>> {
        Held::take(&self.hdr.lock, &self.heap, "dict-locked", || self.repair())
    }

    /// The current table, if any.
    fn table(&self) -> Result<Option<Table<'a>>> {
        let off = self.hdr.table.load(Ordering::Relaxed);
        if off == 0 {
            return Ok(None);
        }
        let cap = self.heap.block_words(off, 1)?[0].load(Ordering::Relaxed);
        if cap == 0 || !cap.is_power_of_two() || cap > 1 << 40 {
            return Err(DictFail::Corrupt);
        }
        let words = self.heap.block_words(off, 1 + 2 * cap)?;
        Ok(Some(Table {
            off,
            cap,
            slots: &words[1..],
        }))
    }

    /// The words of entry block `off`: (hash, key length, value length, key+value words).
    fn entry(&self, off: u64) -> Result<(u64, u64, u64, &'a [AtomicU64])> {
        let h = self.heap.block_words(off, HEADER_WORDS)?;
        let (hash, klen, vlen) = (
            h[0].load(Ordering::Relaxed),
            h[1].load(Ordering::Relaxed),
            h[2].load(Ordering::Relaxed),
        );
        let n = words_for(klen)
            .zip(words_for(vlen))
            .and_then(|(k, v)| k.checked_add(v)?.checked_add(HEADER_WORDS))
            .ok_or(DictFail::Corrupt)?;
        let all = self.heap.block_words(off, n)?;
        Ok((hash, klen, vlen, &all[HEADER_WORDS as usize..]))
    }

    /// Whether entry `off` holds `key`.
    fn key_is(&self, off: u64, key: &[u8]) -> Result<bool> {
        let (_, klen, _, words) = self.entry(off)?;
        if klen != key.len() as u64 {
            return Ok(false);
        }
        Ok(words
            .iter()
            .zip(key.chunks(8))
            .all(|(w, c)| w.load(Ordering::Relaxed).to_le_bytes()[..c.len()] == *c))
    }

    /// The key of entry `off`.
    fn key(&self, off: u64, out: &mut Vec<u8>) -> Result<()> {
        let (_, klen, _, words) = self.entry(off)?;
        load_bytes(
            words,
            usize::try_from(klen).map_err(|_| DictFail::Corrupt)?,
            out,
        );
        Ok(())
    }

    /// The value of entry `off`.
    fn value(&self, off: u64, out: &mut Vec<u8>) -> Result<()> {
        let (_, klen, vlen, words) = self.entry(off)?;
        let kw = words_for(klen).ok_or(DictFail::Corrupt)? as usize;
        let vlen = usize::try_from(vlen).map_err(|_| DictFail::Corrupt)?;
        load_bytes(&words[kw..], vlen, out);
        Ok(())
    }

    fn probe(&self, t: &Table<'_>, key: &[u8], h: u64) -> Result<Probe> {
        let mask = t.cap - 1;
        let mut free = None;
        for step in 0..t.cap {
            let i = (h.wrapping_add(step)) & mask;
            let e = t.entry(i).load(Ordering::Relaxed);
            if e == 0 {
                return Ok(Probe {
                    found: None,
                    free: free.or(Some(i)),
                });
            }
            if e == TOMB {
                free = free.or(Some(i));
                continue;
            }
            if t.hash(i).load(Ordering::Relaxed) == h && self.key_is(e, key)? {
                return Ok(Probe {
                    found: Some(i),
                    free,
                });
            }
        }
        Ok(Probe { found: None, free })
    }

    /// Looks `key` up; its value into `out`. Whether it was there.
    pub(crate) fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let _g = self.lock()?;
        let Some(t) = self.table()? else {
            return Ok(false);
        };
        match self.probe(&t, key, hash(key))?.found {
            Some(i) => {
                self.value(t.entry(i).load(Ordering::Relaxed), out)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Entries in the dictionary.
    pub(crate) fn len(&self) -> Result<u64> {
        let _g = self.lock()?;
        Ok(self.hdr.len.load(Ordering::Relaxed))
    }

    /// Inserts or replaces `key`'s value; the old value into `old`. Whether there was one.
    pub(crate) fn insert(&self, key: &[u8], value: &[u8], old: &mut Vec<u8>) -> Result<bool> {
        let mut g = self.lock()?;
        let r = self.set_locked(key, Some(value), old);
        g.ok = !matches!(r, Err(DictFail::Corrupt));
        r
    }

    /// Removes `key`; its value into `old`. Whether it was there.
    pub(crate) fn remove(&self, key: &[u8], old: &mut Vec<u8>) -> Result<bool> {
        let mut g = self.lock()?;
        let r = self.set_locked(key, None, old);
        g.ok = !matches!(r, Err(DictFail::Corrupt));
        r
    }

    /// Reads `key`'s value, lets `f` compute the new one (`None`: remove it) and stores it, with
    /// no other change to the dictionary in between. Returns `f`'s value.
    pub(crate) fn update(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        let mut g = self.lock()?;
        let mut cur = Vec::new();
        let had = match self.table()? {
            Some(t) => match self.probe(&t, key, hash(key))?.found {
                Some(i) => {
                    self.value(t.entry(i).load(Ordering::Relaxed), &mut cur)?;
                    true
                }
                None => false,
            },
            None => false,
        };
        let new = f(had.then_some(&cur[..]));
        if new.is_none() && !had {
            return Ok(None);
        }
        let r = self.set_locked(key, new.as_deref(), &mut cur);
        g.ok = !matches!(r, Err(DictFail::Corrupt));
        r.map(|_| new)
    }

    /// Removes every entry (one at a time: a crash in the middle leaves some removed).
    pub(crate) fn clear(&self) -> Result<()> {
        let mut g = self.lock()?;
        let Some(t) = self.table()? else {
            return Ok(());
        };
        for i in 0..t.cap {
            let e = t.entry(i).load(Ordering::Relaxed);
            if e != 0 && e != TOMB {
                self.heap.free_unlinked(e, "dict-removed", || {
                    t.entry(i).store(TOMB, Ordering::Relaxed);
                    true
                });
                self.hdr.len.fetch_sub(1, Ordering::Relaxed);
            }
        }
        for i in 0..t.cap {
            t.entry(i).store(0, Ordering::Relaxed);
        }
        self.hdr.len.store(0, Ordering::Relaxed);
        self.hdr.used.store(0, Ordering::Relaxed);
        g.ok = true;
        Ok(())
    }

    /// Every (key, value), in table order (a snapshot: the lock is held throughout).
    pub(crate) fn items(&self, mut each: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let _g = self.lock()?;
        let Some(t) = self.table()? else {
            return Ok(());
        };
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for i in 0..t.cap {
            let e = t.entry(i).load(Ordering::Relaxed);
            if e == 0 || e == TOMB {
                continue;
            }
            self.key(e, &mut k)?;
            self.value(e, &mut v)?;
            each(&k, &v);
        }
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) `key`'s value under the lock; the old value into `old`.
    /// Whether there was one.
    fn set_locked(&self, key: &[u8], value: Option<&[u8]>, old: &mut Vec<u8>) -> Result<bool> {
        let h = hash(key);
        if value.is_some() {
            self.make_room()?;
        }
        let Some(t) = self.table()? else {
            return Ok(false); // a removal from an empty dictionary
        };
        let p = self.probe(&t, key, h)?;
        let Some(value) = value else {
            let Some(i) = p.found else {
                return Ok(false);
            };
            let e = t.entry(i).load(Ordering::Relaxed);
            self.value(e, old)?;
            self.heap.free_unlinked(e, "dict-removed", || {
                t.entry(i).store(TOMB, Ordering::Relaxed);
                true
            });
            self.hdr.len.fetch_sub(1, Ordering::Relaxed);
            return Ok(true);
        };
        let new = self.new_entry(key, value, h)?;
        crate::fault::point("dict-entry-written");
        let had = match p.found {
            Some(i) => {
                let e = t.entry(i).load(Ordering::Relaxed);
                self.value(e, old)?;
                // The commit and the old entry's free in one hold of the heap lock.
                self.heap.free_unlinked(e, "dict-replaced", || {
                    t.entry(i).store(new, Ordering::Relaxed);
                    true
                });
                true
            }
            None => {
                let i = p.free.ok_or(DictFail::Corrupt)?;
                if t.entry(i).load(Ordering::Relaxed) == 0 {
                    self.hdr.used.fetch_add(1, Ordering::Relaxed);
                }
                t.hash(i).store(h, Ordering::Relaxed);
                // The commit.
                t.entry(i).store(new, Ordering::Relaxed);
                self.hdr.len.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        crate::fault::point("dict-committed");
        self.heap.own_by_structure(new);
        Ok(had)
    }

    /// A new entry block for `key` and `value`, held by the caller and marked as ours.
    fn new_entry(&self, key: &[u8], value: &[u8], h: u64) -> Result<u64> {
        let (kw, vw) = (
            words_for(key.len() as u64).ok_or(DictFail::Corrupt)?,
            words_for(value.len() as u64).ok_or(DictFail::Corrupt)?,
        );
        let n = kw
            .checked_add(vw)
            .and_then(|n| n.checked_add(HEADER_WORDS))
            .ok_or(HeapError::NoSpace {
                requested: u64::MAX,
            })?;
        let bytes = n.checked_mul(8).ok_or(HeapError::NoSpace {
            requested: u64::MAX,
        })?;
        let off = self.heap.alloc(bytes, self.me)?;
        self.heap.mark(off, STRUCTURE_MARK | self.obj as u64)?;
        let w = self.heap.block_words(off, n)?;
        w[0].store(h, Ordering::Relaxed);
        w[1].store(key.len() as u64, Ordering::Relaxed);
        w[2].store(value.len() as u64, Ordering::Relaxed);
        let body = &w[HEADER_WORDS as usize..];
        store_bytes(&body[..kw as usize], key);
        store_bytes(&body[kw as usize..], value);
        Ok(off)
    }

    /// Grows the table (or makes the first) if one more entry would fill it past 3/4.
    fn make_room(&self) -> Result<()> {
        let (cap, old) = match self.table()? {
            Some(t) => (t.cap, Some(t)),
            None => (0, None),
        };
        let used = self.hdr.used.load(Ordering::Relaxed);
        if old.is_some() && used.saturating_add(1).saturating_mul(4) <= cap.saturating_mul(3) {
            return Ok(());
        }
        // Every entry sits in the table, so no more than its capacity can exist: a larger
        // count is forged, and must not size (and zero) a table of any size it likes.
        let len = self.hdr.len.load(Ordering::Relaxed).min(cap);
        let want = len
            .saturating_add(1)
            .saturating_mul(2)
            .max(FIRST_CAP)
            .checked_next_power_of_two()
            .ok_or(HeapError::NoSpace {
                requested: u64::MAX,
            })?;
        let n = want
            .checked_mul(2)
            .and_then(|w| w.checked_add(1))
            .ok_or(HeapError::NoSpace {
                requested: u64::MAX,
            })?;
        let off = self.heap.alloc(n * 8, self.me)?;
        self.heap.mark(off, STRUCTURE_MARK | self.obj as u64)?;
        let w = self.heap.block_words(off, n)?;
        for x in w {
            x.store(0, Ordering::Relaxed);
        }
        w[0].store(want, Ordering::Relaxed);
        let new = Table {
            off,
            cap: want,
            slots: &w[1..],
        };
        let mut moved = 0;
        if let Some(t) = &old {
            for i in 0..t.cap {
                let e = t.entry(i).load(Ordering::Relaxed);
                if e == 0 || e == TOMB {
                    continue;
                }
                let h = t.hash(i).load(Ordering::Relaxed);
                let mut j = h & (want - 1);
                while new.entry(j).load(Ordering::Relaxed) != 0 {
                    j = (j + 1) & (want - 1);
                }
                new.hash(j).store(h, Ordering::Relaxed);
                new.entry(j).store(e, Ordering::Relaxed);
                moved += 1;
            }
        }
        crate::fault::point("dict-table-filled");
        match old {
            Some(t) => self.heap.free_unlinked(t.off, "dict-grown", || {
                self.hdr.table.store(off, Ordering::Relaxed);
                true
            }),
            None => self.hdr.table.store(off, Ordering::Relaxed),
        }
        self.hdr.used.store(moved, Ordering::Relaxed);
        self.heap.own_by_structure(off);
        Ok(())
    }

    /// After a writer died holding the lock: recomputes the slots' hashes and the counters from
    /// the entries (every commit was one store, so the table itself is whole).
    fn repair(&self) -> Result<()> {
        let Some(t) = self.table()? else {
            self.hdr.len.store(0, Ordering::Relaxed);
            self.hdr.used.store(0, Ordering::Relaxed);
            return Ok(());
        };
        let (mut len, mut used) = (0, 0);
        let mut k = Vec::new();
        for i in 0..t.cap {
            let e = t.entry(i).load(Ordering::Relaxed);
            if e == 0 {
                continue;
            }
            used += 1;
            if e == TOMB {
                continue;
            }
            self.key(e, &mut k)?;
            t.hash(i).store(hash(&k), Ordering::Relaxed);
            len += 1;
        }
        self.hdr.len.store(len, Ordering::Relaxed);
        self.hdr.used.store(used, Ordering::Relaxed);
        Ok(())
    }

    /// Calls `each` with this dictionary's table and every entry; `false` if the table cannot
    /// be read (then every block counts as used: a leak, not a double free). For the heap's
    /// sweeps, which hold the heap lock and not the dictionary's: every unlink happens under the
    /// heap lock, and every link of a block the sweep could be asking about (one held by a dead
    /// thread, or one an unlinker left) already happened.
    pub(crate) fn blocks(&self, each: &mut dyn FnMut(u64)) -> bool {
        // Relaxed, like every store of these words: what orders a sweep after the links it
        // must see is the heap lock (unlinks and replacements happen under it), the death
        // proof of a dead holder (read after its last store), and the takeover of a dead
        // owner's lock. (The owner word's Release in `own_by_structure` pairs with the sweep's
        // own Acquire load of that word, not with these.)
        let table = self.hdr.table.load(Ordering::Relaxed);
        if table == 0 {
            return true;
        }
        each(table);
        match self.table() {
            Ok(Some(t)) => {
                for i in 0..t.cap {
                    let e = t.entry(i).load(Ordering::Relaxed);
                    if e != 0 && e != TOMB {
                        each(e);
                    }
                }
                true
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }
}
