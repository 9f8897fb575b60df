//! A dict's entries read in place from CPython's memory, on the CPython versions whose
//! layout is known here and checked at import; everywhere else, and for dicts this does
//! not read (split tables), the walk calls `PyDict_Next`.
//!
//! Why: under the stable ABI `PyDict_Next` is a call per entry, 17% of a 1 MB records
//! `set` (perf). Read in place, a `memory://` set of that value measured 1,230–1,260 µs
//! against 1,530–1,620 (ormsgpack's `packb` alone: 1,060–1,120), and so do the Redis sets
//! of record dicts. ormsgpack and orjson read dicts the same way, built per version.
//!
//! The layout (CPython's `Include/internal/pycore_dict.h`, the same in 3.11, 3.12 and 3.13
//! with the GIL): a dict object holds `ma_used`, a version tag, `ma_keys` and `ma_values`
//! (null for a combined table, the only kind read here). The keys object holds its sizes,
//! its kind (0: any keys, whose entries are hash, key, value; 1: str keys only, key and
//! value) and `dk_nentries`, then `1 << dk_log2_index_bytes` bytes of hash index, then the
//! entries in insertion order; a deleted entry has a null value. `PyDict_Next` yields
//! exactly the entries with a value, in that order.
//!
//! Checked twice: [`detect`] enables the reading only on CPython 3.11–3.13 and only when
//! it yields what `PyDict_Next` yields for dicts of every kind (str keys, other keys,
//! deleted entries, 1- and 2-byte indexes, an instance's split dict, an empty one); and
//! the walk compares the entries it read in each dict with the dict's size, writing the
//! value again on the general path if they ever differ. `POLYCACHE_DICT_NEXT=1` in the
//! environment at import turns the reading off.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Whether dicts are read in place ([`detect`] said so).
static IN_PLACE: AtomicBool = AtomicBool::new(false);

/// A dict object's head (`PyDictObject`).
#[repr(C)]
#[allow(dead_code)] // Fields never read stand for the layout.
struct DictObject {
    ob_refcnt: ffi::Py_ssize_t,
    ob_type: *mut ffi::PyTypeObject,
    ma_used: ffi::Py_ssize_t,
    ma_version_tag: u64,
    ma_keys: *const KeysObject,
    ma_values: *const u8,
}

/// A keys object's head (`PyDictKeysObject`); the hash index, then the entries, follow.
#[repr(C)]
#[allow(dead_code)] // Fields never read stand for the layout.
struct KeysObject {
    dk_refcnt: ffi::Py_ssize_t,
    dk_log2_size: u8,
    dk_log2_index_bytes: u8,
    dk_kind: u8,
    dk_version: u32,
    dk_usable: ffi::Py_ssize_t,
    dk_nentries: ffi::Py_ssize_t,
}

/// `dk_kind` of a table whose keys may be anything: entries of hash, key, value.
const KEYS_GENERAL: u8 = 0;
/// `dk_kind` of a table of str keys only: entries of key, value.
const KEYS_UNICODE: u8 = 1;

/// The entries of one combined dict table with a value, in insertion order: (key, value),
/// borrowed.
pub struct Entries {
    at: *const *mut ffi::PyObject,
    end: *const *mut ffi::PyObject,
    /// Pointers per entry: 3 (hash, key, value) or 2 (key, value).
    width: usize,
}

impl Iterator for Entries {
    type Item = (*mut ffi::PyObject, *mut ffi::PyObject);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        while self.at < self.end {
            // SAFETY: `at` is an entry of the table (`entries`' contract): its last two
            // pointers are the key and the value.
            let (key, value) = unsafe {
                let key = *self.at.add(self.width - 2);
                let value = *self.at.add(self.width - 1);
                self.at = self.at.add(self.width);
                (key, value)
            };
            if !value.is_null() {
                return Some((key, value));
            }
        }
        None
    }
}

