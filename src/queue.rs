//! `Queue<T>`: a bounded MPMC queue of `Pod` values in a segment.

use crate::error::{GetError, PutError};
use crate::mapping::Inner;
use crate::ring::mem::RawRing;
use crate::ring::Ring;
use crate::ring_handle::{Fail, RingHandle, Rings, Wait};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// A bounded multi-producer multi-consumer queue of `T` values in shared memory.
///
/// Values are copied in and out of fixed-size slots, so `T` must be
/// [`bytemuck::Pod`]: plain data with no pointers and no padding. Any process that opens the segment
/// may put and get; handles are cheap to clone and may be shared between threads.
///
/// Blocking operations spin briefly, then yield, then sleep on a shared futex until the other side
/// makes progress, the queue is closed, or the deadline passes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-queue").queue::<u64>("q", 2).create_or_replace()?;
/// let q = seg.queue::<u64>("q")?;
/// q.put(1)?;
/// q.try_put(2)?;
/// assert!(matches!(q.try_put(3), Err(shmq::PutError::Full(3))));
/// assert_eq!(q.get()?, 1);
/// assert_eq!(q.try_get()?, 2);
/// assert_eq!(q.try_get(), Err(shmq::GetError::Empty));
/// # Ok(()) }
/// ```
pub struct Queue<T> {
    h: RingHandle,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            h: self.h.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.h.len())
            .field("capacity", &self.h.capacity())
            .field("closed", &self.h.is_closed())
            .finish()
    }
}

fn put_err<T>(f: Fail, v: T) -> PutError<T> {
    match f {
        Fail::WouldBlock => PutError::Full(v),
        Fail::Closed => PutError::Closed(v),
        Fail::Timeout => PutError::Timeout(v),
        Fail::Corrupt => PutError::Corrupt(v),
        Fail::NoSpace => PutError::NoSpace(v),
        // Only gets report it; a put never sees it.
        Fail::Disconnected => PutError::Timeout(v),
    }
}

pub(crate) fn get_err(f: Fail) -> GetError {
    match f {
        Fail::WouldBlock => GetError::Empty,
        Fail::Closed => GetError::Closed,
        Fail::Timeout => GetError::Timeout,
        Fail::Corrupt => GetError::Corrupt,
        Fail::Disconnected => GetError::Disconnected,
        // Only puts report it; a get never sees it.
        Fail::NoSpace => GetError::Empty,
    }
}

impl<T: bytemuck::Pod> Queue<T> {
    pub(crate) fn from_parts(seg: Arc<Inner>, ring: Ring<RawRing>, obj: u32) -> Self {
        Self::from_rings(seg, Rings::One(ring), obj)
    }

    pub(crate) fn from_rings(seg: Arc<Inner>, rings: Rings, obj: u32) -> Self {
        Self {
            h: RingHandle { rings, seg, obj },
            _t: PhantomData,
        }
    }

    #[inline(always)]
    fn put_value(&self, v: T, wait: Wait) -> Result<(), PutError<T>> {
        // The slot's payload is `size_of::<T>()` bytes (the layout checked at open says so);
        // copying at that constant length compiles to moves instead of a `memcpy` call, and
        // `get_mut` leaves the closure without a panic path, so that the claim's unwind guard
        // costs nothing on this path (callgrind: about 20 instructions a put + get).
        match self.h.put(wait, 1, |_, buf| {
            debug_assert_eq!(buf.len(), core::mem::size_of::<T>());
            if let Some(dst) = buf.get_mut(..core::mem::size_of::<T>()) {
                dst.copy_from_slice(bytemuck::bytes_of(&v))
            }
        }) {
            Ok(_) => Ok(()),
            Err(f) => Err(put_err(f, v)),
        }
    }

    #[inline(always)]
    fn get_value(&self, wait: Wait) -> Result<T, GetError> {
        let mut out = T::zeroed();
        self.h
            .get(wait, 1, |_, buf| {
                // Constant length and no panic path, as in `put_value`. The payload is never
                // shorter than `T`: open checks the entry's element size against `T`'s and
                // derives the slot layout, so its payload length, from that entry (a checked
                // "corrupt" answer here cost 4 more instructions per put + get, callgrind).
                debug_assert_eq!(buf.len(), core::mem::size_of::<T>());
                if let Some(src) = buf.get(..core::mem::size_of::<T>()) {
                    out = bytemuck::pod_read_unaligned(src)
                }
            })
            .map_err(get_err)?;
        Ok(out)
    }

