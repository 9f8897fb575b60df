//! Python objects ↔ polycache values (docs/FORMAT.md §2, the Python column): a payload is
//! decoded straight into Python objects by core's decoder driving [`PyBuild`], and a Python
//! object is walked straight into core's [`Encoder`] ([`encode`]); no value tree in between.
//! Core keeps every rule (numbers, strings, nesting, limits); this file only says which
//! Python type is which kind of value.

use polycache::codec::{msgpack, Build, DecodeLimits, Encoder};
use polycache::{Codec, ErrorKind, Value};
use pyo3::prelude::*;

use crate::errors;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};

/// A Python object as a value. Unsupported types raise `CodecError` (a `TypeError`)
/// naming the type.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let mut encoder = Encoder::new(Codec::Msgpack);
    encode(obj, &mut encoder)?;
    let payload = encoder.finish().map_err(errors::to_py)?.payload;
    msgpack::decode_with(&payload, &DecodeLimits::UNLIMITED).map_err(errors::to_py)
}

/// A value as a Python object, made by the same builder as a decoded payload.
pub fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(value.build_into(&mut PyBuild::new(py))?.unbind())
}

/// Writes a Python object into `encoder`: which Python types are which kind of value is
/// decided here; everything else (numbers' forms, strings, nesting, the codec) is core's.
pub fn encode(obj: &Bound<'_, PyAny>, encoder: &mut Encoder) -> PyResult<()> {
    let codec = |r: polycache::Result<()>| r.map_err(errors::to_py);
    // Exact built-in types first (one pointer comparison each), the common case; then
    // subclasses, in the same order. bool before int (bool is an int subclass).
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return codec(encoder.str(utf8(s)?));
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        return encode_dict(d, encoder);
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return encode_int(obj, encoder);
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return codec(encoder.float(f.value()));
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        return encode_list(l, encoder);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return codec(encoder.bool(b.is_true()));
    }
    if obj.is_none() {
        return codec(encoder.nil());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return codec(encoder.str(utf8(s)?));
    }
    if obj.is_instance_of::<PyInt>() {
        return encode_int(obj, encoder);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return encode_dict(d, encoder);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return encode_list(l, encoder);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return codec(encoder.float(f.value()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return codec(encoder.bytes(b.as_bytes()));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        codec(encoder.begin_array(t.len()))?;
        for item in t.iter() {
            encode(&item, encoder)?;
        }
        return codec(encoder.end_array());
    }
    if obj.is_instance_of::<PyByteArray>() || obj.is_instance_of::<PyMemoryView>() {
        let bytes = obj
            .extract::<Vec<u8>>()
            .or_else(|_| obj.call_method0("tobytes")?.extract::<Vec<u8>>())?;
        return codec(encoder.bytes(&bytes));
    }
    Err(codec_error(format!(
        "polycache cannot store a value of type {}: use None, bool, int, float, str, bytes, list, tuple or dict",
        type_name(obj)
    )))
}

fn encode_int(obj: &Bound<'_, PyAny>, encoder: &mut Encoder) -> PyResult<()> {
    let written = if let Ok(i) = obj.extract::<i64>() {
        encoder.int(i)
    } else if let Ok(u) = obj.extract::<u64>() {
        encoder.uint(u)
    } else {
        return Err(codec_error(
            "integers must fit in 64 bits (-2**63 .. 2**64-1)",
        ));
    };
    written.map_err(errors::to_py)
}

fn encode_dict(d: &Bound<'_, PyDict>, encoder: &mut Encoder) -> PyResult<()> {
    encoder.begin_map(d.len()).map_err(errors::to_py)?;
    for (k, v) in d.iter() {
        let key = k
            .cast::<PyString>()
            .map_err(|_| codec_error(format!("dict keys must be str, not {}", type_name(&k))))?;
        encoder.key(utf8(key)?).map_err(errors::to_py)?;
        encode(&v, encoder)?;
    }
    encoder.end_map().map_err(errors::to_py)
}

fn encode_list(l: &Bound<'_, PyList>, encoder: &mut Encoder) -> PyResult<()> {
    encoder.begin_array(l.len()).map_err(errors::to_py)?;
    for item in l.iter() {
        encode(&item, encoder)?;
    }
    encoder.end_array().map_err(errors::to_py)
}

/// A Python string's UTF-8, borrowed from the string's own cache (no copy for ASCII).
fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    s.to_str()
}

/// Stored values at least this long are decoded with the cyclic GC paused: a payload of
/// many dicts otherwise triggers collections all along (measured: a 1 MB record dict took
/// twice as long with the GC running, for every decoder).
const PAUSE_GC_FROM: usize = 64 * 1024;

/// Decodes what `get_stored` returned with [`PyBuild`], the GC paused for large payloads
/// (and resumed after, unless the program had it off already).
pub fn decode_stored(
    py: Python<'_>,
    cache: &polycache::Cache,
    stored: &polycache::Stored,
) -> PyResult<Option<Py<PyAny>>> {
    let large = matches!(stored, polycache::Stored::Bytes(Some(b)) if b.len() >= PAUSE_GC_FROM);
    let gc = if large {
        let gc = py.import("gc")?;
        let on = gc.call_method0("isenabled")?.is_truthy()?;
        if on {
            gc.call_method0("disable")?;
        }
        on.then_some(gc)
    } else {
        None
    };
    let result = cache.decode_stored(stored, &mut PyBuild::new(py));
    if let Some(gc) = gc {
        gc.call_method0("enable")?;
    }
    Ok(result?.map(Bound::unbind))
}

