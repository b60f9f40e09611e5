//! Public handles of the shared objects (native build). Each holds the segment's `Arc<Inner>`, so
//! the mapping its pointers point into outlives it, and pointers validated at lookup time.

use super::atom::{Atom, AtomNum};
use super::barrier::BarrierState;
use super::cell::Cell;
use super::event::EventState;
use super::joinable::JoinState;
use super::list::{self, ListHeader};
use super::lock::{Acquired, LockState};
use super::semaphore::SemaphoreState;
use crate::error::{
    GetError, IndexError, ListFull, PutError, ReleaseError, TaskDoneError, Timeout,
};
use crate::kind::BLOCK;
use crate::layout::SlotLayout;
use crate::mapping::Inner;
use crate::stats::QueueStats;
use crate::sync::AtomicU64;
use crate::Queue;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn deadline(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// A pointer into a segment's mapping, kept valid by the `Arc<Inner>` stored beside it.
struct Ptr<S> {
    p: NonNull<S>,
}

impl<S> Clone for Ptr<S> {
    fn clone(&self) -> Self {
        Self { p: self.p }
    }
}

impl<S> Ptr<S> {
    /// # Safety
    ///
    /// `p` points to a properly aligned `S` inside a live mapping that the holder keeps alive, and
    /// `S` is made of atomics only (valid for any bit pattern, shared by design).
    unsafe fn new(p: *mut u8) -> Self {
        Self {
            // SAFETY: mapping addresses are never null (the caller's contract).
            p: unsafe { NonNull::new_unchecked(p.cast()) },
        }
    }
    fn get(&self) -> &S {
        // SAFETY: see `new`; the returned reference lives no longer than `self`, whose owner holds
        // the mapping alive.
        unsafe { self.p.as_ref() }
    }
}

// SAFETY: the pointee is atomics in shared memory, built to be used from any thread or process.
unsafe impl<S> Send for Ptr<S> {}
// SAFETY: as above.
unsafe impl<S> Sync for Ptr<S> {}

// ---------------------------------------------------------------------------------------------
// Lock

/// A mutex shared between processes (a futex word in the segment), robust against its holder
/// dying.
///
/// Only a [`LockGuard`] unlocks it, so a process cannot release a lock it does not hold. The word
/// holds the owner's thread id: if the owner dies holding the lock, the next `lock` takes it over
/// (at once when the kernel reports the owner thread's exit through a pidfd, Linux 6.9; within
/// about 50 ms otherwise) and returns [`LockError::OwnerDead`] with the guard, so the caller can repair
/// the protected data and call [`LockGuard::make_consistent`]; until someone does, every later owner
/// is told the same way.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-lock").lock("l").create_or_replace()?;
/// let lock = seg.lock("l")?;
/// {
///     let _guard = lock.lock().expect("no owner died");
///     assert!(matches!(lock.try_lock(), Err(shmq::LockError::WouldBlock)));
/// }
/// assert!(lock.try_lock().is_ok());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    state: Ptr<LockState>,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Holds a [`Lock`]; unlocks when dropped.
///
/// Not `Send`, like `std::sync::MutexGuard`: the lock word names the thread that took it, and a
/// guard moved to another thread that then exited would leave a "dead" owner for contenders to
/// take the lock over from while the guard still exists (and its drop would then unlock the new
/// owner). This does not compile:
///
/// ```compile_fail
/// # let seg = shmq::Segment::builder("doc-guard-send").lock("l").create_or_replace().unwrap();
/// let lock = seg.lock("l").unwrap();
/// let guard = lock.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard));
/// });
/// ```
///
/// while sharing a reference to it does (it is `Sync`):
///
/// ```
/// # let seg = shmq::Segment::builder("doc-guard-sync").lock("l").create_or_replace().unwrap();
/// let lock = seg.lock("l").unwrap();
/// let guard = lock.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| assert!(guard.is_consistent()));
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    consistent: bool,
    /// `!Send` (and `Sync`), as `MutexGuard`.
    _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

impl LockGuard<'_> {
    /// Declares the protected data consistent again after an [`LockError::OwnerDead`]. A guard
    /// from an ordinary `lock` is consistent already.
    pub fn make_consistent(&mut self) {
        self.consistent = true;
    }

    /// Whether the data is declared consistent (false after an owner died, until
    /// [`make_consistent`](Self::make_consistent)).
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.state.get().unlock(self.consistent);
    }
}

