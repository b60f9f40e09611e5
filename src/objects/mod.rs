//! Shared objects: their shared-memory states and algorithms (used natively over `mmap`ed memory
//! and under loom over heap objects), and, natively, the public handles.

pub(crate) mod atom;
pub(crate) mod barrier;
pub(crate) mod cell;
pub(crate) mod event;
pub(crate) mod joinable;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod semaphore;

#[cfg(not(shmq_loom))]
pub(crate) mod handles;
