//! The `RLock` handle.

use super::*;
use crate::sync::AtomicU32;

/// A reentrant [`Lock`]: the thread that holds it may lock it again, and it is released when the
/// last of that thread's guards is dropped (Python's `multiprocessing.RLock`).
///
/// It is as robust as a [`Lock`]: if its owner dies holding it, however many times over, the next
/// `lock` takes it over and returns [`LockError::OwnerDead`] with a guard, and every later owner
/// is told the same until one calls [`RLockGuard::make_consistent`].
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-rlock").rlock("r").create_or_replace()?;
/// let r = seg.rlock("r")?;
/// let outer = r.lock().expect("no owner died");
/// let inner = r.lock().expect("the owner may lock again");
/// assert_eq!(r.depth(), 2);
/// drop(inner);
/// assert!(r.is_locked()); // still held by `outer`
/// drop(outer);
/// assert!(!r.is_locked());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RLock {
    state: Ptr<LockState>,
    /// How many guards the owner holds; read and written only by the owner thread.
    depth: Ptr<AtomicU32>,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Holds an [`RLock`] once; the lock is released when the owner's last guard is dropped.
///
/// Not `Send`, for the reason [`LockGuard`] is not:
///
/// ```compile_fail
/// # let seg = shmq::Segment::builder("doc-rguard-send").rlock("r").create_or_replace().unwrap();
/// let r = seg.rlock("r").unwrap();
/// let guard = r.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard));
/// });
/// ```
#[must_use = "the lock is released as soon as the owner's last guard is dropped"]
#[derive(Debug)]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    consistent: bool,
    _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

impl RLockGuard<'_> {
    /// Declares the protected data consistent again after an [`LockError::OwnerDead`]: when the
    /// owner's last guard is dropped, the lock is released clean.
    pub fn make_consistent(&mut self) {
        self.consistent = true;
    }

    /// `false` while the data may be half-updated by an owner that died.
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let depth = self.lock.depth.get();
        // Relaxed: only the owner thread touches the count, and it holds the lock.
        let d = depth.load(crate::sync::Ordering::Relaxed);
        if d > 1 {
            depth.store(d - 1, crate::sync::Ordering::Relaxed);
            return;
        }
        depth.store(0, crate::sync::Ordering::Relaxed);
        self.lock.state.get().unlock(self.consistent);
    }
}

