//! Public handles of the shared objects (native build). Each holds the segment's `Arc<Inner>`, so
//! the mapping its pointers point into outlives it, and pointers validated at lookup time.

use super::atom::{Atom, AtomNum};
use super::barrier::BarrierState;
use super::cell::Cell;
use super::event::EventState;
use super::joinable::JoinState;
use super::list::ListHeader;
use super::lock::{Acquired, LockState, Scope};
use super::semaphore::SemaphoreState;
use crate::error::HeapError;
use crate::error::{
    GetError, IndexError, ListFull, OpenError, PutError, ReleaseError, TaskDoneError, Timeout,
};
use crate::kind::{versioned_copy_size, ObjectKind, BLOCK};
use crate::segment::{type_sig, untyped};
use crate::layout::SlotLayout;
use crate::mapping::Inner;
use crate::stats::QueueStats;
use crate::sync::AtomicU64;
use crate::Queue;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn deadline(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// A pointer into a segment's mapping, kept valid by the `Arc<Inner>` stored beside it.
struct Ptr<S> {
    p: NonNull<S>,
}

impl<S> Clone for Ptr<S> {
    fn clone(&self) -> Self {
        Self { p: self.p }
    }
}

impl<S> Ptr<S> {
    /// # Safety
    ///
    /// `p` points to a properly aligned `S` inside a live mapping that the holder keeps alive, and
    /// `S` is made of atomics only (valid for any bit pattern, shared by design).
    unsafe fn new(p: *mut u8) -> Self {
        Self {
            // SAFETY: mapping addresses are never null (the caller's contract).
            p: unsafe { NonNull::new_unchecked(p.cast()) },
        }
    }
    fn get(&self) -> &S {
        // SAFETY: see `new`; the returned reference lives no longer than `self`, whose owner holds
        // the mapping alive.
        unsafe { self.p.as_ref() }
    }
}

// SAFETY: the pointee is atomics in shared memory, built to be used from any thread or process.
unsafe impl<S> Send for Ptr<S> {}
// SAFETY: as above.
unsafe impl<S> Sync for Ptr<S> {}

mod array;
mod barrier;
mod bytes_list;
mod condition;
mod dict;
mod event;
mod joinable;
mod list;
mod lock;
mod rlock;
mod semaphore;
mod value;
mod versioned;

pub use array::*;
pub use barrier::*;
pub(crate) use bytes_list::bytes_list_region_blocks;
pub use bytes_list::{BytesList, SharedVec};
pub use condition::*;
pub(crate) use dict::dict_region_blocks;
pub use dict::{BytesDict, Dict, Entry as DictEntry};
pub use event::*;
pub use joinable::*;
pub use list::*;
pub use lock::*;
pub use rlock::*;
pub use semaphore::*;
pub use value::*;
pub use versioned::*;
