//! Model-checking entry points (only with `--cfg shmq_loom`).
//!
//! Loom atomics cannot overlay `mmap`ed memory, so the models drive the very same ring algorithm
//! over a ring made of loom objects, with threads standing in for processes. This module is not part
//! of the public API.

use crate::ring::{Ring, TryError, WaitError};
use crate::ring_mem::LoomRing;
use std::time::{Duration, Instant};

/// Outcome of a model operation that moved nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Full (put) or empty (get), non-blocking.
    WouldBlock,
    /// Closed.
    Closed,
    /// Deadline passed.
    Timeout,
    /// Corrupt state detected.
    Corrupt,
}

impl From<TryError> for Outcome {
    fn from(e: TryError) -> Self {
        match e {
            TryError::WouldBlock => Outcome::WouldBlock,
            TryError::Closed => Outcome::Closed,
            TryError::Corrupt => Outcome::Corrupt,
        }
    }
}

impl From<WaitError> for Outcome {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Closed => Outcome::Closed,
            WaitError::Timeout => Outcome::Timeout,
            WaitError::Corrupt => Outcome::Corrupt,
        }
    }
}

/// A ring of `u64` values (8-byte payloads) made of loom objects.
#[derive(Debug)]
pub struct ModelQueue {
    ring: Ring<LoomRing>,
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    // Any deadline: the loom futex gives up at once on a timed wait.
    timeout.map(|d| Instant::now() + d)
}

impl ModelQueue {
    /// A ring with `cap` slots.
    pub fn new(cap: u64) -> Self {
        Self {
            ring: Ring::new(LoomRing::new(cap, 8)),
        }
    }
    /// Non-blocking put.
    pub fn try_put(&self, v: u64) -> Result<(), Outcome> {
        self.ring
            .try_put_batch(None, 1, |_, b| b.copy_from_slice(&v.to_le_bytes()))
            .map(|_| ())
            .map_err(Into::into)
    }
    /// Blocking put (timed if `timeout` is `Some`).
    pub fn put(&self, v: u64, timeout: Option<Duration>) -> Result<(), Outcome> {
        self.ring
            .put_batch(None, 1, deadline(timeout), |_, b| {
                b.copy_from_slice(&v.to_le_bytes())
            })
            .map(|_| ())
            .map_err(Into::into)
    }
    /// Non-blocking get.
    pub fn try_get(&self) -> Result<u64, Outcome> {
        let mut out = 0;
        self.ring
            .try_get_batch(None, 1, |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }
    /// Blocking get (timed if `timeout` is `Some`).
    pub fn get(&self, timeout: Option<Duration>) -> Result<u64, Outcome> {
        let mut out = 0;
        self.ring
            .get_batch(None, 1, deadline(timeout), |_, b| {
                out = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Outcome::from)?;
        Ok(out)
    }
    /// Blocking batch put of all of `items` (returns how many went in before a close).
    pub fn put_many(&self, items: &[u64]) -> Result<(), (usize, Outcome)> {
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            match self.ring.put_batch(None, rest.len(), None, |k, b| {
                b.copy_from_slice(&rest[k].to_le_bytes())
            }) {
                Ok(n) => done += n,
                Err(e) => return Err((done, e.into())),
            }
        }
        Ok(())
    }
    /// Blocking batch get into `buf`; returns how many.
    pub fn get_many(&self, buf: &mut [u64]) -> Result<usize, Outcome> {
        let max = buf.len();
        self.ring
            .get_batch(None, max, None, |k, b| {
                buf[k] = u64::from_le_bytes(b.try_into().unwrap())
            })
            .map_err(Into::into)
    }
    /// Closes the ring.
    pub fn close(&self) -> bool {
        self.ring.close()
    }
    /// Snapshot length.
    pub fn len(&self) -> u64 {
        self.ring.len()
    }
    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
