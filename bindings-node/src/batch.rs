//! The call path (see docs/node.md, "The call path"). Every call becomes one of core's
//! [`Op`]s holding a pending promise. The calls of one turn of the event loop are queued
//! and handed, when the turn's microtasks run, to core's [`Batcher`] on a tokio runtime:
//! reads in a row become one `MGET` per node, every other call is pipelined, and each
//! promise is settled (through one thread-safe function per cache) as soon as its own
//! reply arrives. The JS thread only converts values; it never waits for the network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use napi::bindgen_prelude::{FunctionRef, JsObjectValue, Unknown};
use napi::{sys, Env, JsValue as _, Result};
use polycache::patterns::batch::{Batcher, Done, Op};
use polycache::{Config, ErrorKind, MetricsSnapshot, Value};

use crate::errors;
use crate::patterns::{self, Invoker, JsFunctionRef, JsLoader, JsThunk, JsWriter};
use crate::settle::{Held, Pending, Settler};
use crate::value;

/// One process-wide tokio runtime, built on first use.
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

/// A call's result, made ready on the runtime thread for the JS thread.
enum Reply {
    Done(Done),
    /// What a `get` found, transcoded for V8 already (see [`value::prepare`]).
    Found(value::Found),
    /// What a `getMany` found.
    FoundMany(Vec<value::Found>),
}

/// A call's result as a JS value, on the JS thread.
fn to_js(env: &Env, cache: &polycache::Cache, reply: &Reply) -> Result<sys::napi_value> {
    match reply {
        Reply::Found(found) => value::found_to_js(env, cache, found),
        Reply::FoundMany(found) => value::found_many_to_js(env, cache, found),
        Reply::Done(Done::Value(found)) => value::to_js_option(env, found.as_ref()),
        Reply::Done(Done::Deleted(existed)) => value::to_js(env, &Value::Bool(*existed)),
        Reply::Done(Done::Ttl(ttl)) => value::to_js(
            env,
            &ttl.map_or(Value::Nil, |ttl| Value::Float(ttl.as_secs_f64())),
        ),
        Reply::Done(Done::Entry(entry)) => crate::fresh::entry_to_js(env, entry),
        // `Stored`, and what only reads return (handled above).
        Reply::Done(_) => value::to_js_option(env, None),
    }
}

/// Settles a call: a read's bytes are decoded and transcoded here (on the JS thread, in
/// the batch task), then the JS thread makes the objects. Measured, moving large reads'
/// transcode to the runtime bought nothing (a 1 MB records get: 18–34 ms either way, the
/// run-to-run swing; 1 MB floats 0.67–0.79 ms here against 0.81–1.45 ms with the hop).
fn settle(pending: Pending, cache: &polycache::Cache, result: polycache::Result<Done>) {
    let reply = result.map(|done| match done {
        Done::Found(stored) => Reply::Found(value::prepare(cache, stored)),
        Done::FoundMany(found) => Reply::FoundMany(
            found
                .into_iter()
                .map(|stored| value::prepare(cache, stored))
                .collect(),
        ),
        done => Reply::Done(done),
    });
    let cache = cache.clone();
    pending.settle(move |env| {
        let reply = errors::check(env, reply)?;
        to_js(env, &cache, &reply)
    });
}

/// Rejects a call whose cache could not connect.
fn fail(pending: Pending, err: polycache::Error) {
    pending.settle(move |env| Err(errors::to_js(env, &err)));
}

/// The calls of the current turn of the event loop (see [`Shared::submit`]).
#[derive(Default)]
struct Tick {
    /// The turn (`evloop::turn`) whose first call started at once: later calls of that
    /// turn queue. `None` once a flush ran.
    open: Option<u64>,
    /// The calls queued, in call order; the first of them scheduled the flush.
    calls: Vec<(Op, Pending)>,
}

