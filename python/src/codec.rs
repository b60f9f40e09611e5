//! Message encoding: a compact native encoding for plain data (None, bool, int, float, str,
//! bytes, bytearray and tuples, lists and dicts of them), pickle protocol 5 with out-of-band
//! buffers for everything else.
//!
//! A message is a *head* (built in a per-call buffer: tags, lengths and small payloads) followed
//! by *blobs* (large bytes objects, the pickle stream, pickle-5 buffers), each copied once, from
//! the object's own memory straight into the queue slot.
//!
//! ```text
//! native:  'N' | tree_len: u32 | tree (tree_len bytes) | blob 0 | blob 1 | ...
//! pickled: 'P' | nbufs: u32 | pickle_len: u64 | buf_len: u64 × nbufs | pickle | buf 0 | ...
//! ```
//!
//! Every read of a received message is bounds-checked: a message forged by another process of
//! the same user decodes to an error, never to a read out of bounds.

use crate::buffer::BufferView;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

const FMT_NATIVE: u8 = b'N';
const FMT_PICKLE: u8 = b'P';

const T_NONE: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_BIGINT: u8 = 4;
const T_FLOAT: u8 = 5;
const T_STR: u8 = 6;
const T_BYTES: u8 = 7;
const T_BYTES_BLOB: u8 = 8;
const T_BYTEARRAY: u8 = 9;
const T_BYTEARRAY_BLOB: u8 = 10;
const T_TUPLE: u8 = 11;
const T_LIST: u8 = 12;
const T_DICT: u8 = 13;

/// Byte strings at least this long are copied from their object straight into the slot
/// instead of through the head.
const BLOB_MIN: usize = 2048;
/// Deeper nesting goes through pickle (which also handles cycles).
const MAX_DEPTH: u32 = 64;

/// One piece copied after the head, from memory its owner keeps alive and unchanged.
pub(crate) enum Blob {
    /// A `bytes` object (immutable) and its data.
    Bytes {
        _owner: Py<PyBytes>,
        ptr: *const u8,
        len: usize,
    },
    /// A buffer export (holds the exporter's memory in place until released).
    Buffer(BufferView),
}

impl Blob {
    /// Start of the blob's memory.
    fn ptr(&self) -> *const u8 {
        match self {
            Blob::Bytes { ptr, .. } => *ptr,
            Blob::Buffer(v) => v.ptr(),
        }
    }
    fn len(&self) -> usize {
        match self {
            Blob::Bytes { len, .. } => *len,
            Blob::Buffer(v) => v.len(),
        }
    }
}

/// An encoded message, ready to be written into a slot of `len()` bytes.
pub(crate) struct Encoded {
    head: Head,
    blobs: Vec<Blob>,
}

/// A message's head: inline up to 64 bytes (every small message: an int, a short str or tuple),
/// so that encoding one allocates nothing (a heap `Vec` cost about 180 instructions a `put`,
/// callgrind).
type Head = smallvec::SmallVec<[u8; 64]>;

// SAFETY: the blobs' memory is owned by Python objects (or buffer exports) this value keeps
// alive and in place (bytes are immutable; a buffer export forbids resizing and freeing). It
// is only ever copied from, as raw memory (`write`), never borrowed as a slice: a bytearray or
// numpy array that another thread writes while `put` copies it yields a mix of old and new
// bytes, as `file.write(buf)` would, which CPython's own I/O also copies without the GIL. Only
// the release of the references needs the GIL (see BufferView's Drop, and `Py`'s drop, which
// defers a decref made without the GIL).
unsafe impl Send for Encoded {}
// SAFETY: as for Send: the value is only read (copied from) while shared.
unsafe impl Sync for Encoded {}

