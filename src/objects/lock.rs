//! Cross-process robust mutex on a futex word.
//!
//! The word holds the owner's kernel thread id, so "locked" and "by whom" change together in one
//! atomic step and a dead owner is always identifiable:
//!
//! * bits 0..30: owner thread id (0: unlocked); Linux thread ids fit in 22 bits;
//! * bit 30 `INCONSISTENT`: a previous owner died holding the lock and nobody has declared the
//!   protected data consistent since; the next owner is told (`OwnerDead`);
//! * bit 31 `CONTENDED`: someone may sleep on the word; the unlocker must wake one.
//!
//! Lock: CAS a free word to `me | CONTENDED` (keeping `INCONSISTENT`) — the uncontended first try
//! uses `me` alone; otherwise set `CONTENDED` and sleep while the word is unchanged. The sleep is
//! cut into slices: after each, if the owner thread is gone (`/proc/TID/stat` missing or a zombie,
//! or another start time), one waiter takes the lock over with a CAS from the dead owner's word to
//! `me | INCONSISTENT | CONTENDED` and reports `OwnerDead`. Unlock: swap in 0 (or `INCONSISTENT`);
//! if the old word had `CONTENDED`, wake one sleeper.

use crate::sync::backoff::Backoff;
use crate::sync::futex::{Futex, Wake};
use crate::sync::owner::{me, me_info, owner_dead, process_gone, TID};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

const INCONSISTENT: u32 = 1 << 30;
const CONTENDED: u32 = 1 << 31;

/// Shared state of a lock: 128 bytes natively, zero = unlocked and consistent.
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct LockState {
    /// Owner thread id | INCONSISTENT | CONTENDED (the futex word).
    pub(crate) word: Futex,
    /// pid of the owner's process (diagnostics; 0 when unlocked).
    pub(crate) owner_pid: AtomicU32,
    /// `owner tid << 40 | start time of that thread` (`/proc/TID/stat` field 22, low 40 bits), to
    /// tell a reused thread id from the owner. Written just after the owner takes the word, so a
    /// reader trusts it only when its tid matches the word's.
    pub(crate) owner_start: AtomicU64,
    /// `owner tid << 40 | PID namespace of the owner` (low 40 bits of `os::pid_namespace`),
    /// written with `owner_start` and trusted the same way.
    pub(crate) owner_ns: AtomicU64,
    /// `owner tid << 40 | start time of the owner's process` (low 40 bits), written with
    /// `owner_start` and trusted the same way: a process-scoped lock is taken over only once
    /// this process is gone (another process under the pid is not it).
    pub(crate) owner_proc: AtomicU64,
    /// Takeovers from a dead owner so far (for the loom models; zero-sized natively).
    pub(crate) takeovers: crate::sync::ModelCount,
}

crate::sync::native_only! {
    const _: () = assert!(core::mem::size_of::<LockState>() == 128);
}

/// Whose death frees a lock for a takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The owner thread's: a thread that exits holding the lock has died holding it.
    Thread,
    /// The owner thread's process's: a thread that exits holding the lock leaves it held (any
    /// thread may release it: Python's `multiprocessing.Lock`); it is taken over only once
    /// the whole process is gone.
    Process,
}

/// How the lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Normally: the protected data is as the last owner left it.
    Clean,
    /// After an owner that died holding it (taken over by an earlier owner, who did not declare
    /// the data consistent): the data may be half-updated.
    OwnerDead,
    /// Taken over just now from an owner that died holding it (`pid`: its process as the lock
    /// recorded it, 0 if not known): as `OwnerDead`, and the one event recovery reports.
    TookOver { pid: u32 },
}

impl Acquired {
    /// Whether an owner died holding the lock (`OwnerDead` or `TookOver`).
    pub(crate) fn owner_died(self) -> bool {
        self != Acquired::Clean
    }
}

crate::sync::native_only! {
    /// Polling slice while the owner is not watched.
    const OWNER_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

    /// Backstop slice while the owner is watched (the kernel reports its exit), or while it
    /// could never be judged dead anyway (it runs in another PID namespace).
    const WATCHED_OWNER_SLICE: std::time::Duration = std::time::Duration::from_secs(5);
}

