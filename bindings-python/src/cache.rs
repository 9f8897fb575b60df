//! `Cache` (sync) and `AsyncCache` (asyncio): argument conversion around `polycache::Cache`.
//!
//! `Cache` uses core's blocking stores: a call releases the GIL and does its Redis round trip
//! on the calling thread (no hop into another thread). `AsyncCache` uses the async stores
//! on the shared tokio runtime and resolves an asyncio future when the call completes.

use std::time::Duration;

use futures_util::future::BoxFuture;
use polycache::ErrorKind;
use polycache::{block_on, Cache as CoreCache, Config, Io, Loader, Value, Writer};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyString};

use crate::asyncio::{self, spawn};
use crate::errors::{self, loader_error, writer_error};
use crate::fresh::{found_to_py, load_options, loaded, Entry};
use crate::runtime;
use crate::value::{json_to_py, option_to_json, to_py, to_value};

/// Builds a core config from a URL (core's default when none) and Python keyword options:
/// the kwargs become the overrides map of core's `Config::with_overrides`, which owns the
/// names (snake_case or camelCase), values and errors.
fn config(url: Option<&str>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let mut overrides = serde_json::Map::new();
    for (name, value) in options.into_iter().flatten() {
        let name = name.cast::<PyString>()?.to_cow()?.into_owned();
        overrides.insert(name, option_to_json(&value)?);
    }
    let url = url.map_or_else(|| Config::default().url, str::to_owned);
    Config::with_overrides(&url, &overrides).map_err(errors::to_py)
}

/// A TTL argument in seconds (`None`: the cache's), checked by core: a number that is not
/// finite, negative or above core's maximum, or not a number at all, is a `ConfigError`.
pub(crate) fn ttl_of(ttl: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(ttl) = ttl.filter(|t| !t.is_none()) else {
        return Ok(None);
    };
    let secs = match ttl.extract::<f64>() {
        Ok(secs) if !ttl.is_instance_of::<PyBool>() => secs,
        // An int too large for a float is still a number: core refuses it as too long.
        _ if ttl.is_instance_of::<PyInt>() && !ttl.is_instance_of::<PyBool>() => f64::INFINITY,
        _ => {
            return Err(errors::new_err(
                ErrorKind::Config,
                format!(
                    "ttl must be a number of seconds, not {}",
                    ttl.get_type().name()?
                ),
            ))
        }
    };
    polycache::ttl::from_secs(secs)
        .map(Some)
        .map_err(errors::to_py)
}

fn items_of(items: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Value)>> {
    let iterable = match items.cast::<PyDict>() {
        Ok(dict) => dict.items().into_any(),
        Err(_) => items.clone(),
    };
    iterable
        .try_iter()?
        .map(|pair| {
            let (key, value): (String, Bound<'_, PyAny>) = pair?.extract()?;
            Ok((key, to_value(&value)?))
        })
        .collect()
}

/// Calls a sync Python loader (`key` given for read-through loaders); `NOT_FOUND` is
/// core's "not found".
fn call_sync(func: &Py<PyAny>, key: Option<&str>) -> polycache::Result<Value> {
    Python::attach(|py| {
        let out = match key {
            Some(key) => func.call1(py, (key,)),
            None => func.call0(py),
        };
        loaded(out.map_err(loader_error)?.bind(py))
    })
}

/// Calls a sync Python loader on a thread of its own, in a copy of the caller's contextvars
/// context, and answers through a channel: core's `soft_timeout`/`hard_timeout` can then
/// stop waiting for a loader that blocks (the thread runs on; core drops or keeps its late
/// result). Only for loads with a timeout: others call on the calling thread.
fn call_threaded(
    func: Py<PyAny>,
    key: Option<String>,
) -> BoxFuture<'static, polycache::Result<Value>> {
    let context = Python::attach(|py| -> PyResult<Py<PyAny>> {
        Ok(py
            .import("contextvars")?
            .call_method0("copy_context")?
            .unbind())
    });
    let context = match context {
        Ok(context) => context,
        Err(err) => return Box::pin(std::future::ready(Err(loader_error(err)))),
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("polycache-loader".into())
        .spawn(move || {
            let result = Python::attach(|py| {
                let out = match key {
                    Some(key) => context.call_method1(py, "run", (func, key)),
                    None => context.call_method1(py, "run", (func,)),
                };
                loaded(out.map_err(loader_error)?.bind(py))
            });
            let _ = sender.send(result); // the caller may have stopped waiting
        });
    if let Err(err) = spawned {
        let err = pyo3::exceptions::PyRuntimeError::new_err(format!(
            "cannot start a loader thread: {err}"
        ));
        return Box::pin(std::future::ready(Err(loader_error(err))));
    }
    Box::pin(async move {
        receiver.await.unwrap_or_else(|_| {
            Err(loader_error(pyo3::exceptions::PyRuntimeError::new_err(
                "the loader thread ended without an answer",
            )))
        })
    })
}

/// A sync Python loader called as a load with `threaded` (a load timeout) needs.
async fn call_loader(func: Py<PyAny>, threaded: bool) -> polycache::Result<Value> {
    if threaded {
        call_threaded(func, None).await
    } else {
        call_sync(&func, None)
    }
}

/// A Python read-through loader for the sync cache; `threaded` when the config has a load
/// timeout (read-through loads use the config's rules).
struct SyncLoader {
    func: Py<PyAny>,
    threaded: bool,
}

impl Loader for SyncLoader {
    fn load(&self, key: &str) -> BoxFuture<'static, polycache::Result<Value>> {
        if self.threaded {
            let func = Python::attach(|py| self.func.clone_ref(py));
            return call_threaded(func, Some(key.to_owned()));
        }
        let result = call_sync(&self.func, Some(key));
        Box::pin(std::future::ready(result))
    }
}

