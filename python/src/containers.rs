//! Shared containers: one segment per `list` or `dict` a `shmq.Manager()` makes, holding a
//! crash-safe heap container ([`BytesList`], [`BytesDict`]) and an [`RLock`] `lk` that every
//! call takes, so that each call, composite ones included (`sort`, slice assignment,
//! `setdefault`, `update`, `popitem`, ...), is one step for every other process, as each method
//! call of a `multiprocessing` manager's proxy is one call in its server.
//!
//! Items, keys and values are encoded by [`codec`] (native for plain data, pickle 5 for the rest,
//! shmq containers and queues by reference). A dict's value is stored as a record:
//!
//! ```text
//! seq: u64 | key_len: u32 | key as given (key_len bytes; 0: the stored key itself) | value
//! ```
//!
//! `seq` (from the segment's counter `seq`, kept when a key's value is replaced) orders the keys
//! as Python's dict does, by first insertion. The stored key is the *canonical* encoding
//! (`codec::encode_key`: `True` and `1.0` as `1`), so keys Python finds equal meet; when the key
//! as given differs from it, the record keeps the key as given, which is what `keys()` returns
//! (a Python dict also keeps the key first inserted).
//!
//! The Python classes `shmq._manager.ListProxy` / `DictProxy` subclass these.

use crate::codec;
use crate::common::{layer_err, Held, SLICE};
use pyo3::exceptions::{
    PyIndexError, PyKeyError, PyMemoryError, PyOSError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyList, PySlice, PyTuple};
use shmq::{
    BytesDict, BytesList, DictError, ListError, LockError, RLock, RLockGuard, Segment, Value,
};
use std::sync::Arc;

/// A value made or used on the calling thread only, carried through `allow_threads` (which runs
/// its closure on the calling thread).
struct SameThread<T>(T);
// SAFETY: `Python::allow_threads` runs the closure on the thread that called it, so a guard that
// must be released by its owner thread never leaves that thread.
unsafe impl<T> Send for SameThread<T> {}

/// Takes a container's lock: at once if free (or already held by this thread), else waiting
/// with the GIL released, in slices between which signals are checked (Ctrl-C). A holder that
/// died is taken over: every change under the lock is crash-safe item by item (a dead writer's
/// composite change is either whole or, for `update` and `extend`, a prefix of it).
fn take<'a>(py: Python<'_>, lk: &'a RLock) -> PyResult<RLockGuard<'a>> {
    match lk.try_lock() {
        Ok(g) => return Ok(g),
        Err(LockError::OwnerDead(mut g)) => {
            g.make_consistent();
            return Ok(g);
        }
        Err(LockError::WouldBlock) => {}
        Err(e) => return Err(layer_err(e)),
    }
    let lk = SameThread(lk);
    loop {
        let r = py.allow_threads(|| {
            let lk = &lk;
            SameThread(lk.0.lock_timeout(SLICE))
        });
        match r.0 {
            Ok(g) => return Ok(g),
            Err(LockError::OwnerDead(mut g)) => {
                g.make_consistent();
                return Ok(g);
            }
            Err(LockError::Timeout | LockError::WouldBlock) => py.check_signals()?,
        }
    }
}

fn list_err(e: ListError) -> PyErr {
    match e {
        ListError::NoSpace { .. } => PyMemoryError::new_err(format!("shared list: {e}")),
        ListError::IndexOutOfRange { .. } => PyIndexError::new_err("list index out of range"),
        e => layer_err(e),
    }
}

fn dict_err(e: DictError) -> PyErr {
    match e {
        DictError::NoSpace { .. } => PyMemoryError::new_err(format!("shared dict: {e}")),
        e => layer_err(e),
    }
}

fn open_err(name: &str, e: impl std::fmt::Display) -> PyErr {
    PyOSError::new_err(format!("cannot open shared container {name}: {e}"))
}

