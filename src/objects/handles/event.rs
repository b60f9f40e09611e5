//! The `Event` handle.

use super::*;

/// A flag that processes can wait on, like `multiprocessing.Event`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::time::Duration;
/// let seg = shmq::Segment::builder("doc-event").event("ready").create_or_replace()?;
/// let ready = seg.event("ready")?;
/// assert!(!ready.wait_timeout(Duration::from_millis(1)));
/// ready.set();
/// assert!(ready.is_set());
/// ready.wait();
/// ready.clear();
/// assert!(!ready.is_set());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Event {
    state: Ptr<EventState>,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8) -> Self {
        Self {
            // SAFETY: the lookup checked an EventState fits at `p` inside the mapping.
            state: unsafe { Ptr::new(p) },
            _seg: seg,
        }
    }
    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.state.get().set()
    }
    /// Clears the flag.
    pub fn clear(&self) {
        self.state.get().clear()
    }
    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.get().is_set()
    }
    /// Waits until the flag is set.
    pub fn wait(&self) {
        while !self.state.get().wait(None) {}
    }
    /// Waits at most `timeout`; returns whether the flag is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state.get().wait(deadline(timeout))
    }
}

impl crate::SegmentBuilder {
    /// Adds an [`Event`](crate::Event), initially clear.
    pub fn event(self, name: &str) -> Self {
        self.object(name, ObjectKind::Event, untyped(), 0, 0)
    }
}

impl crate::Segment {
    /// Looks up an event.
    pub fn event(&self, name: &str) -> Result<crate::Event, OpenError> {
        let o = self.inner.object(name, ObjectKind::Event, None)?;
        Ok(crate::Event::from_raw(self.inner.clone(), o.base))
    }
}
