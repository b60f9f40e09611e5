//! The shared heap: variable-size blocks that any process allocates and frees, in the part of the
//! segment after its fixed objects, growing the segment (up to its `max_size`) when no free block
//! fits.
//!
//! # Blocks
//!
//! The heap is a sequence of blocks from `start` to `end`, each a multiple of [`ALIGN`] bytes and at
//! least [`MIN_BLOCK`], starting with a [`BLOCK_HEADER`]-byte header:
//!
//! | word | content |
//! |---:|---|
//! | 0 | size in bytes, header included; bit 0 set while allocated ([`ALLOCATED`]) |
//! | 1 | size of the block before it (0 for the first) |
//! | 2 | owner (allocated blocks): who must free it, see below |
//! | 3 | the queue an owner word [`queued`] names (its directory index + 1) |
//! | 4, 5 | (free blocks) next and previous block of its free list, 0 for none |
//!
//! Every structural change is one store to one size word, made under the heap lock, so the sizes
//! alone always chain from `start` to `end`: a split writes the remainder's header first and then
//! shrinks the block's size word, a merge grows the surviving block's size word, a growth writes the
//! new block's header before it moves `end`. The previous sizes and the free lists are derived data:
//! a lock taker that finds the last owner died holding it ([`Acquired::OwnerDead`]) rebuilds them by
//! walking the sizes (`rebuild`), so a process killed in the middle of an allocation or a free
//! leaves the heap whole.
//!
//! # Owners
//!
//! An allocated block's owner word says who is responsible for it, so that nothing a dead process
//! held stays lost:
//! * `held(record, owner count)`: the thread with that participant record (and that owner count of
//!   the record). Freed by a sweep once that thread is gone for sure (`Inner::holder_gone`).
//! * `queued(pos)`, word 3 = the queue: handed to the message at position `pos` of that queue
//!   (written by the producer after the slot's reference, before it publishes). The consumer that
//!   claims the message makes it `held` by itself (one CAS, before it releases the slot) and frees
//!   it after reading. If the position never delivers it (its producer died before publishing, or
//!   its consumer died before taking it), the ring's recovery, which then holds the slot, frees it
//!   through [`Heap::abandon`]: only a block whose owner word names exactly that position.
//! * [`UNATTRIBUTED`]: a thread without a participant record (the table was full). Such a block is
//!   never swept; a crash while holding one leaks it, as a record-less thread's claim disables
//!   recovery on its queue (the degraded mode the participant table documents).
//!
//! The free lists are segregated by size class (four classes per power of two), with a bitmap of
//! non-empty classes: an allocation looks at a few blocks of its own class, then takes the first
//! block of the next non-empty class, which always fits.

use crate::layout::CachePadded;
use crate::objects::lock::Acquired;
use crate::sync::futex::Futex;
use crate::sync::{AtomicU64, Ordering};

crate::sync::native_only! {
    mod segment;
    #[cfg(test)]
    pub(crate) mod plain;

    /// A heap whose bytes can be addressed: natively a mapping or a buffer (the loom heap's
    /// words are separate loom objects, with no bytes between them).
    pub(crate) trait ByteHeap: HeapMem {
        /// `len` bytes from byte offset `off`, checked to lie in memory that lives as long as
        /// `self`; `Corrupt` otherwise.
        fn bytes(&self, off: u64, len: u64) -> Result<*mut u8, HeapError>;
    }

    impl<'a, M: ByteHeap> Heap<'a, M> {
        /// The payload of the block at `off`: `len` bytes after its header, in memory that lives
        /// for `'a`.
        pub(crate) fn payload(&self, off: u64, len: u64) -> Result<*mut u8, HeapError> {
            self.seg
                .bytes(off.checked_add(BLOCK_HEADER).ok_or(HeapError::Corrupt)?, len)
        }
    }
}

/// Why the shared heap could not hand out a block (crate-internal; the public errors carry its
/// substance: `BytesPutError::NoSpace`, `BytesPutError::Io`, `Corrupt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeapError {
    /// The segment would pass its `max_size`, or the shared-memory filesystem is full.
    NoSpace {
        /// Bytes the growth asked for.
        requested: u64,
    },
    /// The heap's metadata in shared memory is inconsistent.
    Corrupt,
    /// A system call failed (mapping the new part of the segment).
    #[allow(dead_code)] // not made under loom
    Io(String),
    /// A loom model thread died at a crash point (it must return at once, holding what it
    /// holds). Never made natively.
    #[allow(dead_code)]
    Died,
}

/// Page size the segment grows by.
const PAGE: u64 = 4096;

/// Where a heap lives: the words of its blocks, and what it asks of its segment. Natively the
/// segment's mapping ([`Inner`]); under loom a vector of loom atomics, so the models run the very
/// same heap code.
pub(crate) trait HeapMem {
    /// The 8-byte word at byte offset `off` (8-aligned), mapping it here first if needed;
    /// `Corrupt` past the segment's committed size.
    fn word(&self, off: u64) -> Result<&AtomicU64, HeapError>;
    /// Whether the `inc`-th owner of participant record `rec` is gone for sure.
    fn holder_gone(&self, rec: u32, inc: u32) -> bool;
    /// `n` consecutive words from byte offset `off` (8-aligned), mapping them first if
    /// needed; `Corrupt` past the committed size.
    fn words(&self, off: u64, n: u64) -> Result<&[AtomicU64], HeapError>;
    /// Calls `each` with every heap block object `obj` (directory index + 1) still uses, of
    /// those marked as its structure's ([`STRUCTURE_MARK`]): the links an unbounded queue's
    /// table names, a dictionary's table and entries, a list's array and items. Returns `false`
    /// if that cannot be told (a region that fails its checks): then every block counts as used.
    fn structure_blocks(&self, obj: u32, each: &mut dyn FnMut(u64)) -> bool;
    /// Bytes of the segment committed so far.
    fn committed(&self) -> u64;
    /// How far the segment may grow.
    fn max_size(&self) -> u64;
    /// Grows the segment from `from` to `to` committed bytes (space reserved, then published).
    fn commit(&self, from: u64, to: u64) -> Result<(), HeapError>;
    /// The calling thread's identity as a heap lock owner ([`HeapLock`]): nonzero, at most
    /// [`TOKEN`], and [`TOKEN`] itself for a thread that cannot be proven dead if it dies.
    fn lock_token(&self) -> u32;
    /// Whether the owner a lock token names is gone for sure.
    fn token_gone(&self, token: u32) -> bool;
    /// The heap lock was just taken over from the dead owner `token` names (for the counters
    /// and the log; nothing by default).
    fn lock_taken_over(&self, _token: u32) {}
}

