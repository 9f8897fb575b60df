//! Python objects made for core's decoder ([`Build`]): lists filled in place, dicts in wire
//! order, repeated map keys made once. CPython's C API directly, because the safe
//! wrappers cost one or two reference-count function calls per item under the stable ABI
//! (abi3), and a 1 MB record dict has some 60,000 items.
//!
//! The cyclic GC is paused while a [`PyBuild`] lives ([`PyBuild::new`]): a payload of many
//! dicts otherwise triggers collections all along (measured: a 1 MB record dict took twice
//! as long with the GC running, for every decoder), and no collection can then look at a
//! list whose slots are still being filled.

#![allow(unsafe_code)]

// Lists with empty slots and lent key objects are sound because the GIL keeps every other
// thread out while a decode runs; a free-threaded CPython gives no such guarantee.
#[cfg(Py_GIL_DISABLED)]
compile_error!(
    "build.rs relies on the GIL to keep half-filled lists private: not for free-threaded CPython"
);

use std::os::raw::c_int;

use polycache::codec::{Build, PREALLOC_ITEMS};
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Keys already made during one decode: the records of a payload repeat their keys, and a
/// str made once (its hash cached) is shared by every dict that uses it. A power of two.
const KEY_SLOTS: usize = 512;
/// Longer keys are made each time: they rarely repeat.
const KEY_MAX_LEN: usize = 64;

/// A cached key: its str, whose UTF-8 is compared with the key read (read in place for
/// an ASCII str where the layout is known, CPython's UTF-8 cache of it otherwise): no copy
/// of the key is kept, so a key met once (a record's own name) costs no allocation.
type KeySlot<'py> = Bound<'py, PyString>;

/// Makes Python objects for a decoder (core's `Build`).
pub struct PyBuild<'py> {
    py: Python<'py>,
    /// One key per slot, by hash; a slot once filled keeps its key until the builder is
    /// dropped, so a map may name a slot's object by its index (see [`Key::Cached`]).
    keys: Vec<Option<KeySlot<'py>>>,
    /// Whether the GC ran before [`PyBuild::new`] paused it.
    gc_was_on: bool,
}

impl<'py> PyBuild<'py> {
    /// A builder; pauses the cyclic GC until it is dropped.
    pub fn new(py: Python<'py>) -> Self {
        // SAFETY: the GIL is held (`py`); PyGC_Disable only flips the collector's switch
        // and returns the previous state.
        let gc_was_on = unsafe { ffi::PyGC_Disable() } != 0;
        PyBuild {
            py,
            keys: Vec::new(),
            gc_was_on,
        }
    }

    /// The key object for `key`: shared from a slot when it is cached there.
    fn key_object(&mut self, key: &str) -> PyResult<Key<'py>> {
        if key.len() > KEY_MAX_LEN {
            return self.new_str(key).map(Key::Owned);
        }
        if self.keys.is_empty() {
            self.keys.resize_with(KEY_SLOTS, || None);
        }
        let slot = key_slot(key.as_bytes());
        match &self.keys[slot] {
            Some(object) if utf8_of(object) == Some(key.as_bytes()) => {
                return Ok(Key::Cached(slot))
            }
            // First come keeps the slot: a slot's object never changes during a decode.
            Some(_) => return self.new_str(key).map(Key::Owned),
            None => {}
        }
        let object = self.new_str(key)?.cast_into::<PyString>()?;
        self.keys[slot] = Some(object);
        Ok(Key::Cached(slot))
    }

    /// A new str (the decoder checked that `v` is UTF-8 and counted it).
    fn new_str(&self, v: &str) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: `v` is `v.len()` bytes of UTF-8; the GIL is held; the result is a new
        // reference or null with an exception set.
        unsafe {
            owned(
                self.py,
                ffi::PyUnicode_FromStringAndSize(v.as_ptr().cast(), v.len() as ffi::Py_ssize_t),
            )
        }
    }
}

impl Drop for PyBuild<'_> {
    fn drop(&mut self) {
        if self.gc_was_on {
            // SAFETY: the GIL is held for `'py`; this resumes what `new` paused.
            unsafe { ffi::PyGC_Enable() };
        }
    }
}

