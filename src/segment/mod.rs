//! Named shared-memory segments: create, open, validate, look objects up, unlink.

use crate::error::{CreateError, NameError, OpenError};
use crate::kind::{ObjectKind, Params, TypeSig};
use crate::layout::{
    align_up, fnv1a, layout_hash, DirEntry, SegmentHeader, ENTRY_SIZE, HEADER_KEEP, HEADER_SIZE,
    LAYOUT_VERSION, MAGIC, OBJ_NAME_MAX, RECORD_SIZE, STATE_READY, TYPE_NAME_MAX,
};
use crate::mapping::Inner;
use crate::os;
use crate::ring::mem::RawRing;
use crate::sync::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest segment name accepted.
pub const SEGMENT_NAME_MAX: usize = 200;
/// Longest object name accepted.
pub const OBJECT_NAME_MAX: usize = OBJ_NAME_MAX;
/// Participant records a segment gets unless [`SegmentBuilder::participants`] says otherwise.
pub const DEFAULT_PARTICIPANTS: u32 = 128;
/// How long [`Segment::open`] waits for a creator that is still initialising.
pub const DEFAULT_OPEN_WAIT: Duration = Duration::from_secs(2);

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
    /// Queues: capacity. Value: initial bits. Array: length. List: capacity. Semaphore: initial
    /// count. Barrier: parties.
    param0: u64,
    /// Bytes queue: max message length. Semaphore: bound.
    param1: u64,
    /// Bytes queue: bytes held in the slot (0: all of them).
    param2: u64,
    /// Versioned value: the initial value's bytes.
    init: Vec<u8>,
}

impl ObjSpec {
    fn params(&self) -> Params<'_> {
        Params {
            size: self.sig.size,
            align: self.sig.align,
            param0: self.param0,
            param1: self.param1,
            param2: self.param2,
            init: &self.init,
        }
    }

    fn region(&self) -> Option<crate::kind::Region> {
        (self.kind.def().region)(&self.params())
    }

    /// Range checks of the parameters: the kind's, then the alignment every kind needs.
    fn check(&self) -> Result<(), String> {
        let n = &self.name;
        (self.kind.def().check)(&self.params()).map_err(|why| format!("object {n:?}: {why}"))?;
        if self.sig.align > 128 {
            return Err(format!(
                "object {n:?}: alignment {} is above the supported 128",
                self.sig.align
            ));
        }
        Ok(())
    }
}

pub(crate) fn type_sig<T>() -> TypeSig {
    TypeSig {
        size: core::mem::size_of::<T>() as u64,
        align: core::mem::align_of::<T>() as u64,
        name: std::any::type_name::<T>().to_string(),
    }
}

pub(crate) fn untyped() -> TypeSig {
    TypeSig {
        size: 0,
        align: 1,
        name: String::new(),
    }
}

/// Mode bits that let a segment's group or others write it (see [`SegmentBuilder::shared_mode`]).
pub(crate) const WRITABLE_BY_OTHERS: u32 = 0o022;

pub(crate) fn bytes_sig() -> TypeSig {
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
    shared_mode: bool,
    participants: u32,
    keep: bool,
    /// `None`: the default ([`default_max_size`]).
    max_size: Option<u64>,
}

/// Bytes a byte queue's slot holds in place when its maximum message length is above
/// [`INLINE_ALL_MAX`]: longer messages go through the segment's shared heap. With the slot's
/// stamp and length word, a slot is then 256 bytes.
pub const LONG_QUEUE_INLINE: usize = 240;
/// Largest maximum message length whose messages all stay in their slots (as byte queues have
/// always done): a `bytes_queue` with a larger `max_len` (up to `usize::MAX`) holds messages of
/// up to [`LONG_QUEUE_INLINE`] bytes in place and longer ones in the heap.
pub const INLINE_ALL_MAX: usize = 64 * 1024;

/// How far a segment may grow unless [`SegmentBuilder::max_size`] says otherwise: half of the
/// size of `/dev/shm` (a tmpfs sized at half the machine's memory by default, so a quarter of
/// memory), or 1 GiB where that cannot be told, and never below the segment's initial size.
pub fn default_max_size() -> u64 {
    os::shm_capacity()
        .map_or(1 << 30, |c| c / 2)
        .min(MAX_SEGMENT)
}

impl SegmentBuilder {
    /// Adds a queue of `capacity` values of `T` (exactly that many, not rounded).
    pub fn queue<T: bytemuck::Pod>(self, name: &str, capacity: u64) -> Self {
        self.object(name, ObjectKind::Queue, type_sig::<T>(), capacity, 0)
    }

