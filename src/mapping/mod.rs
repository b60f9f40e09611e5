//! A mapped segment as every handle holds it ([`Inner`]): the mapping, its validated layout
//! fields, the directory lookups, the participant table and the death watch. Below both the
//! handles and the segment API (`crate::segment`: builder, create, open), which builds handles
//! over it.

pub(crate) mod extent;
mod participants;
pub(crate) mod recovery;
pub(crate) mod watch;

use crate::error::OpenError;
use crate::kind::{ObjectKind, Params, TypeSig};
use crate::layout::{
    fnv1a, layout_hash, DirEntry, ParticipantRecord, SegmentHeader, SlotLayout, ENTRY_SIZE,
    HEADER_SIZE, LAYOUT_VERSION, MAGIC, OBJ_NAME_MAX, RECORD_SIZE, STATE_READY, TYPE_NAME_MAX,
};
use crate::os;
use crate::ring::mem::RawRing;
use crate::ring::Ring;
use crate::sync::local::AtomicBool;
use crate::sync::Ordering;
use extent::Mapping;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A directory entry found, checked and located.
pub(crate) struct Found {
    pub(crate) index: u32,
    pub(crate) entry: DirEntry,
    /// Start of the object's region in the mapping (bounds-checked against the entry's size).
    pub(crate) base: *mut u8,
    pub(crate) layout: Option<SlotLayout>,
}

/// Shared state behind [`Segment`] and every object handle.
pub(crate) struct Inner {
    pub(crate) map: Mapping,
    pub(crate) name: String,
    /// Bytes mapped when the segment was mapped here: the directory's objects lie below it.
    /// (The heap may grow past it; see [`Inner::heap_bytes`].)
    pub(crate) size: u64,
    pub(crate) owner: bool,
    pub(crate) keep: AtomicBool,
    pub(crate) ident: Option<os::FileInfo>,
    /// Unique per mapping in this process (never reused), to key thread-local caches.
    pub(crate) id: u64,
    /// Validated copies of the header's layout fields (set by `validate`, or at creation).
    dir_offset: u64,
    dir_count: u32,
    part_offset: u64,
    part_count: u32,
    /// Offset of the heap's control block (validated to fit below `size`).
    pub(crate) heap_offset: u64,
    /// How far the segment may grow (the header's, at most the reservation).
    pub(crate) max_size: u64,
    /// Participant records this mapping handed to threads of this process, with the fork
    /// generation ([`os::fork_generation`]) they were handed out under: a `fork()`ed child
    /// inherits the list and must not free its parent's records.
    pub(crate) records: Mutex<Vec<(u32, u64)>>,
    /// Fork generation this mapping was made under: a forked child that inherits a creator's
    /// mapping is not the creator and never unlinks the name.
    pub(crate) forks: u64,
    /// What the death watch last covered here (`members << 32 | deaths`) and for which
    /// watcher: the participants are scanned again only when either changed (see
    /// `watch::watch_peers`).
    armed: crate::sync::local::AtomicU64,
    armed_by: crate::sync::local::AtomicUsize,
}

