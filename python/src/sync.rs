//! One segment of synchronization state for the Python objects of `shmq/synchronize.py` and
//! `shmq/sharedctypes.py`: at most one lock (a [`Lock`] or a reentrant [`RLock`]), any number of
//! semaphores, at most one event, and a block of shared memory (8-byte cells), each optional.
//!
//! | Python object            | what its segment holds                                  |
//! |--------------------------|---------------------------------------------------------|
//! | `Lock`, `RLock`          | the lock                                                |
//! | `Semaphore`              | one semaphore (bounded for `BoundedSemaphore`)          |
//! | `Event`                  | the event                                               |
//! | `Condition`              | its own `RLock` unless given a lock, three semaphores   |
//! | `Barrier`                | as a condition, plus two cells (state and count)        |
//! | `Value`, `Array`, `Raw*` | the cells, and the `RLock` of `lock=True`               |
//!
//! Acquire and release are separate calls here (Python's API), so the lock guards of the Rust
//! API are forgotten once taken and released through [`Lock::force_unlock`] (any thread, as
//! `multiprocessing.Lock`) or [`RLock::unlock_one`] (the owner only).

use crate::common::{class, deadline, layer_err, raise_with, wait_sliced, Held};
use pyo3::exceptions::{PyIndexError, PyOSError, PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use shmq::{Array, Event, Lock, LockError, OpenError, RLock, Segment, Semaphore};
use std::sync::atomic::{AtomicI16, AtomicI32, AtomicI64, AtomicI8, Ordering};
use std::sync::Arc;

/// `PyBUF_WRITE` of CPython's `memoryobject.h` (a writable view; part of the stable ABI).
const PY_BUF_WRITE: std::os::raw::c_int = 0x200;

static OWNER_DEAD: GILOnceCell<PyObject> = GILOnceCell::new();
static RELEASE_ERROR: GILOnceCell<PyObject> = GILOnceCell::new();
static NOT_OWNER: GILOnceCell<PyObject> = GILOnceCell::new();

fn released_too_often(py: Python<'_>) -> PyErr {
    raise_with(
        py,
        &RELEASE_ERROR,
        "ReleaseError",
        "semaphore or lock released too many times",
    )
}

/// Which lock a segment holds (`lock_kind`).
const NO_LOCK: u8 = 0;
const PLAIN: u8 = 1;
const REENTRANT: u8 = 2;

/// How `take` took the lock.
const TAKEN: u8 = 1;
/// Taken over from an owner that died holding it.
const TAKEN_OVER: u8 = 2;

enum AnyLock {
    Plain(Lock),
    Reentrant(RLock),
}

struct Parts {
    seg: Segment,
    lock: Option<AnyLock>,
    sems: Vec<Semaphore>,
    event: Option<Event>,
    cells: Option<Array<u64>>,
}

/// Keeps a segment's memory mapped in this process (see `Sync.pin`).
#[pyclass(module = "shmq._shmq", frozen, weakref)]
pub(crate) struct Pin(Arc<Parts>);

#[pymethods]
impl Pin {
    /// Gives up this process's claim on the segment, as `Sync.release_claim`.
    fn release_claim(&self) {
        self.0.seg.release_claim();
    }
}

/// A segment of synchronization objects and shared memory (see the module docs). Subclassed in
/// Python by `Lock`, `RLock`, `Semaphore`, `Event` (whose `acquire`, `release` and `with` are
/// these native methods, with no Python frame between).
#[pyclass(module = "shmq._shmq", frozen, weakref, subclass)]
pub(crate) struct Sync {
    held: Held<Parts>,
}

fn sem_name(i: usize) -> String {
    format!("s{i}")
}

/// `Ok(None)` for an object the segment does not have; other errors pass.
fn optional<T>(r: Result<T, OpenError>) -> Result<Option<T>, OpenError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(OpenError::ObjectNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Sync {
    fn from_segment(seg: Segment, name: String) -> Result<Self, OpenError> {
        let lock = match seg.lock("lock") {
            Ok(l) => Some(AnyLock::Plain(l)),
            Err(OpenError::ObjectNotFound(_)) => None,
            // Another kind under the name: the reentrant lock, or the error of its lookup.
            Err(_) => Some(AnyLock::Reentrant(seg.rlock("lock")?)),
        };
        let mut sems = Vec::new();
        while let Some(s) = optional(seg.semaphore(&sem_name(sems.len())))? {
            sems.push(s);
        }
        let event = optional(seg.event("event"))?;
        let cells = optional(seg.array::<u64>("cells"))?;
        let parts = Parts {
            seg,
            lock,
            sems,
            event,
            cells,
        };
        Ok(Sync {
            held: Held::new(name, "synchronization object", parts),
        })
    }

    /// The parts, for a call that may wait without the GIL.
    fn parts(&self, py: Python<'_>) -> PyResult<Arc<Parts>> {
        self.held.get(py)
    }

    /// Runs `f` on the parts with the GIL held throughout (no Python code in `f`).
    #[inline]
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&Parts) -> PyResult<R>) -> PyResult<R> {
        self.held.with(py, |p| f(p))
    }

    fn make(
        name: &str,
        lock: u8,
        sems: &[(u32, Option<u32>)],
        event: bool,
        cells: u64,
    ) -> PyResult<Self> {
        if lock > REENTRANT {
            return Err(PyValueError::new_err(format!("unknown lock kind {lock}")));
        }
        let build = |max_size: Option<u64>| {
            // Nothing here takes participant records or grows.
            let mut b = Segment::builder(name).keep(true).participants(1);
            if let Some(m) = max_size {
                b = b.max_size(m);
            }
            b = match lock {
                // Owned by the process, as multiprocessing.Lock: a thread that exits holding it
                // leaves it held for another thread to release.
                PLAIN => b.process_lock("lock"),
                REENTRANT => b.rlock("lock"),
                _ => b,
            };
            for (i, &(initial, bound)) in sems.iter().enumerate() {
                b = match bound {
                    None => b.semaphore(&sem_name(i), initial),
                    Some(bound) => b.bounded_semaphore(&sem_name(i), initial, bound),
                };
            }
            if event {
                b = b.event("event");
            }
            if cells > 0 {
                b = b.array::<u64>("cells", cells);
            }
            b.create()
        };
        // A segment that never grows reserves little address space (the default reserves half
        // of /dev/shm, too much for thousands of locks); if the guess is below the segment's
        // own size, the default.
        let guess = cells.saturating_mul(8).saturating_add(1 << 20);
        let made = match build(Some(guess)) {
            Err(shmq::CreateError::InvalidConfig(_)) => build(None),
            r => r,
        };
        let seg = made.map_err(|e| match e {
            shmq::CreateError::InvalidConfig(m) => PyValueError::new_err(m),
            e => PyOSError::new_err(format!("cannot create shared-memory segment {name}: {e}")),
        })?;
        Sync::from_segment(seg, name.to_string()).map_err(layer_err)
    }

    /// Runs `f` on the address of the cell memory's `width`-byte integer at `offset` (checked in
    /// bounds and aligned), with the GIL held throughout.
    fn at<R>(
        &self,
        py: Python<'_>,
        offset: usize,
        width: usize,
        f: impl FnOnce(*mut u8) -> PyResult<R>,
    ) -> PyResult<R> {
        self.with(py, |p| f(p.atomic_ptr(offset, width)?))
    }

    /// The lock taken now or over `end` (waiting without the GIL, in slices): whether it was;
    /// a takeover from a dead holder is warned (`OwnerDeadWarning`).
    fn acquire_lock(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let how = match self.with(py, |p| Ok(take(p.lock()?, Take::Now)))? {
            Some(how) => Some(how),
            None if !block => None,
            None => {
                let end = deadline(timeout)?;
                let p = self.parts(py)?;
                let l = p.lock()?;
                wait_sliced(py, end, |slice| take(l, Take::Within(slice)))?
            }
        };
        if how == Some(TAKEN_OVER) {
            self.warn_taken_over(py)?;
        }
        Ok(how.is_some())
    }

    fn warn_taken_over(&self, py: Python<'_>) -> PyResult<()> {
        let category = class(py, &OWNER_DEAD, "shmq._errors", "OwnerDeadWarning")?;
        let msg = format!(
            "lock {}: the previous holder died holding the lock; it is now held by this thread, \
             and what it protects may be half-updated",
            self.held.name()
        );
        let msg = std::ffi::CString::new(msg).unwrap_or_default();
        PyErr::warn(py, category.bind(py), &msg, 1)
    }

    /// Releases the lock: a `Lock` whoever holds it (`ReleaseError` if it is not locked), an
    /// `RLock` one level of the calling thread's (`NotOwnerError` if it does not hold it).
    fn release_lock(&self, py: Python<'_>) -> PyResult<()> {
        let kind = self.with(py, |p| {
            Ok(match p.lock()? {
                AnyLock::Plain(l) => (!l.force_unlock()).then_some(PLAIN),
                AnyLock::Reentrant(l) => l.unlock_one().is_err().then_some(REENTRANT),
            })
        })?;
        match kind {
            None => Ok(()),
            Some(PLAIN) => Err(released_too_often(py)),
            Some(_) => Err(raise_with(
                py,
                &NOT_OWNER,
                "NotOwnerError",
                "attempt to release recursive lock not owned by thread",
            )),
        }
    }
}

