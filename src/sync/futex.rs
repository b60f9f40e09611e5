//! Wait/wake on a 32-bit word that may live in memory shared between processes.
//!
//! Natively this is the Linux `futex(2)` system call (made in `os::futex`), always **without**
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

/// Another word a sleeper in [`Futex::wait_also`] also wakes on, with the value it expects there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlsoWake<'a> {
    pub(crate) word: &'a AtomicU32,
    pub(crate) expected: u32,
    /// Woken only from this process (`FUTEX_PRIVATE_FLAG` on both sides).
    pub(crate) private: bool,
}

/// Why [`Futex::wait_also`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WakeAlso {
    /// As [`Futex::wait`] would have returned.
    Own(Wake),
    /// `also[i]` changed or was woken.
    Other(usize),
}

/// Time left until `deadline`: `None` without one, `Some(None)` once it passed.
#[cfg(not(shmq_loom))]
fn remaining(deadline: Option<Instant>) -> Option<Option<std::time::Duration>> {
    deadline.map(|d| {
        d.checked_duration_since(Instant::now())
            .filter(|r| !r.is_zero())
    })
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
        use crate::os::futex::{wait, Waited};
        let timeout = match remaining(deadline) {
            None => None,
            Some(None) => return Wake::TimedOut,
            Some(Some(rem)) => Some(rem),
        };
        match wait(&self.word, expected, timeout) {
            Waited::Woken(_) => Wake::Woken,
            Waited::TimedOut => Wake::TimedOut,
            // The word changed before we slept, or a signal: re-check and retry.
            Waited::Again => Wake::Woken,
            // The futex cannot be used (ENOSYS or EPERM under a seccomp filter, say): fall back
            // to a short sleep so a blocking call polls instead of burning a core. The caller
            // re-checks its condition as after any wake.
            Waited::Refused => {
                let nap = std::time::Duration::from_millis(1);
                std::thread::sleep(match deadline {
                    Some(d) => nap.min(d.saturating_duration_since(Instant::now())),
                    None => nap,
                });
                Wake::Woken
            }
        }
    }

    /// Sleeps like [`wait`](Self::wait), and also wakes when any of `also` no longer holds its
    /// expected value or is woken (`futex_waitv(2)`, Linux 5.16). `None` if the kernel does not
    /// offer `futex_waitv` (or a seccomp filter refuses it): the caller then sleeps with `wait`
    /// and polls for what `also` would have told it. Once refused, it is not tried again.
    #[cfg(not(shmq_loom))]
    pub(crate) fn wait_also(
        &self,
        expected: u32,
        also: &[AlsoWake<'_>],
        deadline: Option<Instant>,
    ) -> Option<WakeAlso> {
        use crate::os::futex::{waitv, Waited, WaitvEntry, WAITV_MAX};
        use std::sync::atomic::{AtomicBool, Ordering as StdOrdering}; // shim-exempt: process-local
        static REFUSED: AtomicBool = AtomicBool::new(false); // shim-exempt: process-local
        if REFUSED.load(StdOrdering::Relaxed) || also.len() >= WAITV_MAX {
            return None;
        }
        let timeout = match remaining(deadline) {
            None => None,
            Some(None) => return Some(WakeAlso::Own(Wake::TimedOut)),
            Some(Some(rem)) => Some(rem),
        };
        // Own word shared (see the module docs); an `also` word is private when only this
        // process ever wakes it.
        let mut words: [WaitvEntry<'_>; WAITV_MAX] = [(&self.word, expected, false); WAITV_MAX];
        for (w, a) in words[1..].iter_mut().zip(also) {
            *w = (a.word, a.expected, a.private);
        }
        match waitv(&words[..also.len() + 1], timeout) {
            Waited::Woken(0) => Some(WakeAlso::Own(Wake::Woken)),
            Waited::Woken(i) => Some(WakeAlso::Other(i - 1)),
            Waited::TimedOut => Some(WakeAlso::Own(Wake::TimedOut)),
            // One of the words no longer held its value (or a signal): which one, we look.
            Waited::Again => Some(
                match also
                    .iter()
                    .position(|a| a.word.load(Ordering::Relaxed) != a.expected)
                {
                    Some(i) => WakeAlso::Other(i),
                    None => WakeAlso::Own(Wake::Woken),
                },
            ),
            Waited::Refused => {
                REFUSED.store(true, StdOrdering::Relaxed);
                None
            }
        }
    }

    /// Sleeps until `end` on this word and, given `also`, on those words too
    /// ([`wait_also`](Self::wait_also)). Where the kernel refuses to wait on several words, it
    /// sleeps on this word alone for at most `poll`, so that the caller looks in time for what
    /// `also` would have told it. Returns why it woke and the end it slept towards.
    pub(crate) fn wait_watched(
        &self,
        expected: u32,
        also: Option<&[AlsoWake<'_>]>,
        end: Option<Instant>,
        poll: std::time::Duration,
    ) -> (WakeAlso, Option<Instant>) {
        if let Some(also) = also {
            if let Some(why) = self.wait_also(expected, also, end) {
                return (why, end);
            }
            let end = super::slice_end(end, poll);
            return (WakeAlso::Own(self.wait(expected, end)), end);
        }
        (WakeAlso::Own(self.wait(expected, end)), end)
    }

    /// Loom model of `wait_also`: no model wakes the other words, so it is never offered and
    /// callers sleep with `wait` (as where the kernel refuses `futex_waitv`).
    #[cfg(shmq_loom)]
    pub(crate) fn wait_also(
        &self,
        _expected: u32,
        _also: &[AlsoWake<'_>],
        _deadline: Option<Instant>,
    ) -> Option<WakeAlso> {
        None
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

    /// Wakes up to `n` waiters (`futex(FUTEX_WAKE)`, shared); returns how many it woke. A
    /// failed wake would at worst leave a waiter to its deadline.
    #[cfg(not(shmq_loom))]
    pub(crate) fn wake(&self, n: u32) -> u32 {
        crate::os::futex::wake(&self.word, n, false)
    }

    /// Wakes every waiter that waits on this word with `FUTEX_PRIVATE_FLAG` (a word only this
    /// process waits on and wakes; see [`AlsoWake::private`]).
    #[cfg(not(shmq_loom))]
    pub(crate) fn wake_private_all(word: &AtomicU32) {
        crate::os::futex::wake(word, u32::MAX, true);
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