/// The cache slot of a key: its first and last 8 bytes (4, or 3 single bytes, for shorter
/// keys) and its length, mixed by one multiply. Keys that collide are only made twice; a
/// byte-by-byte hash (FNV-1a) was a third of the cache's time on a 10 KB records get.
fn key_slot(key: &[u8]) -> usize {
    let n = key.len();
    let word = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            key[at..at + 4].try_into().unwrap_or_default(),
        ))
    };
    let (first, last) = match n {
        8.. => (word(0), word(n - 8)),
        4..=7 => (half(0), half(n - 4)),
        1..=3 => (
            u64::from(key[0]) | u64::from(key[n / 2]) << 8 | u64::from(key[n - 1]) << 16,
            0,
        ),
        0 => (0, 0),
    };
    let mixed = (first ^ last.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The top bits, which the multiply mixes best: KEY_SLOTS is a power of two.
    (mixed >> (64 - KEY_SLOTS.trailing_zeros())) as usize
}

/// The UTF-8 of a str this builder made (`None` if CPython cannot give it, which it always
/// can for a str made from UTF-8).
fn utf8_of<'a>(s: &'a Bound<'_, PyString>) -> Option<&'a [u8]> {
    // SAFETY: `s` is a live str, borrowed for `'a`; its characters (an ASCII str's, read in
    // place) or CPython's cached UTF-8 of it live as long as it does.
    unsafe {
        if let Some(text) = super::layout::ascii(s.as_ptr()) {
            return Some(text.as_bytes());
        }
        let mut len: ffi::Py_ssize_t = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len);
        if data.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(std::slice::from_raw_parts(data.cast::<u8>(), len as usize))
    }
}

/// A new reference from a CPython call, or its exception.
///
/// # Safety
/// `ptr` is a new (owned) reference, or null with a Python exception set.
unsafe fn owned<'py>(py: Python<'py>, ptr: *mut ffi::PyObject) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the caller's contract.
    unsafe { Bound::from_owned_ptr_or_err(py, ptr) }
}

/// A map key waiting for its value.
pub enum Key<'py> {
    /// The index of the builder's key slot holding it: read there when the value comes,
    /// so no pointer outlives the builder that owns the object.
    Cached(usize),
    /// Made for this entry alone.
    Owned(Bound<'py, PyAny>),
}

/// A list being filled: `PyList_New(len)` leaves `len` empty slots, set in order; items
/// past them are appended.
pub struct List<'py> {
    list: Bound<'py, PyAny>,
    len: ffi::Py_ssize_t,
    filled: ffi::Py_ssize_t,
}

/// A dict being filled and the key of the entry being read.
pub struct Dict<'py> {
    dict: Bound<'py, PyAny>,
    key: Option<Key<'py>>,
}

impl<'py> Build for PyBuild<'py> {
    type Value = Bound<'py, PyAny>;
    type Array = List<'py>;
    type Map = Dict<'py>;
    type Error = PyErr;