impl Parts {
    fn lock(&self) -> PyResult<&AnyLock> {
        self.lock
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("this object has no lock"))
    }

    fn sem(&self, i: usize) -> PyResult<&Semaphore> {
        self.sems
            .get(i)
            .ok_or_else(|| PyIndexError::new_err(format!("no semaphore {i}")))
    }

    fn event(&self) -> PyResult<&Event> {
        self.event
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("this object has no event"))
    }

    /// The cell memory's atomic of `width` bytes at `offset`, checked in bounds and aligned.
    fn atomic_ptr(&self, offset: usize, width: usize) -> PyResult<*mut u8> {
        let cells = self
            .cells
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("this object has no shared memory"))?;
        let len = cells.len() * 8;
        if !matches!(width, 1 | 2 | 4 | 8) {
            return Err(PyValueError::new_err(format!(
                "atomic width {width} is not 1, 2, 4 or 8"
            )));
        }
        if !offset.is_multiple_of(width) || offset.checked_add(width).is_none_or(|end| end > len) {
            return Err(PyIndexError::new_err(format!(
                "atomic of {width} bytes at offset {offset} is outside the {len} bytes, or \
                 unaligned"
            )));
        }
        // SAFETY: `offset + width <= len` bytes of cells follow `as_ptr` (checked above).
        Ok(unsafe { cells.as_ptr().add(offset) })
    }
}

