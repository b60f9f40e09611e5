//! Model-checking entry points (only with `--cfg shmq_loom`).
//!
//! Loom atomics cannot overlay `mmap`ed memory, so the models drive the very same ring algorithm
//! over a ring made of loom objects, with threads standing in for processes. This module is not part
//! of the public API.

use crate::ring::mem::LoomRing;
use crate::ring::{Ring, TryError, WaitError};
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
    /// Get: empty, and every registered producer is gone.
    Disconnected,
}

impl From<crate::ring::Fail> for Outcome {
    fn from(f: crate::ring::Fail) -> Self {
        use crate::ring::Fail;
        match f {
            // An unbounded queue with no room for a link: nothing moved.
            Fail::WouldBlock | Fail::NoSpace => Outcome::WouldBlock,
            Fail::Closed => Outcome::Closed,
            Fail::Timeout => Outcome::Timeout,
            Fail::Corrupt => Outcome::Corrupt,
            Fail::Disconnected => Outcome::Disconnected,
        }
    }
}

impl From<TryError> for Outcome {
    fn from(e: TryError) -> Self {
        crate::ring::Fail::from(e).into()
    }
}

impl From<WaitError> for Outcome {
    fn from(e: WaitError) -> Self {
        crate::ring::Fail::from(e).into()
    }
}

/// A side of a ring, for the models that name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The producers' side.
    Put,
    /// The consumers' side.
    Get,
}