/// Why [`LockState::sleep_contended`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slept {
    /// Woken (by an unlock, or spuriously): try again.
    Woken,
    /// A slice ended or the owner's death watch fired: look whether the owner died.
    Look,
    /// The caller's deadline passed (after a look).
    Deadline,
}

impl LockState {
    crate::sync::loom_only! {
        pub(crate) fn new() -> Self {
            crate::sync::owner::init_dead_set();
            Self {
                word: Futex::new(0),
                owner_pid: AtomicU32::new(0),
                owner_start: AtomicU64::new(0),
                owner_ns: AtomicU64::new(0),
                owner_proc: AtomicU64::new(0),
                takeovers: crate::sync::ModelCount::default(),
            }
        }
    }

    /// Takes a free lock with `bits` (`0` or `CONTENDED`) besides our id; keeps INCONSISTENT.
    #[inline]
    fn take_free(&self, w: u32, bits: u32) -> Option<Acquired> {
        if w & TID != 0 {
            return None;
        }
        let me = me();
        // SYNC: Acquire on success pairs with the Release swap in `unlock`: the previous owner's
        // writes to the protected data are visible to us.
        self.word
            .word()
            .compare_exchange(
                w,
                me | (w & INCONSISTENT) | bits,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        self.set_owner();
        Some(if w & INCONSISTENT != 0 {
            Acquired::OwnerDead
        } else {
            Acquired::Clean
        })
    }

    /// One attempt, never blocks (and never checks whether the owner is alive).
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Acquired> {
        self.take_free(self.word.word().load(Ordering::Relaxed), 0)
    }

    /// Takes the lock, sleeping while it is held; `None` if `deadline` passed first.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Option<Acquired> {
        self.lock_in(deadline, Scope::Thread)
    }

    /// Whether the owner in word `seen` is gone for `scope` (its thread, or its whole process),
    /// by the rules of `owner_dead` and `process_gone`.
    fn owner_gone(&self, seen: u32, scope: Scope) -> bool {
        let start = self.owner_start.load(Ordering::Relaxed);
        let ns = self.owner_ns.load(Ordering::Relaxed);
        owner_dead(seen & TID, start, ns)
            && (scope == Scope::Thread
                // The owner's pid and process stamp, written with the stamps `owner_dead` just
                // trusted (and the thread is gone: its writes are all visible).
                || process_gone(
                    seen & TID,
                    self.owner_pid.load(Ordering::Relaxed),
                    self.owner_proc.load(Ordering::Relaxed),
                ))
    }

    /// [`lock`](Self::lock), for an owner of `scope`.
    pub(crate) fn lock_in(&self, deadline: Option<Instant>, scope: Scope) -> Option<Acquired> {
        if let Some(a) = self.try_lock() {
            return Some(a);
        }
        let w = self.word.word();
        let mut backoff = Backoff::new();
        while !backoff.is_completed() {
            if let Some(a) = self.try_lock() {
                return Some(a);
            }
            backoff.snooze();
        }
        loop {
            let cur = w.load(Ordering::Relaxed);
            // Free: take it, marking it contended (others may sleep; we cannot know).
            if let Some(a) = self.take_free(cur, CONTENDED) {
                return Some(a);
            }
            if cur & TID == 0 {
                continue; // lost a race for a free lock
            }
            if cur & CONTENDED == 0
                && w.compare_exchange(cur, cur | CONTENDED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let seen = cur | CONTENDED;
            let slept = self.sleep_contended(seen, deadline, scope);
            if slept != Slept::Woken {
                // A dead owner never unlocks: take over from it (one CAS: one winner).
                if w.load(Ordering::Relaxed) == seen && self.owner_gone(seen, scope) {
                    // Read before the CAS, while the dead owner's stamp is still there.
                    let pid = self.owner_pid.load(Ordering::Relaxed);
                    let mine = me() | INCONSISTENT | CONTENDED;
                    // SYNC: Acquire, as in `take_free`; the dead owner's writes happened before
                    // it died, and we read its word.
                    if w.compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.takeovers.bump();
                        self.set_owner();
                        return Some(Acquired::TookOver { pid });
                    }
                }
                if slept == Slept::Deadline {
                    // The caller's own deadline: one last attempt.
                    return self.try_lock();
                }
            }
        }
    }

