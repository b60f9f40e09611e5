//! The `Lock` handle.

use super::*;

/// A mutex shared between processes (a futex word in the segment), robust against its holder
/// dying.
///
/// Only a [`LockGuard`] unlocks it, so a process cannot release a lock it does not hold. The word
/// holds the owner's thread id: if the owner dies holding the lock, the next `lock` takes it over
/// (at once when the kernel reports the owner thread's exit through a pidfd, Linux 6.9; within
/// about 50 ms otherwise) and returns [`LockError::OwnerDead`] with the guard, so the caller can repair
/// the protected data and call [`LockGuard::make_consistent`]; until someone does, every later owner
/// is told the same way.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-lock").lock("l").create_or_replace()?;
/// let lock = seg.lock("l")?;
/// {
///     let _guard = lock.lock().expect("no owner died");
///     assert!(matches!(lock.try_lock(), Err(shmq::LockError::WouldBlock)));
/// }
/// assert!(lock.try_lock().is_ok());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    state: Ptr<LockState>,
    /// Whose death frees it for a takeover (the directory's `param0`: 0 thread, 1 process).
    scope: Scope,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Holds a [`Lock`]; unlocks when dropped.
///
/// Not `Send`, like `std::sync::MutexGuard`: the lock word names the thread that took it, and a
/// guard moved to another thread that then exited would leave a "dead" owner for contenders to
/// take the lock over from while the guard still exists (and its drop would then unlock the new
/// owner). This does not compile:
///
/// ```compile_fail
/// # let seg = shmq::Segment::builder("doc-guard-send").lock("l").create_or_replace().unwrap();
/// let lock = seg.lock("l").unwrap();
/// let guard = lock.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard));
/// });
/// ```
///
/// while sharing a reference to it does (it is `Sync`):
///
/// ```
/// # let seg = shmq::Segment::builder("doc-guard-sync").lock("l").create_or_replace().unwrap();
/// let lock = seg.lock("l").unwrap();
/// let guard = lock.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| assert!(guard.is_consistent()));
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    consistent: bool,
    /// `!Send` (and `Sync`), as `MutexGuard`.
    _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

impl LockGuard<'_> {
    /// Declares the protected data consistent again after an [`LockError::OwnerDead`]. A guard
    /// from an ordinary `lock` is consistent already.
    pub fn make_consistent(&mut self) {
        self.consistent = true;
    }

    /// Whether the data is declared consistent (false after an owner died, until
    /// [`make_consistent`](Self::make_consistent)).
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.state.get().unlock(self.consistent);
    }
}

/// Why a lock call did not return a plain guard. `G` is the guard of the lock called: a
/// [`LockGuard`] for a [`Lock`], an [`RLockGuard`](crate::RLockGuard) for an
/// [`RLock`](crate::RLock).
#[derive(Debug)]
pub enum LockError<G> {
    /// The previous owner died holding the lock (or a later owner never declared the data
    /// consistent). The lock **is held**: here is its guard.
    OwnerDead(G),
    /// `lock_timeout`: the deadline passed.
    Timeout,
    /// `try_lock`: the lock is held.
    WouldBlock,
}

impl<G> LockError<G> {
    /// The guard, when the lock was obtained (`OwnerDead`).
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDead(g) => Some(g),
            _ => None,
        }
    }
}

impl<G> std::fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockError::OwnerDead(_) => "the previous owner died holding the lock",
            LockError::Timeout => "timed out waiting for the lock",
            LockError::WouldBlock => "the lock is held",
        })
    }
}

impl<G: std::fmt::Debug> std::error::Error for LockError<G> {}