    /// Puts `v`, waiting as long as the queue is full. Fails only if the queue is (or gets)
    /// closed, handing `v` back.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-put").queue::<i32>("q", 4).create_or_replace().unwrap();
    /// let q = seg.queue::<i32>("q").unwrap();
    /// q.put(5).unwrap();
    /// q.close();
    /// assert_eq!(q.put(6), Err(shmq::PutError::Closed(6)));
    /// ```
    pub fn put(&self, v: T) -> Result<(), PutError<T>> {
        self.put_value(v, Wait::forever())
    }

    /// Puts `v`, waiting at most `timeout` for space; `Err(Timeout(v))` if none came.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-put-timeout").queue::<i32>("q", 1).create_or_replace().unwrap();
    /// let q = seg.queue::<i32>("q").unwrap();
    /// q.put(1).unwrap();
    /// let err = q.put_timeout(2, Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, shmq::PutError::Timeout(2));
    /// ```
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_value(v, Wait::timeout(timeout))
    }

    /// Puts `v` if there is room; never sleeps for room to come. `Err(Full(v))` otherwise.
    ///
    /// Linearizable: `Err(Full(v))` means the queue was full at some instant during the call.
    /// When the slot `v` needs still belongs to a consumer that has taken its value and not yet
    /// released the slot, the call waits for that release (at most 50 ms, as for
    /// [`try_get`](Self::try_get)), recovering the slot if the consumer is dead.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-try-put").queue::<i32>("q", 1).create_or_replace().unwrap();
    /// let q = seg.queue::<i32>("q").unwrap();
    /// assert!(q.try_put(1).is_ok());
    /// assert_eq!(q.try_put(2), Err(shmq::PutError::Full(2)));
    /// ```
    pub fn try_put(&self, v: T) -> Result<(), PutError<T>> {
        self.put_value(v, Wait::No)
    }

    /// Takes the oldest value, waiting as long as the queue is empty. After [`close`](Self::close)
    /// it keeps returning what was put before, then `Err(Closed)`.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-get").queue::<i32>("q", 4).create_or_replace().unwrap();
    /// let q = seg.queue::<i32>("q").unwrap();
    /// q.put(1).unwrap();
    /// q.close();
    /// assert_eq!(q.get(), Ok(1));
    /// assert_eq!(q.get(), Err(shmq::GetError::Closed));
    /// ```
    pub fn get(&self) -> Result<T, GetError> {
        self.get_value(Wait::forever())
    }

    /// Takes the oldest value, waiting at most `timeout`; `Err(Timeout)` if none came: the queue
    /// was empty when the deadline passed (a value still being written by a producer then is
    /// waited for as [`try_get`](Self::try_get) does, so `get_timeout(Duration::ZERO)` answers
    /// as `try_get` would, with `Timeout` for `Empty`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-get-timeout").queue::<i32>("q", 4).create_or_replace().unwrap();
    /// let q = seg.queue::<i32>("q").unwrap();
    /// assert_eq!(q.get_timeout(Duration::from_millis(5)), Err(shmq::GetError::Timeout));
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_value(Wait::timeout(timeout))
    }

    /// Takes the oldest value if there is one; never sleeps for the queue to fill.
    ///
    /// Linearizable: `Err(Empty)` means the queue was empty at some instant during the call (as
    /// with crossbeam's `ArrayQueue::pop`). When the oldest value is still being written by a
    /// producer that has claimed its slot, the call waits for that producer to publish, as
    /// crossbeam does, but for at most 50 ms: a claimant that is descheduled, stopped or running
    /// a slow `put_with` closure for longer makes it return `Err(Empty)` anyway. A claimant that
    /// is dead is recovered (its position skipped, see `stats().tombstones`) and the call goes
    /// on. Called inside this thread's own `put_with` closure on the same queue, it does not wait
    /// for itself.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-try-get").queue::<i32>("q", 4).create_or_replace().unwrap();
    /// let q = seg.queue::<i32>("q").unwrap();
    /// assert_eq!(q.try_get(), Err(shmq::GetError::Empty));
    /// ```
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_value(Wait::No)
    }

    /// Puts every item of `items` in order, waiting for space as needed; runs of free slots are
    /// claimed with one atomic operation. On close, `Err(Closed(n))` says how many were put.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-put-many").queue::<u16>("q", 8).create_or_replace().unwrap();
    /// let q = seg.queue::<u16>("q").unwrap();
    /// q.put_many(&[1, 2, 3]).unwrap();
    /// let mut buf = [0u16; 8];
    /// assert_eq!(q.get_many(&mut buf), Ok(3));
    /// assert_eq!(&buf[..3], &[1, 2, 3]);
    /// ```
    pub fn put_many(&self, items: &[T]) -> Result<(), PutError<usize>> {
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            match self.h.put(
                Wait::forever(),
                rest.len(),
                |crate::ring::Filling { k, .. }, buf| {
                    buf.copy_from_slice(bytemuck::bytes_of(&rest[k]))
                },
            ) {
                Ok(n) => done += n,
                Err(f) => return Err(put_err(f, done)),
            }
        }
        Ok(())
    }

    /// Puts as many leading items of `items` as fit (never sleeps for room; `Full` only if the
    /// queue was full during the call, as for [`try_put`](Self::try_put)); returns how many.
    /// `Err(Full(0))` if none fit.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-try-put-many").queue::<u8>("q", 2).create_or_replace().unwrap();
    /// let q = seg.queue::<u8>("q").unwrap();
    /// assert_eq!(q.try_put_many(&[1, 2, 3]), Ok(2));
    /// assert_eq!(q.try_put_many(&[3]), Err(shmq::PutError::Full(0)));
    /// ```
    pub fn try_put_many(&self, items: &[T]) -> Result<usize, PutError<usize>> {
        if items.is_empty() {
            return Ok(0);
        }
        self.h
            .put(
                Wait::No,
                items.len(),
                |crate::ring::Filling { k, .. }, buf| {
                    buf.copy_from_slice(bytemuck::bytes_of(&items[k]))
                },
            )
            .map_err(|f| put_err(f, 0))
    }

    fn get_many_with(&self, buf: &mut [T], wait: Wait) -> Result<usize, GetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let max = buf.len();
        self.h
            .get(wait, max, |k, bytes| {
                buf[k] = bytemuck::pod_read_unaligned(bytes)
            })
            .map_err(get_err)
    }

    /// Writes a value in place in its slot (no copy through the stack): waits for a free slot,
    /// then runs `f` on it. `f` sees the slot's previous contents (any bytes are a valid `T`) and
    /// must overwrite what it needs. On close, `Err(Closed(()))` and `f` is not run.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-put-with").queue::<[u64; 4]>("q", 2).create_or_replace().unwrap();
    /// let q = seg.queue::<[u64; 4]>("q").unwrap();
    /// q.put_with(|slot| *slot = [1, 2, 3, 4]).unwrap();
    /// assert_eq!(q.get_with(|v| v.iter().sum::<u64>()), Ok(10));
    /// ```
    pub fn put_with(&self, f: impl FnOnce(&mut T)) -> Result<(), PutError<()>> {
        let mut f = Some(f);
        self.h
            .put(Wait::forever(), 1, |_, buf| {
                if let Some(f) = f.take() {
                    // Slots are aligned for T (payload offset and stride are multiples of its
                    // alignment, the region is 128-aligned) and exactly size_of::<T>() long.
                    f(bytemuck::from_bytes_mut(buf))
                }
            })
            .map(|_| ())
            .map_err(|e| put_err(e, ()))
    }

    /// Reads the oldest value in place in its slot: waits for one, runs `f` on it, then frees
    /// the slot. The reference cannot outlive the call.
    pub fn get_with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, GetError> {
        let mut f = Some(f);
        let mut out = None;
        self.h
            .get(Wait::forever(), 1, |_, buf| {
                if let Some(f) = f.take() {
                    out = Some(f(bytemuck::from_bytes(buf)));
                }
            })
            .map_err(get_err)?;
        out.ok_or(GetError::Corrupt)
    }

    /// Waits for at least one value, then takes up to `buf.len()` in order; returns how many.
    pub fn get_many(&self, buf: &mut [T]) -> Result<usize, GetError> {
        self.get_many_with(buf, Wait::forever())
    }

    /// Like [`get_many`](Self::get_many), waiting at most `timeout` for the first value.
    pub fn get_many_timeout(&self, buf: &mut [T], timeout: Duration) -> Result<usize, GetError> {
        self.get_many_with(buf, Wait::timeout(timeout))
    }

    /// Takes up to `buf.len()` values, the oldest first, without sleeping for the queue to fill.
    /// `Err(Empty)` only if the queue was empty at some instant during the call (it waits for a
    /// producer mid-publish at the head as [`try_get`](Self::try_get) does); otherwise it takes
    /// the run of published values from the head on, at least one.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-try-get-many").queue::<u8>("q", 4).create_or_replace().unwrap();
    /// let q = seg.queue::<u8>("q").unwrap();
    /// let mut buf = [0u8; 4];
    /// assert_eq!(q.try_get_many(&mut buf), Err(shmq::GetError::Empty));
    /// ```
    pub fn try_get_many(&self, buf: &mut [T]) -> Result<usize, GetError> {
        self.get_many_with(buf, Wait::No)
    }
}

