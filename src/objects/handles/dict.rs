//! The `BytesDict` and `Dict<K, V>` handles.

use super::*;
use crate::error::DictError;
use crate::objects::dict::{DictFail, DictHeader, DictRef};

/// A hash map shared between processes, like `multiprocessing.Manager().dict()` without a
/// server: keys and values are byte strings of any size, stored in the segment's shared heap,
/// and every process reads and writes it directly.
///
/// The dictionary grows as it fills (bounded only by the segment's `max_size`). Each operation
/// holds the dictionary's lock for as long as one probe and one copy of the key and value take
/// (lookups too: see docs/design.md, "Dictionaries"). [`update`](Self::update) reads, computes
/// and writes under one hold, so no other process's change falls in between. A process killed in
/// the middle of any change leaves every entry whole, old or new; the next user takes the lock
/// over and what the dead process had allocated goes back to the heap.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-dict").bytes_dict("d").create_or_replace()?;
/// let d = seg.bytes_dict("d")?;
/// assert_eq!(d.insert(b"apple", b"red")?, None);
/// assert_eq!(d.insert(b"apple", b"green")?, Some(b"red".to_vec()));
/// assert_eq!(d.get(b"apple")?, Some(b"green".to_vec()));
/// d.update(b"count", |v| {
///     let n = v.map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
///     Some((n + 1).to_le_bytes().to_vec())
/// })?;
/// assert_eq!(d.len()?, 2);
/// assert_eq!(d.remove(b"apple")?, Some(b"green".to_vec()));
/// assert!(!d.contains_key(b"apple")?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BytesDict {
    hdr: Ptr<DictHeader>,
    obj: u32,
    seg: Arc<Inner>,
}

impl std::fmt::Debug for BytesDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesDict")
            .field("len", &self.len().ok())
            .finish()
    }
}

fn dict_error(seg: &Inner, e: DictFail) -> DictError {
    match e {
        DictFail::Heap(HeapError::NoSpace { requested }) => DictError::NoSpace {
            requested,
            max_size: seg.max_size,
        },
        DictFail::Heap(HeapError::Io(_)) => DictError::Io(std::io::ErrorKind::Other),
        DictFail::Heap(_) | DictFail::Corrupt => DictError::Corrupt,
    }
}

impl BytesDict {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8, obj: u32) -> Self {
        Self {
            // SAFETY: the lookup checked a DictHeader fits at `p`, 128-aligned, inside the
            // mapping that `seg` keeps alive.
            hdr: unsafe { Ptr::new(p) },
            obj,
            seg,
        }
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&DictRef<'_, Inner>) -> Result<T, DictFail>,
    ) -> Result<T, DictError> {
        let d = DictRef {
            hdr: self.hdr.get(),
            heap: self.seg.heap(),
            obj: self.obj,
            me: self.seg.holder_tag(),
        };
        f(&d).map_err(|e| dict_error(&self.seg, e))
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        let mut out = Vec::new();
        Ok(self.run(|d| d.get(key, &mut out))?.then_some(out))
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, DictError> {
        let mut out = Vec::new();
        self.run(|d| d.get(key, &mut out))
    }

    /// Sets `key`'s value; returns the value it replaced.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        let mut old = Vec::new();
        Ok(self.run(|d| d.insert(key, value, &mut old))?.then_some(old))
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        let mut old = Vec::new();
        Ok(self.run(|d| d.remove(key, &mut old))?.then_some(old))
    }

    /// Atomically replaces `key`'s value by `f(current)` (`None` removes it, or leaves it
    /// absent): no other process changes the dictionary between the read and the write. `f` runs
    /// with the dictionary's lock held, so it must be short and must not use this dictionary.
    /// Returns the new value.
    pub fn update(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, DictError> {
        self.run(|d| d.update(key, f))
    }

    /// Entries in the dictionary.
    pub fn len(&self) -> Result<usize, DictError> {
        self.run(|d| d.len())
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> Result<bool, DictError> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), DictError> {
        self.run(|d| d.clear())
    }

    /// A snapshot of the keys (taken under one hold of the lock), in no particular order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, DictError> {
        let mut out = Vec::new();
        self.run(|d| d.items(|k, _| out.push(k.to_vec())))?;
        Ok(out)
    }

    /// A snapshot of the entries (taken under one hold of the lock), in no particular order.
    pub fn items(&self) -> Result<Vec<Entry>, DictError> {
        let mut out = Vec::new();
        self.run(|d| d.items(|k, v| out.push((k.to_vec(), v.to_vec()))))?;
        Ok(out)
    }
}

/// A key and its value, as [`BytesDict::items`] returns them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A [`BytesDict`] of `Pod` keys and values, stored as their bytes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-pod-dict").dict::<u64, f64>("d").create_or_replace()?;
/// let d = seg.dict::<u64, f64>("d")?;
/// d.insert(7, 0.5)?;
/// d.update(&7, |v| v.map(|x| x * 4.0))?;
/// assert_eq!(d.get(&7)?, Some(2.0));
/// assert!(seg.dict::<u32, f64>("d").is_err()); // another type
/// # Ok(()) }
/// ```
pub struct Dict<K, V> {
    bytes: BytesDict,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Dict<K, V> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            _t: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Dict<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dict")
            .field("len", &self.bytes.len().ok())
            .finish()
    }
}

