//! The call path (see docs/node.md, "Speed"). Every call becomes a [`Call`] holding a
//! pending promise. Two ways to run it:
//!
//! * **Tick batch** (`io: "auto"`, the default): calls made in one turn of the event loop
//!   are queued and run when the turn's microtasks run, through core's
//!   [`polycache::patterns::batch::Batch`] on a *blocking* cache, on the JS thread: reads in
//!   a row become one `MGET`, and promises are settled directly — no thread hop. The
//!   blocking cache is bounded by a small budget (5 ms per command, 20 ms to connect), so
//!   the event loop is never held longer; a store failure within the budget turns the fast
//!   path off for a second and the calls go the async way, which reports real errors
//!   within `commandTimeout`. Core's [`FastPath`] holds that policy.
//! * **Async**: core's async cache on a tokio runtime; promises are settled through one
//!   thread-safe function per cache. Used for loaders and writers (JS functions that must
//!   be awaited), for read-through misses, with `io: "async"`, and as the fallback above.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use napi::bindgen_prelude::{FunctionRef, JsObjectValue, Unknown};
use napi::{sys, Env, JsValue as _, Result};
use polycache::patterns::batch::{Batch, Done, Op};
use polycache::patterns::FastPath;
use polycache::{Config, Io, MetricsSnapshot, Value};

use crate::errors;
use crate::patterns::{self, Invoker, JsFunctionRef, JsLoader, JsWriter};
use crate::settle::{Pending, Settler};
use crate::value;

/// One process-wide tokio runtime for the async path, built on first use.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("polycache")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("polycache: cannot start the tokio runtime: {e}"))
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The I/O mode chosen with the `io` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// Tick batches on a bounded blocking cache, falling back to async.
    Auto,
    /// Always the async cache.
    Async,
}

/// A call waiting for its turn.
pub enum Call {
    Get(String),
    GetMany(Vec<String>),
    GetOrLoad {
        key: String,
        loader: Arc<JsFunctionRef>,
        ttl: Option<Duration>,
    },
    Set {
        key: String,
        value: Value,
        ttl: Option<Duration>,
    },
    SetMany {
        entries: Vec<(String, Value)>,
        ttl: Option<Duration>,
    },
    Delete(String),
    Ttl(String),
}

/// What a call produced, turned into JS on the JS thread.
enum Outcome {
    Found(Option<Value>),
    FoundMany(Vec<Option<Value>>),
    Loaded(Value),
    Stored,
    Deleted(bool),
    Ttl(Option<Duration>),
}

impl Outcome {
    fn to_js(&self, env: &Env) -> Result<sys::napi_value> {
        match self {
            Outcome::Found(found) => value::to_js_option(env, found.as_ref()),
            Outcome::FoundMany(found) => value::to_js_options(env, found),
            Outcome::Loaded(loaded) => value::to_js(env, loaded),
            Outcome::Stored => value::to_js_option(env, None),
            Outcome::Deleted(existed) => value::to_js(env, &Value::Bool(*existed)),
            Outcome::Ttl(ttl) => value::to_js(
                env,
                &ttl.map_or(Value::Nil, |ttl| Value::Float(ttl.as_secs_f64())),
            ),
        }
    }
}

fn settle_async(pending: Pending, result: polycache::Result<Outcome>) {
    pending.settle(move |env| {
        let outcome = errors::check(env, result)?;
        outcome.to_js(env)
    });
}

/// The state of one JS `Cache`, shared with the async path and with `wrap`ped functions.
pub struct Shared {
    pub config: Config,
    pub io: IoMode,
    pub invoker: Invoker,
    pub loader: Option<Arc<JsFunctionRef>>,
    pub writer: Option<Arc<JsFunctionRef>>,
    settler: Arc<Settler>,
    async_cache: tokio::sync::OnceCell<polycache::Cache>,
    /// The fast path's cache; touched on the JS thread only.
    blocking: Mutex<Option<polycache::Cache>>,
    fast_path: FastPath,
    tick: Mutex<Vec<(Call, Pending)>>,
    /// `queueMicrotask` and this cache's flush function.
    schedule: OnceLock<(FunctionRef<(), ()>, FunctionRef<(), ()>)>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.config.url)
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}

