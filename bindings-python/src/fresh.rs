//! Freshness in Python: the per-call options of `get_or_load`, `get_entry` and `@cached`
//! (read by core's `LoadOptions::from_overrides`), and `Entry`, the answer of `get_entry`.

use polycache::{LoadOptions, Loaded, LoadedEntry, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::cache::ttl_of;
use crate::errors::{self, loader_error};
use crate::value::{option_to_json, to_py, to_value};

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

/// `polycache.NOT_FOUND`: what a loader returns to say the key has no value (negative
/// caching; `None` is a value like any other). The one instance is the module's.
#[pyclass(module = "polycache._native", frozen)]
#[derive(Debug)]
pub struct NotFound;

#[pymethods]
impl NotFound {
    fn __repr__(&self) -> &'static str {
        "polycache.NOT_FOUND"
    }
}

/// What a Python loader returned, for core: `NOT_FOUND` is core's "not found".
pub fn loaded(out: &Bound<'_, PyAny>) -> polycache::Result<Value> {
    if out.is_instance_of::<NotFound>() {
        return Err(polycache::Error::not_found());
    }
    to_value(out).map_err(loader_error)
}

/// A `get_or_load` answer: the value, or `None` for "not found" (the loader's, or one
/// cached by `negative_ttl`).
pub fn found_to_py(py: Python<'_>, value: polycache::Result<Value>) -> PyResult<Py<PyAny>> {
    match polycache::found(value).map_err(errors::to_py)? {
        Some(value) => to_py(py, &value),
        None => Ok(py.None()),
    }
}

/// A value with how current it is: what `get_entry` returns.
#[pyclass(module = "polycache._native", frozen)]
#[derive(Debug)]
pub struct Entry {
    /// The value (`None` when not found).
    #[pyo3(get)]
    value: Py<PyAny>,
    /// False for a "not found" (the loader's, or one cached by `negative_ttl`).
    #[pyo3(get)]
    found: bool,
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
    /// The entry of a `get_entry` answer; "not found" is an entry too.
    pub fn of(py: Python<'_>, loaded: polycache::Result<Loaded>) -> PyResult<Entry> {
        let entry = LoadedEntry::of(loaded).map_err(errors::to_py)?;
        Ok(Entry {
            value: to_py(py, &entry.value)?,
            found: entry.found,
            stale: entry.stale,
            freshness: entry.freshness.as_str(),
            age: entry.age.map(|age| age.as_secs_f64()),
        })
    }
}

#[pymethods]
impl Entry {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Entry(value={}, found={}, freshness={:?}, age={})",
            self.value.bind(py).repr()?,
            if self.found { "True" } else { "False" },
            self.freshness,
            self.age
                .map_or_else(|| "None".to_owned(), |age| format!("{age:.3}")),
        ))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Entry>()?;
    m.add_class::<NotFound>()?;
    m.add("NOT_FOUND", NotFound)
}
