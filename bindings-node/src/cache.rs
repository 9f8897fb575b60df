//! `Cache`, the JS class over core's cache: convert arguments, submit the call, map the
//! result. How calls run is [`crate::batch`]'s business.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{
    FunctionCallContext, JavaScriptClassExt, JsObjectValue, Object, Unknown,
};
use napi::{Env, JsValue as _, Result};
use napi_derive::napi;
use polycache::{ErrorKind, KeySchema, KeyTemplate, Value};

use crate::batch::{runtime, Call, IoMode, Shared};
use crate::config;
use crate::errors;
use crate::patterns::{self, JsFunction};
use crate::settle::{self, Kept};
use crate::value::{self, RawValue};

/// Per-call options of `set`, `setMany` and `getOrLoad`.
#[napi(object)]
#[derive(Debug, Default)]
pub struct SetOptions {
    /// Time to live in seconds; the cache's `ttl` option when left out.
    pub ttl: Option<f64>,
}

/// Options of `wrap`.
#[napi(object)]
#[derive(Debug, Default)]
pub struct WrapOptions {
    /// Time to live in seconds; the cache's `ttl` option when left out.
    pub ttl: Option<f64>,
    /// Key template such as `"user:{0}"` (docs/FORMAT.md §5); without one the key is the
    /// function's name and a hash of its arguments.
    pub key: Option<String>,
}

fn config_error(env: &Env, message: String) -> napi::Error {
    errors::to_js(env, &polycache::Error::new(ErrorKind::Config, message))
}

fn ttl_of(env: &Env, ttl: Option<f64>) -> Result<Option<Duration>> {
    ttl.map(|secs| {
        Duration::try_from_secs_f64(secs).map_err(|_| {
            config_error(
                env,
                format!("ttl must be a non-negative number of seconds, not {secs}"),
            )
        })
    })
    .transpose()
}

/// A polycache cache: `memory://` by default, Redis with a `redis://`, `redis+shards://` or
/// `redis+cluster://` URL. Every method returns a promise; errors carry `err.code`.
#[napi]
pub struct Cache {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

impl Cache {
    fn open(env: &Env, url: Option<String>, options: Option<Object<'_>>) -> Result<Cache> {
        let options = config::read(env, url, options)?;
        let io = if options.io_async {
            IoMode::Async
        } else {
            IoMode::Auto
        };
        let shared = Shared::new(env, options.config, io, options.loader, options.writer)?;
        Ok(Cache { shared })
    }
}

#[napi]
impl Cache {
    /// A cache from options (`url` defaults to `memory://`). Connects on first use; use
    /// `Cache.connect` to connect up front.
    #[napi(constructor, ts_args_type = "options?: CacheOptions")]
    pub fn new(env: Env, options: Option<Object<'_>>) -> Result<Self> {
        Cache::open(&env, None, options)
    }