/// A Python write-through writer for the sync cache.
struct SyncWriter(Py<PyAny>);

impl Writer for SyncWriter {
    fn write(&self, key: &str, value: &Value) -> BoxFuture<'static, polycache::Result<()>> {
        let result = Python::attach(|py| self.0.call1(py, (key, to_py(py, value)?)).map(drop))
            .map_err(writer_error);
        Box::pin(std::future::ready(result))
    }
}

/// A synchronous cache. Methods release the GIL while they wait on Redis.
#[pyclass(module = "polycache._native", frozen)]
#[derive(Debug)]
pub struct Cache {
    inner: CoreCache,
}

#[pymethods]
impl Cache {
    #[new]
    #[pyo3(signature = (url = None, *, loader = None, writer = None, **options))]
    fn new(
        py: Python<'_>,
        url: Option<&str>,
        loader: Option<Py<PyAny>>,
        writer: Option<Py<PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let config = config(url, options)?;
        let threaded = config.load_has_timeout(&polycache::LoadOptions::default());
        let mut builder = CoreCache::builder(config).io(Io::Blocking);
        if let Some(func) = loader {
            builder = builder.loader(SyncLoader { func, threaded });
        }
        if let Some(writer) = writer {
            builder = builder.writer(SyncWriter(writer));
        }
        let inner = py
            .detach(|| block_on(builder.build()))
            .map_err(errors::to_py)?;
        Ok(Cache { inner })
    }