/// Bits of a heap lock word that name its owner.
pub(crate) const TOKEN: u32 = (1 << 30) - 1;
const LOCK_INCONSISTENT: u32 = 1 << 30;
const LOCK_CONTENDED: u32 = 1 << 31;
/// Owner count bits of a lock token (see `Inner::lock_token`).
const TOKEN_INC_BITS: u32 = 14;

/// The heap's lock: a futex word that names its owner by a token the owner had *before* it took
/// the lock (its participant record and that record's owner count), so a process killed at any
/// instruction after taking it, even the very next one, can be proven dead and the lock taken
/// over (`Acquired::OwnerDead`). (A `Lock`'s owner stamps are stored after its CAS; a process
/// killed in between leaves that lock held for good, which a heap every long message goes
/// through cannot afford.) A thread without a participant record holds it as [`TOKEN`], which is
/// never taken over.
#[repr(C, align(128))]
pub(crate) struct HeapLock {
    word: Futex,
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<HeapLock>() == 128);
}

impl std::fmt::Debug for HeapLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapLock").finish_non_exhaustive()
    }
}

impl HeapLock {
    crate::sync::loom_only! {
        pub(crate) fn new() -> Self {
            Self { word: Futex::new(0) }
        }
    }

    /// Takes the lock, as the thread `me` ([`HeapMem::lock_token`]), waiting while a live owner
    /// holds it and taking it over from a dead one.
    pub(crate) fn lock<M: HeapMem + ?Sized>(&self, mem: &M) -> Acquired {
        let me = mem.lock_token() & TOKEN;
        let w = self.word.word();
        let mut backoff = crate::sync::backoff::Backoff::new();
        loop {
            let cur = w.load(Ordering::Relaxed);
            let owner = cur & TOKEN;
            // The owner's liveness is looked at only once per sleep slice (it reads /proc).
            if owner == 0 || (owner != TOKEN && backoff.is_completed() && mem.token_gone(owner)) {
                let dead = owner != 0;
                let next = me
                    | (cur & LOCK_CONTENDED)
                    | if dead {
                        LOCK_INCONSISTENT
                    } else {
                        cur & LOCK_INCONSISTENT
                    };
                // SYNC: Acquire pairs with the Release swap in `unlock` (or orders after a dead
                // owner's last stores, which a takeover then repairs): the heap as the last owner
                // left it is visible.
                if w.compare_exchange(cur, next, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    // A process killed right here still names its record in the word.
                    crate::fault::point("heap-locked");
                    if dead {
                        mem.lock_taken_over(owner);
                    }
                    return if next & LOCK_INCONSISTENT != 0 {
                        Acquired::OwnerDead
                    } else {
                        Acquired::Clean
                    };
                }
                continue;
            }
            // Spin, then yield, for about as long as a hold takes (a few hundred nanoseconds to
            // microseconds), before paying for a sleep and a wake-up.
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            // Sleep until an unlock wakes us, or a slice passes (then look whether the owner
            // died: it will never wake us).
            if cur & LOCK_CONTENDED == 0
                && w.compare_exchange(
                    cur,
                    cur | LOCK_CONTENDED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            let slice = std::time::Duration::from_millis(10);
            let slice = crate::sync::slice_end(Some(std::time::Instant::now() + slice), slice);
            let _ = self.word.wait(cur | LOCK_CONTENDED, slice);
            crate::sync::yield_now();
        }
    }

    /// Releases the lock; `consistent`: whether the next owner may trust the heap as it is.
    pub(crate) fn unlock(&self, consistent: bool) {
        let next = if consistent { 0 } else { LOCK_INCONSISTENT };
        // SYNC: Release pairs with the Acquire CAS in `lock` of the next owner.
        if self.word.word().swap(next, Ordering::Release) & LOCK_CONTENDED != 0 {
            self.word.wake(u32::MAX);
        }
    }

    crate::sync::native_only! {
    /// Marks the lock as left by a dead owner (fuzzing: its next taker rebuilds).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_inconsistent(&self) {
        let _ = self.word.word().compare_exchange(
            0,
            LOCK_INCONSISTENT,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    }
}

/// Block sizes and offsets are multiples of this.
pub(crate) const ALIGN: u64 = 16;
/// Bytes of a block header (the payload starts after it, 16-aligned).
pub(crate) const BLOCK_HEADER: u64 = 32;
/// Smallest block: a header and the two free-list links, rounded to [`ALIGN`].
pub(crate) const MIN_BLOCK: u64 = 64;
/// Size word bit: the block is allocated.
pub(crate) const ALLOCATED: u64 = 1;
/// Number of size classes: four per power of two from 2^6 to 2^63.
const CLASSES: usize = 232;
/// Blocks of its own class an allocation looks at before it takes a bigger class.
const CLASS_SCAN: u32 = 16;
/// Smallest growth of the segment, so that a stream of small allocations does not grow it a page
/// at a time.
const MIN_GROWTH: u64 = 1 << 20;

const TAG_SHIFT: u32 = 62;
const TAG_HELD: u64 = 1 << TAG_SHIFT;
const TAG_QUEUED: u64 = 2 << TAG_SHIFT;
const TAG_MASK: u64 = 3 << TAG_SHIFT;
/// Owner word of a block held by a thread without a participant record.
pub(crate) const UNATTRIBUTED: u64 = 0;

/// Owner word: held by the thread that is the `inc`-th owner of participant record `rec`.
#[inline]
pub(crate) const fn held(rec: u32, inc: u32) -> u64 {
    TAG_HELD | ((rec as u64) & REC_MASK) << 32 | inc as u64
}

/// Record index bits of a `held` owner word.
const REC_MASK: u64 = (1 << 29) - 1;

/// Owner word: handed to the message at position `pos` of the queue in word 3.
#[inline]
pub(crate) const fn queued(pos: u64) -> u64 {
    TAG_QUEUED | (pos & !TAG_MASK)
}

/// Word 3 of a link of an unbounded queue (`crate::chain`): marks it as a link of queue `obj`
/// (the low bits), so a sweep that finds its installer dead checks the queue's table instead of
/// freeing it.
pub(crate) const STRUCTURE_MARK: u64 = 1 << 63;

/// Length word of a byte-queue slot whose message lives in the heap: the slot's in-place bytes
/// then hold the message length (u64) and its block's offset (u64) instead of the message.
pub(crate) const LONG_MESSAGE: u32 = u32::MAX;

/// Writes a heap reference into a byte-queue slot payload (length word first, then the
/// reference, as [`read_ref`] reads it).
#[inline]
pub(crate) fn write_ref(payload: &mut [u8], len: u64, off: u64) {
    let w = crate::layout::BYTES_LEN_WORD as usize;
    payload[..4].copy_from_slice(&LONG_MESSAGE.to_le_bytes());
    payload[w..w + 8].copy_from_slice(&len.to_le_bytes());
    payload[w + 8..w + 16].copy_from_slice(&off.to_le_bytes());
}

/// The `(length, block offset)` a byte-queue slot payload names, if its length word says the
/// message lives in the heap.
#[inline]
pub(crate) fn read_ref(payload: &[u8]) -> Option<(u64, u64)> {
    let w = crate::layout::BYTES_LEN_WORD as usize;
    if payload.len() < w + 16 || payload[..4] != LONG_MESSAGE.to_le_bytes() {
        return None;
    }
    let word = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().unwrap_or([0; 8]));
    Some((word(w), word(w + 8)))
}

/// The control block of a segment's heap (at the header's `heap_offset`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct HeapHeader {
    /// Held for every change of the block structure and the free lists.
    pub(crate) lock: HeapLock,
    /// First block (fixed at creation).
    pub(crate) start: AtomicU64,
    /// End of the last block; blocks cover `[start, end)` exactly.
    pub(crate) end: AtomicU64,
    /// Size of the last block (0: no block).
    pub(crate) last: AtomicU64,
    /// Bytes in allocated blocks, headers included.
    pub(crate) in_use: AtomicU64,
    /// Allocated blocks.
    pub(crate) blocks: AtomicU64,
    /// Times the segment grew.
    pub(crate) growths: AtomicU64,
    /// Blocks freed for an owner that was gone (sweeps and recovery).
    pub(crate) reclaimed: AtomicU64,
    pub(crate) _pad: AtomicU64,
    /// Bit `c` set while free list `c` is not empty.
    pub(crate) bitmap: CachePadded<[AtomicU64; 4]>,
    /// Head of each free list (a block offset, 0 for none).
    pub(crate) lists: [AtomicU64; CLASSES],
}

