//! The `Condition` handle.

use super::*;
use crate::objects::condition::CondState;

/// A condition variable shared between processes, with its own [`RLock`] (Python's
/// `multiprocessing.Condition()`).
///
/// Take the lock with [`lock`](Self::lock); [`wait`](Self::wait) releases it (every level this
/// thread holds), sleeps until a [`notify`](Self::notify) or [`notify_all`](Self::notify_all)
/// from any process, and takes it back. Notifying needs the lock too: a notify and a wait are
/// then ordered by it, so no wake-up is lost. A waiter may also wake without a notify meant for
/// it (several woken for one change, say): loop on the condition, or use
/// [`wait_for`](Self::wait_for). When waiters wait for different conditions, notify them all:
/// a `notify(1)` may go to one whose condition is still false, which then sleeps again.
///
/// If a process dies holding the lock, the next taker, a waiter taking it back included, gets
/// [`LockError::OwnerDead`] with the guard, as with [`Lock`].
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-cond")
///     .condition("c")
///     .value::<u32>("ready", 0)
///     .create_or_replace()?;
/// let (c, ready) = (seg.condition("c")?, seg.value::<u32>("ready")?);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let _g = c.lock().unwrap();
///         ready.store(1);
///         c.notify_all().unwrap();
///     });
///     let g = c.lock().unwrap();
///     let _g = c.wait_for(g, || ready.load() == 1, None).unwrap();
/// });
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: RLock,
    state: Ptr<CondState>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.lock.is_locked())
            .finish()
    }
}

/// [`Condition::notify`] without holding the condition's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

impl std::fmt::Display for NotOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot notify on an un-acquired lock")
    }
}

impl std::error::Error for NotOwner {}

impl Condition {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8) -> Self {
        Self {
            lock: RLock::from_raw(seg, p),
            // SAFETY: the segment lookup checked the region (3 * BLOCK bytes, 128-aligned, kept
            // mapped by the RLock's Arc): the RLock's two blocks, then the CondState.
            state: unsafe { Ptr::new(p.add(2 * BLOCK as usize)) },
        }
    }

    /// Takes the condition's lock (see [`RLock::lock`]).
    pub fn lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.lock.lock()
    }

    /// The condition's lock.
    pub fn rlock(&self) -> &RLock {
        &self.lock
    }

    /// Releases the lock, sleeps until notified, and takes the lock back (at the depth `guard`'s
    /// thread held it). May return without a notify meant for this waiter.
    pub fn wait<'a>(
        &'a self,
        guard: RLockGuard<'a>,
    ) -> Result<RLockGuard<'a>, LockError<RLockGuard<'a>>> {
        self.wait_until(guard, None).map(|(g, _)| g)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; the flag says whether it timed out.
    pub fn wait_timeout<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        timeout: Duration,
    ) -> Result<(RLockGuard<'a>, bool), LockError<RLockGuard<'a>>> {
        self.wait_until(guard, deadline(timeout))
    }

    /// Waits until `done()` is true (checked with the lock held, before the first wait and after
    /// every wake-up), or `timeout` passes; returns the guard and whether `done()` held at the
    /// end (Python's `wait_for`).
    pub fn wait_for<'a>(
        &'a self,
        mut guard: RLockGuard<'a>,
        mut done: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<RLockGuard<'a>, LockError<RLockGuard<'a>>> {
        let end = timeout.and_then(deadline);
        while !done() {
            if end.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            guard = self.wait_until(guard, end)?.0;
        }
        Ok(guard)
    }

    fn wait_until<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        end: Option<Instant>,
    ) -> Result<(RLockGuard<'a>, bool), LockError<RLockGuard<'a>>> {
        let state = self.state.get();
        // Under the lock: register and read the sequence, then let the lock go.
        let seen = state.prepare();
        let saved = self.lock.release_all(guard);
        let woke = state.wait(seen, end);
        let g = self.lock.restore(saved)?;
        Ok((g, woke == crate::sync::futex::Wake::TimedOut))
    }

    /// Wakes up to `n` waiters, in any process. The calling thread must hold the lock.
    pub fn notify(&self, n: u32) -> Result<(), NotOwner> {
        if !self.lock.held_by_me() {
            return Err(NotOwner);
        }
        self.state.get().notify(n);
        Ok(())
    }

    /// Wakes every waiter. The calling thread must hold the lock.
    pub fn notify_all(&self) -> Result<(), NotOwner> {
        self.notify(u32::MAX)
    }
}

impl crate::SegmentBuilder {
    /// Adds a [`Condition`](crate::Condition) with its own [`RLock`](crate::RLock).
    pub fn condition(self, name: &str) -> Self {
        self.object(name, ObjectKind::Condition, untyped(), 0, 0)
    }
}

impl crate::Segment {
    /// Looks up a condition variable.
    pub fn condition(&self, name: &str) -> Result<crate::Condition, OpenError> {
        let o = self.inner.object(name, ObjectKind::Condition, None)?;
        Ok(crate::Condition::from_raw(self.inner.clone(), o.base))
    }
}