    /// `Cache.from_url("redis://h:6379?namespace=app&ttl=60", **options)`: the same as the
    /// constructor; URL query options and keyword options combine (keywords win).
    #[staticmethod]
    #[pyo3(signature = (url, *, loader = None, writer = None, **options))]
    fn from_url(
        py: Python<'_>,
        url: &str,
        loader: Option<Py<PyAny>>,
        writer: Option<Py<PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        Cache::new(py, Some(url), loader, writer, options)
    }

    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        if let Some(hit) = near_hit(py, self.inner.get_near(key))? {
            return Ok(hit);
        }
        let stored = py
            .detach(|| block_on(self.inner.get_stored(key)))
            .map_err(errors::to_py)?;
        match crate::value::decode_stored(py, &self.inner, &stored)? {
            Some(value) => Ok(value),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    #[pyo3(signature = (key, value, ttl = None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &str,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let encoded = encoded_for(&self.inner, value)?;
        let ttl = ttl_of(ttl)?;
        py.detach(|| block_on(self.inner.set_encoded(key, encoded, ttl)))
            .map_err(errors::to_py)
    }

    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        py.detach(|| block_on(self.inner.delete(key)))
            .map_err(errors::to_py)
    }

    fn ttl(&self, py: Python<'_>, key: &str) -> PyResult<Option<f64>> {
        let left = py
            .detach(|| block_on(self.inner.ttl(key)))
            .map_err(errors::to_py)?;
        Ok(left.map(|d| d.as_secs_f64()))
    }

    fn get_many(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<Vec<Py<PyAny>>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = py
            .detach(|| block_on(self.inner.get_many(&refs)))
            .map_err(errors::to_py)?;
        found
            .iter()
            .map(|v| v.as_ref().map_or_else(|| Ok(py.None()), |v| to_py(py, v)))
            .collect()
    }

    #[pyo3(signature = (items, ttl = None))]
    fn set_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let items = items_of(items)?;
        let ttl = ttl_of(ttl)?;
        let entries: Vec<(&str, Value)> =
            items.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        py.detach(|| block_on(self.inner.set_many(&entries, ttl)))
            .map_err(errors::to_py)
    }

    /// The loader is owned by the call, so a stale value's refresh runs on a thread of its
    /// own (stale-while-revalidate) while this call answers with the stale value.
    /// `options`: the per-call options (`fresh_for`, `max_stale`, …; see `load_options`).
    #[pyo3(signature = (key, loader, ttl = None, **options))]
    fn get_or_load(
        &self,
        py: Python<'_>,
        key: &str,
        loader: Py<PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let options = load_options(ttl, options)?;
        if let Some(hit) = near_hit(py, self.inner.get_near_for_load_with(key, &options))? {
            return Ok(hit);
        }
        let threaded = self.inner.load_has_timeout(&options);
        let load = move || call_loader(loader, threaded);
        let value = py.detach(|| block_on(self.inner.get_or_load_with(key, load, &options)));
        found_to_py(py, value)
    }

    /// `get_or_load` answered with an `Entry`: the value, whether it is fresh, stale or a
    /// fail-safe answer, and its age.
    #[pyo3(signature = (key, loader, ttl = None, **options))]
    fn get_entry(
        &self,
        py: Python<'_>,
        key: &str,
        loader: Py<PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Entry> {
        let options = load_options(ttl, options)?;
        let threaded = self.inner.load_has_timeout(&options);
        let load = move || call_loader(loader, threaded);
        let loaded = py.detach(|| block_on(self.inner.get_entry(key, load, &options)));
        Entry::of(py, loaded)
    }

    /// `@cache.cached(ttl=60, key="user:{0}", fresh_for=10)`: memoizes a function in this
    /// cache (the decorator lives in `polycache.cached`; see its docs for the key template);
    /// `options` are `get_or_load`'s per-call options.
    #[pyo3(signature = (*, ttl = None, key = None, **options))]
    fn cached(
        slf: Py<Self>,
        py: Python<'_>,
        ttl: Option<&Bound<'_, PyAny>>,
        key: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        decorator(py, slf.into_any(), ttl, key, options)
    }

    fn metrics(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        metrics(py, &self.inner)
    }

    fn redis_key(&self, key: &str) -> PyResult<String> {
        self.inner.redis_key(key).map_err(errors::to_py)
    }

    fn close(&self) {
        self.inner.close();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, _exc: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>, _tb: &Bound<'_, PyAny>) {
        self.inner.close();
    }

    fn __repr__(&self) -> String {
        format!(
            "Cache({:?}, namespace={:?})",
            self.inner.config().redacted_url(),
            self.inner.config().namespace
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Cache>()?;
    m.add_class::<AsyncCache>()?;
    Ok(())
}

fn decorator(
    py: Python<'_>,
    cache: Py<PyAny>,
    ttl: Option<&Bound<'_, PyAny>>,
    key: Option<String>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    load_options(ttl, options)?; // a bad option fails here, not at the first call
    let kwargs = match options {
        Some(options) => options.copy()?,
        None => PyDict::new(py),
    };
    kwargs.set_item("ttl", ttl)?;
    kwargs.set_item("key", key)?;
    let cached = py.import("polycache")?.getattr("cached")?;
    Ok(cached.call((cache,), Some(&kwargs))?.unbind())
}

/// A near-tier hit, answered on this thread with the GIL held: no release, no runtime, no
/// I/O. The first hit converts the value and keeps the Python object on the entry; later
/// hits return that same object (as `functools.lru_cache` and cachetools do).
fn near_hit(
    py: Python<'_>,
    found: polycache::Result<Option<std::sync::Arc<polycache::NearValue>>>,
) -> PyResult<Option<Py<PyAny>>> {
    let Some(entry) = found.map_err(errors::to_py)? else {
        return Ok(None);
    };
    if let Some(object) = entry.host::<Py<PyAny>>() {
        return Ok(Some(object.clone_ref(py)));
    }
    let object = to_py(py, entry.value())?;
    Ok(Some(match entry.attach(object.clone_ref(py)) {
        Some(kept) => kept.clone_ref(py),
        None => object,
    }))
}

/// An asyncio future of the running loop, already done with `value`: a near hit of
/// `AsyncCache` answers without the tokio runtime or a wake-up of the loop.
fn resolved(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    future.call_method1("set_result", (value,))?;
    Ok(future)
}

fn metrics(py: Python<'_>, cache: &CoreCache) -> PyResult<Py<PyAny>> {
    let json = serde_json::to_value(cache.metrics())
        .map_err(|e| errors::PolycacheError::new_err(e.to_string()))?;
    json_to_py(py, &json)
}

async fn load_async(
    func: Py<PyAny>,
    args: Vec<Value>,
    context: Option<Py<PyAny>>,
) -> polycache::Result<Value> {
    let out = asyncio::call(func, args, context, loader_error).await?;
    Python::attach(|py| loaded(out.bind(py)))
}

struct AsyncLoader(Py<PyAny>);

impl Loader for AsyncLoader {
    fn load(&self, key: &str) -> BoxFuture<'static, polycache::Result<Value>> {
        let func = Python::attach(|py| self.0.clone_ref(py));
        Box::pin(load_async(func, vec![Value::from(key)], None))
    }
}

struct AsyncWriter(Py<PyAny>);

impl Writer for AsyncWriter {
    fn write(&self, key: &str, value: &Value) -> BoxFuture<'static, polycache::Result<()>> {
        let func = Python::attach(|py| self.0.clone_ref(py));
        let args = vec![Value::from(key), value.clone()];
        Box::pin(async move {
            asyncio::call(func, args, None, writer_error)
                .await
                .map(drop)
        })
    }
}

