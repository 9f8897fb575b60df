//! The fast walk from a Python object into core's [`Encoder`]: borrowed pointers, exact
//! type checks by pointer, CPython's own accessors (`PyDict_Next`, `PyUnicode_AsUTF8AndSize`
//! …) or, where the layout is known, dicts and strs read in place ([`layout`]), no
//! reference counting. Measured on a 1 MB record dict, the safe walk spent about a
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

// The soundness argument above rests on the GIL: on a free-threaded CPython another thread
// could change a container while the walk holds borrowed pointers into it.
#[cfg(Py_GIL_DISABLED)]
compile_error!(
    "walk.rs borrows pointers that only the GIL keeps valid: not for free-threaded CPython"
);

use std::os::raw::c_int;
use std::ptr;

use polycache::codec::Encoder;
use pyo3::ffi;
use pyo3::prelude::*;

use super::layout;
use crate::errors;

/// Why the walk stopped.
pub enum Stop {
    /// An error to raise: a Python exception, or core's codec error.
    Raise(PyErr),
    /// Something this walk does not handle: write the value on the general path.
    General,
}

/// Why a step stopped; a raised error waits in [`Walk::error`]. One byte, so the result of
/// every step stays in a register (a `PyErr` in it made each step return through memory).
#[derive(Debug, Clone, Copy)]
enum Halt {
    Raised,
    General,
}

type Walked = Result<(), Halt>;

struct Walk<'e> {
    py: Python<'e>,
    encoder: &'e mut Encoder,
    error: Option<PyErr>,
    /// The UTF-8 of strs met in this walk, by object, in a small table indexed by
    /// address: a key object shared by many dicts (records' field names) or a repeated
    /// str is converted once. An entry stays valid for the whole walk, because no object
    /// below the root is freed while it runs (module documentation).
    texts: [Text; TEXT_SLOTS],
}

/// A str object and its UTF-8 (pointer, length); a null object is an empty slot.
#[derive(Clone, Copy)]
struct Text {
    obj: *mut ffi::PyObject,
    data: *const u8,
    len: usize,
}

const TEXT_SLOTS: usize = 64;

const NO_TEXT: Text = Text {
    obj: ptr::null_mut(),
    data: ptr::null(),
    len: 0,
};

/// Whether a CPython call just set an exception (its error return is also a valid value).
fn error_set(_py: Python<'_>) -> bool {
    // SAFETY: the GIL is held (`_py`); this reads the thread's exception state.
    !unsafe { ffi::PyErr_Occurred() }.is_null()
}