impl Lock {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8) -> Self {
        Self::from_raw_in(seg, p, Scope::Thread)
    }

    pub(crate) fn from_raw_in(seg: Arc<Inner>, p: *mut u8, scope: Scope) -> Self {
        Self {
            // SAFETY: the segment lookup checked that a LockState fits at `p`, 128-aligned,
            // inside the mapping `seg` keeps alive.
            state: unsafe { Ptr::new(p) },
            scope,
            _seg: seg,
        }
    }

    fn guard(&self, how: Acquired) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        if let Acquired::TookOver { pid } = how {
            self._seg.recovered(crate::mapping::recovery::Recovery::LockTakenOver {
                what: "a lock",
                pid,
            });
        }
        match how {
            Acquired::Clean => Ok(LockGuard {
                _not_send: PhantomData,
                lock: self,
                consistent: true,
            }),
            Acquired::OwnerDead | Acquired::TookOver { .. } => Err(LockError::OwnerDead(LockGuard {
                _not_send: PhantomData,
                lock: self,
                consistent: false,
            })),
        }
    }

    /// Takes the lock, sleeping while another thread or process holds it. `Err(OwnerDead)` (with
    /// the lock held) if its previous owner died holding it.
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.guard(self.state.get().lock_taking_over_in(self.scope))
    }

    /// Takes the lock if it is free now; never blocks. `Err(WouldBlock)` if it is held.
    pub fn try_lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        match self.state.get().try_lock() {
            Some(how) => self.guard(how),
            None => Err(LockError::WouldBlock),
        }
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-lock-timeout").lock("l").create_or_replace().unwrap();
    /// let lock = seg.lock("l").unwrap();
    /// let _held = lock.lock().unwrap();
    /// assert!(matches!(lock.lock_timeout(Duration::from_millis(5)), Err(shmq::LockError::Timeout)));
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        match self.state.get().lock_in(deadline(timeout), self.scope) {
            Some(how) => self.guard(how),
            None => Err(LockError::Timeout),
        }
    }

    /// Whether some thread or process holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.get().is_locked()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_held_by_current_thread(&self) -> bool {
        self.state.get().held_by_me()
    }

    /// Releases the lock, whichever thread or process holds it, declaring the protected data
    /// consistent; `false` if it was not locked.
    ///
    /// For bindings whose acquire and release are separate calls that any thread may make, as in
    /// Python's `multiprocessing.Lock`: they take the lock with [`lock`](Self::lock), forget the
    /// guard (`std::mem::forget`), and release it with this. A guard that still exists when this
    /// is called unlocks again when dropped, releasing whoever holds the lock by then: never mix
    /// the two on one acquisition.
    ///
    /// The lock stays attributed to the thread that took it: if that thread exits while its
    /// process lives on, a contender judges the owner dead and takes the lock over
    /// ([`LockError::OwnerDead`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-force-unlock").lock("l").create_or_replace()?;
    /// let lock = seg.lock("l")?;
    /// std::mem::forget(lock.lock().expect("no owner died"));
    /// assert!(lock.is_held_by_current_thread());
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(lock.force_unlock())); // another thread releases it
    /// });
    /// assert!(!lock.is_locked());
    /// assert!(!lock.force_unlock()); // not locked any more
    /// # Ok(()) }
    /// ```
    pub fn force_unlock(&self) -> bool {
        self.state.get().unlock_any()
    }
}

/// The directory's `param0` of a lock: whose death frees it.
const THREAD_SCOPED: u64 = 0;
const PROCESS_SCOPED: u64 = 1;

impl crate::SegmentBuilder {
    /// Adds a [`Lock`](crate::Lock). It belongs to the thread that takes it: if that thread
    /// exits holding it, even while its process lives on, the next `lock` takes it over.
    pub fn lock(self, name: &str) -> Self {
        self.object(name, ObjectKind::Lock, untyped(), THREAD_SCOPED, 0)
    }

    /// Adds a [`Lock`](crate::Lock) that belongs to the *process* of the thread that takes it,
    /// as Python's `multiprocessing.Lock` does: a thread that exits holding it leaves it held
    /// (another thread releases it, with [`Lock::force_unlock`]), and it is taken over only once
    /// that whole process is gone. Opened with [`Segment::lock`](crate::Segment::lock).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-process-lock").process_lock("l").create_or_replace()?;
    /// let lock = seg.lock("l")?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| std::mem::forget(lock.lock().expect("no owner died")));
    /// }); // the thread exits holding it, its process lives on: still held
    /// assert!(matches!(lock.lock_timeout(Duration::from_millis(200)), Err(shmq::LockError::Timeout)));
    /// assert!(lock.force_unlock());
    /// assert!(lock.lock().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn process_lock(self, name: &str) -> Self {
        self.object(name, ObjectKind::Lock, untyped(), PROCESS_SCOPED, 0)
    }
}

impl crate::Segment {
    /// Looks up a lock (made by [`SegmentBuilder::lock`](crate::SegmentBuilder::lock) or
    /// [`process_lock`](crate::SegmentBuilder::process_lock)).
    pub fn lock(&self, name: &str) -> Result<crate::Lock, OpenError> {
        let o = self.inner.object(name, ObjectKind::Lock, None)?;
        let scope = match o.entry.param0 {
            THREAD_SCOPED => Scope::Thread,
            PROCESS_SCOPED => Scope::Process,
            p => {
                return Err(OpenError::Corrupt(format!(
                    "object {name:?}: lock scope {p} is neither 0 nor 1"
                )))
            }
        };
        Ok(crate::Lock::from_raw_in(self.inner.clone(), o.base, scope))
    }
}