/// Why a lock call did not return a plain guard.
#[derive(Debug)]
pub enum LockError<'a> {
    /// The previous owner died holding the lock (or a later owner never declared the data
    /// consistent). The lock **is held**: here is its guard.
    OwnerDead(LockGuard<'a>),
    /// `lock_timeout`: the deadline passed.
    Timeout,
    /// `try_lock`: the lock is held.
    WouldBlock,
}

impl<'a> LockError<'a> {
    /// The guard, when the lock was obtained (`OwnerDead`).
    pub fn into_guard(self) -> Option<LockGuard<'a>> {
        match self {
            LockError::OwnerDead(g) => Some(g),
            _ => None,
        }
    }
}

impl std::fmt::Display for LockError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockError::OwnerDead(_) => "the previous owner died holding the lock",
            LockError::Timeout => "timed out waiting for the lock",
            LockError::WouldBlock => "the lock is held",
        })
    }
}

impl std::error::Error for LockError<'_> {}

impl Lock {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8) -> Self {
        Self {
            // SAFETY: the segment lookup checked that a LockState fits at `p`, 128-aligned,
            // inside the mapping `seg` keeps alive.
            state: unsafe { Ptr::new(p) },
            _seg: seg,
        }
    }

    fn guard(&self, how: Acquired) -> Result<LockGuard<'_>, LockError<'_>> {
        match how {
            Acquired::Clean => Ok(LockGuard {
                _not_send: PhantomData,
                lock: self,
                consistent: true,
            }),
            Acquired::OwnerDead => Err(LockError::OwnerDead(LockGuard {
                _not_send: PhantomData,
                lock: self,
                consistent: false,
            })),
        }
    }

    /// Takes the lock, sleeping while another thread or process holds it. `Err(OwnerDead)` (with
    /// the lock held) if its previous owner died holding it.
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError<'_>> {
        loop {
            if let Some(how) = self.state.get().lock(None) {
                return self.guard(how);
            }
        }
    }

    /// Takes the lock if it is free now; never blocks. `Err(WouldBlock)` if it is held.
    pub fn try_lock(&self) -> Result<LockGuard<'_>, LockError<'_>> {
        match self.state.get().try_lock() {
            Some(how) => self.guard(how),
            None => Err(LockError::WouldBlock),
        }
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-lock-timeout").lock("l").create_or_replace().unwrap();
    /// let lock = seg.lock("l").unwrap();
    /// let _held = lock.lock().unwrap();
    /// assert!(matches!(lock.lock_timeout(Duration::from_millis(5)), Err(shmq::LockError::Timeout)));
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>, LockError<'_>> {
        match self.state.get().lock(deadline(timeout)) {
            Some(how) => self.guard(how),
            None => Err(LockError::Timeout),
        }
    }

    /// Whether some thread or process holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.get().is_locked()
    }
}

// ---------------------------------------------------------------------------------------------
// Value

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

// ---------------------------------------------------------------------------------------------
// Versioned

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

    fn shared(&self) -> super::versioned::VersionedRef<'_> {
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
        super::versioned::VersionedRef {
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

// ---------------------------------------------------------------------------------------------
// Array

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

// ---------------------------------------------------------------------------------------------
// List

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
        list::publish(ready);
        Ok(i as usize)
    }

    /// Element `i`, or `None` if `i` is past the end or its writer has not finished.
    pub fn get(&self, i: usize) -> Option<T> {
        let i = i as u64;
        if i >= self.cap {
            return None;
        }
        let (ready, payload) = self.slot(i);
        if !list::is_ready(ready) {
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

// ---------------------------------------------------------------------------------------------
// Event

/// A flag that processes can wait on, like `multiprocessing.Event`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::time::Duration;
/// let seg = shmq::Segment::builder("doc-event").event("ready").create_or_replace()?;
/// let ready = seg.event("ready")?;
/// assert!(!ready.wait_timeout(Duration::from_millis(1)));
/// ready.set();
/// assert!(ready.is_set());
/// ready.wait();
/// ready.clear();
/// assert!(!ready.is_set());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Event {
    state: Ptr<EventState>,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8) -> Self {
        Self {
            // SAFETY: the lookup checked an EventState fits at `p` inside the mapping.
            state: unsafe { Ptr::new(p) },
            _seg: seg,
        }
    }
    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.state.get().set()
    }
    /// Clears the flag.
    pub fn clear(&self) {
        self.state.get().clear()
    }
    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.get().is_set()
    }
    /// Waits until the flag is set.
    pub fn wait(&self) {
        while !self.state.get().wait(None) {}
    }
    /// Waits at most `timeout`; returns whether the flag is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state.get().wait(deadline(timeout))
    }
}