impl From<Which> for crate::layout::Side {
    fn from(w: Which) -> Self {
        match w {
            Which::Put => crate::layout::Side::Put,
            Which::Get => crate::layout::Side::Get,
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
    /// Non-blocking put as the public `try_put` does it: waits out a consumer mid-release.
    pub fn try_put_now(&self, v: u64) -> Result<(), Outcome> {
        self.ring
            .put_now(None, 1, |_, b| b.copy_from_slice(&v.to_le_bytes()))
            .map(|_| ())
            .map_err(Into::into)
    }
    /// Non-blocking get as the public `try_get` does it: waits out a producer mid-publish.
    pub fn try_get_now(&self) -> Result<u64, Outcome> {
        let mut out = 0;
        self.ring
            .get_now(None, 1, |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }
    /// Non-blocking get whose reader reads the value and then panics (as a user's `get_with`
    /// closure may): the claim guard releases the slot while unwinding. Returns the value read
    /// before the panic, or the outcome if nothing was claimed.
    pub fn try_get_and_panic(&self) -> Result<u64, Outcome> {
        let mut out = None;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.ring.try_get_batch(None, 1, |_, b| {
                out = Some(u64::from_le_bytes(b.try_into().unwrap()));
                std::panic::resume_unwind(Box::new("the reader panics"));
            })
        }));
        match (r, out) {
            (Err(_), Some(v)) => Ok(v),
            (Ok(Err(e)), None) => Err(e.into()),
            (r, out) => {
                panic!("the reader ran ({out:?}) but did not unwind, or the reverse: {r:?}")
            }
        }
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
    /// Waits (as a blocking get) until a value is there to take, without taking it; then takes
    /// it as the public `try_get` does. `Ok(None)` if another consumer took it first.
    pub fn wait_ready_then_take(&self, timeout: Option<Duration>) -> Result<Option<u64>, Outcome> {
        self.ring
            .wait_ready(None, deadline(timeout))
            .map_err(Outcome::from)?;
        match self.try_get_now() {
            Ok(v) => Ok(Some(v)),
            Err(Outcome::WouldBlock) => Ok(None),
            Err(e) => Err(e),
        }
    }
    /// Blocking batch put of all of `items` (returns how many went in before a close).
    pub fn put_many(&self, items: &[u64]) -> Result<(), (usize, Outcome)> {
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            match self.ring.put_batch(
                None,
                rest.len(),
                None,
                |crate::ring::Filling { k, .. }, b| b.copy_from_slice(&rest[k].to_le_bytes()),
            ) {
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

/// A condition variable (the shipping `CondState` protocol) over a lock, guarding a plain flag:
/// loom reports a deadlock if a notify can be lost, and a data race if the flag is ever touched
/// outside the lock.
#[derive(Debug)]
pub struct ModelCondition {
    lock: LockState,
    cond: crate::objects::condition::CondState,
    flag: UnsafeCell<u64>,
}

impl Default for ModelCondition {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelCondition {
    /// Unlocked, flag 0.
    pub fn new() -> Self {
        Self {
            lock: LockState::new(),
            cond: crate::objects::condition::CondState::new(),
            flag: UnsafeCell::new(0),
        }
    }

    fn flag(&self) -> u64 {
        // SAFETY: called with the lock held; loom checks that no access overlaps.
        self.flag.with(|p| unsafe { *p })
    }

    /// `Condition::wait_for(flag >= at_least)` without a timeout: takes the lock, and while the
    /// flag is below `at_least`, registers, releases the lock, sleeps, and takes it back.
    pub fn wait_for(&self, at_least: u64) {
        assert!(self.lock.lock(None).is_some());
        while self.flag() < at_least {
            let seen = self.cond.prepare();
            self.lock.unlock(true);
            self.cond.wait(seen, None);
            assert!(self.lock.lock(None).is_some());
        }
        self.lock.unlock(true);
    }

    /// `Condition::wait_for(flag >= at_least, timeout)` with a timeout that ends at once (as
    /// every timed wait does under loom) unless a notify came first: one round of waiting.
    /// Whether the flag got there.
    pub fn wait_for_timeout(&self, at_least: u64) -> bool {
        assert!(self.lock.lock(None).is_some());
        if self.flag() < at_least {
            let seen = self.cond.prepare();
            self.lock.unlock(true);
            self.cond.wait(seen, Some(Instant::now()));
            assert!(self.lock.lock(None).is_some());
        }
        let got = self.flag() >= at_least;
        self.lock.unlock(true);
        got
    }

    /// Waiters registered and not yet gone.
    pub fn waiters(&self) -> u32 {
        self.cond.waiters.load(Ordering::Relaxed)
    }

    /// Takes the lock, raises the flag by one, notifies `n` waiters, unlocks.
    pub fn raise_and_notify(&self, n: u32) {
        assert!(self.lock.lock(None).is_some());
        // SAFETY: the lock is held; loom checks that no other access overlaps.
        self.flag.with_mut(|p| unsafe { *p += 1 });
        self.cond.notify(n);
        self.lock.unlock(true);
    }
}

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
    /// Blocking put (counted from its claim on).
    pub fn put(&self, v: u64) -> Result<(), Outcome> {
        self.queue.put(v, None)
    }
    /// Blocking get.
    pub fn get(&self) -> Result<u64, Outcome> {
        self.queue.get(None)
    }
    /// One task done; `Err` if none unfinished.
    pub fn task_done(&self) -> Result<(), ()> {
        self.join.task_done(|| self.queue.ring.counted_puts())
    }
    /// Waits for all tasks (timed if `timeout` is `Some`); whether all were done.
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        self.join
            .join(|| self.queue.ring.counted_puts(), deadline(timeout))
    }
    /// Unfinished tasks.
    pub fn unfinished(&self) -> u64 {
        self.join.unfinished(|| self.queue.ring.counted_puts())
    }
    /// A put whose writer panics (as a user's `put_with` closure may): the claim guard
    /// tombstones the claimed position while unwinding, so it is no task.
    pub fn put_and_panic(&self) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.queue.ring.try_put_batch(None, 1, |_, _| {
                std::panic::resume_unwind(Box::new("the writer panics"))
            })
        }));
        assert!(r.is_err(), "the writer did not run: {r:?}");
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

// ----- crash recovery -----

use crate::layout::ClaimRecord;
use crate::layout::Side;
use crate::ring::{Claim, Claimant, Liveness};
use crate::sync::{AtomicU32, Ordering};

/// Directory index + 1 that the claim records of a [`ModelCrashQueue`] name for its ring.
const CRASH_OBJ: u32 = 1;

/// One simulated process of a [`ModelCrashQueue`]: its claim record and whether it has died.
#[derive(Debug)]
struct ModelProcess {
    record: ClaimRecord,
    /// 1 once the thread playing this process has stopped for good. A live process's claim always
    /// reads as live (the real check is per process), so a claim is reported dead only after its
    /// claimant can take no further step.
    dead: AtomicU32,
    /// 1 once the process noted itself a producer ([`ModelCrashQueue::note_producer`]): its
    /// participant record's `producer_of` bit.
    producer: AtomicU32,
}

impl ModelProcess {
    fn alive(&self) -> bool {
        // SYNC: Acquire pairs with the Release store in `ModelCrashQueue::die`: whoever sees the
        // process dead sees every step it took, as a real process's exit is ordered before /proc
        // shows it gone.
        self.dead.load(Ordering::Acquire) == 0
    }
}

/// The liveness source of a [`ModelCrashQueue`]: what `QueueLiveness` answers from the participant
/// table, answered from the simulated processes.
#[derive(Debug)]
struct ModelProcesses {
    procs: Vec<ModelProcess>,
    /// Recovery copies the payload of each position it gives up ([`ModelCrashQueue::copying`]).
    copying: bool,
    /// Only processes that noted themselves producers count as live producers
    /// ([`ModelCrashQueue::tracking_producers`]); otherwise every live process does.
    tracking: bool,
}

impl ModelProcesses {
    /// `procs` live processes with empty records.
    fn new(procs: usize, copying: bool, tracking: bool) -> std::sync::Arc<Self> {
        std::sync::Arc::new(ModelProcesses {
            procs: (0..procs)
                .map(|_| ModelProcess {
                    record: ClaimRecord {
                        put_obj: AtomicU32::new(0),
                        get_obj: AtomicU32::new(0),
                        put_pos: AtomicU64::new(0),
                        put_len: AtomicU64::new(0),
                        get_pos: AtomicU64::new(0),
                        get_len: AtomicU64::new(0),
                        waiting: AtomicU64::new(0),
                    },
                    dead: AtomicU32::new(0),
                    producer: AtomicU32::new(0),
                })
                .collect(),
            copying,
            tracking,
        })
    }

    /// Process `p` notes itself a producer of `ring`, as the segment's `note_producer` does
    /// before a thread's first put there: its record's bit (Relaxed), then the ring's producers
    /// flag (Release).
    fn note_producer<M: crate::ring::RingMem>(&self, p: usize, ring: &M) {
        self.procs[p].producer.store(1, Ordering::Relaxed);
        // SYNC: Release orders the bit before the flag, as in `RingHandle::note_producer`; pairs
        // with the Acquire load of the flag in `Ring::disconnected` (and with `advance`'s, which
        // carries the flag into the next link of a chain).
        ring.header()
            .counters
            .producers
            .fetch_or(crate::layout::PRODUCER_SEEN, Ordering::Release);
    }

    fn alive(&self) -> u32 {
        self.procs.iter().filter(|p| p.alive()).count() as u32
    }
}

impl Liveness for ModelProcesses {
    /// The shipping attribution scan ([`crate::ring::attribute`]) over the simulated processes.
    fn claimant(&self, pos: u64, side: Side) -> Claim {
        crate::ring::attribute(
            self.procs.iter(),
            |p| &p.record,
            ModelProcess::alive,
            CRASH_OBJ,
            pos,
            side,
        )
    }