    crate::sync::native_only! {
    /// Sleeps on the word while it reads `seen` (owner thread `seen & TID`, contended). Natively
    /// the owner's thread is watched (a thread pidfd, `mapping::watch`) when it is one that could
    /// be judged dead, so its exit wakes us at once and we sleep in backstop slices; otherwise we
    /// poll in [`OWNER_SLICE`]s.
    fn sleep_contended(&self, seen: u32, deadline: Option<Instant>, scope: Scope) -> Slept {
        use crate::mapping::watch::{watch_thread, Watched};
        use crate::sync::futex::WakeAlso;
        use crate::sync::owner::{START_BITS, START_MASK};
        let tid = seen & TID;
        let ns = self.owner_ns.load(Ordering::Relaxed);
        let stamped = (ns >> START_BITS) as u32 == tid && ns & START_MASK != 0;
        let same_ns = ns & START_MASK == me_info().ns_stamp & START_MASK;
        // Watch first, look after (the caller's look follows any wake): an owner that exits
        // after the watch is armed wakes us, one that exited before is seen by the look.
        let (watched, also) = if stamped && same_ns {
            watch_thread(tid)
        } else {
            (Watched::Failed, None)
        };
        let (also, end) = match (watched, also) {
            // The owner thread has exited: look at once if it can be shown dead; if not (its
            // /proc cannot be read, say), poll as without a watch rather than spin.
            // (A process-scoped owner whose thread exited while its process lives on: poll.)
            (Watched::Gone, _) if self.owner_gone(seen, scope) => return Slept::Look,
            (Watched::Yes, Some(a)) => (
                Some(a),
                crate::sync::slice_end(deadline, crate::fault::watched_slice(WATCHED_OWNER_SLICE)),
            ),
            // Another namespace: never judged dead, nothing to look for often.
            _ if stamped && !same_ns => {
                (None, crate::sync::slice_end(deadline, WATCHED_OWNER_SLICE))
            }
            _ => (None, crate::sync::slice_end(deadline, OWNER_SLICE)),
        };
        // Without futex_waitv: poll.
        let (why, end) = self.word.wait_watched(
            seen,
            also.as_ref().map(core::slice::from_ref),
            end,
            OWNER_SLICE,
        );
        match why {
            WakeAlso::Own(Wake::Woken) => Slept::Woken,
            WakeAlso::Own(Wake::TimedOut) if end == deadline => Slept::Deadline,
            _ => Slept::Look,
        }
    }
    }

    crate::sync::loom_only! {
    /// Loom model of the contended sleep: the deadline is the only slice.
    fn sleep_contended(&self, seen: u32, deadline: Option<Instant>, _scope: Scope) -> Slept {
        match self.word.wait(seen, deadline) {
            Wake::Woken => Slept::Woken,
            Wake::TimedOut => Slept::Deadline,
        }
    }
    }

    /// Takes the lock, waiting as long as it takes, and taking it over from a dead owner (as
    /// `lock(None)` does natively). Under loom, where an untimed wait never looks at the owner,
    /// it waits in timed attempts, each of which looks once.
    pub(crate) fn lock_taking_over(&self) -> Acquired {
        self.lock_taking_over_in(Scope::Thread)
    }

    /// [`lock_taking_over`](Self::lock_taking_over), for an owner of `scope`.
    pub(crate) fn lock_taking_over_in(&self, scope: Scope) -> Acquired {
        loop {
            if let Some(a) = self.lock_in(crate::sync::model_round(), scope) {
                return a;
            }
            crate::sync::yield_now();
        }
    }

