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
    /// Waits until the flag is set (or was set since the call began: a `set` followed by a
    /// `clear` still ends the wait, as with `threading.Event`).
    pub fn wait(&self) {
        while !self.state.get().wait(None) {}
    }
    /// Waits at most `timeout`; returns whether the flag is set, or was set since the call
    /// began.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state.get().wait(deadline(timeout))
    }
}

impl Event {
    /// A mark to wait from across several calls (a binding that waits in slices, to look for
    /// signals between them): [`wait_since`](Self::wait_since) returns `true` at once if the
    /// flag was set when the mark was taken or is set now, and otherwise once a `set` happens
    /// after the mark (even one a `clear` undid since).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let seg = shmq::Segment::builder("doc-event-mark").event("e").create_or_replace().unwrap();
    /// let e = seg.event("e").unwrap();
    /// let mark = e.mark();
    /// assert!(!e.wait_since(mark, Duration::from_millis(1)));
    /// e.set();
    /// e.clear(); // a pulse: set and cleared again
    /// assert!(e.wait_since(mark, Duration::from_millis(1)));
    /// ```
    pub fn mark(&self) -> EventMark {
        EventMark(self.state.get().epoch())
    }

    /// Waits at most `timeout` for the flag, or for a `set` after `mark`; whether the flag was
    /// set at the mark, is set, or was set since.
    pub fn wait_since(&self, mark: EventMark, timeout: Duration) -> bool {
        self.state.get().wait_from(mark.0, deadline(timeout))
    }
}

/// Where an [`Event`] stood when [`Event::mark`] was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMark(u32);

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
