//! The bounded MPMC ring: per-slot stamps (Vyukov-style), 64-bit positions, exact capacity.
//!
//! This module holds the whole algorithm and nothing else (`claim.rs` the claim paths, `wait.rs`
//! the waits, `recovery.rs` what is done for dead peers, `mem.rs` where the slots live): no syscalls except through
//! [`crate::sync::futex`], no allocation, no knowledge of segments. It runs over any [`RingMem`]:
//! slots inside an `mmap`ed segment, an aligned heap buffer (unit tests, miri, fuzzing) or loom
//! objects (model checking).
//!
//! # Slot protocol
//!
//! Positions grow forever (`u64`, at most 2^61); position `p` lives in slot `p % capacity`. A slot's
//! stamp is `p << 2 | state` (see [`crate::layout::STAMP_FREE`]):
//!
//! * a producer that reads tail `p` and stamp `p<<2|FREE` claims `p` with a CAS `tail: p → p+1`,
//!   writes the payload, then publishes with `stamp = p<<2|FULL` (Release);
//! * a consumer that reads head `p` and stamp `p<<2|FULL` claims `p` with a CAS `head: p → p+1`,
//!   reads the payload, then releases with `stamp = (p+capacity)<<2|FREE` (Release);
//! * a stamp of `p<<2|TOMB` is a position given up by a dead producer: its consumer claims it like a
//!   message and releases the slot without delivering anything.
//!
//! A batch claims `k` consecutive positions with one CAS after checking all `k` stamps: a stamp of a
//! position not yet claimed can only be changed by the one who claims it, and the CAS succeeds only
//! if nobody claimed any of them in between, so the check stays true.
//!
//! # Wait protocol
//!
//! See [`WaitCell`]: waiters register (`waiters += 1`), issue a SeqCst fence, read the epoch, retry,
//! then `futex_wait(epoch, seen)`. Notifiers publish, issue a SeqCst fence, and only if `waiters > 0`
//! bump the epoch and `futex_wake`. The two fences make this a Dekker handshake: either the waiter's
//! retry sees the publish, or the notifier sees the registration.

use crate::layout::{
    ClaimRecord, RingHeader, Side, Stamp, WaitCell, CLOSED_BIT, MAX_POS, PRODUCER_SEEN, STAMP_FULL,
};
use crate::sync::backoff::Backoff;
use crate::sync::futex::{AlsoWake, Wake, WakeAlso};
use crate::sync::{fence, AtomicU64, Ordering};
use std::time::Instant;

/// Memory a ring runs over.
///
/// # Safety
///
/// Implementors guarantee that `header()` and every `stamp(i)` / payload for `i < capacity()` stay
/// valid for the lifetime of `self`, that distinct slots never overlap, and that payloads do not
/// overlap the header or any stamp.
pub(crate) unsafe trait RingMem {
    /// The control block.
    fn header(&self) -> &RingHeader;
    /// Number of slots (≥ 1).
    fn capacity(&self) -> u64;
    /// The stamp word of slot `idx` (`idx < capacity`).
    fn stamp(&self, idx: u64) -> &AtomicU64;
    /// Runs `f` on the payload bytes of slot `idx`, mutably.
    ///
    /// # Safety
    ///
    /// The caller holds the claim on the slot's current position (it won the CAS that claims it and
    /// has not yet published or released it), so no other thread or process touches these bytes.
    unsafe fn with_payload_mut<R>(&self, idx: u64, f: impl FnOnce(&mut [u8]) -> R) -> R;
    /// Runs `f` on the payload bytes of slot `idx`.
    ///
    /// # Safety
    ///
    /// As for [`RingMem::with_payload_mut`].
    unsafe fn with_payload<R>(&self, idx: u64, f: impl FnOnce(&[u8]) -> R) -> R;
}

/// Ordering of the publish store. Release; the deliberately broken loom build weakens it.
const PUBLISH: Ordering = crate::sync::unless_broken(Ordering::Release);

/// Who holds the claim on a position, as far as the participant records tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A live participant's record names the position: it may be slow, never recover it.
    Live,
    /// Only records of dead processes name it: safe to recover.
    Dead,
    /// No record names it (no participant record was available): cannot be attributed.
    Unknown,
}