fn decode<T: bytemuck::Pod>(b: &[u8]) -> Result<T, DictError> {
    if b.len() != std::mem::size_of::<T>() {
        return Err(DictError::WrongSize {
            found: b.len(),
            expected: std::mem::size_of::<T>(),
        });
    }
    Ok(bytemuck::pod_read_unaligned(b))
}

impl<K: bytemuck::Pod, V: bytemuck::Pod> Dict<K, V> {
    /// The bytes dictionary under it.
    pub fn as_bytes(&self) -> &BytesDict {
        &self.bytes
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &K) -> Result<Option<V>, DictError> {
        self.bytes
            .get(bytemuck::bytes_of(key))?
            .map(|b| decode(&b))
            .transpose()
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &K) -> Result<bool, DictError> {
        self.bytes.contains_key(bytemuck::bytes_of(key))
    }

    /// Sets `key`'s value; returns the value it replaced.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, DictError> {
        self.bytes
            .insert(bytemuck::bytes_of(&key), bytemuck::bytes_of(&value))?
            .map(|b| decode(&b))
            .transpose()
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>, DictError> {
        self.bytes
            .remove(bytemuck::bytes_of(key))?
            .map(|b| decode(&b))
            .transpose()
    }

    /// Atomically replaces `key`'s value by `f(current)` (as [`BytesDict::update`]); returns
    /// the new value.
    pub fn update(&self, key: &K, f: impl FnOnce(Option<V>) -> Option<V>) -> Result<Option<V>, DictError> {
        let mut bad = None;
        let r = self.bytes.update(bytemuck::bytes_of(key), |cur| {
            let cur = match cur.map(decode::<V>).transpose() {
                Ok(c) => c,
                Err(e) => {
                    bad = Some(e);
                    return cur.map(<[u8]>::to_vec); // leave the value as it was
                }
            };
            f(cur).map(|v| bytemuck::bytes_of(&v).to_vec())
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        r.map(|b| decode(&b)).transpose()
    }

    /// Entries in the dictionary.
    pub fn len(&self) -> Result<usize, DictError> {
        self.bytes.len()
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> Result<bool, DictError> {
        self.bytes.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), DictError> {
        self.bytes.clear()
    }

    /// A snapshot of the keys, in no particular order.
    pub fn keys(&self) -> Result<Vec<K>, DictError> {
        self.bytes.keys()?.iter().map(|k| decode(k)).collect()
    }

    /// A snapshot of the entries, in no particular order.
    pub fn items(&self) -> Result<Vec<(K, V)>, DictError> {
        self.bytes
            .items()?
            .iter()
            .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
            .collect()
    }
}

/// Calls `each` with every heap block the dictionary whose region is at `base` uses (its kind's
/// `blocks`).
pub(crate) fn dict_region_blocks(seg: &Inner, base: *mut u8, each: &mut dyn FnMut(u64)) -> bool {
    // SAFETY: the directory lookup behind `blocks` checked that the region is a dictionary's
    // (DICT_REGION bytes, 128-aligned) inside the mapping; DictHeader is atomics only.
    let hdr = unsafe { &*base.cast::<DictHeader>() };
    DictRef {
        hdr,
        heap: seg.heap(),
        obj: 0,
        me: crate::heap::UNATTRIBUTED,
    }
    .blocks(each)
}

impl crate::SegmentBuilder {
    /// Adds a [`BytesDict`] (empty; it grows in the segment's heap).
    pub fn bytes_dict(self, name: &str) -> Self {
        self.object(name, ObjectKind::Dict, crate::segment::bytes_sig(), 0, 0)
    }

    /// Adds a [`Dict`] of `K` keys and `V` values (empty; it grows in the segment's heap).
    pub fn dict<K: bytemuck::Pod, V: bytemuck::Pod>(self, name: &str) -> Self {
        self.object(name, ObjectKind::Dict, type_sig::<(K, V)>(), 0, 0)
    }
}

impl crate::Segment {
    /// Looks up a bytes dictionary.
    pub fn bytes_dict(&self, name: &str) -> Result<BytesDict, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::Dict, Some(&crate::segment::bytes_sig()))?;
        Ok(BytesDict::from_raw(self.inner.clone(), o.base, o.index + 1))
    }

    /// Looks up a dictionary of `K` keys and `V` values.
    pub fn dict<K: bytemuck::Pod, V: bytemuck::Pod>(
        &self,
        name: &str,
    ) -> Result<Dict<K, V>, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::Dict, Some(&type_sig::<(K, V)>()))?;
        Ok(Dict {
            bytes: BytesDict::from_raw(self.inner.clone(), o.base, o.index + 1),
            _t: PhantomData,
        })
    }
}
