//! The pure contract functions (docs/FORMAT.md): envelope, keys, ring, function keys.
//! Exposed for the vector suite and for tools that inspect stored values.

use std::collections::BTreeMap;

use polycache::codec::{self, Codec, Compression, EncodeOptions, Meta};
use polycache::{call_key_named, KeySchema, KeyTemplate, Node, Ring as CoreRing};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors;
use crate::value::{to_py, to_value};

fn parse<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::from(name))
        .map_err(|_| errors::ConfigError::new_err(format!("unknown {what} {name:?}")))
}

/// Encodes `value` into an envelope (bytes).
#[pyfunction]
#[pyo3(signature = (value, *, codec = "msgpack", compression = "lz4", compress_threshold = 1024, created_at = 0, fresh_until = 0, schema = None, tags = Vec::new()))]
#[allow(clippy::too_many_arguments)]
fn encode_envelope<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
    codec: &str,
    compression: &str,
    compress_threshold: usize,
    created_at: u64,
    fresh_until: u64,
    schema: Option<String>,
    tags: Vec<String>,
) -> PyResult<Bound<'py, PyBytes>> {
    let options = EncodeOptions {
        codec: parse::<Codec>("codec", codec)?,
        compression: parse::<Compression>("compression", compression)?,
        compress_threshold,
    };
    let meta = Meta {
        created_at_ms: created_at,
        fresh_until_ms: fresh_until,
        schema,
        tags,
    };
    let bytes = codec::encode(&to_value(value)?, &options, &meta).map_err(errors::to_py)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Decodes an envelope into a dict: value, codec, compression, created_at, fresh_until,
/// schema, tags. Raises CodecError for anything that is not a valid v1 envelope.
#[pyfunction]
fn decode_envelope<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let (header, value) = codec::decode(data).map_err(errors::to_py)?;
    let out = PyDict::new(py);
    out.set_item("value", to_py(py, &value)?)?;
    out.set_item("codec", format!("{:?}", header.codec).to_lowercase())?;
    out.set_item(
        "compression",
        format!("{:?}", header.compression).to_lowercase(),
    )?;
    out.set_item("created_at", header.meta.created_at_ms)?;
    out.set_item("fresh_until", header.meta.fresh_until_ms)?;
    out.set_item("schema", header.meta.schema)?;
    out.set_item("tags", header.meta.tags)?;
    Ok(out)
}

/// The Redis key of a user key (`<prefix>:<namespace>:{<key>}`).
#[pyfunction]
#[pyo3(signature = (key, *, prefix = "pc", namespace = "default", max_key_length = 200))]
fn redis_key(key: &str, prefix: &str, namespace: &str, max_key_length: usize) -> PyResult<String> {
    KeySchema::new(prefix, namespace, max_key_length)
        .and_then(|schema| schema.redis_key(key))
        .map_err(errors::to_py)
}

/// The Redis Cluster hash tag of a Redis key.
#[pyfunction]
fn hash_tag<'py>(py: Python<'py>, redis_key: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, polycache::key::hash_tag(redis_key))
}

/// The Redis Cluster slot of a Redis key.
#[pyfunction]
fn slot(redis_key: &[u8]) -> u16 {
    polycache::key::slot(redis_key)
}

/// Renders a function-key template with positional and named arguments.
#[pyfunction]
#[pyo3(signature = (template, args, named = None))]
fn render_key(
    template: &str,
    args: Vec<Bound<'_, PyAny>>,
    named: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let args = args.iter().map(to_value).collect::<PyResult<Vec<_>>>()?;
    let mut named_values = BTreeMap::new();
    if let Some(named) = named {
        for (k, v) in named.iter() {
            named_values.insert(k.extract::<String>()?, to_value(&v)?);
        }
    }
    KeyTemplate::parse(template)
        .and_then(|t| t.render(&args, &named_values))
        .map_err(errors::to_py)
}

/// A parsed function-key template (docs/FORMAT.md §5); parse once, render per call.
#[pyclass(module = "polycache._native", frozen, name = "KeyTemplate")]
#[derive(Debug)]
struct PyKeyTemplate {
    inner: KeyTemplate,
}

#[pymethods]
impl PyKeyTemplate {
    #[new]
    fn new(template: &str) -> PyResult<Self> {
        Ok(PyKeyTemplate {
            inner: KeyTemplate::parse(template).map_err(errors::to_py)?,
        })
    }

    /// Renders with positional `args` (any sequence) and optional `named` arguments.
    #[pyo3(signature = (args, named = None))]
    fn render(
        &self,
        args: &Bound<'_, PyAny>,
        named: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let args = args
            .try_iter()?
            .map(|a| to_value(&a?))
            .collect::<PyResult<Vec<_>>>()?;
        let mut named_values = BTreeMap::new();
        if let Some(named) = named {
            for (k, v) in named.iter() {
                named_values.insert(k.extract::<String>()?, to_value(&v)?);
            }
        }
        self.inner
            .render(&args, &named_values)
            .map_err(errors::to_py)
    }

    /// How many positional arguments the template reads.
    #[getter]
    fn positional_arity(&self) -> usize {
        self.inner.positional_arity()
    }

    /// Whether the template reads named arguments.
    #[getter]
    fn uses_names(&self) -> bool {
        self.inner.uses_names()
    }
}

/// The key of a call without a template: `<function>:<hash of the arguments>`; named
/// arguments (`**kwargs`) count whatever order they were given in.
#[pyfunction]
#[pyo3(signature = (function, args, named = None))]
fn call_key(
    function: &str,
    args: Vec<Bound<'_, PyAny>>,
    named: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let args = args.iter().map(to_value).collect::<PyResult<Vec<_>>>()?;
    let mut named_values = BTreeMap::new();
    for (k, v) in named.into_iter().flat_map(|named| named.iter()) {
        named_values.insert(k.extract::<String>()?, to_value(&v)?);
    }
    Ok(call_key_named(function, &args, &named_values))
}

/// The consistent-hash ring over named, weighted nodes.
#[pyclass(module = "polycache._native", frozen)]
struct Ring {
    inner: CoreRing,
}

#[pymethods]
impl Ring {
    /// `Ring([("10.0.0.1:6379", 1), ("10.0.0.2:6379", 2)])`.
    #[new]
    fn new(nodes: Vec<(String, u32)>) -> PyResult<Self> {
        let nodes = nodes
            .into_iter()
            .map(|(name, weight)| Node { name, weight })
            .collect();
        Ok(Ring {
            inner: CoreRing::new(nodes).map_err(errors::to_py)?,
        })
    }

    /// The node name that owns a Redis key.
    fn node_for(&self, redis_key: &str) -> String {
        self.inner.node_for(redis_key).to_owned()
    }

    /// The first `n` continuum points as `(value, node name)`.
    fn head(&self, n: usize) -> Vec<(u32, String)> {
        self.inner
            .head(n)
            .into_iter()
            .map(|(p, name)| (p, name.to_owned()))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(decode_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(redis_key, m)?)?;
    m.add_function(wrap_pyfunction!(hash_tag, m)?)?;
    m.add_function(wrap_pyfunction!(slot, m)?)?;
    m.add_function(wrap_pyfunction!(render_key, m)?)?;
    m.add_function(wrap_pyfunction!(call_key, m)?)?;
    m.add_class::<Ring>()?;
    m.add_class::<PyKeyTemplate>()?;
    Ok(())
}