/// Writes `obj` into `encoder`, or stops where only the general path can go on.
pub fn encode(obj: &Bound<'_, PyAny>, encoder: &mut Encoder) -> Result<(), Stop> {
    let mut walk = Walk {
        py: obj.py(),
        encoder,
        error: None,
        texts: [NO_TEXT; TEXT_SLOTS],
    };
    // SAFETY: `obj` is a live object and the GIL is held for `'py`; the walk keeps to the
    // rules in this module's documentation, so every borrowed pointer below `obj` stays
    // valid until it returns.
    match unsafe { walk.value(obj.as_ptr()) } {
        Ok(()) => Ok(()),
        Err(Halt::General) => Err(Stop::General),
        Err(Halt::Raised) => Err(Stop::Raise(walk.error.take().unwrap_or_else(|| {
            pyo3::exceptions::PySystemError::new_err("polycache: the walk stopped without an error")
        }))),
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

impl Walk<'_> {
    /// Keeps core's error for the caller.
    fn codec(&mut self, result: polycache::Result<()>) -> Walked {
        result.map_err(|err| self.raise(errors::to_py(err)))
    }

    fn raise(&mut self, err: PyErr) -> Halt {
        self.error = Some(err);
        Halt::Raised
    }

    /// Keeps the pending Python exception, after a CPython call reported failure.
    fn raised(&mut self) -> Halt {
        let err = PyErr::fetch(self.py);
        self.raise(err)
    }

    /// # Safety
    /// `obj` is a live object, the GIL is held, and nothing below `obj` can be freed while the
    /// walk runs (module documentation).
    unsafe fn value(&mut self, obj: *mut ffi::PyObject) -> Walked {
        // SAFETY: `obj` is live (this function's contract); it is compared with CPython's
        // static type objects and singletons, and handed to the function for its kind, whose
        // contract the type check establishes.
        unsafe {
            let ty = ffi::Py_TYPE(obj);
            // Exact built-in types first (one pointer comparison each): the common case.
            if ty == &raw mut ffi::PyUnicode_Type {
                self.str(obj)
            } else if ty == &raw mut ffi::PyDict_Type {
                self.dict(obj)
            } else if ty == &raw mut ffi::PyLong_Type {
                self.int(obj)
            } else if ty == &raw mut ffi::PyFloat_Type {
                self.float(obj)
            } else if ty == &raw mut ffi::PyList_Type {
                self.list(obj)
            } else if ty == &raw mut ffi::PyBool_Type {
                // bool cannot be subclassed: True or False.
                {
                    let written = self.encoder.bool(obj == ffi::Py_True());
                    self.codec(written)
                }
            } else if obj == ffi::Py_None() {
                {
                    let written = self.encoder.nil();
                    self.codec(written)
                }
            } else if ty == &raw mut ffi::PyTuple_Type {
                self.tuple(obj)
            } else if ty == &raw mut ffi::PyBytes_Type {
                self.bytes(obj)
            }
            // Subclasses, by their type flags (no Python code runs): the kinds the general
            // path gives them, in its order.
            else if ffi::PyUnicode_Check(obj) != 0 {
                self.str(obj)
            } else if ffi::PyLong_Check(obj) != 0 {
                self.int(obj)
            } else if ffi::PyDict_Check(obj) != 0 {
                self.dict(obj)
            } else if ffi::PyList_Check(obj) != 0 {
                self.list(obj)
            } else if ffi::PyFloat_Check(obj) != 0 {
                self.float(obj)
            } else if ffi::PyBytes_Check(obj) != 0 {
                self.bytes(obj)
            } else if ffi::PyTuple_Check(obj) != 0 {
                self.tuple(obj)
            } else if ffi::PyByteArray_Check(obj) != 0 {
                // Its buffer cannot change while no Python code runs.
                let data = ffi::PyByteArray_AsString(obj);
                {
                    let written = self
                        .encoder
                        .bytes(raw_slice(data.cast(), ffi::PyByteArray_Size(obj)));
                    self.codec(written)
                }
            } else {
                Err(Halt::General)
            }
        }
    }

    /// # Safety
    /// As [`value`]; `obj` is a str (or a subclass).
    #[inline(always)]
    unsafe fn str(&mut self, obj: *mut ffi::PyObject) -> Walked {
        // SAFETY: the caller's contract.
        let text = unsafe { self.utf8(obj, false)? };
        {
            let written = self.encoder.str(text);
            self.codec(written)
        }
    }

    /// A str's UTF-8, borrowed from the string's own cache (no copy for ASCII strings, read
    /// in place where the layout is known; made once and kept by the string otherwise).
    ///
    /// # Safety
    /// `obj` is a live str (or a subclass), the GIL is held, and `obj` outlives the result.
    #[inline(always)]
    unsafe fn utf8<'a>(&mut self, obj: *mut ffi::PyObject, key: bool) -> Result<&'a str, Halt> {
        // Objects are at least 16-byte aligned: the bits above those tell them apart.
        let slot = (obj as usize >> 4) % TEXT_SLOTS;
        let seen = self.texts[slot];
        if seen.obj == obj {
            // SAFETY: recorded by `convert` from this same object, which is still alive
            // (the caller's contract), and so is its UTF-8 buffer.
            return Ok(unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(seen.data, seen.len))
            });
        }
        // SAFETY: the caller's contract.
        unsafe { self.convert(obj, slot, key) }
    }

    /// [`utf8`] for a str not in the table: asks CPython, and records the answer.
    ///
    /// # Safety
    /// As [`utf8`].
    #[inline(never)]
    unsafe fn convert<'a>(
        &mut self,
        obj: *mut ffi::PyObject,
        slot: usize,
        key: bool,
    ) -> Result<&'a str, Halt> {
        // SAFETY: `obj` is a live str (the caller's contract).
        if let Some(text) = unsafe { layout::ascii(obj) } {
            self.texts[slot] = Text {
                obj,
                data: text.as_ptr(),
                len: text.len(),
            };
            return Ok(text);
        }
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: `obj` is a live str; on failure (lone surrogates) CPython returns null and
        // sets an exception.
        let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj, &mut len) };
        if data.is_null() {
            let cause = PyErr::fetch(self.py);
            // SAFETY: `obj` is live; a new strong reference is taken, and after this failure
            // the walk only returns.
            let s = unsafe { Bound::from_borrowed_ptr(self.py, obj) };
            return Err(self.raise(super::not_utf8(&s, key, cause)));
        }
        // SAFETY: CPython's UTF-8 buffer of `len` bytes lives as long as the str and is valid
        // UTF-8 (it refuses to make one for lone surrogates).
        let text: &'a str = unsafe { std::str::from_utf8_unchecked(raw_slice(data.cast(), len)) };
        self.texts[slot] = Text {
            obj,
            data: text.as_ptr(),
            len: text.len(),
        };
        Ok(text)
    }

    /// # Safety
    /// As [`value`]; `obj` is an int (or a subclass).
    unsafe fn int(&mut self, obj: *mut ffi::PyObject) -> Walked {
        let mut overflow: c_int = 0;
        // SAFETY: `obj` is a live int: no `__index__` is called and nothing is allocated.
        let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow) };
        match overflow {
            0 if v == -1 && error_set(self.py) => Err(self.raised()),
            0 => {
                let written = self.encoder.int(v);
                self.codec(written)
            }
            1 => {
                // Above i64::MAX: u64 or too large.
                // SAFETY: as above; a value above u64::MAX sets OverflowError.
                let u = unsafe { ffi::PyLong_AsUnsignedLongLong(obj) };
                if u == u64::MAX && error_set(self.py) {
                    // SAFETY: an exception is set; it is replaced by the codec error.
                    unsafe { ffi::PyErr_Clear() };
                    return Err(self.too_big());
                }
                {
                    let written = self.encoder.uint(u);
                    self.codec(written)
                }
            }
            _ => Err(self.too_big()),
        }
    }

    /// A container's item: null (an index error, or a slot another extension left empty)
    /// stops the walk with an error rather than being followed.
    #[inline(always)]
    fn item(&mut self, item: *mut ffi::PyObject) -> Result<*mut ffi::PyObject, Halt> {
        if item.is_null() {
            return Err(self.no_item());
        }
        Ok(item)
    }

    #[cold]
    #[inline(never)]
    fn no_item(&mut self) -> Halt {
        if error_set(self.py) {
            return self.raised();
        }
        self.raise(pyo3::exceptions::PySystemError::new_err(
            "polycache: a list or tuple holds an empty slot",
        ))
    }

    fn too_big(&mut self) -> Halt {
        self.raise(super::codec_error(
            "integers must fit in 64 bits (-2**63 .. 2**64-1)",
        ))
    }

    /// # Safety
    /// As [`value`]; `obj` is a float (or a subclass).
    #[inline(always)]
    unsafe fn float(&mut self, obj: *mut ffi::PyObject) -> Walked {
        // SAFETY: `obj` is a live float: its value is read, no `__float__` is called.
        let v = unsafe { ffi::PyFloat_AsDouble(obj) };
        if v == -1.0 && error_set(self.py) {
            return Err(self.raised());
        }
        {
            let written = self.encoder.float(v);
            self.codec(written)
        }
    }

    /// # Safety
    /// As [`value`]; `obj` is bytes (or a subclass).
    unsafe fn bytes(&mut self, obj: *mut ffi::PyObject) -> Walked {
        // SAFETY: `obj` is live bytes; its buffer is immutable and lives as long as it does.
        let data = unsafe { raw_slice(ffi::PyBytes_AsString(obj).cast(), ffi::PyBytes_Size(obj)) };
        {
            let written = self.encoder.bytes(data);
            self.codec(written)
        }
    }

    /// # Safety
    /// As [`value`]; `obj` is a dict (or a subclass).
    unsafe fn dict(&mut self, obj: *mut ffi::PyObject) -> Walked {
        // SAFETY: `obj` is a live dict; it cannot change during the walk (module docs), so its
        // size is the number of entries it yields, and the key and value pointers lent stay
        // valid while they are used.
        unsafe {
            let len = ffi::PyDict_Size(obj);
            {
                let written = self.encoder.begin_map(len as usize);
                self.codec(written)
            }?;
            if let Some(entries) = layout::entries(obj) {
                let mut read: ffi::Py_ssize_t = 0;
                for (key, item) in entries {
                    self.entry(key, item)?;
                    read += 1;
                }
                if read != len {
                    // Never seen (`layout::detect` checked the reading): the general path
                    // writes the value again rather than store a wrong count.
                    return Err(Halt::General);
                }
            } else {
                for (key, item) in layout::dict_next(obj) {
                    self.entry(key, item)?;
                }
            }
        }
        {
            let written = self.encoder.end_map();
            self.codec(written)
        }
    }

    /// One entry of a dict: its key (a str) and value.
    ///
    /// # Safety
    /// As [`value`], for `key` and `item`.
    #[inline(always)]
    unsafe fn entry(&mut self, key: *mut ffi::PyObject, item: *mut ffi::PyObject) -> Walked {
        // SAFETY: the caller's contract.
        unsafe {
            if ffi::Py_TYPE(key) != &raw mut ffi::PyUnicode_Type && ffi::PyUnicode_Check(key) == 0 {
                // The general path names the key's type in its error.
                return Err(Halt::General);
            }
            {
                let text = self.utf8(key, true)?;
                let written = self.encoder.key(text);
                self.codec(written)
            }?;
            self.value(item)
        }
    }

    /// # Safety
    /// As [`value`]; `obj` is a list (or a subclass).
    unsafe fn list(&mut self, obj: *mut ffi::PyObject) -> Walked {
        // SAFETY: `obj` is a live list that cannot change during the walk (module docs), so
        // every index below its size holds a live item.
        unsafe {
            let len = ffi::PyList_Size(obj);
            {
                let written = self.encoder.begin_array(len as usize);
                self.codec(written)
            }?;
            for i in 0..len {
                let item = self.item(ffi::PyList_GetItem(obj, i))?;
                // A list of floats, the common large list: no dispatch per item.
                if ffi::Py_TYPE(item) == &raw mut ffi::PyFloat_Type {
                    self.float(item)?;
                } else {
                    self.value(item)?;
                }
            }
        }
        {
            let written = self.encoder.end_array();
            self.codec(written)
        }
    }

    /// # Safety
    /// As [`value`]; `obj` is a tuple (or a subclass).
    unsafe fn tuple(&mut self, obj: *mut ffi::PyObject) -> Walked {
        // SAFETY: `obj` is a live tuple: immutable, every index below its size holds a live item.
        unsafe {
            let len = ffi::PyTuple_Size(obj);
            {
                let written = self.encoder.begin_array(len as usize);
                self.codec(written)
            }?;
            for i in 0..len {
                let item = self.item(ffi::PyTuple_GetItem(obj, i))?;
                self.value(item)?;
            }
        }
        {
            let written = self.encoder.end_array();
            self.codec(written)
        }
    }
}
