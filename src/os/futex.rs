//! The futex system calls: `futex(2)` wait and wake, `futex_waitv(2)`. The [`Futex`] type, its
//! protocol helpers and its loom model live in `sync::futex`; this file only makes the calls.
//!
//! [`Futex`]: crate::sync::futex::Futex

use crate::sync::AtomicU32;
use rustix::thread::futex;
use std::time::Duration;

/// How a wait ended, as the kernel said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// Woken (for `waitv`: by word `i` of the list).
    Woken(usize),
    /// The timeout passed (ETIMEDOUT).
    TimedOut,
    /// A word did not hold its expected value (EAGAIN), or a signal came (EINTR).
    Again,
    /// The call is not available (ENOSYS, or EPERM under a seccomp filter, say).
    Refused,
}

fn waited(r: rustix::io::Result<usize>) -> Waited {
    use rustix::io::Errno;
    match r {
        Ok(i) => Waited::Woken(i),
        Err(Errno::TIMEDOUT) => Waited::TimedOut,
        Err(Errno::AGAIN) | Err(Errno::INTR) => Waited::Again,
        Err(_) => Waited::Refused,
    }
}

/// `futex(FUTEX_WAIT)` on `word` while it holds `expected`, for at most `timeout`. Always the
/// shared (non-private) form: a private futex is keyed by virtual address and would never wake a
/// waiter in another process (see `sync::futex`).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Waited {
    let ts = timeout.map(|t| futex::Timespec {
        tv_sec: t.as_secs() as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    waited(futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()).map(|()| 0))
}

/// `futex(FUTEX_WAKE)`: wakes up to `n` waiters of `word` (with `private`, only those that wait
/// with `FUTEX_PRIVATE_FLAG`); returns how many it woke. An error (EFAULT/EINVAL, impossible for
/// a valid, aligned reference) counts as waking nobody.
pub(crate) fn wake(word: &AtomicU32, n: u32, private: bool) -> u32 {
    let flags = if private {
        futex::Flags::PRIVATE
    } else {
        futex::Flags::empty()
    };
    futex::wake(word, flags, n.min(i32::MAX as u32)).map_or(0, |woken| woken as u32)
}

/// One word of a [`waitv`]: the word, the value it must hold, and whether it is private.
pub(crate) type WaitvEntry<'a> = (&'a AtomicU32, u32, bool);

/// Most words one [`waitv`] takes here (the kernel allows 128).
pub(crate) const WAITV_MAX: usize = 4;

/// `futex_waitv(2)` (Linux 5.16): sleeps until any of `words` is woken or no longer holds its
/// value, for at most `timeout`. At most [`WAITV_MAX`] words.
pub(crate) fn waitv(words: &[WaitvEntry<'_>], timeout: Option<Duration>) -> Waited {
    if words.len() > WAITV_MAX {
        return Waited::Refused;
    }
    // futex_waitv takes an absolute time on the clock named (CLOCK_MONOTONIC: `Instant`'s).
    let ts = timeout.map(|t| {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let nanos = now.tv_nsec as u64 + u64::from(t.subsec_nanos());
        futex::Timespec {
            tv_sec: now.tv_sec + t.as_secs() as i64 + (nanos / 1_000_000_000) as i64,
            tv_nsec: (nanos % 1_000_000_000) as _,
        }
    });
    let mut waits = [futex::Wait::new(); WAITV_MAX];
    for (w, &(word, val, private)) in waits.iter_mut().zip(words) {
        w.val = u64::from(val);
        w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
        w.flags = if private {
            futex::WaitFlags::SIZE_U32 | futex::WaitFlags::PRIVATE
        } else {
            futex::WaitFlags::SIZE_U32
        };
    }
    waited(futex::waitv(
        &waits[..words.len()],
        futex::WaitvFlags::empty(),
        ts.as_ref(),
        rustix::time::ClockId::Monotonic,
    ))
}
