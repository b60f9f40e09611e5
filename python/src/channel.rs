//! One queue's segment: a byte-message queue and the shared state a `multiprocessing` queue needs
//! around it (the shutdown flags; for a joinable queue, the unfinished-task count and its
//! condition). The Python classes in `shmq/queues.py` wrap it.

use crate::codec;
use crate::common::{deadline, layer_err, next_slice, raise, Held};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use shmq::{BytesPutError, BytesQueue, Condition, GetError, LockError, Segment, Value};
use std::sync::Arc;
use std::time::Instant;

/// `state` bits: shut down (puts refused; gets drain, then raise), and shut down at once (gets
/// raise even with messages left).
const SHUTDOWN: u32 = 1;
const IMMEDIATE: u32 = 2;

static EMPTY: GILOnceCell<PyObject> = GILOnceCell::new();
static FULL: GILOnceCell<PyObject> = GILOnceCell::new();
static SHUT_DOWN: GILOnceCell<PyObject> = GILOnceCell::new();

fn empty(py: Python<'_>) -> PyErr {
    raise(py, &EMPTY, "queue", "Empty")
}
fn full(py: Python<'_>) -> PyErr {
    raise(py, &FULL, "queue", "Full")
}
fn shut_down(py: Python<'_>) -> PyErr {
    raise(py, &SHUT_DOWN, "shmq._errors", "ShutDown")
}

/// Everything a channel maps; dropped (unmapping, releasing the segment's lock) when the last
/// user lets go.
struct Parts {
    _seg: Segment,
    q: BytesQueue,
    /// Largest encoded message accepted (the queue's, or the smaller one asked for at creation).
    max_len: usize,
    state: Value<u32>,
    join: Option<(Value<u64>, Condition)>,
}

/// One queue's segment, created here or opened by name.
#[pyclass(module = "shmq._shmq", frozen, weakref)]
pub(crate) struct Channel {
    held: Held<Parts>,
}

impl Channel {
    fn parts(&self, py: Python<'_>) -> PyResult<Arc<Parts>> {
        self.held.get(py)
    }

    fn from_segment(seg: Segment, name: String, joinable: bool) -> Result<Self, shmq::OpenError> {
        let q = seg.bytes_queue("q")?;
        let asked = seg.value::<u64>("max_len")?.load();
        let max_len = usize::try_from(asked)
            .unwrap_or(usize::MAX)
            .min(q.max_len());
        let state = seg.value::<u32>("state")?;
        let join = if joinable {
            Some((seg.value::<u64>("unfinished")?, seg.condition("cond")?))
        } else {
            None
        };
        let parts = Parts {
            _seg: seg,
            q,
            max_len,
            state,
            join,
        };
        Ok(Channel {
            held: Held::new(name, "queue", parts),
        })
    }
}

/// Takes the condition's lock, declaring the (atomic) state consistent if a holder died.
fn lock_cond(c: &Condition) -> shmq::RLockGuard<'_> {
    match c.lock() {
        Ok(g) => g,
        Err(LockError::OwnerDead(mut g)) => {
            g.make_consistent();
            g
        }
        Err(_) => unreachable!("a blocking lock only fails with OwnerDead"),
    }
}

impl Parts {
    fn check_immediate(&self, py: Python<'_>) -> PyResult<()> {
        if self.state.load() & IMMEDIATE != 0 {
            return Err(shut_down(py));
        }
        Ok(())
    }

    /// One fewer unfinished task; wakes the joiners at zero. `false` if it was already zero.
    fn task_done(&self) -> bool {
        let Some((n, cond)) = &self.join else {
            return true;
        };
        let g = lock_cond(cond);
        let ok = match n.fetch_update(|v| v.checked_sub(1)) {
            Ok(1) => {
                let _ = cond.notify_all();
                true
            }
            Ok(_) => true,
            Err(_) => false,
        };
        drop(g);
        ok
    }

    fn add_task(&self) {
        if let Some((n, _)) = &self.join {
            n.fetch_add(1);
        }
    }

    fn put_one(
        &self,
        py: Python<'_>,
        msg: codec::Encoded,
        block: bool,
        end: Option<Instant>,
    ) -> PyResult<()> {
        let len = msg.len();
        if len > self.max_len {
            return Err(PyValueError::new_err(format!(
                "message of {len} bytes (encoded) exceeds this queue's max_message_size of {} \
                 bytes; create the queue with a larger max_message_size",
                self.max_len
            )));
        }
        self.add_task();
        let r = self.put_encoded(py, &msg, block, end);
        if r.is_err() {
            self.task_done();
        }
        drop(msg);
        r
    }

