//! Dicts and strs read in place from CPython's memory, on the CPython versions whose
//! layout is known here and checked at import; everywhere else the walk calls
//! `PyDict_Next` and `PyUnicode_AsUTF8AndSize`, and for what is not read here (split
//! tables, strs that are not compact ASCII) it does so anyway.
//!
//! Why: under the stable ABI `PyDict_Next` is a call per entry, 17% of a 1 MB records
//! `set` (perf). Read in place, a `memory://` set of that value measured 1,230–1,290 µs
//! against 1,530–1,620 (ormsgpack's `packb` alone: 1,060–1,120). A str met for the first
//! time in a walk (a record's own key and name) costs `PyUnicode_AsUTF8AndSize` otherwise:
//! 2–3% more. ormsgpack and orjson read dicts and strs the same way, built per version.
//!
//! The dict layout (CPython's `Include/internal/pycore_dict.h`, the same in 3.11, 3.12 and
//! 3.13 with the GIL): a dict object holds `ma_used`, a version tag, `ma_keys` and
//! `ma_values` (null for a combined table, the only kind read here). The keys object
//! holds its sizes, its kind (0: any keys, whose entries are hash, key, value; 1: str keys
//! only, key and value) and `dk_nentries`, then `1 << dk_log2_index_bytes` bytes of hash
//! index, then the entries in insertion order; a deleted entry has a null value.
//! `PyDict_Next` yields exactly the entries with a value, in that order.
//!
//! The str layout (`Include/cpython/unicodeobject.h`): after the object head, the length
//! and the hash, a 32-bit state whose bit 5 says compact and bit 6 ASCII; a compact ASCII
//! str's characters, which are its UTF-8, follow the `PyASCIIObject` (48 bytes in 3.11,
//! which still has `wstr`, 40 from 3.12).
//!
//! Checked twice: [`detect`] turns the reading on only on CPython 3.11–3.13 and only when
//! it reads what `PyDict_Next` and `PyUnicode_AsUTF8AndSize` read, for dicts of every kind
//! (str keys, other keys, deleted entries, 1- and 2-byte indexes, an instance's split
//! dict, an empty one) and strs of every kind (ASCII of several lengths, non-ASCII, a
//! subclass); and the walk compares the entries it read in each dict with the dict's
//! size, writing the value again on the general path if they ever differ.
//! `POLYCACHE_CPYTHON_LAYOUT=0` in the environment at import turns the reading off.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Whether dicts and strs are read in place ([`detect`] said so).
static KNOWN: AtomicBool = AtomicBool::new(false);

/// Where a compact ASCII str's characters start, from the object's address.
static ASCII_AT: AtomicUsize = AtomicUsize::new(0);

/// Whether dicts and strs are read in place.
#[inline(always)]
fn known() -> bool {
    KNOWN.load(Ordering::Relaxed)
}

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
    if !known() {
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

/// The UTF-8 of `s` read in place when it is a compact ASCII str (its characters are its
/// UTF-8), or `None` where the caller asks CPython: reading in place is off, or `s` is
/// not compact ASCII (non-ASCII text, a subclass's instance).
///
/// # Safety
/// `s` is a live str (or a subclass) that outlives the result.
#[inline(always)]
pub unsafe fn ascii<'a>(s: *mut ffi::PyObject) -> Option<&'a str> {
    if !known() {
        return None;
    }
    // SAFETY: reading in place is on, so this CPython's strs have the layout above
    // (`detect`), and `s` is a live str (the caller's contract): its state, and for a
    // compact ASCII str its length and characters, are where they are read.
    unsafe {
        let head = &*s.cast::<AsciiObject>();
        if head.state & COMPACT_ASCII != COMPACT_ASCII {
            return None;
        }
        let len = usize::try_from(head.length).ok()?;
        let chars = s.cast::<u8>().add(ASCII_AT.load(Ordering::Relaxed));
        Some(std::str::from_utf8_unchecked(std::slice::from_raw_parts(
            chars, len,
        )))
    }
}

/// A str object's head (`PyASCIIObject`, up to its state).
#[repr(C)]
#[allow(dead_code)] // Fields never read stand for the layout.
struct AsciiObject {
    ob_refcnt: ffi::Py_ssize_t,
    ob_type: *mut ffi::PyTypeObject,
    length: ffi::Py_ssize_t,
    hash: ffi::Py_hash_t,
    state: u32,
}

/// The state bits of a compact ASCII str: compact (bit 5) and ASCII (bit 6).
const COMPACT_ASCII: u32 = 0b110_0000;

/// Turns reading in place on if this interpreter is a CPython whose layout is the one
/// above and it reads what CPython's calls read; returns whether it is on. Never fails the
/// import: a check that cannot run (a Python error while it builds its dicts) leaves the
/// reading off.
pub fn detect(py: Python<'_>) -> bool {
    if !known_cpython(py).unwrap_or(false) {
        return false;
    }
    // On for the comparisons; off again unless they all agree.
    KNOWN.store(true, Ordering::Relaxed);
    let on = matches!(dicts_read_as_dict_next(py), Ok(true))
        && matches!(strs_read_as_cpython(py), Ok(true));
    KNOWN.store(on, Ordering::Relaxed);
    on
}

/// Whether this is CPython 3.11–3.13, not refused by `POLYCACHE_CPYTHON_LAYOUT=0`; sets
/// where its ASCII strs' characters start.
fn known_cpython(py: Python<'_>) -> PyResult<bool> {
    let cpython = py
        .import("sys")?
        .getattr("implementation")?
        .getattr("name")?
        .extract::<String>()?
        == "cpython";
    let version = py.version_info();
    let (major, minor) = (version.major, version.minor);
    let known = cpython && ((3, 11)..(3, 14)).contains(&(major, minor));
    let refused = std::env::var_os("POLYCACHE_CPYTHON_LAYOUT").is_some_and(|v| v == "0");
    if !known || refused {
        return Ok(false);
    }
    ASCII_AT.store(if minor == 11 { 48 } else { 40 }, Ordering::Relaxed);
    Ok(true)
}

/// Whether strs of every kind read in place as `PyUnicode_AsUTF8AndSize` reads them, and
/// the compact ASCII ones (only those) were read in place.
fn strs_read_as_cpython(py: Python<'_>) -> PyResult<bool> {
    let checked = py.eval(
        c"(lambda S: [
            ('', True), ('a', True), ('plain ascii', True), ('x' * 5000, True),
            ('-'.join(['ab'] * 300), True), (str(12345), True), ('\u{e9}', False),
            ('\u{65e5}\u{672c}', False), ('\u{1F600} and text', False), (S('subclass'), False),
        ])(type('S', (str,), {}))",
        None,
        None,
    )?;
    for case in checked.try_iter()? {
        let (s, ascii_expected) = case?.extract::<(Bound<'_, PyAny>, bool)>()?;
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: `s` is a live str; CPython's UTF-8 of it lives as long as it does.
        let (read, theirs) = unsafe {
            let data = ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len);
            if data.is_null() {
                return Err(PyErr::fetch(py));
            }
            let theirs = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
            (ascii(s.as_ptr()), theirs)
        };
        let same = match read {
            Some(read) => ascii_expected && read.as_bytes() == theirs,
            None => !ascii_expected,
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether, for dicts of every kind, the entries read in place are those `PyDict_Next`
/// yields, and the tables this module reads were read (not left to `PyDict_Next`).
fn dicts_read_as_dict_next(py: Python<'_>) -> PyResult<bool> {
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
            match entries(obj) {
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
