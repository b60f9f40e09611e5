//! Named shared-memory segments: create, open, validate, look objects up, unlink.

pub(crate) mod os;
mod participants;

use crate::error::{CreateError, NameError, ObjectKind, OpenError, TypeSig};
use crate::layout::{
    align_up, fnv1a, layout_hash, DirEntry, ParticipantRecord, SegmentHeader, SlotLayout,
    LAYOUT_VERSION, MAGIC, OBJ_NAME_MAX, STATE_READY, TYPE_NAME_MAX,
};
use crate::ring::Ring;
use crate::ring_mem::{ring_region_size, RawRing};
use crate::sync::Ordering;
use memmap2::MmapRaw;
use std::sync::atomic::AtomicBool; // shim-exempt: a process-local flag
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest segment name accepted.
pub const SEGMENT_NAME_MAX: usize = 200;
/// Longest object name accepted.
pub const OBJECT_NAME_MAX: usize = OBJ_NAME_MAX;
/// Participant records a segment gets unless [`SegmentBuilder::participants`] says otherwise.
pub const DEFAULT_PARTICIPANTS: u32 = 128;
/// How long [`Segment::open`] waits for a creator that is still initialising.
pub const DEFAULT_OPEN_WAIT: Duration = Duration::from_secs(2);

const HEADER_SIZE: u64 = core::mem::size_of::<SegmentHeader>() as u64;
const ENTRY_SIZE: u64 = core::mem::size_of::<DirEntry>() as u64;
const RECORD_SIZE: u64 = core::mem::size_of::<ParticipantRecord>() as u64;
const PAGE: u64 = 4096;
/// Largest segment shmq will create or map (1 TiB): a sanity bound against forged sizes.
const MAX_SEGMENT: u64 = 1 << 40;

