//! The death watch: a blocked waiter learns from the kernel that a peer died, instead of waking
//! every few milliseconds to look.
//!
//! A waiter blocked behind a peer (a getter on an empty queue, a putter on a full one) must notice
//! within milliseconds when that peer dies: the peer may hold the claim it waits behind, or be the
//! last producer (the getter then reports `Disconnected`). Polling for that costs wake-ups while
//! idle. Instead, one thread per process (started at the first such sleep) holds a `pidfd` for
//! every process that holds a participant record in a segment some thread of ours sleeps on, and
//! blocks in `epoll_wait` on them. When one becomes readable (its process exited) the thread bumps
//! [`Watcher::deaths`] and wakes every sleeper of this process waiting on it. A sleeper waits with
//! `futex_waitv` on four words at once: its wait cell, the segment's `members` epoch (bumped by
//! every record take, so a process that joins after the sleeper looked is not missed), its
//! `leaves` epoch (bumped by every record release: a producer thread that exits cleanly may be the
//! last one, and no process dies to say so), and `deaths`.
//!
//! The watch only *wakes*; it never decides anything. Whoever wakes runs the usual recovery pass,
//! whose verdicts come from [`os::process_alive`] as before. So a watched pid that was reused, a
//! spurious wake-up, or a watcher that could not be started costs at most a wasted pass or a
//! fallback to short sleep slices, never a wrong verdict.
//!
//! Processes of another PID namespace (or of an unknown one) are not watched: a pid from there
//! names somebody else here, and such a process is never judged dead anyway, so there is nothing
//! its death could let a sleeper do.

use super::Inner;
use crate::layout::PID_TAKING;
use crate::os;
use crate::sync::futex::{AlsoWake, Futex};
use crate::sync::local::{AtomicBool, AtomicPtr};
use crate::sync::Ordering as StdOrdering;
use crate::sync::{AtomicU32, Ordering};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// One process's watcher (one per fork generation: a `fork()`ed child does not inherit the
/// parent's thread, so it starts its own).
struct Watcher {
    forks: u64,
    poller: os::Poller,
    /// Every watched process (key: its pid) or thread (key: `THREAD | tid`), with its pidfd.
    watched: Mutex<HashMap<u64, OwnedFd>>,
    /// +1 each time a watched process exits. Process-local memory: waited on and woken with
    /// `FUTEX_PRIVATE_FLAG`.
    deaths: AtomicU32,
    /// The thread could not be started or its `epoll_wait` failed: sleepers fall back to
    /// polling.
    broken: AtomicBool,
}

/// The current generation's watcher, leaked (it lives as long as the process).
static WATCHER: AtomicPtr<Watcher> = AtomicPtr::new(core::ptr::null_mut());

fn watcher() -> Option<&'static Watcher> {
    let forks = os::fork_generation();
    let cur = WATCHER.load(StdOrdering::Acquire);
    if !cur.is_null() {
        // SAFETY: a non-null WATCHER points to a leaked `Box<Watcher>`, never freed.
        let w = unsafe { &*cur };
        if w.forks == forks {
            return (!w.broken.load(StdOrdering::Relaxed)).then_some(w);
        }
    }
    let new_ptr = Box::into_raw(Box::new(Watcher {
        forks,
        poller: os::Poller::new().ok()?,
        watched: Mutex::new(HashMap::new()),
        deaths: AtomicU32::new(0),
        broken: AtomicBool::new(false),
    }));
    // SYNC: AcqRel: Release publishes the new watcher's fields to threads that load it with
    // Acquire above; Acquire (on failure) reads the fields of the one another thread installed.
    match WATCHER.compare_exchange(cur, new_ptr, StdOrdering::AcqRel, StdOrdering::Acquire) {
        Ok(_) => {
            // SAFETY: installed, so from now on it is never freed (see WATCHER).
            let new: &'static Watcher = unsafe { &*new_ptr };
            // A parent's watcher (we are a forked child) is left as it is: its thread did not
            // come along, and its pidfds and epoll descriptor are copies we leave open rather
            // than close by number (this process may have closed and reused those numbers).
            let spawned = std::thread::Builder::new()
                .name("shmq-deathwatch".into())
                .spawn(move || run(new));
            if spawned.is_err() {
                new.broken.store(true, StdOrdering::Relaxed);
                return None;
            }
            Some(new)
        }
        Err(other) => {
            // Lost the race: nobody saw ours.
            // SAFETY: `new_ptr` came from `Box::into_raw` above and was never published.
            drop(unsafe { Box::from_raw(new_ptr) });
            // SAFETY: as above.
            let w = unsafe { &*other };
            (w.forks == forks && !w.broken.load(StdOrdering::Relaxed)).then_some(w)
        }
    }
}