/// `dict`'s entries read in place, or `None` where the caller uses `PyDict_Next`: reading
/// in place is off, or the dict's table is split or of a kind not read here.
///
/// # Safety
/// `dict` is a live dict (or a subclass) that nothing changes or frees while the entries
/// are used: the GIL is held and no Python code runs.
#[inline(always)]
pub unsafe fn entries(dict: *mut ffi::PyObject) -> Option<Entries> {
    if !IN_PLACE.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: reading in place is on, so this CPython's dicts have the layout above
    // (`detect`), and `dict` is a live dict (the caller's contract).
    unsafe {
        let head = &*dict.cast::<DictObject>();
        if !head.ma_values.is_null() {
            return None;
        }
        let keys = head.ma_keys;
        let width = match (*keys).dk_kind {
            KEYS_GENERAL => 3,
            KEYS_UNICODE => 2,
            _ => return None,
        };
        let index_bytes = 1usize << (*keys).dk_log2_index_bytes;
        let first = keys
            .cast::<u8>()
            .add(size_of::<KeysObject>() + index_bytes)
            .cast::<*mut ffi::PyObject>();
        let count = usize::try_from((*keys).dk_nentries).ok()?;
        Some(Entries {
            at: first,
            end: first.add(count * width),
            width,
        })
    }
}

/// Turns reading in place on if this interpreter is a CPython whose layout is the one
/// above and it reads what `PyDict_Next` reads; returns whether it is on.
///
/// # Errors
/// A Python error from building the dicts checked.
pub fn detect(py: Python<'_>) -> PyResult<bool> {
    let cpython = py
        .import("sys")?
        .getattr("implementation")?
        .getattr("name")?
        .extract::<String>()?
        == "cpython";
    let version = py.version_info();
    let known = cpython && ((3, 11)..(3, 14)).contains(&(version.major, version.minor));
    let refused =
        std::env::var_os("POLYCACHE_DICT_NEXT").is_some_and(|v| v != "0" && !v.is_empty());
    let on = known && !refused && reads_as_dict_next(py)?;
    IN_PLACE.store(on, Ordering::Relaxed);
    Ok(on)
}

/// Whether, for dicts of every kind, the entries read in place are those `PyDict_Next`
/// yields, and the tables this module reads were read (not left to `PyDict_Next`).
fn reads_as_dict_next(py: Python<'_>) -> PyResult<bool> {
    let checked = py.eval(
        c"(lambda C, big, holes, mixed: (
            {'a': 1, 'bb': 2.5, 'ccc': None},
            {1: 'x', 'a': 2, (1, 2): 3, 4.5: []},
            holes, big, mixed, {}, C().__dict__,
        ))(
            type('C', (), {'__init__': lambda self: self.__dict__.update(x=1, y=2)}),
            {str(i): i for i in range(1000)},
            (lambda d: [d.pop(k) for k in list(d)[::3]] and d)({str(i): i for i in range(40)}),
            (lambda d: [d.pop(k) for k in list(d)[::7]] and d)({i if i % 2 else str(i): i for i in range(300)}),
        )",
        None,
        None,
    )?;
    let mut read_in_place = 0;
    for dict in checked.try_iter()? {
        let dict = dict?.cast_into::<PyDict>()?;
        // SAFETY: the GIL is held, `dict` is a live dict, and nothing runs Python code
        // while its entries are compared.
        let same = unsafe {
            let obj = dict.as_ptr();
            // Forced on for the comparison; `detect` sets the answer.
            IN_PLACE.store(true, Ordering::Relaxed);
            let read = entries(obj);
            IN_PLACE.store(false, Ordering::Relaxed);
            match read {
                Some(read) => {
                    read_in_place += 1;
                    read.eq(dict_next(obj))
                }
                None => true,
            }
        };
        if !same {
            return Ok(false);
        }
    }
    // All but the instance's (split) dict were read in place.
    Ok(read_in_place >= 6)
}

/// `dict`'s entries by `PyDict_Next`.
///
/// # Safety
/// As [`entries`].
#[inline(always)]
pub unsafe fn dict_next(
    dict: *mut ffi::PyObject,
) -> impl Iterator<Item = (*mut ffi::PyObject, *mut ffi::PyObject)> {
    let mut pos: ffi::Py_ssize_t = 0;
    std::iter::from_fn(move || {
        let mut key = ptr::null_mut();
        let mut value = ptr::null_mut();
        // SAFETY: the caller's contract.
        (unsafe { ffi::PyDict_Next(dict, &mut pos, &mut key, &mut value) } != 0)
            .then_some((key, value))
    })
}