/// Checks a segment or object name: 1..=`max` bytes of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn check_name(name: &str, max: usize) -> Result<(), NameError> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err(NameError::Empty);
    }
    if b.len() > max {
        return Err(NameError::TooLong { len: b.len(), max });
    }
    if let Some((at, &byte)) = b
        .iter()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')))
    {
        return Err(NameError::BadByte { byte, at });
    }
    if name == "." || name == ".." {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// What a builder has been asked to put in a segment.
#[derive(Debug, Clone)]
struct ObjSpec {
    name: String,
    kind: ObjectKind,
    sig: TypeSig,
    param0: u64,
    param1: u64,
}

impl ObjSpec {
    fn slot_layout(&self) -> Option<SlotLayout> {
        match self.kind {
            ObjectKind::Queue => SlotLayout::for_pod(self.sig.size, self.sig.align),
            ObjectKind::BytesQueue => SlotLayout::for_bytes(self.param1),
        }
    }
    fn region_size(&self) -> Option<u64> {
        ring_region_size(self.param0, self.slot_layout()?)
    }
}

pub(crate) fn type_sig<T>() -> TypeSig {
    TypeSig {
        size: core::mem::size_of::<T>() as u64,
        align: core::mem::align_of::<T>() as u64,
        name: std::any::type_name::<T>().to_string(),
    }
}

fn bytes_sig() -> TypeSig {
    TypeSig {
        size: 0,
        align: 1,
        name: "[u8]".to_string(),
    }
}

/// Builds a segment: name the objects it holds, then [`create`](SegmentBuilder::create) it.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-builder")
///     .queue::<u64>("jobs", 1024)
///     .bytes_queue("logs", 256, 4096)
///     .create_or_replace()?;
/// assert_eq!(seg.queue::<u64>("jobs")?.capacity(), 1024);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `create` is called"]
pub struct SegmentBuilder {
    name: String,
    objects: Vec<ObjSpec>,
    mode: u32,
    participants: u32,
    keep: bool,
}

impl SegmentBuilder {
    /// Adds a queue of `capacity` values of `T` (exactly that many, not rounded).
    pub fn queue<T: bytemuck::Pod>(mut self, name: &str, capacity: u64) -> Self {
        self.objects.push(ObjSpec {
            name: name.to_string(),
            kind: ObjectKind::Queue,
            sig: type_sig::<T>(),
            param0: capacity,
            param1: 0,
        });
        self
    }

    /// Adds a queue of `capacity` byte messages of at most `max_len` bytes each.
    pub fn bytes_queue(mut self, name: &str, capacity: u64, max_len: usize) -> Self {
        self.objects.push(ObjSpec {
            name: name.to_string(),
            kind: ObjectKind::BytesQueue,
            sig: bytes_sig(),
            param0: capacity,
            param1: max_len as u64,
        });
        self
    }

    /// File mode of the segment (default `0o600`); applied exactly, whatever the umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Number of participant records (threads that operate on the segment at the same time,
    /// across all processes). Default [`DEFAULT_PARTICIPANTS`].
    pub fn participants(mut self, n: u32) -> Self {
        self.participants = n;
        self
    }

    /// Keep the name after the creator's last handle drops (default: unlink it then).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// Creates the segment; fails with [`CreateError::AlreadyExists`] if the name is taken.
    pub fn create(self) -> Result<Segment, CreateError> {
        let plan = self.plan()?;
        let file = os::create_exclusive(&self.name, self.mode)?;
        match self.build(&file, &plan) {
            Ok(seg) => Ok(seg),
            Err(e) => {
                let _ = os::unlink(&self.name);
                Err(e)
            }
        }
    }

    /// Creates the segment, first unlinking any existing segment of that name. Processes that
    /// already mapped the old one keep their mapping; new opens see the new segment.
    pub fn create_or_replace(self) -> Result<Segment, CreateError> {
        self.plan()?;
        for _ in 0..8 {
            match self.clone().create() {
                Err(CreateError::AlreadyExists) => match os::unlink(&self.name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        return Err(CreateError::PermissionDenied)
                    }
                    Err(e) => return Err(CreateError::Io(e)),
                },
                other => return other,
            }
        }
        Err(CreateError::AlreadyExists)
    }

    fn plan(&self) -> Result<Plan, CreateError> {
        check_name(&self.name, SEGMENT_NAME_MAX).map_err(CreateError::InvalidName)?;
        let bad = |m: String| Err(CreateError::InvalidConfig(m));
        if self.participants == 0 {
            return bad("participants must be at least 1".into());
        }
        let dir_offset = HEADER_SIZE;
        let n = self.objects.len() as u64;
        let part_offset = align_up(dir_offset + n * ENTRY_SIZE, 128).unwrap_or(u64::MAX);
        let mut cursor = part_offset.saturating_add(self.participants as u64 * RECORD_SIZE);
        let mut offsets = Vec::with_capacity(self.objects.len());
        for (i, o) in self.objects.iter().enumerate() {
            check_name(&o.name, OBJ_NAME_MAX).map_err(|reason| CreateError::InvalidObjectName {
                name: o.name.clone(),
                reason,
            })?;
            if self.objects[..i].iter().any(|p| p.name == o.name) {
                return Err(CreateError::DuplicateObject(o.name.clone()));
            }
            if o.param0 == 0 {
                return bad(format!("object {:?}: capacity must be at least 1", o.name));
            }
            if o.sig.align > 128 {
                return bad(format!(
                    "object {:?}: alignment {} is above the supported 128",
                    o.name, o.sig.align
                ));
            }
            if o.kind == ObjectKind::BytesQueue && o.param1 > u32::MAX as u64 {
                return bad(format!(
                    "object {:?}: max message length {} is above {}",
                    o.name,
                    o.param1,
                    u32::MAX
                ));
            }
            let size = match o.region_size() {
                Some(s) if s <= MAX_SEGMENT => s,
                _ => return bad(format!("object {:?}: size overflows", o.name)),
            };
            let off = align_up(cursor, 128).unwrap_or(u64::MAX);
            offsets.push((off, size));
            cursor = off.saturating_add(size);
        }
        let total = align_up(cursor, PAGE).unwrap_or(u64::MAX);
        if total > MAX_SEGMENT {
            return bad(format!("segment of {total} bytes is above the 1 TiB limit"));
        }
        Ok(Plan {
            total,
            dir_offset,
            part_offset,
            offsets,
        })
    }

    fn build(&self, file: &std::fs::File, plan: &Plan) -> Result<Segment, CreateError> {
        os::reserve(file, plan.total)?;
        let map = os::map(file, plan.total).map_err(CreateError::Io)?;
        let ident = os::identity(file).map_err(CreateError::Io)?;
        let base = map.as_mut_ptr();
        let (pid, start) = os::self_identity();
        // SAFETY: the mapping is `plan.total` bytes, page-aligned, and nobody else can have the
        // segment open in a usable state: until `state` becomes READY every opener waits. The
        // header lies at offset 0 and is 128 bytes.
        unsafe {
            let h = base.cast::<SegmentHeader>();
            core::ptr::addr_of_mut!((*h).magic).write(MAGIC);
            core::ptr::addr_of_mut!((*h).version).write(LAYOUT_VERSION);
            core::ptr::addr_of_mut!((*h).layout_hash).write(layout_hash());
            core::ptr::addr_of_mut!((*h).total_size).write(plan.total);
            core::ptr::addr_of_mut!((*h).dir_offset).write(plan.dir_offset);
            core::ptr::addr_of_mut!((*h).dir_count).write(self.objects.len() as u32);
            core::ptr::addr_of_mut!((*h).participants_count).write(self.participants);
            core::ptr::addr_of_mut!((*h).participants_offset).write(plan.part_offset);
            core::ptr::addr_of_mut!((*h).creator_pid).write(pid);
            core::ptr::addr_of_mut!((*h).creator_start).write(start);
        }
        for (i, (o, &(off, size))) in self.objects.iter().zip(&plan.offsets).enumerate() {
            let mut e = DirEntry {
                name: [0; OBJ_NAME_MAX],
                name_len: o.name.len() as u32,
                kind: o.kind.code(),
                elem_size: o.sig.size,
                elem_align: o.sig.align,
                type_hash: fnv1a(o.sig.name.as_bytes()),
                type_name: [0; TYPE_NAME_MAX],
                type_name_len: 0,
                _pad: 0,
                offset: off,
                len: size,
                param0: o.param0,
                param1: o.param1,
                _reserved: [0; 3],
            };
            e.name[..o.name.len()].copy_from_slice(o.name.as_bytes());
            let tn = &o.sig.name.as_bytes()[..o.sig.name.len().min(TYPE_NAME_MAX)];
            e.type_name[..tn.len()].copy_from_slice(tn);
            e.type_name_len = tn.len() as u32;
            // SAFETY: plan() placed entry i at dir_offset + i * 256 inside the mapping, 8-aligned.
            unsafe {
                base.add((plan.dir_offset + i as u64 * ENTRY_SIZE) as usize)
                    .cast::<DirEntry>()
                    .write(e)
            };
            // SAFETY: plan() placed the object region [off, off + size) inside the mapping,
            // 128-aligned, and the mapping is private to us until READY.
            let ring = unsafe {
                RawRing::new(
                    base.add(off as usize),
                    size,
                    o.param0,
                    o.slot_layout().unwrap(),
                )
            }
            .ok_or_else(|| CreateError::InvalidConfig(format!("object {:?}", o.name)))?;
            ring.init();
        }
        let inner = Inner::new(map, self.name.clone(), true, Some(ident))
            .map_err(|e| CreateError::InvalidConfig(e.to_string()))?;
        inner
            .keep
            .store(self.keep, std::sync::atomic::Ordering::Relaxed);
        // SYNC: Release publishes every byte written above; pairs with the Acquire load of
        // `state` in `Inner::wait_ready` of any opener.
        inner.header().state.store(STATE_READY, Ordering::Release);
        Ok(Segment {
            inner: Arc::new(inner),
        })
    }
}