/// The lock taken, its guard forgotten (released later by `lock_release`).
fn take(l: &AnyLock, how: Take) -> Option<u8> {
    fn kept<G>(r: Result<G, LockError<G>>) -> Option<u8> {
        match r {
            Ok(g) => {
                std::mem::forget(g);
                Some(TAKEN)
            }
            Err(LockError::OwnerDead(g)) => {
                std::mem::forget(g);
                Some(TAKEN_OVER)
            }
            Err(LockError::Timeout | LockError::WouldBlock) => None,
        }
    }
    match (l, how) {
        (AnyLock::Plain(l), Take::Now) => kept(l.try_lock()),
        (AnyLock::Plain(l), Take::Within(d)) => kept(l.lock_timeout(d)),
        (AnyLock::Reentrant(l), Take::Now) => kept(l.try_lock()),
        (AnyLock::Reentrant(l), Take::Within(d)) => kept(l.lock_timeout(d)),
    }
}

#[derive(Clone, Copy)]
enum Take {
    Now,
    Within(std::time::Duration),
}

/// A Python int as the `width`-byte integer it must fit (signed or not), as two's complement
/// bits.
fn to_bits(v: i128, width: usize, signed: bool) -> PyResult<u64> {
    let bits = 8 * width as u32;
    let (lo, hi) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if v < lo || v > hi {
        return Err(PyOverflowError::new_err(format!(
            "{v} does not fit a {}signed {width}-byte integer",
            if signed { "" } else { "un" }
        )));
    }
    Ok(v as u64)
}

/// Two's complement `width`-byte bits as a Python int.
fn from_bits(b: u64, width: usize, signed: bool) -> i128 {
    let bits = 8 * width as u32;
    let b = if bits == 64 {
        b
    } else {
        b & ((1u64 << bits) - 1)
    };
    if signed && bits < 64 && b >> (bits - 1) != 0 {
        b as i128 - (1i128 << bits)
    } else if signed && bits == 64 {
        b as i64 as i128
    } else {
        b as i128
    }
}

/// Runs `f` on the atomic of `width` bytes at `p` (its bits, zero-extended).
fn with_atomic<R>(p: *mut u8, width: usize, f: impl AtomicOp<R>) -> R {
    // SAFETY (each arm): `p` is in bounds and aligned to `width` (`atomic_ptr`), in memory the
    // caller's `Arc<Parts>` keeps mapped; the cells are only ever accessed atomically by shmq,
    // and other processes' accesses of this memory are theirs to synchronize (Python's ctypes
    // access races the same way with multiprocessing's shared memory).
    match width {
        1 => f.run(unsafe { AtomicI8::from_ptr(p.cast()) }),
        2 => f.run(unsafe { AtomicI16::from_ptr(p.cast()) }),
        4 => f.run(unsafe { AtomicI32::from_ptr(p.cast()) }),
        _ => f.run(unsafe { AtomicI64::from_ptr(p.cast()) }),
    }
}

