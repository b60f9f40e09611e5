//! A segment's mapping in one process: an address range reserved for the segment's `max_size`
//! when the segment is mapped, of which a prefix maps the file. When the segment grows (its heap
//! needs room, see `crate::heap`), each process extends its prefix the first time it meets an
//! offset beyond it. The base never moves, so an offset is one address for the mapping's life and
//! nothing in shared memory needs to be a pointer.

use crate::error::HeapError;
use crate::os;
use crate::sync::local::AtomicUsize;
use crate::sync::Ordering;
use std::fs::File;
use std::sync::Mutex;

/// Page size the mapping grows by (a multiple of every page size Linux uses for tmpfs).
pub(crate) const PAGE: u64 = 4096;

pub(crate) struct Mapping {
    base: *mut u8,
    /// Bytes of address space reserved at `base`.
    reserved: usize,
    /// Bytes from `base` that map the file (a page multiple, never lowered).
    mapped: AtomicUsize,
    /// The segment file, to map more of it and to grow it, under the lock that serialises this
    /// process's extensions of the prefix. Its open file description (which the mapping holds
    /// too) carries this process's shared `flock` on the segment (named segments), which marks
    /// the segment in use for as long as the memory is mapped. `None` once the process gave up
    /// its claim ([`close_file`](Self::close_file)).
    file: Mutex<Option<File>>,
}

// SAFETY: `Mapping` owns its reservation; the raw pointer is only an address into it, and every
// access to the shared bytes goes through atomics or is argued where it is made.
unsafe impl Send for Mapping {}
// SAFETY: as for Send; the mutable state (`mapped`) is atomic and extensions are serialised.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Reserves `reserve` bytes of address space (at least `len`) and maps the first `len` bytes
    /// of `file` at its start.
    pub(crate) fn new(file: &File, len: u64, reserve: u64) -> std::io::Result<Self> {
        let too_big = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "segment too large");
        let len_pages = crate::layout::align_up(len, PAGE).ok_or_else(too_big)?;
        let reserve = crate::layout::align_up(reserve.max(len_pages), PAGE).ok_or_else(too_big)?;
        let reserved = usize::try_from(reserve).map_err(|_| too_big())?;
        let file = file.try_clone()?;
        let base = os::reserve_address(reserved)?;
        if len_pages > 0 {
            // SAFETY: [base, base + len_pages) lies inside the reservation we just made and own;
            // nothing points into it yet.
            if let Err(e) = unsafe { os::map_fixed(base, len_pages as usize, &file, 0) } {
                // SAFETY: our own reservation, unused.
                unsafe { os::unmap(base, reserved) };
                return Err(e);
            }
        }
        Ok(Self {
            base,
            reserved,
            mapped: AtomicUsize::new(len_pages as usize),
            file: Mutex::new(Some(file)),
        })
    }

    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }

    /// Bytes of address space reserved: the furthest this process can ever map.
    pub(crate) fn reserved(&self) -> u64 {
        self.reserved as u64
    }

    /// Bytes mapped in this process so far.
    #[inline]
    pub(crate) fn mapped(&self) -> u64 {
        // SYNC: Acquire pairs with the Release store in `ensure`: a thread that sees the larger
        // prefix also sees that the mmap that made it returned.
        self.mapped.load(Ordering::Acquire) as u64
    }

    /// Runs `f` on a duplicate of the segment file's descriptor (so that a long `fallocate` does
    /// not hold the lock that a child forked meanwhile would inherit held); an error once this
    /// process gave up its claim.
    pub(crate) fn with_file<R>(
        &self,
        f: impl FnOnce(&File) -> Result<R, HeapError>,
    ) -> Result<R, HeapError> {
        let file = {
            let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
            file.as_ref()
                .ok_or_else(released)?
                .try_clone()
                .map_err(|e| HeapError::Io(e.to_string()))?
        };
        f(&file)
    }

    /// Drops this process's claim on the segment (its shared `flock`, which the mapping itself
    /// would keep: it holds the open file description) and closes the file: the memory stays
    /// mapped, but can no longer be extended here.
    pub(crate) fn close_file(&self) {
        if let Some(file) = self.file.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = os::unlock(&file);
        }
    }

    /// Makes `[0, end)` accessible here, given that the segment has `committed` bytes (its
    /// header's `total_size`, read by the caller with Acquire). `end` past `committed` or past the
    /// reservation is an offset no valid segment names: `Corrupt`.
    pub(crate) fn ensure(&self, end: u64, committed: u64) -> Result<(), HeapError> {
        if end <= self.mapped() {
            return Ok(());
        }
        if end > committed || end > self.reserved as u64 {
            return Err(HeapError::Corrupt);
        }
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let file = file.as_ref().ok_or_else(released)?;
        let have = self.mapped();
        if end <= have {
            return Ok(());
        }
        // Map up to what is committed (page-rounded down), not just to `end`: fewer extensions.
        // Never past the file's length, whatever a (forged) header says: a page mapped past the
        // end of the file would be a SIGBUS at first touch.
        let file_len = os::file_len(file).map_err(|e| HeapError::Io(e.to_string()))?;
        let to = (committed.min(self.reserved as u64).min(file_len) / PAGE) * PAGE;
        if to < end {
            return Err(HeapError::Corrupt);
        }
        // SAFETY: [have, to) lies inside our reservation (to <= reserved) and is still the
        // PROT_NONE part of it (have is the mapped prefix, only ever raised under this lock):
        // nothing points into it.
        unsafe {
            os::map_fixed(
                self.base.add(have as usize),
                (to - have) as usize,
                file,
                have,
            )
        }
        .map_err(|e| HeapError::Io(e.to_string()))?;
        // SYNC: Release pairs with the Acquire load in `mapped`.
        self.mapped.store(to as usize, Ordering::Release);
        Ok(())
    }
}

/// The error of a mapping whose file this process closed.
fn released() -> HeapError {
    HeapError::Io("this process gave up its claim on the segment".into())
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the reservation is ours, and the handles that point into it (each holds the
        // Arc<Inner> that owns this mapping) are gone.
        unsafe { os::unmap(self.base, self.reserved) };
    }
}