struct Plan {
    total: u64,
    dir_offset: u64,
    part_offset: u64,
    offsets: Vec<(u64, u64)>,
}

/// A mapped segment. Cheap to clone; the mapping lives until the last clone and the last object
/// handle taken from it are dropped.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::Segment;
/// let created = Segment::builder("doc-segment").queue::<u32>("q", 8).create_or_replace()?;
/// // Another process would do exactly this:
/// let opened = Segment::open("doc-segment")?;
/// opened.queue::<u32>("q")?.put(7)?;
/// assert_eq!(created.queue::<u32>("q")?.get()?, 7);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Segment {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("owner", &self.inner.owner)
            .finish()
    }
}

impl Segment {
    /// Starts describing a new segment called `name`.
    pub fn builder(name: &str) -> SegmentBuilder {
        SegmentBuilder {
            name: name.to_string(),
            objects: Vec::new(),
            mode: 0o600,
            participants: DEFAULT_PARTICIPANTS,
            keep: false,
        }
    }

    /// Opens an existing segment by name, waiting up to [`DEFAULT_OPEN_WAIT`] for a creator that
    /// is still initialising it.
    ///
    /// ```
    /// let err = shmq::Segment::open("doc-no-such-segment").unwrap_err();
    /// assert!(matches!(err, shmq::OpenError::NotFound));
    /// ```
    pub fn open(name: &str) -> Result<Segment, OpenError> {
        Self::open_timeout(name, DEFAULT_OPEN_WAIT)
    }

