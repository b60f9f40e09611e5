//! Participant records: one per thread that operates on a segment, so a claim left behind by a
//! killed process can be traced to it.
//!
//! A thread gets a record the first time it puts or gets on a segment's queue and keeps it until it
//! exits (a thread-local destructor frees it) or the mapping goes away (`Inner::drop` frees every
//! record it handed out). Records of dead processes (pid + start time no longer alive) are taken
//! over when the table has no free record.

use super::Inner;
use crate::layout::{ClaimRecord, ParticipantRecord, Side, PID_TAKING, RECORD_SIZE};
use crate::os;
use crate::sync::Ordering;
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The calling thread's record in one segment: one pointer, so the per-operation lookup stays
/// cheap; the fields are reached through it.
pub(crate) struct Participant<'a> {
    record: &'a ParticipantRecord,
}

impl<'a> Participant<'a> {
    /// What this thread is claiming or holds.
    #[inline(always)]
    pub(crate) fn claim(&self) -> &'a ClaimRecord {
        &self.record.claim
    }
    /// Queues this thread has put to.
    #[inline(always)]
    pub(crate) fn producer_of(&self) -> &'a crate::sync::AtomicU64 {
        &self.record.producer_of
    }
    /// The record's hazard word (see `crate::chain`).
    #[inline(always)]
    pub(crate) fn hazard(&self) -> &'a crate::sync::AtomicU64 {
        &self.record.hazard
    }
}

struct Cached {
    seg_id: u64,
    seg: Weak<Inner>,
    /// This thread's record, or `None` while the table was full at the last attempt.
    idx: Option<u32>,
    /// With `idx == None`: when to look for a free or dead record again.
    retry_at: Option<Instant>,
}

/// How long a thread that found the table full of live participants goes on without a record
/// before it looks again. Looking means reading /proc for every record, which must not happen on
/// every operation.
const FULL_RETRY: Duration = Duration::from_millis(100);

/// Frees this thread's records in every segment still mapped when the thread exits. `forks` is
/// the fork generation the entries were made under: a `fork()`ed child inherits the forking
/// thread's entries, which name its parent's records, and drops them unused.
struct ThreadRecords(Vec<Cached>, u64);

impl Drop for ThreadRecords {
    fn drop(&mut self) {
        // Operations after this (from later thread-local destructors) find no record.
        let _ = LAST.try_with(|l| l.set(NO_LAST));
        if self.1 != os::fork_generation() {
            return; // inherited through fork(): the parent's records, not ours to free
        }
        for c in self.0.drain(..) {
            if let (Some(inner), Some(idx)) = (c.seg.upgrade(), c.idx) {
                inner.forget_record(idx);
                inner.release_record(idx);
            }
        }
    }
}

thread_local! {
    static RECORDS: RefCell<ThreadRecords> = const { RefCell::new(ThreadRecords(Vec::new(), 0)) };
    /// The record this thread used last, as `(segment id, fork generation, record address)`: a
    /// copy of one entry of `RECORDS`, read without borrowing it or searching (the fast path
    /// of every queue operation). [`NO_LAST`] once `RECORDS` is gone; never a segment's id then.
    static LAST: Cell<(u64, u64, *const ParticipantRecord)> = const { Cell::new(NO_LAST) };
}

/// `LAST` naming nothing: segment ids start at 1.
const NO_LAST: (u64, u64, *const ParticipantRecord) = (0, 0, core::ptr::null());

/// Marks a record free: claim words cleared, then `pid = 0` with Release.
fn release(r: &ParticipantRecord) {
    r.claim.put_obj.store(0, Ordering::Relaxed);
    r.claim.get_obj.store(0, Ordering::Relaxed);
    // Keep the owner count (the next taker bumps it); clear the note.
    let owners = r.claim.waiting.load(Ordering::Relaxed) & !crate::ring::NOTE_MASK;
    r.claim.waiting.store(owners, Ordering::Relaxed);
    r.producer_of.store(0, Ordering::Relaxed);
    r.hazard.store(0, Ordering::Relaxed);
    r.tid.store(0, Ordering::Relaxed);
    r.start_time.store(0, Ordering::Relaxed);
    r.pidns.store(0, Ordering::Relaxed);
    // SYNC: Release orders the clearing above before the record can be claimed again; pairs with
    // the Acquire CAS in `Inner::claim_record`.
    r.pid.store(0, Ordering::Release);
}

