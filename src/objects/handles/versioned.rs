//! The `Versioned` handle.

use super::*;

/// One shared value of any `Pod` type (a struct of several fields, an array), like
/// `multiprocessing.Value` of a `ctypes.Structure`: writers replace it under a lock, readers copy
/// it out without one and always get a whole value, never a mix of two writes.
///
/// Reads do not wait for writers: only a read overtaken by 64 publishes in a row takes the writer
/// lock for one copy, so that writers faster than a copy cannot starve it. A writer killed
/// half-way through a write leaves no trace: its bytes went to a second copy that readers do not
/// look at until it is published, and the next writer takes the dead writer's lock over as a
/// [`Lock`] contender does (see docs/reliability.md). Values of at most 8 bytes that need
/// arithmetic are better served by [`Value`].
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Pose { x: f64, y: f64, heading: f64 }
///
/// let seg = shmq::Segment::builder("doc-versioned")
///     .versioned("pose", Pose { x: 0.0, y: 0.0, heading: 0.0 })
///     .create_or_replace()?;
/// let pose = seg.versioned::<Pose>("pose")?;
/// pose.store(Pose { x: 1.0, y: 2.0, heading: 0.5 });
/// let moved = pose.update(|p| p.x += 1.0);
/// assert_eq!(moved, Pose { x: 2.0, y: 2.0, heading: 0.5 });
/// assert_eq!(pose.load(), moved);
/// assert_eq!(pose.version(), 2);
/// # Ok(()) }
/// ```
pub struct Versioned<T> {
    lock: Ptr<LockState>,
    version: Ptr<AtomicU64>,
    /// Start of copy 0; copy 1 follows `copy_size` bytes later.
    copies: NonNull<AtomicU64>,
    copy_size: usize,
    _seg: Arc<Inner>,
    _t: PhantomData<fn(T) -> T>,
}

// SAFETY: the handle holds pointers to atomics in shared memory (kept mapped by `_seg`) and no T.
unsafe impl<T> Send for Versioned<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Versioned<T> {}

impl<T> Clone for Versioned<T> {
    fn clone(&self) -> Self {
        Self {
            lock: self.lock.clone(),
            version: self.version.clone(),
            copies: self.copies,
            copy_size: self.copy_size,
            _seg: self._seg.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: bytemuck::Pod + std::fmt::Debug> std::fmt::Debug for Versioned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versioned")
            .field("value", &self.load())
            .field("version", &self.version())
            .finish()
    }
}

impl<T: bytemuck::Pod> Versioned<T> {
    /// `copy_size`: bytes of one copy (whole words of `T`, rounded up to 128), as the lookup
    /// computed from the directory entry it validated.
    pub(crate) fn from_raw(seg: Arc<Inner>, base: *mut u8, copy_size: u64) -> Self {
        // SAFETY: the lookup checked the region holds a 128-byte LockState, a 128-byte block
        // whose first word is the version, and two copies of `copy_size` bytes (128-aligned,
        // whole words), inside the mapping `seg` keeps alive; all three pointers are into it.
        unsafe {
            Self {
                lock: Ptr::new(base),
                version: Ptr::new(base.add(BLOCK as usize)),
                copies: NonNull::new_unchecked(base.add(256).cast()),
                copy_size: copy_size as usize,
                _seg: seg,
                _t: PhantomData,
            }
        }
    }

    fn shared(&self) -> crate::objects::versioned::VersionedRef<'_> {
        let words = core::mem::size_of::<T>().div_ceil(8);
        let copy = |i: usize| {
            // SAFETY: copy i starts i * copy_size bytes after copy 0 and holds at least `words`
            // AtomicU64s (copy_size ≥ 8 * words, see `from_raw`); they live as long as `self`.
            unsafe {
                std::slice::from_raw_parts(
                    self.copies
                        .as_ptr()
                        .cast::<u8>()
                        .add(i * self.copy_size)
                        .cast::<AtomicU64>(),
                    words,
                )
            }
        };
        crate::objects::versioned::VersionedRef {
            lock: self.lock.get(),
            version: self.version.get(),
            copies: [copy(0), copy(1)],
        }
    }

    /// A consistent copy of the current value. Never waits for a writer.
    pub fn load(&self) -> T {
        let mut v = T::zeroed();
        self.shared().read(bytemuck::bytes_of_mut(&mut v));
        v
    }

    /// Replaces the value (waits for the writer lock; a dead writer's lock is taken over).
    pub fn store(&self, v: T) {
        self.shared().write(bytemuck::bytes_of(&v), None);
    }

    /// Like [`store`](Self::store), giving up after `timeout` if another writer holds the lock.
    pub fn store_timeout(&self, v: T, timeout: Duration) -> Result<(), Timeout> {
        if self
            .shared()
            .write(bytemuck::bytes_of(&v), deadline(timeout))
        {
            Ok(())
        } else {
            Err(Timeout)
        }
    }

    /// Changes the value in one step with respect to other writers: `f` gets the current value,
    /// and what it leaves is published. Returns the new value. If `f` panics nothing changes.
    pub fn update(&self, f: impl FnOnce(&mut T)) -> T {
        let mut v = T::zeroed();
        self.shared()
            .update(bytemuck::bytes_of_mut(&mut v), |bytes| {
                f(bytemuck::from_bytes_mut(bytes))
            });
        v
    }

    /// How many writes have been published since creation (each `store` or `update` adds one).
    pub fn version(&self) -> u64 {
        // SYNC: Acquire, as in `VersionedRef::read` (a caller may compare versions to detect a
        // change and then load).
        self.version.get().load(crate::sync::Ordering::Acquire)
    }
}

impl crate::SegmentBuilder {
    /// Adds a [`Versioned`](crate::Versioned) value of any `Pod` type, starting at `initial`.
    pub fn versioned<T: bytemuck::Pod>(self, name: &str, initial: T) -> Self {
        self.object(name, ObjectKind::Versioned, type_sig::<T>(), 0, 0)
            .init_last(bytemuck::bytes_of(&initial))
    }
}

impl crate::Segment {
    /// Looks up a versioned value of `T`.
    pub fn versioned<T: bytemuck::Pod>(
        &self,
        name: &str,
    ) -> Result<crate::Versioned<T>, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::Versioned, Some(&type_sig::<T>()))?;
        let copy = versioned_copy_size(o.entry.elem_size)
            .ok_or_else(|| OpenError::Corrupt(format!("object {name:?}: size overflows")))?;
        Ok(crate::Versioned::from_raw(self.inner.clone(), o.base, copy))
    }
}