    /// Every live process counts as a producer that may still put; when tracking producers,
    /// every live one that noted itself a producer (its bit read Relaxed, as the participant
    /// scan reads `producer_of`).
    fn live_producers(&self) -> u32 {
        if !self.tracking {
            return self.alive();
        }
        self.procs
            .iter()
            .filter(|p| p.alive() && p.producer.load(Ordering::Relaxed) == 1)
            .count() as u32
    }

    fn live_participants(&self) -> u32 {
        self.alive()
    }

    /// The models do not kill registered waiters.
    fn repair_waiters(&self, _side: Side) -> u32 {
        0
    }

    /// A copying queue ([`ModelCrashQueue::copying`]) has recovery copy the payload of each
    /// position it gives up, as a byte queue with long messages does.
    fn wants_abandoned(&self) -> bool {
        self.copying
    }
}

/// A ring of `u64` values whose operations run as simulated processes `0..procs`, each with its
/// own claim record, and that recovers the claims of dead ones (as a segment's queue does from
/// its participant table). A process dies by stopping at a crash point: `put_and_die` /
/// `get_and_die` leave their claim exactly as a SIGKILL at "put-claimed" / "get-claimed" would.
#[derive(Debug)]
pub struct ModelCrashQueue {
    ring: Ring<LoomRing>,
    procs: std::sync::Arc<ModelProcesses>,
}

impl ModelCrashQueue {
    /// A ring with `cap` slots, for processes `0..procs`, all alive.
    pub fn new(cap: u64, procs: usize) -> Self {
        Self::with(cap, procs, false, false)
    }

    /// As [`new`](Self::new), with recovery copying the payload of every position it gives up
    /// (before its stamp CAS), as a byte queue whose long messages live in the heap does.
    pub fn copying(cap: u64, procs: usize) -> Self {
        Self::with(cap, procs, true, false)
    }

    /// As [`new`](Self::new), where only the processes that called
    /// [`note_producer`](Self::note_producer) count as live producers (as a segment's queue counts
    /// the participants whose `producer_of` bit names it).
    pub fn tracking_producers(cap: u64, procs: usize) -> Self {
        Self::with(cap, procs, false, true)
    }

    fn with(cap: u64, procs: usize, copying: bool, tracking: bool) -> Self {
        let procs = ModelProcesses::new(procs, copying, tracking);
        let mut ring = Ring::new(LoomRing::new(cap, 8));
        ring.live = Some(procs.clone());
        Self { ring, procs }
    }

    fn who(&self, p: usize) -> Option<Claimant<'_>> {
        Some(Claimant {
            record: &self.procs.procs[p].record,
            obj: CRASH_OBJ,
        })
    }

    /// Process `p` has stopped for good: from now on its claims read as dead.
    fn die(&self, p: usize) {
        // SYNC: Release pairs with the Acquire in `ModelProcess::alive`.
        self.procs.procs[p].dead.store(1, Ordering::Release);
    }

    /// Non-blocking put by process `p`.
    pub fn try_put(&self, p: usize, v: u64) -> Result<(), Outcome> {
        self.try_put_as(self.who(p), v)
    }

    /// Non-blocking put by `who` (`None`: a thread without a claim record).
    fn try_put_as(&self, who: Option<Claimant<'_>>, v: u64) -> Result<(), Outcome> {
        match self
            .ring
            .try_put_batch(who, 1, |_, b| b.copy_from_slice(&v.to_le_bytes()))
        {
            Ok(1) => Ok(()),
            Ok(n) => panic!("put of one value moved {n}"),
            Err(e) => Err(e.into()),
        }
    }

    /// Non-blocking get by process `p`.
    pub fn try_get(&self, p: usize) -> Result<u64, Outcome> {
        self.try_get_as(self.who(p))
    }