/// Whether the process owning record `r` is alive, or cannot be shown dead. A namespace of 0 means
/// the owner is between its pid CAS and its namespace store (or its namespace is unknown): alive.
fn record_alive(r: &ParticipantRecord) -> bool {
    let owner = r.pid.load(Ordering::Acquire);
    let start = r.start_time.load(Ordering::Relaxed);
    let pidns = r.pidns.load(Ordering::Relaxed);
    os::process_alive(owner, start, pidns)
}

/// The participant table seen from one queue (directory index + 1 = `obj`): who claimed what.
pub(crate) struct QueueLiveness {
    pub(crate) seg: Arc<Inner>,
    pub(crate) obj: u32,
    /// A byte queue whose long messages live in the heap: recovery hands the blocks of
    /// positions it gives up on back to the heap.
    pub(crate) heap_refs: bool,
    /// A link of an unbounded queue: registrations of dead waiters are not taken back (a note
    /// names the queue, not the link whose cell it raised; a count left high costs spurious
    /// wake-ups only, one lowered on the wrong link would lose a wake-up).
    pub(crate) link: bool,
}

impl std::fmt::Debug for QueueLiveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueLiveness")
            .field("obj", &self.obj)
            .finish()
    }
}

impl crate::ring::Liveness for QueueLiveness {
    /// The shipping attribution scan ([`crate::ring::attribute`]) over the participant table:
    /// records in use (a nonzero pid), each judged by its owner's identity.
    fn claimant(&self, pos: u64, side: Side) -> crate::ring::Claim {
        let records = (0..self.seg.part_count)
            .map(|i| self.seg.record(i))
            // SYNC: Acquire pairs with the Release pid store of a record's taker (or `release`):
            // the claim words read by the scan are the current owner's.
            .filter(|r| r.pid.load(Ordering::Acquire) != 0);
        crate::ring::attribute(records, |r| &r.claim, record_alive, self.obj, pos, side)
    }

    fn live_producers(&self) -> u32 {
        let bit = 1u64 << (self.obj % 64);
        (0..self.seg.part_count)
            .map(|i| self.seg.record(i))
            .filter(|r| {
                // SYNC: Acquire pairs with the Release `pid` store in `release`: a record seen
                // free or re-owned shows its old owner's claims (and puts) as done.
                r.pid.load(Ordering::Acquire) != 0
                    && r.producer_of.load(Ordering::Relaxed) & bit != 0
                    && record_alive(r)
            })
            .count() as u32
    }

    fn live_participants(&self) -> u32 {
        self.seg.live_participants()
    }

    fn watch(&self) -> Option<[crate::sync::futex::AlsoWake<'_>; 3]> {
        self.seg.watch_peers()
    }

    fn wants_abandoned(&self) -> bool {
        self.heap_refs
    }

    fn abandoned(&self, pos: u64, side: Side, head: &[u8; crate::ring::ABANDONED_HEAD]) {
        if let Some((_, off)) = crate::heap::read_ref(head) {
            self.seg
                .heap()
                .abandon(off, self.obj, pos, side == Side::Get);
        }
    }

    fn recovered(&self, pos: u64, side: Side, lost: bool) {
        use super::recovery::Recovery;
        // The dead claimant: a record that names the position and whose owner is gone (the
        // claim was judged dead just before, and a dead owner names nothing new).
        let pid = (0..self.seg.part_count)
            .map(|i| self.seg.record(i))
            .find(|r| {
                let (o, first, len) = r.claim.side(side);
                let first = first.load(Ordering::Relaxed);
                r.pid.load(Ordering::Acquire) != 0
                    && o.load(Ordering::Relaxed) == self.obj
                    && first <= pos
                    && pos - first < len.load(Ordering::Relaxed)
                    && !record_alive(r)
            })
            .map(|r| r.pid.load(Ordering::Relaxed));
        self.seg.recovered(match side {
            Side::Put => Recovery::Tombstoned {
                obj: self.obj,
                pos,
                pid,
            },
            Side::Get => Recovery::Released {
                obj: self.obj,
                pos,
                pid,
                lost,
            },
        });
    }