    fn nil(&mut self) -> PyResult<Self::Value> {
        Ok(self.py.None().into_bound(self.py))
    }
    fn bool(&mut self, v: bool) -> PyResult<Self::Value> {
        Ok(pyo3::types::PyBool::new(self.py, v).to_owned().into_any())
    }
    fn int(&mut self, v: i64) -> PyResult<Self::Value> {
        // SAFETY: the GIL is held; a new reference or null with an exception.
        unsafe { owned(self.py, ffi::PyLong_FromLongLong(v)) }
    }
    fn uint(&mut self, v: u64) -> PyResult<Self::Value> {
        // SAFETY: as `int`.
        unsafe { owned(self.py, ffi::PyLong_FromUnsignedLongLong(v)) }
    }
    fn float(&mut self, v: f64) -> PyResult<Self::Value> {
        // SAFETY: as `int`.
        unsafe { owned(self.py, ffi::PyFloat_FromDouble(v)) }
    }
    fn str(&mut self, v: &str) -> PyResult<Self::Value> {
        self.new_str(v)
    }
    fn bytes(&mut self, v: &[u8]) -> PyResult<Self::Value> {
        Ok(pyo3::types::PyBytes::new(self.py, v).into_any())
    }
    fn array(&mut self, len: usize) -> PyResult<Self::Array> {
        // No reservation granted (JSON, which gives no length): at most PREALLOC_ITEMS
        // slots, the rest appended as they are read.
        self.array_reserved(len, len.min(PREALLOC_ITEMS))
    }
    fn array_reserved(&mut self, _len: usize, reserve: usize) -> PyResult<Self::Array> {
        // `reserve` comes from core's decode-wide preallocation budget (`Prealloc`): all
        // the slots made during one decode add up to at most the payload's length, however
        // hostile claims nest, and an honest list gets all its slots here.
        let len = reserve as ffi::Py_ssize_t;
        // SAFETY: as `int`. The empty slots are null until `push` sets them; CPython's
        // list code (dealloc, GC traversal) skips null slots, and the list reaches no
        // Python code before `end_array` returns it whole (the GC is paused).
        let list = unsafe { owned(self.py, ffi::PyList_New(len))? };
        Ok(List {
            list,
            len,
            filled: 0,
        })
    }
    fn push(&mut self, array: &mut Self::Array, item: Self::Value) -> PyResult<()> {
        let list = array.list.as_ptr();
        if array.filled < array.len {
            // SAFETY: `list` is a live list with `len` slots and `filled < len`;
            // PyList_SetItem takes over `item`'s reference.
            if unsafe { ffi::PyList_SetItem(list, array.filled, item.into_ptr()) } != 0 {
                return Err(PyErr::fetch(self.py));
            }
            array.filled += 1;
            return Ok(());
        }
        // No length given (JSON) or more items than claimed: append.
        // SAFETY: `list` and `item` are live; PyList_Append adds its own reference.
        check(self.py, unsafe { ffi::PyList_Append(list, item.as_ptr()) })
    }
    fn end_array(&mut self, array: Self::Array) -> PyResult<Self::Value> {
        if array.filled < array.len {
            // Fewer items than slots (a decoder never does this): drop the empty tail so
            // no null slot reaches Python.
            let list = array.list.as_ptr();
            // SAFETY: a live list; deleting the slice [filled, len) of null slots.
            let status = unsafe {
                ffi::PyList_SetSlice(list, array.filled, array.len, std::ptr::null_mut())
            };
            check(self.py, status)?;
        }
        Ok(array.list)
    }
    fn map(&mut self, _len: usize) -> PyResult<Self::Map> {
        // SAFETY: as `int`.
        let dict = unsafe { owned(self.py, ffi::PyDict_New())? };
        Ok(Dict { dict, key: None })
    }
    fn key(&mut self, map: &mut Self::Map, key: &str) -> PyResult<()> {
        map.key = Some(self.key_object(key)?);
        Ok(())
    }
    fn value(&mut self, map: &mut Self::Map, value: Self::Value) -> PyResult<()> {
        let key = match &map.key {
            Some(Key::Cached(slot)) => match self.keys.get(*slot) {
                Some(Some(object)) => object.as_ptr(),
                _ => return Err(PyRuntimeError::new_err("a map key slot of another builder")),
            },
            Some(Key::Owned(object)) => object.as_ptr(),
            None => return Ok(()),
        };
        // SAFETY: a live dict, a live exact str key (its hash cannot run Python code) and a
        // live value; PyDict_SetItem adds its own references. A repeated key keeps its
        // first position and takes this value, as FORMAT.md §2 says.
        let set = unsafe { ffi::PyDict_SetItem(map.dict.as_ptr(), key, value.as_ptr()) };
        map.key = None;
        check(self.py, set)
    }
    fn end_map(&mut self, map: Self::Map) -> PyResult<Self::Value> {
        Ok(map.dict)
    }
}

/// A CPython status (0 or -1 with an exception set) as a result.
fn check(py: Python<'_>, status: c_int) -> PyResult<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(py))
    }
}
