//! The fast walk from a Python object into core's [`Encoder`]: borrowed pointers, exact
//! type checks by pointer, CPython's own accessors (`PyDict_Next`, `PyUnicode_AsUTF8AndSize`
//! …), no reference counting. Measured on a 1 MB record dict, the safe walk spent about a
//! third of a `set` in PyO3's checks and in `_Py_IncRef` / `_Py_DecRef`, which are function
//! calls under the stable ABI (abi3).
//!
//! Why borrowed pointers are sound here: the caller holds the GIL and a strong reference to
//! the root, and every object below the root is owned by its container. Containers only
//! change when Python code runs or an object is freed, and this walk calls only CPython
//! functions that run no Python code, release no GIL and allocate no object the cyclic GC
//! tracks (so no collection and no finalizer can start). A call that fails (a str with lone
//! surrogates, an int above 64 bits) may create an exception object; after a failure the
//! walk only returns, touching no pointer again. Whatever would need Python code (a
//! `memoryview`, a type polycache does not store) stops the walk with [`Stop::General`], and
//! the caller writes the whole value again on the general, reference-counted path.

#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::ptr;

use polycache::codec::Encoder;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::errors;

/// Why the walk stopped.
pub enum Stop {
    /// An error to raise: a Python exception, or core's codec error.
    Raise(PyErr),
    /// Something this walk does not handle: write the value on the general path.
    General,
}

type Walked = Result<(), Stop>;

fn codec(result: polycache::Result<()>) -> Walked {
    result.map_err(|err| Stop::Raise(errors::to_py(err)))
}

/// The pending Python exception, after a CPython call reported failure.
fn raised(py: Python<'_>) -> Stop {
    Stop::Raise(PyErr::fetch(py))
}

/// Whether a CPython call just set an exception (its error return is also a valid value).
fn error_set(_py: Python<'_>) -> bool {
    // SAFETY: the GIL is held (`_py`); this reads the thread's exception state.
    !unsafe { ffi::PyErr_Occurred() }.is_null()
}

/// Writes `obj` into `encoder`, or stops where only the general path can go on.
pub fn encode(obj: &Bound<'_, PyAny>, encoder: &mut Encoder) -> Walked {
    // SAFETY: `obj` is a live object and the GIL is held for `'py`; the walk keeps to the
    // rules in this module's documentation, so every borrowed pointer below `obj` stays
    // valid until it returns.
    unsafe { value(obj.py(), obj.as_ptr(), encoder) }
}

/// # Safety
/// `obj` is a live object, the GIL is held, and nothing below `obj` can be freed while the
/// walk runs (module documentation).
unsafe fn value(py: Python<'_>, obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    // SAFETY: `obj` is live (this function's contract); it is compared with CPython's
    // static type objects and singletons, and handed to the function for its kind, whose
    // contract the type check establishes.
    unsafe {
        let ty = ffi::Py_TYPE(obj);
        // Exact built-in types first (one pointer comparison each): the common case.
        if ty == &raw mut ffi::PyUnicode_Type {
            str(py, obj, encoder)
        } else if ty == &raw mut ffi::PyDict_Type {
            dict(py, obj, encoder)
        } else if ty == &raw mut ffi::PyLong_Type {
            int(py, obj, encoder)
        } else if ty == &raw mut ffi::PyFloat_Type {
            float(py, obj, encoder)
        } else if ty == &raw mut ffi::PyList_Type {
            list(py, obj, encoder)
        } else if ty == &raw mut ffi::PyBool_Type {
            // bool cannot be subclassed: True or False.
            codec(encoder.bool(obj == ffi::Py_True()))
        } else if obj == ffi::Py_None() {
            codec(encoder.nil())
        } else if ty == &raw mut ffi::PyTuple_Type {
            tuple(py, obj, encoder)
        } else if ty == &raw mut ffi::PyBytes_Type {
            bytes(obj, encoder)
        }
        // Subclasses, by their type flags (no Python code runs): the kinds the general
        // path gives them, in its order.
        else if ffi::PyUnicode_Check(obj) != 0 {
            str(py, obj, encoder)
        } else if ffi::PyLong_Check(obj) != 0 {
            int(py, obj, encoder)
        } else if ffi::PyDict_Check(obj) != 0 {
            dict(py, obj, encoder)
        } else if ffi::PyList_Check(obj) != 0 {
            list(py, obj, encoder)
        } else if ffi::PyFloat_Check(obj) != 0 {
            float(py, obj, encoder)
        } else if ffi::PyBytes_Check(obj) != 0 {
            bytes(obj, encoder)
        } else if ffi::PyTuple_Check(obj) != 0 {
            tuple(py, obj, encoder)
        } else if ffi::PyByteArray_Check(obj) != 0 {
            // Its buffer cannot change while no Python code runs.
            let data = ffi::PyByteArray_AsString(obj);
            codec(encoder.bytes(raw_slice(data.cast(), ffi::PyByteArray_Size(obj))))
        } else {
            Err(Stop::General)
        }
    }
}

/// The `len` bytes at `data`, or nothing for a null pointer (an empty bytearray).
///
/// # Safety
/// `data` is null or points to `len` readable bytes that outlive the returned slice.
unsafe fn raw_slice<'a>(data: *const u8, len: ffi::Py_ssize_t) -> &'a [u8] {
    if data.is_null() || len <= 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(data, len as usize) }
}

