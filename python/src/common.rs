//! What every native class shares: the exception helpers, deadlines cut into signal-checking
//! slices, and [`Held`], a segment mapped by this process until released or collected.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::{GILOnceCell, GILProtected};
use shmq::Segment;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

create_exception!(
    _shmq,
    ShmqError,
    PyException,
    "An error of the shared-memory layer."
);

/// Longest a blocked call waits before it looks for signals (Ctrl-C) again.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

static UNLINKED: GILOnceCell<PyObject> = GILOnceCell::new();
static STILL_MAPPED: GILOnceCell<PyObject> = GILOnceCell::new();

/// `module.name`, imported once.
pub(crate) fn class(
    py: Python<'_>,
    cell: &'static GILOnceCell<PyObject>,
    module: &str,
    name: &str,
) -> PyResult<PyObject> {
    cell.get_or_try_init(py, || -> PyResult<PyObject> {
        Ok(py.import(module)?.getattr(name)?.unbind())
    })
    .map(|c| c.clone_ref(py))
}

/// An instance of the exception class `module.name`, made without arguments.
pub(crate) fn raise(
    py: Python<'_>,
    cell: &'static GILOnceCell<PyObject>,
    module: &str,
    name: &str,
) -> PyErr {
    match class(py, cell, module, name) {
        Ok(c) => match c.bind(py).call0() {
            Ok(e) => PyErr::from_value(e),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// An instance of the exception class `shmq._errors.name` with `message`.
pub(crate) fn raise_with(
    py: Python<'_>,
    cell: &'static GILOnceCell<PyObject>,
    name: &str,
    message: &str,
) -> PyErr {
    match class(py, cell, "shmq._errors", name) {
        Ok(c) => match c.bind(py).call1((message,)) {
            Ok(e) => PyErr::from_value(e),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// An error of the shared-memory layer, as [`ShmqError`].
pub(crate) fn layer_err(e: impl std::fmt::Display) -> PyErr {
    ShmqError::new_err(e.to_string())
}

/// The monotonic deadline of a `timeout` in seconds (`None`: wait for ever; negative: now).
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must not be NaN")),
        Some(t) => {
            let t = Duration::try_from_secs_f64(t.max(0.0)).unwrap_or(Duration::MAX);
            Ok(Some(Instant::now().checked_add(t).unwrap_or_else(|| {
                Instant::now() + Duration::from_secs(86400 * 365 * 100)
            })))
        }
    }
}

/// The next wait: at most a slice, at most up to the deadline. `None` once the deadline passed.
pub(crate) fn next_slice(end: Option<Instant>) -> Option<Duration> {
    match end {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

/// A segment this process maps, with the parts `P` a native class keeps of it: usable until
/// [`release`](Self::release) (or collection), after which calls raise `ValueError`. When it
/// goes, the name is removed from /dev/shm if no process maps it any more; the Python side
/// (`shmq._lifecycle`) is told either way.
///
/// The parts sit behind the GIL: a call that keeps the GIL borrows them ([`with`](Self::with),
/// no atomic operation), a call that waits without the GIL takes a reference that keeps them
/// mapped meanwhile ([`get`](Self::get)).
pub(crate) struct Held<P> {
    name: String,
    /// What the object is called in errors ("queue", "lock", ...).
    what: &'static str,
    parts: GILProtected<RefCell<Option<Arc<P>>>>,
}

impl<P> Held<P> {
    pub(crate) fn new(name: String, what: &'static str, parts: P) -> Self {
        Held {
            name,
            what,
            parts: GILProtected::new(RefCell::new(Some(Arc::new(parts)))),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn released(&self) -> PyErr {
        PyValueError::new_err(format!("{} {} is released", self.what, self.name))
    }

    /// Runs `f` on the parts, with the GIL held throughout. `f` must not run Python code that
    /// could release this object (a `release` meanwhile raises instead).
    #[inline]
    pub(crate) fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Arc<P>) -> PyResult<R>,
    ) -> PyResult<R> {
        let parts = self.parts.get(py).borrow();
        f(parts.as_ref().ok_or_else(|| self.released())?)
    }

    /// The parts, kept mapped for as long as the caller holds them (across GIL releases).
    pub(crate) fn get(&self, py: Python<'_>) -> PyResult<Arc<P>> {
        self.with(py, |p| Ok(p.clone()))
    }

    /// Drops this process's mapping (once calls running in other threads let go of it), then
    /// removes the name if no process maps it any more, and tells `shmq._lifecycle` which.
    /// Returns whether this call removed it.
    pub(crate) fn release(&self, py: Python<'_>) -> PyResult<bool> {
        let taken = self
            .parts
            .get(py)
            .try_borrow_mut()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "{} {} is in use by a call of this thread",
                    self.what, self.name
                ))
            })?
            .take();
        let Some(parts) = taken else { return Ok(false) };
        drop(parts);
        let name = self.name.clone();
        let removed = py
            .allow_threads(|| Segment::unlink_if_unused(&name))
            .map_err(layer_err)?;
        tell_lifecycle(py, &self.name, removed);
        Ok(removed)
    }
}

impl<P> Drop for Held<P> {
    fn drop(&mut self) {
        // A native object is dropped with the GIL held (its deallocation).
        let taken = Python::with_gil(|py| self.parts.get(py).borrow_mut().take());
        if taken.is_none() {
            return;
        }
        drop(taken);
        // Removed: the resource tracker may forget the name (it would unlink it again at
        // exit). Still held elsewhere: this process tries again later (see _lifecycle).
        let removed = Segment::unlink_if_unused(&self.name).unwrap_or(false);
        Python::with_gil(|py| tell_lifecycle(py, &self.name, removed));
    }
}

/// Tells `shmq._lifecycle` that this process let go of `name`: it removed the name (the
/// resource tracker may forget it, or it would unlink it again at exit), or another process
/// (or a child between fork and exec) still maps it (this process tries again later).
fn tell_lifecycle(py: Python<'_>, name: &str, removed: bool) {
    let (cell, hook) = if removed {
        (&UNLINKED, "_unlinked")
    } else {
        (&STILL_MAPPED, "_still_mapped")
    };
    if let Ok(f) = class(py, cell, "shmq._lifecycle", hook) {
        let _ = f.bind(py).call1((name,));
    }
}

/// Removes `name` from /dev/shm if no process maps it; whether it did.
#[pyfunction]
pub(crate) fn unlink_if_unused(name: &str) -> PyResult<bool> {
    Segment::unlink_if_unused(name).map_err(layer_err)
}

/// Waits in slices until `attempt` (run without the GIL, given the slice) returns `Some`, or the
/// deadline passes (`Ok(None)`); between slices, runs the signal handlers (Ctrl-C raises).
pub(crate) fn wait_sliced<T: Send>(
    py: Python<'_>,
    end: Option<Instant>,
    mut attempt: impl FnMut(Duration) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    loop {
        let Some(slice) = next_slice(end) else {
            return Ok(None);
        };
        if let Some(v) = py.allow_threads(|| attempt(slice)) {
            return Ok(Some(v));
        }
        py.check_signals()?;
    }
}
