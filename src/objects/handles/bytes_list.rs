//! The `BytesList` and `SharedVec<T>` handles.

use super::*;
use crate::error::ListError;
use crate::objects::bytes_list::{OutOfRange, SeqHeader, SeqRef};
use crate::objects::heaped::HeapObjFail;

/// A growable list shared between processes, like `multiprocessing.Manager().list()` without a
/// server: items are byte strings of any size, stored in the segment's shared heap, and every
/// process reads and writes it directly.
///
/// Each call holds the list's lock for its duration: a snapshot ([`to_vec`](Self::to_vec),
/// [`slice`](Self::slice)) sees no change half-made, and an insertion or removal in the middle
/// (which rebuilds the list's array, as `Vec::insert` moves its tail) is one step for every
/// other process. A process killed in the middle of any change leaves the list as it was before
/// the change or after it; the next user takes the lock over and what the dead process had
/// allocated goes back to the heap.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-bytes-list").bytes_list("l").create_or_replace()?;
/// let l = seg.bytes_list("l")?;
/// l.push(b"b")?;
/// l.insert(0, b"a")?;
/// l.extend([&b"c"[..], b"d"])?;
/// assert_eq!(l.to_vec()?, [b"a", b"b", b"c", b"d"]);
/// assert_eq!(l.pop()?, Some(b"d".to_vec()));
/// assert!(l.remove(b"b")?);
/// assert_eq!(l.get(1)?, b"c");
/// assert!(matches!(l.get(5), Err(shmq::ListError::IndexOutOfRange { index: 5, len: 2 })));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BytesList {
    hdr: Ptr<SeqHeader>,
    obj: u32,
    seg: Arc<Inner>,
}

impl std::fmt::Debug for BytesList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesList")
            .field("len", &self.len().ok())
            .finish()
    }
}

fn list_error(seg: &Inner, e: HeapObjFail) -> ListError {
    match e {
        HeapObjFail::Heap(HeapError::NoSpace { requested }) => ListError::NoSpace {
            requested,
            max_size: seg.max_size,
        },
        HeapObjFail::Heap(HeapError::Io(_)) => ListError::Io(std::io::ErrorKind::Other),
        HeapObjFail::Heap(_) | HeapObjFail::Corrupt => ListError::Corrupt,
    }
}

fn in_range(index: u64, r: Result<(), OutOfRange>) -> Result<(), ListError> {
    r.map_err(|e| ListError::IndexOutOfRange {
        index: usize::try_from(index).unwrap_or(usize::MAX),
        len: usize::try_from(e.len).unwrap_or(usize::MAX),
    })
}

