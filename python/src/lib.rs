//! `shmq._shmq`: the native half of the Python package. Each class is one shmq segment mapped by
//! this process ([`common::Held`]): [`channel::Channel`] a queue's, [`sync::Sync`] a lock's, a
//! semaphore's, a shared value's, ..., [`containers::SharedList`] and [`containers::SharedDict`]
//! a managed list's and dict's.
//!
//! The Python classes in `shmq/` wrap them; this module has no public API of its own.

mod buffer;
mod channel;
mod codec;
mod common;
mod containers;
mod sync;

use pyo3::prelude::*;

#[pymodule]
fn _shmq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<channel::Channel>()?;
    m.add_class::<sync::Sync>()?;
    m.add_class::<sync::Pin>()?;
    m.add_class::<containers::SharedList>()?;
    m.add_class::<containers::SharedDict>()?;
    m.add_function(wrap_pyfunction!(common::unlink_if_unused, m)?)?;
    m.add("ShmqError", m.py().get_type::<common::ShmqError>())?;
    Ok(())
}
