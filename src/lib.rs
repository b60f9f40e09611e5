//! # shmq — queues and shared objects between processes, in named shared memory
//!
//! Python's `multiprocessing` lets processes share a `Queue`, but pickles every message through a
//! pipe. shmq gives Rust processes on one Linux host the same model without that cost: a named
//! shared-memory segment is created by one process and opened by name in others, and inside it live
//! lock-free bounded MPMC queues whose blocking operations sleep on shared futexes.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmq::Segment;
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Job { id: u64, cost: f64 }
//!
//! // Parent: create the segment and its objects.
//! let seg = Segment::builder("doc-quickstart")
//!     .queue::<Job>("jobs", 1024)
//!     .bytes_queue("logs", 256, 4096)
//!     .create_or_replace()?;
//!
//! // Child (another process, normally): open by name, look objects up with their types.
//! let child = Segment::open("doc-quickstart")?;
//! let jobs = child.queue::<Job>("jobs")?;
//! jobs.put(Job { id: 1, cost: 0.5 })?;
//! child.bytes_queue("logs")?.put(b"queued job 1")?;
//!
//! // Parent again.
//! let job = seg.queue::<Job>("jobs")?.get()?;
//! assert_eq!(job.id, 1);
//! assert_eq!(seg.bytes_queue("logs")?.get()?, b"queued job 1");
//!
//! // Asking for the wrong type is a typed error, not a misread.
//! assert!(matches!(child.queue::<u32>("jobs"), Err(shmq::OpenError::TypeMismatch { .. })));
//! # Ok(()) }
//! ```
//!
//! ## Limits
//!
//! * Linux only (POSIX shared memory in `/dev/shm`, `futex(2)`).
//! * Queues carry [`bytemuck::Pod`] values or byte messages of a maximum length fixed at creation
//!   (which may be `usize::MAX`: long messages then live in the segment's shared heap, and the
//!   segment grows up to its [`max_size`](SegmentBuilder::max_size)).
//! * Capacity is exactly what was asked for; positions are 64-bit and never wrap in practice.

#![deny(unsafe_op_in_unsafe_fn)]
// Under loom only the concurrency core is built (no segments), so the segment-side helpers of the
// shared modules are unused there.
#![cfg_attr(shmq_loom, allow(dead_code))]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub(crate) mod layout;
pub(crate) mod ring;
pub(crate) mod sync;
pub(crate) use sync::fault;

#[cfg(not(shmq_loom))]
mod bytes_queue;
pub(crate) mod chain;
#[cfg(not(shmq_loom))]
mod error;
pub(crate) mod heap;
#[cfg(not(shmq_loom))]
pub mod inspect;
#[cfg(not(shmq_loom))]
mod kind;
#[cfg(not(shmq_loom))]
mod mapping;
pub(crate) mod objects;
#[cfg(not(shmq_loom))]
pub(crate) mod os;
#[cfg(not(shmq_loom))]
pub mod process;
#[cfg(not(shmq_loom))]
mod queue;
#[cfg(not(shmq_loom))]
mod ring_handle;
#[cfg(not(shmq_loom))]
mod segment;
#[cfg(not(shmq_loom))]
mod stats;

#[cfg(not(shmq_loom))]
pub use bytes_queue::BytesQueue;
#[cfg(not(shmq_loom))]
pub use error::{
    BytesPutError, CreateError, DictError, GetError, IndexError, ListError, ListFull, NameError,
    OpenError, PutError, ReleaseError, TaskDoneError, Timeout,
};
#[cfg(not(shmq_loom))]
pub use kind::{ObjectKind, TypeSig};
pub use objects::atom::{Atom, AtomNum};
#[cfg(not(shmq_loom))]
pub use objects::handles::{
    Array, Barrier, BytesDict, BytesList, Condition, Dict, DictEntry, Event, EventMark,
    JoinableQueue, List, Lock, LockError, LockGuard, NotOwner, RLock, RLockGuard, Semaphore,
    SharedVec, Value, Versioned,
};
#[cfg(not(shmq_loom))]
pub use queue::Queue;
#[cfg(not(shmq_loom))]
pub use segment::{
    default_max_size, Segment, SegmentBuilder, DEFAULT_OPEN_WAIT, DEFAULT_PARTICIPANTS,
    INLINE_ALL_MAX, LONG_QUEUE_INLINE, OBJECT_NAME_MAX, SEGMENT_NAME_MAX,
};
#[cfg(not(shmq_loom))]
pub use stats::{QueueStats, SegmentStats};

pub use bytemuck;

#[cfg(shmq_loom)]
pub mod model;

#[cfg(all(not(shmq_loom), feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