    /// Non-blocking put by process `p` whose writer writes `v` and then panics (as a user's
    /// `put_with` closure may): the claim guard makes the position a tombstone while unwinding.
    /// Whether it claimed a position (and so panicked).
    pub fn try_put_and_panic(&self, p: usize, v: u64) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.ring.try_put_batch(self.who(p), 1, |_, b| {
                b.copy_from_slice(&v.to_le_bytes());
                std::panic::resume_unwind(Box::new("the writer panics"));
            })
        }))
        .is_err()
    }

    /// Non-blocking get by `who` (`None`: a thread without a claim record).
    fn try_get_as(&self, who: Option<Claimant<'_>>) -> Result<u64, Outcome> {
        let mut out = 0;
        match self.ring.try_get_batch(who, 1, |_, b| {
            out = u64::from_le_bytes(b.try_into().unwrap())
        }) {
            Ok(1) => Ok(out),
            Ok(n) => panic!("get of one value moved {n}"),
            Err(e) => Err(e.into()),
        }
    }

    /// Non-blocking get by process `p` as the public `try_get` does it: waits out a producer
    /// mid-publish, recovering its claim if it is dead.
    pub fn try_get_now(&self, p: usize) -> Result<u64, Outcome> {
        let mut out = 0;
        self.ring
            .get_now(self.who(p), 1, |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }

    /// Non-blocking put by process `p` as the public `try_put` does it: waits out a consumer
    /// mid-release, recovering its claim if it is dead.
    pub fn try_put_now(&self, p: usize, v: u64) -> Result<(), Outcome> {
        self.ring
            .put_now(self.who(p), 1, |_, b| b.copy_from_slice(&v.to_le_bytes()))
            .map(|_| ())
            .map_err(Into::into)
    }

    /// Snapshot length.
    pub fn len(&self) -> u64 {
        self.ring.len()
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocking get by process `p`. Under loom a blocked getter sleeps without slices: it
    /// recovers a dead claim only when it finds the head held as its spin phase ends, and
    /// otherwise relies on the wake-ups of publishes, recoveries and close.
    pub fn get(&self, p: usize) -> Result<u64, Outcome> {
        let mut out = 0;
        self.ring
            .get_batch(self.who(p), 1, None, |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }

    /// Process `p` claims a position for `v` and dies there, before writing or publishing (then it
    /// is dead: the calling thread must take no further step). `Err` if it found no position to
    /// claim, in which case it did not die.
    pub fn put_and_die(&self, p: usize, v: u64) -> Result<(), Outcome> {
        crate::fault::die_at(Some("put-claimed"));
        let r = self
            .ring
            .try_put_batch(self.who(p), 1, |_, b| b.copy_from_slice(&v.to_le_bytes()));
        crate::fault::die_at(None);
        match r {
            Ok(0) => {
                self.die(p);
                Ok(())
            }
            Ok(_) => panic!("the put went past its crash point"),
            Err(e) => Err(e.into()),
        }
    }

    /// Process `p` claims a message and dies there, before reading or releasing it (then it is
    /// dead, as for `put_and_die`). `Err` if it found nothing to claim.
    pub fn get_and_die(&self, p: usize) -> Result<(), Outcome> {
        crate::fault::die_at(Some("get-claimed"));
        let r = self.ring.try_get_batch(self.who(p), 1, |_, _| {});
        crate::fault::die_at(None);
        match r {
            Ok(0) => {
                self.die(p);
                Ok(())
            }
            Ok(_) => panic!("the get went past its crash point"),
            Err(e) => Err(e.into()),
        }
    }

    /// Process `p` writes its claim record naming position `pos` (`put`: for a put, else a get)
    /// and dies before its claim CAS, as a SIGKILL at "put-recorded" leaves it: a stale record
    /// naming a position it never claimed.
    pub fn record_and_die(&self, p: usize, side: Which, pos: u64) {
        let (obj, first, len) = self.procs.procs[p].record.side(side.into());
        obj.store(CRASH_OBJ, Ordering::Relaxed);
        first.store(pos, Ordering::Relaxed);
        len.store(1, Ordering::Relaxed);
        self.die(p);
    }

    /// Process `p` notes itself a producer of this ring (see `ModelProcesses::note_producer`).
    pub fn note_producer(&self, p: usize) {
        self.procs.note_producer(p, &self.ring.mem);
    }

    /// Whether a getter would be told `Disconnected` now (`Ring::disconnected`).
    pub fn disconnected(&self) -> bool {
        self.ring.disconnected()
    }

    /// Non-blocking put by a thread without a claim record (a full participant table).
    pub fn try_put_unattributed(&self, v: u64) -> Result<(), Outcome> {
        self.try_put_as(None, v)
    }

    /// Non-blocking get by a thread without a claim record (a full participant table).
    pub fn try_get_unattributed(&self) -> Result<u64, Outcome> {
        self.try_get_as(None)
    }

    /// What a blocked waiter does after each sleep slice: recover the claim it is stuck behind
    /// (`put`: a putter's, else a getter's) if its claimant is dead. Whether it recovered one.
    pub fn recover(&self, side: Which) -> bool {
        self.ring.recover(side.into())
    }

    /// Closes the ring.
    pub fn close(&self) -> bool {
        self.ring.close()
    }

    /// Positions turned into tombstones so far.
    pub fn tombstones(&self) -> u64 {
        self.ring.stats().tombstones
    }

    /// Messages lost with a dead consumer so far.
    pub fn lost(&self) -> u64 {
        self.ring.stats().lost
    }
}

/// A robust lock guarding a plain counter, with owners that may die holding it.
#[derive(Debug)]
pub struct ModelRobustLock {
    state: LockState,
    data: UnsafeCell<u64>,
}

impl Default for ModelRobustLock {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelRobustLock {
    /// Unlocked and consistent, counter 0.
    pub fn new() -> Self {
        Self {
            state: LockState::new(),
            data: UnsafeCell::new(0),
        }
    }

    /// Takes the lock as a contender does natively: one timed sleep per slice (a timed wait under
    /// loom gives up at once), after which a dead owner is taken over. Then increments the counter.
    /// Returns whether the lock came with `OwnerDead`.
    pub fn lock_and_increment(&self) -> bool {
        loop {
            if let Some(owner_dead) = self.lock_one_slice_and_increment() {
                return owner_dead;
            }
            crate::sync::yield_now();
        }
    }

    /// One slice of `lock_and_increment`: `Some(owner_dead)` if the lock was taken (the counter is
    /// then incremented), `None` if the slice ended with a live owner.
    pub fn lock_one_slice_and_increment(&self) -> Option<bool> {
        let slice_end = Instant::now() + Duration::from_millis(50);
        let acquired = self.state.lock(Some(slice_end))?;
        Some(self.increment_held(acquired))
    }

    /// Takes the lock sleeping on its word until woken (under loom a sleeper never times out, so
    /// it never takes over a dead owner itself), then increments the counter. Returns whether the
    /// lock came with `OwnerDead`.
    pub fn lock_blocking_and_increment(&self) -> bool {
        let acquired = self
            .state
            .lock(None)
            .expect("an untimed lock returns only once taken");
        self.increment_held(acquired)
    }

    /// Non-blocking: `Some(owner_dead)` if taken (the counter is then incremented).
    pub fn try_lock_and_increment(&self) -> Option<bool> {
        let acquired = self.state.try_lock()?;
        Some(self.increment_held(acquired))
    }

    /// Non-blocking, without touching the counter: `Some(owner_dead)` if taken.
    pub fn try_lock(&self) -> Option<bool> {
        let acquired = self.state.try_lock()?;
        Some(acquired.owner_died())
    }

    /// Increments the counter (call only while holding the lock).
    pub fn increment(&self) {
        // SAFETY: the caller holds the lock; loom checks that no other access overlaps.
        self.data.with_mut(|p| unsafe { *p += 1 });
    }

    fn increment_held(&self, acquired: crate::objects::lock::Acquired) -> bool {
        self.increment();
        acquired.owner_died()
    }

    /// Releases the lock (call only while holding it); `consistent` as for `LockGuard`.
    pub fn unlock(&self, consistent: bool) {
        self.state.unlock(consistent)
    }

    /// The calling thread dies, holding whatever it holds. It must be its very last action.
    pub fn die(&self) {
        crate::sync::owner::die()
    }

    /// Whether some thread holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.state.is_locked()
    }

    /// How many times a contender took the lock over from a dead owner.
    pub fn takeovers(&self) -> u32 {
        self.state.takeovers.get()
    }

    /// The counter (call with no other thread running).
    pub fn value(&self) -> u64 {
        // SAFETY: the model calls this after joining every other thread.
        self.data.with(|p| unsafe { *p })
    }
}

/// A two-word `Versioned` value (two copies and a version, written under a robust lock), whose
/// writers may die half-way through a write.
#[derive(Debug)]
pub struct ModelVersioned {
    lock: LockState,
    version: AtomicU64,
    copies: [[AtomicU64; 2]; 2],
}

impl ModelVersioned {
    /// Version 0, value `initial` in copy 0.
    pub fn new(initial: [u64; 2]) -> Self {
        Self {
            lock: LockState::new(),
            version: AtomicU64::new(0),
            copies: [
                initial.map(AtomicU64::new),
                [AtomicU64::new(0), AtomicU64::new(0)],
            ],
        }
    }

    fn shared(&self) -> crate::objects::versioned::VersionedRef<'_> {
        crate::objects::versioned::VersionedRef {
            lock: &self.lock,
            version: &self.version,
            copies: [&self.copies[0], &self.copies[1]],
        }
    }

    /// Reads without the lock: `(value, version)`.
    pub fn load(&self) -> ([u64; 2], u64) {
        let mut out = [0u8; 16];
        let v = self.shared().read(&mut out);
        let word = |i: usize| u64::from_le_bytes(out[i * 8..i * 8 + 8].try_into().unwrap());
        ([word(0), word(1)], v)
    }

    fn bytes(value: [u64; 2]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&value[0].to_le_bytes());
        b[8..].copy_from_slice(&value[1].to_le_bytes());
        b
    }

    /// Writes, sleeping on the lock until woken (under loom never taking over a dead owner).
    pub fn store(&self, value: [u64; 2]) {
        assert!(self.shared().write(&Self::bytes(value), None));
    }

    /// Writes as a contender does natively when the lock's owner may have died: one slice at a
    /// time (a timed wait under loom gives up at once), taking a dead owner over after a slice.
    pub fn store_taking_over(&self, value: [u64; 2]) {
        let b = Self::bytes(value);
        while !self
            .shared()
            .write(&b, Some(Instant::now() + Duration::from_millis(50)))
        {
            crate::sync::yield_now();
        }
    }

    /// Starts writing `value`, and dies holding the lock once half the words are written (crash
    /// point `versioned-writing`). The calling thread must take no further step.
    pub fn store_and_die(&self, value: [u64; 2]) {
        crate::fault::die_at(Some("versioned-writing"));
        self.shared().write(&Self::bytes(value), None);
        crate::fault::die_at(None);
    }

    /// How many times a writer took the lock over from a dead one.
    pub fn takeovers(&self) -> u32 {
        self.lock.takeovers.get()
    }
}

