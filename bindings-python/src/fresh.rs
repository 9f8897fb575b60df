//! Freshness in Python: the per-call options of `get_or_load`, `get_entry` and `@cached`
//! (read by core's `LoadOptions::from_overrides`), and `Entry`, the answer of `get_entry`.

use polycache::{LoadOptions, Loaded};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::cache::ttl_of;
use crate::errors;
use crate::value::{option_to_json, to_py};

/// The per-call options of `get_or_load`, `get_entry` and `@cached`: the positional `ttl`
/// and the keyword options, read by core (`LoadOptions::from_overrides`), so names and
/// checks are the cache options' own; a bad one is a `ConfigError`.
pub fn load_options(
    ttl: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<LoadOptions> {
    if ttl.is_none() && options.is_none_or(|o| o.is_empty()) {
        return Ok(LoadOptions::default());
    }
    let mut overrides = serde_json::Map::new();
    for (name, value) in options.into_iter().flatten() {
        let name = name.cast::<PyString>()?.to_cow()?.into_owned();
        if !value.is_none() {
            overrides.insert(name, option_to_json(&value)?);
        }
    }
    let mut options = LoadOptions::from_overrides(&overrides).map_err(errors::to_py)?;
    // The positional TTL, checked as `set`'s is (its errors name it).
    options.ttl = ttl_of(ttl)?;
    Ok(options)
}

/// A value with how current it is: what `get_entry` returns.
#[pyclass(module = "polycache._native", frozen)]
#[derive(Debug)]
pub struct Entry {
    /// The value.
    #[pyo3(get)]
    value: Py<PyAny>,
    /// Whether the value is past its freshness (stale or fail-safe).
    #[pyo3(get)]
    stale: bool,
    /// `"fresh"`, `"stale"` or `"fail-safe"`.
    #[pyo3(get)]
    freshness: &'static str,
    /// Seconds since the value was written; `None` when unknown (a near-tier hit).
    #[pyo3(get)]
    age: Option<f64>,
}

impl Entry {
    pub fn new(py: Python<'_>, loaded: &Loaded) -> PyResult<Entry> {
        Ok(Entry {
            value: to_py(py, &loaded.value)?,
            stale: loaded.stale(),
            freshness: loaded.freshness.as_str(),
            age: loaded.age.map(|age| age.as_secs_f64()),
        })
    }
}

#[pymethods]
impl Entry {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Entry(value={}, freshness={:?}, age={})",
            self.value.bind(py).repr()?,
            self.freshness,
            self.age
                .map_or_else(|| "None".to_owned(), |age| format!("{age:.3}")),
        ))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Entry>()
}