/// One operation over an atomic integer of any width, in zero-extended bits.
trait AtomicOp<R> {
    fn run<A: Atomic>(self, a: &A) -> R;
}

/// What the operations need of `AtomicI8` … `AtomicI64`. Every access is SeqCst: these are the
/// Python API's `fetch_add` & co., which promise a total order (and pair with nothing else).
trait Atomic {
    fn load_bits(&self) -> u64;
    fn store_bits(&self, v: u64);
    fn swap_bits(&self, v: u64) -> u64;
    fn add_bits(&self, v: u64) -> u64;
    fn cas_bits(&self, current: u64, new: u64) -> Result<u64, u64>;
}

macro_rules! atomic {
    ($a:ty, $i:ty, $u:ty) => {
        impl Atomic for $a {
            fn load_bits(&self) -> u64 {
                self.load(Ordering::SeqCst) as $u as u64
            }
            fn store_bits(&self, v: u64) {
                self.store(v as $i, Ordering::SeqCst)
            }
            fn swap_bits(&self, v: u64) -> u64 {
                self.swap(v as $i, Ordering::SeqCst) as $u as u64
            }
            fn add_bits(&self, v: u64) -> u64 {
                self.fetch_add(v as $i, Ordering::SeqCst) as $u as u64
            }
            fn cas_bits(&self, current: u64, new: u64) -> Result<u64, u64> {
                self.compare_exchange(current as $i, new as $i, Ordering::SeqCst, Ordering::SeqCst)
                    .map(|v| v as $u as u64)
                    .map_err(|v| v as $u as u64)
            }
        }
    };
}
atomic!(AtomicI8, i8, u8);
atomic!(AtomicI16, i16, u16);
atomic!(AtomicI32, i32, u32);
atomic!(AtomicI64, i64, u64);

struct Load;
impl AtomicOp<u64> for Load {
    fn run<A: Atomic>(self, a: &A) -> u64 {
        a.load_bits()
    }
}
struct Store(u64);
impl AtomicOp<()> for Store {
    fn run<A: Atomic>(self, a: &A) {
        a.store_bits(self.0)
    }
}
struct Swap(u64);
impl AtomicOp<u64> for Swap {
    fn run<A: Atomic>(self, a: &A) -> u64 {
        a.swap_bits(self.0)
    }
}
struct Add(u64);
impl AtomicOp<u64> for Add {
    fn run<A: Atomic>(self, a: &A) -> u64 {
        a.add_bits(self.0)
    }
}
struct Cas(u64, u64);
impl AtomicOp<Result<u64, u64>> for Cas {
    fn run<A: Atomic>(self, a: &A) -> Result<u64, u64> {
        a.cas_bits(self.0, self.1)
    }
}

#[pymethods]
impl Sync {
    /// Creates the segment `name`: a lock (`lock`: 0 none, 1 `Lock`, 2 `RLock`), one semaphore
    /// per `(initial, bound)` of `sems` (bound `None`: unbounded), an event if `event`, and `cells`
    /// 8-byte cells of zeroed memory. With `open`, maps the existing segment `name` instead.
    #[new]
    #[pyo3(signature = (name, lock=0, sems=Vec::new(), event=false, cells=0, open=false))]
    fn new(
        name: &str,
        lock: u8,
        sems: Vec<(u32, Option<u32>)>,
        event: bool,
        cells: u64,
        open: bool,
    ) -> PyResult<Self> {
        if !open {
            return Sync::make(name, lock, &sems, event, cells);
        }
        let seg = Segment::open(name).map_err(|e| {
            PyOSError::new_err(format!("cannot open shared-memory segment {name}: {e}"))
        })?;
        Sync::from_segment(seg, name.to_string()).map_err(layer_err)
    }

    #[getter]
    fn name(&self) -> &str {
        self.held.name()
    }