fn is_memory(config: &Config) -> bool {
    config.url.starts_with("memory:")
}

impl Shared {
    /// Sets up a cache: nothing connects yet, except that `memory://` opens its store now
    /// (both paths share it).
    pub fn new(
        env: &Env,
        config: Config,
        io: IoMode,
        loader: Option<Arc<JsFunctionRef>>,
        writer: Option<Arc<JsFunctionRef>>,
    ) -> Result<Arc<Shared>> {
        let invoker = Invoker::new(env)?;
        let shared = Arc::new(Shared {
            settler: Settler::new(env)?,
            async_cache: tokio::sync::OnceCell::new(),
            blocking: Mutex::new(None),
            fast_path: FastPath::new(),
            tick: Mutex::new(Vec::new()),
            schedule: OnceLock::new(),
            config,
            io,
            invoker,
            loader,
            writer,
        });
        if is_memory(&shared.config) {
            let built = runtime().block_on(shared.build_async());
            let cache = errors::check(env, built)?;
            let fast = polycache::Cache::builder(shared.config.clone())
                .store(cache.store().clone())
                .io(Io::Blocking);
            let fast = errors::check(env, polycache::block_on(fast.build()))?;
            *lock(&shared.blocking) = Some(fast);
            let _ = shared.async_cache.set(cache);
        }
        let global = env.get_global()?;
        let queue: napi::bindgen_prelude::Function<'_, (), ()> =
            global.get_named_property("queueMicrotask")?;
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let flush = env.create_function_from_closure::<(), (), _>("flush", move |ctx| {
            if let Some(shared) = weak.upgrade() {
                shared.flush(ctx.env);
            }
            Ok(())
        })?;
        let _ = shared
            .schedule
            .set((queue.create_ref()?, flush.create_ref()?));
        Ok(shared)
    }

    async fn build_async(&self) -> polycache::Result<polycache::Cache> {
        let mut builder = polycache::Cache::builder(self.config.clone());
        if let Some(target) = &self.loader {
            builder = builder.loader(JsLoader {
                invoker: self.invoker.clone(),
                target: target.clone(),
            });
        }
        if let Some(target) = &self.writer {
            builder = builder.writer(JsWriter {
                invoker: self.invoker.clone(),
                target: target.clone(),
            });
        }
        builder.build().await
    }

    /// The async cache, connected on first use.
    pub async fn cache(&self) -> polycache::Result<polycache::Cache> {
        self.async_cache
            .get_or_try_init(|| self.build_async())
            .await
            .cloned()
    }

