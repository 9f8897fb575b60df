//! `Cache`, the JS class over core's cache: convert arguments, submit the call, map the
//! result. How calls run is [`crate::batch`]'s business.

use std::collections::BTreeMap;
use std::sync::Arc;

use napi::bindgen_prelude::{
    FunctionCallContext, JavaScriptClassExt, JsObjectValue, This, Unknown,
};
use napi::{Env, JsValue as _, Result};
use napi_derive::napi;
use polycache::patterns::batch::Op;
use polycache::{ErrorKind, KeyTemplate, Value};

use crate::args;
use crate::batch::Shared;
use crate::config;
use crate::entry;
use crate::errors;
use crate::patterns;
use crate::settle::{self, Kept};
use crate::value::{self, RawValue};

// Declared for index.d.ts only: the methods read options by hand (args.rs) so that a wrong
// type rejects with `ECONFIG` instead of throwing napi's `InvalidArg`. `LoadOptions`
// (getOrLoad, getEntry) and `WrapOptions` are written in src/header.d.ts.
/// Per-call options of `set` and `setMany`.
#[allow(dead_code)]
#[napi(object)]
#[derive(Debug, Default)]
pub struct SetOptions {
    /// Time to live in seconds; the cache's `ttl` option when left out.
    pub ttl: Option<f64>,
}

fn config_error(env: &Env, message: String) -> napi::Error {
    errors::to_js(env, &polycache::Error::new(ErrorKind::Config, message))
}

/// The promise of a call whose arguments converted, or a rejected one.
fn submit<'env>(shared: &Arc<Shared>, env: &'env Env, op: Result<Op>) -> Result<Unknown<'env>> {
    match op {
        Ok(op) => shared.submit(env, op),
        Err(err) => shared.rejected(env, err),
    }
}

/// A polycache cache: `memory://` by default, Redis with a `redis://`, `redis+shards://` or
/// `redis+cluster://` URL. Every method returns a promise; errors carry `err.code`.
#[napi]
#[derive(Clone)]
pub struct Cache {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

impl Cache {
    fn open(env: &Env, url: Option<String>, options: Option<Unknown<'_>>) -> Result<Cache> {
        let options = args::options(env, options)?;
        let options = config::read(env, url, options)?;
        let shared = Shared::new(env, options.config, options.loader, options.writer)?;
        Ok(Cache { shared })
    }
}

#[napi]
impl Cache {
    /// A cache from options (`url` defaults to `memory://`). Connects on first use; use
    /// `Cache.connect` to connect up front.
    #[napi(constructor, ts_args_type = "options?: CacheOptions")]
    pub fn new(env: Env, this: This<'_>, options: Option<Unknown<'_>>) -> Result<Self> {
        let cache = Cache::open(&env, None, options)?;
        entry::install(&env, this.object.raw(), &cache)?;
        Ok(cache)
    }