    fn repair_waiters(&self, side: Side) -> u32 {
        use crate::ring::NOTE_MASK;
        if self.link {
            return 0;
        }
        let mine = u64::from(self.obj << 1 | side.bit());
        let n = (0..self.seg.part_count)
            .map(|i| self.seg.record(i))
            .filter(|r| {
                // The whole word, owner count included, read *before* the liveness verdict: the
                // CAS below then succeeds only if the record still has the owner judged dead
                // and its note is unchanged. A taker bumps the owner count, so a note the
                // record's next owner writes for the same cell never matches.
                let w = r.claim.waiting.load(Ordering::Acquire);
                w & NOTE_MASK == mine
                    && r.pid.load(Ordering::Acquire) != 0
                    && !record_alive(r)
                    // SYNC: Acquire pairs with the dead waiter's SeqCst fence before its note:
                    // its raise of the count happens before our lowering. One CAS per dead
                    // registration: of two repairers (or a repairer and a taker) one wins.
                    && r.claim
                        .waiting
                        .compare_exchange(w, w & !NOTE_MASK, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
            })
            .count() as u32;
        if n > 0 {
            self.seg
                .recovered(super::recovery::Recovery::WaitersRepaired { obj: self.obj, n });
        }
        n
    }
}

impl Inner {
    /// The calling thread's participant record in this segment, registering one if needed.
    /// `None` if the table is full of live participants (the operation then goes on without crash
    /// attribution); the thread then looks for a record again only after [`FULL_RETRY`].
    #[inline]
    pub(crate) fn participant(self: &Arc<Self>) -> Option<Participant<'_>> {
        let forks = os::fork_generation();
        if let Ok((id, gen, record)) = LAST.try_with(Cell::get) {
            if id == self.id && gen == forks {
                // SAFETY: `record` was made by `participant_slow` from `self.record(idx)` of the
                // mapping whose id is `id`. Ids are never reused (a process-wide counter), so it
                // is this mapping's, which lives as long as `self`; its base never moves (see
                // `mapping::extent`), so the address still names the same record.
                let record = unsafe { &*record };
                return Some(Participant { record });
            }
        }
        self.participant_slow(forks)
    }