/// Key bit of a watched thread (a process's key is its pid).
const THREAD: u64 = 1 << 32;

/// What [`watch`] did.
pub(crate) enum Watched {
    /// Watched (now or already).
    Yes,
    /// No such process or thread in our namespace.
    Gone,
    /// No pidfd (see [`os::Pidfd::Failed`]), or it could not join the poller.
    Failed,
}

/// Most pidfds one process keeps: a quarter of its descriptor limit, at most 256. Past it, a
/// sleeper falls back to polling rather than take descriptors the application needs.
fn max_watched() -> usize {
    use std::sync::OnceLock;
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| (os::open_files_limit() / 4).min(256) as usize)
}

/// Makes `w` watch `key` (see [`THREAD`]), with `map` its locked watch list.
fn watch(w: &Watcher, map: &mut HashMap<u64, OwnedFd>, key: u64) -> Watched {
    if map.contains_key(&key) {
        return Watched::Yes;
    }
    if map.len() >= max_watched() {
        return Watched::Failed;
    }
    match os::pidfd_open(key as u32, key & THREAD != 0) {
        // A zombie (killed, not yet reaped by its parent) still has a pidfd, readable at once:
        // watching it would report its exit again after every rescan, for as long as it stays
        // unreaped. It has exited: that is what the caller's look needs to know.
        os::Pidfd::Open(fd) if os::readable(&fd) => Watched::Gone,
        os::Pidfd::Open(fd) => {
            if w.poller.add(&fd, key).is_err() {
                return Watched::Failed;
            }
            map.insert(key, fd);
            Watched::Yes
        }
        os::Pidfd::Gone => Watched::Gone,
        os::Pidfd::Failed => Watched::Failed,
    }
}

/// Watches thread `tid` of our PID namespace (a lock's owner): returns what happened and, unless
/// it failed, the word to sleep on beside the lock word (it changes once a watched thread or
/// process exits). Call it before the last look at the owner ahead of a sleep, as
/// `Inner::watch_peers`.
pub(crate) fn watch_thread(tid: u32) -> (Watched, Option<AlsoWake<'static>>) {
    if cfg!(miri) {
        return (Watched::Failed, None);
    }
    let Some(w) = watcher() else {
        return (Watched::Failed, None);
    };
    // SYNC: Acquire pairs with the watcher's Release bump.
    let d = w.deaths.load(Ordering::Acquire);
    let mut map = w.watched.lock().unwrap_or_else(|p| p.into_inner());
    let r = watch(w, &mut map, THREAD | u64::from(tid));
    let word = AlsoWake {
        word: &w.deaths,
        expected: d,
        private: true,
    };
    match r {
        Watched::Failed => (r, None),
        r => (r, Some(word)),
    }
}

