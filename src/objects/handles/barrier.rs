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
