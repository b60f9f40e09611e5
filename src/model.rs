//! Model-checking entry points (only with `--cfg shmq_loom`).
//!
//! Loom atomics cannot overlay `mmap`ed memory, so the models drive the very same ring algorithm
//! over a ring made of loom objects, with threads standing in for processes. This module is not part
//! of the public API.

use crate::ring::{Ring, TryError, WaitError};
use crate::ring_mem::LoomRing;
use std::time::{Duration, Instant};

/// Outcome of a model operation that moved nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Full (put) or empty (get), non-blocking.
    WouldBlock,
    /// Closed.
    Closed,
    /// Deadline passed.
    Timeout,
    /// Corrupt state detected.
    Corrupt,
}

impl From<TryError> for Outcome {
    fn from(e: TryError) -> Self {
        match e {
            TryError::WouldBlock => Outcome::WouldBlock,
            TryError::Closed => Outcome::Closed,
            TryError::Corrupt => Outcome::Corrupt,
        }
    }
}

impl From<WaitError> for Outcome {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Closed => Outcome::Closed,
            WaitError::Timeout => Outcome::Timeout,
            WaitError::Corrupt => Outcome::Corrupt,
        }
    }
}

/// A ring of `u64` values (8-byte payloads) made of loom objects.
#[derive(Debug)]
pub struct ModelQueue {
    ring: Ring<LoomRing>,
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    // Any deadline: the loom futex gives up at once on a timed wait.
    timeout.map(|d| Instant::now() + d)
}