impl Encoded {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.blobs.iter().map(Blob::len).sum::<usize>()
    }

    /// Writes the message into `out`, which is exactly `len()` bytes.
    pub(crate) fn write(&self, out: &mut [u8]) {
        let (h, mut rest) = out.split_at_mut(self.head.len());
        h.copy_from_slice(&self.head);
        for b in &self.blobs {
            let (dst, r) = rest.split_at_mut(b.len());
            // SAFETY: `ptr()` is the start of `len()` readable bytes kept alive and in place by
            // `b` (see the Send impl); `dst` is a distinct `len()`-byte region of the slot.
            unsafe { std::ptr::copy_nonoverlapping(b.ptr(), dst.as_mut_ptr(), dst.len()) };
            rest = r;
        }
    }
}

/// Encodes `obj`: natively if it is plain data, else with the pickler. Errors are the
/// pickler's (an object that cannot be pickled raises here, at `put`).
pub(crate) fn encode(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Encoded> {
    encode_as(py, obj, &mut Opts::default(), Dumps::Message)
}

/// Encodes `obj` to be stored in a shared container: as [`encode`], except that the pickle
/// fallback stores shmq objects (containers, queues) as references to them, at any time
/// (`shmq._pickling.dumps_shared`).
pub(crate) fn encode_stored(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Encoded> {
    encode_as(py, obj, &mut Opts::default(), Dumps::Stored)
}

/// Encodes a dictionary key so that keys Python finds equal encode to equal bytes where the
/// native encoding can see it: `True`/`False` as the ints 1 and 0, and a float with an integral
/// value (`2.0`, `-0.0`) as that int, also inside tuples. Returns whether anything was so
/// replaced (the caller then keeps the key as given beside it).
pub(crate) fn encode_key(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<(Encoded, bool)> {
    let mut o = Opts {
        canonical: true,
        changed: false,
    };
    let e = encode_as(py, obj, &mut o, Dumps::Stored)?;
    Ok((e, o.changed))
}

/// How [`native`] encodes: `canonical` replaces bools and integral floats by ints (and notes it
/// in `changed`).
#[derive(Default)]
struct Opts {
    canonical: bool,
    changed: bool,
}

/// Which pickler the fallback uses: `shmq._pickling.dumps` for queue messages, `dumps_shared`
/// for what is stored in a shared container.
#[derive(Clone, Copy)]
enum Dumps {
    Message,
    Stored,
}

fn encode_as(py: Python<'_>, obj: &Bound<'_, PyAny>, o: &mut Opts, d: Dumps) -> PyResult<Encoded> {
    let mut head = Head::new();
    head.push(FMT_NATIVE);
    head.extend_from_slice(&[0; 4]);
    let mut blobs = Vec::new();
    if native(py, obj, &mut head, &mut blobs, 0, o)? {
        let tree = head.len() - 5;
        if let Ok(t) = u32::try_from(tree) {
            head[1..5].copy_from_slice(&t.to_le_bytes());
            return Ok(Encoded { head, blobs });
        }
    }
    pickled(py, obj, d)
}

/// Appends the int `v` (an exact int object, or one made from a bool or float) to the tree.
fn put_int(py: Python<'_>, v: &Bound<'_, PyAny>, head: &mut Head) -> PyResult<bool> {
    match v.extract::<i64>() {
        Ok(v) => {
            head.push(T_INT);
            head.extend_from_slice(&v.to_le_bytes());
        }
        Err(_) => {
            // Arbitrary precision: two's complement, little-endian, through int.to_bytes.
            let bits: usize = v.call_method0("bit_length")?.extract()?;
            let n = bits / 8 + 1;
            let kwargs = PyDict::new(py);
            kwargs.set_item("signed", true)?;
            let b = v.call_method("to_bytes", (n, "little"), Some(&kwargs))?;
            let b = b.downcast::<PyBytes>()?.as_bytes();
            head.push(T_BIGINT);
            if !put_len(head, b.len()) {
                return Ok(false);
            }
            head.extend_from_slice(b);
        }
    }
    Ok(true)
}

fn put_len(head: &mut Head, n: usize) -> bool {
    match u32::try_from(n) {
        Ok(n) => {
            head.extend_from_slice(&n.to_le_bytes());
            true
        }
        Err(_) => false,
    }
}

/// Appends `obj` to the tree; `Ok(false)` if it (or something in it) is not plain data.
fn native(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    head: &mut Head,
    blobs: &mut Vec<Blob>,
    depth: u32,
    o: &mut Opts,
) -> PyResult<bool> {
    if depth > MAX_DEPTH {
        return Ok(false);
    }
    if obj.is_none() {
        head.push(T_NONE);
    } else if obj.is_exact_instance_of::<PyBool>() {
        if o.canonical {
            o.changed = true;
            let v = i64::from(obj.is_truthy()?);
            head.push(T_INT);
            head.extend_from_slice(&v.to_le_bytes());
        } else {
            head.push(if obj.is_truthy()? { T_TRUE } else { T_FALSE });
        }
    } else if obj.is_exact_instance_of::<PyInt>() {
        if !put_int(py, obj, head)? {
            return Ok(false);
        }
    } else if obj.is_exact_instance_of::<PyFloat>() {
        let v = obj.extract::<f64>()?;
        if o.canonical && v.is_finite() && v.trunc() == v {
            o.changed = true;
            let i = obj.call_method0("__int__")?;
            if !put_int(py, &i, head)? {
                return Ok(false);
            }
        } else {
            head.push(T_FLOAT);
            head.extend_from_slice(&v.to_le_bytes());
        }
    } else if let Ok(s) = obj.downcast_exact::<PyString>() {
        // A str with lone surrogates has no UTF-8 form: pickle it.
        let Ok(s) = s.to_cow() else { return Ok(false) };
        head.push(T_STR);
        if !put_len(head, s.len()) {
            return Ok(false);
        }
        head.extend_from_slice(s.as_bytes());
    } else if let Ok(b) = obj.downcast_exact::<PyBytes>() {
        let data = b.as_bytes();
        if data.len() >= BLOB_MIN {
            head.push(T_BYTES_BLOB);
            head.extend_from_slice(&(data.len() as u64).to_le_bytes());
            blobs.push(Blob::Bytes {
                _owner: b.clone().unbind(),
                ptr: data.as_ptr(),
                len: data.len(),
            });
        } else {
            head.push(T_BYTES);
            put_len(head, data.len());
            head.extend_from_slice(data);
        }
    } else if obj.is_exact_instance_of::<PyByteArray>() {
        let view = BufferView::get(obj)?;
        if view.len() >= BLOB_MIN {
            head.push(T_BYTEARRAY_BLOB);
            head.extend_from_slice(&(view.len() as u64).to_le_bytes());
            blobs.push(Blob::Buffer(view));
        } else {
            head.push(T_BYTEARRAY);
            put_len(head, view.len());
            head.extend_from_slice(view.as_slice());
        }
    } else if let Ok(t) = obj.downcast_exact::<PyTuple>() {
        head.push(T_TUPLE);
        if !put_len(head, t.len()) {
            return Ok(false);
        }
        for item in t.iter() {
            if !native(py, &item, head, blobs, depth + 1, o)? {
                return Ok(false);
            }
        }
    } else if let Ok(l) = obj.downcast_exact::<PyList>() {
        // A snapshot of the items: another thread may change the list meanwhile.
        let items: Vec<_> = l.iter().collect();
        head.push(T_LIST);
        if !put_len(head, items.len()) {
            return Ok(false);
        }
        for item in &items {
            if !native(py, item, head, blobs, depth + 1, o)? {
                return Ok(false);
            }
        }
    } else if let Ok(d) = obj.downcast_exact::<PyDict>() {
        let items: Vec<_> = d.iter().collect();
        head.push(T_DICT);
        if !put_len(head, items.len()) {
            return Ok(false);
        }
        for (k, v) in &items {
            if !native(py, k, head, blobs, depth + 1, o)?
                || !native(py, v, head, blobs, depth + 1, o)?
            {
                return Ok(false);
            }
        }
    } else {
        return Ok(false);
    }
    Ok(true)
}

static DUMPS: GILOnceCell<PyObject> = GILOnceCell::new();
static DUMPS_SHARED: GILOnceCell<PyObject> = GILOnceCell::new();
static LOADS: GILOnceCell<PyObject> = GILOnceCell::new();

fn helper<'py>(
    py: Python<'py>,
    cell: &'static GILOnceCell<PyObject>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let f = cell.get_or_try_init(py, || -> PyResult<PyObject> {
        Ok(py.import("shmq._pickling")?.getattr(name)?.unbind())
    })?;
    Ok(f.bind(py).clone())
}

