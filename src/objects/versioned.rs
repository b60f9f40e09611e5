//! A value of any `Pod` type, written under a robust lock and read without one, that no reader
//! ever sees torn, even when a writer is killed half-way through a write.
//!
//! Two copies and a version counter (a seqlock over a double buffer): version `v` means copy
//! `v & 1` holds the current value. A writer (holding the lock) fills the *other* copy and then
//! publishes it by storing `v + 1`. A reader loads the version, copies the current copy out, and
//! checks the version did not move; if it did, a writer may have reused the copy it was reading, so
//! it reads again.
//!
//! Why two copies: with one, a writer killed mid-write leaves a torn value that every reader would
//! see (or, with a plain seqlock, an odd sequence number readers would wait on forever). Here a
//! dead writer's partial write is in the copy no version points to; readers never notice it, and
//! the next writer takes the lock over (`OwnerDead`) and overwrites that copy whole. Nothing
//! committed is lost and nothing half-written is ever read.
//!
//! Data words are `AtomicU64`s accessed with Relaxed loads and stores (a racing read is then a
//! stale value, never undefined behaviour); the fences below order them against the version.

use super::lock::LockState;
use crate::sync::{fence, AtomicU64, Ordering};
use std::time::Instant;

/// Optimistic reads before a reader takes the lock (see `VersionedRef::read`). Small under loom,
/// so the models reach the locked read.
const READ_RETRIES: u32 = crate::sync::native_or_loom(64, 1);

/// The shared parts of one versioned value, borrowed from wherever they live (a mapping, or the
/// heap under loom and miri).
pub(crate) struct VersionedRef<'a> {
    pub(crate) lock: &'a LockState,
    pub(crate) version: &'a AtomicU64,
    pub(crate) copies: [&'a [AtomicU64]; 2],
}

/// Copies `words` out into `out` (little-endian; `out` may end inside the last word).
fn read_words(words: &[AtomicU64], out: &mut [u8]) {
    for (w, chunk) in words.iter().zip(out.chunks_mut(8)) {
        let bytes = w.load(Ordering::Relaxed).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Copies `src` into `words`, zero-padding the last word. The crash point `versioned-writing`
/// is passed after the first half of the words: a writer stopped there has written some of the
/// new value into the inactive copy and not published it. `false` only in loom models, when the
/// calling thread dies at that point (it then stops writing).
fn write_words(words: &[AtomicU64], src: &[u8]) -> bool {
    let half = words.len().div_ceil(2);
    for (i, (w, chunk)) in words.iter().zip(src.chunks(8)).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        if i + 1 == half {
            crate::fault::point("versioned-writing");
            if crate::fault::dies("versioned-writing") {
                return false;
            }
        }
    }
    true
}

/// Unlocks on drop, declaring the value consistent: whatever happens while the lock is held, the
/// current copy is untouched until the version store, which is the last step.
struct Unlock<'a>(&'a LockState);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        self.0.unlock(true);
    }
}

impl VersionedRef<'_> {
    /// Copies the current value into `out` (`out.len()` ≤ 8 × words); returns its version.
    /// Without the lock, retrying while writers publish during the copy; after
    /// [`READ_RETRIES`] such retries (writers that publish faster than a copy takes would
    /// otherwise starve the reader for as long as they go on) it reads under the lock, which
    /// holds writers off for one copy.
    pub(crate) fn read(&self, out: &mut [u8]) -> u64 {
        for _ in 0..READ_RETRIES {
            // SYNC: Acquire pairs with the Release version store in `publish`: the copy that
            // version points to was completely written before it.
            let v = self.version.load(Ordering::Acquire);
            read_words(self.copies[(v & 1) as usize], out);
            // SYNC: Acquire fence, pairs with the Release fence in `publish`. If any load above
            // read a word of a later writer (one reusing this copy), that writer's fence makes
            // its view of the version (at least v + 1, read under the lock) visible here, so the
            // reload below cannot return v.
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == v {
                return v;
            }
        }
        // Under the lock no version moves. A dead writer's lock is taken over like a writer
        // does; its half-written copy is the inactive one, and we read the published one.
        self.lock.lock_taking_over();
        let _unlock = Unlock(self.lock);
        // Only lock holders store the version, and the lock's Acquire made the last one visible.
        let v = self.version.load(Ordering::Relaxed);
        read_words(self.copies[(v & 1) as usize], out);
        v
    }

    /// Writes `src` into the inactive copy and publishes it. The caller holds the lock. `false`
    /// only in loom models, when the calling thread died mid-write (nothing published).
    fn publish(&self, src: &[u8]) -> bool {
        // Only lock holders store the version, and the lock's Acquire made the last one visible.
        let v = self.version.load(Ordering::Relaxed);
        // SYNC: Release fence, pairs with the Acquire fence in `read`: a reader that sees any of
        // the words stored below also sees a version of at least v (then v + 1 after our store).
        fence(Ordering::Release);
        // Wrapping: a forged version of u64::MAX moves on to 0 (2^64 real writes never come).
        let next = v.wrapping_add(1);
        if !write_words(self.copies[(next & 1) as usize], src) {
            return false;
        }
        // SYNC: Release publishes the words above; pairs with the Acquire load in `read`.
        self.version.store(next, Ordering::Release);
        true
    }

    /// Replaces the value with `src`; `false` if `deadline` passed before the lock was taken. A
    /// previous writer that died holding the lock is taken over (its unpublished write is simply
    /// overwritten).
    pub(crate) fn write(&self, src: &[u8], deadline: Option<Instant>) -> bool {
        if self.lock.lock(deadline).is_none() {
            return false;
        }
        let unlock = Unlock(self.lock);
        if !self.publish(src) {
            // Loom models only (`publish` is always true otherwise): this "process" died
            // mid-write, holding the lock, which it never releases.
            std::mem::forget(unlock);
            crate::sync::owner::die();
        }
        true
    }

    /// Read-modify-write under the lock: copies the current value into `scratch`, lets `f` change
    /// it, and publishes the result. If `f` panics nothing is published and the lock is released.
    pub(crate) fn update(&self, scratch: &mut [u8], f: impl FnOnce(&mut [u8])) {
        // Without a deadline `lock` only returns once it holds the lock.
        if self.lock.lock(None).is_none() {
            return;
        }
        let _unlock = Unlock(self.lock);
        // We hold the lock: no writer can move the version, so one pass reads a stable copy.
        let v = self.version.load(Ordering::Relaxed);
        read_words(self.copies[(v & 1) as usize], scratch);
        f(scratch);
        // `update` has no crash point of its own: `publish` returns false only for a loom model
        // thread set to die, and no model dies in `update`.
        let _ = self.publish(scratch);
    }
}