    /// A new promise and its pending handle (settled from any thread).
    pub fn promise<'env>(&self, env: &'env Env) -> Result<(Unknown<'env>, Pending)> {
        self.settler.promise(env)
    }

    /// A promise already rejected with `err` (argument errors reject like any other).
    pub fn rejected<'env>(&self, env: &'env Env, err: napi::Error) -> Result<Unknown<'env>> {
        crate::settle::rejected(env, err)
    }

    /// A new promise for a call; the call runs at the end of this tick or now, async.
    pub fn submit<'env>(self: &Arc<Self>, env: &'env Env, call: Call) -> Result<Unknown<'env>> {
        let (promise, pending) = self.settler.promise(env)?;
        if self.batchable(&call) {
            let mut tick = lock(&self.tick);
            tick.push((call, pending));
            if tick.len() == 1 {
                drop(tick);
                self.schedule_flush(env)?;
            }
        } else {
            self.run_async(call, pending);
        }
        Ok(promise)
    }

    /// Whether a call can wait for the end of the tick (writer calls and `ttl` cannot).
    fn batchable(&self, call: &Call) -> bool {
        match call {
            Call::Set { .. } | Call::SetMany { .. } => self.writer.is_none(),
            Call::Ttl(_) => false,
            _ => true,
        }
    }

    fn fast_path_on(&self) -> bool {
        self.io == IoMode::Auto && self.fast_path.is_open()
    }

    fn schedule_flush(&self, env: &Env) -> Result<()> {
        if let Some((queue, flush)) = self.schedule.get() {
            let queue = queue.borrow_back(env)?;
            let flush = flush.borrow_back(env)?;
            patterns::call(env, &queue, &[flush.raw()])?;
        }
        Ok(())
    }

    fn blocking_cache(&self) -> Option<polycache::Cache> {
        let mut blocking = lock(&self.blocking);
        if blocking.is_none() {
            let config = FastPath::budgeted(&self.config);
            let built =
                polycache::block_on(polycache::Cache::builder(config).io(Io::Blocking).build());
            match built {
                Ok(cache) => *blocking = Some(cache),
                Err(_) => {
                    self.fast_path.record_failure();
                    return None;
                }
            }
        }
        blocking.clone()
    }

    /// Runs this tick's calls (the microtask scheduled by the first of them): on the JS
    /// thread when the fast path is on, otherwise as one batch on the async cache.
    fn flush(self: &Arc<Self>, env: &Env) {
        let calls = std::mem::take(&mut *lock(&self.tick));
        let blocking = if self.fast_path_on() {
            self.blocking_cache()
        } else {
            None
        };
        let Some(blocking) = blocking else {
            self.run_batch_async(calls);
            return;
        };
        let (batch, spans) = batch_of(&calls);
        let ran = polycache::block_on(batch.run(&blocking, true));
        if ran.stopped.is_some() {
            self.fast_path.record_failure();
        }
        let mut results = ran.results.into_iter();
        let mut rest = Vec::new();
        for ((call, pending), span) in calls.into_iter().zip(spans) {
            let done: Vec<polycache::Result<Done>> = results.by_ref().take(span).collect();
            if done.len() < span || !rest.is_empty() {
                rest.push((call, pending)); // the fast path stopped before this call
                continue;
            }
            match self.finish_fast(call, done) {
                Ok(result) => pending.settle_now(env, move |env| {
                    let outcome = errors::check(env, result)?;
                    outcome.to_js(env)
                }),
                Err(call) => self.run_async(call, pending),
            }
        }
        if !rest.is_empty() {
            self.run_batch_async(rest);
        }
    }

    /// Runs calls in order as one batch on the async cache (reads in a row: one `MGET`).
    fn run_batch_async(self: &Arc<Self>, calls: Vec<(Call, Pending)>) {
        let shared = self.clone();
        runtime().spawn(async move {
            let cache = match shared.cache().await {
                Ok(cache) => cache,
                Err(err) => {
                    for (_, pending) in calls {
                        settle_async(pending, Err(err.clone()));
                    }
                    return;
                }
            };
            let (batch, spans) = batch_of(&calls);
            let ran = batch.run(&cache, false).await;
            let mut results = ran.results.into_iter();
            for ((call, pending), span) in calls.into_iter().zip(spans) {
                let done: Vec<polycache::Result<Done>> = results.by_ref().take(span).collect();
                match shared.finish_fast(call, done) {
                    Ok(result) => settle_async(pending, result),
                    Err(call) => shared.run_async(call, pending),
                }
            }
        });
    }

    /// The fast result of a call, or the call back when it must go on asynchronously (a
    /// miss that a loader fills).
    fn finish_fast(
        &self,
        call: Call,
        mut done: Vec<polycache::Result<Done>>,
    ) -> std::result::Result<polycache::Result<Outcome>, Call> {
        let single =
            |done: &mut Vec<polycache::Result<Done>>| done.pop().unwrap_or(Ok(Done::Stored));
        match call {
            Call::Get(key) => match single(&mut done) {
                Ok(Done::Value(None)) if self.loader.is_some() => Err(Call::Get(key)),
                Ok(Done::Value(found)) => Ok(Ok(Outcome::Found(found))),
                Ok(_) => Ok(Ok(Outcome::Found(None))),
                Err(err) => Ok(Err(err)),
            },
            Call::GetOrLoad { key, loader, ttl } => match single(&mut done) {
                Ok(Done::Value(Some(found))) => Ok(Ok(Outcome::Loaded(found))),
                Err(err) if err.kind() == polycache::ErrorKind::Key => Ok(Err(err)),
                // A miss (or a store failure, where core fails open) loads asynchronously.
                _ => Err(Call::GetOrLoad { key, loader, ttl }),
            },
            Call::GetMany(keys) => {
                let mut found = Vec::with_capacity(done.len());
                for result in done {
                    match result {
                        Ok(Done::Value(value)) => found.push(value),
                        Ok(_) => found.push(None),
                        Err(err) => return Ok(Err(err)),
                    }
                }
                if self.loader.is_some() && found.iter().any(Option::is_none) {
                    return Err(Call::GetMany(keys));
                }
                Ok(Ok(Outcome::FoundMany(found)))
            }
            Call::Set { .. } | Call::SetMany { .. } => {
                Ok(single(&mut done).map(|_| Outcome::Stored))
            }
            Call::Delete(_) => Ok(single(&mut done).map(|done| match done {
                Done::Deleted(existed) => Outcome::Deleted(existed),
                _ => Outcome::Deleted(false),
            })),
            Call::Ttl(key) => Err(Call::Ttl(key)),
        }
    }

    /// Runs a call on the async cache and settles its promise from the runtime.
    pub fn run_async(self: &Arc<Self>, call: Call, pending: Pending) {
        let shared = self.clone();
        runtime().spawn(async move {
            let result = match shared.cache().await {
                Ok(cache) => shared.call_async(&cache, call).await,
                Err(err) => Err(err),
            };
            settle_async(pending, result);
        });
    }

    async fn call_async(&self, cache: &polycache::Cache, call: Call) -> polycache::Result<Outcome> {
        Ok(match call {
            Call::Get(key) => Outcome::Found(cache.get(&key).await?),
            Call::GetMany(keys) => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                Outcome::FoundMany(cache.get_many(&keys).await?)
            }
            Call::GetOrLoad { key, loader, ttl } => {
                let invoker = self.invoker.clone();
                let load = move || invoker.load(loader, Vec::new());
                Outcome::Loaded(cache.get_or_load(&key, load, ttl).await?)
            }
            Call::Set { key, value, ttl } => {
                cache.set(&key, &value, ttl).await?;
                Outcome::Stored
            }
            Call::SetMany { entries, ttl } => {
                let entries: Vec<(&str, Value)> = entries
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.clone()))
                    .collect();
                cache.set_many(&entries, ttl).await?;
                Outcome::Stored
            }
            Call::Delete(key) => Outcome::Deleted(cache.delete(&key).await?),
            Call::Ttl(key) => Outcome::Ttl(cache.ttl(&key).await?),
        })
    }

    /// Counters of both paths, added up (evictions come from the one store of `memory://`).
    pub fn metrics(&self) -> MetricsSnapshot {
        let fast = lock(&self.blocking).as_ref().map(polycache::Cache::metrics);
        let slow = self.async_cache.get().map(polycache::Cache::metrics);
        match (fast, slow) {
            (Some(a), Some(b)) => a.combined(&b, is_memory(&self.config)),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => MetricsSnapshot::default(),
        }
    }

    /// Closes both paths: later calls fail with `ECONNECTION`.
    pub fn close(&self) {
        if let Some(cache) = lock(&self.blocking).as_ref() {
            cache.close();
        }
        if let Some(cache) = self.async_cache.get() {
            cache.close();
        }
        self.fast_path.shut();
    }
}

/// The batch of a tick's calls and how many operations each call contributed.
fn batch_of(calls: &[(Call, Pending)]) -> (Batch, Vec<usize>) {
    let mut batch = Batch::new();
    let mut spans = Vec::with_capacity(calls.len());
    for (call, _) in calls {
        let ops = fast_ops(call);
        spans.push(ops.len());
        for op in ops {
            batch.push(op);
        }
    }
    (batch, spans)
}

/// The operations a call runs on the fast path.
fn fast_ops(call: &Call) -> Vec<Op> {
    match call {
        Call::Get(key) | Call::GetOrLoad { key, .. } => vec![Op::Get(key.clone())],
        Call::GetMany(keys) => keys.iter().cloned().map(Op::Get).collect(),
        Call::Set { key, value, ttl } => vec![Op::Set {
            key: key.clone(),
            value: value.clone(),
            ttl: *ttl,
        }],
        Call::SetMany { entries, ttl } => vec![Op::SetMany {
            entries: entries.clone(),
            ttl: *ttl,
        }],
        Call::Delete(key) => vec![Op::Delete(key.clone())],
        Call::Ttl(_) => Vec::new(),
    }
}