/// Creates the segment `name` with what `add` adds to the builder (kept: `_lifecycle` removes
/// the name), or opens it.
fn segment(
    name: &str,
    create: bool,
    add: impl FnOnce(shmq::SegmentBuilder) -> shmq::SegmentBuilder,
) -> PyResult<Segment> {
    if create {
        add(Segment::builder(name).keep(true))
            .create()
            .map_err(|e| {
                PyOSError::new_err(format!("cannot create shared-memory segment {name}: {e}"))
            })
    } else {
        Segment::open(name).map_err(|e| open_err(name, e))
    }
}

/// Items decoded into a new Python list.
fn loaded<'py>(py: Python<'py>, raw: &[Vec<u8>]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for b in raw {
        out.append(load(py, b)?)?;
    }
    Ok(out)
}

/// `obj` encoded for storage, as bytes.
fn stored(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let e = codec::encode_stored(py, obj)?;
    let mut v = vec![0; e.len()];
    e.write(&mut v);
    Ok(v)
}

fn load(py: Python<'_>, b: &[u8]) -> PyResult<PyObject> {
    codec::decode(py, b)?.finish(py)
}

/// A Python index `i` into a sequence of `n` items (negative from the end), if in range.
fn index_in(i: isize, n: usize) -> Option<usize> {
    let j = if i < 0 { i.checked_add(n as isize)? } else { i };
    usize::try_from(j).ok().filter(|&j| j < n)
}

/// The index of a `__getitem__`-like call: an int, or anything with `__index__`.
fn as_index(idx: &Bound<'_, PyAny>, what: &str) -> PyResult<isize> {
    match idx.extract::<isize>() {
        Ok(i) => Ok(i),
        Err(_) if idx.hasattr("__index__")? => Err(PyIndexError::new_err(format!(
            "cannot fit '{}' into an index-sized integer",
            idx.get_type().name()?
        ))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "list {what} must be integers or slices, not {}",
            idx.get_type().name()?
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Lists

struct ListParts {
    _seg: Segment,
    list: BytesList,
    lk: RLock,
}

/// A list in shared memory (the native half of `shmq.ListProxy`).
#[pyclass(module = "shmq._shmq", frozen, weakref, subclass)]
pub(crate) struct SharedList {
    held: Held<ListParts>,
}

impl SharedList {
    fn parts(&self, py: Python<'_>) -> PyResult<Arc<ListParts>> {
        self.held.get(py)
    }
}

impl ListParts {
    fn len(&self) -> PyResult<usize> {
        self.list.len().map_err(list_err)
    }

    fn raw(&self) -> PyResult<Vec<Vec<u8>>> {
        self.list.to_vec().map_err(list_err)
    }

    fn replace_all(&self, items: &[Vec<u8>]) -> PyResult<()> {
        self.list
            .splice(0..usize::MAX, items.iter().map(Vec::as_slice))
            .map_err(list_err)?;
        Ok(())
    }

    /// Every item decoded, as a Python list (under the caller's hold of the lock).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        loaded(py, &self.raw()?)
    }
}

/// The encoded items of an iterable, as a Python list of bytes (for slice assignment).
fn stored_list<'py>(py: Python<'py>, items: &Bound<'py, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    let it = items
        .try_iter()
        .map_err(|_| PyTypeError::new_err("can only assign an iterable"))?;
    // Collected first: the iterable may be this very list (`l[:] = l`).
    let objs: Vec<Bound<'py, PyAny>> = it.collect::<PyResult<_>>()?;
    objs.iter().map(|o| stored(py, o)).collect()
}

fn bytes_list<'py>(py: Python<'py>, raw: &[Vec<u8>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, raw.iter().map(|b| PyBytes::new(py, b)))
}

fn from_bytes_list(l: &Bound<'_, PyList>) -> PyResult<Vec<Vec<u8>>> {
    l.iter().map(|b| b.extract::<Vec<u8>>()).collect()
}

static SORT_ORDER: GILOnceCell<PyObject> = GILOnceCell::new();