/// The attribution scan: who, among `records` (each with its claim record, `claim`, and whether
/// its owner is alive, `alive`), claimed position `pos` of queue `obj` for a put (`Side::Put`) or a get. A live
/// claimant anywhere wins (it may be slow, never recover its claim); otherwise a dead one makes
/// the claim dead; no record naming it leaves it unknown. The owner's liveness is asked only of
/// records that name the position. The one scan the segment's participant table and the loom
/// models both use.
pub(crate) fn attribute<'a, T: 'a>(
    records: impl Iterator<Item = &'a T>,
    claim: impl Fn(&'a T) -> &'a ClaimRecord,
    alive: impl Fn(&'a T) -> bool,
    obj: u32,
    pos: u64,
    side: Side,
) -> Claim {
    let mut found = Claim::Unknown;
    for rec in records {
        let (o, first, len) = claim(rec).side(side);
        let first = first.load(Ordering::Relaxed);
        if o.load(Ordering::Relaxed) != obj
            || first > pos
            || pos - first >= len.load(Ordering::Relaxed)
        {
            continue;
        }
        if alive(rec) {
            return Claim::Live;
        }
        found = Claim::Dead;
    }
    found
}

/// Answers "who claimed this position?" from the participant records (segment side).
pub(crate) trait Liveness: std::fmt::Debug {
    /// The claimant of position `pos` for a put (`Side::Put`) or a get.
    fn claimant(&self, pos: u64, side: Side) -> Claim;
    /// How many registered producers of this ring (threads whose record says they have put
    /// here) are alive.
    fn live_producers(&self) -> u32;
    /// How many participant records of the segment belong to live processes.
    fn live_participants(&self) -> u32;
    /// Takes back the registrations that dead processes left on this ring's `space` (`Side::Put`) or
    /// `items` wait cell: clears each such record's `waiting` word with one CAS (so each is
    /// taken back once) and returns how many it cleared. The caller lowers the cell's count by
    /// that many.
    fn repair_waiters(&self, side: Side) -> u32;
    /// Arms the death watch for the participants this ring's sleepers wait on: returns the
    /// words that change when one of them dies or a new one joins (sleep on them beside the
    /// wait cell), or `None` if no such watch covers them all (then sleep in short slices).
    /// Arm before the last recovery pass ahead of a sleep: a death after arming wakes the
    /// sleeper, a death before it is seen by that pass.
    fn watch(&self) -> Option<[crate::sync::futex::AlsoWake<'_>; 3]> {
        None
    }
    /// Whether [`Liveness::abandoned`] wants the payloads of positions recovery gives up on
    /// (byte queues whose long messages live in the heap).
    fn wants_abandoned(&self) -> bool {
        false
    }
    /// Recovery just gave up position `pos` for good: tombstoned a dead producer's claim
    /// (`Side::Put`), or released a message a dead consumer held (`Side::Get`, counted lost).
    /// `head` is the start of the slot's payload, copied while the dead claim still held the
    /// slot.
    fn abandoned(&self, _pos: u64, _side: Side, _head: &[u8; ABANDONED_HEAD]) {}
    /// Recovery just tombstoned position `pos` (`Side::Put`) or released the slot a dead
    /// consumer held (`Side::Get`; `lost`: it held a message): for the counters and the log.
    fn recovered(&self, _pos: u64, _side: Side, _lost: bool) {}
}

/// Bytes of a slot payload that [`Liveness::abandoned`] sees.
pub(crate) const ABANDONED_HEAD: usize = 24;

/// How long a blocked waiter sleeps before it checks whether it waits for a dead process, when
/// the death watch does not cover the peers (see `mapping::watch`).
const RECOVERY_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// The same when the death watch covers every peer that can be judged dead: the kernel wakes the
/// sleeper when one of them dies, and a record take or release wakes it too, so this slice is
/// only a backstop for a notice nobody could give (an idle blocked waiter then wakes once every
/// five seconds).
const WATCHED_SLICE: std::time::Duration = std::time::Duration::from_secs(5);

/// Non-blocking outcome when nothing could be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryError {
    /// Put: no free slot. Get: no published message.
    WouldBlock,
    /// The ring is closed (get: closed *and* drained).
    Closed,
    /// A stamp or position word holds a value the protocol can never produce (a forged or
    /// corrupted segment). Reported instead of looping forever.
    Corrupt,
    /// Nothing moved, but not because the ring is empty (full): the position at the head (the
    /// slot at the tail) is claimed by another thread that has not finished with it, a producer
    /// between its claim and its publish (a consumer between its claim and its release). Only the
    /// raw attempts return it; [`Ring::put_now`] / [`Ring::get_now`] and the blocking calls wait
    /// it out.
    Pending,
}

/// Blocking outcome when nothing could be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitError {
    Closed,
    Timeout,
    Corrupt,
    /// Get only: the ring is empty, producers registered, and none of them is alive.
    Disconnected,
}

/// Why a raw operation moved nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    WouldBlock,
    Closed,
    Timeout,
    Corrupt,
    Disconnected,
    /// An unbounded queue needed a new link and its segment is at its `max_size` (or
    /// /dev/shm is full).
    NoSpace,
}

impl From<TryError> for Fail {
    fn from(e: TryError) -> Self {
        match e {
            // `put_now` / `get_now` never return `Pending`; a raw attempt's is "nothing moved".
            TryError::WouldBlock | TryError::Pending => Fail::WouldBlock,
            TryError::Closed => Fail::Closed,
            TryError::Corrupt => Fail::Corrupt,
        }
    }
}

impl From<WaitError> for Fail {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Timeout => Fail::Timeout,
            WaitError::Closed => Fail::Closed,
            WaitError::Corrupt => Fail::Corrupt,
            WaitError::Disconnected => Fail::Disconnected,
        }
    }
}

/// What a put closure is filling: the `k`-th position of its batch, which is ring position `pos`
/// (a long byte message names its position in its heap block's owner word, see `crate::heap`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Filling {
    /// Index in the batch (0-based).
    pub(crate) k: usize,
    /// Ring position.
    pub(crate) pos: u64,
}