crate::sync::loom_only! {
    impl HeapHeader {
        /// A control block of loom objects whose blocks cover `[start, end)` as one free block
        /// (`mem` holds the block words), for the models.
        pub(crate) fn new_heap<M: HeapMem>(mem: &M, start: u64, end: u64) -> Self {
            let h = Self {
                lock: HeapLock::new(),
                start: AtomicU64::new(start),
                end: AtomicU64::new(end),
                last: AtomicU64::new(end - start),
                in_use: AtomicU64::new(0),
                blocks: AtomicU64::new(0),
                growths: AtomicU64::new(0),
                reclaimed: AtomicU64::new(0),
                _pad: AtomicU64::new(0),
                bitmap: CachePadded(std::array::from_fn(|_| AtomicU64::new(0))),
                lists: std::array::from_fn(|_| AtomicU64::new(0)),
            };
            let size = end - start;
            let w = |i: u64| mem.word(start + 8 * i).expect("model heap word");
            w(1).store(0, Ordering::Relaxed);
            w(0).store(size, Ordering::Relaxed);
            w(4).store(0, Ordering::Relaxed);
            w(5).store(0, Ordering::Relaxed);
            let c = class(size);
            h.lists[c].store(start, Ordering::Relaxed);
            h.bitmap.0[c / 64].store(1 << (c % 64), Ordering::Relaxed);
            h
        }
    }
}

/// Bytes of the heap's control block.
pub(crate) const HEAP_HEADER_SIZE: u64 = core::mem::size_of::<HeapHeader>() as u64;

crate::sync::native_only! {
    const _: () = assert!(HEAP_HEADER_SIZE % 128 == 0);
}

/// What the layout hash learns of the heap's formats.
pub(crate) const LAYOUT_TAG: u64 = HEAP_HEADER_SIZE << 32 | BLOCK_HEADER << 16 | CLASSES as u64;

/// Size class of a block of `size` (≥ [`MIN_BLOCK`]) bytes.
#[inline]
fn class(size: u64) -> usize {
    let l = 63 - size.leading_zeros() as u64;
    let sub = (size >> (l - 2)) & 3;
    ((l - 6) * 4 + sub) as usize
}

/// Whether a block of `size` bytes at `b` can be one of a heap ending at `end`: at least
/// [`MIN_BLOCK`], a multiple of [`ALIGN`], and not past `end` (what every walk checks before it
/// trusts a size word).
#[inline]
fn fits(b: u64, size: u64, end: u64) -> bool {
    size >= MIN_BLOCK && size % ALIGN == 0 && b.checked_add(size).is_some_and(|n| n <= end)
}

/// Block size for a payload of `len` bytes, or `None` if it cannot be represented.
#[inline]
pub(crate) fn block_size(len: u64) -> Option<u64> {
    let s = crate::layout::align_up(len.checked_add(BLOCK_HEADER)?, ALIGN)?;
    Some(s.max(MIN_BLOCK))
}

/// What [`Heap::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeapStats {
    pub(crate) in_use: u64,
    pub(crate) blocks: u64,
    pub(crate) heap_bytes: u64,
    pub(crate) growths: u64,
    pub(crate) reclaimed: u64,
}

/// The heap of one segment.
pub(crate) struct Heap<'a, M: HeapMem> {
    seg: &'a M,
    hdr: &'a HeapHeader,
}

/// The heap lock, held; unlocked on drop, declaring the heap consistent unless an operation
/// found it corrupt ([`Locked::check`]) or the thread is unwinding: the next taker then rebuilds.
struct Locked<'h, 'a, M: HeapMem> {
    heap: &'h Heap<'a, M>,
    ok: std::cell::Cell<bool>,
}

impl<M: HeapMem> Locked<'_, '_, M> {
    /// Passes `r` through, remembering a failure (the structure may be half-changed).
    fn check<T>(&self, r: Result<T, HeapError>) -> Result<T, HeapError> {
        if r.is_err() {
            self.ok.set(false);
        }
        r
    }
}

impl<M: HeapMem> Drop for Locked<'_, '_, M> {
    fn drop(&mut self) {
        self.heap
            .hdr
            .lock
            .unlock(self.ok.get() && !std::thread::panicking());
    }
}