impl BytesList {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8, obj: u32) -> Self {
        Self {
            // SAFETY: the lookup checked a SeqHeader fits at `p`, 128-aligned, inside the mapping
            // that `seg` keeps alive.
            hdr: unsafe { Ptr::new(p) },
            obj,
            seg,
        }
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&SeqRef<'_, Inner>) -> Result<T, HeapObjFail>,
    ) -> Result<T, ListError> {
        let l = SeqRef {
            hdr: self.hdr.get(),
            heap: self.seg.heap(),
            obj: self.obj,
            me: self.seg.holder_tag(),
        };
        f(&l).map_err(|e| list_error(&self.seg, e))
    }

    /// Items in the list.
    pub fn len(&self) -> Result<usize, ListError> {
        self.run(|l| l.len())
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool, ListError> {
        Ok(self.len()? == 0)
    }

    /// Appends `item`; returns the new length.
    pub fn push(&self, item: &[u8]) -> Result<usize, ListError> {
        self.extend([item])
    }

    /// Appends every item of `items` (under one hold of the lock: another process sees all of
    /// them or none); returns the new length.
    pub fn extend<'b>(&self, items: impl IntoIterator<Item = &'b [u8]>) -> Result<usize, ListError> {
        self.run(|l| l.extend(items))
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Item `index`.
    pub fn get(&self, index: usize) -> Result<Vec<u8>, ListError> {
        let mut out = Vec::new();
        let i = index as u64;
        in_range(i, self.run(|l| l.get(i, &mut out))?)?;
        Ok(out)
    }

    /// Replaces item `index`; returns the item it replaced.
    pub fn set(&self, index: usize, item: &[u8]) -> Result<Vec<u8>, ListError> {
        let mut old = Vec::new();
        let i = index as u64;
        in_range(i, self.run(|l| l.set(i, item, &mut old))?)?;
        Ok(old)
    }

    /// Removes and returns the last item (`None` if the list is empty).
    pub fn pop(&self) -> Result<Option<Vec<u8>>, ListError> {
        let mut out = Vec::new();
        Ok(self.run(|l| l.pop(None, &mut out))?.ok().map(|()| out))
    }

    /// Removes and returns item `index`; the items after it move down by one.
    pub fn pop_at(&self, index: usize) -> Result<Vec<u8>, ListError> {
        let mut out = Vec::new();
        let i = index as u64;
        in_range(i, self.run(|l| l.pop(Some(i), &mut out))?)?;
        Ok(out)
    }

    /// Inserts `item` before item `index` (at the end when `index` is the length or more, as
    /// Python's `list.insert`).
    pub fn insert(&self, index: usize, item: &[u8]) -> Result<(), ListError> {
        self.run(|l| l.insert(index as u64, item))
    }

    /// Removes the first item equal to `item`; whether there was one.
    pub fn remove(&self, item: &[u8]) -> Result<bool, ListError> {
        self.run(|l| l.remove_first(item))
    }

    /// Replaces items `range` (clamped to the length) by `items`, as `Vec::splice` (or Python's
    /// `l[a:b] = items`): one step for every other process, and a process killed in the middle
    /// leaves the list wholly as it was or wholly changed. Returns the new length.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-bytes-list-splice").bytes_list("l").create_or_replace()?;
    /// let l = seg.bytes_list("l")?;
    /// l.extend([&b"a"[..], b"b", b"c", b"d"])?;
    /// assert_eq!(l.splice(1..3, [&b"x"[..]])?, 3);
    /// assert_eq!(l.to_vec()?, [&b"a"[..], b"x", b"d"]);
    /// # Ok(()) }
    /// ```
    pub fn splice<'b>(
        &self,
        range: std::ops::Range<usize>,
        items: impl IntoIterator<Item = &'b [u8]>,
    ) -> Result<usize, ListError> {
        self.run(|l| l.splice(range.start as u64, range.end as u64, items))
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<(), ListError> {
        self.run(|l| l.clear())
    }

    /// A snapshot of items `range` (clamped to the length), taken under one hold of the lock.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<Vec<Vec<u8>>, ListError> {
        let mut out = Vec::new();
        self.run(|l| l.slice(range.start as u64, range.end as u64, |b| out.push(b.to_vec())))?;
        Ok(out)
    }

    /// A snapshot of every item, taken under one hold of the lock.
    pub fn to_vec(&self) -> Result<Vec<Vec<u8>>, ListError> {
        self.slice(0..usize::MAX)
    }
}

/// A [`BytesList`] of `Pod` items, stored as their bytes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-shared-vec").shared_vec::<u32>("v").create_or_replace()?;
/// let v = seg.shared_vec::<u32>("v")?;
/// v.extend([1, 2, 3])?;
/// v.set(0, 10)?;
/// assert_eq!(v.to_vec()?, [10, 2, 3]);
/// assert_eq!(v.pop()?, Some(3));
/// # Ok(()) }
/// ```
pub struct SharedVec<T> {
    bytes: BytesList,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for SharedVec<T> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedVec")
            .field("len", &self.bytes.len().ok())
            .finish()
    }
}

fn decode<T: bytemuck::Pod>(b: &[u8]) -> Result<T, ListError> {
    if b.len() != std::mem::size_of::<T>() {
        return Err(ListError::WrongSize {
            found: b.len(),
            expected: std::mem::size_of::<T>(),
        });
    }
    Ok(bytemuck::pod_read_unaligned(b))
}

impl<T: bytemuck::Pod> SharedVec<T> {
    /// The bytes list under it.
    pub fn as_bytes(&self) -> &BytesList {
        &self.bytes
    }