impl Inner {
    pub(crate) fn new(
        map: Mapping,
        name: String,
        owner: bool,
        ident: Option<os::FileInfo>,
    ) -> Result<Self, OpenError> {
        // A process-local counter, never in shared memory: no loom model needed.
        use crate::sync::local::AtomicU64 as StdU64;
        use crate::sync::Ordering as O;
        static NEXT_ID: StdU64 = StdU64::new(1);
        let size = map.mapped();
        let mut inner = Self {
            map,
            name,
            size,
            owner,
            keep: AtomicBool::new(false),
            ident,
            id: NEXT_ID.fetch_add(1, O::Relaxed),
            dir_offset: 0,
            dir_count: 0,
            part_offset: 0,
            part_count: 0,
            heap_offset: 0,
            max_size: 0,
            records: Mutex::new(Vec::new()),
            forks: os::fork_generation(),
            armed: StdU64::new(0),
            armed_by: crate::sync::local::AtomicUsize::new(0),
        };
        if owner {
            inner.copy_layout_fields()?;
        }
        Ok(inner)
    }

    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.base()
    }

    /// `len` bytes at offset `off` of the segment, mapping more of it here first if the
    /// segment grew past what this process mapped. `Corrupt` if the range lies past the
    /// segment's committed size (a forged offset).
    #[inline]
    pub(crate) fn heap_bytes(
        &self,
        off: u64,
        len: u64,
    ) -> Result<*mut u8, crate::error::HeapError> {
        let end = off
            .checked_add(len)
            .ok_or(crate::error::HeapError::Corrupt)?;
        if end > self.map.mapped() {
            // SYNC: Acquire pairs with the grower's Release store of `total_size` (after its
            // `fallocate`): the pages up to it exist in the file.
            let committed = self.header().total_size.load(Ordering::Acquire);
            self.map.ensure(end, committed)?;
        }
        // SAFETY: [off, end) is mapped (checked or ensured above) inside our reservation.
        Ok(unsafe { self.base().add(off as usize) })
    }

    pub(crate) fn header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked before `Inner` exists) and
        // page-aligned; SegmentHeader is plain integers and atomics, valid for any bits.
        unsafe { &*self.base().cast::<SegmentHeader>() }
    }

    /// Reads a header field once (the header may be rewritten concurrently by a hostile process;
    /// a volatile read of a local copy is what every check below uses).
    fn read_header(&self) -> SegmentHeader {
        // SAFETY: as in `header`; the copy is taken with a volatile read so the compiler cannot
        // re-read shared memory behind a check.
        unsafe { core::ptr::read_volatile(self.base().cast::<SegmentHeader>()) }
    }

    pub(crate) fn wait_ready(&self, deadline: Instant) -> Result<(), OpenError> {
        let mut sleep = Duration::from_micros(50);
        loop {
            let h = self.header();
            // SAFETY: magic is plain bytes inside the header (see `header`).
            let magic = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(h.magic)) };
            // SYNC: Acquire pairs with the creator's Release store of READY in `build`.
            let state = h.state.load(Ordering::Acquire);
            if state == STATE_READY {
                if magic != MAGIC {
                    return Err(OpenError::BadMagic);
                }
                return Ok(());
            }
            if magic != MAGIC && magic != [0; 8] {
                return Err(OpenError::BadMagic);
            }
            if Instant::now() >= deadline {
                return Err(if magic == MAGIC || magic == [0; 8] {
                    OpenError::NotReady
                } else {
                    OpenError::BadMagic
                });
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(10));
        }
    }

    pub(crate) fn validate(&mut self) -> Result<(), OpenError> {
        self.copy_layout_fields()?;
        self.check_disjoint()
    }

    /// No two of the header, the directory, the participant table and the objects' regions
    /// overlap: a forged directory whose regions alias would let one object's writes land in
    /// another's words (or in the participant records that liveness trusts). Bounds are checked
    /// per object at lookup; here only the spans as written are compared.
    fn check_disjoint(&self) -> Result<(), OpenError> {
        let mut spans = vec![
            (0, HEADER_SIZE, "the header".to_string()),
            (
                self.dir_offset,
                self.dir_offset + u64::from(self.dir_count) * ENTRY_SIZE,
                "the directory".to_string(),
            ),
            (
                self.part_offset,
                self.part_offset + u64::from(self.part_count) * RECORD_SIZE,
                "the participant table".to_string(),
            ),
            (
                self.heap_offset,
                self.heap_offset + crate::heap::HEAP_HEADER_SIZE,
                "the heap".to_string(),
            ),
        ];
        for i in 0..self.dir_count {
            let e = self.entry(i);
            let nl = (e.name_len as usize).min(OBJ_NAME_MAX);
            let name = String::from_utf8_lossy(&e.name[..nl]).into_owned();
            spans.push((
                e.offset,
                e.offset.saturating_add(e.len),
                format!("object {name:?}"),
            ));
        }
        spans.retain(|s| s.0 < s.1);
        spans.sort_by_key(|s| s.0);
        for w in spans.windows(2) {
            // Sorted by start: if any two overlap, some neighbours do.
            if w[1].0 < w[0].1 {
                return Err(OpenError::Corrupt(format!(
                    "{} overlaps {}",
                    w[0].2, w[1].2
                )));
            }
        }
        Ok(())
    }

    /// Copies and bounds-checks the header's layout fields (once).
    fn copy_layout_fields(&mut self) -> Result<(), OpenError> {
        let h = self.read_header();
        if h.magic != MAGIC {
            return Err(OpenError::BadMagic);
        }
        if h.version != LAYOUT_VERSION {
            return Err(OpenError::VersionMismatch {
                expected: LAYOUT_VERSION,
                found: h.version,
            });
        }
        if h.layout_hash != layout_hash() {
            return Err(OpenError::LayoutMismatch {
                expected: layout_hash(),
                found: h.layout_hash,
            });
        }
        let mut total_size = h.total_size.load(Ordering::Relaxed);
        if total_size > self.size {
            // The segment may have grown since the caller measured its file: another process's
            // heap took room between that `fstat` and the read above. Map up to what it has
            // committed now, as `heap_bytes` does later; `ensure` maps nothing past the file's
            // length, so a forged size still ends in `TooSmall`.
            // SYNC: Acquire pairs with the grower's Release store of `total_size`, made after
            // the file grew.
            let committed = self.header().total_size.load(Ordering::Acquire);
            if self.map.ensure(committed, committed).is_ok() {
                self.size = self.map.mapped();
                total_size = committed;
            }
        }
        if total_size > self.size {
            return Err(OpenError::TooSmall {
                size: self.size,
                needed: total_size,
            });
        }
        let corrupt = |m: &str| Err(OpenError::Corrupt(m.to_string()));
        let dir_end = (h.dir_count as u64)
            .checked_mul(ENTRY_SIZE)
            .and_then(|l| l.checked_add(h.dir_offset));
        match dir_end {
            Some(end)
                if h.dir_offset >= HEADER_SIZE && h.dir_offset % 8 == 0 && end <= total_size => {}
            _ => return corrupt("directory lies outside the segment"),
        }
        let part_end = (h.participants_count as u64)
            .checked_mul(RECORD_SIZE)
            .and_then(|l| l.checked_add(h.participants_offset));
        match part_end {
            Some(end)
                if h.participants_offset >= HEADER_SIZE
                    && h.participants_offset % 128 == 0
                    && end <= total_size => {}
            _ => return corrupt("participant table lies outside the segment"),
        }
        match h.heap_offset.checked_add(crate::heap::HEAP_HEADER_SIZE) {
            Some(end)
                if h.heap_offset >= HEADER_SIZE
                    && h.heap_offset % 128 == 0
                    && end <= total_size => {}
            _ => return corrupt("heap lies outside the segment"),
        }
        if h.max_size < total_size {
            return corrupt("max_size is below the segment's size");
        }
        self.heap_offset = h.heap_offset;
        self.max_size = h.max_size.min(self.map.reserved());
        self.dir_offset = h.dir_offset;
        self.dir_count = h.dir_count;
        self.part_offset = h.participants_offset;
        self.part_count = h.participants_count;
        Ok(())
    }

    /// Entries in the directory (validated against the mapping).
    pub(crate) fn dir_count(&self) -> u32 {
        self.dir_count
    }

    /// Records in the participant table (validated against the mapping).
    pub(crate) fn part_count(&self) -> u32 {
        self.part_count
    }

    /// A copy of directory entry `i` (`i < dir_count`).
    pub(crate) fn entry(&self, i: u32) -> DirEntry {
        assert!(i < self.dir_count, "directory index out of range");
        // SAFETY: i < dir_count and dir_offset + dir_count * 256 <= total_size <= mapping size
        // (validated), the offset is 8-aligned, and DirEntry is plain integers: any bits are a
        // valid value. The entry is copied once with a volatile read and only the copy is used.
        unsafe {
            core::ptr::read_volatile(
                self.base()
                    .add((self.dir_offset + i as u64 * ENTRY_SIZE) as usize)
                    .cast::<DirEntry>(),
            )
        }
    }

    /// Finds `name`, checks its kind and (if given) element type; returns its index and a copy.
    fn lookup(
        &self,
        name: &str,
        kind: ObjectKind,
        sig: Option<&TypeSig>,
    ) -> Result<(u32, DirEntry), OpenError> {
        for i in 0..self.dir_count {
            let e = self.entry(i);
            let nl = (e.name_len as usize).min(OBJ_NAME_MAX);
            if &e.name[..nl] != name.as_bytes() {
                continue;
            }
            let found_kind = ObjectKind::from_code(e.kind);
            if found_kind != Some(kind) {
                return Err(OpenError::KindMismatch {
                    name: name.to_string(),
                    expected: kind,
                    found: match found_kind {
                        Some(k) => k.to_string(),
                        None => format!("unknown kind {}", e.kind),
                    },
                });
            }
            if let Some(want) = sig {
                let tl = (e.type_name_len as usize).min(TYPE_NAME_MAX);
                let found = TypeSig {
                    size: e.elem_size,
                    align: e.elem_align,
                    name: String::from_utf8_lossy(&e.type_name[..tl]).into_owned(),
                };
                if found.size != want.size
                    || found.align != want.align
                    || e.type_hash != fnv1a(want.name.as_bytes())
                {
                    return Err(OpenError::TypeMismatch {
                        name: name.to_string(),
                        expected: want.clone(),
                        found,
                    });
                }
            }
            return Ok((i, e));
        }
        Err(OpenError::ObjectNotFound(name.to_string()))
    }

    /// Overwrites one 8-byte word of the mapping with `value(old)` (fuzzing only: a hostile
    /// process writing the segment). `area` picks the span the word is taken from (`at` modulo
    /// its words): 0 the header, 1 the directory, 2 the participant table, 3 an object's region
    /// (the object `at >> 48` modulo the directory, as its entry now says), 4 the heap, else the
    /// whole mapping. Lock words whose holder every user waits for without a deadline (the
    /// heap's, and a dictionary's or list's, in its region's first 128 bytes) are left alone: a
    /// forged owner there stalls every user, as a live process holding them would.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_word(&self, area: u8, at: u64, value: impl FnOnce(u64) -> u64) {
        let size = self.size;
        let span = |start: u64, len: u64| (start, start.saturating_add(len));
        let (start, end) = match area % 6 {
            0 => (0, HEADER_SIZE),
            1 => span(self.dir_offset, u64::from(self.dir_count) * ENTRY_SIZE),
            2 => span(self.part_offset, u64::from(self.part_count) * RECORD_SIZE),
            3 if self.dir_count > 0 => {
                let e = self.entry(((at >> 48) % u64::from(self.dir_count)) as u32);
                let locked = matches!(
                    ObjectKind::from_code(e.kind),
                    Some(ObjectKind::Dict | ObjectKind::BytesList)
                );
                let skip = if locked { 128 } else { 0 };
                span(e.offset.saturating_add(skip), e.len.saturating_sub(skip))
            }
            4 => (self.heap_offset.saturating_add(8), size),
            _ => (0, size),
        };
        let (Some(start), end) = (start.checked_next_multiple_of(8), end.min(size)) else {
            return;
        };
        if start >= end || end - start < 8 {
            return;
        }
        let off = start + (at & 0xffff_ffff_ffff) % ((end - start) / 8) * 8;
        let heap_lock = self.heap_offset..self.heap_offset + 8;
        let dict_or_list_lock = (0..self.dir_count).any(|i| {
            let e = self.entry(i);
            matches!(
                ObjectKind::from_code(e.kind),
                Some(ObjectKind::Dict | ObjectKind::BytesList)
            ) && (e.offset..e.offset.saturating_add(128)).contains(&off)
        });
        if heap_lock.contains(&off) || dict_or_list_lock {
            return;
        }
        // SAFETY: off is 8-aligned and off + 8 <= size, the bytes mapped here, which `self`
        // keeps mapped; AtomicU64 is valid for any bits. The fuzz targets run one thread, so no
        // other access (atomic or a payload copy) overlaps this one.
        let w = unsafe {
            &*self
                .base()
                .add(off as usize)
                .cast::<crate::sync::AtomicU64>()
        };
        w.store(value(w.load(Ordering::Relaxed)), Ordering::Relaxed);
    }

    #[cfg(feature = "fuzzing")]
    pub(crate) fn object_names(&self) -> Vec<String> {
        (0..self.dir_count)
            .map(|i| {
                let e = self.entry(i);
                let nl = (e.name_len as usize).min(OBJ_NAME_MAX);
                String::from_utf8_lossy(&e.name[..nl]).into_owned()
            })
            .collect()
    }

    /// Looks `name` up (kind and type checked), recomputes its region size from the entry's own
    /// parameters and checks that the region lies inside the mapping and is big enough.
    pub(crate) fn object(
        &self,
        name: &str,
        kind: ObjectKind,
        sig: Option<&TypeSig>,
    ) -> Result<Found, OpenError> {
        let (index, e) = self.lookup(name, kind, sig)?;
        self.checked(name, kind, index, e)
    }

    /// Recomputes the region size of entry `index` (a copy `e`, of kind `kind`) from its own
    /// parameters and checks that the region lies inside the mapping and is big enough.
    pub(crate) fn checked(
        &self,
        name: &str,
        kind: ObjectKind,
        index: u32,
        e: DirEntry,
    ) -> Result<Found, OpenError> {
        let corrupt = |what: &str| OpenError::Corrupt(format!("object {name:?}: {what}"));
        let params = Params {
            size: e.elem_size,
            align: e.elem_align,
            param0: e.param0,
            param1: e.param1,
            param2: e.param2,
            init: &[],
        };
        // What a creator refuses, a lookup refuses too: the code over a region trusts the
        // limits its kind's check sets (a byte queue's in-place size holds a heap reference,
        // a barrier has parties, a lock's scope is one it knows).
        (kind.def().check)(&params)
            .map_err(|m| corrupt(&format!("parameters out of range: {m}")))?;
        let (need, layout) =
            (kind.def().region)(&params).ok_or_else(|| corrupt("parameters overflow"))?;
        let end = e.offset.checked_add(e.len);
        let inside = matches!(end, Some(end) if end <= self.size && e.offset >= HEADER_SIZE);
        if !inside || e.offset % 128 != 0 {
            return Err(corrupt("region lies outside the segment"));
        }
        if e.len < need {
            return Err(corrupt("region is smaller than its parameters need"));
        }
        if e.elem_align > 128 || (e.elem_align != 0 && !e.elem_align.is_power_of_two()) {
            return Err(corrupt("bad alignment"));
        }
        Ok(Found {
            index,
            entry: e,
            // SAFETY: offset < size of the mapping (checked above).
            base: unsafe { self.base().add(e.offset as usize) },
            layout,
        })
    }

    /// The ring of a found queue object (where its kind's ring starts in its region), with the
    /// participant table as its liveness source (so blocked waiters recover claims of dead
    /// processes).
    pub(crate) fn ring(
        self: &Arc<Self>,
        name: &str,
        o: &Found,
    ) -> Result<Ring<RawRing>, OpenError> {
        let off = ObjectKind::from_code(o.entry.kind)
            .and_then(|k| k.def().ring_at)
            .ok_or_else(|| OpenError::Corrupt(format!("object {name:?}: not a queue")))?;
        let mut ring = Ring::new(self.raw_ring(name, o, off)?);
        ring.live = Some(Arc::new(participants::QueueLiveness {
            seg: self.clone(),
            obj: o.index + 1,
            heap_refs: o.entry.kind == ObjectKind::BytesQueue.code() && o.entry.param2 != 0,
            link: false,
        }));
        Ok(ring)
    }

    /// The ring memory of a found queue object, starting `off` bytes into its region. It points
    /// into this mapping: whoever keeps it must keep the mapping alive (a handle's Arc<Inner>, or
    /// a borrow of `self`).
    fn raw_ring(&self, name: &str, o: &Found, off: u64) -> Result<RawRing, OpenError> {
        let layout = o
            .layout
            .ok_or_else(|| OpenError::Corrupt(format!("object {name:?}: no slot layout")))?;
        // SAFETY: the region [base, base + len) is inside the mapping (checked in `checked`),
        // which the caller keeps alive while it uses the ring; RawRing::new checks that the ring
        // fits what is left after `off`.
        unsafe {
            RawRing::new(
                o.base.add(off as usize),
                o.entry.len - off,
                o.entry.param0,
                layout,
            )
        }
        .ok_or_else(|| {
            OpenError::Corrupt(format!(
                "object {name:?}: capacity or slot size does not fit"
            ))
        })
    }

    /// The ring of the queue that claim records call `obj` (directory index + 1), without a
    /// liveness source; `None` if `obj` names no valid queue.
    pub(crate) fn ring_of_obj(&self, obj: u32) -> Option<Ring<RawRing>> {
        let index = obj.checked_sub(1).filter(|&i| i < self.dir_count)?;
        let e = self.entry(index);
        let kind = ObjectKind::from_code(e.kind)?;
        let off = kind.def().ring_at?;
        let o = self.checked("", kind, index, e).ok()?;
        Some(Ring::new(self.raw_ring("", &o, off).ok()?))
    }

    /// The region of unbounded queue `obj` (directory index + 1), if `obj` names one.
    pub(crate) fn chain_region(&self, obj: u32) -> Option<*mut u8> {
        let index = obj.checked_sub(1).filter(|&i| i < self.dir_count)?;
        let e = self.entry(index);
        let kind = ObjectKind::from_code(e.kind).filter(|k| k.is_chain())?;
        Some(self.checked("", kind, index, e).ok()?.base)
    }

    /// Calls `each` with every heap block object `obj` (directory index + 1) uses (its kind's
    /// [`blocks`](crate::kind::KindDef)); `false` when that cannot be told (no such object, a
    /// kind without heap blocks, a region that fails its checks: a forged mark or directory).
    /// A sweep then takes every block as used: a leak in a corrupt segment, never a free of
    /// something that may be in use.
    pub(crate) fn structure_blocks(&self, obj: u32, each: &mut dyn FnMut(u64)) -> bool {
        let Some(index) = obj.checked_sub(1).filter(|&i| i < self.dir_count) else {
            return false;
        };
        let e = self.entry(index);
        let Some(kind) = ObjectKind::from_code(e.kind) else {
            return false;
        };
        let Some(blocks) = kind.def().blocks else {
            return false;
        };
        match self.checked("", kind, index, e) {
            Ok(found) => blocks(self, found.base, each),
            Err(_) => false,
        }
    }

    /// Looks `name` up as `kind` or, if it is not one, as `other`; checks as [`Inner::object`].
    pub(crate) fn object_either(
        &self,
        name: &str,
        kind: ObjectKind,
        other: ObjectKind,
        sig: Option<&TypeSig>,
    ) -> Result<Found, OpenError> {
        match self.object(name, kind, sig) {
            Err(first @ OpenError::KindMismatch { .. }) => {
                self.object(name, other, sig).map_err(|e| match e {
                    OpenError::KindMismatch { .. } => first,
                    e => e,
                })
            }
            r => r,
        }
    }

    pub(crate) fn record(&self, idx: u32) -> &ParticipantRecord {
        debug_assert!(idx < self.part_count);
        // SAFETY: idx < part_count and the table fits the mapping (validated); the table is
        // 128-aligned and records are atomics only.
        unsafe {
            &*self
                .base()
                .add((self.part_offset + idx as u64 * RECORD_SIZE) as usize)
                .cast::<ParticipantRecord>()
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let handed = std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()));
        let forks = os::fork_generation();
        for (idx, _) in handed.into_iter().filter(|&(_, f)| f == forks) {
            self.release_record(idx);
        }
        if self.owner
            && self.forks == forks
            && !self.keep.load(std::sync::atomic::Ordering::Relaxed)
        {
            // Unlink only if the name still refers to our file: a `create_or_replace` elsewhere
            // may have put a new segment under it.
            if let (Some(mine), Some(now)) = (self.ident, os::identity_of_name(&self.name)) {
                if mine.dev == now.dev && mine.ino == now.ino {
                    let _ = os::unlink(&self.name);
                }
            }
        }
    }
}