    fn put_encoded(
        &self,
        py: Python<'_>,
        msg: &codec::Encoded,
        block: bool,
        end: Option<Instant>,
    ) -> PyResult<()> {
        let len = msg.len();
        match self.q.try_put_with(len, |b| msg.write(b)) {
            Ok(()) => return Ok(()),
            Err(BytesPutError::Full) if block => {}
            Err(BytesPutError::Full) => return Err(full(py)),
            Err(BytesPutError::Closed) => return Err(shut_down(py)),
            Err(e) => return Err(layer_err(e)),
        }
        loop {
            let Some(slice) = next_slice(end) else {
                return Err(full(py));
            };
            let r = py.allow_threads(|| self.q.put_with_timeout(len, slice, |b| msg.write(b)));
            match r {
                Ok(()) => return Ok(()),
                Err(BytesPutError::Timeout) => py.check_signals()?,
                Err(BytesPutError::Closed) => return Err(shut_down(py)),
                Err(BytesPutError::Full) => return Err(full(py)),
                Err(e) => return Err(layer_err(e)),
            }
        }
    }

    fn get_one(&self, py: Python<'_>, block: bool, end: Option<Instant>) -> PyResult<PyObject> {
        self.check_immediate(py)?;
        // A blocking get takes only what is published now (`get_ready_with`): a `try_get` that
        // finds the queue empty reads the producers' tail (to tell empty from mid-write),
        // taking that line from a producer that writes it on every put; the wait below polls
        // only the head's slot.
        let first = if block {
            self.q.get_ready_with(|m| codec::decode(py, m))
        } else {
            self.q.try_get_with(|m| codec::decode(py, m))
        };
        match first {
            Ok(d) => return d?.finish(py),
            Err(GetError::Empty | GetError::Disconnected) if block => {}
            Err(GetError::Empty | GetError::Disconnected) => return Err(empty(py)),
            Err(GetError::Closed) => return Err(shut_down(py)),
            Err(e) => return Err(layer_err(e)),
        }
        // Any process holding the queue may put to it later (multiprocessing's semantics): a
        // getter counts itself as a producer, so the core never reports `Disconnected` while
        // a holder lives.
        self.q.register_producer();
        loop {
            let Some(slice) = next_slice(end) else {
                return Err(empty(py));
            };
            // Waits without the GIL and without taking the message, then takes it as the
            // first attempt above does: claimed with the GIL held, decoded in place (one copy,
            // from the slot into the objects). Claiming without the GIL and taking it back
            // inside the claim would let a thread of ours that holds the GIL wait for that very
            // slot (a non-blocking put on a full queue waits up to 50 ms for a consumer
            // mid-release); copying the message out first cost a second copy (about a fifth of
            // the speed of 4 MiB messages, see docs/benchmarks.md).
            match py.allow_threads(|| self.q.wait_ready(slice)) {
                Ok(()) => match self.q.try_get_with(|m| codec::decode(py, m)) {
                    Ok(d) => return d?.finish(py),
                    // Another consumer was quicker: wait again.
                    Err(GetError::Empty | GetError::Disconnected) => {}
                    Err(GetError::Closed) => return Err(shut_down(py)),
                    Err(e) => return Err(layer_err(e)),
                },
                Err(GetError::Timeout) => {
                    py.check_signals()?;
                    self.check_immediate(py)?;
                }
                Err(GetError::Disconnected) => {
                    // Every holder that ever put is gone; one may still come: wait on.
                    py.allow_threads(|| std::thread::sleep(slice));
                    py.check_signals()?;
                    self.check_immediate(py)?;
                }
                Err(GetError::Closed) => return Err(shut_down(py)),
                Err(GetError::Empty) => return Err(empty(py)),
                Err(e) => return Err(layer_err(e)),
            }
        }
    }
}

#[pymethods]
impl Channel {
    /// Creates the segment `name` with a queue of `capacity` messages of at most `max_len`
    /// bytes (the name stays until `release` finds the segment unused).
    #[staticmethod]
    #[pyo3(signature = (name, capacity, max_len, joinable))]
    fn create(name: &str, capacity: u64, max_len: usize, joinable: bool) -> PyResult<Self> {
        // 0: any size (long messages through the segment's heap).
        let max_len = if max_len == 0 { usize::MAX } else { max_len };
        let b = Segment::builder(name).keep(true);
        // 0: unbounded (a chain of links in the heap).
        let b = if capacity == 0 {
            b.unbounded_bytes_queue("q")
        } else {
            b.bytes_queue("q", capacity, max_len)
        };
        let mut b = b
            .value::<u32>("state", 0)
            .value::<u64>("max_len", max_len as u64);
        if joinable {
            b = b.value::<u64>("unfinished", 0).condition("cond");
        }
        let seg = b.create().map_err(|e| match e {
            shmq::CreateError::InvalidConfig(m) => PyValueError::new_err(m),
            e => PyOSError::new_err(format!("cannot create shared-memory segment {name}: {e}")),
        })?;
        Channel::from_segment(seg, name.to_string(), joinable).map_err(layer_err)
    }

