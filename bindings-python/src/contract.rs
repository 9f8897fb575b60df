//! The pure contract functions (docs/FORMAT.md): envelope, keys, ring, function keys.
//! Exposed for the vector suite and for tools that inspect stored values.

use std::collections::BTreeMap;

use polycache::contract::{self, EnvelopeOptions, Node, Ring as CoreRing};
use polycache::{Codec, Compression, KeyTemplate, Value};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors;
use crate::value::{to_py, to_value};

/// Encodes `value` into an envelope (bytes); the options are keyword arguments.
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
    let options = EnvelopeOptions {
        codec: codec.parse::<Codec>().map_err(errors::to_py)?,
        compression: compression.parse::<Compression>().map_err(errors::to_py)?,
        compress_threshold,
        created_at,
        fresh_until,
        schema,
        tags,
    };
    let bytes = contract::encode_envelope(&to_value(value)?, &options).map_err(errors::to_py)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Decodes an envelope into a dict: value, codec, compression, created_at, fresh_until,
/// schema, tags, not_found (a cached "not found", whose value is None). Raises CodecError for anything that is not a valid v1 envelope.
#[pyfunction]
fn decode_envelope<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let envelope = contract::decode_envelope(bytes).map_err(errors::to_py)?;
    let out = PyDict::new(py);
    out.set_item("value", to_py(py, &envelope.value)?)?;
    out.set_item("codec", envelope.codec.as_str())?;
    out.set_item("compression", envelope.compression.as_str())?;
    out.set_item("created_at", envelope.created_at)?;
    out.set_item("fresh_until", envelope.fresh_until)?;
    out.set_item("schema", envelope.schema)?;
    out.set_item("tags", envelope.tags)?;
    out.set_item("not_found", envelope.not_found)?;
    Ok(out)
}

/// The Redis key of a user key (`<prefix>:<namespace>:{<key>}`).
#[pyfunction]
fn redis_key(prefix: &str, namespace: &str, max_key_length: usize, key: &str) -> PyResult<String> {
    contract::redis_key(prefix, namespace, max_key_length, key).map_err(errors::to_py)
}

/// The stampede-lock key of a Redis key (same hash tag, same slot).
#[pyfunction]
fn lock_key(redis_key: &str) -> String {
    contract::lock_key(redis_key)
}

/// The Redis Cluster hash tag of a Redis key.
#[pyfunction]
fn hash_tag(redis_key: &str) -> &str {
    contract::hash_tag(redis_key)
}

/// The Redis Cluster slot of a Redis key.
#[pyfunction]
fn slot(redis_key: &str) -> u16 {
    contract::slot(redis_key)
}

/// Positional arguments and an optional dict of named ones as core values.
fn arguments(
    args: &[Bound<'_, PyAny>],
    named: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Vec<Value>, BTreeMap<String, Value>)> {
    let args = args.iter().map(to_value).collect::<PyResult<Vec<_>>>()?;
    let mut named_values = BTreeMap::new();
    for (k, v) in named.into_iter().flat_map(|named| named.iter()) {
        named_values.insert(k.extract::<String>()?, to_value(&v)?);
    }
    Ok((args, named_values))
}

/// Renders a function-key template with positional and named arguments.
#[pyfunction]
#[pyo3(signature = (template, args, named = None))]
fn render_key(
    template: &str,
    args: Vec<Bound<'_, PyAny>>,
    named: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let (args, named) = arguments(&args, named)?;
    contract::render_key(template, &args, &named).map_err(errors::to_py)
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

/// The key of a call without a template: `<function_name>:<hash of the arguments>`; named
/// arguments (`**kwargs`) count whatever order they were given in.
#[pyfunction]
#[pyo3(signature = (function_name, args, named = None))]
fn call_key(
    function_name: &str,
    args: Vec<Bound<'_, PyAny>>,
    named: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let (args, named) = arguments(&args, named)?;
    Ok(contract::call_key(function_name, &args, &named))
}

/// The config a cache would use for `url` and `options` (a JSON object of option names to
/// values), as canonical JSON with the URL's credentials redacted.
#[pyfunction]
fn resolve_config(url: &str, options: &str) -> PyResult<String> {
    contract::resolve_config(url, options).map_err(errors::to_py)
}

/// Early refresh (XFetch, docs/FORMAT.md §7): whether a read at `now` of a value fresh
/// until `fresh_until` whose last load took `delta` (all ms) refreshes it now.
#[pyfunction]
fn should_refresh_early(now: u64, fresh_until: u64, delta: u64, beta: f64, random: f64) -> bool {
    contract::should_refresh_early(now, fresh_until, delta, beta, random)
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
    m.add_function(wrap_pyfunction!(lock_key, m)?)?;
    m.add_function(wrap_pyfunction!(hash_tag, m)?)?;
    m.add_function(wrap_pyfunction!(slot, m)?)?;
    m.add_function(wrap_pyfunction!(render_key, m)?)?;
    m.add_function(wrap_pyfunction!(call_key, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_config, m)?)?;
    m.add_function(wrap_pyfunction!(should_refresh_early, m)?)?;
    m.add_class::<Ring>()?;
    m.add_class::<PyKeyTemplate>()?;
    Ok(())
}