impl ModelQueue {
    /// A ring with `cap` slots.
    pub fn new(cap: u64) -> Self {
        Self {
            ring: Ring::new(LoomRing::new(cap, 8)),
        }
    }
    /// Non-blocking put.
    pub fn try_put(&self, v: u64) -> Result<(), Outcome> {
        self.ring
            .try_put_batch(None, 1, |_, b| b.copy_from_slice(&v.to_le_bytes()))
            .map(|_| ())
            .map_err(Into::into)
    }
    /// Blocking put (timed if `timeout` is `Some`).
    pub fn put(&self, v: u64, timeout: Option<Duration>) -> Result<(), Outcome> {
        self.ring
            .put_batch(None, 1, deadline(timeout), |_, b| {
                b.copy_from_slice(&v.to_le_bytes())
            })
            .map(|_| ())
            .map_err(Into::into)
    }
    /// Non-blocking get.
    pub fn try_get(&self) -> Result<u64, Outcome> {
        let mut out = 0;
        self.ring
            .try_get_batch(None, 1, |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }
    /// Blocking get (timed if `timeout` is `Some`).
    pub fn get(&self, timeout: Option<Duration>) -> Result<u64, Outcome> {
        let mut out = 0;
        self.ring
            .get_batch(None, 1, deadline(timeout), |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }
    /// Blocking batch put of all of `items` (returns how many went in before a close).
    pub fn put_many(&self, items: &[u64]) -> Result<(), (usize, Outcome)> {
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            match self.ring.put_batch(None, rest.len(), None, |k, b| {
                b.copy_from_slice(&rest[k].to_le_bytes())
            }) {
                Ok(n) => done += n,
                Err(e) => return Err((done, e.into())),
            }
        }
        Ok(())
    }
    /// Blocking batch get into `buf`; returns how many.
    pub fn get_many(&self, buf: &mut [u64]) -> Result<usize, Outcome> {
        let max = buf.len();
        self.ring
            .get_batch(None, max, None, |k, b| {
                buf[k] = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Into::into)
    }
    /// Closes the ring.
    pub fn close(&self) -> bool {
        self.ring.close()
    }
    /// Snapshot length.
    pub fn len(&self) -> u64 {
        self.ring.len()
    }
    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

use crate::objects::barrier::BarrierState;
use crate::objects::cell::Cell;
use crate::objects::event::EventState;
use crate::objects::joinable::JoinState;
use crate::objects::list::{self, ListHeader};
use crate::objects::lock::LockState;
use crate::objects::semaphore::SemaphoreState;
use crate::sync::{AtomicU64, UnsafeCell};

/// A lock guarding a plain (non-atomic) counter: loom reports a data race if two holders ever
/// overlap.
#[derive(Debug)]
pub struct ModelLock {
    state: LockState,
    data: UnsafeCell<u64>,
}

impl Default for ModelLock {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelLock {
    /// Unlocked, counter 0.
    pub fn new() -> Self {
        Self {
            state: LockState::new(),
            data: UnsafeCell::new(0),
        }
    }
    /// Takes the lock (timed if `timeout` is `Some`), increments the counter, unlocks.
    /// Returns whether the lock was taken.
    pub fn increment(&self, timeout: Option<Duration>) -> bool {
        if self.state.lock(deadline(timeout)).is_none() {
            return false;
        }
        // SAFETY: the lock is held; loom checks that no other access overlaps.
        self.data.with_mut(|p| unsafe { *p += 1 });
        self.state.unlock(true);
        true
    }
    /// Non-blocking variant of `increment`.
    pub fn try_increment(&self) -> bool {
        if self.state.try_lock().is_none() {
            return false;
        }
        // SAFETY: as in `increment`.
        self.data.with_mut(|p| unsafe { *p += 1 });
        self.state.unlock(true);
        true
    }
    /// The counter (call with no other thread running).
    pub fn value(&self) -> u64 {
        // SAFETY: the model calls this after joining every other thread.
        self.data.with(|p| unsafe { *p })
    }
}

/// An event plus a plain payload written before `set`: a waiter that returns must see it.
#[derive(Debug)]
pub struct ModelEvent {
    state: EventState,
    payload: UnsafeCell<u64>,
}

impl Default for ModelEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelEvent {
    /// Clear, payload 0.
    pub fn new() -> Self {
        Self {
            state: EventState::new(),
            payload: UnsafeCell::new(0),
        }
    }
    /// Writes the payload, then sets the event (call from one thread only).
    pub fn publish(&self, v: u64) {
        // SAFETY: only the single publisher writes, and readers read only after the event.
        self.payload.with_mut(|p| unsafe { *p = v });
        self.state.set();
    }
    /// Waits (timed if `timeout` is `Some`); returns the payload if the event was set.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<u64> {
        if self.state.wait(deadline(timeout)) {
            // SAFETY: the event's Release/Acquire orders the write before this read.
            Some(self.payload.with(|p| unsafe { *p }))
        } else {
            None
        }
    }
    /// Clears the event.
    pub fn clear(&self) {
        self.state.clear()
    }
}

/// A semaphore guarding a plain counter.
#[derive(Debug)]
pub struct ModelSemaphore {
    state: SemaphoreState,
    max: u32,
    data: UnsafeCell<u64>,
}

impl ModelSemaphore {
    /// `initial` units, bound `max`.
    pub fn new(initial: u32, max: u32) -> Self {
        Self {
            state: SemaphoreState::new(initial),
            max,
            data: UnsafeCell::new(0),
        }
    }
    /// Acquire (timed if `timeout` is `Some`), increment the counter (only safe as a critical
    /// section when the semaphore holds at most one unit), release. Returns whether it acquired.
    pub fn increment(&self, timeout: Option<Duration>) -> bool {
        if !self.state.acquire(deadline(timeout)) {
            return false;
        }
        // SAFETY: a 1-unit semaphore is held; loom checks no other access overlaps.
        self.data.with_mut(|p| unsafe { *p += 1 });
        self.state.release(self.max).expect("release within bound");
        true
    }
    /// Acquire one unit.
    pub fn acquire(&self, timeout: Option<Duration>) -> bool {
        self.state.acquire(deadline(timeout))
    }
    /// Release one unit; `Err` past the bound.
    pub fn release(&self) -> Result<(), u32> {
        self.state.release(self.max)
    }
    /// Units available.
    pub fn value(&self) -> u32 {
        self.state.value()
    }
    /// The counter (call with no other thread running).
    pub fn data(&self) -> u64 {
        // SAFETY: the model calls this after joining every other thread.
        self.data.with(|p| unsafe { *p })
    }
}

/// A barrier for `parties` parties.
#[derive(Debug)]
pub struct ModelBarrier {
    state: BarrierState,
    parties: u32,
}

impl ModelBarrier {
    /// A barrier for `parties`.
    pub fn new(parties: u32) -> Self {
        Self {
            state: BarrierState::new(),
            parties,
        }
    }
    /// Waits; `Ok(leader)` or `Err(())` on timeout.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, ()> {
        self.state
            .wait(self.parties, deadline(timeout))
            .map_err(|_| ())
    }
    /// Parties waiting now.
    pub fn arrived(&self) -> u32 {
        self.state.arrived()
    }
}

/// A joinable queue: a ring plus task accounting, as `JoinableQueue` composes them.
#[derive(Debug)]
pub struct ModelJoinable {
    queue: ModelQueue,
    join: JoinState,
}

impl ModelJoinable {
    /// Capacity `cap`.
    pub fn new(cap: u64) -> Self {
        Self {
            queue: ModelQueue::new(cap),
            join: JoinState::new(),
        }
    }
    /// Counted blocking put.
    pub fn put(&self, v: u64) -> Result<(), Outcome> {
        self.join.add();
        let r = self.queue.put(v, None);
        if r.is_err() {
            self.join.undo_add();
        }
        r
    }
    /// Blocking get.
    pub fn get(&self) -> Result<u64, Outcome> {
        self.queue.get(None)
    }
    /// One task done; `Err` if none unfinished.
    pub fn task_done(&self) -> Result<(), ()> {
        self.join.task_done()
    }
    /// Waits for all tasks (timed if `timeout` is `Some`); whether all were done.
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        self.join.join(deadline(timeout))
    }
    /// Unfinished tasks.
    pub fn unfinished(&self) -> u64 {
        self.join.unfinished()
    }
}

/// An append-only list of `u64` whose elements are plain cells: loom reports a reader that
/// looks at an element before its writer finished.
#[derive(Debug)]
pub struct ModelList {
    hdr: ListHeader,
    ready: Vec<AtomicU64>,
    data: Vec<UnsafeCell<u64>>,
}

impl ModelList {
    /// Capacity `cap`.
    pub fn new(cap: usize) -> Self {
        Self {
            hdr: ListHeader::new(),
            ready: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
        }
    }
    /// Appends; the index, or `Err(v)` when full.
    pub fn push(&self, v: u64) -> Result<usize, u64> {
        let Some(i) = self.hdr.claim(self.ready.len() as u64) else {
            return Err(v);
        };
        // SAFETY: index i is ours alone (claim counter); readers wait for the ready flag.
        self.data[i as usize].with_mut(|p| unsafe { *p = v });
        list::publish(&self.ready[i as usize]);
        Ok(i as usize)
    }
    /// The finished elements in index order.
    pub fn to_vec(&self) -> Vec<u64> {
        let n = self.hdr.len(self.ready.len() as u64) as usize;
        (0..n)
            .filter(|&i| list::is_ready(&self.ready[i]))
            // SAFETY: the ready flag (Acquire) says the writer finished.
            .map(|i| self.data[i].with(|p| unsafe { *p }))
            .collect()
    }
}

/// A shared 64-bit cell holding an `i64` (as `Value<i64>` does).
#[derive(Debug)]
pub struct ModelValue {
    cell: Cell,
}

impl ModelValue {
    /// Starting at `v`.
    pub fn new(v: i64) -> Self {
        Self {
            cell: Cell::new(v as u64),
        }
    }
    /// Atomic add; previous value.
    pub fn fetch_add(&self, v: i64) -> i64 {
        self.cell.fetch_add(v)
    }
    /// Atomic add on an `i32` view through the compare-exchange path.
    pub fn fetch_add_i32(&self, v: i32) -> i32 {
        self.cell.fetch_add(v)
    }
    /// Current value.
    pub fn load(&self) -> i64 {
        self.cell.load()
    }
}

/// A ring of byte messages (length word + bytes, as `BytesQueue` lays them out).
#[derive(Debug)]
pub struct ModelBytesQueue {
    ring: Ring<LoomRing>,
    max: usize,
}

impl ModelBytesQueue {
    /// `cap` slots of messages up to `max` bytes.
    pub fn new(cap: u64, max: usize) -> Self {
        Self {
            ring: Ring::new(LoomRing::new(cap, 8 + max)),
            max,
        }
    }
    /// Blocking put of `msg` (at most `max` bytes).
    pub fn put(&self, msg: &[u8]) -> Result<(), Outcome> {
        assert!(msg.len() <= self.max);
        self.ring
            .put_batch(None, 1, None, |_, b| {
                b[..4].copy_from_slice(&(msg.len() as u32).to_le_bytes());
                b[8..8 + msg.len()].copy_from_slice(msg);
            })
            .map(|_| ())
            .map_err(Into::into)
    }
    /// Blocking get; `Err(Corrupt)` if the stored length exceeds the maximum.
    pub fn get(&self) -> Result<Vec<u8>, Outcome> {
        let mut out = None;
        let max = self.max;
        self.ring
            .get_batch(None, 1, None, |_, b| {
                let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len <= max {
                    out = Some(b[8..8 + len].to_vec());
                }
            })
            .map_err(Outcome::from)?;
        out.ok_or(Outcome::Corrupt)
    }
}
