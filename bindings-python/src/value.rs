//! Python objects ↔ polycache values (docs/FORMAT.md §2, the Python column): a payload is
//! decoded straight into Python objects by core's decoder driving [`PyBuild`], and a Python
//! object is walked straight into core's [`Encoder`] ([`encode`]); no value tree in between.
//! Core keeps every rule (numbers, strings, nesting, limits); this file only says which
//! Python type is which kind of value.

mod build;
mod layout;
mod walk;

pub use build::PyBuild;
pub use layout::detect as detect_layout;

use polycache::codec::{msgpack, DecodeLimits, Encoder};
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
    let payload = encoder
        .finish()
        .map_err(errors::to_py)?
        .into_payload()
        .into_vec();
    msgpack::decode_with(&payload, &DecodeLimits::UNLIMITED).map_err(errors::to_py)
}

/// A value as a Python object, made by the same builder as a decoded payload.
pub fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(value.build_into(&mut PyBuild::new(py))?.unbind())
}

/// Writes a Python object into `encoder`: which Python types are which kind of value is
/// decided here; everything else (numbers' forms, strings, nesting, the codec) is core's.
/// The borrowed-pointer walk ([`walk`]) writes what it can; a value holding anything else
/// (a `memoryview`, an unsupported type) is written again by the general path.
pub fn encode(obj: &Bound<'_, PyAny>, encoder: &mut Encoder) -> PyResult<()> {
    let start = encoder.checkpoint();
    match walk::encode(obj, encoder) {
        Ok(()) => Ok(()),
        Err(walk::Stop::Raise(err)) => Err(err),
        Err(walk::Stop::General) => {
            encoder.rewind(start);
            encode_general(obj, encoder)
        }
    }
}

/// The reference-counted walk through PyO3's safe API: every type, in the same order as
/// the fast walk.
fn encode_general(obj: &Bound<'_, PyAny>, encoder: &mut Encoder) -> PyResult<()> {
    let codec = |r: polycache::Result<()>| r.map_err(errors::to_py);
    // Exact built-in types first (one pointer comparison each), the common case; then
    // subclasses, in the same order. bool before int (bool is an int subclass).
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return codec(encoder.str(utf8(s, false)?));
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
        return codec(encoder.str(utf8(s, false)?));
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
            encode_general(&item, encoder)?;
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
        encoder.key(utf8(key, true)?).map_err(errors::to_py)?;
        encode_general(&v, encoder)?;
    }
    encoder.end_map().map_err(errors::to_py)
}

fn encode_list(l: &Bound<'_, PyList>, encoder: &mut Encoder) -> PyResult<()> {
    encoder.begin_array(l.len()).map_err(errors::to_py)?;
    for item in l.iter() {
        encode_general(&item, encoder)?;
    }
    encoder.end_array().map_err(errors::to_py)
}

/// A Python string's UTF-8, borrowed from the string's own cache (no copy for ASCII).
fn utf8<'a>(s: &'a Bound<'_, PyString>, key: bool) -> PyResult<&'a str> {
    s.to_str().map_err(|cause| not_utf8(s.as_any(), key, cause))
}

/// A str with no UTF-8 form (lone surrogates) as `CodecError` naming it (a dict key or a
/// value), its `UnicodeEncodeError` as `__cause__`; any other failure as it is.
fn not_utf8(s: &Bound<'_, PyAny>, key: bool, cause: PyErr) -> PyErr {
    let py = s.py();
    if !cause.is_instance_of::<pyo3::exceptions::PyUnicodeEncodeError>(py) {
        return cause;
    }
    // The surrogates as `\udXXX` escapes, by the base `str.encode` (no method of a subclass
    // runs).
    let shown: String = py
        .get_type::<PyString>()
        .call_method1("encode", (s, "utf-8", "backslashreplace"))
        .and_then(|b| b.extract::<Vec<u8>>())
        .map(|b| String::from_utf8_lossy(&b).chars().take(64).collect())
        .unwrap_or_default();
    let what = if key { "dict key" } else { "str" };
    let err = codec_error(format!(
        "polycache cannot store the {what} '{shown}': it holds lone surrogates, which have no UTF-8 form"
    ));
    err.set_cause(py, Some(cause));
    err
}

/// Decodes what `get_stored` returned with [`PyBuild`] (which pauses the cyclic GC while
/// it builds).
pub fn decode_stored(
    py: Python<'_>,
    cache: &polycache::Cache,
    stored: &polycache::Stored,
) -> PyResult<Option<Py<PyAny>>> {
    let result = cache.decode_stored(stored, &mut PyBuild::new(py));
    Ok(result?.map(Bound::unbind))
}

pub(crate) fn codec_error(message: impl Into<String>) -> PyErr {
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