    /// Opens a cache on `url` (query options allowed) and connects; the options object
    /// overrides the URL's query options.
    #[napi(
        ts_args_type = "url: string, options?: CacheOptions",
        ts_return_type = "Promise<Cache>"
    )]
    pub fn connect<'env>(
        env: &'env Env,
        url: String,
        options: Option<Object<'_>>,
    ) -> Result<Unknown<'env>> {
        let cache = match Cache::open(env, Some(url), options) {
            Ok(cache) => cache,
            Err(err) => return settle::rejected(env, err),
        };
        let shared = cache.shared.clone();
        let instance = cache.into_instance(env)?;
        let kept = Kept::keep(env, instance.value)?;
        let (promise, pending) = shared.promise(env)?;
        let connecting = shared.clone();
        runtime().spawn(async move {
            let connected = connecting.cache().await.map(|_| ());
            pending.settle(move |env| {
                let instance = kept.take(env);
                errors::check(env, connected)?;
                instance
            });
        });
        Ok(promise)
    }

    /// The value of `key`, or `undefined` on a miss. With a `loader` option, misses load.
    #[napi(
        ts_generic_types = "T = CacheValue",
        ts_return_type = "Promise<T | undefined>"
    )]
    pub fn get<'env>(&self, env: &'env Env, key: String) -> Result<Unknown<'env>> {
        self.shared.submit(env, Call::Get(key))
    }

    /// The values of `keys`, in order (`undefined` for misses), in one round trip per node.
    #[napi(
        ts_generic_types = "T = CacheValue",
        ts_return_type = "Promise<Array<T | undefined>>"
    )]
    pub fn get_many<'env>(&self, env: &'env Env, keys: Vec<String>) -> Result<Unknown<'env>> {
        self.shared.submit(env, Call::GetMany(keys))
    }

    /// Stores `value` under `key` for `ttl` seconds. With a `writer` option, the writer
    /// runs first and a failure leaves the cache untouched.
    #[napi(
        ts_args_type = "key: string, value: CacheValue, options?: SetOptions",
        ts_return_type = "Promise<void>"
    )]
    pub fn set<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Unknown<'_>,
        options: Option<SetOptions>,
    ) -> Result<Unknown<'env>> {
        let ttl = ttl_of(env, options.unwrap_or_default().ttl);
        let value = value::read(env, &value);
        let (ttl, value) = match ttl.and_then(|ttl| Ok((ttl, value?))) {
            Ok(args) => args,
            Err(err) => return self.shared.rejected(env, err),
        };
        self.shared.submit(env, Call::Set { key, value, ttl })
    }

    /// Stores several values (a plain object or `[key, value]` pairs), pipelined per node.
    #[napi(
        ts_args_type = "entries: Record<string, CacheValue> | Array<[string, CacheValue]>, options?: SetOptions",
        ts_return_type = "Promise<void>"
    )]
    pub fn set_many<'env>(
        &self,
        env: &'env Env,
        entries: Unknown<'_>,
        options: Option<SetOptions>,
    ) -> Result<Unknown<'env>> {
        let ttl = ttl_of(env, options.unwrap_or_default().ttl);
        let read = value::read(env, &entries);
        let (ttl, entries) = match ttl.and_then(|ttl| Ok((ttl, read?))) {
            Ok(args) => args,
            Err(err) => return self.shared.rejected(env, err),
        };
        let shape = || errors::type_error(env, "setMany takes an object or [key, value] pairs");
        let entries = match entries {
            Value::Map(map) => Ok(map.into_iter().collect()),
            Value::Array(pairs) => pairs
                .into_iter()
                .map(|pair| match pair {
                    Value::Array(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        match (kv.next(), kv.next()) {
                            (Some(Value::Str(key)), Some(value)) => Ok((key, value)),
                            _ => Err(()),
                        }
                    }
                    _ => Err(()),
                })
                .collect::<std::result::Result<Vec<_>, ()>>(),
            _ => Err(()),
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(()) => return self.shared.rejected(env, shape()),
        };
        self.shared.submit(env, Call::SetMany { entries, ttl })
    }

    /// Removes `key`; whether it was there.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn delete<'env>(&self, env: &'env Env, key: String) -> Result<Unknown<'env>> {
        self.shared.submit(env, Call::Delete(key))
    }

    /// Remaining time to live of `key` in seconds; `null` when missing or without expiry.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn ttl<'env>(&self, env: &'env Env, key: String) -> Result<Unknown<'env>> {
        self.shared.submit(env, Call::Ttl(key))
    }

    /// Cache-aside: the cached value of `key`, or what `loader()` returns (or resolves
    /// to), stored for `ttl` seconds. Concurrent calls for one key share one loader call.
    /// A loader's rejection reaches the caller unchanged.
    #[napi(
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_args_type = "key: string, loader: () => T | Promise<T>, options?: SetOptions",
        ts_return_type = "Promise<T>"
    )]
    pub fn get_or_load<'env>(
        &self,
        env: &'env Env,
        key: String,
        loader: JsFunction<'_>,
        options: Option<SetOptions>,
    ) -> Result<Unknown<'env>> {
        let ttl = match ttl_of(env, options.unwrap_or_default().ttl) {
            Ok(ttl) => ttl,
            Err(err) => return self.shared.rejected(env, err),
        };
        let loader = patterns::keep(&loader)?;
        self.shared
            .submit(env, Call::GetOrLoad { key, loader, ttl })
    }

    /// Memoizes `fn`: the returned function answers from the cache and calls `fn` on a
    /// miss. Keys follow docs/FORMAT.md §5, so a Python function decorated with the same
    /// `key` template shares the entries.
    #[napi(
        ts_generic_types = "A extends unknown[], R extends CacheValue",
        ts_args_type = "fn: (...args: A) => R | Promise<R>, options?: WrapOptions",
        ts_return_type = "(...args: A) => Promise<R>"
    )]
    pub fn wrap<'env>(
        &self,
        env: &'env Env,
        function: JsFunction<'_>,
        options: Option<WrapOptions>,
    ) -> Result<napi::bindgen_prelude::Function<'env, (), RawValue>> {
        let options = options.unwrap_or_default();
        let ttl = ttl_of(env, options.ttl)?;
        let template = match &options.key {
            Some(template) => Some(errors::check(env, KeyTemplate::parse(template))?),
            None => None,
        };
        let name: String = function.get_named_property("name").unwrap_or_default();
        if template.is_none() && name.is_empty() {
            return Err(config_error(
                env,
                "wrap needs a key template for a function without a name".to_owned(),
            ));
        }
        let target = patterns::keep(&function)?;
        let shared = self.shared.clone();
        let js_name = name.clone();
        let wrapped = env.create_function_from_closure::<(), RawValue, _>(
            &js_name,
            move |ctx: FunctionCallContext<'_>| {
                let env: &Env = ctx.env;
                let args: Vec<Unknown<'_>> = ctx.arguments()?;
                let raw: Vec<_> = args.iter().map(|arg| arg.raw()).collect();
                let values = args
                    .iter()
                    .map(|arg| value::read_lenient(env, arg))
                    .collect::<Result<Vec<Value>>>()?;
                let key = match &template {
                    Some(template) => {
                        errors::check(env, template.render(&values, &BTreeMap::new()))?
                    }
                    None => polycache::call_key(&name, &values),
                };
                let loader = patterns::bind(env, &target, &raw)?;
                let promise = shared.submit(env, Call::GetOrLoad { key, loader, ttl })?;
                Ok(RawValue(promise.raw()))
            },
        )?;
        Ok(wrapped)
    }

    /// Counters (hits, misses, loads, loadErrors, decodeErrors, sets, deletes,
    /// storeErrors, evictions) and `latencyUs`: `[upper bound in µs or null, count]` pairs.
    #[napi(ts_return_type = "Metrics")]
    pub fn metrics(&self, env: Env) -> Result<serde_json::Value> {
        serde_json::to_value(self.shared.metrics())
            .map_err(|e| config_error(&env, format!("metrics: {e}")))
    }

    /// The Redis key `key` is stored under.
    #[napi]
    pub fn redis_key(&self, env: Env, key: String) -> Result<String> {
        let config = &self.shared.config;
        let schema = errors::check(
            &env,
            KeySchema::new(&config.prefix, &config.namespace, config.max_key_length),
        )?;
        errors::check(&env, schema.redis_key(&key))
    }

    /// Stops accepting calls: later calls fail with `ECONNECTION`.
    #[napi]
    pub fn close(&self) {
        self.shared.close();
    }
}

/// The options a cache starts from (core's defaults), for tools and docs.
#[napi(ts_return_type = "Required<Omit<CacheOptions, 'loader' | 'writer' | 'io'>>")]
pub fn default_options() -> serde_json::Value {
    serde_json::to_value(polycache::Config::default()).unwrap_or_default()
}