/// The watcher thread: forever waits for watched processes to exit.
fn run(w: &'static Watcher) {
    loop {
        match w.poller.wait() {
            Ok(keys) if keys.is_empty() => continue,
            Ok(keys) => {
                let mut m = w.watched.lock().unwrap_or_else(|p| p.into_inner());
                for k in keys {
                    if let Some(fd) = m.remove(&k) {
                        w.poller.remove(&fd);
                    }
                }
            }
            Err(_) => w.broken.store(true, StdOrdering::Relaxed),
        }
        // SYNC: Release pairs with the sleepers' Acquire load in `watch_peers`: a sleeper that
        // reads the new count also sees the watched set without the dead process.
        w.deaths.fetch_add(1, Ordering::Release);
        Futex::wake_private_all(&w.deaths);
        if w.broken.load(StdOrdering::Relaxed) {
            return;
        }
    }
}

impl Inner {
    /// Makes sure every process holding a participant record here is watched, and returns the
    /// words to sleep on besides the wait cell: `members`, `leaves`, then `deaths`. Call it *before* the last recovery pass ahead of a sleep: a peer that
    /// dies after this call wakes the sleeper, one that died before it is seen by that pass.
    /// `None` if the watch cannot cover every peer (no watcher thread, no pidfd for one of
    /// them): the caller then polls in short slices.
    pub(crate) fn watch_peers(&self) -> Option<[AlsoWake<'_>; 3]> {
        if cfg!(miri) {
            return None; // no threads blocking in syscalls under the interpreter
        }
        let w = watcher()?;
        let members = &self.header().members;
        // SYNC: Acquire pairs with the Release bump in `claim_record` (after the taker's pid
        // store): a count that includes a take shows its record to the scan below.
        let m = members.word().load(Ordering::Acquire);
        // SYNC: Acquire pairs with the watcher's Release bump.
        let d = w.deaths.load(Ordering::Acquire);
        let leaves = &self.header().leaves;
        // SYNC: Acquire pairs with the Release bump in `announce_leave`.
        let l = leaves.word().load(Ordering::Acquire);
        let key = u64::from(m) << 32 | u64::from(d);
        let by = w as *const Watcher as usize;
        if self.armed.load(StdOrdering::Relaxed) != key
            || self.armed_by.load(StdOrdering::Relaxed) != by
        {
            let (me, _, ns) = os::self_identity();
            let mut map = w.watched.lock().unwrap_or_else(|p| p.into_inner());
            for i in 0..self.part_count {
                let r = self.record(i);
                let pid = r.pid.load(Ordering::Acquire);
                let pidns = r.pidns.load(Ordering::Relaxed);
                // A record being taken bumps `members` when done; one of another or unknown
                // namespace is never judged dead (module docs); our own threads need no watch.
                if pid == 0 || pid == PID_TAKING || pid == me || pidns == 0 || pidns != ns {
                    continue;
                }
                // Already gone: the caller's recovery pass, which follows, sees it dead.
                if let Watched::Failed = watch(w, &mut map, u64::from(pid)) {
                    return None;
                }
            }
            self.armed.store(key, StdOrdering::Relaxed);
            self.armed_by.store(by, StdOrdering::Relaxed);
        }
        Some([
            AlsoWake {
                word: members.word(),
                expected: m,
                private: false,
            },
            AlsoWake {
                word: leaves.word(),
                expected: l,
                private: false,
            },
            AlsoWake {
                word: &w.deaths,
                expected: d,
                private: true,
            },
        ])
    }

    /// Tells sleepers that watch this segment's participants that a record was taken (see the
    /// module docs). Called once per record take, so at most once per thread and segment.
    pub(crate) fn announce_member(&self) {
        // SYNC: Release pairs with the Acquire load in `watch_peers`: whoever reads the new
        // count sees the record (its pid store happened before this bump).
        self.header().members.bump_and_wake(u32::MAX);
    }

    /// Tells sleepers that a record was released: a producer that left cleanly may have been
    /// the last one, and no process died to say so.
    pub(crate) fn announce_leave(&self) {
        // SYNC: Release pairs with the Acquire load in `watch_peers`: whoever reads the new
        // count sees the record free (`release` stored its pid 0 before this bump).
        self.header().leaves.bump_and_wake(u32::MAX);
    }
}