    /// Adds a queue of `capacity` byte messages of at most `max_len` bytes each.
    ///
    /// Up to [`INLINE_ALL_MAX`] (64 KiB), every message stays in its slot: one copy in, one copy
    /// out, and the queue takes `capacity` slots of `max_len` bytes. Above it, and up to
    /// `usize::MAX` (any length the segment can hold), slots hold [`LONG_QUEUE_INLINE`] bytes
    /// and longer messages go through the segment's shared heap, which grows the segment up to
    /// its [`max_size`](Self::max_size); see [`bytes_queue_inline`](Self::bytes_queue_inline) to
    /// choose the in-place size.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-any-size")
    ///     .bytes_queue("blobs", 64, usize::MAX)
    ///     .create_or_replace()?;
    /// let q = seg.bytes_queue("blobs")?;
    /// let big = vec![7u8; 10 << 20];
    /// q.put(&big)?;                      // through the heap: the segment grows
    /// q.put(b"small")?;                  // in its slot
    /// assert_eq!(q.get()?.len(), 10 << 20);
    /// assert_eq!(q.get()?, b"small");
    /// # Ok(()) }
    /// ```
    pub fn bytes_queue(self, name: &str, capacity: u64, max_len: usize) -> Self {
        let inline = if max_len <= INLINE_ALL_MAX {
            0
        } else {
            LONG_QUEUE_INLINE
        };
        self.bytes_queue_inline(name, capacity, max_len, inline)
    }

    /// Adds a byte queue whose slots hold `inline` bytes of a message in place (one copy in,
    /// one out), longer messages (up to `max_len`) going through the segment's heap. `inline`
    /// of 0, or ≥ `max_len`, keeps every message in its slot. An `inline` below 16 with
    /// longer messages allowed is refused at `create` (the slot must hold a heap reference).
    pub fn bytes_queue_inline(
        mut self,
        name: &str,
        capacity: u64,
        max_len: usize,
        inline: usize,
    ) -> Self {
        let max = max_len as u64;
        let inline = if inline >= max_len { 0 } else { inline as u64 };
        self = self.object(name, ObjectKind::BytesQueue, bytes_sig(), capacity, max);
        if let Some(o) = self.objects.last_mut() {
            o.param2 = inline;
        }
        self
    }

    /// Adds an unbounded queue of `T`: `put` never waits for room. Items live in links of
    /// slots in the segment's heap, added as the queue fills (sealed, then freed once drained), so
    /// the queue holds as many items as the segment's [`max_size`](Self::max_size) allows; past
    /// that `put` is `Err(PutError::NoSpace)`. Opened with [`Segment::queue`] like a bounded one.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-unbounded").unbounded_queue::<u64>("q").create_or_replace()?;
    /// let q = seg.queue::<u64>("q")?;
    /// for i in 0..100_000 {
    ///     q.put(i)?;                  // never blocks
    /// }
    /// assert_eq!(q.len(), 100_000);
    /// assert_eq!(q.get()?, 0);
    /// # Ok(()) }
    /// ```
    pub fn unbounded_queue<T: bytemuck::Pod>(self, name: &str) -> Self {
        self.object(name, ObjectKind::UnboundedQueue, type_sig::<T>(), 0, 0)
    }

    /// Adds an unbounded queue of byte messages of any length: messages up to
    /// [`LONG_QUEUE_INLINE`] bytes stay in their slots, longer ones go through the heap, as in a
    /// [`bytes_queue`](Self::bytes_queue) of `max_len = usize::MAX`. Opened with
    /// [`Segment::bytes_queue`].
    pub fn unbounded_bytes_queue(mut self, name: &str) -> Self {
        self = self.object(
            name,
            ObjectKind::UnboundedBytesQueue,
            bytes_sig(),
            0,
            u64::MAX,
        );
        if let Some(o) = self.objects.last_mut() {
            o.param2 = LONG_QUEUE_INLINE as u64;
        }
        self
    }

    /// How far the segment may grow, in bytes (default [`default_max_size`]). A segment grows
    /// when its shared heap (long byte messages) needs room; every process reserves this much
    /// address space (not memory) for its mapping. Refused at `create` if below the segment's
    /// initial size or above 1 TiB.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// The bytes the object added last is initialised with (a versioned value's first value).
    pub(crate) fn init_last(mut self, init: &[u8]) -> Self {
        if let Some(o) = self.objects.last_mut() {
            o.init = init.to_vec();
        }
        self
    }

    /// Adds object `name` of `kind` (the builder methods of the object kinds, one per handle
    /// file, are each this call).
    pub(crate) fn object(
        mut self,
        name: &str,
        kind: ObjectKind,
        sig: TypeSig,
        param0: u64,
        param1: u64,
    ) -> Self {
        self.objects.push(ObjSpec {
            name: name.to_string(),
            kind,
            sig,
            param0,
            param1,
            param2: 0,
            init: Vec::new(),
        });
        self
    }