fn dumps_fn(py: Python<'_>, d: Dumps) -> PyResult<Bound<'_, PyAny>> {
    match d {
        Dumps::Message => helper(py, &DUMPS, "dumps"),
        Dumps::Stored => helper(py, &DUMPS_SHARED, "dumps_shared"),
    }
}

/// Pickle protocol 5 through multiprocessing's pickler; buffers out of band when they can be
/// exported contiguous, else in band.
fn pickled(py: Python<'_>, obj: &Bound<'_, PyAny>, d: Dumps) -> PyResult<Encoded> {
    let dumps = dumps_fn(py, d)?;
    let (data, bufs): (Bound<'_, PyBytes>, Vec<Bound<'_, PyAny>>) =
        dumps.call1((obj, true))?.extract()?;
    let mut views = Vec::with_capacity(bufs.len());
    for b in &bufs {
        match BufferView::get_contiguous(b) {
            Ok(v) => views.push(v),
            Err(_) => return pickled_in_band(py, obj, d),
        }
    }
    Ok(pickle_message(data, views))
}

fn pickled_in_band(py: Python<'_>, obj: &Bound<'_, PyAny>, d: Dumps) -> PyResult<Encoded> {
    let dumps = dumps_fn(py, d)?;
    let (data, _): (Bound<'_, PyBytes>, Vec<Bound<'_, PyAny>>) =
        dumps.call1((obj, false))?.extract()?;
    Ok(pickle_message(data, Vec::new()))
}

fn pickle_message(data: Bound<'_, PyBytes>, views: Vec<BufferView>) -> Encoded {
    let mut head = Head::with_capacity(13 + 8 * views.len());
    head.push(FMT_PICKLE);
    head.extend_from_slice(&(views.len() as u32).to_le_bytes());
    let bytes = data.as_bytes();
    head.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    for v in &views {
        head.extend_from_slice(&(v.len() as u64).to_le_bytes());
    }
    let mut blobs = Vec::with_capacity(1 + views.len());
    blobs.push(Blob::Bytes {
        _owner: data.clone().unbind(),
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    });
    blobs.extend(views.into_iter().map(Blob::Buffer));
    Encoded { head, blobs }
}

/// A message read out of its slot: either the object itself (native), or the pickle and its
/// buffers, copied out, to unpickle once the slot is free (unpickling runs arbitrary code).
pub(crate) enum Decoded {
    Object(PyObject),
    Pickle(Py<PyBytes>, Vec<Py<PyByteArray>>),
}

impl Decoded {
    /// The object (unpickles if needed). Call with the slot released.
    pub(crate) fn finish(self, py: Python<'_>) -> PyResult<PyObject> {
        match self {
            Decoded::Object(o) => Ok(o),
            Decoded::Pickle(data, bufs) => {
                let loads = helper(py, &LOADS, "loads")?;
                let bufs = PyList::new(py, bufs)?;
                Ok(loads.call1((data, bufs))?.unbind())
            }
        }
    }
}

fn corrupt() -> PyErr {
    PyValueError::new_err("shmq: received a malformed message")
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(corrupt)?;
        let s = self.b.get(self.at..end).ok_or_else(corrupt)?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> PyResult<usize> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    fn u64(&mut self) -> PyResult<u64> {
        let s = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn len64(&mut self) -> PyResult<usize> {
        usize::try_from(self.u64()?).map_err(|_| corrupt())
    }
}

/// Decodes a message in place in its slot.
pub(crate) fn decode(py: Python<'_>, msg: &[u8]) -> PyResult<Decoded> {
    let mut r = Reader { b: msg, at: 0 };
    match r.u8()? {
        FMT_NATIVE => {
            let tree_len = r.u32()?;
            let tree = r.take(tree_len)?;
            let mut t = Reader { b: tree, at: 0 };
            let obj = tree_object(py, &mut t, &mut r, 0)?;
            if t.at != tree.len() || r.at != msg.len() {
                return Err(corrupt());
            }
            Ok(Decoded::Object(obj))
        }
        FMT_PICKLE => {
            let n = r.u32()?;
            let plen = r.len64()?;
            let mut lens = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                lens.push(r.len64()?);
            }
            let data = PyBytes::new(py, r.take(plen)?).unbind();
            let mut bufs = Vec::with_capacity(lens.len());
            for l in lens {
                bufs.push(PyByteArray::new(py, r.take(l)?).unbind());
            }
            if r.at != msg.len() {
                return Err(corrupt());
            }
            Ok(Decoded::Pickle(data, bufs))
        }
        _ => Err(corrupt()),
    }
}

fn tree_object(
    py: Python<'_>,
    t: &mut Reader<'_>,
    blobs: &mut Reader<'_>,
    depth: u32,
) -> PyResult<PyObject> {
    if depth > MAX_DEPTH + 1 {
        return Err(corrupt());
    }
    Ok(match t.u8()? {
        T_NONE => py.None(),
        T_FALSE => false.into_pyobject(py)?.to_owned().into_any().unbind(),
        T_TRUE => true.into_pyobject(py)?.to_owned().into_any().unbind(),
        T_INT => {
            let s = t.take(8)?;
            let mut a = [0; 8];
            a.copy_from_slice(s);
            i64::from_le_bytes(a).into_pyobject(py)?.into_any().unbind()
        }
        T_BIGINT => {
            let n = t.u32()?;
            let b = PyBytes::new(py, t.take(n)?);
            let kwargs = PyDict::new(py);
            kwargs.set_item("signed", true)?;
            py.get_type::<PyInt>()
                .call_method("from_bytes", (b, "little"), Some(&kwargs))?
                .unbind()
        }
        T_FLOAT => {
            let s = t.take(8)?;
            let mut a = [0; 8];
            a.copy_from_slice(s);
            f64::from_le_bytes(a).into_pyobject(py)?.into_any().unbind()
        }
        T_STR => {
            let n = t.u32()?;
            let s = std::str::from_utf8(t.take(n)?).map_err(|_| corrupt())?;
            PyString::new(py, s).into_any().unbind()
        }
        T_BYTES => {
            let n = t.u32()?;
            PyBytes::new(py, t.take(n)?).into_any().unbind()
        }
        T_BYTES_BLOB => {
            let n = t.len64()?;
            PyBytes::new(py, blobs.take(n)?).into_any().unbind()
        }
        T_BYTEARRAY => {
            let n = t.u32()?;
            PyByteArray::new(py, t.take(n)?).into_any().unbind()
        }
        T_BYTEARRAY_BLOB => {
            let n = t.len64()?;
            PyByteArray::new(py, blobs.take(n)?).into_any().unbind()
        }
        T_TUPLE => {
            let n = t.u32()?;
            let mut items = Vec::with_capacity(n.min(t.b.len()));
            for _ in 0..n {
                items.push(tree_object(py, t, blobs, depth + 1)?);
            }
            PyTuple::new(py, items)?.into_any().unbind()
        }
        T_LIST => {
            let n = t.u32()?;
            let mut items = Vec::with_capacity(n.min(t.b.len()));
            for _ in 0..n {
                items.push(tree_object(py, t, blobs, depth + 1)?);
            }
            PyList::new(py, items)?.into_any().unbind()
        }
        T_DICT => {
            let n = t.u32()?;
            let d = PyDict::new(py);
            for _ in 0..n {
                let k = tree_object(py, t, blobs, depth + 1)?;
                let v = tree_object(py, t, blobs, depth + 1)?;
                d.set_item(k, v)?;
            }
            d.into_any().unbind()
        }
        _ => return Err(corrupt()),
    })
}