impl<T> Queue<T> {
    /// The ring, for the joinable queue's accounting (a joinable queue is always bounded).
    pub(crate) fn ring(&self) -> &Ring<RawRing> {
        self.h.one().expect("a joinable queue has one ring")
    }

    /// Number of values in the queue: `tail - head`, a snapshot that counts puts claimed but not
    /// yet finished, as the non-blocking calls do. `is_empty()` agrees with what `try_get` would
    /// have found (empty means no put claimed and unconsumed), `is_full()` with `try_put`; with
    /// other threads running, like `len` on any concurrent queue, the answer may be stale when
    /// it arrives.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-len").queue::<u8>("q", 4).create_or_replace().unwrap();
    /// let q = seg.queue::<u8>("q").unwrap();
    /// q.put(1).unwrap();
    /// assert_eq!(q.len(), 1);
    /// assert!(!q.is_empty() && !q.is_full());
    /// ```
    pub fn len(&self) -> usize {
        self.h.len() as usize
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A handle whose blocking calls spin and yield before sleeping (`true`, the default: lowest
    /// latency when a core is free for each side) or sleep on the futex at once (`false`: no CPU
    /// burnt while waiting, one futex round trip per hand-off).
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-spin").queue::<u8>("q", 1).create_or_replace().unwrap();
    /// let q = seg.queue::<u8>("q").unwrap().with_spinning(false);
    /// q.put(1).unwrap();
    /// assert_eq!(q.get(), Ok(1));
    /// ```
    pub fn with_spinning(mut self, spin: bool) -> Self {
        self.h.set_spin(spin);
        self
    }

    /// `len() == capacity()`.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Number of slots, exactly as given at creation.
    pub fn capacity(&self) -> usize {
        usize::try_from(self.h.capacity()).unwrap_or(usize::MAX)
    }

    /// Closes the queue for every process: puts fail with `Closed`, gets drain what is left and
    /// then fail with `Closed`, and every blocked caller wakes. Returns `true` if this call closed
    /// it (`false` if it already was).
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-close").queue::<u8>("q", 4).create_or_replace().unwrap();
    /// let q = seg.queue::<u8>("q").unwrap();
    /// assert!(q.close());
    /// assert!(q.is_closed());
    /// assert!(!q.close());
    /// ```
    pub fn close(&self) -> bool {
        self.h.close()
    }

    /// A snapshot of the queue's counters.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-stats-queue").bytes_queue("b", 2, 8).queue::<u8>("q", 2).create_or_replace().unwrap();
    /// # let q = seg.queue::<u8>("q").unwrap();
    /// let s = q.stats();
    /// assert_eq!((s.len, s.capacity, s.closed, s.waiting_getters), (0, 2, false, 0));
    /// ```
    pub fn stats(&self) -> crate::QueueStats {
        self.h.stats()
    }

    /// Whether [`close`](Self::close) was called (by any process).
    pub fn is_closed(&self) -> bool {
        self.h.is_closed()
    }

    /// Whether a producer of this queue is alive: a thread that has put to it and whose process
    /// still runs and still has the segment mapped. `false` before anyone has put.
    ///
    /// A blocked [`get`](Self::get) uses the same test: when the queue is empty and every
    /// producer is gone, it returns [`GetError::Disconnected`] (as soon as the last one exits)
    /// instead of waiting forever.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-producers").queue::<u8>("q", 2).create_or_replace().unwrap();
    /// let q = seg.queue::<u8>("q").unwrap();
    /// assert!(!q.producers_alive()); // nobody has put yet
    /// q.put(1).unwrap();
    /// assert!(q.producers_alive()); // this thread is a producer now
    /// assert_eq!(q.stats().producers, 1);
    /// ```
    pub fn producers_alive(&self) -> bool {
        self.h.producers_alive()
    }

    /// Counts the calling thread as a producer of this queue from now on, as its first `put`
    /// would: while it lives and keeps the segment mapped, no getter is told
    /// [`GetError::Disconnected`].
    ///
    /// `Disconnected` is a snapshot: between one producer's exit and the next one's first put,
    /// every producer *is* gone. A parent that starts producers one after another and closes
    /// the queue once they are done registers itself first, so its consumers wait for the close
    /// instead (like holding a channel's sender until the end).
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-register").queue::<u8>("q", 2).create_or_replace().unwrap();
    /// let q = seg.queue::<u8>("q").unwrap();
    /// q.register_producer();
    /// assert!(q.producers_alive());
    /// assert_eq!(q.get_timeout(std::time::Duration::from_millis(1)), Err(shmq::GetError::Timeout));
    /// ```
    pub fn register_producer(&self) {
        self.h.register_producer()
    }
}