    /// [`participant`](Self::participant) when the record is not the one used last.
    #[inline(never)]
    fn participant_slow(self: &Arc<Self>, forks: u64) -> Option<Participant<'_>> {
        let idx = RECORDS
            .try_with(|r| {
                let mut r = r.borrow_mut();
                if r.1 != forks {
                    // Inherited through fork(): these name the parent's records. Forget them
                    // without freeing anything (the parent still uses them).
                    r.0.clear();
                    r.1 = forks;
                }
                if let Some(i) = r.0.iter().position(|c| c.seg_id == self.id) {
                    let c = &r.0[i];
                    if c.idx.is_some() || c.retry_at.is_some_and(|t| Instant::now() < t) {
                        return c.idx;
                    }
                    r.0.swap_remove(i);
                }
                r.0.retain(|c| c.seg.strong_count() > 0);
                let idx = self.claim_record();
                r.0.push(Cached {
                    seg_id: self.id,
                    seg: Arc::downgrade(self),
                    idx,
                    retry_at: idx.is_none().then(|| Instant::now() + FULL_RETRY),
                });
                idx
            })
            .ok()
            .flatten()?;
        let record = self.record(idx);
        let _ = LAST.try_with(|l| l.set((self.id, forks, record as *const ParticipantRecord)));
        Some(Participant { record })
    }

    /// Frees record `idx` (its thread exited, or the mapping goes away) and tells sleepers
    /// that watch the participants: a producer leaving may disconnect a queue.
    pub(crate) fn release_record(&self, idx: u32) {
        release(self.record(idx));
        self.announce_leave();
    }

    fn claim_record(&self) -> Option<u32> {
        let (pid, start, pidns) = os::self_identity();
        let tid = os::thread_id();
        let take = |i: u32, expect: u32| -> bool {
            let r = self.record(i);
            // One CAS decides who takes the record (from free, or from a dead owner); a loser
            // has written nothing. While the pid reads `PID_TAKING` every reader judges the
            // record alive, so the fields below are never read half-written (a record read as
            // "our pid, the dead owner's start time or namespace" would look dead, and a second
            // taker could take it from us).
            // SYNC: Acquire pairs with the Release pid store in `release` (or the dead owner's
            // last stores): its clearing happens before our writes.
            if r.pid
                .compare_exchange(expect, PID_TAKING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
            r.tid.store(tid, Ordering::Relaxed);
            r.start_time.store(start, Ordering::Relaxed);
            r.pidns.store(pidns, Ordering::Relaxed);
            // A record taken over from a dead process must not make us look like its producer,
            // nor like the claimant of whatever it named (its claims need no evidence any more:
            // see `claims_settled`).
            r.producer_of.store(0, Ordering::Relaxed);
            r.hazard.store(0, Ordering::Relaxed);
            r.claim.put_obj.store(0, Ordering::Relaxed);
            r.claim.get_obj.store(0, Ordering::Relaxed);
            // A dead owner that died asleep left one registration on a wait cell: take it back.
            // One RMW clears the note and bumps the owner count, so this taker, or one
            // repairer, is the only one that does, and no repairer that judged the old owner
            // dead can match a note the new owner writes later.
            let old = r
                .claim
                .waiting
                .fetch_update(Ordering::Acquire, Ordering::Relaxed, |w| {
                    Some((w & !crate::ring::NOTE_MASK).wrapping_add(1 << 32))
                })
                .unwrap_or_else(|w| w);
            let waiting = (old & crate::ring::NOTE_MASK) as u32;
            if waiting != 0 {
                if let Some(ring) = self.ring_of_obj(waiting >> 1) {
                    crate::ring::RingMem::header(&ring.mem)
                        .wait_cell(Side::of_bit(waiting))
                        .take_back(1);
                }
            }
            // SYNC: Release pairs with the Acquire pid loads of readers (`record_alive`,
            // `naming`, `live_producers`): whoever sees our pid sees the fields above.
            r.pid.store(pid, Ordering::Release);
            // Sleepers watching this segment's participants must watch us too.
            self.announce_member();
            true
        };
        for i in 0..self.part_count {
            if self.record(i).pid.load(Ordering::Relaxed) == 0 && take(i, 0) {
                self.remember_record(i);
                return Some(i);
            }
        }
        // Table full: take over a record whose process is gone and that names no pending claim
        // (a record still naming one is the evidence recovery needs; once the claim is
        // recovered it is no longer pending). Recovery itself never clears records: a record
        // may name a batch of which only the first position is recovered yet, and a cleared
        // record could already belong to a new, live owner.
        for i in 0..self.part_count {
            let r = self.record(i);
            let owner = r.pid.load(Ordering::Relaxed);
            if owner != 0
                && owner != pid
                && !record_alive(r)
                && self.claims_settled(&r.claim)
                && take(i, owner)
            {
                self.recovered(super::recovery::Recovery::RecordReused {
                    index: i,
                    pid: owner,
                });
                self.remember_record(i);
                return Some(i);
            }
        }
        None
    }

    /// Whether the claims a dead process's record names need it no more: each side names no
    /// queue, or a queue where none of the named positions is claimed and unsettled. (A process
    /// killed between writing its record and its claim CAS leaves a record naming a claim that
    /// never happened; without this check such a record would never be reused.)
    fn claims_settled(&self, c: &ClaimRecord) -> bool {
        let settled = |put| {
            let (obj, pos, len) = c.side(put);
            let obj = obj.load(Ordering::Relaxed);
            // A claim on a link of an unbounded queue is kept as evidence: which link holds the
            // position is not looked up here, and a record kept costs one record, while one
            // cleared too early would leave its position never recovered.
            obj == 0
                || self.chain_region(obj).is_none()
                    && self.ring_of_obj(obj).map_or(true, |ring| {
                        !ring.claim_pending(
                            pos.load(Ordering::Relaxed),
                            len.load(Ordering::Relaxed),
                            put,
                        )
                    })
        };
        settled(Side::Put) && settled(Side::Get)
    }

    /// Participant records held by live processes (a snapshot).
    pub(crate) fn live_participants(&self) -> u32 {
        (0..self.part_count)
            .map(|i| self.record(i))
            .filter(|r| r.pid.load(Ordering::Relaxed) != 0 && record_alive(r))
            .count() as u32
    }

    fn remember_record(&self, idx: u32) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((idx, os::fork_generation()));
    }

    fn forget_record(&self, idx: u32) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&(i, _)| i != idx);
    }
}