    /// File mode of the segment (default `0o600`); applied exactly, whatever the umask.
    ///
    /// A mode that lets the group or others write (`0o020` or `0o002`) is refused with
    /// [`CreateError::InvalidConfig`] unless [`shared_mode`](Self::shared_mode) says so: whoever
    /// can write the file can forge every word in it while it runs. Read bits for group and
    /// others are allowed (a reader cannot open a segment anyway: opening needs write access).
    ///
    /// ```
    /// let err = shmq::Segment::builder("doc-mode").mode(0o666).create().unwrap_err();
    /// assert!(matches!(err, shmq::CreateError::InvalidConfig(_)));
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Allows a [`mode`](Self::mode) that lets the group (or others) write the segment: an
    /// explicit opt-in for sharing a segment between processes of different users of one group
    /// (the file keeps its creator as owner; use `0o660` and a group set with `chgrp`/the
    /// setgid bit of the creating process). Openers must opt in too, with
    /// [`Segment::open_shared`]. Every process that can write the file is then trusted: it can
    /// make the others see forged messages or wrong counts (never undefined behaviour: every word
    /// read from a segment is checked), or truncate the file under them (a SIGBUS).
    pub fn shared_mode(mut self, allow: bool) -> Self {
        self.shared_mode = allow;
        self
    }

    /// Number of participant records (threads that operate on the segment at the same time,
    /// across all processes). Default [`DEFAULT_PARTICIPANTS`].
    ///
    /// A full table is not an error: records of dead processes are taken over, and a thread that
    /// still finds none works without crash attribution (a claim it leaves by dying is not
    /// recovered and turns recovery on that queue off, see [`QueueStats::unattributed_claims`];
    /// its queues stop reporting `Disconnected`) and looks again every 100 ms.
    ///
    /// [`QueueStats::unattributed_claims`]: crate::QueueStats::unattributed_claims
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
    ///
    /// The segment is built under a temporary name while its creator holds an `flock` on it, then
    /// published under its name with `link(2)` (which never replaces a file), so no process can
    /// open a half-built segment by name. Temporary files of creators that died mid-build are
    /// removed. A segment already under the name is replaced only if nobody can still use it: no
    /// process has it mapped (each holds a shared `flock` while it does), and it either never
    /// became ready or its creator is dead and did not ask to [`keep`](Self::keep) it. Otherwise
    /// the result is [`CreateError::AlreadyExists`].
    pub fn create(self) -> Result<Segment, CreateError> {
        let plan = self.plan()?;
        os::sweep_stale_temps(&self.name);
        let tmp = os::temp_name(&self.name);
        let file = os::create_exclusive(&tmp, self.mode)?;
        let built = os::lock_exclusive(&file)
            .map_err(CreateError::Io)
            .and_then(|()| self.build(&file, &plan));
        let seg = match built {
            Ok(seg) => seg,
            Err(e) => {
                let _ = os::unlink(&tmp);
                return Err(e);
            }
        };
        let mut published = os::link(&tmp, &self.name);
        if matches!(&published, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists)
            && os::reclaim_stale(&self.name)
        {
            published = os::link(&tmp, &self.name);
        }
        let _ = os::unlink(&tmp);
        if let Err(e) = published {
            return Err(match e.kind() {
                std::io::ErrorKind::AlreadyExists => CreateError::AlreadyExists,
                std::io::ErrorKind::PermissionDenied => CreateError::PermissionDenied,
                _ => CreateError::Io(e),
            });
        }
        // From now on the creator holds the segment like any opener: a shared lock, kept with
        // the mapping. (No one else has the `Arc` yet, so `get_mut` succeeds.)
        if let Err(e) = os::downgrade_lock(&file) {
            let _ = os::unlink(&self.name);
            return Err(CreateError::Io(e));
        }
        // The lock belongs to the open file description, which the mapping (and its duplicate
        // descriptor) keep for as long as the mapping lives: this descriptor can go.
        drop(file);
        Ok(seg)
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

    /// Builds the segment in an anonymous memory file (`memfd_create(2)`): no name in /dev/shm.
    /// For the fuzz entry points, which must not touch the filesystem namespace.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn create_anonymous(self) -> Result<(Segment, std::fs::File), CreateError> {
        let plan = self.plan()?;
        let file = os::anonymous().map_err(CreateError::Io)?;
        let seg = self.build(&file, &plan)?;
        Ok((seg, file))
    }