#[pymethods]
impl SharedList {
    /// Creates the segment `name` with an empty list (`create`), or opens it.
    #[new]
    #[pyo3(signature = (name, create))]
    fn new(name: &str, create: bool) -> PyResult<Self> {
        let seg = segment(name, create, |b| b.bytes_list("l").rlock("lk"))?;
        let list = seg.bytes_list("l").map_err(|e| open_err(name, e))?;
        let lk = seg.rlock("lk").map_err(|e| open_err(name, e))?;
        let parts = ListParts {
            _seg: seg,
            list,
            lk,
        };
        Ok(SharedList {
            held: Held::new(name.to_string(), "list", parts),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.held.name()
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        p.len()
    }

    fn __getitem__(&self, py: Python<'_>, idx: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        if let Ok(s) = idx.downcast::<PySlice>() {
            let raw = {
                let _g = take(py, &p.lk)?;
                let ind = s.indices(p.len()? as isize)?;
                if ind.step == 1 {
                    let (a, b) = (ind.start as usize, (ind.stop.max(ind.start)) as usize);
                    p.list.slice(a..b).map_err(list_err)?
                } else {
                    let all = p.raw()?;
                    let mut out = Vec::with_capacity(ind.slicelength);
                    let mut i = ind.start;
                    for _ in 0..ind.slicelength {
                        out.push(all[i as usize].clone());
                        i += ind.step;
                    }
                    out
                }
            };
            return Ok(loaded(py, &raw)?.into_any().unbind());
        }
        let i = as_index(idx, "indices")?;
        let b = {
            let _g = take(py, &p.lk)?;
            let j = if i >= 0 {
                i as usize
            } else {
                index_in(i, p.len()?)
                    .ok_or_else(|| PyIndexError::new_err("list index out of range"))?
            };
            p.list.get(j).map_err(list_err)?
        };
        load(py, &b)
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        idx: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let p = self.parts(py)?;
        if let Ok(s) = idx.downcast::<PySlice>() {
            let new = stored_list(py, value)?;
            let _g = take(py, &p.lk)?;
            let ind = s.indices(p.len()? as isize)?;
            if ind.step == 1 {
                let (a, b) = (ind.start as usize, (ind.stop.max(ind.start)) as usize);
                p.list
                    .splice(a..b, new.iter().map(Vec::as_slice))
                    .map_err(list_err)?;
                return Ok(());
            }
            // An extended slice: Python's own list does the assignment (and its checks).
            let all = bytes_list(py, &p.raw()?)?;
            all.as_any().set_item(s, bytes_list(py, &new)?)?;
            return p.replace_all(&from_bytes_list(&all)?);
        }
        let i = as_index(idx, "indices")?;
        let b = stored(py, value)?;
        let _g = take(py, &p.lk)?;
        let j = index_in(i, p.len()?)
            .ok_or_else(|| PyIndexError::new_err("list assignment index out of range"))?;
        p.list.set(j, &b).map_err(list_err)?;
        Ok(())
    }

    fn __delitem__(&self, py: Python<'_>, idx: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        if let Ok(s) = idx.downcast::<PySlice>() {
            let ind = s.indices(p.len()? as isize)?;
            if ind.step == 1 {
                let (a, b) = (ind.start as usize, (ind.stop.max(ind.start)) as usize);
                p.list.splice(a..b, []).map_err(list_err)?;
                return Ok(());
            }
            let all = bytes_list(py, &p.raw()?)?;
            all.as_any().del_item(s)?;
            return p.replace_all(&from_bytes_list(&all)?);
        }
        let i = as_index(idx, "indices")?;
        let j = index_in(i, p.len()?)
            .ok_or_else(|| PyIndexError::new_err("list assignment index out of range"))?;
        p.list.pop_at(j).map_err(list_err)?;
        Ok(())
    }

    fn __contains__(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        let p = self.parts(py)?;
        let all = {
            let _g = take(py, &p.lk)?;
            p.snapshot(py)?
        };
        all.contains(value)
    }

    /// Appends `value`.
    fn append(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.parts(py)?;
        let b = stored(py, value)?;
        let _g = take(py, &p.lk)?;
        p.list.push(&b).map_err(list_err)?;
        Ok(())
    }