/// Writes a fresh heap control block whose blocks cover `[start, end)` (one free block, or none
/// if the span is too small). The block memory is zero (a new segment).
///
/// # Safety
///
/// `hdr` points to `HEAP_HEADER_SIZE` zeroed, 128-aligned bytes of the mapping at `base`, and
/// `[start, end)` lies inside that mapping, `ALIGN`-aligned, unused by anything else; nobody else
/// uses the segment yet.
pub(crate) unsafe fn init(base: *mut u8, hdr: *mut HeapHeader, start: u64, end: u64) {
    // SAFETY: the caller's contract: the header is ours and zero, which is a valid HeapHeader
    // (atomics and an unlocked lock).
    let h = unsafe { &*hdr };
    h.start.store(start, Ordering::Relaxed);
    h.end.store(start, Ordering::Relaxed);
    if end >= start + MIN_BLOCK {
        let size = (end - start) / ALIGN * ALIGN;
        // SAFETY: [start, start + size) is inside the mapping (caller), 16-aligned.
        let w = |i: u64| unsafe { &*base.add((start + 8 * i) as usize).cast::<AtomicU64>() };
        w(1).store(0, Ordering::Relaxed);
        w(0).store(size, Ordering::Relaxed);
        h.end.store(start + size, Ordering::Relaxed);
        h.last.store(size, Ordering::Relaxed);
        let c = class(size);
        h.lists[c].store(start, Ordering::Relaxed);
        h.bitmap.0[c / 64].store(1 << (c % 64), Ordering::Relaxed);
    }
}

impl<'a, M: HeapMem> Heap<'a, M> {
    crate::sync::model_or_test! {
        /// A heap over `mem` with its control block `hdr` (the loom models' heaps, and the unit
        /// tests' over plain memory).
        pub(crate) fn over(mem: &'a M, hdr: &'a HeapHeader) -> Self {
            Heap { seg: mem, hdr }
        }
    }