    fn plan(&self) -> Result<Plan, CreateError> {
        check_name(&self.name, SEGMENT_NAME_MAX).map_err(CreateError::InvalidName)?;
        let bad = |m: String| Err(CreateError::InvalidConfig(m));
        if self.mode & WRITABLE_BY_OTHERS != 0 && !self.shared_mode {
            return bad(format!(
                "mode {:#o} lets the group or others write the segment; \
                 call shared_mode(true) to allow it",
                self.mode
            ));
        }
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
            o.check().map_err(CreateError::InvalidConfig)?;
            let size = match o.region() {
                Some((s, _)) if s <= MAX_SEGMENT => s,
                _ => return bad(format!("object {:?}: size overflows", o.name)),
            };
            let off = align_up(cursor, 128).unwrap_or(u64::MAX);
            offsets.push((off, size));
            cursor = off.saturating_add(size);
        }
        let heap_offset = align_up(cursor, 128).unwrap_or(u64::MAX);
        let heap_start = heap_offset.saturating_add(crate::heap::HEAP_HEADER_SIZE);
        let total = align_up(heap_start, PAGE).unwrap_or(u64::MAX);
        if total > MAX_SEGMENT {
            return bad(format!("segment of {total} bytes is above the 1 TiB limit"));
        }
        let max_size = match self.max_size {
            None => default_max_size().max(total),
            Some(m) if m < total => {
                return bad(format!(
                    "max_size {m} is below the segment's initial size of {total} bytes"
                ))
            }
            Some(m) if m > MAX_SEGMENT => {
                return bad(format!("max_size {m} is above the 1 TiB limit"))
            }
            Some(m) => m / PAGE * PAGE,
        };
        Ok(Plan {
            total,
            dir_offset,
            part_offset,
            offsets,
            heap_offset,
            heap_start,
            max_size: max_size.max(total),
        })
    }

    fn build(&self, file: &std::fs::File, plan: &Plan) -> Result<Segment, CreateError> {
        os::reserve(file, plan.total)?;
        let map = crate::mapping::extent::Mapping::new(file, plan.total, plan.max_size)
            .map_err(CreateError::Io)?;
        let ident = os::identity(file).map_err(CreateError::Io)?;
        let base = map.base();
        let (pid, start, pidns) = os::self_identity();
        // SAFETY: the mapping is `plan.total` bytes, page-aligned, and nobody else can have the
        // segment open in a usable state: until `state` becomes READY every opener waits. The
        // header lies at offset 0 and is 128 bytes.
        unsafe {
            let h = base.cast::<SegmentHeader>();
            core::ptr::addr_of_mut!((*h).magic).write(MAGIC);
            core::ptr::addr_of_mut!((*h).version).write(LAYOUT_VERSION);
            core::ptr::addr_of_mut!((*h).layout_hash).write(layout_hash());
            core::ptr::addr_of_mut!((*h).total_size).write(crate::sync::AtomicU64::new(plan.total));
            core::ptr::addr_of_mut!((*h).max_size).write(plan.max_size);
            core::ptr::addr_of_mut!((*h).heap_offset).write(plan.heap_offset);
            core::ptr::addr_of_mut!((*h).dir_offset).write(plan.dir_offset);
            core::ptr::addr_of_mut!((*h).dir_count).write(self.objects.len() as u32);
            core::ptr::addr_of_mut!((*h).participants_count).write(self.participants);
            core::ptr::addr_of_mut!((*h).participants_offset).write(plan.part_offset);
            core::ptr::addr_of_mut!((*h).creator_pid).write(pid);
            core::ptr::addr_of_mut!((*h).creator_start).write(start);
            core::ptr::addr_of_mut!((*h).creator_pidns).write(pidns);
            let flags = if self.keep { HEADER_KEEP } else { 0 };
            core::ptr::addr_of_mut!((*h).flags).write(crate::sync::AtomicU32::new(flags));
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
                param2: o.param2,
                _reserved: [0; 2],
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
            unsafe { init_object(base.add(off as usize), size, o) }
                .ok_or_else(|| CreateError::InvalidConfig(format!("object {:?}", o.name)))?;
        }
        // SAFETY: plan() put the heap's control block at heap_offset (128-aligned, inside the
        // mapping, zero) and its blocks in [heap_start, total), used by nothing else.
        unsafe {
            crate::heap::init(
                base,
                base.add(plan.heap_offset as usize).cast(),
                plan.heap_start,
                plan.total,
            )
        };
        // A creator killed here leaves a half-built file under its temporary name only.
        crate::fault::point("create-building");
        let inner = Inner::new(map, self.name.clone(), true, Some(ident))
            .map_err(|e| CreateError::InvalidConfig(e.to_string()))?;
        inner
            .keep
            .store(self.keep, std::sync::atomic::Ordering::Relaxed);
        let seg = Segment {
            inner: Arc::new(inner),
        };
        // Each unbounded queue starts with its first link.
        for (i, o) in self.objects.iter().enumerate() {
            if o.kind.is_chain() {
                let found = seg
                    .inner
                    .object(&o.name, o.kind, None)
                    .map_err(|e| CreateError::InvalidConfig(e.to_string()))?;
                let chain = seg
                    .chain(&o.name, &found, false)
                    .map_err(|e| CreateError::InvalidConfig(e.to_string()))?
                    .ok_or_else(|| CreateError::InvalidConfig(format!("object {i}")))?;
                chain.install_first().map_err(|e| match e {
                    crate::error::HeapError::NoSpace { requested } => {
                        CreateError::NoSpace { requested }
                    }
                    e => CreateError::InvalidConfig(format!("{e:?}")),
                })?;
            }
        }
        // SYNC: Release publishes every byte written above; pairs with the Acquire load of
        // `state` in `Inner::wait_ready` of any opener.
        seg.inner
            .header()
            .state
            .store(STATE_READY, Ordering::Release);
        Ok(seg)
    }
}