/// Who is operating, for the participant record (crash attribution); `None` when the process has no
/// record (table full, or a heap ring).
#[derive(Clone, Copy)]
pub(crate) struct Claimant<'a> {
    pub(crate) record: &'a ClaimRecord,
    /// Directory index + 1 of this ring.
    pub(crate) obj: u32,
}

impl WaitCell {
    /// Notifier side: called after publishing (or releasing) `n` slots.
    #[inline]
    pub(crate) fn notify(&self, n: u32) {
        // SYNC: Dekker fence, pairs with the SeqCst fence in `register`. Either the waiter's retry
        // (after its fence) sees what we published before this fence, or our load below sees its
        // registration; SeqCst on the individual accesses alone would not order our publish (a
        // Release store) before this load.
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.epoch.bump_and_wake(n);
        }
    }

    /// Wakes every sleeper (close).
    pub(crate) fn notify_all(&self) {
        self.notify(u32::MAX);
    }

    /// Waiter side: registers and returns the epoch to sleep on. The caller must retry its
    /// operation after this and before sleeping, then call `unregister` once done.
    #[inline]
    pub(crate) fn register(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        // SYNC: Dekker fence, pairs with the SeqCst fence in `notify` / `after_put` / `after_get`.
        fence(Ordering::SeqCst);
        // SYNC: Acquire pairs with the Release bump in `Futex::bump_and_wake`: reading a bumped
        // epoch means the retry that follows sees the publish that preceded the bump.
        self.epoch.word().load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn unregister(&self) {
        self.take_back(1);
    }

    /// Lowers the waiter count by `n` registrations (a waiter's own, or dead waiters' taken back
    /// for them). Never below 0: a forged segment (or a bug) must not wrap the count to "someone
    /// always waits".
    ///
    /// SYNC: Release pairs with no Acquire (every load of the count is Relaxed). It keeps the
    /// caller's earlier stores, the note cleared in `Registered::drop`, before the decrement in
    /// the compiled code, for a process killed between the two: a kill after the decrement and
    /// before the clear would leave the note set with the count already lowered, and a
    /// repairer would take the registration back a second time.
    #[inline]
    pub(crate) fn take_back(&self, n: u32) {
        let _ = self
            .waiters
            .fetch_update(Ordering::Release, Ordering::Relaxed, |w| w.checked_sub(n));
    }

    /// [`register`](Self::register), undone when the returned guard drops: the retry between
    /// registering and sleeping may run a user closure (`put_with` / `get_with`), and one that
    /// panics must not leave the shared waiter count raised for good (every later publish would
    /// pay a `futex_wake`). With a claim record, the registration is also noted in it
    /// (`ClaimRecord::waiting`), so that if this process dies asleep, a survivor can take it
    /// back (`Ring::repair_waiters`).
    #[inline]
    pub(crate) fn register_guarded<'a>(
        &'a self,
        who: Option<Claimant<'a>>,
        side: Side,
    ) -> (u32, Registered<'a>) {
        let epoch = self.register();
        let noted = who.map(|c| {
            // After the raise (the SeqCst fence in `register` keeps it there), so a nonzero note
            // always stands for a raise not taken back. Only this thread writes the low half of
            // its record's word; the high half (the owner count) is kept.
            let w = &c.record.waiting;
            let owners = w.load(Ordering::Relaxed) & !NOTE_MASK;
            w.store(
                owners | u64::from(c.obj << 1 | side.bit()),
                Ordering::Relaxed,
            );
            c.record
        });
        (epoch, Registered(self, noted))
    }
}

/// A waiter's registration on a [`WaitCell`] (and its note in the waiter's claim record), undone
/// on drop.
pub(crate) struct Registered<'a>(&'a WaitCell, Option<&'a ClaimRecord>);

impl Drop for Registered<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(r) = self.1 {
            // Before the count drops (the Release in `unregister` keeps it there): a dead waiter
            // whose note is cleared took its raise back.
            let owners = r.waiting.load(Ordering::Relaxed) & !NOTE_MASK;
            r.waiting.store(owners, Ordering::Relaxed);
        }
        self.0.unregister();
    }
}

/// The note half of `ClaimRecord::waiting` (the other half counts the record's owners).
pub(crate) const NOTE_MASK: u64 = u32::MAX as u64;

/// After how many wake-ups that woke nobody a ring looks for registrations of dead waiters.
const REPAIR_EVERY: u32 = 256;

/// Settles positions `pos..end` that this thread claimed, if the user closure it was running
/// panicked: a put's unpublished positions become tombstones (consumers skip them), a get's
/// unreleased slots are released and their messages counted lost, and the claim record (if any)
/// stops naming them, as after a settled claim. Forgotten on success.
struct ClaimGuard<'a, 'r, M: RingMem, L: LiveRef> {
    ring: &'a Ring<M, L>,
    pos: u64,
    end: u64,
    side: Side,
    record: Option<&'r ClaimRecord>,
}