    /// Items in the list.
    pub fn len(&self) -> Result<usize, ListError> {
        self.bytes.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool, ListError> {
        self.bytes.is_empty()
    }

    /// Appends `item`; returns the new length.
    pub fn push(&self, item: T) -> Result<usize, ListError> {
        self.bytes.push(bytemuck::bytes_of(&item))
    }

    /// Appends every item of `items` at once; returns the new length.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<usize, ListError> {
        let items: Vec<T> = items.into_iter().collect();
        self.bytes
            .extend(items.iter().map(|x| bytemuck::bytes_of(x)))
    }

    /// Item `index`.
    pub fn get(&self, index: usize) -> Result<T, ListError> {
        decode(&self.bytes.get(index)?)
    }

    /// Replaces item `index`; returns the item it replaced.
    pub fn set(&self, index: usize, item: T) -> Result<T, ListError> {
        decode(&self.bytes.set(index, bytemuck::bytes_of(&item))?)
    }

    /// Removes and returns the last item.
    pub fn pop(&self) -> Result<Option<T>, ListError> {
        self.bytes.pop()?.map(|b| decode(&b)).transpose()
    }

    /// Removes and returns item `index`.
    pub fn pop_at(&self, index: usize) -> Result<T, ListError> {
        decode(&self.bytes.pop_at(index)?)
    }

    /// Inserts `item` before item `index`.
    pub fn insert(&self, index: usize, item: T) -> Result<(), ListError> {
        self.bytes.insert(index, bytemuck::bytes_of(&item))
    }

    /// Removes the first item equal to `item` (bytewise); whether there was one.
    pub fn remove(&self, item: &T) -> Result<bool, ListError> {
        self.bytes.remove(bytemuck::bytes_of(item))
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<(), ListError> {
        self.bytes.clear()
    }

    /// A snapshot of items `range`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<Vec<T>, ListError> {
        self.bytes.slice(range)?.iter().map(|b| decode(b)).collect()
    }

    /// A snapshot of every item.
    pub fn to_vec(&self) -> Result<Vec<T>, ListError> {
        self.slice(0..usize::MAX)
    }
}

/// Calls `each` with every heap block the growable list whose region is at `base` uses (its
/// kind's `blocks`).
pub(crate) fn bytes_list_region_blocks(
    seg: &Inner,
    base: *mut u8,
    each: &mut dyn FnMut(u64),
) -> bool {
    // SAFETY: the directory lookup behind `blocks` checked that the region is a growable list's
    // (SEQ_REGION bytes, 128-aligned) inside the mapping; SeqHeader is atomics only.
    let hdr = unsafe { &*base.cast::<SeqHeader>() };
    SeqRef {
        hdr,
        heap: seg.heap(),
        obj: 0,
        me: crate::heap::UNATTRIBUTED,
    }
    .blocks(each)
}

impl crate::SegmentBuilder {
    /// Adds a [`BytesList`] (empty; it grows in the segment's heap).
    pub fn bytes_list(self, name: &str) -> Self {
        self.object(name, ObjectKind::BytesList, crate::segment::bytes_sig(), 0, 0)
    }

    /// Adds a [`SharedVec`] of `T` (empty; it grows in the segment's heap).
    pub fn shared_vec<T: bytemuck::Pod>(self, name: &str) -> Self {
        self.object(name, ObjectKind::BytesList, type_sig::<T>(), 0, 0)
    }
}

impl crate::Segment {
    /// Looks up a bytes list.
    pub fn bytes_list(&self, name: &str) -> Result<BytesList, OpenError> {
        let o = self.inner.object(
            name,
            ObjectKind::BytesList,
            Some(&crate::segment::bytes_sig()),
        )?;
        Ok(BytesList::from_raw(self.inner.clone(), o.base, o.index + 1))
    }

    /// Looks up a growable list of `T`.
    pub fn shared_vec<T: bytemuck::Pod>(&self, name: &str) -> Result<SharedVec<T>, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::BytesList, Some(&type_sig::<T>()))?;
        Ok(SharedVec {
            bytes: BytesList::from_raw(self.inner.clone(), o.base, o.index + 1),
            _t: PhantomData,
        })
    }
}