/// A shared heap (the crate's own, `crate::heap`) over a vector of loom atomics. Model threads
/// stand in for processes; a thread that dies is marked gone, as `Inner::holder_gone` proves a
/// dead process's record gone.
pub struct ModelHeap {
    mem: HeapWords,
    hdr: crate::heap::HeapHeader,
}

/// The words of a model heap, and the liveness of its model "records" (one per thread index).
struct HeapWords {
    words: Vec<crate::sync::AtomicU64>,
    committed: crate::sync::AtomicU64,
    gone: Vec<crate::sync::AtomicU64>,
    lost: crate::sync::AtomicU64,
}

impl crate::heap::HeapMem for HeapWords {
    fn word(&self, off: u64) -> Result<&crate::sync::AtomicU64, crate::heap::HeapError> {
        let i = off / 8;
        // SYNC: Acquire pairs with the Release store in `commit`.
        if off % 8 != 0 || off >= self.committed.load(Ordering::Acquire) {
            return Err(crate::heap::HeapError::Corrupt);
        }
        self.words
            .get(i as usize)
            .ok_or(crate::heap::HeapError::Corrupt)
    }
    fn holder_gone(&self, rec: u32, _inc: u32) -> bool {
        // SYNC: Acquire pairs with the Release store in `ModelHeap::die`.
        self.gone
            .get(rec as usize)
            .is_some_and(|g| g.load(Ordering::Acquire) != 0)
    }
    fn words(&self, off: u64, n: u64) -> Result<&[crate::sync::AtomicU64], crate::heap::HeapError> {
        let i = off / 8;
        let end = off.checked_add(n.checked_mul(8).ok_or(crate::heap::HeapError::Corrupt)?);
        // SYNC: Acquire, as in `word`.
        if off % 8 != 0 || end.map_or(true, |e| e > self.committed.load(Ordering::Acquire)) {
            return Err(crate::heap::HeapError::Corrupt);
        }
        self.words
            .get(i as usize..(i + n) as usize)
            .ok_or(crate::heap::HeapError::Corrupt)
    }
    fn structure_blocks(&self, _obj: u32, _each: &mut dyn FnMut(u64)) -> bool {
        true // the models' heaps hold no structure blocks
    }
    fn committed(&self) -> u64 {
        // SYNC: Acquire, as in `word`.
        self.committed.load(Ordering::Acquire)
    }
    fn max_size(&self) -> u64 {
        self.words.len() as u64 * 8
    }
    fn lock_token(&self) -> u32 {
        crate::sync::owner::me() + 1
    }
    fn token_gone(&self, token: u32) -> bool {
        crate::sync::owner::owner_dead(token - 1, 0, 0)
    }
    fn commit(&self, _from: u64, to: u64) -> Result<(), crate::heap::HeapError> {
        if to > self.max_size() {
            return Err(crate::heap::HeapError::NoSpace { requested: to });
        }
        // SYNC: Release publishes the growth; pairs with the Acquire loads above.
        self.committed.store(to, Ordering::Release);
        Ok(())
    }
}

