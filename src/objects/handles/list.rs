//! The `List` handle.

use super::*;

/// A bounded, append-only list of `T: Pod` that many processes push to (the pattern of
/// `manager.list().append(x)`). Readers never see an element before its writer finished it.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-list").list::<u32>("seen", 2).create_or_replace()?;
/// let seen = seg.list::<u32>("seen")?;
/// assert_eq!(seen.push(7), Ok(0));
/// assert_eq!(seen.push(8), Ok(1));
/// assert!(seen.push(9).is_err());
/// assert_eq!(seen.to_vec(), vec![7, 8]);
/// # Ok(()) }
/// ```
pub struct List<T> {
    hdr: Ptr<ListHeader>,
    slots: NonNull<u8>,
    layout: SlotLayout,
    cap: u64,
    _seg: Arc<Inner>,
    _t: PhantomData<fn(T) -> T>,
}

// SAFETY: the slots are shared memory accessed through the ready-flag protocol; no T is stored in
// the handle.
unsafe impl<T> Send for List<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for List<T> {}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        Self {
            hdr: self.hdr.clone(),
            slots: self.slots,
            layout: self.layout,
            cap: self.cap,
            _seg: self._seg.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: bytemuck::Pod> std::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("List")
            .field("len", &self.len())
            .field("capacity", &self.cap)
            .finish()
    }
}

impl<T: bytemuck::Pod> List<T> {
    pub(crate) fn from_raw(seg: Arc<Inner>, base: *mut u8, cap: u64, layout: SlotLayout) -> Self {
        Self {
            // SAFETY: the lookup checked the region holds a 128-byte ListHeader followed by
            // `cap` slots of `layout`, inside the mapping `seg` keeps alive.
            hdr: unsafe { Ptr::new(base) },
            // SAFETY: as above; offset 128 is inside the region.
            slots: unsafe { NonNull::new_unchecked(base.add(BLOCK as usize)) },
            layout,
            cap,
            _seg: seg,
            _t: PhantomData,
        }
    }

    fn slot(&self, i: u64) -> (&AtomicU64, *mut u8) {
        debug_assert!(i < self.cap);
        // SAFETY: i < cap, and the slots fit the region (checked at lookup). Each slot starts
        // 8-aligned with an 8-byte ready word.
        unsafe {
            let s = self.slots.as_ptr().add((i * self.layout.stride) as usize);
            (
                &*s.cast::<AtomicU64>(),
                s.add(self.layout.payload_off as usize),
            )
        }
    }

    /// Appends `v`; returns its index, or hands `v` back if the list is full.
    pub fn push(&self, v: T) -> Result<usize, ListFull<T>> {
        let Some(i) = self.hdr.get().claim(self.cap) else {
            return Err(ListFull(v));
        };
        let (ready, payload) = self.slot(i);
        let bytes = bytemuck::bytes_of(&v);
        // SAFETY: index i was handed to us alone by the claim counter, its ready flag is 0, and no
        // reader touches the payload before we publish the flag.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), payload, bytes.len()) };
        crate::objects::list::publish(ready);
        Ok(i as usize)
    }

    /// Element `i`, or `None` if `i` is past the end or its writer has not finished.
    pub fn get(&self, i: usize) -> Option<T> {
        let i = i as u64;
        if i >= self.cap {
            return None;
        }
        let (ready, payload) = self.slot(i);
        if !crate::objects::list::is_ready(ready) {
            return None;
        }
        // SAFETY: the ready flag (read with Acquire) says the writer finished; elements are never
        // written again.
        let bytes = unsafe { std::slice::from_raw_parts(payload, std::mem::size_of::<T>()) };
        Some(bytemuck::pod_read_unaligned(bytes))
    }

    /// Number of indices taken (finished or still being written), at most the capacity.
    pub fn len(&self) -> usize {
        self.hdr.get().len(self.cap) as usize
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of elements.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The finished elements in index order (an element still being written is left out).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).filter_map(|i| self.get(i)).collect()
    }
}

impl crate::SegmentBuilder {
    /// Adds an append-only [`List`](crate::List) of at most `capacity` elements.
    pub fn list<T: bytemuck::Pod>(self, name: &str, capacity: u64) -> Self {
        self.object(name, ObjectKind::List, type_sig::<T>(), capacity, 0)
    }
}

impl crate::Segment {
    /// Looks up an append-only list of `T`.
    pub fn list<T: bytemuck::Pod>(&self, name: &str) -> Result<crate::List<T>, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::List, Some(&type_sig::<T>()))?;
        let layout = o
            .layout
            .ok_or_else(|| OpenError::Corrupt(name.to_string()))?;
        Ok(crate::List::from_raw(
            self.inner.clone(),
            o.base,
            o.entry.param0,
            layout,
        ))
    }
}