/// Writes an object's initial state into its (zero-filled) region.
///
/// # Safety
///
/// `base..base + size` is writable, 128-aligned, inside a mapping nobody else uses yet.
unsafe fn init_object(base: *mut u8, size: u64, o: &ObjSpec) -> Option<()> {
    let def = o.kind.def();
    let (_, layout) = o.region()?;
    if let Some(off) = def.ring_at {
        // SAFETY: the region is `size` bytes (caller); RawRing::new checks the ring fits.
        let ring = unsafe { RawRing::new(base.add(off as usize), size - off, o.param0, layout?)? };
        ring.init();
    }
    // SAFETY: the region is the kind's own, `region()` bytes (the plan sized it so), zeroed,
    // 128-aligned and not yet visible to anyone (caller).
    unsafe { (def.init)(base, &o.params()) };
    Some(())
}

struct Plan {
    total: u64,
    dir_offset: u64,
    part_offset: u64,
    offsets: Vec<(u64, u64)>,
    heap_offset: u64,
    heap_start: u64,
    max_size: u64,
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
            shared_mode: false,
            participants: DEFAULT_PARTICIPANTS,
            keep: false,
            max_size: None,
        }
    }

    /// Opens an existing segment by name, waiting up to [`DEFAULT_OPEN_WAIT`] for a creator that
    /// is still initialising it.
    ///
    /// ```
    /// let err = shmq::Segment::open("doc-no-such-segment").unwrap_err();
    /// assert!(matches!(err, shmq::OpenError::NotFound));
    /// ```
    ///
    /// A segment file that its group or others may write is refused with
    /// [`OpenError::InsecureMode`]: any process that can write it could forge its contents. Open
    /// such a segment, made on purpose with [`SegmentBuilder::shared_mode`], with
    /// [`Segment::open_shared`].
    pub fn open(name: &str) -> Result<Segment, OpenError> {
        Self::open_timeout(name, DEFAULT_OPEN_WAIT)
    }

    /// Like [`Segment::open`], waiting at most `wait` for the segment to become ready.
    pub fn open_timeout(name: &str, wait: Duration) -> Result<Segment, OpenError> {
        Self::open_checked(name, wait, false)
    }

    /// Like [`Segment::open`], but also accepts a segment whose group or others may write it
    /// (see [`SegmentBuilder::shared_mode`] for what that trusts). The file must still be owned
    /// by the caller's user.
    pub fn open_shared(name: &str) -> Result<Segment, OpenError> {
        Self::open_checked(name, DEFAULT_OPEN_WAIT, true)
    }

    fn open_checked(name: &str, wait: Duration, shared_mode: bool) -> Result<Segment, OpenError> {
        check_name(name, SEGMENT_NAME_MAX).map_err(OpenError::InvalidName)?;
        let start = Instant::now();
        let deadline = start.checked_add(wait);
        let mut sleep = Duration::from_micros(20);
        loop {
            let (file, info) = os::open_existing(name)?;
            if info.mode & WRITABLE_BY_OTHERS != 0 && !shared_mode {
                return Err(OpenError::InsecureMode { mode: info.mode });
            }
            // The shared lock marks the segment as in use for as long as we map it. It is
            // refused only while someone holds the exclusive lock: a creator between `link` and
            // its downgrade, or a `create` checking the segment for reclamation; both are brief.
            let held = os::try_lock_shared(&file).map_err(OpenError::Io)?;
            // Once held, the name must still be this file: a reclamation may have removed it
            // (or a `create_or_replace` replaced it) while we waited. Then open again.
            let current = held
                && os::identity_of_name(name)
                    .is_some_and(|now| now.dev == info.dev && now.ino == info.ino);
            if current {
                let left = deadline.map_or(wait, |d| d.saturating_duration_since(Instant::now()));
                // The mapping (and its duplicate descriptor) keep the shared lock while it lives.
                return Self::from_file(&file, info.size, name, left);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(OpenError::NotReady);
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(5));
        }
    }

    /// Maps and validates an opened segment file of `size` bytes (from `fstat`): the part of
    /// `open` after the file checks, shared with the fuzz entry points.
    pub(crate) fn from_file(
        file: &std::fs::File,
        size: u64,
        name: &str,
        wait: Duration,
    ) -> Result<Segment, OpenError> {
        if size < HEADER_SIZE {
            return Err(OpenError::TooSmall {
                size,
                needed: HEADER_SIZE,
            });
        }
        if size > MAX_SEGMENT {
            return Err(OpenError::Corrupt(format!(
                "file size {size} is above 1 TiB"
            )));
        }
        // Reserve room for the segment's growth: its header says how far it may grow. (The
        // header is read once more, and checked, once mapped; here only the reservation's size
        // comes from it.)
        let reserve = os::read_max_size(file)
            .filter(|&m| m >= size && m <= MAX_SEGMENT)
            .unwrap_or(size);
        let map =
            crate::mapping::extent::Mapping::new(file, size, reserve).map_err(OpenError::Io)?;
        let mut inner = Inner::new(map, name.to_string(), false, None)?;
        inner.wait_ready(Instant::now() + wait)?;
        inner.validate()?;
        Ok(Segment {
            inner: Arc::new(inner),
        })
    }

    /// Overwrites word `word` (taken modulo the region's length in words, past its first 128
    /// bytes, where the dictionaries' and lists' locks sit) of object `name`'s directory region
    /// with `value` (fuzzing only: a hostile process writing a dictionary's or a list's header).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_region(&self, name: &str, kind: ObjectKind, word: u64, value: u64) {
        let Ok(o) = self.inner.object(name, kind, None) else {
            return;
        };
        let words = o.entry.len / 8;
        if words <= 16 {
            return;
        }
        let i = 16 + word % (words - 16);
        // SAFETY: `object` checked that the region (`entry.len` bytes, 128-aligned) lies in the
        // mapping, which `self` keeps alive; word i < len / 8 is inside it; AtomicU64 is valid
        // for any bits.
        unsafe { &*o.base.add(i as usize * 8).cast::<crate::sync::AtomicU64>() }
            .store(value, Ordering::Relaxed);
    }

    /// Overwrites the 8-byte word at `at` (taken modulo the span from the heap's control block to
    /// the segment's end, 8-aligned) with `value` (fuzzing only: a hostile process writing the
    /// heap's metadata or blocks). With `inconsistent`, instead marks the heap lock as left by a
    /// dead owner, so its next taker rebuilds the heap from its (possibly forged) sizes.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_heap(&self, at: u64, value: u64, inconsistent: bool) {
        let inner = &self.inner;
        if inconsistent {
            inner.heap().forge_inconsistent();
            return;
        }
        let span = self.size().saturating_sub(inner.heap_offset) / 8;
        if span == 0 {
            return;
        }
        let off = inner.heap_offset + (at % span) * 8;
        // The lock word stays as it is: a forged owner would make every heap user wait for it,
        // as for any lock a hostile process holds.
        if off < inner.heap_offset + 8 {
            return;
        }
        if let Ok(p) = inner.heap_bytes(off, 8) {
            // SAFETY: heap_bytes checked the 8 bytes lie in the mapping; `off` is 8-aligned (the
            // heap offset is 128-aligned); AtomicU64 is valid for any bits.
            unsafe { &*p.cast::<crate::sync::AtomicU64>() }.store(value, Ordering::Relaxed);
        }
    }

    /// Overwrites one word of the segment with `value(old)` (fuzzing only; see
    /// `Inner::forge_word` for the areas `area` and `at` pick).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_word(&self, area: u8, at: u64, value: impl FnOnce(u64) -> u64) {
        self.inner.forge_word(area, at, value);
    }

    /// Names of the objects in the directory (lossy UTF-8), in directory order.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn object_names(&self) -> Vec<String> {
        self.inner.object_names()
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

    /// Removes the name `name` from `/dev/shm` if it is a shmq segment that no process maps any
    /// more (nobody holds it through [`create`](SegmentBuilder::create) or [`open`](Self::open),
    /// and no creator is publishing it); returns whether it did. Unlike the reclamation in
    /// `create`, the creator may still be alive and the segment may be kept: this is for
    /// programs whose processes only ever use a segment while they map it, and remove its name
    /// when the last of them lets go (the Python package does so after each handle's last drop
    /// and at each process's exit).
    ///
    /// An opener racing with it either maps the segment first (and the name stays) or gets
    /// [`OpenError::NotFound`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-unlink-unused").keep(true).event("e").create_or_replace()?;
    /// assert!(!shmq::Segment::unlink_if_unused("doc-unlink-unused")?); // mapped by `seg`
    /// drop(seg);
    /// assert!(shmq::Segment::unlink_if_unused("doc-unlink-unused")?);
    /// assert!(matches!(shmq::Segment::open("doc-unlink-unused"), Err(shmq::OpenError::NotFound)));
    /// # Ok(()) }
    /// ```
    pub fn unlink_if_unused(name: &str) -> Result<bool, OpenError> {
        check_name(name, SEGMENT_NAME_MAX).map_err(OpenError::InvalidName)?;
        os::unlink_unmapped(name).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => OpenError::PermissionDenied,
            _ => OpenError::Io(e),
        })
    }

    /// Gives up this process's claim on the segment while its memory stays mapped here: closes
    /// the segment file, whose shared `flock` marks the segment in use by this process, so that
    /// [`unlink_if_unused`](Self::unlink_if_unused) can remove the name once the other processes
    /// let go too. Every handle of this process keeps working on the memory for as long as it
    /// lives; what needs the file fails from now on (the heap can no longer grow here:
    /// `NoSpace`-like errors from growing objects).
    ///
    /// For bindings whose objects may still point into the segment after their owner let go
    /// of it (Python's ctypes objects laid over a shared value, which a thread may still touch
    /// while the interpreter exits): they keep the mapping alive, and the name can still be
    /// removed.
    ///
    /// The claim is the process's, not the mapping's: the lock lives in the file's open
    /// description, which a `fork()`ed child shares with its parent. So in a child that
    /// inherited the mapping this does nothing, and in a parent it also ends the claim of
    /// children forked since the mapping was made (call it when those are gone, at exit after
    /// joining them, for instance).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-release-claim").value::<u64>("v", 7).keep(true)
    ///     .create_or_replace()?;
    /// let v = seg.value::<u64>("v")?;
    /// assert!(!shmq::Segment::unlink_if_unused("doc-release-claim")?); // mapped here
    /// seg.release_claim();
    /// assert!(shmq::Segment::unlink_if_unused("doc-release-claim")?);
    /// v.store(8); // the memory is still mapped
    /// assert_eq!(v.load(), 8);
    /// # Ok(()) }
    /// ```
    pub fn release_claim(&self) {
        // A process forked after the mapping was made shares the file's open description, and
        // so the lock, with its parent: unlocking here would end the parent's claim too.
        if self.inner.forks == os::fork_generation() {
            self.inner.map.close_file();
        }
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Size of the segment in bytes: its initial size, plus what its heap has grown it by.
    pub fn size(&self) -> u64 {
        self.inner.header().total_size.load(Ordering::Acquire)
    }

    /// How far the segment may grow ([`SegmentBuilder::max_size`]).
    pub fn max_size(&self) -> u64 {
        self.inner.max_size
    }

    /// Figures on the segment's size and its shared heap. Blocks whose holders are gone for
    /// sure (a process killed while it held a long message) are given back first, so the figures
    /// describe what live processes and queued messages hold.
    pub fn stats(&self) -> Result<crate::SegmentStats, OpenError> {
        // Read before the sweep, which maps whatever blocks it walks.
        let mapped = self.inner.map.mapped();
        // A participant record first: the heap lock names its owner by one, so that a process
        // killed holding it can be proven dead.
        let _ = self.inner.participant();
        let h = self
            .inner
            .heap()
            .stats()
            .map_err(|_| OpenError::Corrupt("the segment's heap is inconsistent".into()))?;
        Ok(crate::SegmentStats {
            size: self.size(),
            max_size: self.inner.max_size,
            mapped,
            heap_bytes: h.heap_bytes,
            heap_in_use: h.in_use,
            heap_blocks: h.blocks,
            growths: h.growths,
            reclaimed: h.reclaimed,
            records_reused: self.inner.header().records_reused.load(Ordering::Relaxed),
            locks_taken_over: self.inner.header().locks_taken_over.load(Ordering::Relaxed),
            slots_released: self.inner.header().slots_released.load(Ordering::Relaxed),
        })
    }

    /// Keeps (or stops keeping) the name after this creator's last handle drops. Has no effect on
    /// a segment that was opened rather than created: openers never unlink. A kept segment is
    /// also never reclaimed by a later `create` after its creator dies.
    pub fn set_keep(&self, keep: bool) {
        if !self.inner.owner {
            return;
        }
        self.inner
            .keep
            .store(keep, std::sync::atomic::Ordering::Relaxed);
        let flags = &self.inner.header().flags;
        if keep {
            flags.fetch_or(HEADER_KEEP, Ordering::Relaxed);
        } else {
            flags.fetch_and(!HEADER_KEEP, Ordering::Relaxed);
        }
    }

    /// Looks up a queue of `T`. Fails with a typed error if there is no such object, if it is not
    /// a queue, or if its element type differs from `T` (size, alignment or type name).
    pub fn queue<T: bytemuck::Pod>(&self, name: &str) -> Result<crate::Queue<T>, OpenError> {
        let o = self.inner.object_either(
            name,
            ObjectKind::Queue,
            ObjectKind::UnboundedQueue,
            Some(&type_sig::<T>()),
        )?;
        if let Some(chain) = self.chain(name, &o, false)? {
            return Ok(crate::Queue::from_rings(
                self.inner.clone(),
                crate::ring_handle::Rings::Chain(chain),
                o.index + 1,
            ));
        }
        let ring = self.inner.ring(name, &o)?;
        Ok(crate::Queue::from_parts(
            self.inner.clone(),
            ring,
            o.index + 1,
        ))
    }

    /// The rings of queue `o` of any queue kind (bounded, joinable or unbounded, of values or
    /// bytes), for the inspection's figures.
    pub(crate) fn rings(
        &self,
        name: &str,
        o: &crate::mapping::Found,
    ) -> Result<crate::ring_handle::Rings, OpenError> {
        let heap_refs = o.entry.kind == ObjectKind::UnboundedBytesQueue.code();
        Ok(match self.chain(name, o, heap_refs)? {
            Some(chain) => crate::ring_handle::Rings::Chain(chain),
            None => crate::ring_handle::Rings::One(self.inner.ring(name, o)?),
        })
    }

    /// The chain of an unbounded queue found as `o`, or `None` if `o` is a bounded queue.
    fn chain(
        &self,
        name: &str,
        o: &crate::mapping::Found,
        heap_refs: bool,
    ) -> Result<Option<crate::chain::SegChain>, OpenError> {
        if !ObjectKind::from_code(o.entry.kind).is_some_and(|k| k.is_chain()) {
            return Ok(None);
        }
        let layout = o
            .layout
            .ok_or_else(|| OpenError::Corrupt(format!("object {name:?}: no slot layout")))?;
        // SAFETY: `object` checked that the region lies in the mapping, 128-aligned, and is at
        // least CHAIN_REGION bytes (the kind's region size).
        Ok(Some(unsafe {
            crate::chain::SegChain::new(
                self.inner.clone(),
                o.base.cast(),
                o.index + 1,
                layout,
                heap_refs,
            )
        }))
    }

    /// Like [`queue`](Self::queue), and also checks that the queue has exactly `capacity` slots.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-queue-cap").queue::<u8>("q", 8).create_or_replace().unwrap();
    /// assert!(seg.queue_with_capacity::<u8>("q", 8).is_ok());
    /// assert!(matches!(
    ///     seg.queue_with_capacity::<u8>("q", 16),
    ///     Err(shmq::OpenError::ParamMismatch { expected: 16, found: 8, .. })
    /// ));
    /// ```
    pub fn queue_with_capacity<T: bytemuck::Pod>(
        &self,
        name: &str,
        capacity: u64,
    ) -> Result<crate::Queue<T>, OpenError> {
        let q = self.queue::<T>(name)?;
        expect_param(name, "capacity", capacity, q.capacity() as u64)?;
        Ok(q)
    }

    /// Like [`bytes_queue`](Self::bytes_queue), and also checks the capacity and the maximum
    /// message length.
    pub fn bytes_queue_with(
        &self,
        name: &str,
        capacity: u64,
        max_len: usize,
    ) -> Result<crate::BytesQueue, OpenError> {
        let q = self.bytes_queue(name)?;
        expect_param(name, "capacity", capacity, q.capacity() as u64)?;
        expect_param(
            name,
            "max message length",
            max_len as u64,
            q.max_len() as u64,
        )?;
        Ok(q)
    }

    /// Looks up a byte-message queue.
    pub fn bytes_queue(&self, name: &str) -> Result<crate::BytesQueue, OpenError> {
        let o = self.inner.object_either(
            name,
            ObjectKind::BytesQueue,
            ObjectKind::UnboundedBytesQueue,
            None,
        )?;
        if let Some(chain) = self.chain(name, &o, true)? {
            let layout = o
                .layout
                .ok_or_else(|| OpenError::Corrupt(name.to_string()))?;
            return Ok(crate::BytesQueue::from_rings(
                self.inner.clone(),
                crate::ring_handle::Rings::Chain(chain),
                o.index + 1,
                layout,
                Some(o.entry.param1),
            ));
        }
        let ring = self.inner.ring(name, &o)?;
        let long = (o.entry.param2 != 0).then_some(o.entry.param1);
        Ok(crate::BytesQueue::from_parts(
            self.inner.clone(),
            ring,
            o.index + 1,
            long,
        ))
    }
}