/// Where a model heap's blocks start (so that 0 never names a block).
const HEAP_START: u64 = 64;

impl ModelHeap {
    /// A heap whose blocks cover `initial` bytes, able to grow to `max` bytes (multiples of 16;
    /// growth goes in 4 KiB pages, so `max` above `initial` should allow one), for `threads`
    /// model threads.
    pub fn new(initial: u64, max: u64, threads: usize) -> Self {
        let mem = HeapWords {
            words: (0..(HEAP_START + max) / 8)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            committed: crate::sync::AtomicU64::new(HEAP_START + initial),
            gone: (0..threads)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            lost: crate::sync::AtomicU64::new(0),
        };
        let hdr = crate::heap::HeapHeader::new_heap(&mem, HEAP_START, HEAP_START + initial);
        Self { mem, hdr }
    }

    fn heap(&self) -> crate::heap::Heap<'_, HeapWords> {
        crate::heap::Heap::over(&self.mem, &self.hdr)
    }

    /// Allocates `len` payload bytes held by model thread `p`; `None` if there is no room.
    pub fn alloc(&self, len: u64, p: u32) -> Option<u64> {
        self.heap().alloc(len, crate::heap::held(p, 0)).ok()
    }

    /// Frees a block the caller holds; whether the heap took it.
    pub fn free(&self, off: u64) -> bool {
        self.heap().free(off).is_ok()
    }

    /// Hands block `off` to position `pos` of queue 1 (the producer's step before publishing).
    pub fn hand_over(&self, off: u64, pos: u64) {
        self.heap().hand_over(off, 1, pos).expect("hand over");
    }

    /// A consumer (model thread `p`) takes block `off` of `len` bytes handed to queue 1.
    pub fn take(&self, off: u64, len: u64, p: u32) -> bool {
        self.heap()
            .take(off, len, 1, crate::heap::held(p, 0))
            .is_ok()
    }

    /// Recovery gives position `pos` of queue 1 up (tombstoned) while its slot names `off`.
    pub fn abandon(&self, off: u64, pos: u64) {
        self.heap().abandon(off, 1, pos, false)
    }

    /// Model thread `p` allocates `len` bytes and dies in the middle: holding the heap lock,
    /// after writing the split-off remainder's header and before shrinking the block. Call as the
    /// thread's last action.
    pub fn alloc_and_die(&self, len: u64, p: u32) {
        crate::fault::die_at(Some("heap-split"));
        let r = self.heap().alloc(len, crate::heap::held(p, 0));
        crate::fault::die_at(None);
        assert_eq!(
            r,
            Err(crate::heap::HeapError::Died),
            "did not reach the crash point"
        );
        self.die(p);
    }

    /// Model thread `p` dies, holding whatever it holds. Call as its last action.
    pub fn die(&self, p: u32) {
        // SYNC: Release pairs with the Acquire load in `holder_gone`.
        self.mem.gone[p as usize].store(1, Ordering::Release);
        crate::sync::owner::die()
    }

    /// `(bytes in use, blocks in use)` after a sweep (which frees gone holders' blocks).
    pub fn stats(&self) -> (u64, u64) {
        let s = self.heap().stats().expect("heap stats");
        (s.in_use, s.blocks)
    }

    /// Checks every invariant of the heap (call with no other thread running); returns `(bytes
    /// in use, blocks in use)`.
    pub fn check(&self) -> Result<(u64, u64), String> {
        self.heap().check()
    }
}

/// An unbounded queue of `u64` values: the crate's chain protocol (`crate::chain::Chain`: seal,
/// install, tail CAS, retire, hazard announcements, link freeing) over links made of loom
/// objects, one slot each, so that every second put moves to a new link. A freed link is
/// poisoned: any later touch of it, or one that a free does not happen after, fails the model
/// (an assertion, or loom's data-race report).
pub struct ModelChain {
    chain: crate::chain::Chain<ModelLinks>,
    /// The liveness source of [`ModelChain::tracking_producers`].
    procs: Option<std::sync::Arc<ModelProcesses>>,
}

/// Links a model chain can have alive at once.
const MODEL_TABLE: usize = 2;

struct ModelLinks {
    ends: crate::chain::ChainEnds,
    table: Vec<crate::sync::AtomicU64>,
    /// Hazard word of model thread `i` (threads are numbered from 1 by `owner::me`).
    hazards: Vec<crate::sync::AtomicU64>,
    /// Every link ever allocated; block offset `i + 1` is `links[i]`. Only the allocating thread
    /// pushes, and other threads learn an offset only through the link table, so this lock
    /// (outside the model) orders nothing the model relies on.
    links: std::sync::Mutex<Vec<std::sync::Arc<ModelLink>>>,
}

struct ModelLink {
    hdr: crate::chain::LinkHeader,
    ring: LoomRing,
    /// `false` once freed; every touch reads it, the free writes it.
    alive: crate::sync::UnsafeCell<bool>,
}

impl ModelLink {
    fn check(&self) {
        // SAFETY: loom checks that no access races with the free's write.
        self.alive
            .with(|a| assert!(unsafe { *a }, "a freed link was touched"));
    }
}

/// A link's ring, checked for use after free on every touch.
#[derive(Clone)]
struct LinkRing(std::sync::Arc<ModelLink>);