    /// Appends every item of `items` (one step for other processes).
    fn extend(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.parts(py)?;
        let it = items.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "'{}' object is not iterable",
                items
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        let objs: Vec<Bound<'_, PyAny>> = it.collect::<PyResult<_>>()?;
        let new: Vec<Vec<u8>> = objs
            .iter()
            .map(|o| stored(py, o))
            .collect::<PyResult<_>>()?;
        let _g = take(py, &p.lk)?;
        p.list
            .extend(new.iter().map(Vec::as_slice))
            .map_err(list_err)?;
        Ok(())
    }

    /// Inserts `value` before `index` (as `list.insert`).
    fn insert(&self, py: Python<'_>, index: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.parts(py)?;
        let b = stored(py, value)?;
        let _g = take(py, &p.lk)?;
        let n = p.len()?;
        let at = if index < 0 {
            (index + n as isize).max(0) as usize
        } else {
            (index as usize).min(n)
        };
        p.list.insert(at, &b).map_err(list_err)
    }

    /// Removes and returns item `index` (the last by default).
    #[pyo3(signature = (index=-1))]
    fn pop(&self, py: Python<'_>, index: isize) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        let b = {
            let _g = take(py, &p.lk)?;
            let n = p.len()?;
            if n == 0 {
                return Err(PyIndexError::new_err("pop from empty list"));
            }
            let j = index_in(index, n)
                .ok_or_else(|| PyIndexError::new_err("pop index out of range"))?;
            if j + 1 == n {
                p.list.pop().map_err(list_err)?.unwrap_or_default()
            } else {
                p.list.pop_at(j).map_err(list_err)?
            }
        };
        load(py, &b)
    }

    /// Removes the first item equal to `value` (`ValueError` if there is none).
    fn remove(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        let all = p.snapshot(py)?;
        match all.call_method1("index", (value,)) {
            Ok(i) => {
                p.list.pop_at(i.extract()?).map_err(list_err)?;
                Ok(())
            }
            Err(e) if e.is_instance_of::<PyValueError>(py) => {
                Err(PyValueError::new_err("list.remove(x): x not in list"))
            }
            Err(e) => Err(e),
        }
    }

    /// The index of the first item equal to `value` in `[start, stop)` (`ValueError` if none).
    #[pyo3(signature = (value, start=None, stop=None))]
    fn index(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        start: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        let all = {
            let _g = take(py, &p.lk)?;
            p.snapshot(py)?
        };
        let mut args = vec![value.clone()];
        args.extend(start.cloned());
        if let Some(s) = stop {
            if args.len() == 1 {
                args.push(0_i64.into_pyobject(py)?.into_any());
            }
            args.push(s.clone());
        }
        Ok(all.call_method1("index", PyTuple::new(py, args)?)?.unbind())
    }

    /// How many items equal `value`.
    fn count(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        let all = {
            let _g = take(py, &p.lk)?;
            p.snapshot(py)?
        };
        Ok(all.call_method1("count", (value,))?.unbind())
    }

    /// Reverses the list in place (one step for other processes).
    fn reverse(&self, py: Python<'_>) -> PyResult<()> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        let mut raw = p.raw()?;
        raw.reverse();
        p.replace_all(&raw)
    }

    /// Sorts the list in place, stably, as `list.sort` (one step for other processes; `key` and
    /// the comparisons run in this process with the list's lock held).
    #[pyo3(signature = (*, key=None, reverse=false))]
    fn sort(&self, py: Python<'_>, key: Option<PyObject>, reverse: bool) -> PyResult<()> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        let raw = p.raw()?;
        let vals = loaded(py, &raw)?;
        let order = crate::common::class(py, &SORT_ORDER, "shmq._manager", "_sort_order")?;
        let order: Vec<usize> = order.bind(py).call1((vals, key, reverse))?.extract()?;
        let sorted: Vec<Vec<u8>> = order
            .iter()
            .map(|&i| {
                raw.get(i)
                    .cloned()
                    .ok_or_else(|| PyValueError::new_err("bad order"))
            })
            .collect::<PyResult<_>>()?;
        p.replace_all(&sorted)
    }

    /// Removes every item.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        p.list.splice(0..usize::MAX, []).map_err(list_err)?;
        Ok(())
    }

    /// `self *= n`: the items repeated `n` times (one step for other processes).
    fn _imul(&self, py: Python<'_>, n: isize) -> PyResult<()> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        if n <= 0 {
            p.list.splice(0..usize::MAX, []).map_err(list_err)?;
            return Ok(());
        }
        let raw = p.raw()?;
        let len = raw.len();
        let more = raw.iter().cycle().take(len.saturating_mul(n as usize - 1));
        p.list
            .splice(len..len, more.map(Vec::as_slice))
            .map_err(list_err)?;
        Ok(())
    }

    /// A snapshot of the items, as a new Python list.
    fn copy(&self, py: Python<'_>) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        let raw = {
            let _g = take(py, &p.lk)?;
            p.raw()?
        };
        Ok(loaded(py, &raw)?.into_any().unbind())
    }

    /// Drops this process's mapping (calls raise `ValueError` afterwards), then removes the name
    /// if no process maps it any more. Returns whether this call removed it.
    fn unmap(&self, py: Python<'_>) -> PyResult<bool> {
        self.held.release(py)
    }
}