/// Keys already made during one decode: the records of a payload repeat their keys, and a
/// str made once (hash included) is shared by every dict that uses it.
const KEY_SLOTS: usize = 512;
/// Longer keys are made each time: they rarely repeat.
const KEY_MAX_LEN: usize = 64;

/// Makes Python objects for a decoder (core's `Build`): `dict`s keep the wire order.
pub struct PyBuild<'py> {
    py: Python<'py>,
    keys: Vec<Option<Bound<'py, PyString>>>,
}

impl<'py> PyBuild<'py> {
    pub fn new(py: Python<'py>) -> Self {
        PyBuild {
            py,
            keys: Vec::new(),
        }
    }

    fn key_object(&mut self, key: &str) -> Bound<'py, PyString> {
        if key.len() > KEY_MAX_LEN {
            return PyString::new(self.py, key);
        }
        if self.keys.is_empty() {
            self.keys.resize_with(KEY_SLOTS, || None);
        }
        // FNV-1a: short keys, a cheap hash.
        let mut h: u32 = 0x811c_9dc5;
        for &b in key.as_bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        let slot = &mut self.keys[h as usize % KEY_SLOTS];
        // A hit compares with the str's own UTF-8 (cached by CPython, no copy).
        if let Some(object) = slot {
            if object.to_str().is_ok_and(|text| text == key) {
                return object.clone();
            }
        }
        let object = PyString::new(self.py, key);
        *slot = Some(object.clone());
        object
    }
}

impl<'py> Build for PyBuild<'py> {
    type Value = Bound<'py, PyAny>;
    type Array = Vec<Bound<'py, PyAny>>;
    type Map = (Bound<'py, PyDict>, Option<Bound<'py, PyString>>);
    type Error = PyErr;

    fn nil(&mut self) -> PyResult<Self::Value> {
        Ok(self.py.None().into_bound(self.py))
    }
    fn bool(&mut self, v: bool) -> PyResult<Self::Value> {
        Ok(PyBool::new(self.py, v).to_owned().into_any())
    }
    fn int(&mut self, v: i64) -> PyResult<Self::Value> {
        Ok(v.into_pyobject(self.py)?.into_any())
    }
    fn uint(&mut self, v: u64) -> PyResult<Self::Value> {
        Ok(v.into_pyobject(self.py)?.into_any())
    }
    fn float(&mut self, v: f64) -> PyResult<Self::Value> {
        Ok(PyFloat::new(self.py, v).into_any())
    }
    fn str(&mut self, v: &str) -> PyResult<Self::Value> {
        Ok(PyString::new(self.py, v).into_any())
    }
    fn bytes(&mut self, v: &[u8]) -> PyResult<Self::Value> {
        Ok(PyBytes::new(self.py, v).into_any())
    }
    fn array(&mut self, len: usize) -> PyResult<Self::Array> {
        // The decoder checked `len` against the input and the budget before this call.
        Ok(Vec::with_capacity(len.min(4096)))
    }
    fn push(&mut self, array: &mut Self::Array, item: Self::Value) -> PyResult<()> {
        array.push(item);
        Ok(())
    }
    fn end_array(&mut self, array: Self::Array) -> PyResult<Self::Value> {
        Ok(PyList::new(self.py, array)?.into_any())
    }
    fn map(&mut self, _len: usize) -> PyResult<Self::Map> {
        Ok((PyDict::new(self.py), None))
    }
    fn key(&mut self, map: &mut Self::Map, key: &str) -> PyResult<()> {
        map.1 = Some(self.key_object(key));
        Ok(())
    }
    fn value(&mut self, map: &mut Self::Map, value: Self::Value) -> PyResult<()> {
        match map.1.take() {
            Some(key) => map.0.set_item(key, value),
            None => Ok(()),
        }
    }
    fn end_map(&mut self, map: Self::Map) -> PyResult<Self::Value> {
        Ok(map.0.into_any())
    }
}

fn codec_error(message: impl Into<String>) -> PyErr {
    crate::errors::new_err(ErrorKind::Codec, message)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A JSON value (metrics, envelope headers) as a Python object.
pub fn json_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        serde_json::Value::Null => py.None(),
        serde_json::Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any().unbind(),
            (_, Some(u)) => u.into_pyobject(py)?.into_any().unbind(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN))
                .into_any()
                .unbind(),
        },
        serde_json::Value::String(s) => PyString::new(py, s).into_any().unbind(),
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// A keyword option as JSON for core's `Config::with_overrides`, which checks it. Only
/// what JSON cannot carry is refused here: NaN and infinities (JSON would turn them into
/// null, "no expiry" for a TTL) and containers, as `ConfigError`.
pub fn option_to_json(obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let refused = |what: String| crate::errors::new_err(ErrorKind::Config, what);
    let value = to_value(obj).map_err(|_| {
        refused(format!(
            "option values must be str, int, float, bool or None, not {}",
            type_name(obj)
        ))
    })?;
    Ok(match value {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Int(i) => i.into(),
        Value::UInt(u) => u.into(),
        Value::Float(f) => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| refused(format!("option values must be finite numbers, not {f}")))?,
        Value::Str(s) => serde_json::Value::String(s),
        other => {
            return Err(refused(format!(
                "option values must be str, int, float, bool or None, not {}",
                other.kind_name()
            )))
        }
    })
}
