//! Who the calling thread is, as a lock owner records it, and whether a recorded owner thread is
//! gone: natively the kernel's thread id, start time and PID namespace (read through `crate::os`,
//! judged by the rules of docs/design.md, "Liveness"); under loom a model thread's number and a
//! set of model threads that called [`die`].

#[cfg(shmq_loom)]
use crate::sync::{AtomicU32, AtomicU64, Ordering};

pub(crate) const TID: u32 = (1 << 30) - 1;

/// Bits of a stamp's low part (`tid << START_BITS | value`).
pub(crate) const START_BITS: u32 = 40;

/// Mask of a stamp's low part.
pub(crate) const START_MASK: u64 = (1 << START_BITS) - 1;

/// Who the calling thread is, as a lock owner records it.
#[cfg(not(shmq_loom))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Me {
    pub(crate) tid: u32,
    /// `tid << 40 | thread start time` (0 in the low bits: unknown), for `owner_start`.
    pub(crate) start_stamp: u64,
    /// `tid << 40 | PID namespace` (0 in the low bits: unknown), for `owner_ns`.
    pub(crate) ns_stamp: u64,
    /// `tid << 40 | the process's start time` (0 in the low bits: unknown), for `owner_proc`.
    pub(crate) proc_stamp: u64,
    pub(crate) pid: u32,
    /// [`os::fork_generation`](crate::os::fork_generation) this was read under.
    forks: u64,
}

#[cfg(not(shmq_loom))]
thread_local! {
    /// Read once per thread (and again in a forked child), so that taking a lock makes no
    /// system call.
    static ME: std::cell::Cell<Option<Me>> = const { std::cell::Cell::new(None) };
}

#[cfg(not(shmq_loom))]
pub(crate) fn me_info() -> Me {
    use crate::os;
    let forks = os::fork_generation();
    if let Some(m) = ME.with(|m| m.get()).filter(|m| m.forks == forks) {
        return m;
    }
    let tid = os::thread_id() & TID;
    let start = os::thread_start_time(tid).unwrap_or(0);
    let (pid, proc_start, pidns) = os::self_identity();
    let m = Me {
        tid,
        start_stamp: (tid as u64) << START_BITS | (start & START_MASK),
        ns_stamp: (tid as u64) << START_BITS | (pidns & START_MASK),
        proc_stamp: (tid as u64) << START_BITS | (proc_start & START_MASK),
        pid,
        forks,
    };
    ME.with(|c| c.set(Some(m)));
    m
}

/// The calling thread's id as stored in lock words (never 0).
#[cfg(not(shmq_loom))]
pub(crate) fn me() -> u32 {
    me_info().tid
}

