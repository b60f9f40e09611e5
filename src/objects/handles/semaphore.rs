//! The `Semaphore` handle.

use super::*;

/// A counting semaphore, optionally bounded (`BoundedSemaphore`): releasing past the bound is an
/// error.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::builder("doc-sem").bounded_semaphore("slots", 1, 1).create_or_replace()?;
/// let slots = seg.semaphore("slots")?;
/// slots.acquire();
/// assert!(!slots.try_acquire());
/// slots.release()?;
/// assert!(slots.release().is_err()); // past the bound of 1
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    state: Ptr<SemaphoreState>,
    max: u32,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .field("max", &self.max)
            .finish()
    }
}

impl Semaphore {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8, max: u32) -> Self {
        Self {
            // SAFETY: the lookup checked a SemaphoreState fits at `p` inside the mapping.
            state: unsafe { Ptr::new(p) },
            max,
            _seg: seg,
        }
    }
    /// Takes one unit, sleeping while there is none.
    pub fn acquire(&self) {
        while !self.state.get().acquire(None) {}
    }
    /// Takes one unit if there is one now; never blocks.
    pub fn try_acquire(&self) -> bool {
        self.state.get().try_acquire()
    }
    /// Takes one unit, waiting at most `timeout`; returns whether it did.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.state.get().acquire(deadline(timeout))
    }
    /// Gives one unit back; `Err` if that would exceed the bound.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.state
            .get()
            .release(self.max)
            .map_err(|_| ReleaseError { max: self.max })
    }
    /// Units available now.
    pub fn value(&self) -> u32 {
        self.state.get().value()
    }
    /// The bound (`u32::MAX` for an unbounded semaphore).
    pub fn max(&self) -> u32 {
        self.max
    }
}

impl crate::SegmentBuilder {
    /// Adds an unbounded [`Semaphore`](crate::Semaphore) with `initial` units.
    pub fn semaphore(self, name: &str, initial: u32) -> Self {
        self.object(
            name,
            ObjectKind::Semaphore,
            untyped(),
            initial as u64,
            u32::MAX as u64,
        )
    }

    /// Adds a [`Semaphore`](crate::Semaphore) with `initial` units that can never hold more than
    /// `max` (`multiprocessing.BoundedSemaphore`).
    pub fn bounded_semaphore(self, name: &str, initial: u32, max: u32) -> Self {
        self.object(
            name,
            ObjectKind::Semaphore,
            untyped(),
            initial as u64,
            max as u64,
        )
    }
}

impl crate::Segment {
    /// Looks up a semaphore (bounded or not).
    pub fn semaphore(&self, name: &str) -> Result<crate::Semaphore, OpenError> {
        let o = self.inner.object(name, ObjectKind::Semaphore, None)?;
        let max = u32::try_from(o.entry.param1)
            .map_err(|_| OpenError::Corrupt(format!("object {name:?}: bound out of range")))?;
        Ok(crate::Semaphore::from_raw(self.inner.clone(), o.base, max))
    }
}