    /// 0: no lock, 1: a `Lock`, 2: an `RLock`.
    #[getter]
    fn lock_kind(&self, py: Python<'_>) -> PyResult<u8> {
        self.with(py, |p| {
            Ok(match p.lock {
                None => NO_LOCK,
                Some(AnyLock::Plain(_)) => PLAIN,
                Some(AnyLock::Reentrant(_)) => REENTRANT,
            })
        })
    }

    /// Takes the lock (waiting if `block`, at most `timeout` seconds); whether it did. A lock
    /// taken over from a holder that died holding it is warned (`shmq.OwnerDeadWarning`).
    /// Waits release the GIL and run signal handlers every 50 ms.
    #[pyo3(signature = (block=true, timeout=None))]
    fn lock_acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_lock(py, block, timeout)
    }

    /// Releases the lock: a `Lock` whoever holds it (`ValueError` if it is not locked), an
    /// `RLock` one level of the calling thread's (`AssertionError` if it does not hold it).
    fn lock_release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_lock(py)
    }

    /// `with`: takes the lock.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_lock(py, true, None)
    }

    /// Releases the lock taken by `__enter__`.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.release_lock(py)
    }

    /// Whether the calling thread holds the lock.
    fn lock_is_mine(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |p| {
            Ok(match p.lock()? {
                AnyLock::Plain(l) => l.is_held_by_current_thread(),
                AnyLock::Reentrant(l) => l.depth() > 0,
            })
        })
    }

    /// How many times the calling thread holds the lock (0 or 1 for a `Lock`).
    fn lock_count(&self, py: Python<'_>) -> PyResult<u32> {
        self.with(py, |p| {
            Ok(match p.lock()? {
                AnyLock::Plain(l) => u32::from(l.is_held_by_current_thread()),
                AnyLock::Reentrant(l) => l.depth(),
            })
        })
    }

    /// Whether any thread holds the lock (a snapshot).
    fn lock_is_locked(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |p| {
            Ok(match p.lock()? {
                AnyLock::Plain(l) => l.is_locked(),
                AnyLock::Reentrant(l) => l.is_locked(),
            })
        })
    }

    /// Takes one unit of semaphore `i` (waiting if `block`, at most `timeout` seconds);
    /// whether it did.
    #[pyo3(signature = (i, block=true, timeout=None))]
    fn sem_acquire(
        &self,
        py: Python<'_>,
        i: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        if self.with(py, |p| Ok(p.sem(i)?.try_acquire()))? {
            return Ok(true);
        }
        if !block {
            return Ok(false);
        }
        let end = deadline(timeout)?;
        let p = self.parts(py)?;
        let s = p.sem(i)?;
        Ok(wait_sliced(py, end, |slice| s.acquire_timeout(slice).then_some(()))?.is_some())
    }

    /// Gives one unit back to semaphore `i` (`ValueError` if that would pass its bound).
    fn sem_release(&self, py: Python<'_>, i: usize) -> PyResult<()> {
        if self.with(py, |p| Ok(p.sem(i)?.release().is_ok()))? {
            Ok(())
        } else {
            Err(released_too_often(py))
        }
    }

    /// Units of semaphore `i` available now.
    fn sem_value(&self, py: Python<'_>, i: usize) -> PyResult<u32> {
        self.with(py, |p| Ok(p.sem(i)?.value()))
    }

    fn event_set(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |p| {
            p.event()?.set();
            Ok(())
        })
    }

    fn event_clear(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |p| {
            p.event()?.clear();
            Ok(())
        })
    }

    fn event_is_set(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |p| Ok(p.event()?.is_set()))
    }

    /// Waits until the event is set, at most `timeout` seconds; whether it is set.
    #[pyo3(signature = (timeout=None))]
    fn event_wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let end = deadline(timeout)?;
        let p = self.parts(py)?;
        let e = p.event()?;
        // One mark for every slice: a set and clear between two slices still ends the wait.
        let mark = e.mark();
        Ok(wait_sliced(py, end, |slice| e.wait_since(mark, slice).then_some(()))?.is_some())
    }

    /// Bytes of shared memory (8 per cell; 0 if none).
    #[getter]
    fn memory_size(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |p| Ok(p.cells.as_ref().map_or(0, |c| c.len() * 8)))
    }

    /// A writable `memoryview` of the shared memory. It does not keep the mapping alive: the
    /// caller keeps this object alive for as long as the view is used.
    fn memory(&self, py: Python<'_>) -> PyResult<PyObject> {
        let (ptr, len) = self.with(py, |p| {
            let cells = p
                .cells
                .as_ref()
                .ok_or_else(|| PyValueError::new_err("this object has no shared memory"))?;
            let len = isize::try_from(cells.len() * 8).map_err(|_| {
                PyOverflowError::new_err("shared memory too large for a memoryview")
            })?;
            Ok((cells.as_ptr(), len))
        })?;
        // SAFETY: `len` bytes at `ptr` are mapped while this object's segment is, which the
        // caller keeps alive with this object (documented above); PY_BUF_WRITE makes it
        // writable, which the mapping is (read-write, shared).
        let view = unsafe { pyo3::ffi::PyMemoryView_FromMemory(ptr.cast(), len, PY_BUF_WRITE) };
        // SAFETY: a new reference, or null with the Python error set.
        unsafe { Bound::from_owned_ptr_or_err(py, view) }.map(Bound::unbind)
    }

    /// Atomically reads the `width`-byte integer at `offset`.
    fn atomic_load(
        &self,
        py: Python<'_>,
        offset: usize,
        width: usize,
        signed: bool,
    ) -> PyResult<i128> {
        self.at(py, offset, width, |ptr| {
            Ok(from_bits(with_atomic(ptr, width, Load), width, signed))
        })
    }

    /// Atomically writes `value` to the `width`-byte integer at `offset`.
    fn atomic_store(
        &self,
        py: Python<'_>,
        offset: usize,
        width: usize,
        signed: bool,
        value: i128,
    ) -> PyResult<()> {
        self.at(py, offset, width, |ptr| {
            with_atomic(ptr, width, Store(to_bits(value, width, signed)?));
            Ok(())
        })
    }

    /// Atomically replaces the integer at `offset` with `value`; returns the old one.
    fn atomic_swap(
        &self,
        py: Python<'_>,
        offset: usize,
        width: usize,
        signed: bool,
        value: i128,
    ) -> PyResult<i128> {
        self.at(py, offset, width, |ptr| {
            let old = with_atomic(ptr, width, Swap(to_bits(value, width, signed)?));
            Ok(from_bits(old, width, signed))
        })
    }

    /// Atomically adds `delta` (wrapping at the integer's width, as C does); returns the old
    /// value.
    fn atomic_add(
        &self,
        py: Python<'_>,
        offset: usize,
        width: usize,
        signed: bool,
        delta: i128,
    ) -> PyResult<i128> {
        self.at(py, offset, width, |ptr| {
            // Any delta adds as its two's complement bits modulo 2^(8 width).
            let d = delta.rem_euclid(1i128 << (8 * width)) as u64;
            Ok(from_bits(with_atomic(ptr, width, Add(d)), width, signed))
        })
    }

    /// Atomically replaces the integer at `offset` with `new` if it is `expected`: `(True,
    /// expected)` if it did, `(False, what it was)` if not.
    fn atomic_compare_exchange(
        &self,
        py: Python<'_>,
        offset: usize,
        width: usize,
        signed: bool,
        expected: i128,
        new: i128,
    ) -> PyResult<(bool, i128)> {
        self.at(py, offset, width, |ptr| {
            let (e, n) = (
                to_bits(expected, width, signed),
                to_bits(new, width, signed)?,
            );
            // An expected value the integer cannot hold never matches: report what it is.
            let Ok(e) = e else {
                return Ok((
                    false,
                    from_bits(with_atomic(ptr, width, Load), width, signed),
                ));
            };
            Ok(match with_atomic(ptr, width, Cas(e, n)) {
                Ok(v) => (true, from_bits(v, width, signed)),
                Err(v) => (false, from_bits(v, width, signed)),
            })
        })
    }

    /// A reference that keeps the memory mapped in this process for as long as it lives, even
    /// after `unmap`: objects laid over `memory()` hold one.
    fn pin(&self, py: Python<'_>) -> PyResult<Pin> {
        Ok(Pin(self.parts(py)?))
    }

    /// Drops this handle's reference to the mapping (the memory stays mapped while a `pin`
    /// holds it), then removes the name if no process maps the segment any more; whether this
    /// call removed it. Calls on this handle raise afterwards.
    fn unmap(&self, py: Python<'_>) -> PyResult<bool> {
        self.held.release(py)
    }

    /// Gives up this process's claim on the segment (`Segment::release_claim`): the name can
    /// go once other processes let go, while this process's memory stays mapped. At exit.
    fn release_claim(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |p| {
            p.seg.release_claim();
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        format!("<shmq._shmq.Sync {}>", self.held.name())
    }
}