    /// Word `i` of the block at `off`, mapping the part of the segment it lies in if needed.
    #[inline]
    fn word(&self, off: u64, i: u64) -> Result<&'a AtomicU64, HeapError> {
        self.seg
            .word(off.checked_add(8 * i).ok_or(HeapError::Corrupt)?)
    }

    fn lock(&self) -> Result<Locked<'_, 'a, M>, HeapError> {
        let how = self.hdr.lock.lock(self.seg);
        let g = Locked {
            heap: self,
            ok: std::cell::Cell::new(true),
        };
        if how.owner_died() {
            // The last owner died mid-change (or found the heap corrupt): the sizes still chain;
            // rebuild the rest, then give back what dead holders had.
            g.check(self.rebuild())?;
            self.sweep_locked(true);
        }
        Ok(g)
    }

    /// Checks that `off` can be a block of this heap: aligned, inside `[start, end)`.
    #[inline]
    fn check_block(&self, off: u64) -> Result<(), HeapError> {
        let start = self.hdr.start.load(Ordering::Relaxed);
        let end = self.hdr.end.load(Ordering::Acquire);
        if off % ALIGN != 0 || off < start || off.saturating_add(MIN_BLOCK) > end {
            return Err(HeapError::Corrupt);
        }
        Ok(())
    }

    /// Allocates a block with at least `len` payload bytes, owned by `owner`. Grows the segment
    /// if no free block fits.
    pub(crate) fn alloc(&self, len: u64, owner: u64) -> Result<u64, HeapError> {
        let need = block_size(len).ok_or(HeapError::NoSpace { requested: len })?;
        let g = self.lock()?;
        if let Some(b) = g.check(self.find(need))? {
            let r = self.take_block(b, need, owner);
            if r == Err(HeapError::Died) {
                core::mem::forget(g);
                return Err(HeapError::Died);
            }
            g.check(r)?;
            return Ok(b);
        }
        // Before growing, give back what gone holders left.
        self.sweep_locked(false);
        if let Some(b) = g.check(self.find(need))? {
            g.check(self.take_block(b, need, owner))?;
            return Ok(b);
        }
        match self.grow(need) {
            // Nothing changed yet when the growth is refused.
            Err(e @ HeapError::NoSpace { .. }) => return Err(e),
            r => g.check(r)?,
        }
        let b = g.check(self.find(need)?.ok_or(HeapError::Corrupt))?;
        g.check(self.take_block(b, need, owner))?;
        Ok(b)
    }

    /// Frees a block the caller holds (its owner word names the caller, or the caller won it by
    /// a CAS).
    pub(crate) fn free(&self, off: u64) -> Result<(), HeapError> {
        self.check_block(off)?;
        let g = self.lock()?;
        g.check(self.free_locked(off))
    }

    /// Hands the block at `off` to the message at position `pos` of queue `obj` (the producer,
    /// which holds it, after writing the slot's reference and before publishing).
    pub(crate) fn hand_over(&self, off: u64, obj: u32, pos: u64) -> Result<(), HeapError> {
        self.word(off, 3)?.store(obj as u64, Ordering::Relaxed);
        // SYNC: Release orders the queue word above (and the slot's reference, written before
        // this call) before the owner word; pairs with the Acquire load in `abandon`.
        self.word(off, 2)?.store(queued(pos), Ordering::Release);
        Ok(())
    }

    /// The memory the heap runs over (the segment).
    pub(crate) fn mem(&self) -> &'a M {
        self.seg
    }

    /// Gives back what gone holders left (and orphaned structure blocks), now.
    pub(crate) fn sweep(&self) {
        if let Ok(_g) = self.lock() {
            self.sweep_locked(false);
        }
    }

    /// `n` payload words of the allocated block at `off` (`Corrupt` unless it is an allocated
    /// block with that many payload bytes).
    pub(crate) fn block_words(&self, off: u64, n: u64) -> Result<&'a [AtomicU64], HeapError> {
        self.check_block(off)?;
        // SYNC: Acquire pairs with the Release of the lock hold that allocated the block (its
        // size word is then the one this check needs).
        let size = self.word(off, 0)?.load(Ordering::Acquire);
        let bytes = n.checked_mul(8).ok_or(HeapError::Corrupt)?;
        if size & ALLOCATED == 0 || (size & !ALLOCATED).saturating_sub(BLOCK_HEADER) < bytes {
            return Err(HeapError::Corrupt);
        }
        self.seg.words(off + BLOCK_HEADER, n)
    }

    /// Sets word 3 of a block the caller holds (a link of an unbounded queue marks itself).
    pub(crate) fn mark(&self, off: u64, word3: u64) -> Result<(), HeapError> {
        self.word(off, 3)?.store(word3, Ordering::Relaxed);
        Ok(())
    }

    /// Makes a block the caller holds owned by the segment's structures (an installed link of an
    /// unbounded queue): never swept, freed only by the structure.
    pub(crate) fn own_by_structure(&self, off: u64) {
        if let Ok(w) = self.word(off, 2) {
            w.store(UNATTRIBUTED, Ordering::Release);
        }
    }

    /// Takes the block at `off`, handed to a message of queue `obj`, for the consumer that
    /// claimed that message (before it releases the slot): its owner becomes `me`. Checks that
    /// it is an allocated block with at least `len` payload bytes. `Corrupt` otherwise.
    pub(crate) fn take(&self, off: u64, len: u64, obj: u32, me: u64) -> Result<(), HeapError> {
        self.check_block(off)?;
        let size = self.word(off, 0)?.load(Ordering::Acquire);
        if size & ALLOCATED == 0 || block_size(len).map_or(true, |n| size & !ALLOCATED < n) {
            return Err(HeapError::Corrupt);
        }
        let owner = self.word(off, 2)?;
        // SYNC: Acquire pairs with the producer's Release store in `hand_over`: the queue word
        // and the message bytes it wrote before are visible.
        let cur = owner.load(Ordering::Acquire);
        if cur & TAG_MASK != TAG_QUEUED || self.word(off, 3)?.load(Ordering::Relaxed) != obj as u64
        {
            return Err(HeapError::Corrupt);
        }
        // While we hold the message's claim nobody else changes this word (recovery frees a
        // queued block only once its position no longer delivers it); the CAS guards against a
        // forged word.
        // SYNC: Release pairs with a sweeper's Acquire load of the owner word: our take of the
        // participant record the word names happens before, so the sweeper reads that record as
        // ours (never an older owner count or a free record) and does not take us for gone.
        owner
            .compare_exchange(cur, me, Ordering::Release, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| HeapError::Corrupt)
    }

    /// Recovery of queue `obj` holds the slot of position `pos`, which will never deliver its
    /// message (tombstoned, or, with `released`, released for a dead consumer and counted lost),
    /// and the slot's reference names block `off`: frees the block if its owner word still names
    /// exactly that position, or, with `released`, if a holder that is gone for sure has it (the
    /// dead consumer of this claim, killed after its take). A reference left over from an
    /// earlier message of the slot names a block whose owner word says something else (or whose
    /// holder lives), and is left alone.
    pub(crate) fn abandon(&self, off: u64, obj: u32, pos: u64, released: bool) {
        if self.check_block(off).is_err() {
            return;
        }
        let Ok(g) = self.lock() else { return };
        let (Ok(size), Ok(owner), Ok(q)) =
            (self.word(off, 0), self.word(off, 2), self.word(off, 3))
        else {
            return;
        };
        if size.load(Ordering::Relaxed) & ALLOCATED == 0 {
            return;
        }
        // SYNC: Acquire pairs with the Release store in `hand_over` (the queue word).
        let cur = owner.load(Ordering::Acquire);
        if q.load(Ordering::Relaxed) != obj as u64 {
            return;
        }
        let ours = cur == queued(pos)
            || (released
                && cur & TAG_MASK == TAG_HELD
                && self
                    .seg
                    .holder_gone(((cur >> 32) & REC_MASK) as u32, cur as u32));
        if ours && !self.is_block_start(off) {
            return;
        }
        if ours
            && owner
                .compare_exchange(cur, TAG_MASK, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && g.check(self.free_locked(off)).is_ok()
        {
            self.reclaimed_block(off);
        }
    }

    /// Counts a block given back for a holder that is gone, and reports it (see
    /// `mapping::recovery`).
    fn reclaimed_block(&self, off: u64) {
        self.hdr.reclaimed.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            target: "shmq::recovery",
            "heap block at offset {off} given back: its holder died (or never delivered it)"
        );
    }

    /// Figures for `stats()` (after a sweep, so they describe what live holders have).
    pub(crate) fn stats(&self) -> Result<HeapStats, HeapError> {
        let _g = self.lock()?;
        self.sweep_locked(false);
        Ok(self.counters())
    }

    /// The heap's counters as they stand, without the lock or a sweep: for an observer that
    /// changes nothing (`crate::inspect`). Each word is read on its own, so the figures may be
    /// mid-update, and blocks of dead holders not yet swept count as in use.
    pub(crate) fn counters(&self) -> HeapStats {
        let h = self.hdr;
        HeapStats {
            in_use: h.in_use.load(Ordering::Relaxed),
            blocks: h.blocks.load(Ordering::Relaxed),
            // Saturating: `start` and `end` are words of the segment a hostile process may
            // have forged (the fuzz corpus's `regression-stats-forged-bounds`).
            heap_bytes: h
                .end
                .load(Ordering::Relaxed)
                .saturating_sub(h.start.load(Ordering::Relaxed)),
            growths: h.growths.load(Ordering::Relaxed),
            reclaimed: h.reclaimed.load(Ordering::Relaxed),
        }
    }

    crate::sync::model_or_test! {
    /// Checks the heap's invariants (call with no other thread using it): the sizes chain from
    /// `start` to `end`, every previous-size word and `last` match, no two free blocks are
    /// neighbours, every free block is on the list of its class exactly once and nothing else
    /// is, and the counters match the allocated blocks. Returns `(bytes in use, blocks)`.
    pub(crate) fn check(&self) -> Result<(u64, u64), String> {
        let h = self.hdr;
        let w = |off: u64, i: u64| {
            self.word(off, i)
                .map(|a| a.load(Ordering::Relaxed))
                .map_err(|e| format!("{e:?} at {off}"))
        };
        let (start, end) = (
            h.start.load(Ordering::Relaxed),
            h.end.load(Ordering::Relaxed),
        );
        let (mut b, mut prev, mut prev_free) = (start, 0, false);
        let (mut in_use, mut blocks) = (0, 0);
        let mut free = Vec::new();
        while b < end {
            let v = w(b, 0)?;
            let size = v & !ALLOCATED;
            if !fits(b, size, end) {
                return Err(format!("block {b}: size {size}"));
            }
            if w(b, 1)? != prev {
                return Err(format!("block {b}: previous size {} != {prev}", w(b, 1)?));
            }
            let is_free = v & ALLOCATED == 0;
            if is_free && prev_free {
                return Err(format!("block {b}: two free blocks in a row"));
            }
            if is_free {
                free.push((b, size));
            } else {
                in_use += size;
                blocks += 1;
            }
            prev_free = is_free;
            prev = size;
            b += size;
        }
        if b != end || h.last.load(Ordering::Relaxed) != prev {
            return Err(format!("chain ends at {b}, end {end}, last {prev}"));
        }
        // The lists of the classes the bitmap marks (a list whose bit is clear is never looked
        // at by an allocation; reading all of them would cost the models hundreds of loads).
        let mut listed = Vec::new();
        let marked = (0..CLASSES)
            .filter(|&c| h.bitmap.0[c / 64].load(Ordering::Relaxed) >> (c % 64) & 1 == 1);
        for c in marked.collect::<Vec<_>>() {
            let mut x = h.lists[c].load(Ordering::Relaxed);
            if x == 0 {
                return Err(format!("class {c}: marked, but its list is empty"));
            }
            let mut back = 0;
            while x != 0 {
                if listed.len() > free.len() {
                    return Err("a free list loops".into());
                }
                if class(w(x, 0)? & !ALLOCATED) != c || w(x, 5)? != back {
                    return Err(format!("block {x} on list {c} wrongly"));
                }
                listed.push((x, w(x, 0)?));
                back = x;
                x = w(x, 4)?;
            }
        }
        listed.sort_unstable();
        if listed != free {
            return Err(format!("free blocks {free:?}, listed {listed:?}"));
        }
        if (
            h.in_use.load(Ordering::Relaxed),
            h.blocks.load(Ordering::Relaxed),
        ) != (in_use, blocks)
        {
            return Err(format!(
                "counters say {:?}, blocks say {:?}",
                (
                    h.in_use.load(Ordering::Relaxed),
                    h.blocks.load(Ordering::Relaxed)
                ),
                (in_use, blocks)
            ));
        }
        Ok((in_use, blocks))
    }
    }

    // ---- under the lock ----

    /// Frees the blocks of holders gone for sure (a dead holder's block that a structure uses
    /// is handed to the structure instead) and, with `orphans`, the structure blocks their
    /// structure no longer uses. Orphans exist only when an unlinker died between its unlink and
    /// its free ([`Heap::free_unlinked`]), inside a hold of this lock, so only the sweep after
    /// taking the lock over from a dead owner looks for them (each look walks the structure).
    /// A structure is walked at most once per sweep, whatever the number of its blocks in
    /// question.
    fn sweep_locked(&self, orphans: bool) {
        let h = self.hdr;
        let end = h.end.load(Ordering::Relaxed);
        let mut b = h.start.load(Ordering::Relaxed);
        let mut gone = Vec::new();
        while b < end {
            let Ok(sw) = self.word(b, 0) else { return };
            let size = sw.load(Ordering::Relaxed);
            let s = size & !ALLOCATED;
            if !fits(b, s, end) {
                return; // a broken chain: leave it to the next rebuild
            }
            let next = b + s;
            if size & ALLOCATED != 0 {
                if let (Ok(w), Ok(m)) = (self.word(b, 2), self.word(b, 3)) {
                    // SYNC: Acquire pairs with the Release CAS in `take` (and the owners' other
                    // Release stores): the record an owner word names was taken before it.
                    let o = w.load(Ordering::Acquire);
                    let m = m.load(Ordering::Relaxed);
                    let held_by_gone = o & TAG_MASK == TAG_HELD
                        && self
                            .seg
                            .holder_gone(((o >> 32) & REC_MASK) as u32, o as u32);
                    // A structure's block (owner 0) its object may no longer use: a freer died
                    // between unlinking it and freeing it (both under this lock).
                    let orphan = orphans && o == UNATTRIBUTED && m & STRUCTURE_MARK != 0;
                    if held_by_gone || orphan {
                        gone.push((b, o, m));
                    }
                }
            }
            b = next;
        }
        // The blocks each structure in question uses, asked once per structure.
        let mut used: std::collections::HashMap<u32, Option<std::collections::HashSet<u64>>> =
            std::collections::HashMap::new();
        for &(_, _, m) in &gone {
            if m & STRUCTURE_MARK != 0 {
                used.entry(m as u32).or_insert_with(|| {
                    let mut set = std::collections::HashSet::new();
                    self.seg
                        .structure_blocks(m as u32, &mut |b| {
                            set.insert(b);
                        })
                        .then_some(set)
                });
            }
        }
        let holds = |m: u64, b: u64| {
            used.get(&(m as u32))
                .is_some_and(|s| s.as_ref().map_or(true, |s| s.contains(&b)))
        };
        for (b, o, m) in gone {
            let Ok(w) = self.word(b, 2) else { continue };
            let structure = m & STRUCTURE_MARK != 0;
            if structure && holds(m, b) {
                // A block its allocator linked into a structure before it died (or the
                // structure's own, owner 0): the structure owns it.
                if o != UNATTRIBUTED {
                    let _ =
                        w.compare_exchange(o, UNATTRIBUTED, Ordering::Relaxed, Ordering::Relaxed);
                }
                continue;
            }
            if w.compare_exchange(o, TAG_MASK, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
                && self.free_locked(b).is_ok()
            {
                self.reclaimed_block(b);
            }
        }
    }

    /// Frees link block `off` of an unbounded queue whose table slot `slot` holds entry `e`
    /// naming it: clears the slot and frees the block in one hold of the lock (so a sweep never
    /// sees the block out of the table and still allocated, unless the freer died here).
    pub(crate) fn free_link(&self, slot: &AtomicU64, e: u64, off: u64) {
        self.free_unlinked(off, "chain-link-unlisted", || {
            slot.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Frees block `off` of a structure ([`STRUCTURE_MARK`]) once `unlink` (run under the heap
    /// lock) has taken it out of the structure and returned `true`; nothing if it returns
    /// `false`. One hold of the lock covers both, so a sweep never finds the block unlinked and
    /// still allocated unless the caller died in between (crash point `point`, after the unlink),
    /// and then the sweep frees it as an orphan.
    pub(crate) fn free_unlinked(
        &self,
        off: u64,
        point: &'static str,
        unlink: impl FnOnce() -> bool,
    ) {
        self.free_all_unlinked(&[off], point, unlink)
    }

    /// [`free_unlinked`](Self::free_unlinked) for several blocks that one `unlink` takes out
    /// together (a list's old array and the item a removal dropped from it).
    pub(crate) fn free_all_unlinked(
        &self,
        offs: &[u64],
        point: &'static str,
        unlink: impl FnOnce() -> bool,
    ) {
        let Ok(g) = self.lock() else { return };
        if !unlink() {
            return;
        }
        crate::fault::point(point);
        for &off in offs {
            let ok = self
                .word(off, 0)
                .is_ok_and(|w| w.load(Ordering::Relaxed) & ALLOCATED != 0)
                && self.is_block_start(off);
            if !(ok && g.check(self.free_locked(off)).is_ok()) {
                g.ok.set(false);
                return;
            }
        }
    }

    /// Whether `off` is where a block starts (its neighbours' sizes agree with it), so that a
    /// reference into the middle of a block is never taken for one. Under the lock.
    fn is_block_start(&self, off: u64) -> bool {
        let h = self.hdr;
        let (start, end) = (
            h.start.load(Ordering::Relaxed),
            h.end.load(Ordering::Relaxed),
        );
        let Ok(size) = self
            .word(off, 0)
            .map(|w| w.load(Ordering::Relaxed) & !ALLOCATED)
        else {
            return false;
        };
        let Ok(prev) = self.word(off, 1).map(|w| w.load(Ordering::Relaxed)) else {
            return false;
        };
        if size < MIN_BLOCK || off < start {
            return false;
        }
        let before_ok = if off == start {
            prev == 0
        } else {
            off.checked_sub(prev)
                .filter(|&p| p >= start && prev >= MIN_BLOCK)
                .and_then(|p| self.word(p, 0).ok())
                .is_some_and(|w| w.load(Ordering::Relaxed) & !ALLOCATED == prev)
        };
        let after_ok = match off.checked_add(size) {
            Some(n) if n == end => h.last.load(Ordering::Relaxed) == size,
            Some(n) if n < end => self
                .word(n, 1)
                .is_ok_and(|w| w.load(Ordering::Relaxed) == size),
            _ => false,
        };
        before_ok && after_ok
    }

    /// Rebuilds the derived state (previous sizes, free lists, counters) by walking the sizes,
    /// merging neighbouring free blocks on the way.
    fn rebuild(&self) -> Result<(), HeapError> {
        let h = self.hdr;
        for w in h.bitmap.0.iter() {
            w.store(0, Ordering::Relaxed);
        }
        for l in h.lists.iter() {
            l.store(0, Ordering::Relaxed);
        }
        let start = h.start.load(Ordering::Relaxed);
        let end = h.end.load(Ordering::Relaxed);
        let (mut in_use, mut blocks, mut prev) = (0u64, 0u64, 0u64);
        let mut b = start;
        while b < end {
            let sw = self.word(b, 0)?;
            let mut size = sw.load(Ordering::Relaxed);
            let mut s = size & !ALLOCATED;
            if !fits(b, s, end) {
                return Err(HeapError::Corrupt);
            }
            // A block a sweep or recovery had won (owner FREEING) but not freed when its
            // freer died holding the lock: nobody else can free it, so free it here.
            if size & ALLOCATED != 0 && self.word(b, 2)?.load(Ordering::Relaxed) == TAG_MASK {
                sw.store(s, Ordering::Relaxed);
                size = s;
                self.reclaimed_block(b);
            }
            self.word(b, 1)?.store(prev, Ordering::Relaxed);
            if size & ALLOCATED != 0 {
                in_use += s;
                blocks += 1;
            } else {
                loop {
                    let n = b + s;
                    if n >= end {
                        break;
                    }
                    let ns = self.word(n, 0)?.load(Ordering::Relaxed);
                    if ns & ALLOCATED != 0 && self.word(n, 2)?.load(Ordering::Relaxed) != TAG_MASK {
                        break;
                    }
                    let ns = ns & !ALLOCATED;
                    if !fits(n, ns, end) {
                        return Err(HeapError::Corrupt);
                    }
                    s += ns;
                    sw.store(s, Ordering::Relaxed);
                }
                self.list_push(b, s)?;
            }
            prev = s;
            b += s;
        }
        h.last.store(prev, Ordering::Relaxed);
        h.in_use.store(in_use, Ordering::Relaxed);
        h.blocks.store(blocks, Ordering::Relaxed);
        Ok(())
    }

    /// A free block of at least `need` bytes, if one exists.
    fn find(&self, need: u64) -> Result<Option<u64>, HeapError> {
        let h = self.hdr;
        let c = class(need);
        let mut b = h.lists[c].load(Ordering::Relaxed);
        let mut looked = 0;
        while b != 0 && looked < CLASS_SCAN {
            if self.word(b, 0)?.load(Ordering::Relaxed) >= need {
                return Ok(Some(b));
            }
            b = self.word(b, 4)?.load(Ordering::Relaxed);
            looked += 1;
        }
        // Any block of a higher class fits: its class starts above `need`.
        let first = c + 1;
        for wi in first / 64..h.bitmap.0.len() {
            let mut bits = h.bitmap.0[wi].load(Ordering::Relaxed);
            if wi == first / 64 {
                bits &= !0u64 << (first % 64);
            }
            if bits != 0 {
                let k = wi * 64 + bits.trailing_zeros() as usize;
                if k >= CLASSES {
                    return Err(HeapError::Corrupt);
                }
                let b = h.lists[k].load(Ordering::Relaxed);
                return if b == 0 {
                    Err(HeapError::Corrupt)
                } else {
                    Ok(Some(b))
                };
            }
        }
        Ok(None)
    }

    /// Allocates free block `b` (≥ `need` bytes) for `owner`, splitting off the rest.
    fn take_block(&self, b: u64, need: u64, owner: u64) -> Result<(), HeapError> {
        let h = self.hdr;
        let sw = self.word(b, 0)?;
        let s = sw.load(Ordering::Relaxed);
        if s & ALLOCATED != 0 || s < need {
            return Err(HeapError::Corrupt);
        }
        self.list_remove(b, s)?;
        let mut size = s;
        if s - need >= MIN_BLOCK {
            let r = b + need;
            let rs = s - need;
            self.word(r, 1)?.store(need, Ordering::Relaxed);
            self.word(r, 0)?.store(rs, Ordering::Relaxed);
            if crate::fault::dies("heap-split") {
                // Loom models only: dies holding the lock, the remainder's header written, the
                // block's size word not yet shrunk (and it off its free list).
                return Err(HeapError::Died);
            }
            self.set_prev_of_next(r, rs)?;
            self.list_push(r, rs)?;
            size = need;
        }
        // The owner first: until the size word says allocated the block is free for a walk.
        self.word(b, 2)?.store(owner, Ordering::Relaxed);
        self.word(b, 3)?.store(0, Ordering::Relaxed);
        sw.store(size | ALLOCATED, Ordering::Relaxed);
        h.in_use.fetch_add(size, Ordering::Relaxed);
        h.blocks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn free_locked(&self, b: u64) -> Result<(), HeapError> {
        let h = self.hdr;
        let sw = self.word(b, 0)?;
        let size = sw.load(Ordering::Relaxed);
        if size & ALLOCATED == 0 {
            return Err(HeapError::Corrupt); // a double free, or a forged offset
        }
        let s = size & !ALLOCATED;
        sw.store(s, Ordering::Relaxed);
        h.in_use.fetch_sub(s, Ordering::Relaxed);
        h.blocks.fetch_sub(1, Ordering::Relaxed);
        self.release_free(b, s)
    }

    /// Block `b` of `s` bytes was just marked free: merges it with free neighbours and lists it.
    fn release_free(&self, mut b: u64, mut s: u64) -> Result<(), HeapError> {
        let h = self.hdr;
        let start = h.start.load(Ordering::Relaxed);
        let end = h.end.load(Ordering::Relaxed);
        let n = b.checked_add(s).ok_or(HeapError::Corrupt)?;
        if n < end {
            let ns = self.word(n, 0)?.load(Ordering::Relaxed);
            if ns & ALLOCATED == 0 {
                if !fits(n, ns, end) {
                    return Err(HeapError::Corrupt);
                }
                self.list_remove(n, ns)?;
                s += ns;
                self.word(b, 0)?.store(s, Ordering::Relaxed);
            }
        }
        if b > start {
            let ps = self.word(b, 1)?.load(Ordering::Relaxed);
            let p = b.checked_sub(ps).filter(|&p| p >= start && ps >= MIN_BLOCK);
            let Some(p) = p else {
                return Err(HeapError::Corrupt);
            };
            let pw = self.word(p, 0)?;
            let pv = pw.load(Ordering::Relaxed);
            if pv & !ALLOCATED != ps {
                return Err(HeapError::Corrupt);
            }
            if pv & ALLOCATED == 0 {
                self.list_remove(p, ps)?;
                s += ps;
                pw.store(s, Ordering::Relaxed);
                b = p;
            }
        }
        self.set_prev_of_next(b, s)?;
        self.list_push(b, s)
    }

    /// Records `s`, the size of block `b`, as the previous size of the block after it.
    fn set_prev_of_next(&self, b: u64, s: u64) -> Result<(), HeapError> {
        let n = b + s;
        if n < self.hdr.end.load(Ordering::Relaxed) {
            self.word(n, 1)?.store(s, Ordering::Relaxed);
        } else {
            self.hdr.last.store(s, Ordering::Relaxed);
        }
        Ok(())
    }

    fn list_push(&self, b: u64, s: u64) -> Result<(), HeapError> {
        let h = self.hdr;
        let c = class(s);
        let head = h.lists[c].load(Ordering::Relaxed);
        self.word(b, 4)?.store(head, Ordering::Relaxed);
        self.word(b, 5)?.store(0, Ordering::Relaxed);
        if head != 0 {
            self.word(head, 5)?.store(b, Ordering::Relaxed);
        }
        h.lists[c].store(b, Ordering::Relaxed);
        h.bitmap.0[c / 64].fetch_or(1 << (c % 64), Ordering::Relaxed);
        Ok(())
    }

    fn list_remove(&self, b: u64, s: u64) -> Result<(), HeapError> {
        let h = self.hdr;
        let c = class(s);
        let next = self.word(b, 4)?.load(Ordering::Relaxed);
        let prev = self.word(b, 5)?.load(Ordering::Relaxed);
        if prev != 0 {
            self.word(prev, 4)?.store(next, Ordering::Relaxed);
        } else {
            if h.lists[c].load(Ordering::Relaxed) != b {
                return Err(HeapError::Corrupt);
            }
            h.lists[c].store(next, Ordering::Relaxed);
        }
        if next != 0 {
            self.word(next, 5)?.store(prev, Ordering::Relaxed);
        }
        if h.lists[c].load(Ordering::Relaxed) == 0 {
            h.bitmap.0[c / 64].fetch_and(!(1 << (c % 64)), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Grows the segment so that a free block of `need` bytes exists at the end of the heap.
    fn grow(&self, need: u64) -> Result<(), HeapError> {
        let h = self.hdr;
        let end = h.end.load(Ordering::Relaxed);
        let last = h.last.load(Ordering::Relaxed);
        // A free last block counts towards the need.
        let tail_free = if last != 0 {
            let lb = end.checked_sub(last).ok_or(HeapError::Corrupt)?;
            let v = self.word(lb, 0)?.load(Ordering::Relaxed);
            if v & ALLOCATED == 0 {
                v
            } else {
                0
            }
        } else {
            0
        };
        let more = need.saturating_sub(tail_free).max(MIN_BLOCK);
        let committed = self.seg.committed();
        let max = self.seg.max_size();
        // Grow geometrically (a quarter of what there is), at least MIN_GROWTH, at most to max.
        let step = more.max(committed / 4).max(MIN_GROWTH);
        let want_end = end
            .checked_add(more)
            .ok_or(HeapError::NoSpace { requested: need })?;
        if want_end > max {
            return Err(HeapError::NoSpace { requested: need });
        }
        let new_end = crate::layout::align_up(end.saturating_add(step), PAGE)
            .unwrap_or(u64::MAX)
            .min(max / PAGE * PAGE)
            .max(crate::layout::align_up(want_end, PAGE).unwrap_or(u64::MAX));
        if new_end > max {
            return Err(HeapError::NoSpace { requested: need });
        }
        if new_end > committed {
            self.seg.commit(committed, new_end)?;
        }
        let s = new_end - end;
        self.word(end, 1)?.store(last, Ordering::Relaxed);
        self.word(end, 0)?.store(s, Ordering::Relaxed);
        h.end.store(new_end, Ordering::Release);
        h.last.store(s, Ordering::Relaxed);
        h.growths.fetch_add(1, Ordering::Relaxed);
        self.release_free(end, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_monotonic_and_in_range() {
        let mut last = 0;
        let mut s = MIN_BLOCK;
        while s < 1 << 40 {
            let c = class(s);
            assert!(c >= last && c < CLASSES, "size {s}: class {c}");
            last = c;
            s += s / 7 + ALIGN;
        }
        assert_eq!(class(!15u64), CLASSES - 1);
        // Every block of a class above `class(n)` is larger than `n`.
        for n in [64u64, 65 * 16, 1000 * 16, 123_456 * 16] {
            let c = class(n);
            let lo_next = (MIN_BLOCK..).step_by(16).find(|&s| class(s) > c).unwrap();
            assert!(lo_next > n);
        }
    }
}