// ---------------------------------------------------------------------------------------------
// Semaphore

/// A counting semaphore, optionally bounded (`BoundedSemaphore`): releasing past the bound is an
/// error.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-sem").bounded_semaphore("slots", 1, 1).create_or_replace()?;
/// let slots = seg.semaphore("slots")?;
/// slots.acquire();
/// assert!(!slots.try_acquire());
/// slots.release()?;
/// assert!(slots.release().is_err()); // past the bound of 1
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    state: Ptr<SemaphoreState>,
    max: u32,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .field("max", &self.max)
            .finish()
    }
}

impl Semaphore {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8, max: u32) -> Self {
        Self {
            // SAFETY: the lookup checked a SemaphoreState fits at `p` inside the mapping.
            state: unsafe { Ptr::new(p) },
            max,
            _seg: seg,
        }
    }
    /// Takes one unit, sleeping while there is none.
    pub fn acquire(&self) {
        while !self.state.get().acquire(None) {}
    }
    /// Takes one unit if there is one now; never blocks.
    pub fn try_acquire(&self) -> bool {
        self.state.get().try_acquire()
    }
    /// Takes one unit, waiting at most `timeout`; returns whether it did.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.state.get().acquire(deadline(timeout))
    }
    /// Gives one unit back; `Err` if that would exceed the bound.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.state
            .get()
            .release(self.max)
            .map_err(|_| ReleaseError { max: self.max })
    }
    /// Units available now.
    pub fn value(&self) -> u32 {
        self.state.get().value()
    }
    /// The bound (`u32::MAX` for an unbounded semaphore).
    pub fn max(&self) -> u32 {
        self.max
    }
}

// ---------------------------------------------------------------------------------------------
// Barrier

/// A barrier for a fixed number of parties, reusable, like `multiprocessing.Barrier`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::time::Duration;
/// let seg = shmq::Segment::builder("doc-barrier").barrier("start", 2).create_or_replace()?;
/// let start = seg.barrier("start")?;
/// // Alone, the second party never comes: the wait times out and withdraws.
/// assert!(start.wait_timeout(Duration::from_millis(5)).is_err());
/// let other = start.clone();
/// let t = std::thread::spawn(move || other.wait());
/// let leader_here = start.wait();
/// let leader_there = t.join().unwrap();
/// assert!(leader_here ^ leader_there); // exactly one leader
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Barrier {
    state: Ptr<BarrierState>,
    parties: u32,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("waiting", &self.n_waiting())
            .finish()
    }
}

impl Barrier {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8, parties: u32) -> Self {
        Self {
            // SAFETY: the lookup checked a BarrierState fits at `p` inside the mapping.
            state: unsafe { Ptr::new(p) },
            parties,
            _seg: seg,
        }
    }
    /// Waits until all parties arrived; returns `true` in exactly one of them (the last).
    pub fn wait(&self) -> bool {
        loop {
            if let Ok(leader) = self.state.get().wait(self.parties, None) {
                return leader;
            }
        }
    }
    /// Waits at most `timeout`; on timeout this party withdraws (the others keep waiting for a
    /// full set) and gets `Err(Timeout)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Timeout> {
        self.state
            .get()
            .wait(self.parties, deadline(timeout))
            .map_err(|_| Timeout)
    }
    /// Number of parties.
    pub fn parties(&self) -> u32 {
        self.parties
    }
    /// Parties waiting in the current generation.
    pub fn n_waiting(&self) -> u32 {
        self.state.get().arrived()
    }
}

