//! `BytesQueue`: a bounded MPMC queue of byte messages of bounded length.

use crate::error::{BytesPutError, GetError};
use crate::layout::BYTES_LEN_WORD;
use crate::mapping::Inner;
use crate::queue::get_err;
use crate::ring::mem::RawRing;
use crate::ring::Ring;
use crate::ring_handle::{Fail, RingHandle, Rings, Wait};
use std::sync::Arc;
use std::time::Duration;

/// A bounded multi-producer multi-consumer queue of byte messages, each at most
/// [`max_len`](Self::max_len) bytes (fixed at creation).
///
/// A message is copied into its slot by the producer and out of it by the consumer. The stored
/// length is read once and checked against the maximum, so a forged length in a corrupted segment
/// is reported as [`GetError::Corrupt`], never read out of bounds.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-bytes").bytes_queue("logs", 16, 64).create_or_replace()?;
/// let logs = seg.bytes_queue("logs")?;
/// logs.put(b"hello")?;
/// assert_eq!(logs.get()?, b"hello");
/// let too_big = [0u8; 65];
/// assert_eq!(logs.try_put(&too_big), Err(shmq::BytesPutError::TooLarge { len: 65, max: 64 }));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BytesQueue {
    h: RingHandle,
    /// Longest message accepted.
    max: usize,
    /// Longest message kept in its slot; longer ones (up to `max`) go through the heap.
    inline: usize,
}

impl std::fmt::Debug for BytesQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesQueue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("max_len", &self.max)
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn put_err(f: Fail) -> BytesPutError {
    match f {
        Fail::WouldBlock => BytesPutError::Full,
        Fail::Closed => BytesPutError::Closed,
        Fail::Timeout => BytesPutError::Timeout,
        Fail::Corrupt => BytesPutError::Corrupt,
        Fail::NoSpace => BytesPutError::NoSpace {
            requested: 0,
            max_size: 0,
        },
        // Only gets report it; a put never sees it.
        Fail::Disconnected => BytesPutError::Timeout,
    }
}

/// Frees a heap block when dropped (a long message's block, on every way out).
struct FreeOnDrop<'h, 'a> {
    heap: &'h crate::heap::Heap<'a, Inner>,
    off: u64,
}

impl Drop for FreeOnDrop<'_, '_> {
    fn drop(&mut self) {
        // A failure here means the heap is corrupt; the block is then lost, nothing else.
        let _ = self.heap.free(self.off);
    }
}

impl BytesQueue {
    /// `max_len`: the entry's maximum message length when it is longer than what a slot holds
    /// (long messages go through the heap); `None` when every message stays in its slot.
    pub(crate) fn from_parts(
        seg: Arc<Inner>,
        ring: Ring<RawRing>,
        obj: u32,
        max_len: Option<u64>,
    ) -> Self {
        let layout = ring.mem.layout();
        Self::from_rings(seg, Rings::One(ring), obj, layout, max_len)
    }

    /// `layout`: the slots' (of the ring, or of every link of an unbounded queue).
    pub(crate) fn from_rings(
        seg: Arc<Inner>,
        rings: Rings,
        obj: u32,
        layout: crate::layout::SlotLayout,
        max_len: Option<u64>,
    ) -> Self {
        let inline = (layout.payload_len - BYTES_LEN_WORD) as usize;
        let max = max_len.map_or(inline, |m| usize::try_from(m).unwrap_or(usize::MAX));
        Self {
            h: RingHandle { rings, seg, obj },
            max: max.max(inline),
            inline,
        }
    }

    /// A put failure as the caller sees it (naming the segment's limit for `NoSpace`).
    fn put_fail(&self, f: Fail, len: usize) -> BytesPutError {
        match put_err(f) {
            BytesPutError::NoSpace { .. } => BytesPutError::NoSpace {
                requested: len as u64,
                max_size: self.h.seg.max_size,
            },
            e => e,
        }
    }

    fn put_copy(&self, msg: &[u8], wait: Wait) -> Result<(), BytesPutError> {
        self.put_in_place(msg.len(), wait, |buf| buf.copy_from_slice(msg))
    }