// SAFETY: delegates to the link's LoomRing (stamps and payloads are separate loom objects).
unsafe impl crate::ring::RingMem for LinkRing {
    fn header(&self) -> &crate::layout::RingHeader {
        self.0.check();
        self.0.ring.header()
    }
    fn capacity(&self) -> u64 {
        self.0.ring.capacity()
    }
    fn stamp(&self, idx: u64) -> &crate::sync::AtomicU64 {
        self.0.check();
        self.0.ring.stamp(idx)
    }
    unsafe fn with_payload_mut<R>(&self, idx: u64, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.0.check();
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.ring.with_payload_mut(idx, f) }
    }
    unsafe fn with_payload<R>(&self, idx: u64, f: impl FnOnce(&[u8]) -> R) -> R {
        self.0.check();
        // SAFETY: as above.
        unsafe { self.0.ring.with_payload(idx, f) }
    }
}

impl ModelLinks {
    fn link(&self, off: u64) -> Option<std::sync::Arc<ModelLink>> {
        let links = self.links.lock().unwrap();
        off.checked_sub(1)
            .and_then(|i| links.get(i as usize))
            .cloned()
    }
}

impl crate::chain::ChainMem for ModelLinks {
    type Ring = LinkRing;

    fn ends(&self) -> &crate::chain::ChainEnds {
        &self.ends
    }
    fn table(&self) -> &[crate::sync::AtomicU64] {
        &self.table
    }
    fn layout(&self) -> crate::layout::SlotLayout {
        crate::layout::SlotLayout::for_pod(8, 8).expect("u64 slots")
    }
    fn obj(&self) -> u32 {
        1
    }
    fn hazard(&self) -> Option<&crate::sync::AtomicU64> {
        self.hazards.get(crate::sync::owner::me() as usize)
    }
    fn hazard_announced(&self, hazard: u64) -> bool {
        // SYNC: Acquire, as `Inner::hazard_announced`.
        self.hazards
            .iter()
            .any(|w| w.load(Ordering::Acquire) == hazard)
    }
    fn new_link(
        &self,
        index: u64,
        base: u64,
        cap: u64,
        seen: u32,
    ) -> Result<u64, crate::heap::HeapError> {
        let link = ModelLink {
            hdr: crate::chain::LinkHeader::new_heap(index, base, cap, 1),
            ring: LoomRing::new_at(base, cap, 8),
            alive: crate::sync::UnsafeCell::new(true),
        };
        crate::ring::RingMem::header(&link.ring)
            .counters
            .producers
            .store(seen, Ordering::Relaxed);
        let mut links = self.links.lock().unwrap();
        links.push(std::sync::Arc::new(link));
        Ok(links.len() as u64)
    }
    fn view(&self, off: u64) -> Result<(&crate::chain::LinkHeader, LinkRing), crate::ring::Fail> {
        let link = self.link(off).ok_or(crate::ring::Fail::Corrupt)?;
        link.check();
        // SAFETY: links are never removed from `links` (a freed one is only poisoned) and
        // `self` owns the vector, so the header lives as long as `self`.
        let hdr = unsafe { &*(&link.hdr as *const crate::chain::LinkHeader) };
        Ok((hdr, LinkRing(link)))
    }
    fn installed(&self, _off: u64) {}
    fn discard(&self, off: u64) {
        if let Some(l) = self.link(off) {
            // SAFETY: loom checks that no touch of the link races with this write.
            l.alive.with_mut(|a| unsafe { *a = false });
        }
    }
    fn release(&self, slot: &crate::sync::AtomicU64, e: u64) {
        // SYNC: AcqRel, as the heap's `free_link`: one freer clears the entry.
        if slot
            .compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.discard(crate::chain::entry_off(e));
        }
    }
}

impl ModelChain {
    /// An empty unbounded queue for up to `threads` model threads (the creating one included).
    pub fn new(threads: usize) -> Self {
        Self::with(threads, None)
    }

    /// As [`new`](Self::new), whose links know `procs` live processes, of which only those that
    /// called [`note_producer`](Self::note_producer) count as producers (as a segment's unbounded
    /// queue counts the participants whose `producer_of` bit names it).
    pub fn tracking_producers(threads: usize, procs: usize) -> Self {
        Self::with(threads, Some(ModelProcesses::new(procs, false, true)))
    }

    fn with(threads: usize, procs: Option<std::sync::Arc<ModelProcesses>>) -> Self {
        crate::sync::owner::init_dead_set();
        let mem = ModelLinks {
            ends: crate::chain::ChainEnds::new_heap(),
            table: (0..MODEL_TABLE)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            hazards: (0..=threads)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            links: std::sync::Mutex::new(Vec::new()),
        };
        let live = procs.clone().map(|p| p as crate::ring::LiveArc);
        let chain = crate::chain::Chain::over(mem, live);
        chain.install_first().expect("link 0");
        Self { chain, procs }
    }

    /// Process `p` notes itself a producer of the tail link, as a put to an unbounded queue
    /// does (`RingHandle::register_producer`).
    pub fn note_producer(&self, p: usize) {
        let procs = self.procs.as_ref().expect("a chain tracking producers");
        self.chain.with_tail(|r| procs.note_producer(p, &r.mem));
    }

    /// Whether a getter on the tail link would be told `Disconnected` now.
    pub fn disconnected(&self) -> bool {
        let mut d = false;
        self.chain.with_tail(|r| d = r.disconnected());
        d
    }

    /// Puts `v` (never waits); `WouldBlock` when no link can be installed (the table is full of
    /// links a consumer has not drained), `Closed` once closed.
    pub fn put(&self, v: u64) -> Result<(), Outcome> {
        self.chain
            .put(|_| None, 1, |_, b| b[..8].copy_from_slice(&v.to_le_bytes()))
            .map(|_| ())
            .map_err(Outcome::from)
    }