// ---------------------------------------------------------------------------------------------
// JoinableQueue

/// A [`Queue`] with unfinished-task accounting, like `multiprocessing.JoinableQueue`: every put
/// counts one unfinished task (before the item becomes visible), [`task_done`](Self::task_done)
/// finishes one, and [`join`](Self::join) waits until none is left.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-joinable").joinable_queue::<u32>("tasks", 8).create_or_replace()?;
/// let tasks = seg.joinable_queue::<u32>("tasks")?;
/// tasks.put(1)?;
/// let _task = tasks.get()?;
/// assert_eq!(tasks.unfinished_tasks(), 1);
/// tasks.task_done()?;
/// tasks.join();
/// assert!(tasks.task_done().is_err()); // one too many
/// # Ok(()) }
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
    join: Ptr<JoinState>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            join: self.join.clone(),
        }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field(
                "unfinished",
                &self
                    .join
                    .get()
                    .unfinished(|| self.queue.ring().counted_puts()),
            )
            .finish()
    }
}

impl<T: bytemuck::Pod> JoinableQueue<T> {
    pub(crate) fn from_parts(queue: Queue<T>, join: *mut u8) -> Self {
        Self {
            queue,
            // SAFETY: the lookup checked a 128-byte JoinState sits at the start of the region, in
            // the mapping the queue's Arc keeps alive.
            join: unsafe { Ptr::new(join) },
        }
    }

    /// Puts `v` (one more unfinished task, from the moment its slot is claimed), waiting while
    /// the queue is full. A put that fails, or whose process is killed before its item is
    /// published, leaves no task behind.
    pub fn put(&self, v: T) -> Result<(), PutError<T>> {
        self.queue.put(v)
    }
    /// Puts `v`, waiting at most `timeout`.
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.queue.put_timeout(v, timeout)
    }
    /// Puts `v` if there is room; linearizable, as [`Queue::try_put`].
    pub fn try_put(&self, v: T) -> Result<(), PutError<T>> {
        self.queue.try_put(v)
    }
    /// Takes the oldest item, waiting while empty (the task stays unfinished until
    /// [`task_done`](Self::task_done)).
    pub fn get(&self) -> Result<T, GetError> {
        self.queue.get()
    }
    /// Takes the oldest item, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.queue.get_timeout(timeout)
    }
    /// Takes the oldest item if there is one; linearizable, as [`Queue::try_get`].
    pub fn try_get(&self) -> Result<T, GetError> {
        self.queue.try_get()
    }
    /// Marks one task finished; `Err` if more `task_done` calls than puts.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let ring = self.queue.ring();
        self.join
            .get()
            .task_done(|| ring.counted_puts())
            .map_err(|_| TaskDoneError)
    }
    /// Waits until every task put so far is done.
    pub fn join(&self) {
        let ring = self.queue.ring();
        while !self.join.get().join(|| ring.counted_puts(), None) {}
    }
    /// Waits at most `timeout` for every task to be done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
        let ring = self.queue.ring();
        if self
            .join
            .get()
            .join(|| ring.counted_puts(), deadline(timeout))
        {
            Ok(())
        } else {
            Err(Timeout)
        }
    }
    /// Tasks put and not yet marked done.
    pub fn unfinished_tasks(&self) -> u64 {
        let ring = self.queue.ring();
        self.join.get().unfinished(|| ring.counted_puts())
    }
    /// Items in the queue.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
    /// Slots.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) -> bool {
        self.queue.close()
    }
    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
    /// Whether a producer of this queue is alive; see [`Queue::producers_alive`].
    pub fn producers_alive(&self) -> bool {
        self.queue.producers_alive()
    }
    /// Counts the calling thread as a producer from now on: see
    /// [`Queue::register_producer`](crate::Queue::register_producer).
    pub fn register_producer(&self) {
        self.queue.register_producer()
    }
    /// Counters of the underlying queue.
    pub fn stats(&self) -> QueueStats {
        self.queue.stats()
    }
}