impl<M: RingMem, L: LiveRef> Drop for ClaimGuard<'_, '_, M, L> {
    fn drop(&mut self) {
        let (ring, n) = (self.ring, self.end - self.pos);
        let cap = ring.capacity();
        for p in self.pos..self.end {
            let stamp = if self.side == Side::Put {
                Stamp::tomb(p)
            } else {
                Stamp::free(p + cap)
            };
            // SYNC: Release, as the publish/release stores it replaces.
            ring.mem.stamp(p % cap).store(stamp, Ordering::Release);
        }
        if let Some(r) = self.record {
            // SYNC: Release fence, as after a settled claim (see `put_attempt`).
            fence(Ordering::Release);
            r.side(self.side).0.store(0, Ordering::Relaxed);
        }
        let counters = &ring.hdr().counters;
        if self.side == Side::Put {
            // SYNC: Release pairs with the Acquire load in `counted_puts`: a joiner that counts
            // these tombstones also sees the `tail` that includes their positions (our claim).
            counters.tombstones.fetch_add(n, Ordering::Release);
            ring.tombstoned();
            ring.after_put(self.end, n);
        } else {
            counters.lost.fetch_add(n, Ordering::Relaxed);
            ring.after_get(self.end, n);
        }
    }
}

/// Counts one claim by a thread without a participant record as in flight
/// ([`RingCounters::unattributed`](crate::layout::RingCounters)) from before its claim CAS until it
/// is dropped, after the claim is settled (or the CAS lost). Declared before the [`ClaimGuard`] it
/// covers, so that on a panic the guard settles the claim first.
struct Unattributed<'a>(Option<&'a crate::sync::AtomicU32>);

impl<'a> Unattributed<'a> {
    /// Raises the count if `who` is `None` on a ring that recovers claims (a heap ring has no
    /// liveness source and never recovers, so it counts nothing).
    #[inline]
    fn enter<M: RingMem, L: LiveRef>(ring: &'a Ring<M, L>, who: Option<Claimant<'_>>) -> Self {
        if who.is_some() || ring.live.is_none() {
            return Self(None);
        }
        let n = &ring.hdr().counters.unattributed;
        // Relaxed: the claim CAS that follows is Release, and a recoverer reads this count only
        // after an Acquire load of the position that CAS wrote, so the raise happens before it.
        n.fetch_add(1, Ordering::Relaxed);
        Self(Some(n))
    }
}