// ---------------------------------------------------------------------------------------------
// Dicts

/// Bytes of a value record before the key as given: `seq: u64`, `key_len: u32`.
const REC_HEAD: usize = 12;

struct DictParts {
    _seg: Segment,
    dict: BytesDict,
    lk: RLock,
    seq: Value<u64>,
}

/// A dict in shared memory (the native half of `shmq.DictProxy` and of `Namespace`).
#[pyclass(module = "shmq._shmq", frozen, weakref, subclass)]
pub(crate) struct SharedDict {
    held: Held<DictParts>,
}

/// A dict entry read out: its sequence number, key bytes and value bytes.
type Raw = (u64, Vec<u8>, Vec<u8>);

/// A key, encoded: what is stored as the key, and the key as given if that differs.
struct Key {
    stored: Vec<u8>,
    given: Option<Vec<u8>>,
}

fn key(py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<Key> {
    k.hash()?; // unhashable keys raise TypeError, as a dict's do
    let (e, changed) = codec::encode_key(py, k)?;
    let mut stored = vec![0; e.len()];
    e.write(&mut stored);
    let given = if changed {
        Some(self::stored(py, k)?)
    } else {
        None
    };
    Ok(Key { stored, given })
}

/// A record's parts: sequence number, key as given (empty: the stored key), value.
fn split(rec: &[u8]) -> PyResult<(u64, &[u8], &[u8])> {
    let bad = || layer_err("shared dict: a malformed value record");
    if rec.len() < REC_HEAD {
        return Err(bad());
    }
    let seq = u64::from_le_bytes(rec[..8].try_into().map_err(|_| bad())?);
    let klen = u32::from_le_bytes(rec[8..12].try_into().map_err(|_| bad())?) as usize;
    let rest = &rec[REC_HEAD..];
    if rest.len() < klen {
        return Err(bad());
    }
    Ok((seq, &rest[..klen], &rest[klen..]))
}

fn record(seq: u64, given: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(REC_HEAD + given.len() + value.len());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(&(given.len() as u32).to_le_bytes());
    r.extend_from_slice(given);
    r.extend_from_slice(value);
    r
}

fn key_error(k: &Bound<'_, PyAny>) -> PyErr {
    PyKeyError::new_err((k.clone().unbind(),))
}

impl SharedDict {
    fn parts(&self, py: Python<'_>) -> PyResult<Arc<DictParts>> {
        self.held.get(py)
    }
}

impl DictParts {
    /// Sets `k` to the encoded value `v`, keeping its place (and key as given) if it has one.
    fn set(&self, k: &Key, v: &[u8]) -> PyResult<()> {
        let seq = &self.seq;
        self.dict
            .update(&k.stored, |old| {
                Some(match old.and_then(|o| split(o).ok()) {
                    Some((s, given, _)) => record(s, given, v),
                    None => record(seq.fetch_add(1), k.given.as_deref().unwrap_or(&[]), v),
                })
            })
            .map_err(dict_err)?;
        Ok(())
    }

    /// The entries `(seq, key bytes, value bytes)`, in insertion order.
    fn entries(&self) -> PyResult<Vec<Raw>> {
        let items = self.dict.items().map_err(dict_err)?;
        let mut out = Vec::with_capacity(items.len());
        for (k, rec) in items {
            let (seq, given, v) = split(&rec)?;
            let k = if given.is_empty() { k } else { given.to_vec() };
            out.push((seq, k, v.to_vec()));
        }
        out.sort_unstable_by_key(|e| e.0);
        Ok(out)
    }
}

#[pymethods]
impl SharedDict {
    /// Creates the segment `name` with an empty dict (`create`), or opens it.
    #[new]
    #[pyo3(signature = (name, create))]
    fn new(name: &str, create: bool) -> PyResult<Self> {
        let seg = segment(name, create, |b| {
            b.bytes_dict("d").rlock("lk").value::<u64>("seq", 0)
        })?;
        let dict = seg.bytes_dict("d").map_err(|e| open_err(name, e))?;
        let lk = seg.rlock("lk").map_err(|e| open_err(name, e))?;
        let seq = seg.value::<u64>("seq").map_err(|e| open_err(name, e))?;
        let parts = DictParts {
            _seg: seg,
            dict,
            lk,
            seq,
        };
        Ok(SharedDict {
            held: Held::new(name.to_string(), "dict", parts),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.held.name()
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        p.dict.len().map_err(dict_err)
    }

    fn __getitem__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        let kb = key(py, k)?;
        let rec = {
            let _g = take(py, &p.lk)?;
            p.dict.get(&kb.stored).map_err(dict_err)?
        };
        match rec {
            Some(rec) => load(py, split(&rec)?.2),
            None => Err(key_error(k)),
        }
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let p = self.parts(py)?;
        let kb = key(py, k)?;
        let vb = stored(py, v)?;
        let _g = take(py, &p.lk)?;
        p.set(&kb, &vb)
    }

    fn __delitem__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.parts(py)?;
        let kb = key(py, k)?;
        let _g = take(py, &p.lk)?;
        match p.dict.remove(&kb.stored).map_err(dict_err)? {
            Some(_) => Ok(()),
            None => Err(key_error(k)),
        }
    }

    fn __contains__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<bool> {
        let p = self.parts(py)?;
        let kb = key(py, k)?;
        let _g = take(py, &p.lk)?;
        p.dict.contains_key(&kb.stored).map_err(dict_err)
    }

    /// The value of `k`, or `default`.
    #[pyo3(signature = (k, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        default: Option<PyObject>,
    ) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        let kb = key(py, k)?;
        let rec = {
            let _g = take(py, &p.lk)?;
            p.dict.get(&kb.stored).map_err(dict_err)?
        };
        match rec {
            Some(rec) => load(py, split(&rec)?.2),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Removes `k` and returns its value; `default` if it has none (`KeyError` without one).
    #[pyo3(signature = (k, *default))]
    fn pop(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        default: &Bound<'_, PyTuple>,
    ) -> PyResult<PyObject> {
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        let p = self.parts(py)?;
        let kb = key(py, k)?;
        let rec = {
            let _g = take(py, &p.lk)?;
            p.dict.remove(&kb.stored).map_err(dict_err)?
        };
        match rec {
            Some(rec) => load(py, split(&rec)?.2),
            None if default.len() == 1 => Ok(default.get_item(0)?.unbind()),
            None => Err(key_error(k)),
        }
    }

    /// Removes and returns the last inserted `(key, value)` (`KeyError` if empty).
    fn popitem(&self, py: Python<'_>) -> PyResult<(PyObject, PyObject)> {
        let p = self.parts(py)?;
        let (kb, vb) = {
            let _g = take(py, &p.lk)?;
            let items = p.dict.items().map_err(dict_err)?;
            let mut last: Option<(u64, Vec<u8>)> = None;
            for (k, rec) in items {
                let (seq, _, _) = split(&rec)?;
                if last.as_ref().is_none_or(|(s, _)| seq > *s) {
                    last = Some((seq, k));
                }
            }
            let Some((_, k)) = last else {
                return Err(PyKeyError::new_err("popitem(): dictionary is empty"));
            };
            let rec = p
                .dict
                .remove(&k)
                .map_err(dict_err)?
                .ok_or_else(|| layer_err("shared dict: an entry vanished under the lock"))?;
            let (_, given, v) = split(&rec)?;
            let kb = if given.is_empty() { k } else { given.to_vec() };
            (kb, v.to_vec())
        };
        Ok((load(py, &kb)?, load(py, &vb)?))
    }

    /// `k`'s value; if it has none, sets it to `default` first (one step).
    #[pyo3(signature = (k, default=None))]
    fn setdefault(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let p = self.parts(py)?;
        let kb = key(py, k)?;
        let none = py.None().into_bound(py);
        let default = default.unwrap_or(&none);
        let vb = stored(py, default)?;
        let rec = {
            let _g = take(py, &p.lk)?;
            let seq = &p.seq;
            p.dict
                .update(&kb.stored, |old| {
                    Some(match old {
                        Some(o) => o.to_vec(),
                        None => record(seq.fetch_add(1), kb.given.as_deref().unwrap_or(&[]), &vb),
                    })
                })
                .map_err(dict_err)?
        };
        match rec {
            Some(rec) => load(py, split(&rec)?.2),
            None => Err(layer_err("shared dict: setdefault stored nothing")),
        }
    }

    /// Sets every `(key, value)` pair of the list `pairs`, in order, in one step.
    fn _set_many(
        &self,
        py: Python<'_>,
        pairs: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>,
    ) -> PyResult<()> {
        let p = self.parts(py)?;
        let enc: Vec<(Key, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| Ok((key(py, k)?, stored(py, v)?)))
            .collect::<PyResult<_>>()?;
        let _g = take(py, &p.lk)?;
        for (k, v) in &enc {
            p.set(k, v)?;
        }
        Ok(())
    }

    /// The keys, in insertion order (a new list).
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let p = self.parts(py)?;
        let keys: Vec<(u64, Vec<u8>)> = {
            let _g = take(py, &p.lk)?;
            let items = p.dict.items().map_err(dict_err)?;
            let mut out = Vec::with_capacity(items.len());
            for (k, rec) in items {
                let (seq, given, _) = split(&rec)?;
                out.push((seq, if given.is_empty() { k } else { given.to_vec() }));
            }
            out
        };
        let mut keys = keys;
        keys.sort_unstable_by_key(|e| e.0);
        keys.iter().map(|(_, k)| load(py, k)).collect()
    }

    /// The values, in insertion order (a new list).
    fn values(&self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let p = self.parts(py)?;
        let e = {
            let _g = take(py, &p.lk)?;
            p.entries()?
        };
        e.iter().map(|(_, _, v)| load(py, v)).collect()
    }

    /// The `(key, value)` pairs, in insertion order (a new list).
    fn items(&self, py: Python<'_>) -> PyResult<Vec<(PyObject, PyObject)>> {
        let p = self.parts(py)?;
        let e = {
            let _g = take(py, &p.lk)?;
            p.entries()?
        };
        e.iter()
            .map(|(_, k, v)| Ok((load(py, k)?, load(py, v)?)))
            .collect()
    }

    /// Removes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let p = self.parts(py)?;
        let _g = take(py, &p.lk)?;
        p.dict.clear().map_err(dict_err)
    }

    /// Drops this process's mapping (calls raise `ValueError` afterwards), then removes the name
    /// if no process maps it any more. Returns whether this call removed it.
    fn unmap(&self, py: Python<'_>) -> PyResult<bool> {
        self.held.release(py)
    }
}