fn expect_param(
    name: &str,
    param: &'static str,
    expected: u64,
    found: u64,
) -> Result<(), OpenError> {
    if expected == found {
        Ok(())
    } else {
        Err(OpenError::ParamMismatch {
            name: name.to_string(),
            param,
            expected,
            found,
        })
    }
}

crate::sync::native_only! {
#[cfg(test)]
mod tests {
    use super::*;

    /// An opener measures the file (`fstat`), then maps it and reads the header. If the segment
    /// grows in between (another process's heap took room), the header's size is past what it
    /// measured: the open maps the growth instead of failing with `TooSmall` (seen as an
    /// intermittent failure of tests/list.rs's four appending processes).
    #[test]
    #[cfg_attr(miri, ignore = "maps a real segment: system calls miri does not run")]
    fn an_open_that_measured_the_file_before_the_segment_grew_maps_the_growth() {
        let name = format!("shmq-unit-{}-grown-open", std::process::id());
        let seg = Segment::builder(&name)
            .bytes_queue("q", 4, usize::MAX)
            .create_or_replace()
            .unwrap();
        let (file, before) = os::open_existing(&name).unwrap();
        let q = seg.bytes_queue("q").unwrap();
        q.put(&vec![7u8; 4 << 20]).unwrap();
        let (_, after) = os::open_existing(&name).unwrap();
        assert!(after.size > before.size, "the put did not grow the segment");
        let other = Segment::from_file(&file, before.size, &name, Duration::ZERO).unwrap();
        let got = other.bytes_queue("q").unwrap().get().unwrap();
        assert_eq!(got.len(), 4 << 20);
    }
}
}