    /// Opens a cache on `url` (query options allowed) and connects; the options object
    /// overrides the URL's query options.
    #[napi(
        ts_args_type = "url: string, options?: CacheOptions",
        ts_return_type = "Promise<Cache>"
    )]
    pub fn connect<'env>(
        env: &'env Env,
        url: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> Result<Unknown<'env>> {
        let url = args::string(env, &url, "url");
        let cache = match url.and_then(|url| Cache::open(env, Some(url), options)) {
            Ok(cache) => cache,
            Err(err) => return settle::rejected(env, err),
        };
        let shared = cache.shared.clone();
        let instance = cache.clone().into_instance(env)?;
        entry::install(env, instance.value, &cache)?;
        let kept = Kept::keep(env, instance.value)?;
        let (promise, pending) = shared.promise(env)?;
        let connecting = shared.clone();
        crate::evloop::enter(env, |local| {
            local.spawn(async move {
                let connected = connecting.batcher().await.map(|_| ());
                pending.settle(move |env| {
                    let instance = kept.take(env);
                    errors::check(env, connected)?;
                    instance
                });
            });
        })?;
        Ok(promise)
    }

    /// The value of `key`, or `undefined` on a miss. With a `loader` option, misses load.
    /// With `nearCache`, hits of one entry resolve to the same object: do not mutate it.
    #[napi(
        ts_generic_types = "T = CacheValue",
        ts_args_type = "key: string",
        ts_return_type = "Promise<T | undefined>"
    )]
    pub fn get<'env>(&self, env: &'env Env, key: Unknown<'_>) -> Result<Unknown<'env>> {
        let key = args::key(env, &key);
        if let Ok(key) = &key {
            if let Some(hit) = self.shared.near_hit(env, key, None)? {
                return Ok(hit);
            }
        }
        submit(&self.shared, env, key.map(Op::Get))
    }

    /// The values of `keys`, in order (`undefined` for misses), in one round trip per node.
    #[napi(
        ts_generic_types = "T = CacheValue",
        ts_args_type = "keys: Array<string>",
        ts_return_type = "Promise<Array<T | undefined>>"
    )]
    pub fn get_many<'env>(&self, env: &'env Env, keys: Unknown<'_>) -> Result<Unknown<'env>> {
        submit(&self.shared, env, args::keys(env, &keys).map(Op::GetMany))
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
        key: Unknown<'_>,
        value: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> Result<Unknown<'env>> {
        let op = (|| {
            let key = args::key(env, &key)?;
            let ttl = args::ttl(env, options)?;
            let encoded = value::encode_for(env, &value, &self.shared.config)?;
            Ok(Op::SetEncoded { key, encoded, ttl })
        })();
        submit(&self.shared, env, op)
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
        options: Option<Unknown<'_>>,
    ) -> Result<Unknown<'env>> {
        let op = (|| {
            let ttl = args::ttl(env, options)?;
            let entries = value::read_for(env, &entries, &self.shared.config)?;
            let shape = || errors::type_error(env, "setMany takes an object or [key, value] pairs");
            let entries = match entries {
                Value::Map(map) => map.into_iter().collect(),
                Value::Array(pairs) => pairs
                    .into_iter()
                    .map(|pair| match pair {
                        Value::Array(kv) if kv.len() == 2 => {
                            let mut kv = kv.into_iter();
                            match (kv.next(), kv.next()) {
                                (Some(Value::Str(key)), Some(value)) => Ok((key, value)),
                                _ => Err(shape()),
                            }
                        }
                        _ => Err(shape()),
                    })
                    .collect::<Result<Vec<_>>>()?,
                _ => return Err(shape()),
            };
            Ok(Op::SetMany { entries, ttl })
        })();
        submit(&self.shared, env, op)
    }

    /// Removes `key`; whether it was there.
    #[napi(ts_args_type = "key: string", ts_return_type = "Promise<boolean>")]
    pub fn delete<'env>(&self, env: &'env Env, key: Unknown<'_>) -> Result<Unknown<'env>> {
        submit(&self.shared, env, args::key(env, &key).map(Op::Delete))
    }

    /// Remaining time to live of `key` in seconds; `null` when missing or without expiry.
    #[napi(
        ts_args_type = "key: string",
        ts_return_type = "Promise<number | null>"
    )]
    pub fn ttl<'env>(&self, env: &'env Env, key: Unknown<'_>) -> Result<Unknown<'env>> {
        submit(&self.shared, env, args::key(env, &key).map(Op::Ttl))
    }

    /// Cache-aside: the cached value of `key`, or what `loader()` returns (or resolves
    /// to), stored for `ttl` seconds. Concurrent calls for one key share one loader call.
    /// A loader's rejection reaches the caller unchanged. `options` override the cache's
    /// freshness options for this call. With `nearCache`, hits of one entry resolve to the
    /// same object: do not mutate it.
    #[napi(
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_args_type = "key: string, loader: () => T | Promise<T>, options?: LoadOptions",
        ts_return_type = "Promise<T>"
    )]
    pub fn get_or_load<'env>(
        &self,
        env: &'env Env,
        key: Unknown<'_>,
        loader: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> Result<Unknown<'env>> {
        let op = (|| {
            let key = args::key(env, &key)?;
            let loader = args::function(env, loader, "the loader")?;
            let options = args::load_options(env, options)?;
            if let Some(hit) = self.shared.near_hit(env, &key, Some(&options))? {
                return Ok(Err(hit));
            }
            let loader = self.shared.thunk_loader(patterns::keep(&loader)?);
            Ok(Ok(Op::GetOrLoad {
                key,
                loader,
                options,
            }))
        })();
        match op {
            Ok(Err(hit)) => Ok(hit),
            Ok(Ok(op)) => submit(&self.shared, env, Ok(op)),
            Err(err) => submit(&self.shared, env, Err(err)),
        }
    }

    /// `getOrLoad` resolving to an `Entry`: the value, whether it is fresh, stale or a
    /// fail-safe answer, and its age in seconds.
    #[napi(
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_args_type = "key: string, loader: () => T | NotFound | Promise<T | NotFound>, options?: LoadOptions",
        ts_return_type = "Promise<Entry<T>>"
    )]
    pub fn get_entry<'env>(
        &self,
        env: &'env Env,
        key: Unknown<'_>,
        loader: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> Result<Unknown<'env>> {
        let op = (|| {
            let key = args::key(env, &key)?;
            let loader = args::function(env, loader, "the loader")?;
            let options = args::load_options(env, options)?;
            let loader = self.shared.thunk_loader(patterns::keep(&loader)?);
            Ok(Op::GetEntry {
                key,
                loader,
                options,
            })
        })();
        submit(&self.shared, env, op)
    }

    /// Memoizes `fn`: the returned function answers from the cache and calls `fn` on a
    /// miss. Keys follow docs/FORMAT.md §5, so a Python function decorated with the same
    /// `key` template shares the entries; the other options are `getOrLoad`'s, for every
    /// call. With `nearCache`, hits of one entry resolve to the same object: do not mutate
    /// it.
    #[napi(
        ts_generic_types = "A extends unknown[], R extends CacheValue",
        ts_args_type = "fn: (...args: A) => R | Promise<R>, options?: WrapOptions",
        ts_return_type = "(...args: A) => Promise<R>"
    )]
    pub fn wrap<'env>(
        &self,
        env: &'env Env,
        function: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> Result<napi::bindgen_prelude::Function<'env, (), RawValue>> {
        let function = args::function(env, function, "the function to wrap")?;
        let options = args::options(env, options)?;
        let load_options = match &options {
            Some(options) => args::load_options_of(env, options, &["key"])?,
            None => polycache::LoadOptions::default(),
        };
        let template = match args::string_option(env, options.as_ref(), "key")? {
            Some(template) => Some(errors::check(env, KeyTemplate::parse(&template))?),
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
                let op = (|| {
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
                    if let Some(hit) = shared.near_hit(env, &key, Some(&load_options))? {
                        return Ok(Err(hit));
                    }
                    let loader = shared.thunk_loader(patterns::bind(env, &target, &raw)?);
                    Ok(Ok(Op::GetOrLoad {
                        key,
                        loader,
                        options: load_options.clone(),
                    }))
                })();
                let promise = match op {
                    Ok(Err(hit)) => hit,
                    Ok(Ok(op)) => submit(&shared, env, Ok(op))?,
                    Err(err) => submit(&shared, env, Err(err))?,
                };
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
    #[napi(ts_args_type = "key: string")]
    pub fn redis_key(&self, env: Env, key: Unknown<'_>) -> Result<String> {
        let key = args::key(&env, &key)?;
        let schema = errors::check(&env, self.shared.config.key_schema())?;
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
