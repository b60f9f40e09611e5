//! `BytesQueue`: a bounded MPMC queue of byte messages of bounded length.

use crate::error::{BytesPutError, GetError};
use crate::layout::BYTES_LEN_WORD;
use crate::mapping::Inner;
use crate::queue::get_err;
use crate::ring::mem::RawRing;
use crate::ring::Ring;
use crate::ring_handle::{Fail, RingHandle, Wait};
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
    max: usize,
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
        // Only gets report it; a put never sees it.
        Fail::Disconnected => BytesPutError::Timeout,
    }
}

impl BytesQueue {
    pub(crate) fn from_parts(seg: Arc<Inner>, ring: Ring<RawRing>, obj: u32) -> Self {
        let max = (ring.mem.layout().payload_len - BYTES_LEN_WORD) as usize;
        Self {
            h: RingHandle { ring, seg, obj },
            max,
        }
    }

    fn put_copy(&self, msg: &[u8], wait: Wait) -> Result<(), BytesPutError> {
        self.put_in_place(msg.len(), wait, |buf| buf.copy_from_slice(msg))
    }

    /// Runs `f` on the message in place (no copy out of shared memory), then frees its slot.
    fn get_in_place<R>(&self, wait: Wait, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        let w = BYTES_LEN_WORD as usize;
        let max = self.max;
        let mut f = Some(f);
        let mut out = None;
        self.h
            .get(wait, 1, |_, buf| {
                // The length is read once into a local and checked before use.
                let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if len <= max {
                    if let Some(f) = f.take() {
                        out = Some(f(&buf[w..w + len]));
                    }
                }
            })
            .map_err(get_err)?;
        out.ok_or(GetError::Corrupt)
    }

    /// Overwrites the stored length of the oldest published message (fuzzing only: simulates a
    /// hostile process writing the segment).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn forge_front_len(&self, len: u32) {
        use crate::ring::RingMem;
        let mem = &self.h.ring.mem;
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
            .map_err(put_err)
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
        self.get_in_place(Wait::timeout(timeout), f)
    }

    /// Reads the oldest message in place in its slot (zero copy): waits for one, runs `f` on it,
    /// then frees the slot.
    pub fn get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        self.get_in_place(Wait::forever(), f)
    }

    /// Like [`get_with`](Self::get_with), but never sleeps for a message (linearizable, as
    /// [`try_get`](Self::try_get)).
    pub fn try_get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        self.get_in_place(Wait::No, f)
    }

    /// A handle that spins before sleeping (default) or sleeps at once; see
    /// [`Queue::with_spinning`](crate::Queue::with_spinning).
    pub fn with_spinning(mut self, spin: bool) -> Self {
        self.h.ring.spin = spin;
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
        self.get_in_place(Wait::forever(), <[u8]>::to_vec)
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
        self.get_in_place(Wait::timeout(timeout), <[u8]>::to_vec)
    }

    /// Takes the oldest message if there is one; never sleeps for the queue to fill.
    /// Linearizable, with the same bounded wait for a producer mid-publish as
    /// [`Queue::try_get`](crate::Queue::try_get).
    pub fn try_get(&self) -> Result<Vec<u8>, GetError> {
        self.get_in_place(Wait::No, <[u8]>::to_vec)
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
        self.get_in_place(Wait::forever(), |m| {
            buf.clear();
            buf.extend_from_slice(m);
            m.len()
        })
    }

    /// Like [`get_into`](Self::get_into), but never blocks.
    pub fn try_get_into(&self, buf: &mut Vec<u8>) -> Result<usize, GetError> {
        self.get_in_place(Wait::No, |m| {
            buf.clear();
            buf.extend_from_slice(m);
            m.len()
        })
    }

    /// Largest message accepted, in bytes.
    pub fn max_len(&self) -> usize {
        self.max
    }

    /// Number of messages in the queue (a snapshot).
    pub fn len(&self) -> usize {
        self.h.ring.len() as usize
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
        self.h.ring.capacity() as usize
    }

    /// Closes the queue for every process (see [`Queue::close`](crate::Queue::close)).
    pub fn close(&self) -> bool {
        self.h.ring.close()
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
        self.h.ring.is_closed()
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
