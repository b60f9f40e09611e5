//! Wait/wake on a 32-bit word that may live in memory shared between processes.
//!
//! Natively this is the Linux `futex(2)` system call through rustix, always **without**
//! `FUTEX_PRIVATE_FLAG`: a private futex is keyed by the virtual address in one process and would
//! never wake a waiter in another process (or in a second mapping of the same segment), so the
//! shared form keyed by the backing page is the only correct one here.
//!
//! Under loom the same type carries a loom `Mutex` + `Condvar` next to the word. `wait` checks the
//! word with the mutex held and sleeps on the condvar; `wake` takes the mutex and notifies. That
//! reproduces futex's atomic "check the value, then sleep" step, so a lost wake-up in the protocols
//! built on top shows up as a loom deadlock. A timed wait is modelled as one that gives up at once,
//! which explores every interleaving of "the deadline fires" against the other threads.
//!
//! References: [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html),
//! [futex(7)](https://man7.org/linux/man-pages/man7/futex.7.html).

use super::{AtomicU32, Ordering};
use std::time::Instant;

/// Why [`Futex::wait`] returned. Every variant may be spurious from the caller's point of view: the
/// caller re-checks its condition in all cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken by a `wake`, by a signal (EINTR), or the word no longer held `expected` (EAGAIN).
    Woken,
    /// The deadline passed (ETIMEDOUT). Callers make one last attempt and then report a timeout.
    TimedOut,
}

/// A 32-bit futex word. `#[repr(transparent)]` natively so it can overlay shared memory.
#[cfg_attr(not(shmq_loom), repr(transparent))]
#[derive(Debug)]
pub(crate) struct Futex {
    word: AtomicU32,
    #[cfg(shmq_loom)]
    mx: loom::sync::Mutex<()>,
    #[cfg(shmq_loom)]
    cv: loom::sync::Condvar,
}

impl Futex {
    #[cfg(shmq_loom)]
    pub(crate) fn new(v: u32) -> Self {
        Self {
            word: AtomicU32::new(v),
            mx: loom::sync::Mutex::new(()),
            cv: loom::sync::Condvar::new(),
        }
    }

    /// The word itself, for loads and read-modify-writes by the protocol using it.
    #[inline]
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// Sleeps while the word equals `expected`, until woken or until `deadline`.
    ///
    /// `futex(FUTEX_WAIT)` with a relative timeout recomputed from the absolute CLOCK_MONOTONIC
    /// deadline (`Instant` is CLOCK_MONOTONIC on Linux), so an EINTR loop never extends the wait.
    #[cfg(not(shmq_loom))]
    pub(crate) fn wait(&self, expected: u32, deadline: Option<Instant>) -> Wake {
        use rustix::io::Errno;
        use rustix::thread::futex;
        let ts;
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Wake::TimedOut;
                }
                let rem = d - now;
                ts = futex::Timespec {
                    tv_sec: rem.as_secs() as _,
                    tv_nsec: rem.subsec_nanos() as _,
                };
                Some(&ts)
            }
        };
        // Flags::empty(): a shared (non-private) futex, see the module docs.
        match futex::wait(&self.word, futex::Flags::empty(), expected, timeout) {
            Ok(()) => Wake::Woken,
            Err(Errno::TIMEDOUT) => Wake::TimedOut,
            // AGAIN: the word changed before we slept. INTR: a signal. Both: re-check and retry.
            Err(Errno::AGAIN) | Err(Errno::INTR) => Wake::Woken,
            // Anything else (ENOSYS or EPERM under a seccomp filter, say) means the futex cannot
            // be used; fall back to a short sleep so a blocking call polls instead of burning a
            // core. The caller re-checks its condition as after any wake.
            Err(_) => {
                let nap = std::time::Duration::from_millis(1);
                std::thread::sleep(match deadline {
                    Some(d) => nap.min(d.saturating_duration_since(Instant::now())),
                    None => nap,
                });
                Wake::Woken
            }
        }
    }

    /// Loom model of `wait`: see the module docs.
    #[cfg(shmq_loom)]
    pub(crate) fn wait(&self, expected: u32, deadline: Option<Instant>) -> Wake {
        let g = self.mx.lock().unwrap();
        // SYNC: the mutex orders this load after any `wake` that already ran (the waker bumps the
        // word before taking the mutex), which is the guarantee the kernel's bucket lock gives.
        if self.word.load(Ordering::Acquire) != expected {
            return Wake::Woken;
        }
        if deadline.is_some() {
            return Wake::TimedOut;
        }
        drop(self.cv.wait(g).unwrap());
        Wake::Woken
    }

    /// Wakes up to `n` waiters (`futex(FUTEX_WAKE)`, shared).
    #[cfg(not(shmq_loom))]
    pub(crate) fn wake(&self, n: u32) -> u32 {
        let n = n.min(i32::MAX as u32);
        // An error here (EFAULT/EINVAL) cannot happen for a valid, aligned reference; a failed wake
        // would at worst leave a waiter to its deadline, so it counts as waking nobody.
        rustix::thread::futex::wake(&self.word, rustix::thread::futex::Flags::empty(), n)
            .map_or(0, |woken| woken as u32)
    }

    /// Loom model of `wake`.
    #[cfg(shmq_loom)]
    pub(crate) fn wake(&self, n: u32) -> u32 {
        let _g = self.mx.lock().unwrap();
        if n == 1 {
            self.cv.notify_one();
        } else {
            self.cv.notify_all();
        }
        // The condvar does not say how many it woke; nobody acts on "woke none" under loom.
        n
    }

    /// Bumps the word (an epoch counter) and wakes up to `n` waiters; returns how many the
    /// kernel woke.
    ///
    /// SYNC: the Release increment pairs with the Acquire load of the epoch in the waiter's
    /// registration step (`WaitCell::register`): a waiter that reads the new epoch also sees
    /// everything published before the bump.
    #[inline]
    pub(crate) fn bump_and_wake(&self, n: u32) -> u32 {
        self.word.fetch_add(1, Ordering::Release);
        self.wake(n)
    }
}
