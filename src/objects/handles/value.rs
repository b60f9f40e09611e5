//! The `Value` handle.

use super::*;

/// One shared atomic value of type `T` (an integer, float or bool), like
/// `multiprocessing.Value`.
///
/// Python's `count.value += 1` is a read followed by a write and loses updates between processes;
/// [`fetch_add`](Value::fetch_add) is one atomic step, so that race cannot be written. For updates
/// spanning several values, [`get_lock`](Value::get_lock) gives the value's own lock.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-value").value::<i64>("count", 10).create_or_replace()?;
/// let count = seg.value::<i64>("count")?;
/// assert_eq!(count.fetch_add(5), 10);
/// assert_eq!(count.load(), 15);
/// # Ok(()) }
/// ```
pub struct Value<T> {
    cell: Ptr<Cell>,
    lock: Lock,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Self {
            cell: self.cell.clone(),
            lock: self.lock.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Atom> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Value").field(&self.load()).finish()
    }
}

impl<T: Atom> Value<T> {
    pub(crate) fn from_raw(seg: Arc<Inner>, base: *mut u8) -> Self {
        Self {
            lock: Lock::from_raw(seg, base),
            // SAFETY: the lookup checked the region holds a LockState (128 bytes) followed by an
            // 8-byte cell at offset 128, inside the mapping the lock's Arc keeps alive.
            cell: unsafe { Ptr::new(base.add(BLOCK as usize)) },
            _t: PhantomData,
        }
    }

    /// The current value.
    pub fn load(&self) -> T {
        self.cell.get().load()
    }

    /// Replaces the value.
    pub fn store(&self, v: T) {
        self.cell.get().store(v)
    }

    /// Replaces the value, returning the old one.
    pub fn swap(&self, v: T) -> T {
        self.cell.get().swap(v)
    }

    /// Stores `new` if the value is `current` (floats compare by bits); `Ok(previous)` on success,
    /// `Err(actual)` otherwise.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-value-cas").value::<u32>("v", 1).create_or_replace().unwrap();
    /// let v = seg.value::<u32>("v").unwrap();
    /// assert_eq!(v.compare_exchange(1, 2), Ok(1));
    /// assert_eq!(v.compare_exchange(1, 3), Err(2));
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        self.cell.get().compare_exchange(current, new)
    }

    /// Applies `f` atomically; `Ok(previous)`, or `Err(current)` if `f` returned `None`.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-value-update").value::<f64>("v", 1.5).create_or_replace().unwrap();
    /// let v = seg.value::<f64>("v").unwrap();
    /// assert_eq!(v.fetch_update(|x| Some(x * 2.0)), Ok(1.5));
    /// assert_eq!(v.load(), 3.0);
    /// ```
    pub fn fetch_update(&self, f: impl FnMut(T) -> Option<T>) -> Result<T, T> {
        self.cell.get().fetch_update(f)
    }

    /// The lock that comes with this value (`Value.get_lock()`), for multi-step updates.
    pub fn get_lock(&self) -> &Lock {
        &self.lock
    }
}

impl<T: AtomNum> Value<T> {
    /// Adds `v` atomically (wrapping for integers); returns the previous value.
    pub fn fetch_add(&self, v: T) -> T {
        self.cell.get().fetch_add(v)
    }

    /// Subtracts `v` atomically (wrapping for integers); returns the previous value.
    pub fn fetch_sub(&self, v: T) -> T {
        self.cell.get().fetch_sub(v)
    }
}

impl crate::SegmentBuilder {
    /// Adds a shared [`Value`](crate::Value) starting at `initial`.
    pub fn value<T: crate::Atom>(self, name: &str, initial: T) -> Self {
        self.object(
            name,
            ObjectKind::Value,
            type_sig::<T>(),
            initial.to_bits(),
            0,
        )
    }
}

impl crate::Segment {
    /// Looks up a shared value of `T`.
    pub fn value<T: crate::Atom>(&self, name: &str) -> Result<crate::Value<T>, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::Value, Some(&type_sig::<T>()))?;
        Ok(crate::Value::from_raw(self.inner.clone(), o.base))
    }
}