    /// Like [`Segment::open`], waiting at most `wait` for the segment to become ready.
    pub fn open_timeout(name: &str, wait: Duration) -> Result<Segment, OpenError> {
        check_name(name, SEGMENT_NAME_MAX).map_err(OpenError::InvalidName)?;
        let (file, info) = os::open_existing(name)?;
        if info.size < HEADER_SIZE {
            return Err(OpenError::TooSmall {
                size: info.size,
                needed: HEADER_SIZE,
            });
        }
        if info.size > MAX_SEGMENT {
            return Err(OpenError::Corrupt(format!(
                "file size {} is above 1 TiB",
                info.size
            )));
        }
        let map = os::map(&file, info.size).map_err(OpenError::Io)?;
        let mut inner = Inner::new(map, name.to_string(), false, None)?;
        inner.wait_ready(Instant::now() + wait)?;
        inner.validate()?;
        Ok(Segment {
            inner: Arc::new(inner),
        })
    }

    /// Removes the name `name` from `/dev/shm` (for a segment left behind). Processes that have it
    /// mapped keep working; new opens fail with `NotFound`.
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        check_name(name, SEGMENT_NAME_MAX).map_err(OpenError::InvalidName)?;
        os::unlink(name).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::NotFound,
            std::io::ErrorKind::PermissionDenied => OpenError::PermissionDenied,
            _ => OpenError::Io(e),
        })
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Size of the mapping in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// Keeps (or stops keeping) the name after this creator's last handle drops. Has no effect on
    /// a segment that was opened rather than created: openers never unlink.
    pub fn set_keep(&self, keep: bool) {
        self.inner
            .keep
            .store(keep, std::sync::atomic::Ordering::Relaxed);
    }

    /// Looks up a queue of `T`. Fails with a typed error if there is no such object, if it is not
    /// a queue, or if its element type differs from `T` (size, alignment or type name).
    pub fn queue<T: bytemuck::Pod>(&self, name: &str) -> Result<crate::Queue<T>, OpenError> {
        let (idx, e) = self
            .inner
            .lookup(name, ObjectKind::Queue, Some(&type_sig::<T>()))?;
        let layout = SlotLayout::for_pod(e.elem_size, e.elem_align)
            .ok_or_else(|| OpenError::Corrupt(format!("object {name:?}: bad element layout")))?;
        let ring = self.inner.ring(name, &e, layout)?;
        Ok(crate::Queue::from_parts(self.inner.clone(), ring, idx + 1))
    }

    /// Looks up a byte-message queue.
    pub fn bytes_queue(&self, name: &str) -> Result<crate::BytesQueue, OpenError> {
        let (idx, e) = self.inner.lookup(name, ObjectKind::BytesQueue, None)?;
        if e.param1 > u32::MAX as u64 {
            return Err(OpenError::Corrupt(format!(
                "object {name:?}: max length out of range"
            )));
        }
        let layout = SlotLayout::for_bytes(e.param1)
            .ok_or_else(|| OpenError::Corrupt(format!("object {name:?}: bad max length")))?;
        let ring = self.inner.ring(name, &e, layout)?;
        Ok(crate::BytesQueue::from_parts(
            self.inner.clone(),
            ring,
            idx + 1,
        ))
    }
}

/// Shared state behind [`Segment`] and every object handle.
pub(crate) struct Inner {
    map: MmapRaw,
    name: String,
    size: u64,
    owner: bool,
    keep: AtomicBool,
    ident: Option<os::FileInfo>,
    /// Unique per mapping in this process (never reused), to key thread-local caches.
    pub(crate) id: u64,
    /// Validated copies of the header's layout fields (set by `validate`, or at creation).
    dir_offset: u64,
    dir_count: u32,
    part_offset: u64,
    part_count: u32,
    /// Participant records this mapping handed to threads of this process.
    pub(crate) records: Mutex<Vec<u32>>,
}