    /// Runs `f` on the message in place (no copy out of shared memory), then frees its slot
    /// (and, for a long message, its heap block). Waits as `wait` says, or, with `None`, takes
    /// only what is published now (`get_ready_with`).
    fn get_in_place<R>(
        &self,
        wait: Option<Wait>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GetError> {
        let w = BYTES_LEN_WORD as usize;
        let inline = self.inline;
        let long = self.max > inline;
        let mut f = Some(f);
        let mut out = None;
        let read = |_, buf: &[u8]| {
            // The length is read once into a local and checked before use.
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len <= inline {
                if let Some(f) = f.take() {
                    out = Some(Ok(f(&buf[w..w + len])));
                }
            } else if long {
                // A long message is read, like a short one, while its slot is still
                // claimed: a consumer killed before it is done leaves a claim that recovery
                // counts lost (and whose block it frees), never a message lost uncounted.
                if let Some(f) = f.take() {
                    out = Some(
                        self.take_long(buf)
                            .and_then(|(off, len)| self.read_long(off, len, f)),
                    );
                }
            }
        };
        match wait {
            Some(wait) => self.h.get(wait, 1, read),
            None => self.h.get_look(1, read),
        }
        .map_err(get_err)?;
        out.ok_or(GetError::Corrupt)?
    }

    /// Consumer side of a long message, while its slot is claimed: takes its heap block (its owner
    /// word becomes ours, so the block always has an owner).
    fn take_long(&self, slot: &[u8]) -> Result<(u64, u64), GetError> {
        let (len, off) = crate::heap::read_ref(slot).ok_or(GetError::Corrupt)?;
        if len > self.max as u64 || len <= self.inline as u64 {
            return Err(GetError::Corrupt);
        }
        let me = self.h.seg.holder_tag();
        self.h
            .seg
            .heap()
            .take(off, len, self.h.obj, me)
            .map_err(|_| GetError::Corrupt)?;
        crate::fault::point("get-heap-taken");
        Ok((off, len))
    }

    /// Runs `f` on a long message in its heap block (which the caller took), then frees it.
    fn read_long<R>(&self, off: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        let heap = self.h.seg.heap();
        let _free = FreeOnDrop { heap: &heap, off };
        let p = heap.payload(off, len).map_err(|_| GetError::Corrupt)?;
        // SAFETY: the block is ours (`take` made its owner word name us, and only an owner frees
        // a block or writes its payload); `payload` checked that `len` bytes after its header lie
        // in the mapping, and `take` that the block holds at least `len` payload bytes.
        let msg = unsafe { core::slice::from_raw_parts(p, len as usize) };
        crate::fault::point("get-heap-reading");
        Ok(f(msg))
    }

    /// Producer side of a long message: a heap block for it (growing the segment if need be),
    /// filled by `f`, then a slot naming it.
    fn put_long(
        &self,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]),
    ) -> Result<(), BytesPutError> {
        let seg = &self.h.seg;
        let heap = seg.heap();
        let max_size = seg.max_size;
        let no_space = |requested: u64| BytesPutError::NoSpace {
            requested,
            max_size,
        };
        let need = crate::heap::block_size(len as u64).ok_or(no_space(len as u64))?;
        // A message that can never fit is refused at once, before anything waits.
        let room = max_size.saturating_sub(seg.heap_offset + crate::heap::HEAP_HEADER_SIZE);
        if need > room {
            return Err(BytesPutError::TooLarge {
                len,
                max: usize::try_from(room - room.min(crate::heap::BLOCK_HEADER)).unwrap_or(0),
            });
        }
        let me = seg.holder_tag();
        let off = heap.alloc(len as u64, me).map_err(|e| match e {
            crate::error::HeapError::NoSpace { requested } => no_space(requested),
            crate::error::HeapError::Corrupt | crate::error::HeapError::Died => {
                BytesPutError::Corrupt
            }
            crate::error::HeapError::Io(_) => BytesPutError::Io(std::io::ErrorKind::Other),
        })?;
        // Until the message is published the block is ours to free (on an error, or if `f`
        // panics).
        let unsent = FreeOnDrop { heap: &heap, off };
        let p = heap
            .payload(off, len as u64)
            .map_err(|_| BytesPutError::Corrupt)?;
        // SAFETY: the block was just allocated for us (its owner word names us): nobody else
        // reads or writes its payload until we hand it over; `payload` checked the `len` bytes
        // lie in the mapping, and the block holds at least `len` payload bytes.
        f(unsafe { core::slice::from_raw_parts_mut(p, len) });
        crate::fault::point("put-heap-filled");
        let obj = self.h.obj;
        let mut handed = Ok(());
        self.h
            .put(wait, 1, |at, buf| {
                crate::heap::write_ref(buf, len as u64, off);
                handed = heap.hand_over(off, obj, at.pos);
                crate::fault::point("put-heap-handed");
            })
            .map_err(|e| self.put_fail(e, len))?;
        // Published: the message owns the block now.
        core::mem::forget(unsent);
        handed.map_err(|_| BytesPutError::Corrupt)
    }

    /// Overwrites the stored length of the oldest published message (fuzzing only: simulates a
    /// hostile process writing the segment).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_front_len(&self, len: u32) {
        use crate::ring::RingMem;
        let Some(ring) = self.h.one() else { return };
        let mem = &ring.mem;
        let head = mem.header().head.load(crate::sync::Ordering::Relaxed);
        // SAFETY: the fuzz entry point is single-threaded and owns this anonymous segment, so
        // nothing else accesses the slot; the write stays inside its payload (≥ 8 bytes).
        unsafe {
            mem.with_payload_mut(head % mem.capacity(), |b| {
                b[..4].copy_from_slice(&len.to_le_bytes())
            })
        };
    }

    fn put_in_place(
        &self,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]),
    ) -> Result<(), BytesPutError> {
        if len > self.max {
            return Err(BytesPutError::TooLarge { len, max: self.max });
        }
        if len > self.inline {
            return self.put_long(len, wait, f);
        }
        let w = BYTES_LEN_WORD as usize;
        let mut f = Some(f);
        self.h
            .put(wait, 1, |_, buf| {
                buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
                if let Some(f) = f.take() {
                    f(&mut buf[w..w + len]);
                }
            })
            .map(|_| ())
            .map_err(|e| self.put_fail(e, len))
    }

    /// Writes a message of exactly `len` bytes in place in its slot (zero copy): waits for a free
    /// slot, then runs `f` on the `len` bytes, which hold the slot's previous contents until `f`
    /// overwrites them. `Err(TooLarge)` at once if `len` is above the maximum.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-bput-with").bytes_queue("q", 2, 64).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// q.put_with(3, |buf| buf.copy_from_slice(b"abc")).unwrap();
    /// assert_eq!(q.get_with(|m| m.to_vec()), Ok(b"abc".to_vec()));
    /// ```
    pub fn put_with(&self, len: usize, f: impl FnOnce(&mut [u8])) -> Result<(), BytesPutError> {
        self.put_in_place(len, Wait::forever(), f)
    }

    /// Like [`put_with`](Self::put_with), but never sleeps for room (linearizable, as
    /// [`try_put`](Self::try_put)).
    pub fn try_put_with(&self, len: usize, f: impl FnOnce(&mut [u8])) -> Result<(), BytesPutError> {
        self.put_in_place(len, Wait::No, f)
    }

    /// Like [`put_with`](Self::put_with), waiting at most `timeout` for a free slot
    /// (`Err(Timeout)` then, and `f` is not called).
    pub fn put_with_timeout(
        &self,
        len: usize,
        timeout: Duration,
        f: impl FnOnce(&mut [u8]),
    ) -> Result<(), BytesPutError> {
        self.put_in_place(len, Wait::timeout(timeout), f)
    }

    /// Like [`get_with`](Self::get_with), waiting at most `timeout` for a message
    /// (`Err(Timeout)` then, and `f` is not called).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-bget-with-timeout").bytes_queue("q", 1, 16).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// let wait = Duration::from_millis(1);
    /// assert_eq!(q.get_with_timeout(wait, |m| m.len()), Err(shmq::GetError::Timeout));
    /// q.put_with_timeout(2, wait, |b| b.copy_from_slice(b"hi")).unwrap();
    /// assert_eq!(q.get_with_timeout(wait, |m| m.to_vec()), Ok(b"hi".to_vec()));
    /// ```
    pub fn get_with_timeout<R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GetError> {
        self.get_in_place(Some(Wait::timeout(timeout)), f)
    }

    /// Reads the oldest message in place in its slot (zero copy): waits for one, runs `f` on it,
    /// then frees the slot.
    pub fn get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        self.get_in_place(Some(Wait::forever()), f)
    }

    /// Waits at most `timeout` until a message is there to take, without taking it: `Ok(())`
    /// then, and a [`try_get_with`](Self::try_get_with) right after normally gets it (another
    /// consumer may have been quicker: wait again then). It waits as a blocking get does
    /// (spinning, then sleeping, waking on a put, a close or a dead producer's claim recovered),
    /// and reports `Timeout`, `Closed` (closed and drained) and `Disconnected` as `get` does.
    ///
    /// For a consumer that reads messages in place while holding a lock it must not hold while
    /// it sleeps (an interpreter's global lock, say): wait without it, then take it and read.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-bwait-ready").bytes_queue("q", 2, 16).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// let wait = Duration::from_millis(1);
    /// assert_eq!(q.wait_ready(wait), Err(shmq::GetError::Timeout));
    /// q.put(b"hi").unwrap();
    /// assert_eq!(q.wait_ready(wait), Ok(()));
    /// assert_eq!(q.len(), 1); // still there
    /// assert_eq!(q.try_get_with(|m| m.to_vec()), Ok(b"hi".to_vec()));
    /// ```
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), GetError> {
        // A timeout too large to represent waits for ever (as `Wait::timeout`).
        let deadline = std::time::Instant::now().checked_add(timeout);
        self.h.wait_ready(deadline).map(|_| ()).map_err(get_err)
    }

    /// Takes the oldest message if it is published now, reading it in place as
    /// [`try_get_with`](Self::try_get_with) does; `Err(Empty)` otherwise. Unlike `try_get_with`
    /// it reads only what consumers read: where `try_get_with` finds the head empty it also
    /// reads the producers' tail (to tell empty from a message still being written, which it
    /// then waits for), taking that line from a producer that writes it on every put. So
    /// `Empty` here may mean "being written" (not linearizable): for a consumer that waits
    /// when it finds nothing, e.g. with [`wait_ready`](Self::wait_ready).
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-bget-ready").bytes_queue("q", 2, 16).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// assert_eq!(q.get_ready_with(|m| m.to_vec()), Err(shmq::GetError::Empty));
    /// q.put(b"hi").unwrap();
    /// assert_eq!(q.get_ready_with(|m| m.to_vec()), Ok(b"hi".to_vec()));
    /// ```
    pub fn get_ready_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        self.get_in_place(None, f)
    }

    /// Like [`get_with`](Self::get_with), but never sleeps for a message (linearizable, as
    /// [`try_get`](Self::try_get)).
    pub fn try_get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        self.get_in_place(Some(Wait::No), f)
    }

    /// A handle that spins before sleeping (default) or sleeps at once; see
    /// [`Queue::with_spinning`](crate::Queue::with_spinning).
    pub fn with_spinning(mut self, spin: bool) -> Self {
        self.h.set_spin(spin);
        self
    }

    /// Puts a copy of `msg`, waiting while the queue is full. `Err(TooLarge)` at once if `msg` is
    /// longer than [`max_len`](Self::max_len).
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-bput").bytes_queue("q", 4, 16).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// q.put(b"Job-0").unwrap();
    /// assert_eq!(q.get().unwrap(), b"Job-0");
    /// ```
    pub fn put(&self, msg: &[u8]) -> Result<(), BytesPutError> {
        self.put_copy(msg, Wait::forever())
    }

    /// Puts a copy of `msg`, waiting at most `timeout` for space.
    pub fn put_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), BytesPutError> {
        self.put_copy(msg, Wait::timeout(timeout))
    }

    /// Puts a copy of `msg` if there is room; never sleeps for room to come. Linearizable, with
    /// the same bounded wait for a consumer mid-release as
    /// [`Queue::try_put`](crate::Queue::try_put).
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-btryput").bytes_queue("q", 1, 16).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// q.try_put(b"a").unwrap();
    /// assert_eq!(q.try_put(b"b"), Err(shmq::BytesPutError::Full));
    /// ```
    pub fn try_put(&self, msg: &[u8]) -> Result<(), BytesPutError> {
        self.put_copy(msg, Wait::No)
    }

    /// Takes the oldest message, waiting while the queue is empty.
    pub fn get(&self) -> Result<Vec<u8>, GetError> {
        self.get_in_place(Some(Wait::forever()), <[u8]>::to_vec)
    }

    /// Takes the oldest message, waiting at most `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-bget-timeout").bytes_queue("q", 1, 16).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// assert_eq!(q.get_timeout(Duration::from_millis(1)), Err(shmq::GetError::Timeout));
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        self.get_in_place(Some(Wait::timeout(timeout)), <[u8]>::to_vec)
    }

    /// Takes the oldest message if there is one; never sleeps for the queue to fill.
    /// Linearizable, with the same bounded wait for a producer mid-publish as
    /// [`Queue::try_get`](crate::Queue::try_get).
    pub fn try_get(&self) -> Result<Vec<u8>, GetError> {
        self.get_in_place(Some(Wait::No), <[u8]>::to_vec)
    }

    /// Takes the oldest message into `buf` (cleared first, reusing its allocation); returns the
    /// message length. Waits while the queue is empty.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-bget-into").bytes_queue("q", 2, 16).create_or_replace().unwrap();
    /// let q = seg.bytes_queue("q").unwrap();
    /// let mut buf = Vec::with_capacity(16);
    /// q.put(b"xyz").unwrap();
    /// assert_eq!(q.get_into(&mut buf), Ok(3));
    /// assert_eq!(buf, b"xyz");
    /// ```
    pub fn get_into(&self, buf: &mut Vec<u8>) -> Result<usize, GetError> {
        self.get_in_place(Some(Wait::forever()), |m| {
            buf.clear();
            buf.extend_from_slice(m);
            m.len()
        })
    }

    /// Like [`get_into`](Self::get_into), but never blocks.
    pub fn try_get_into(&self, buf: &mut Vec<u8>) -> Result<usize, GetError> {
        self.get_in_place(Some(Wait::No), |m| {
            buf.clear();
            buf.extend_from_slice(m);
            m.len()
        })
    }

    /// Largest message accepted, in bytes (`usize::MAX`: any length the segment can hold).
    pub fn max_len(&self) -> usize {
        self.max
    }

    /// Longest message kept in its slot; longer ones go through the segment's heap (equal to
    /// [`max_len`](Self::max_len) when every message stays in its slot).
    pub fn inline_len(&self) -> usize {
        self.inline
    }

    /// Number of messages in the queue (a snapshot).
    pub fn len(&self) -> usize {
        self.h.len() as usize
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len() == capacity()`.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        usize::try_from(self.h.capacity()).unwrap_or(usize::MAX)
    }

    /// Closes the queue for every process (see [`Queue::close`](crate::Queue::close)).
    pub fn close(&self) -> bool {
        self.h.close()
    }

    /// A snapshot of the queue's counters.
    ///
    /// ```
    /// # let seg = shmq::Segment::builder("doc-stats-bytesqueue").bytes_queue("b", 2, 8).queue::<u8>("q", 2).create_or_replace().unwrap();
    /// # let q = seg.bytes_queue("b").unwrap();
    /// let s = q.stats();
    /// assert_eq!((s.len, s.capacity, s.closed, s.waiting_getters), (0, 2, false, 0));
    /// ```
    pub fn stats(&self) -> crate::QueueStats {
        self.h.stats()
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.h.is_closed()
    }

    /// Whether a producer of this queue is alive; see [`Queue::producers_alive`](crate::Queue::producers_alive).
    pub fn producers_alive(&self) -> bool {
        self.h.producers_alive()
    }

    /// Counts the calling thread as a producer from now on: see
    /// [`Queue::register_producer`](crate::Queue::register_producer).
    pub fn register_producer(&self) {
        self.h.register_producer()
    }
}