    /// Gets one value without waiting.
    pub fn try_get(&self) -> Result<u64, Outcome> {
        let mut out = 0;
        self.chain
            .get(None, 1, None, |_, b| {
                out = u64::from_le_bytes(b[..8].try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }

    /// Closes the queue; whether this call closed it.
    pub fn close(&self) -> bool {
        self.chain.close()
    }

    /// Values in the queue (a snapshot).
    pub fn len(&self) -> u64 {
        self.chain.len()
    }

    /// Whether the queue holds nothing (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (links freed, head link, links allocated): once drained and quiet, every link behind the
    /// head is freed.
    pub fn links(&self) -> (u64, u64, u64) {
        let allocated = self.chain.mem().links.lock().unwrap().len() as u64;
        (self.chain.freed(), self.chain.head(), allocated)
    }
}

/// A shared dictionary (`crate::objects::dict`, the shipping code) of `u64` keys and values over
/// a model heap that never grows (so no sweep runs: the models check the dictionary's protocol
/// under concurrency; its recovery from a killed writer is checked with real SIGKILLs in
/// `tests/crash.rs`).
pub struct ModelDict {
    heap: ModelHeap,
    hdr: crate::objects::dict::DictHeader,
}

impl ModelDict {
    /// An empty dictionary over a 4 KiB heap, for `threads` model threads.
    pub fn new(threads: usize) -> Self {
        crate::sync::owner::init_dead_set();
        Self {
            heap: ModelHeap::new(4096, 4096, threads),
            hdr: crate::objects::dict::DictHeader::new_heap(),
        }
    }

    fn dict(&self, p: u32) -> crate::objects::dict::DictRef<'_, HeapWords> {
        crate::objects::dict::DictRef {
            hdr: &self.hdr,
            heap: self.heap.heap(),
            obj: 1,
            me: crate::heap::held(p, 0),
        }
    }

    fn num(b: &[u8]) -> u64 {
        u64::from_le_bytes(b.try_into().expect("8-byte values"))
    }

    /// Sets `key` to `value` as model thread `p`; the value it replaced.
    pub fn insert(&self, p: u32, key: u64, value: u64) -> Option<u64> {
        let mut old = Vec::new();
        self.dict(p)
            .insert(&key.to_le_bytes(), &value.to_le_bytes(), &mut old)
            .expect("insert")
            .then(|| Self::num(&old))
    }

    /// Removes `key` as model thread `p`; its value.
    pub fn remove(&self, p: u32, key: u64) -> Option<u64> {
        let mut old = Vec::new();
        self.dict(p)
            .remove(&key.to_le_bytes(), &mut old)
            .expect("remove")
            .then(|| Self::num(&old))
    }

    /// The value of `key`.
    pub fn get(&self, key: u64) -> Option<u64> {
        let mut out = Vec::new();
        self.dict(0)
            .get(&key.to_le_bytes(), &mut out)
            .expect("get")
            .then(|| Self::num(&out))
    }

    /// Adds `d` to `key`'s value (0 if absent) in one update, as model thread `p`.
    pub fn add(&self, p: u32, key: u64, d: u64) -> u64 {
        let new = self
            .dict(p)
            .update(&key.to_le_bytes(), |v| {
                Some((v.map_or(0, Self::num) + d).to_le_bytes().to_vec())
            })
            .expect("update")
            .expect("a value");
        Self::num(&new)
    }

    /// Entries.
    pub fn len(&self) -> u64 {
        self.dict(0).len().expect("len")
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap's invariants, and its (bytes, blocks) in use: a table and one block per entry
    /// once the writers are done.
    pub fn check(&self) -> Result<(u64, u64), String> {
        self.heap.check()
    }
}

/// A growable list (`crate::objects::bytes_list`, the shipping code) of `u64` items over a model
/// heap that never grows (as [`ModelDict`]).
pub struct ModelSharedVec {
    heap: ModelHeap,
    hdr: crate::objects::bytes_list::SeqHeader,
}

impl ModelSharedVec {
    /// An empty list over a 4 KiB heap, for `threads` model threads.
    pub fn new(threads: usize) -> Self {
        crate::sync::owner::init_dead_set();
        Self {
            heap: ModelHeap::new(4096, 4096, threads),
            hdr: crate::objects::bytes_list::SeqHeader::new_heap(),
        }
    }

    fn list(&self, p: u32) -> crate::objects::bytes_list::SeqRef<'_, HeapWords> {
        crate::objects::bytes_list::SeqRef {
            hdr: &self.hdr,
            heap: self.heap.heap(),
            obj: 1,
            me: crate::heap::held(p, 0),
        }
    }

    /// Appends `v` as model thread `p`; the new length.
    pub fn push(&self, p: u32, v: u64) -> u64 {
        self.list(p).extend([&v.to_le_bytes()[..]]).expect("push")
    }

    /// Removes the last item as model thread `p`.
    pub fn pop(&self, p: u32) -> Option<u64> {
        let mut out = Vec::new();
        match self.list(p).pop(None, &mut out).expect("pop") {
            Ok(()) => Some(ModelDict::num(&out)),
            Err(_) => None,
        }
    }

    /// Inserts `v` before item `i` as model thread `p`.
    pub fn insert(&self, p: u32, i: u64, v: u64) {
        self.list(p).insert(i, &v.to_le_bytes()).expect("insert")
    }

    /// Every item.
    pub fn items(&self) -> Vec<u64> {
        let mut out = Vec::new();
        self.list(0)
            .slice(0, u64::MAX, |b| out.push(ModelDict::num(b)))
            .expect("slice");
        out
    }

    /// The heap's invariants, and its (bytes, blocks) in use.
    pub fn check(&self) -> Result<(u64, u64), String> {
        self.heap.check()
    }
}