impl Inner {
    fn new(
        map: MmapRaw,
        name: String,
        owner: bool,
        ident: Option<os::FileInfo>,
    ) -> Result<Self, OpenError> {
        // A process-local counter, never in shared memory: no loom model needed.
        use std::sync::atomic::{AtomicU64 as StdU64, Ordering as O}; // shim-exempt
        static NEXT_ID: StdU64 = StdU64::new(1);
        let size = map.len() as u64;
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
            records: Mutex::new(Vec::new()),
        };
        if owner {
            inner.copy_layout_fields()?;
        }
        Ok(inner)
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    fn header(&self) -> &SegmentHeader {
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

    fn wait_ready(&self, deadline: Instant) -> Result<(), OpenError> {
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

    fn validate(&mut self) -> Result<(), OpenError> {
        self.copy_layout_fields()
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
        if h.total_size > self.size {
            return Err(OpenError::TooSmall {
                size: self.size,
                needed: h.total_size,
            });
        }
        let corrupt = |m: &str| Err(OpenError::Corrupt(m.to_string()));
        let dir_end = (h.dir_count as u64)
            .checked_mul(ENTRY_SIZE)
            .and_then(|l| l.checked_add(h.dir_offset));
        match dir_end {
            Some(end)
                if h.dir_offset >= HEADER_SIZE && h.dir_offset % 8 == 0 && end <= h.total_size => {}
            _ => return corrupt("directory lies outside the segment"),
        }
        let part_end = (h.participants_count as u64)
            .checked_mul(RECORD_SIZE)
            .and_then(|l| l.checked_add(h.participants_offset));
        match part_end {
            Some(end)
                if h.participants_offset >= HEADER_SIZE
                    && h.participants_offset % 128 == 0
                    && end <= h.total_size => {}
            _ => return corrupt("participant table lies outside the segment"),
        }
        self.dir_offset = h.dir_offset;
        self.dir_count = h.dir_count;
        self.part_offset = h.participants_offset;
        self.part_count = h.participants_count;
        Ok(())
    }

    /// Finds `name`, checks its kind and (if given) element type; returns its index and a copy.
    fn lookup(
        &self,
        name: &str,
        kind: ObjectKind,
        sig: Option<&TypeSig>,
    ) -> Result<(u32, DirEntry), OpenError> {
        for i in 0..self.dir_count {
            // SAFETY: dir_offset + dir_count * 256 <= total_size <= mapping size (validated), the
            // offset is 8-aligned, and DirEntry is plain integers: any bits are a valid value. The
            // entry is copied once with a volatile read and only the copy is used.
            let e = unsafe {
                core::ptr::read_volatile(
                    self.base()
                        .add((self.dir_offset + i as u64 * ENTRY_SIZE) as usize)
                        .cast::<DirEntry>(),
                )
            };
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

    /// Builds the ring view of a directory entry, bounds-checking its region.
    fn ring(
        &self,
        name: &str,
        e: &DirEntry,
        layout: SlotLayout,
    ) -> Result<Ring<RawRing>, OpenError> {
        let end = e.offset.checked_add(e.len);
        let fits = matches!(end, Some(end) if end <= self.size && e.offset >= HEADER_SIZE);
        if !fits || e.offset % 128 != 0 {
            return Err(OpenError::Corrupt(format!(
                "object {name:?} lies outside the segment"
            )));
        }
        // SAFETY: [offset, offset + len) is inside the mapping (checked above), which the
        // returned handle keeps alive through its Arc<Inner>; RawRing::new checks that the ring
        // fits that region.
        let raw =
            unsafe { RawRing::new(self.base().add(e.offset as usize), e.len, e.param0, layout) }
                .ok_or_else(|| {
                    OpenError::Corrupt(format!(
                        "object {name:?}: capacity or slot size does not fit"
                    ))
                })?;
        Ok(Ring::new(raw))
    }

    fn record(&self, idx: u32) -> &ParticipantRecord {
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
        let handed: Vec<u32> =
            std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()));
        for idx in handed {
            participants::release(self.record(idx));
        }
        if self.owner && !self.keep.load(std::sync::atomic::Ordering::Relaxed) {
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