/// # Safety
/// As [`value`]; `obj` is a str (or a subclass).
unsafe fn str(py: Python<'_>, obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    // SAFETY: the caller's contract.
    let text = unsafe { utf8(py, obj)? };
    codec(encoder.str(text))
}

/// A str's UTF-8, borrowed from the string's own cache (no copy for ASCII strings; made
/// once and kept by the string otherwise).
///
/// # Safety
/// `obj` is a live str (or a subclass), the GIL is held, and `obj` outlives the result.
unsafe fn utf8<'a>(py: Python<'_>, obj: *mut ffi::PyObject) -> Result<&'a str, Stop> {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `obj` is a live str; on failure (lone surrogates) CPython returns null and
    // sets an exception.
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj, &mut len) };
    if data.is_null() {
        return Err(raised(py));
    }
    // SAFETY: CPython's UTF-8 buffer of `len` bytes lives as long as the str and is valid
    // UTF-8 (it refuses to make one for lone surrogates).
    Ok(unsafe { std::str::from_utf8_unchecked(raw_slice(data.cast(), len)) })
}

/// # Safety
/// As [`value`]; `obj` is an int (or a subclass).
unsafe fn int(py: Python<'_>, obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    let mut overflow: c_int = 0;
    // SAFETY: `obj` is a live int: no `__index__` is called and nothing is allocated.
    let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow) };
    match overflow {
        0 if v == -1 && error_set(py) => Err(raised(py)),
        0 => codec(encoder.int(v)),
        1 => {
            // Above i64::MAX: u64 or too large.
            // SAFETY: as above; a value above u64::MAX sets OverflowError.
            let u = unsafe { ffi::PyLong_AsUnsignedLongLong(obj) };
            if u == u64::MAX && error_set(py) {
                // SAFETY: an exception is set; it is replaced by the codec error.
                unsafe { ffi::PyErr_Clear() };
                return Err(too_big());
            }
            codec(encoder.uint(u))
        }
        _ => Err(too_big()),
    }
}

fn too_big() -> Stop {
    Stop::Raise(super::codec_error(
        "integers must fit in 64 bits (-2**63 .. 2**64-1)",
    ))
}

/// # Safety
/// As [`value`]; `obj` is a float (or a subclass).
unsafe fn float(py: Python<'_>, obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    // SAFETY: `obj` is a live float: its value is read, no `__float__` is called.
    let v = unsafe { ffi::PyFloat_AsDouble(obj) };
    if v == -1.0 && error_set(py) {
        return Err(raised(py));
    }
    codec(encoder.float(v))
}

/// # Safety
/// As [`value`]; `obj` is bytes (or a subclass).
unsafe fn bytes(obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    // SAFETY: `obj` is live bytes; its buffer is immutable and lives as long as it does.
    let data = unsafe { raw_slice(ffi::PyBytes_AsString(obj).cast(), ffi::PyBytes_Size(obj)) };
    codec(encoder.bytes(data))
}

/// # Safety
/// As [`value`]; `obj` is a dict (or a subclass).
unsafe fn dict(py: Python<'_>, obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    // SAFETY: `obj` is a live dict; it cannot change during the walk (module docs), so its
    // size is the number of entries `PyDict_Next` yields, and the key and value pointers
    // it lends stay valid while they are used.
    unsafe {
        codec(encoder.begin_map(ffi::PyDict_Size(obj) as usize))?;
        let mut pos: ffi::Py_ssize_t = 0;
        let mut key: *mut ffi::PyObject = ptr::null_mut();
        let mut item: *mut ffi::PyObject = ptr::null_mut();
        while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut item) != 0 {
            if ffi::Py_TYPE(key) != &raw mut ffi::PyUnicode_Type && ffi::PyUnicode_Check(key) == 0 {
                // The general path names the key's type in its error.
                return Err(Stop::General);
            }
            codec(encoder.key(utf8(py, key)?))?;
            value(py, item, encoder)?;
        }
    }
    codec(encoder.end_map())
}

/// # Safety
/// As [`value`]; `obj` is a list (or a subclass).
unsafe fn list(py: Python<'_>, obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    // SAFETY: `obj` is a live list that cannot change during the walk (module docs), so
    // every index below its size holds a live item.
    unsafe {
        let len = ffi::PyList_Size(obj);
        codec(encoder.begin_array(len as usize))?;
        for i in 0..len {
            value(py, ffi::PyList_GetItem(obj, i), encoder)?;
        }
    }
    codec(encoder.end_array())
}

/// # Safety
/// As [`value`]; `obj` is a tuple (or a subclass).
unsafe fn tuple(py: Python<'_>, obj: *mut ffi::PyObject, encoder: &mut Encoder) -> Walked {
    // SAFETY: `obj` is a live tuple: immutable, every index below its size holds a live item.
    unsafe {
        let len = ffi::PyTuple_Size(obj);
        codec(encoder.begin_array(len as usize))?;
        for i in 0..len {
            value(py, ffi::PyTuple_GetItem(obj, i), encoder)?;
        }
    }
    codec(encoder.end_array())
}