impl Drop for Unattributed<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            // SYNC: Release orders the settling stores (publish / release / tombstone) before the
            // count drops; pairs with the Acquire load in `Ring::recover`, whose stamp CAS then
            // cannot read the unsettled value.
            n.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Counters of one ring (see `QueueStats`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingStats {
    pub(crate) waiting_getters: u32,
    pub(crate) waiting_putters: u32,
    pub(crate) tombstones: u64,
    pub(crate) lost: u64,
    pub(crate) unattributed_claims: u32,
    /// Positions claimed by producers so far (the tail without its closed bit).
    pub(crate) puts: u64,
    /// Positions claimed by consumers so far (the head).
    pub(crate) gets: u64,
}

/// A wait cell in the same mapping as a ring (see [`Ring::tomb_cell`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CellRef(core::ptr::NonNull<WaitCell>);

impl CellRef {
    /// # Safety
    /// `cell` must stay valid for as long as any ring holding this reference: in practice it lies
    /// in the same mapping as the ring, which the ring's owner keeps mapped.
    pub(crate) unsafe fn new(cell: &WaitCell) -> Self {
        Self(core::ptr::NonNull::from(cell))
    }

    fn get(&self) -> &WaitCell {
        // SAFETY: valid for the ring's lifetime (the contract of `new`); a WaitCell is atomics
        // only, shared by design.
        unsafe { self.0.as_ref() }
    }
}

// SAFETY: the cell is atomics in shared memory, meant to be used from any thread and process.
unsafe impl Send for CellRef {}
// SAFETY: as above.
unsafe impl Sync for CellRef {}

/// Where a ring asks about its peers' liveness: the shared source itself for a ring that owns
/// its view (a bounded queue's), or a borrow of it for a view made per operation (a link of an
/// unbounded queue, borrowed from its chain: cloning the `Arc` there cost two locked
/// instructions per operation, about 15 % of the Python default queue's throughput, see
/// docs/benchmarks.md).
pub(crate) trait LiveRef: core::ops::Deref<Target = dyn Liveness + Send + Sync> {}

impl<T: core::ops::Deref<Target = dyn Liveness + Send + Sync>> LiveRef for T {}

/// The owned form of [`LiveRef`].
pub(crate) type LiveArc = std::sync::Arc<dyn Liveness + Send + Sync>;

/// The ring algorithm over some memory.
#[derive(Debug)]
pub(crate) struct Ring<M, L = LiveArc> {
    pub(crate) mem: M,
    /// Spin and yield before sleeping (the adaptive wait); `false` sleeps on the futex at once.
    pub(crate) spin: bool,
    /// Where to ask whether a claimant is dead (the segment's participant table); `None` for heap
    /// rings, which then never recover anything.
    pub(crate) live: Option<L>,
    /// Wake-ups that woke nobody, process-local: a waiter count left raised by a process that
    /// died asleep makes every publish call `futex_wake` for nobody, and every
    /// [`REPAIR_EVERY`]-th such call looks for it (`Ring::repair_waiters`).
    woke_nobody: crate::sync::local::AtomicU32,
    /// A wait cell to notify whenever a position is tombstoned: a joinable queue's joiners, whose
    /// count of unfinished tasks a tombstone lowers without any `task_done` (`None` otherwise).
    pub(crate) tomb_cell: Option<CellRef>,
    /// The death watch's `(members + leaves) << 32 | deaths` epochs when a live producer was
    /// last seen (see `disconnected_watched`), process-local.
    live_seen_at: crate::sync::local::AtomicU64,
}

impl<M: RingMem> Ring<M> {
    /// A ring over `mem` that owns its liveness source (none yet).
    pub(crate) fn new(mem: M) -> Self {
        Self::view(mem)
    }
}

impl<M: RingMem, L: LiveRef> Ring<M, L> {
    /// The disconnect check's cached verdict (see `Ring::disconnected`), for a ring view that
    /// is made anew per operation (a link of an unbounded queue) to carry it from one view to
    /// the next.
    pub(crate) fn seen_at(&self) -> u64 {
        self.live_seen_at.load(Ordering::Relaxed)
    }

    /// Sets the cached verdict (see [`Ring::seen_at`]).
    pub(crate) fn set_seen_at(&self, key: u64) {
        self.live_seen_at.store(key, Ordering::Relaxed)
    }

    /// A ring over `mem` with any kind of liveness source (none yet); [`Ring::new`] for the
    /// owned kind.
    pub(crate) fn view(mem: M) -> Self {
        Self {
            mem,
            spin: true,
            live: None,
            woke_nobody: crate::sync::local::AtomicU32::new(0),
            live_seen_at: crate::sync::local::AtomicU64::new(u64::MAX),
            tomb_cell: None,
        }
    }

    #[inline]
    fn hdr(&self) -> &RingHeader {
        self.mem.header()
    }

    /// Number of slots.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.mem.capacity()
    }

    /// Puts that count as tasks for a joinable queue: positions ever claimed by producers minus
    /// tombstones (claims given up by dead producers or panicking closures). Reads the tombstone
    /// count first and `tail` second; both only grow (see `objects/joinable.rs`).
    pub(crate) fn counted_puts(&self) -> u64 {
        let hdr = self.hdr();
        // SYNC: Acquire pairs with the Release increments of the tombstone count (the claim
        // guard's, recovery's): the claim of every position counted as a tombstone happens
        // before the `tail` load below, so `tail` includes it. The `tail` load's Acquire pairs
        // with the claim CASes; the values are counts, read in this order.
        let tombstones = hdr.counters.tombstones.load(Ordering::Acquire);
        let tail = hdr.tail.load(Ordering::Acquire) & !CLOSED_BIT;
        tail.saturating_sub(tombstones)
    }

    /// Messages claimed for put and not yet claimed for get, clamped to `0..=capacity`.
    ///
    /// Linearizable: the tail is read, then the head, then the tail again, until the tail did
    /// not move across the head's read. Both only grow, so that tail was the tail at the instant
    /// the head was read, and the difference is the length the queue had then. (Reading each
    /// once, gets and puts completing between the two loads could make it a length the queue
    /// never had.) Producers that never pause for 64 rounds get the last difference, a snapshot.
    pub(crate) fn len(&self) -> u64 {
        let h = self.hdr();
        // SYNC: Acquire on the `tail` loads pairs with the producers' claim CASes, and on the
        // `head` load with the consumers': a `head` read after a `tail` that a claim wrote is
        // at least what that claimant had seen, and a second `tail` read after a `head` that a
        // consumer wrote is at least the tail that consumer saw (it claimed only published
        // positions). That is what makes the pair a length the queue had.
        let mut tail = h.tail.load(Ordering::Acquire) & !CLOSED_BIT;
        let mut head = 0;
        for _ in 0..64 {
            head = h.head.load(Ordering::Acquire);
            let again = h.tail.load(Ordering::Acquire) & !CLOSED_BIT;
            if again == tail {
                break;
            }
            tail = again;
        }
        tail.saturating_sub(head).min(self.capacity())
    }

    /// A snapshot of the counters for `stats()`.
    pub(crate) fn stats(&self) -> RingStats {
        let h = self.hdr();
        RingStats {
            waiting_getters: h.items.waiters.load(Ordering::Relaxed),
            waiting_putters: h.space.waiters.load(Ordering::Relaxed),
            tombstones: h.counters.tombstones.load(Ordering::Relaxed),
            lost: h.counters.lost.load(Ordering::Relaxed),
            unattributed_claims: h.counters.unattributed.load(Ordering::Relaxed),
            puts: h.tail.load(Ordering::Relaxed) & !CLOSED_BIT,
            gets: h.head.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.hdr().tail.load(Ordering::Relaxed) & CLOSED_BIT != 0
    }

    /// Closes the ring: no put succeeds afterwards; gets drain what was put, then report closed.
    /// Wakes every sleeper on both sides. Returns `true` if this call closed it.
    pub(crate) fn close(&self) -> bool {
        // SYNC: AcqRel RMW on tail; a producer's failed claim CAS (Relaxed) then reloads and sees the
        // bit. The wake-ups below follow the notify fences, so sleepers re-check and see it too.
        let prev = self.hdr().tail.fetch_or(CLOSED_BIT, Ordering::AcqRel);
        // SYNC: Release pairs with the Acquire flag load in `get_attempt`: a consumer that sees
        // the flag then reads a tail with the bit set.
        self.hdr().counters.closed.store(1, Ordering::Release);
        self.hdr().items.notify_all();
        self.hdr().space.notify_all();
        prev & CLOSED_BIT == 0
    }

    /// Wake-ups after publishing positions up to `end` (exclusive), `k` of them.
    ///
    /// Getters are woken one per message. Because producers can publish out of order, a wake may
    /// reach a getter whose head position is still unpublished; it goes back to sleep and that
    /// wake is spent. The consumer side passes the baton on (see `after_get`), and symmetrically
    /// this passes a spent *space* wake on: if the next slot a producer needs is already free
    /// and putters sleep, wake one.
    // Inline: the fence and the two waiter reads are all an uncontended put pays; the wake-ups
    // are out of line (a call here cost about 9 instructions a put, callgrind).
    #[inline(always)]
    fn after_put(&self, end: u64, k: u64) {
        let hdr = self.hdr();
        // SYNC: Dekker fence, pairs with the SeqCst fence in `WaitCell::register` (see the module
        // docs) for both wait cells read below.
        fence(Ordering::SeqCst);
        let getters = hdr.items.waiters.load(Ordering::Relaxed) > 0;
        let putters = hdr.space.waiters.load(Ordering::Relaxed) > 0;
        if getters || putters {
            self.wake_after_put(end, k, getters, putters);
        }
    }

    /// The wake-ups of [`after_put`](Self::after_put), when somebody waits.
    #[inline(never)]
    fn wake_after_put(&self, end: u64, k: u64, getters: bool, putters: bool) {
        let hdr = self.hdr();
        if getters && hdr.items.epoch.bump_and_wake(k.min(u32::MAX as u64) as u32) == 0 {
            self.woke_nobody(Side::Get);
        }
        if putters {
            let cap = self.capacity();
            // SYNC: Acquire, as any stamp read before claiming.
            let s = self.mem.stamp(end % cap).load(Ordering::Acquire);
            if s == Stamp::free(end) {
                hdr.space.epoch.bump_and_wake(1);
            }
        }
    }

    /// Wake-ups after consuming positions up to `end` (exclusive), `k` of them: `k` putters, plus
    /// the baton for getters: if the next position is already published (its producer's wake may
    /// have been spent on a getter that could not use it) wake one getter; if the ring is closed
    /// and now drained, wake every getter so none sleeps on a ring that will never fill again.
    // Inline, as `after_put`.
    #[inline(always)]
    fn after_get(&self, end: u64, k: u64) {
        let hdr = self.hdr();
        // SYNC: Dekker fence, pairs with the SeqCst fence in `WaitCell::register`. For the closed
        // check it also pairs with the fence in `close`'s `notify_all`: either we see the closed
        // bit here, or close's wake-all comes after our head update and its woken getters see it.
        fence(Ordering::SeqCst);
        let putters = hdr.space.waiters.load(Ordering::Relaxed) > 0;
        let getters = hdr.items.waiters.load(Ordering::Relaxed) > 0;
        if putters || getters {
            self.wake_after_get(end, k, putters, getters);
        }
    }

    /// The wake-ups of [`after_get`](Self::after_get), when somebody waits.
    #[inline(never)]
    fn wake_after_get(&self, end: u64, k: u64, putters: bool, getters: bool) {
        let hdr = self.hdr();
        if putters && hdr.space.epoch.bump_and_wake(k.min(u32::MAX as u64) as u32) == 0 {
            self.woke_nobody(Side::Put);
        }
        if getters {
            let cap = self.capacity();
            // SYNC: Acquire, as any stamp read before claiming.
            let s = self.mem.stamp(end % cap).load(Ordering::Acquire);
            let tail = hdr.tail.load(Ordering::Acquire);
            if tail & CLOSED_BIT != 0 && end >= tail & !CLOSED_BIT {
                hdr.items.epoch.bump_and_wake(u32::MAX);
            } else if s == Stamp::full(end) || s == Stamp::tomb(end) {
                hdr.items.epoch.bump_and_wake(1);
            }
        }
    }
}

mod claim;
pub(crate) mod mem;
mod recovery;
mod wait;

crate::sync::native_only! {
#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SlotLayout;
    use crate::ring::mem::HeapRing;
    use std::sync::Arc;
    use std::time::Duration;

    fn ring(cap: u64) -> Ring<HeapRing> {
        Ring::new(HeapRing::new(cap, SlotLayout::for_pod(8, 8).unwrap()).unwrap())
    }

    fn put(r: &Ring<HeapRing>, v: u64) -> Result<usize, TryError> {
        r.try_put_batch(None, 1, |_, b| b.copy_from_slice(&v.to_le_bytes()))
    }

    fn get(r: &Ring<HeapRing>) -> Result<u64, TryError> {
        let mut out = 0;
        r.try_get_batch(None, 1, |_, b| {
            out = u64::from_le_bytes(b.try_into().unwrap())
        })?;
        Ok(out)
    }

    #[test]
    fn capacity_one_alternates_full_and_empty() {
        let r = ring(1);
        for i in 0..10 {
            assert_eq!(get(&r), Err(TryError::WouldBlock));
            assert_eq!(put(&r, i), Ok(1));
            assert_eq!(put(&r, 99), Err(TryError::WouldBlock));
            assert_eq!(r.len(), 1);
            assert_eq!(get(&r), Ok(i));
        }
    }

    #[test]
    fn fifo_across_many_laps_with_odd_capacity() {
        let r = ring(3);
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        for round in 0..200 {
            let burst = round % 4;
            for _ in 0..burst {
                if put(&r, next_in).is_ok() {
                    next_in += 1;
                }
            }
            for _ in 0..(round % 3) {
                if let Ok(v) = get(&r) {
                    assert_eq!(v, next_out);
                    next_out += 1;
                }
            }
            assert!(r.len() <= 3);
        }
        while let Ok(v) = get(&r) {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_in, next_out);
        assert!(next_in > 100);
    }

    #[test]
    fn batch_claims_only_free_run_and_preserves_order() {
        let r = ring(4);
        let items = [10u64, 11, 12, 13, 14, 15];
        let n = r
            .try_put_batch(None, items.len(), |Filling { k, .. }, b| {
                b.copy_from_slice(&items[k].to_le_bytes())
            })
            .unwrap();
        assert_eq!(n, 4);
        let mut out = [0u64; 3];
        let got = r
            .try_get_batch(None, 3, |k, b| {
                out[k] = u64::from_le_bytes(b.try_into().unwrap())
            })
            .unwrap();
        assert_eq!((got, out), (3, [10, 11, 12]));
        // Three slots are free again, across the wrap.
        let n = r
            .try_put_batch(None, 2, |Filling { k, .. }, b| {
                b.copy_from_slice(&items[4 + k].to_le_bytes())
            })
            .unwrap();
        assert_eq!(n, 2);
        let mut all = vec![];
        while let Ok(v) = get(&r) {
            all.push(v);
        }
        assert_eq!(all, vec![13, 14, 15]);
    }

    #[test]
    fn close_drains_then_reports_closed() {
        let r = ring(4);
        put(&r, 1).unwrap();
        put(&r, 2).unwrap();
        assert!(r.close());
        assert!(!r.close());
        assert_eq!(put(&r, 3), Err(TryError::Closed));
        assert_eq!(get(&r), Ok(1));
        assert_eq!(get(&r), Ok(2));
        assert_eq!(get(&r), Err(TryError::Closed));
    }

    #[test]
    fn tombstone_is_skipped_and_slot_reused() {
        let r = ring(2);
        // Simulate a producer that claimed position 0 and died: tail moves, stamp stays FREE.
        r.hdr().tail.store(1, Ordering::Relaxed);
        put(&r, 7).unwrap();
        // The raw attempt tells "held by a claimant" from "empty".
        assert_eq!(get(&r), Err(TryError::Pending));
        // The non-blocking call waits for the claimant a bounded time (this ring has no liveness
        // source, so the claim is never recovered), then reports empty rather than hang.
        assert_eq!(
            r.get_now(None, 1, |_, _| panic!("nothing to read")),
            Err(TryError::WouldBlock)
        );
        r.mem.stamp(0).store(Stamp::tomb(0), Ordering::Release);
        assert_eq!(get(&r), Ok(7));
        // Both slots free again: two more puts fit.
        put(&r, 8).unwrap();
        put(&r, 9).unwrap();
        assert_eq!(put(&r, 10), Err(TryError::WouldBlock));
    }

    #[test]
    fn panicking_writer_leaves_a_tombstone_not_a_stuck_queue() {
        let r = ring(2);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            r.try_put_batch(None, 1, |_, _| panic!("user closure fails"))
        }));
        assert!(res.is_err());
        put(&r, 5).unwrap();
        assert_eq!(get(&r), Ok(5));
        assert_eq!(r.stats().tombstones, 1);
        // Both slots usable again.
        put(&r, 6).unwrap();
        put(&r, 7).unwrap();
        assert_eq!(put(&r, 8), Err(TryError::WouldBlock));
    }

    #[test]
    fn panicking_reader_releases_its_slot_and_counts_the_loss() {
        let r = ring(1);
        put(&r, 5).unwrap();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            r.try_get_batch(None, 1, |_, _| panic!("user closure fails"))
        }));
        assert!(res.is_err());
        assert_eq!(r.stats().lost, 1);
        // The producer is not blocked by the abandoned slot.
        put(&r, 6).unwrap();
        assert_eq!(get(&r), Ok(6));
    }

    /// A value read out of a payload.
    fn value(b: &[u8]) -> u64 {
        u64::from_le_bytes(b.try_into().unwrap())
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "needs the claimant scheduled within the 50 ms claim wait, which the interpreter's clock runs out"
    )]
    fn get_now_waits_for_a_producer_mid_publish_instead_of_reporting_empty() {
        let r = Arc::new(ring(4));
        let r2 = r.clone();
        // A producer claims position 0 and, while holding it, waits until a getter sleeps.
        let producer = std::thread::spawn(move || {
            r2.try_put_batch(None, 1, |_, b| {
                while r2.hdr().items.waiters.load(Ordering::Relaxed) == 0 {
                    std::thread::yield_now();
                }
                b.copy_from_slice(&1u64.to_le_bytes())
            })
        });
        while r.len() == 0 {
            std::thread::yield_now();
        }
        // Position 1 is published behind the claimed, unpublished position 0.
        assert_eq!(put(&r, 2), Ok(1));
        let mut got = vec![];
        assert_eq!(r.get_now(None, 1, |_, b| got.push(value(b))), Ok(1));
        assert_eq!(got, [1]);
        assert_eq!(producer.join().unwrap(), Ok(1));
        assert_eq!(get(&r), Ok(2));
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "needs the claimant scheduled within the 50 ms claim wait, which the interpreter's clock runs out"
    )]
    fn put_now_waits_for_a_consumer_mid_release_instead_of_reporting_full() {
        let r = Arc::new(ring(1));
        put(&r, 1).unwrap();
        let r2 = r.clone();
        // A consumer claims the only message and, while holding its slot, waits for a putter.
        let consumer = std::thread::spawn(move || {
            let mut out = 0;
            r2.try_get_batch(None, 1, |_, b| {
                while r2.hdr().space.waiters.load(Ordering::Relaxed) == 0 {
                    std::thread::yield_now();
                }
                out = value(b);
            })
            .map(|_| out)
        });
        while r.len() != 0 {
            std::thread::yield_now();
        }
        // The ring is not full (its one message is consumed); the slot is still held.
        assert_eq!(put(&r, 2), Err(TryError::Pending));
        // put_now waits (the claim wait) for the consumer, which lets go only once it sees a
        // putter waiting: a put_now that reported the ring full without waiting would never
        // succeed. On a loaded machine the consumer may not run within one claim wait, so a
        // `WouldBlock` is tried again (a bounded number of times: a put_now that never waits
        // fails the test instead of hanging it).
        let mut tries = 0;
        loop {
            match r.put_now(None, 1, |_, b| b.copy_from_slice(&3u64.to_le_bytes())) {
                Ok(n) => break assert_eq!(n, 1),
                Err(TryError::WouldBlock) if tries < 200 => tries += 1,
                Err(e) => panic!("put_now never waited for the consumer: {e:?}"),
            }
        }
        assert_eq!(consumer.join().unwrap(), Ok(1));
        assert_eq!(get(&r), Ok(3));
    }

    #[test]
    fn get_now_on_an_empty_ring_and_put_now_on_a_full_one_return_at_once() {
        let r = ring(2);
        assert_eq!(r.get_now(None, 1, |_, _| {}), Err(TryError::WouldBlock));
        put(&r, 1).unwrap();
        put(&r, 2).unwrap();
        assert_eq!(r.put_now(None, 1, |_, _| {}), Err(TryError::WouldBlock));
    }

    #[test]
    fn forged_stamp_is_reported_not_spun_on() {
        let r = ring(2);
        r.mem.stamp(0).store(Stamp::free(40), Ordering::Relaxed);
        assert_eq!(get(&r), Err(TryError::Corrupt));
        assert_eq!(put(&r, 1), Err(TryError::Corrupt));
    }

    #[test]
    fn blocking_get_is_woken_by_put_from_another_thread() {
        let r = Arc::new(ring(2));
        let r2 = r.clone();
        let t = std::thread::spawn(move || {
            let mut out = 0;
            r2.get_batch(None, 1, None, |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map(|_| out)
        });
        // Wait until the getter sleeps on the futex, so the put must wake it.
        while r.hdr().items.waiters.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        put(&r, 42).unwrap();
        assert_eq!(t.join().unwrap(), Ok(42));
    }

    #[test]
    fn blocking_put_times_out_on_full_ring() {
        let r = ring(1);
        put(&r, 1).unwrap();
        let d = Instant::now() + Duration::from_millis(20);
        let res = r.put_batch(None, 1, Some(d), |_, _| {});
        assert_eq!(res, Err(WaitError::Timeout));
        assert!(Instant::now() >= d);
        assert_eq!(get(&r), Ok(1));
    }

    #[test]
    fn mpmc_threads_deliver_each_item_once_in_producer_order() {
        let r = Arc::new(ring(8));
        let per = crate::sync::native_or_miri(20_000, 50);
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        let v = p << 32 | i;
                        r.put_batch(None, 1, None, |_, b| b.copy_from_slice(&v.to_le_bytes()))
                            .unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut seen = vec![];
                    loop {
                        let mut out = 0;
                        match r.get_batch(None, 1, None, |_, b| {
                            out = u64::from_le_bytes(b.try_into().unwrap())
                        }) {
                            Ok(_) => seen.push(out),
                            Err(WaitError::Closed) => return seen,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        r.close();
        let mut all = vec![];
        for c in consumers {
            let seen = c.join().unwrap();
            // Per-producer order within one consumer's stream.
            for p in 0..2u64 {
                let mine: Vec<_> = seen.iter().filter(|v| *v >> 32 == p).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]));
            }
            all.extend(seen);
        }
        all.sort_unstable();
        let expect: Vec<u64> = (0..2u64)
            .flat_map(|p| (0..per).map(move |i| p << 32 | i))
            .collect();
        assert_eq!(all, expect);
    }
}
}
