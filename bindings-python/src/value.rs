//! Python objects ↔ polycache values (docs/FORMAT.md §2, the Python column).

use polycache::codec::msgpack::MAX_DEPTH;
use polycache::codec::Map;
use polycache::{ErrorKind, Value};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};

/// A Python object as a value. Unsupported types raise `CodecError` (a `TypeError`)
/// naming the type.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    convert(obj, 0)
}

fn convert(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(codec_error(format!(
            "value nests deeper than {MAX_DEPTH} levels (is it cyclic?)"
        )));
    }
    // Most frequent kinds first; bool before int (bool is an int subclass).
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_cow()?.into_owned()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.is_truthy()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        return match obj.extract::<u64>() {
            Ok(u) => Ok(Value::from(u)),
            Err(_) => Err(codec_error(
                "integers must fit in 64 bits (-2**63 .. 2**64-1)",
            )),
        };
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                codec_error(format!("dict keys must be str, not {}", type_name(&k)))
            })?;
            map.insert(key.to_cow()?.into_owned(), convert(&v, depth + 1)?);
        }
        return Ok(Value::Map(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let items = l
            .iter()
            .map(|item| convert(&item, depth + 1))
            .collect::<PyResult<_>>()?;
        return Ok(Value::Array(items));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    if obj.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let items = t
            .iter()
            .map(|item| convert(&item, depth + 1))
            .collect::<PyResult<_>>()?;
        return Ok(Value::Array(items));
    }
    if obj.is_instance_of::<PyByteArray>() || obj.is_instance_of::<PyMemoryView>() {
        return Ok(Value::Bytes(
            obj.extract::<Vec<u8>>()
                .or_else(|_| obj.call_method0("tobytes")?.extract::<Vec<u8>>())?,
        ));
    }
    Err(codec_error(format!(
        "polycache cannot store a value of type {}: use None, bool, int, float, str, bytes, list, tuple or dict",
        type_name(obj)
    )))
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

/// A value as a Python object.
pub fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Nil => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::UInt(u) => u.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => PyFloat::new(py, *f).into_any().unbind(),
        Value::Str(s) => PyString::new(py, s).into_any().unbind(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Map(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
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
