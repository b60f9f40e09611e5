//! The `Barrier` handle.

use super::*;

/// A barrier for a fixed number of parties, reusable, like `multiprocessing.Barrier`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::time::Duration;
/// let seg = shmq::Segment::builder("doc-barrier").barrier("start", 2).create_or_replace()?;
/// let start = seg.barrier("start")?;
/// // Alone, the second party never comes: the wait times out and withdraws.
/// assert!(start.wait_timeout(Duration::from_millis(5)).is_err());
/// let other = start.clone();
/// let t = std::thread::spawn(move || other.wait());
/// let leader_here = start.wait();
/// let leader_there = t.join().unwrap();
/// assert!(leader_here ^ leader_there); // exactly one leader
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Barrier {
    state: Ptr<BarrierState>,
    parties: u32,
    _seg: Arc<Inner>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("waiting", &self.n_waiting())
            .finish()
    }
}

impl Barrier {
    pub(crate) fn from_raw(seg: Arc<Inner>, p: *mut u8, parties: u32) -> Self {
        Self {
            // SAFETY: the lookup checked a BarrierState fits at `p` inside the mapping.
            state: unsafe { Ptr::new(p) },
            parties,
            _seg: seg,
        }
    }
    /// Waits until all parties arrived; returns `true` in exactly one of them (the last).
    pub fn wait(&self) -> bool {
        loop {
            if let Ok(leader) = self.state.get().wait(self.parties, None) {
                return leader;
            }
        }
    }
    /// Waits at most `timeout`; on timeout this party withdraws (the others keep waiting for a
    /// full set) and gets `Err(Timeout)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Timeout> {
        self.state
            .get()
            .wait(self.parties, deadline(timeout))
            .map_err(|_| Timeout)
    }
    /// Number of parties.
    pub fn parties(&self) -> u32 {
        self.parties
    }
    /// Parties waiting in the current generation.
    pub fn n_waiting(&self) -> u32 {
        self.state.get().arrived()
    }
}

impl crate::SegmentBuilder {
    /// Adds a [`Barrier`](crate::Barrier) for `parties` parties.
    pub fn barrier(self, name: &str, parties: u32) -> Self {
        self.object(name, ObjectKind::Barrier, untyped(), parties as u64, 0)
    }
}

impl crate::Segment {
    /// Looks up a barrier.
    pub fn barrier(&self, name: &str) -> Result<crate::Barrier, OpenError> {
        let o = self.inner.object(name, ObjectKind::Barrier, None)?;
        let parties = u32::try_from(o.entry.param0)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| OpenError::Corrupt(format!("object {name:?}: parties out of range")))?;
        Ok(crate::Barrier::from_raw(
            self.inner.clone(),
            o.base,
            parties,
        ))
    }
}
