//! The `Array` handle.

use super::*;

/// A fixed-length shared array of atomic `T` (an integer, float or bool), like
/// `multiprocessing.Array`. Each element is its own 64-bit atomic cell; multi-element updates take
/// [`get_lock`](Array::get_lock).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-array").array::<f64>("hist", 3).create_or_replace()?;
/// let hist = seg.array::<f64>("hist")?;
/// hist.set(1, 2.5)?;
/// hist.fetch_add(1, 0.5)?;
/// assert_eq!(hist.to_vec(), vec![0.0, 3.0, 0.0]);
/// assert!(hist.get(3).is_err());
/// # Ok(()) }
/// ```
pub struct Array<T> {
    cells: Ptr<Cell>,
    len: usize,
    lock: Lock,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Self {
            cells: self.cells.clone(),
            len: self.len,
            lock: self.lock.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Atom> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Atom> Array<T> {
    pub(crate) fn from_raw(seg: Arc<Inner>, base: *mut u8, len: usize) -> Self {
        Self {
            lock: Lock::from_raw(seg, base),
            // SAFETY: the lookup checked the region holds a LockState followed by `len` 8-byte
            // cells from offset 128, inside the mapping kept alive by the lock's Arc.
            cells: unsafe { Ptr::new(base.add(BLOCK as usize)) },
            len,
            _t: PhantomData,
        }
    }

    fn cell(&self, i: usize) -> Result<&Cell, IndexError> {
        if i >= self.len {
            return Err(IndexError {
                index: i,
                len: self.len,
            });
        }
        // SAFETY: i < len and the region holds `len` cells (checked at lookup).
        Ok(unsafe { &*self.cells.get_ptr().add(i) })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Result<T, IndexError> {
        Ok(self.cell(i)?.load())
    }

    /// Sets element `i`.
    pub fn set(&self, i: usize, v: T) -> Result<(), IndexError> {
        self.cell(i)?.store(v);
        Ok(())
    }

    /// Compare-exchange on element `i` (see [`Value::compare_exchange`]).
    pub fn compare_exchange(
        &self,
        i: usize,
        current: T,
        new: T,
    ) -> Result<Result<T, T>, IndexError> {
        Ok(self.cell(i)?.compare_exchange(current, new))
    }

    /// A snapshot, element by element (each element atomic, the whole not: take
    /// [`get_lock`](Self::get_lock) for a consistent copy when writers also take it).
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().collect()
    }

    /// Iterates over the elements, loading each as it goes.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).map(move |i| self.get(i).unwrap_or_else(|_| unreachable!()))
    }

    /// The address of element 0 in this process's mapping: `len()` cells of 8 bytes follow it,
    /// contiguous, 8-aligned, each holding its element in its low bytes (little-endian).
    ///
    /// For bindings that lay their own view over the array's memory (Python's ctypes objects
    /// over a shared `Array`). The memory stays mapped while this handle (or a clone) lives.
    /// Other processes write it concurrently: reads and writes through the pointer are only
    /// sound with atomic accesses, or with every writer synchronizing some other way (a lock).
    pub fn as_ptr(&self) -> *mut u8 {
        self.cells.get_ptr().cast_mut().cast()
    }

    /// The lock that comes with this array, for multi-element updates.
    pub fn get_lock(&self) -> &Lock {
        &self.lock
    }
}

impl<T: AtomNum> Array<T> {
    /// Adds `v` to element `i` atomically; returns the previous value.
    pub fn fetch_add(&self, i: usize, v: T) -> Result<T, IndexError> {
        Ok(self.cell(i)?.fetch_add(v))
    }

    /// Subtracts `v` from element `i` atomically; returns the previous value.
    pub fn fetch_sub(&self, i: usize, v: T) -> Result<T, IndexError> {
        Ok(self.cell(i)?.fetch_sub(v))
    }
}

impl<S> Ptr<S> {
    fn get_ptr(&self) -> *const S {
        self.p.as_ptr()
    }
}

impl crate::SegmentBuilder {
    /// Adds a shared [`Array`](crate::Array) of `len` elements, all zero (`false`, `0.0`).
    pub fn array<T: crate::Atom>(self, name: &str, len: u64) -> Self {
        self.object(name, ObjectKind::Array, type_sig::<T>(), len, 0)
    }
}

impl crate::Segment {
    /// Looks up a shared array of `T`.
    pub fn array<T: crate::Atom>(&self, name: &str) -> Result<crate::Array<T>, OpenError> {
        let o = self
            .inner
            .object(name, ObjectKind::Array, Some(&type_sig::<T>()))?;
        let len = usize::try_from(o.entry.param0)
            .map_err(|_| OpenError::Corrupt(format!("object {name:?}: length out of range")))?;
        Ok(crate::Array::from_raw(self.inner.clone(), o.base, len))
    }
}