impl Inner {
    /// The index in the table of the record `p` (of this segment).
    pub(crate) fn record_index(&self, p: &Participant<'_>) -> u32 {
        let first = self.record(0) as *const ParticipantRecord as usize;
        ((p.record as *const ParticipantRecord as usize - first) / RECORD_SIZE as usize) as u32
    }

    /// Whether the thread that was the `inc`-th owner of record `idx` (the high half of its
    /// `waiting` word, bumped by every taker) is gone for sure: the record has been taken again
    /// since (a record is taken only when free or from a dead owner), or released (its thread
    /// exited or its mapping went away), or its owner is proven dead. A record index outside the
    /// table (forged) is never judged: `false`.
    pub(crate) fn holder_gone(&self, idx: u32, inc: u32) -> bool {
        self.holder_gone_masked(idx, inc, u32::MAX)
    }

    /// The calling thread's record in this segment if it has one already (never takes one), as
    /// `(index, owner count)`.
    pub(crate) fn heap_holder(&self) -> Option<(u32, u32)> {
        let idx = RECORDS
            .try_with(|r| {
                let r = r.borrow();
                if r.1 != os::fork_generation() {
                    return None;
                }
                r.0.iter().find(|c| c.seg_id == self.id).and_then(|c| c.idx)
            })
            .ok()
            .flatten()?;
        // Relaxed: our own record; its owner count changes only when it is taken.
        let inc = (self.record(idx).claim.waiting.load(Ordering::Relaxed) >> 32) as u32;
        Some((idx, inc))
    }

    /// [`Inner::holder_gone`] for an owner count known only by its bits in `mask`.
    pub(crate) fn holder_gone_masked(&self, idx: u32, inc: u32, mask: u32) -> bool {
        if idx >= self.part_count {
            return false;
        }
        let r = self.record(idx);
        // SYNC: Acquire pairs with the Release pid stores of `claim_record` and `release`: the
        // owner count we read next is the one that pid was stored with (or a later one).
        let pid = r.pid.load(Ordering::Acquire);
        let now = (r.claim.waiting.load(Ordering::Relaxed) >> 32) as u32;
        if now & mask != inc & mask || pid == 0 {
            return true;
        }
        pid != PID_TAKING && !record_alive(r)
    }

    /// Whether a live participant announces `hazard` (a link of an unbounded queue it is about to
    /// touch or touches). A record whose owner is proven dead does not count.
    pub(crate) fn hazard_announced(&self, hazard: u64) -> bool {
        (0..self.part_count).any(|i| {
            let r = self.record(i);
            // SYNC: Acquire pairs with the announcer's Release withdrawal; the caller's SeqCst
            // fence orders this load after its look at the head (see `crate::chain`).
            r.hazard.load(Ordering::Acquire) == hazard
                && r.pid.load(Ordering::Acquire) != 0
                && record_alive(r)
        })
    }

    /// The liveness source of a link of unbounded queue `obj`.
    pub(crate) fn link_liveness(
        self: &Arc<Self>,
        obj: u32,
        heap_refs: bool,
    ) -> crate::ring::LiveArc {
        Arc::new(QueueLiveness {
            seg: self.clone(),
            obj,
            heap_refs,
            link: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread-local destructor that runs after the thread's records were freed (it was
    /// registered before them, so it runs after them) must get no record: the one the thread
    /// used last is free by then, and another thread may already have taken it.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "creates a segment in /dev/shm, which miri's isolation hides"
    )]
    fn a_thread_local_destructor_after_the_records_are_freed_gets_no_record() {
        struct Late(Arc<Inner>, std::sync::mpsc::Sender<bool>);
        impl Drop for Late {
            fn drop(&mut self) {
                let _ = self.1.send(self.0.participant().is_none());
            }
        }
        thread_local! {
            static LATE: RefCell<Option<Late>> = const { RefCell::new(None) };
        }
        let name = format!("shmq-unit-late-{}", std::process::id());
        let seg = crate::Segment::builder(&name)
            .queue::<u64>("q", 8)
            .create()
            .expect("segment");
        let inner = seg.inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Registered first, so destroyed after RECORDS.
            LATE.with(|l| *l.borrow_mut() = Some(Late(inner.clone(), tx)));
            assert!(inner.participant().is_some());
        })
        .join()
        .unwrap();
        assert!(
            rx.recv().expect("the destructor ran"),
            "a destructor after the records were freed got the freed record"
        );
    }
}