/// An asyncio cache: every method returns an awaitable; loaders and writers may be
/// coroutine functions.
#[pyclass(module = "polycache._native", frozen)]
#[derive(Debug)]
pub struct AsyncCache {
    inner: CoreCache,
}

#[pymethods]
impl AsyncCache {
    /// Connects while constructing (blocks until connected or `connect_timeout`); inside a
    /// running loop prefer `await AsyncCache.connect(...)`.
    #[new]
    #[pyo3(signature = (url = None, *, loader = None, writer = None, **options))]
    fn new(
        py: Python<'_>,
        url: Option<&str>,
        loader: Option<Py<PyAny>>,
        writer: Option<Py<PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let builder = async_builder(url, loader, writer, options)?;
        let runtime = runtime::get().map_err(errors::to_py)?;
        let inner = py
            .detach(|| runtime.block_on(builder.build()))
            .map_err(errors::to_py)?;
        Ok(AsyncCache { inner })
    }

    /// `await AsyncCache.connect(url, **options)`: connects without blocking the loop.
    #[staticmethod]
    #[pyo3(signature = (url = None, *, loader = None, writer = None, **options))]
    fn connect<'py>(
        py: Python<'py>,
        url: Option<&str>,
        loader: Option<Py<PyAny>>,
        writer: Option<Py<PyAny>>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let builder = async_builder(url, loader, writer, options)?;
        spawn(py, builder.build(), |py, inner| {
            Ok(Py::new(py, AsyncCache { inner })?.into_any())
        })
    }

    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: String,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(hit) = near_hit(py, self.inner.get_near(&key))? {
            return resolved(py, hit);
        }
        let (cache, decoder) = (self.inner.clone(), self.inner.clone());
        spawn(
            py,
            async move { cache.get_stored(&key).await },
            move |py, stored| match crate::value::decode_stored(py, &decoder, &stored)? {
                Some(value) => Ok(value),
                None => Ok(default.unwrap_or_else(|| py.None())),
            },
        )
    }

    #[pyo3(signature = (key, value, ttl = None))]
    fn set<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: &Bound<'py, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let encoded = encoded_for(&self.inner, value)?;
        let (cache, ttl) = (self.inner.clone(), ttl_of(ttl)?);
        spawn(
            py,
            async move { cache.set_encoded(&key, encoded, ttl).await },
            |py, ()| Ok(py.None()),
        )
    }

    fn delete<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.inner.clone();
        spawn(
            py,
            async move { cache.delete(&key).await },
            |py, existed| Ok(existed.into_pyobject(py)?.to_owned().into_any().unbind()),
        )
    }

    fn ttl<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.inner.clone();
        spawn(py, async move { cache.ttl(&key).await }, |py, left| {
            Ok(left
                .map(|d| d.as_secs_f64())
                .into_pyobject(py)?
                .into_any()
                .unbind())
        })
    }

    fn get_many<'py>(&self, py: Python<'py>, keys: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.inner.clone();
        spawn(
            py,
            async move {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                cache.get_many(&refs).await
            },
            |py, found| {
                let list = pyo3::types::PyList::empty(py);
                for value in &found {
                    list.append(
                        value
                            .as_ref()
                            .map_or_else(|| Ok(py.None()), |v| to_py(py, v))?,
                    )?;
                }
                Ok(list.into_any().unbind())
            },
        )
    }

    #[pyo3(signature = (items, ttl = None))]
    fn set_many<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (cache, items, ttl) = (self.inner.clone(), items_of(items)?, ttl_of(ttl)?);
        spawn(
            py,
            async move {
                let entries: Vec<(&str, Value)> =
                    items.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                cache.set_many(&entries, ttl).await
            },
            |py, ()| Ok(py.None()),
        )
    }

    /// The loader is owned by the call and bound to this event loop, so a stale value's
    /// refresh runs in the background (a task on the runtime that calls the loader on this
    /// loop) while this call answers with the stale value.
    #[pyo3(signature = (key, loader, ttl = None, **options))]
    fn get_or_load<'py>(
        slf: &Bound<'py, Self>,
        key: String,
        loader: Py<PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let options = load_options(ttl, options)?;
        let cache = &slf.get().inner;
        if let Some(hit) = near_hit(py, cache.get_near_for_load_with(&key, &options))? {
            return resolved(py, hit);
        }
        let load = async_load(slf, &key, loader)?;
        let cache = cache.clone();
        spawn(
            py,
            async move {
                let value = cache.get_or_load_with(&key, load, &options).await;
                Ok(value)
            },
            found_to_py,
        )
    }

    /// `get_or_load` answered with an `Entry` (see `Cache.get_entry`).
    #[pyo3(signature = (key, loader, ttl = None, **options))]
    fn get_entry<'py>(
        slf: &Bound<'py, Self>,
        key: String,
        loader: Py<PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let options = load_options(ttl, options)?;
        let load = async_load(slf, &key, loader)?;
        let cache = slf.get().inner.clone();
        spawn(
            py,
            async move { Ok(cache.get_entry(&key, load, &options).await) },
            |py, loaded| Ok(Py::new(py, Entry::of(py, loaded)?)?.into_any()),
        )
    }

    /// `@cache.cached(ttl=60, key="user:{0}", fresh_for=10)`: memoizes a function in this
    /// cache (the decorator lives in `polycache.cached`; see its docs for the key template);
    /// `options` are `get_or_load`'s per-call options.
    #[pyo3(signature = (*, ttl = None, key = None, **options))]
    fn cached(
        slf: Py<Self>,
        py: Python<'_>,
        ttl: Option<&Bound<'_, PyAny>>,
        key: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        decorator(py, slf.into_any(), ttl, key, options)
    }

    fn metrics(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        metrics(py, &self.inner)
    }

    fn redis_key(&self, key: &str) -> PyResult<String> {
        self.inner.redis_key(key).map_err(errors::to_py)
    }

    fn close(&self) {
        self.inner.close();
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        future.call_method1("set_result", (slf,))?;
        Ok(future)
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, PyAny>,
        _value: &Bound<'py, PyAny>,
        _tb: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.inner.close();
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        future.call_method1("set_result", (py.None(),))?;
        Ok(future)
    }

    fn __repr__(&self) -> String {
        format!(
            "AsyncCache({:?}, namespace={:?})",
            self.inner.config().redacted_url(),
            self.inner.config().namespace
        )
    }
}