impl RLock {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8) -> Self {
        Self {
            // SAFETY: the segment lookup checked that the region (2 * BLOCK bytes, 128-aligned,
            // inside the mapping `seg` keeps alive) holds a LockState, then the u32 count.
            state: unsafe { Ptr::new(p) },
            // SAFETY: as above: the count starts the second block.
            depth: unsafe { Ptr::new(p.add(BLOCK as usize)) },
            _seg: seg,
        }
    }

    /// A guard for a lock just taken (`how`), or taken again by its owner (`None`).
    fn guard(&self, how: Option<Acquired>) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        let depth = self.depth.get();
        let g = |consistent| RLockGuard {
            lock: self,
            consistent,
            _not_send: PhantomData,
        };
        match how {
            None => {
                // Relaxed: we own the lock; only we touch the count.
                let d = depth.load(crate::sync::Ordering::Relaxed);
                depth.store(d.saturating_add(1), crate::sync::Ordering::Relaxed);
                Ok(g(true))
            }
            // Taken fresh, or over from a dead owner whose count is meaningless now.
            Some(how) => {
                depth.store(1, crate::sync::Ordering::Relaxed);
                if let Acquired::TookOver { pid } = how {
                    self._seg
                        .recovered(crate::mapping::recovery::Recovery::LockTakenOver {
                            what: "a reentrant lock",
                            pid,
                        });
                }
                match how {
                    Acquired::Clean => Ok(g(true)),
                    Acquired::OwnerDead | Acquired::TookOver { .. } => {
                        Err(LockError::OwnerDead(g(false)))
                    }
                }
            }
        }
    }

    /// Takes the lock, waiting while another thread holds it; at once if this thread does.
    pub fn lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        if self.state.get().held_by_me() {
            return self.guard(None);
        }
        self.guard(Some(self.state.get().lock_taking_over()))
    }

    /// Takes the lock if it is free or held by this thread; `Err(WouldBlock)` otherwise.
    pub fn try_lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        if self.state.get().held_by_me() {
            return self.guard(None);
        }
        match self.state.get().try_lock() {
            Some(how) => self.guard(Some(how)),
            None => Err(LockError::WouldBlock),
        }
    }

    /// As [`lock`](Self::lock), giving up after `timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        if self.state.get().held_by_me() {
            return self.guard(None);
        }
        match self.state.get().lock(deadline(timeout)) {
            Some(how) => self.guard(Some(how)),
            None => Err(LockError::Timeout),
        }
    }

    /// Releases every level `guard`'s thread holds (for a condition wait); returns the depth and
    /// whether the data was declared consistent, to give back to [`restore`](Self::restore).
    pub(super) fn release_all(&self, guard: RLockGuard<'_>) -> (u32, bool) {
        let consistent = guard.consistent;
        std::mem::forget(guard);
        // Relaxed: we own the lock; only we touch the count.
        let depth = self
            .depth
            .get()
            .swap(0, crate::sync::Ordering::Relaxed)
            .max(1);
        self.state.get().unlock(consistent);
        (depth, consistent)
    }

    /// Takes the lock back after [`release_all`](Self::release_all), with the depth it had.
    pub(super) fn restore(
        &self,
        (depth, consistent): (u32, bool),
    ) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        let taken = self.guard(Some(self.state.get().lock_taking_over()));
        // Relaxed: we own the lock again; only we touch the count.
        self.depth
            .get()
            .store(depth, crate::sync::Ordering::Relaxed);
        // A clean take keeps what the waiter had declared; over a dead owner it is not consistent.
        taken.map(|mut g| {
            g.consistent = consistent;
            g
        })
    }

    /// Releases one level held by the calling thread, as dropping one of its guards would,
    /// declaring the data consistent when the last level goes; `Err(NotOwner)` if the calling
    /// thread does not hold the lock.
    ///
    /// For bindings whose acquire and release are separate calls, as in Python's
    /// `multiprocessing.RLock`: they take a level with [`lock`](Self::lock) and forget its guard
    /// (`std::mem::forget`), then release it with this. Never release with this a level whose
    /// guard still exists: dropping that guard would release one more level (another
    /// thread's, once the lock went to one).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seg = shmq::Segment::builder("doc-unlock-one").rlock("r").create_or_replace()?;
    /// let r = seg.rlock("r")?;
    /// std::mem::forget(r.lock().expect("no owner died"));
    /// std::mem::forget(r.lock().expect("the owner may lock again"));
    /// r.unlock_one()?;
    /// assert_eq!(r.depth(), 1);
    /// r.unlock_one()?;
    /// assert!(!r.is_locked());
    /// assert!(r.unlock_one().is_err()); // not held by this thread
    /// # Ok(()) }
    /// ```
    pub fn unlock_one(&self) -> Result<(), NotOwner> {
        if !self.state.get().held_by_me() {
            return Err(NotOwner);
        }
        drop(RLockGuard {
            lock: self,
            consistent: true,
            _not_send: PhantomData,
        });
        Ok(())
    }

    /// True if some thread holds it now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.get().is_locked()
    }

    /// Whether the calling thread holds it.
    pub(super) fn held_by_me(&self) -> bool {
        self.state.get().held_by_me()
    }

    /// How many guards the calling thread holds (0 if it does not hold the lock).
    pub fn depth(&self) -> u32 {
        if self.state.get().held_by_me() {
            self.depth.get().load(crate::sync::Ordering::Relaxed)
        } else {
            0
        }
    }
}

impl crate::SegmentBuilder {
    /// Adds an [`RLock`](crate::RLock) (a reentrant [`Lock`](crate::Lock)).
    pub fn rlock(self, name: &str) -> Self {
        self.object(name, ObjectKind::RLock, untyped(), 0, 0)
    }
}

impl crate::Segment {
    /// Looks up a reentrant lock.
    pub fn rlock(&self, name: &str) -> Result<crate::RLock, OpenError> {
        let o = self.inner.object(name, ObjectKind::RLock, None)?;
        Ok(crate::RLock::from_raw(self.inner.clone(), o.base))
    }
}