/// The state of one JS `Cache`, shared with the runtime and with `wrap`ped functions.
pub struct Shared {
    pub config: Config,
    pub invoker: Invoker,
    pub loader: Option<Arc<JsFunctionRef>>,
    pub writer: Option<Arc<JsFunctionRef>>,
    settler: Arc<Settler>,
    /// Node sockets for plain Redis nodes (socket.rs); `None` where Node lacks
    /// `process.getBuiltinModule` (redis-rs's tokio sockets then).
    connector: Option<Arc<crate::socket::NodeConnector>>,
    batcher: tokio::sync::OnceCell<Arc<Batcher>>,
    closed: AtomicBool,
    tick: Mutex<Tick>,
    /// `queueMicrotask` and this cache's flush function.
    schedule: OnceLock<(FunctionRef<(), ()>, FunctionRef<(), ()>)>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.config.redacted_url())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Sets up a cache; nothing connects until the first call (or `Cache.connect`).
    pub fn new(
        env: &Env,
        config: Config,
        loader: Option<Arc<JsFunctionRef>>,
        writer: Option<Arc<JsFunctionRef>>,
    ) -> Result<Arc<Shared>> {
        let invoker = Invoker::new(env)?;
        let has_net: bool = env.run_script("typeof process.getBuiltinModule === 'function'")?;
        let connector = match has_net {
            true => Some(Arc::new(crate::socket::NodeConnector {
                remote: crate::evloop::local(env)?.remote().clone(),
            })),
            false => None,
        };
        let shared = Arc::new(Shared {
            settler: Settler::new(env)?,
            connector,
            batcher: tokio::sync::OnceCell::new(),
            closed: AtomicBool::new(false),
            tick: Mutex::new(Tick::default()),
            schedule: OnceLock::new(),
            config,
            invoker,
            loader,
            writer,
        });
        let global = env.get_global()?;
        let queue: napi::bindgen_prelude::Function<'_, (), ()> =
            global.get_named_property("queueMicrotask")?;
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let flush = crate::entry::js_function(env, c"flush", move |env, _| {
            if let Some(shared) = weak.upgrade() {
                shared.flush(env)?;
            }
            Ok(std::ptr::null_mut())
        })?;
        let _ = shared
            .schedule
            .set((queue.create_ref()?, flush.create_ref()?));
        Ok(shared)
    }

    async fn build(&self) -> polycache::Result<Arc<Batcher>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(polycache::Error::new(
                ErrorKind::Connection,
                "the cache is closed",
            ));
        }
        let mut builder = polycache::Cache::builder(self.config.clone());
        if let Some(connector) = &self.connector {
            builder = builder.connector(connector.clone());
        }
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
        // Opening runs on the runtime: what it does synchronously (the near tier's tracking
        // connections) must not hold the event loop. Once per cache.
        let cache = runtime()
            .spawn(builder.build())
            .await
            .map_err(|e| polycache::Error::new(ErrorKind::Connection, format!("opening: {e}")))??;
        Ok(Arc::new(Batcher::new(cache, self.loader.is_some())))
    }

    /// The batcher over the cache, connected on first use.
    pub async fn batcher(&self) -> polycache::Result<Arc<Batcher>> {
        if let Some(batcher) = self.batcher.get() {
            return Ok(batcher.clone());
        }
        // Boxed: connecting's state would otherwise make every call's task larger, and
        // every move of it longer.
        Box::pin(self.batcher.get_or_try_init(|| self.build()))
            .await
            .cloned()
    }

    /// A JS function called with no arguments as a loader (`getOrLoad`, `wrap`).
    pub fn thunk_loader(&self, target: Arc<JsFunctionRef>) -> Arc<dyn polycache::Loader> {
        Arc::new(JsThunk {
            invoker: self.invoker.clone(),
            target,
        })
    }

    /// A new promise and its pending handle (settled from any thread).
    pub fn promise<'env>(&self, env: &'env Env) -> Result<(Unknown<'env>, Pending)> {
        self.settler.promise(env)
    }

    /// A promise already rejected with `err` (argument errors reject like any other).
    pub fn rejected<'env>(&self, env: &'env Env, err: napi::Error) -> Result<Unknown<'env>> {
        crate::settle::rejected(env, err)
    }

    /// A new promise for a call. The first call of a turn starts at once: its request is
    /// written before this returns, as a JS client writes it (work done before the write
    /// delays the reply, work done after it overlaps the server's). The calls that follow
    /// it in the same turn queue, and the first of them schedules the microtask that runs
    /// them together, after it; a turn of one call (sequential code's every turn)
    /// schedules nothing.
    pub fn submit<'env>(self: &Arc<Self>, env: &'env Env, op: Op) -> Result<Unknown<'env>> {
        if let Some(key) = self.reentrant(env, &op)? {
            let err = polycache::patterns::reentrant_load(key);
            return self.rejected(env, errors::to_js(env, &err));
        }
        let (promise, pending) = self.settler.promise(env)?;
        let turn = crate::evloop::turn();
        let mut tick = lock(&self.tick);
        if tick.calls.is_empty() && tick.open != Some(turn) {
            tick.open = Some(turn);
            drop(tick);
            crate::evloop::enter(env, |local| self.start(local, op, pending))?;
            return Ok(promise);
        }
        tick.calls.push((op, pending));
        if tick.calls.len() == 1 {
            drop(tick);
            if let Err(err) = self.schedule_flush(env) {
                // No flush would run it: it fails through its promise, as every other
                // call's error does, and the next call of the turn queues anew.
                if let Some((_, pending)) = lock(&self.tick).calls.pop() {
                    pending.settle(move |_| Err(err));
                }
            }
        }
        Ok(promise)
    }

    /// A promise already resolved with the near tier's value of `key`, made here on the JS
    /// thread; `None` when the cache is not connected yet, the tier cannot serve the key,
    /// or calls were made earlier in this turn (a `set` made before this read must win).
    /// `loads`: the options of a call that would load on a miss (`getOrLoad`, `wrap`), so
    /// the load rules apply (see `polycache::Cache::get_near_for_load_with`).
    pub fn near_hit<'env>(
        &self,
        env: &'env Env,
        key: &str,
        loads: Option<&polycache::LoadOptions>,
    ) -> Result<Option<Unknown<'env>>> {
        let Some(batcher) = self.batcher.get() else {
            return Ok(None);
        };
        {
            let tick = lock(&self.tick);
            if !tick.calls.is_empty() || tick.open == Some(crate::evloop::turn()) {
                return Ok(None);
            }
        }
        let cache = batcher.cache();
        let found = match loads {
            Some(options) => cache.get_near_for_load_with(key, options),
            None => cache.get_near(key),
        };
        match found {
            Ok(Some(entry)) => {
                // The first hit converts an object or array and keeps it; later hits return
                // it (a primitive is cheap to make, and Node-API cannot reference one).
                let value = match entry.host::<Held>() {
                    Some(held) => held.value(env)?,
                    None => {
                        let value = value::to_js(env, entry.value())?;
                        if matches!(entry.value(), Value::Array(_) | Value::Map(_)) {
                            entry.attach(Held::new(&self.settler, env, value)?);
                        }
                        value
                    }
                };
                crate::settle::resolved(env, value).map(Some)
            }
            // A key error or a closed cache: the normal path reports it.
            Ok(None) | Err(_) => Ok(None),
        }
    }

    /// The key of a call that would load a key whose load is running the JS code making
    /// the call (it would wait for itself): single-flight cannot see that the load awaits
    /// this very call, the JS async context can.
    fn reentrant<'op>(&self, env: &Env, op: &'op Op) -> Result<Option<&'op str>> {
        let keys: &[String] = match op {
            Op::GetOrLoad { key, .. } | Op::GetEntry { key, .. } => std::slice::from_ref(key),
            Op::Get(key) if self.loader.is_some() => std::slice::from_ref(key),
            Op::GetMany(keys) if self.loader.is_some() => keys,
            _ => &[],
        };
        for key in keys {
            if self.invoker.loading(env, key)? {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    fn schedule_flush(&self, env: &Env) -> Result<()> {
        if let Some((queue, flush)) = self.schedule.get() {
            let queue = queue.borrow_back(env)?;
            let flush = flush.borrow_back(env)?;
            patterns::call(env, &queue, &[flush.raw()])?;
        }
        Ok(())
    }

    /// Ends the turn: starts the calls queued after its first on the JS thread's executor
    /// (the microtask scheduled by the first of them); they are first polled before this
    /// callback returns.
    fn flush(self: &Arc<Self>, env: &Env) -> Result<()> {
        let mut tick = lock(&self.tick);
        tick.open = None;
        if tick.calls.len() > 1 {
            let calls = std::mem::take(&mut tick.calls);
            drop(tick);
            return crate::evloop::enter(env, |local| self.run(local, calls));
        }
        // None, or one call after the first: no vectors, and the tick's keeps its room.
        let Some((op, pending)) = tick.calls.pop() else {
            return Ok(());
        };
        drop(tick);
        crate::evloop::enter(env, |local| self.start(local, op, pending))
    }

    /// Runs the calls of a turn (after its first) as one batch, on one task.
    fn run(self: &Arc<Self>, local: &crate::evloop::Local, calls: Vec<(Op, Pending)>) {
        let shared = self.clone();
        local.spawn(async move {
            let (ops, pendings): (Vec<Op>, Vec<Pending>) = calls.into_iter().unzip();
            let mut pendings: Vec<Option<Pending>> = pendings.into_iter().map(Some).collect();
            match shared.batcher().await {
                Ok(batcher) => {
                    let cache = batcher.cache();
                    batcher
                        .run(ops, |position, result| {
                            if let Some(pending) = pendings.get_mut(position).and_then(Option::take)
                            {
                                settle(pending, cache, result);
                            }
                        })
                        .await;
                }
                Err(err) => {
                    for pending in pendings.into_iter().flatten() {
                        fail(pending, err.clone());
                    }
                }
            }
        });
    }

    /// Runs one call on its own (sequential code's every call): no vectors.
    fn start(self: &Arc<Self>, local: &crate::evloop::Local, op: Op, pending: Pending) {
        let shared = self.clone();
        local.spawn(async move {
            match shared.batcher().await {
                Ok(batcher) => settle(pending, batcher.cache(), batcher.result(op).await),
                Err(err) => fail(pending, err),
            }
        });
    }

    /// The cache's counters (zero before it first connected).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.batcher
            .get()
            .map(|batcher| batcher.cache().metrics())
            .unwrap_or_default()
    }

    /// Stops accepting calls: later calls fail with `ECONNECTION`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some(batcher) = self.batcher.get() {
            batcher.cache().close();
        }
    }
}