/// An `AsyncCache` call's loader, owned and bound to the running event loop (so it may
/// run in a background refresh after the call answered) and to a context that marks the
/// key as loading (so a loader asking for its own key fails instead of waiting forever).
fn async_load(
    slf: &Bound<'_, AsyncCache>,
    key: &str,
    loader: Py<PyAny>,
) -> PyResult<impl FnOnce() -> BoxFuture<'static, polycache::Result<Value>> + Send + 'static> {
    let py = slf.py();
    let context =
        asyncio::loading_context(py, slf.as_ptr() as usize, key)?.map_err(errors::to_py)?;
    let event_loop = py
        .import("asyncio")?
        .call_method0("get_running_loop")?
        .unbind();
    Ok(move || -> BoxFuture<'static, polycache::Result<Value>> {
        Box::pin(asyncio::on_loop(
            event_loop,
            load_async(loader, Vec::new(), Some(context)),
        ))
    })
}

fn async_builder(
    url: Option<&str>,
    loader: Option<Py<PyAny>>,
    writer: Option<Py<PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<polycache::CacheBuilder> {
    let mut builder = CoreCache::builder(config(url, options)?);
    if let Some(loader) = loader {
        builder = builder.loader(AsyncLoader(loader));
    }
    if let Some(writer) = writer {
        builder = builder.writer(AsyncWriter(writer));
    }
    Ok(builder)
}

/// A Python value written for `cache` (its codec, or raw mode) in one pass.
fn encoded_for(cache: &CoreCache, value: &Bound<'_, PyAny>) -> PyResult<polycache::codec::Encoded> {
    let mut encoder = cache.encoder();
    crate::value::encode(value, &mut encoder)?;
    encoder.finish().map_err(errors::to_py)
}