    /// Opens the segment `name` made by `create`.
    #[staticmethod]
    #[pyo3(signature = (name, joinable))]
    fn open(name: &str, joinable: bool) -> PyResult<Self> {
        let seg = Segment::open(name)
            .map_err(|e| PyOSError::new_err(format!("cannot open queue segment {name}: {e}")))?;
        Channel::from_segment(seg, name.to_string(), joinable).map_err(layer_err)
    }

    #[getter]
    fn name(&self) -> &str {
        self.held.name()
    }

    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.parts(py)?.q.capacity())
    }

    #[getter]
    fn max_len(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.parts(py)?.max_len)
    }

    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let end = deadline(timeout)?;
        let p = self.parts(py)?;
        let msg = codec::encode(py, obj)?;
        p.put_one(py, msg, block, end)
    }

    /// Puts every item of `items` in order, blocking for room as needed. Returns the count.
    fn put_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<usize> {
        let p = self.parts(py)?;
        let mut n = 0;
        for item in items.try_iter()? {
            let msg = codec::encode(py, &item?)?;
            p.put_one(py, msg, true, None)?;
            n += 1;
        }
        Ok(n)
    }

    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        let end = deadline(timeout)?;
        self.parts(py)?.get_one(py, block, end)
    }

    /// Waits (as `get`) for one item, then takes up to `max_items - 1` more that are there.
    #[pyo3(signature = (max_items, block=true, timeout=None))]
    fn get_many(
        &self,
        py: Python<'_>,
        max_items: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Vec<PyObject>> {
        let end = deadline(timeout)?;
        let p = self.parts(py)?;
        let mut out = Vec::new();
        if max_items == 0 {
            return Ok(out);
        }
        out.push(p.get_one(py, block, end)?);
        while out.len() < max_items {
            match p.q.try_get_with(|m| codec::decode(py, m)) {
                Ok(d) => out.push(d?.finish(py)?),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    fn qsize(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.parts(py)?.q.len())
    }

    fn full(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.parts(py)?.q.is_full())
    }

    /// Shuts the queue down in every process and wakes every waiter. With `immediate`, gets
    /// raise at once and the items left are discarded (counted done for `join`).
    #[pyo3(signature = (immediate=false))]
    fn shutdown(&self, py: Python<'_>, immediate: bool) -> PyResult<()> {
        let p = self.parts(py)?;
        p.state
            .fetch_update(|s| Some(s | SHUTDOWN | if immediate { IMMEDIATE } else { 0 }))
            .ok();
        p.q.close();
        if immediate {
            py.allow_threads(|| {
                while p.q.try_get_with(|_| ()).is_ok() {
                    p.task_done();
                }
            });
            if let Some((_, cond)) = &p.join {
                py.allow_threads(|| {
                    let _g = lock_cond(cond);
                    let _ = cond.notify_all();
                });
            }
        }
        Ok(())
    }

    fn is_shutdown(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.parts(py)?.state.load() & SHUTDOWN != 0)
    }

    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        let p = self.parts(py)?;
        if py.allow_threads(|| p.task_done()) {
            Ok(())
        } else {
            Err(PyValueError::new_err("task_done() called too many times"))
        }
    }

    fn unfinished_tasks(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.parts(py)?.join.as_ref().map_or(0, |(n, _)| n.load()))
    }

    /// Waits until every item put has been marked done; `False` if `timeout` passed first.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let end = deadline(timeout)?;
        let p = self.parts(py)?;
        let Some((n, cond)) = &p.join else {
            return Ok(true);
        };
        loop {
            let Some(slice) = next_slice(end) else {
                return Ok(n.load() == 0);
            };
            let done = py.allow_threads(|| {
                let g = lock_cond(cond);
                let g = match cond.wait_for(g, || n.load() == 0, Some(slice)) {
                    Ok(g) => g,
                    Err(LockError::OwnerDead(mut g)) => {
                        g.make_consistent();
                        g
                    }
                    Err(_) => return n.load() == 0,
                };
                let done = n.load() == 0;
                drop(g);
                done
            });
            if done {
                return Ok(true);
            }
            py.check_signals()?;
        }
    }

    /// Drops this process's mapping (calls on this object raise `ValueError` afterwards; calls
    /// running in other threads finish first), then removes the name if no process maps it any
    /// more. Returns whether this call removed it.
    fn unmap(&self, py: Python<'_>) -> PyResult<bool> {
        self.held.release(py)
    }

    fn __repr__(&self) -> String {
        format!("<shmq._shmq.Channel {}>", self.held.name())
    }
}