    /// Releases the lock (only a guard calls this). `consistent`: whether the owner declared the
    /// protected data consistent; if not, the next owner gets `OwnerDead` too.
    pub(crate) fn unlock(&self, consistent: bool) {
        self.owner_pid.store(0, Ordering::Relaxed);
        self.owner_start.store(0, Ordering::Relaxed);
        self.owner_ns.store(0, Ordering::Relaxed);
        self.owner_proc.store(0, Ordering::Relaxed);
        let next = if consistent { 0 } else { INCONSISTENT };
        // SYNC: Release pairs with the Acquire in `take_free`/`lock` of the next owner.
        if self.word.word().swap(next, Ordering::Release) & CONTENDED != 0 {
            self.word.wake(1);
        }
    }

    /// Releases the lock whoever holds it (for [`Lock::force_unlock`]), declaring the data
    /// consistent; `false` if it was not locked.
    pub(crate) fn unlock_any(&self) -> bool {
        let w = self.word.word();
        // Relaxed: a first look; the swap below is what releases.
        let mut cur = w.load(Ordering::Relaxed);
        loop {
            if cur & TID == 0 {
                return false;
            }
            // An owner writes its stamps just after its CAS: let one in that window finish,
            // or its late stamps would land on the next owner's lock (and that owner could then
            // never be judged dead). One killed in the window never writes them: a bound.
            self.await_stamps(cur & TID);
            // Stamps first, as `unlock` does: once the word is free a new owner writes its own.
            // Only the stamps of the owner in `cur`: had another release and a new owner's
            // stamps come in between, a blind zero would wipe the new owner's.
            self.clear_stamps_of(cur & TID);
            // SYNC: Release pairs with the Acquire in `take_free`/`lock` of the next owner, as
            // in `unlock`: what the caller wrote before releasing is visible to that owner.
            match w.compare_exchange(cur, 0, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    if cur & CONTENDED != 0 {
                        self.word.wake(1);
                    }
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }

    crate::sync::native_only! {
    /// Waits (briefly, bounded) until the stamps name owner thread `tid`, which writes them
    /// just after the CAS that took the word.
    fn await_stamps(&self, tid: u32) {
        use crate::sync::owner::START_BITS;
        for i in 0..1024 {
            if (self.owner_proc.load(Ordering::Relaxed) >> START_BITS) as u32 == tid {
                return;
            }
            if i < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
    }

    crate::sync::loom_only! {
    /// The models write no stamps.
    fn await_stamps(&self, _tid: u32) {}
    }

    /// Zeroes the owner stamps if they are thread `tid`'s (each carries its tid in its high
    /// bits). `owner_pid` is left: it is trusted only behind stamps of the word's tid.
    fn clear_stamps_of(&self, tid: u32) {
        use crate::sync::owner::START_BITS;
        for stamp in [&self.owner_start, &self.owner_ns, &self.owner_proc] {
            let v = stamp.load(Ordering::Relaxed);
            if (v >> START_BITS) as u32 == tid {
                // Relaxed, as every stamp access: readers trust a stamp only when its tid matches
                // the word's, which they read first.
                let _ = stamp.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// True if the calling thread holds it: its id is in the word and, natively, its start-time
    /// stamp beside it (a thread that reuses the id of an owner that exited holding the lock is
    /// not that owner).
    pub(crate) fn held_by_me(&self) -> bool {
        let me = me_info();
        // Relaxed: if the word names us, we wrote it (and the stamps after it) ourselves.
        self.word.word().load(Ordering::Relaxed) & TID == crate::sync::owner::me()
            && me.stamps().map_or(true, |(start, _, _)| {
                self.owner_start.load(Ordering::Relaxed) == start
            })
    }

    /// True if some thread holds it now (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.word.word().load(Ordering::Relaxed) & TID != 0
    }

    #[inline]
    fn set_owner(&self) {
        let me = me_info();
        self.owner_pid.store(me.pid, Ordering::Relaxed);
        // The loom models do not stamp (their owners are judged by `owner::die` alone).
        if let Some((start, ns, process)) = me.stamps() {
            self.owner_start.store(start, Ordering::Relaxed);
            self.owner_ns.store(ns, Ordering::Relaxed);
            // Last: `unlock_any` waits for this one (see there).
            self.owner_proc.store(process, Ordering::Relaxed);
        }
    }
}
