//! A held buffer export (PEP 3118), for copying an object's memory (a bytearray, a pickle-5
//! buffer of a numpy array) straight into a queue slot.
//!
//! The buffer functions are part of the stable ABI only from CPython 3.11 (PEP 688 era), so the
//! abi3 build for 3.9 declares them itself. `PyObject_GetBuffer`, `PyBuffer_Release` and the
//! `Py_buffer` struct have had this exact form in every CPython 3 release since 3.3.

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::{c_char, c_int, c_void};

#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
}

const PYBUF_SIMPLE: c_int = 0;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;
const PYBUF_ANY_CONTIGUOUS: c_int = 0x0080 | PYBUF_STRIDES;

/// An exported buffer, released (with the GIL) on drop. While it lives, the exporter keeps the
/// memory in place (a bytearray refuses to resize, for instance).
pub(crate) struct BufferView {
    raw: Box<RawBuffer>,
}

impl BufferView {
    fn export(obj: &Bound<'_, PyAny>, flags: c_int) -> PyResult<Self> {
        let mut raw = Box::new(RawBuffer {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        });
        // SAFETY: `obj` is a live object (we hold the GIL through `Bound`); `raw` is a valid,
        // writable Py_buffer. On success the export is released exactly once, in Drop.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *raw, flags) };
        if rc != 0 {
            return Err(PyErr::take(obj.py())
                .unwrap_or_else(|| PyBufferError::new_err("buffer export failed")));
        }
        if raw.len < 0 || (raw.len > 0 && raw.buf.is_null()) {
            drop(BufferView { raw });
            return Err(PyBufferError::new_err("buffer export returned no memory"));
        }
        Ok(BufferView { raw })
    }

    /// A one-dimensional, C-contiguous export of the whole object.
    pub(crate) fn get(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        Self::export(obj, PYBUF_SIMPLE)
    }

    /// An export of memory that is contiguous in C or Fortran order (a pickle-5 buffer's raw
    /// memory): its `len` bytes in memory order.
    pub(crate) fn get_contiguous(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let v = Self::export(obj, PYBUF_ANY_CONTIGUOUS)?;
        if !v.raw.suboffsets.is_null() {
            return Err(PyBufferError::new_err("indirect buffer"));
        }
        Ok(v)
    }

    pub(crate) fn len(&self) -> usize {
        self.raw.len as usize
    }

    /// Start of the exported memory (dangling but non-null when empty).
    pub(crate) fn ptr(&self) -> *const u8 {
        if self.raw.buf.is_null() {
            std::ptr::NonNull::<u8>::dangling().as_ptr()
        } else {
            self.raw.buf as *const u8
        }
    }

    /// The exported bytes, borrowed (only while the GIL is held: see `Encoded`).
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.raw.len == 0 {
            return &[];
        }
        // SAFETY: the export guarantees `len` readable, contiguous bytes at `buf` until
        // PyBuffer_Release, which only Drop calls.
        unsafe { std::slice::from_raw_parts(self.raw.buf as *const u8, self.raw.len as usize) }
    }
}

impl Drop for BufferView {
    fn drop(&mut self) {
        Python::with_gil(|_| {
            // SAFETY: the export succeeded (constructor) and is released once, with the GIL.
            unsafe { PyBuffer_Release(&mut *self.raw) }
        });
    }
}