#[cfg(shmq_loom)]
pub(crate) fn me() -> u32 {
    loom::lazy_static! {
        static ref NEXT: AtomicU32 = AtomicU32::new(1);
    }
    loom::thread_local! {
        static TID_CACHE: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TID_CACHE.with(|t| *t)
}

/// Whether the owner thread `tid` is known to be gone. `stamp` and `ns` are the lock's
/// `owner_start` and `owner_ns`, trusted only when written by that same tid (each carries it in
/// its high bits): a thread id means something only inside its PID namespace, so an owner whose
/// namespace is another, unknown, or not yet written (it is between its CAS and its stores) is
/// never judged dead; nor is one whose start time could not be read (0) on the strength of a
/// start-time mismatch.
#[cfg(not(shmq_loom))]
pub(crate) fn owner_dead(tid: u32, stamp: u64, ns: u64) -> bool {
    use crate::os::{thread_state, ProcState};
    let me = me_info();
    if tid == me.tid {
        return false; // we are alive (a thread never waits on its own lock word, but be sure)
    }
    let ours = |s: u64| (s >> START_BITS) as u32 == tid;
    if !ours(ns) || ns & START_MASK == 0 || ns & START_MASK != me.ns_stamp & START_MASK {
        return false;
    }
    match thread_state(tid) {
        ProcState::Dead => true,
        ProcState::Alive(t) => {
            let start = stamp & START_MASK;
            ours(stamp) && start != 0 && start != t & START_MASK
        }
        // /proc cannot tell: never take a lock over on a guess.
        ProcState::Unknown => false,
    }
}

/// Whether the process of owner thread `tid` is gone for sure: `pid` and `stamp` are the lock's
/// `owner_pid` and `owner_proc` (`tid << 40 | process start time`), trusted only when the stamp
/// names `tid` (written with the other stamps, after the pid); the caller has checked that the
/// owner ran in our PID namespace. Gone: `/proc` shows no such process, or a zombie, or another
/// process under the pid (another start time). A pid of 0, an untrusted stamp, an unreadable
/// `/proc` or a live process: not gone.
#[cfg(not(shmq_loom))]
pub(crate) fn process_gone(tid: u32, pid: u32, stamp: u64) -> bool {
    let ns = crate::os::self_identity().2;
    if pid == 0 || ns == 0 || (stamp >> START_BITS) as u32 != tid || stamp & START_MASK == 0 {
        return false;
    }
    !crate::os::process_alive(pid, stamp & START_MASK, ns)
}

/// Under loom a model thread is its own process.
#[cfg(shmq_loom)]
pub(crate) fn process_gone(_tid: u32, _pid: u32, _stamp: u64) -> bool {
    true
}

#[cfg(shmq_loom)]
loom::lazy_static! {
    /// Bit `tid` set: model thread `tid` has died (see [`die`]).
    static ref DEAD: AtomicU64 = AtomicU64::new(0);
}

/// Initialises the dead set now (call it where a model's shared state is made): loom orders
/// every use of a lazy static after its initialisation, so a set first touched by a dying thread
/// would order that thread's last writes before every later look at the set, hiding a missing
/// edge from the death.
#[cfg(shmq_loom)]
pub(crate) fn init_dead_set() {
    DEAD.load(Ordering::Relaxed);
}

/// Under loom a thread is dead once it has called [`die`].
#[cfg(shmq_loom)]
pub(crate) fn owner_dead(tid: u32, _start: u64, _ns: u64) -> bool {
    // SYNC: Acquire pairs with the Release in `die`: everything the owner did before it died (its
    // writes to the protected data) is visible to whoever sees it dead, as a process's last writes
    // are to whoever sees it gone from /proc.
    tid < 64 && DEAD.load(Ordering::Acquire) & 1 << tid != 0
}

/// Natively nothing: only a loom model thread "dies" by calling this (a real thread dies by being
/// killed, and no code path calls this then).
#[cfg(not(shmq_loom))]
pub(crate) fn die() {}

/// Marks the calling model thread dead. It must be the thread's last action: a dead thread never
/// unlocks what it holds, and `owner_dead` reports it dead from then on.
#[cfg(shmq_loom)]
pub(crate) fn die() {
    let me = me();
    assert!(me < 64, "more model threads than the dead set holds");
    // SYNC: Release pairs with the Acquire in `owner_dead`.
    DEAD.fetch_or(1 << me, Ordering::Release);
}

impl Me {
    /// The start-time and namespace stamps this owner writes beside the lock word.
    #[cfg(not(shmq_loom))]
    pub(crate) fn stamps(&self) -> Option<(u64, u64, u64)> {
        Some((self.start_stamp, self.ns_stamp, self.proc_stamp))
    }
}

/// A model thread as a lock owner: its number and a stand-in pid; it writes no stamps.
#[cfg(shmq_loom)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Me {
    pub(crate) pid: u32,
    pub(crate) ns_stamp: u64,
}

#[cfg(shmq_loom)]
impl Me {
    pub(crate) fn stamps(&self) -> Option<(u64, u64, u64)> {
        None
    }
}

/// Under loom: pid 1 for every model thread.
#[cfg(shmq_loom)]
pub(crate) fn me_info() -> Me {
    Me {
        pid: 1,
        ns_stamp: 0,
    }
}
