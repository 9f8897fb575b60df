//! The cache: key schema + codec + store + patterns, written once for every binding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, try_join_all};

use crate::clock::Clock;
use crate::codec::{self, Build, EncodeOptions, Encoded, Encoder, Framed, Meta, Value};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::key::KeySchema;
use crate::metrics::{Counter, Metrics, MetricsSnapshot};
use crate::near::{Near, NearTier, NearValue, Ticket};
use crate::patterns::fresh::FreshState;
use crate::patterns::{found, Loader, SingleFlight, Writer};
use crate::store::{self, Entry, Io, Store};

mod fresh;
mod locked;

/// What [`Cache::get_stored`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// The stored bytes (`None`: nothing stored), not yet decoded or counted.
    Bytes(Option<Vec<u8>>),
    /// A value a loader or the near tier served (already counted).
    Value(Option<Value>),
}

/// What one read of the store found.
enum Lookup {
    /// A value.
    Value(Value),
    /// A cached "not found" (negative caching).
    NotFound,
    /// Nothing (or bytes that do not decode).
    Miss,
}

impl Lookup {
    fn value(self) -> Option<Value> {
        match self {
            Lookup::Value(value) => Some(value),
            Lookup::NotFound | Lookup::Miss => None,
        }
    }
}

/// A cache over one store. Cheap to clone: clones share the store, metrics and flights.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use polycache::{Cache, Value};
///
/// let cache = Cache::connect("memory://").await?;
/// let user = cache
///     .get_or_load("user:1", || async { Ok(Value::from("Ada")) }, None)
///     .await?;
/// assert_eq!(user, Value::from("Ada"));
/// assert_eq!(cache.get("user:1").await?, Some(Value::from("Ada")));
/// assert_eq!(cache.metrics().loads, 1);
/// # Ok::<(), polycache::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    keys: KeySchema,
    encode: EncodeOptions,
    store: Arc<dyn Store>,
    clock: Clock,
    metrics: Metrics,
    flights: SingleFlight,
    loader: Option<Arc<dyn Loader>>,
    writer: Option<Arc<dyn Writer>>,
    closed: AtomicBool,
    /// Decoded values in process, kept coherent by Redis tracking (`near_cache` > 0).
    near: Option<NearTier>,
    /// The process that opened the store, and whether its connections belong to an async
    /// runtime: after `fork()` those are the parent's (their driver tasks do not exist in
    /// the child), so the child gets a clear error instead of a timeout per call. Blocking
    /// stores reconnect in a child by themselves; the memory store is plain memory.
    opened_by: u32,
    fork_sensitive: bool,
    /// Refreshes in flight and last good values (stale-while-revalidate, fail-safe).
    fresh: FreshState,
    /// The cross-process stampede lock (`stampede_lock`; never on `memory://`).
    lock: Option<crate::lock::StampedeLock>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("url", &self.inner.config.redacted_url())
            .field("store", &self.inner.store)
            .field("namespace", &self.inner.keys.namespace())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Cache`] from a [`Config`] plus the parts that are code, not data: a loader
/// (read-through), a writer (write-through), a clock, or a custom store.
#[must_use]
pub struct CacheBuilder {
    config: Config,
    loader: Option<Arc<dyn Loader>>,
    writer: Option<Arc<dyn Writer>>,
    clock: Clock,
    store: Option<Arc<dyn Store>>,
    io: Io,
    connector: Option<store::SharedConnector>,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CacheBuilder {
    /// Makes `get` and `get_many` load missing keys through `loader` (read-through).
    pub fn loader(mut self, loader: impl Loader + 'static) -> Self {
        self.loader = Some(Arc::new(loader));
        self
    }

    /// Makes `set` and `set_many` call `writer` first (write-through).
    pub fn writer(mut self, writer: impl Writer + 'static) -> Self {
        self.writer = Some(Arc::new(writer));
        self
    }

    /// Uses `clock` for timestamps and in-process expiry (tests pass [`Clock::mock`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Chooses async (default) or blocking stores. A blocking cache is driven with
    /// [`crate::block_on`] on the caller's thread: no thread hop per call (Python's sync
    /// `Cache`, the WASI component).
    pub fn io(mut self, io: Io) -> Self {
        self.io = io;
        self
    }

    /// Opens the streams of plain `redis://` nodes (standalone and each shard) through
    /// `connector`, for a host that does socket I/O on its own event loop (Node); async
    /// stores only, and Sentinel, Cluster and TLS ignore it (see [`store::Connector`]).
    pub fn connector(mut self, connector: store::SharedConnector) -> Self {
        self.connector = Some(connector);
        self
    }

    /// Uses `store` instead of the one the URL names.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Validates the config and opens the store.
    ///
    /// # Errors
    /// A config error for an invalid config; a connection or timeout error when Redis
    /// cannot be reached within `connect_timeout`.
    pub async fn build(self) -> Result<Cache> {
        self.config.validate()?;
        // A cache opened with a connector belongs to a host that never forks into code
        // using its connections (Node), so its calls skip the fork check's getpid.
        let fork_sensitive = self.io == Io::Async
            && self.store.is_none()
            && self.connector.is_none()
            && !self.config.url.starts_with("memory:");
        let store = match self.store {
            Some(store) => store,
            None => {
                store::open_via(&self.config, self.clock.clone(), self.io, self.connector).await?
            }
        };
        // After the store: its errors (a bad address, a server down) come first.
        let near = NearTier::open(&self.config)?;
        let lock = (self.config.stampede_lock && !self.config.url.starts_with("memory:"))
            .then_some(crate::lock::StampedeLock {
                lease: self.config.lock_lease,
                timeout: self.config.lock_timeout,
                io: self.io,
            });
        Ok(Cache {
            inner: Arc::new(Inner {
                fresh: FreshState::new(self.config.memory_capacity),
                keys: self.config.key_schema()?,
                encode: self.config.encode_options(),
                config: self.config,
                store,
                clock: self.clock,
                metrics: Metrics::default(),
                flights: SingleFlight::default(),
                loader: self.loader,
                writer: self.writer,
                closed: AtomicBool::new(false),
                near,
                opened_by: store::process_id(),
                fork_sensitive,
                lock,
            }),
        })
    }
}

impl Cache {
    /// A builder starting from `config`.
    pub fn builder(config: Config) -> CacheBuilder {
        CacheBuilder {
            config,
            loader: None,
            writer: None,
            clock: Clock::system(),
            store: None,
            io: Io::Async,
            connector: None,
        }
    }

    /// Opens a cache on `config`.
    ///
    /// # Errors
    /// As [`CacheBuilder::build`].
    pub async fn new(config: Config) -> Result<Cache> {
        Cache::builder(config).build().await
    }

    /// Opens a cache on a URL such as `memory://` or `redis://127.0.0.1:6379?namespace=app`.
    ///
    /// # Errors
    /// As [`Config::from_url`] and [`CacheBuilder::build`].
    pub async fn connect(url: &str) -> Result<Cache> {
        Cache::new(Config::from_url(url)?).await
    }

    /// The config this cache was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The Redis key a user key is stored under.
    ///
    /// # Errors
    /// A key error for an empty key.
    pub fn redis_key(&self, key: &str) -> Result<String> {
        self.inner.keys.redis_key(key)
    }

    /// The store behind this cache.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The value of `key`, or `None` on a miss. A cache built with a loader loads misses
    /// (read-through). Undecodable bytes are a miss plus a counted decode error.
    ///
    /// # Errors
    /// A key error, or a connection / timeout / server error from the store (a read-through
    /// cache loads instead, see [`Cache::get_or_load`]).
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        if let Some(loader) = &self.inner.loader {
            let loader = loader.clone();
            let load_key = key.to_owned();
            return found(
                self.get_or_load(key, move || loader.load(&load_key), None)
                    .await,
            );
        }
        let redis_key = self.redis_key(key)?;
        if let Some(hit) = self.near_hit(&redis_key, true)? {
            return Ok(Some(hit.value().clone()));
        }
        let ticket = self.near_ticket();
        let bytes = self.timed(self.inner.store.get(&redis_key)).await?;
        Ok(self.remember(ticket, &redis_key, self.decode_counted(bytes)))
    }

    /// The near tier's entry for `key`, without any I/O: `None` when the near tier is off
    /// or cannot serve it. Bindings call this on their own thread before anything else,
    /// so a near hit costs no thread hop; the entry is shared by every hit (a binding may
    /// attach its host object to it, see [`NearValue::attach`]). Counts a hit, never a
    /// miss (the caller's next step, [`Cache::get`], counts that).
    ///
    /// # Errors
    /// A key error, or a connection error when the cache is closed.
    pub fn get_near(&self, key: &str) -> Result<Option<Arc<NearValue>>> {
        if self.inner.loader.is_some() {
            return self.get_near_for_load(key); // `get` loads: the load rules apply
        }
        if self.inner.near.is_none() {
            return Ok(None);
        }
        self.near_hit(&self.redis_key(key)?, false)
    }

    /// [`Cache::get_near`] for a call that would load on a miss (`get_or_load`, a memoized
    /// function): `None` also when `fresh_for` is configured, because the near tier keeps
    /// no envelope and cannot tell a fresh value from one due for a refresh.
    ///
    /// # Errors
    /// As [`Cache::get_near`].
    pub fn get_near_for_load(&self, key: &str) -> Result<Option<Arc<NearValue>>> {
        self.get_near_for_load_with(key, &crate::LoadOptions::default())
    }

    /// [`Cache::get_near_for_load`] for a call with its own `options`: `None` also when the
    /// call gives a `fresh_for`.
    ///
    /// # Errors
    /// As [`Cache::get_near`].
    pub fn get_near_for_load_with(
        &self,
        key: &str,
        options: &crate::LoadOptions,
    ) -> Result<Option<Arc<NearValue>>> {
        let fresh_for = options.fresh_for.or(self.inner.config.fresh_for);
        if self.inner.near.is_none() || fresh_for.is_some_and(|d| !d.is_zero()) {
            return Ok(None);
        }
        self.near_hit(&self.redis_key(key)?, false)
    }

    /// Whether the near tier serves now (every master tracked); false when it is off.
    pub fn near_is_serving(&self) -> bool {
        self.near().is_some_and(Near::is_serving)
    }

    /// Closes this cache's tracking connection to `addr` (`host:port`) as a network
    /// failure would; whether there was one. For fault tests.
    #[doc(hidden)]
    pub fn near_break_link(&self, addr: &str) -> bool {
        self.inner
            .near
            .as_ref()
            .is_some_and(|tier| tier.break_link(addr))
    }

    fn near(&self) -> Option<&Near> {
        self.inner.near.as_ref().map(|tier| &*tier.near)
    }

    fn near_hit(&self, redis_key: &str, count_miss: bool) -> Result<Option<Arc<NearValue>>> {
        let Some(near) = self.near() else {
            return Ok(None);
        };
        // Only `closed`: the fork check of `check_open` costs a getpid (0.4 µs here), and a
        // forked child's tier stops serving by itself (see `crate::near`).
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Connection, "the cache is closed"));
        }
        let hit = near.get(redis_key, count_miss);
        if hit.is_some() {
            self.inner.metrics.add(Counter::Hit, 1);
        }
        Ok(hit)
    }

    /// Taken before a read is sent (see [`crate::near`]).
    fn near_ticket(&self) -> Option<Ticket> {
        self.near().and_then(Near::ticket)
    }

    /// Keeps a value read from Redis in the near tier, if its ticket allows.
    fn remember(
        &self,
        ticket: Option<Ticket>,
        redis_key: &str,
        value: Option<Value>,
    ) -> Option<Value> {
        if let (Some(ticket), Some(near), Some(value)) = (ticket, self.near(), &value) {
            near.insert(ticket, redis_key, value.clone());
        }
        value
    }

    /// This process writes or deletes `keys`: drop them from the near tier before the
    /// command is sent (a read issued after the write, even while it is in flight, goes to
    /// Redis) and again after its reply (a read that raced it stores nothing stale); the
    /// tracking push follows later.
    fn forget<'k>(&self, keys: impl IntoIterator<Item = &'k str> + Clone) {
        for key in keys.clone() {
            self.inner.fresh.forget(key);
        }
        if let Some(near) = self.near() {
            near.invalidate(keys.into_iter().map(str::as_bytes), false);
        }
    }

    /// The values of `keys`, in order, in one round trip per node. A read-through cache
    /// loads the misses (each through single-flight).
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Value>>> {
        let redis_keys = keys
            .iter()
            .map(|k| self.redis_key(k))
            .collect::<Result<Vec<_>>>()?;
        let mut values: Vec<Option<Value>> = vec![None; keys.len()];
        let mut asked = Vec::with_capacity(keys.len());
        for (i, redis_key) in redis_keys.iter().enumerate() {
            match self.near_hit(redis_key, true)? {
                Some(hit) => values[i] = Some(hit.value().clone()),
                None => asked.push(i),
            }
        }
        let ticket = self.near_ticket();
        let started = Instant::now();
        let fetched = if asked.len() == keys.len() {
            self.timed(self.inner.store.get_many(&redis_keys)).await
        } else if asked.is_empty() {
            Ok(Vec::new())
        } else {
            let subset: Vec<String> = asked.iter().map(|&i| redis_keys[i].clone()).collect();
            self.timed(self.inner.store.get_many(&subset)).await
        };
        let budget = self.budget_after(started, fetched.is_ok());
        let fetched = match fetched {
            Ok(fetched) => fetched,
            // Read-through fails open: load everything; the store error is already counted.
            Err(_) if self.inner.loader.is_some() => vec![None; asked.len()],
            Err(err) => return Err(err),
        };
        let mut negative = vec![false; keys.len()];
        for (&i, bytes) in asked.iter().zip(fetched) {
            let read = self.decode_read(bytes);
            negative[i] = matches!(read, Lookup::NotFound);
            values[i] = self.remember(ticket, &redis_keys[i], read.value());
        }
        if let Some(loader) = &self.inner.loader {
            let missing: Vec<usize> = (0..keys.len())
                .filter(|&i| values[i].is_none() && !negative[i])
                .collect();
            let loaded = try_join_all(missing.iter().map(|&i| {
                let loader = loader.clone();
                let (key, redis_key) = (keys[i], redis_keys[i].clone());
                async move {
                    found(
                        self.load_and_store(redis_key, move || loader.load(key), None, budget)
                            .await,
                    )
                }
            }))
            .await?;
            for (i, value) in missing.into_iter().zip(loaded) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    /// The values of `keys`, each with its own result, in one round trip per node: over
    /// several nodes (shards, a cluster), a node that fails fails only its own keys. A
    /// read-through cache loads the misses and the keys whose node failed.
    pub async fn get_each(&self, keys: &[&str]) -> Vec<Result<Option<Value>>> {
        let mut out: Vec<Result<Option<Value>>> = Vec::with_capacity(keys.len());
        let mut asked = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            match self.redis_key(key) {
                Ok(redis_key) => match self.near_hit(&redis_key, true) {
                    Ok(Some(hit)) => out.push(Ok(Some(hit.value().clone()))),
                    Err(closed) => out.push(Err(closed)),
                    Ok(None) => {
                        asked.push((i, redis_key));
                        out.push(Ok(None));
                    }
                },
                Err(err) => out.push(Err(err)),
            }
        }
        let redis_keys: Vec<String> = asked.iter().map(|(_, k)| k.clone()).collect();
        let ticket = self.near_ticket();
        let started = Instant::now();
        let fetched = match self.check_open() {
            Ok(()) if redis_keys.is_empty() => Vec::new(), // all near hits
            Ok(()) => {
                let fetched = self.inner.store.get_each(&redis_keys).await;
                self.inner.metrics.observe(started.elapsed());
                fetched
            }
            Err(closed) => vec![Err(closed); redis_keys.len()],
        };
        let mut negative = vec![false; keys.len()];
        for ((i, redis_key), result) in asked.iter().zip(fetched) {
            out[*i] = match result {
                Ok(bytes) => {
                    let read = self.decode_read(bytes);
                    negative[*i] = matches!(read, Lookup::NotFound);
                    Ok(self.remember(ticket, redis_key, read.value()))
                }
                Err(err) => {
                    self.inner.metrics.add(Counter::StoreError, 1);
                    Err(err)
                }
            };
        }
        if let Some(loader) = &self.inner.loader {
            let missing: Vec<(usize, String)> = asked
                .into_iter()
                .filter(|(i, _)| !matches!(out[*i], Ok(Some(_))) && !negative[*i])
                .collect();
            let loaded = join_all(missing.iter().map(|(i, redis_key)| {
                let (loader, key) = (loader.clone(), keys[*i]);
                let budget = self.budget_after(started, out[*i].is_ok());
                self.load_and_store(redis_key.clone(), move || loader.load(key), None, budget)
            }))
            .await;
            for ((i, _), value) in missing.into_iter().zip(loaded) {
                out[i] = found(value);
            }
        }
        out
    }

    /// Stores `value` under `key` for `ttl` (the config's TTL when `None`), shortened by
    /// the configured jitter. A write-through cache calls its writer first; if the writer
    /// fails, the cache is not touched.
    ///
    /// # Errors
    /// A key or codec error; a writer error; a store error.
    pub async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let entry = self.entry(self.redis_key(key)?, value, ttl)?;
        if let Some(writer) = &self.inner.writer {
            writer.write(key, value).await?;
        }
        let key = entry.key.clone();
        self.forget([key.as_str()]);
        let written = self.timed(self.inner.store.set(entry)).await;
        self.forget([key.as_str()]);
        written?;
        self.inner.metrics.add(Counter::Set, 1);
        Ok(())
    }

    /// An encoder for a value this cache stores: its codec, or raw mode's bytes or string.
    /// A binding walks its host value into it and hands the result to
    /// [`Cache::set_encoded`], so no [`Value`] is built on the way.
    pub fn encoder(&self) -> Encoder {
        self.inner.config.encoder()
    }

    /// [`Cache::set`] for a value already written by [`Cache::encoder`].
    ///
    /// # Errors
    /// As [`Cache::set`]; a codec error when `encoded` was not written for this cache.
    pub async fn set_encoded(
        &self,
        key: &str,
        encoded: Encoded,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let redis_key = self.redis_key(key)?;
        if let Some(writer) = &self.inner.writer {
            writer.write(key, &encoded.to_value()?).await?;
        }
        let value = self.seal(encoded)?;
        let ttl = self.effective_ttl(ttl)?;
        self.forget([redis_key.as_str()]);
        let written = self
            .timed(self.inner.store.set_framed(&redis_key, value, ttl))
            .await;
        self.forget([redis_key.as_str()]);
        written?;
        self.inner.metrics.add(Counter::Set, 1);
        Ok(())
    }

    /// The stored bytes of an encoded value: raw as they are, otherwise in an envelope;
    /// the room the encoder left in front of them is kept for the store's command.
    fn seal(&self, encoded: Encoded) -> Result<Framed> {
        if encoded.raw != self.inner.config.raw
            || (!encoded.raw && encoded.codec != self.inner.encode.codec)
        {
            return Err(Error::codec(
                "the value was encoded for another cache (use this cache's encoder)",
            ));
        }
        if encoded.raw {
            return Ok(encoded.payload);
        }
        let created_at_ms = self.inner.clock.now_ms();
        let meta = Meta {
            created_at_ms,
            fresh_until_ms: fresh::fresh_until(created_at_ms, self.inner.config.fresh_for),
            ..Meta::default()
        };
        codec::seal_encoded(encoded, &self.inner.encode, &meta)
    }

    /// What [`Cache::get`] would serve for `key`, before it is decoded: the stored bytes
    /// for a binding to decode with [`Cache::decode_stored`] (no host value is built twice),
    /// or a value core already holds when a loader or the near tier serves reads.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn get_stored(&self, key: &str) -> Result<Stored> {
        if self.inner.loader.is_some() || self.inner.near.is_some() {
            // Boxed: `get`'s future is twenty times the size of the plain read's, and every
            // read of a binding would carry (and move) it otherwise.
            return Box::pin(self.get(key)).await.map(Stored::Value);
        }
        let redis_key = self.redis_key(key)?;
        let bytes = self.timed(self.inner.store.get(&redis_key)).await?;
        Ok(Stored::Bytes(bytes))
    }

    /// [`Cache::get_stored`] for several keys, in order, in one round trip per node: what a
    /// binding's batched reads carry back to its own thread to decode there.
    ///
    /// # Errors
    /// As [`Cache::get_many`].
    pub async fn get_many_stored(&self, keys: &[&str]) -> Result<Vec<Stored>> {
        if self.inner.loader.is_some() || self.inner.near.is_some() {
            let values = Box::pin(self.get_many(keys)).await?;
            return Ok(values.into_iter().map(Stored::Value).collect());
        }
        let redis_keys = keys
            .iter()
            .map(|k| self.redis_key(k))
            .collect::<Result<Vec<_>>>()?;
        let fetched = self.timed(self.inner.store.get_many(&redis_keys)).await?;
        Ok(fetched.into_iter().map(Stored::Bytes).collect())
    }

    /// Decodes what [`Cache::get_stored`] returned into a host value made by `build`,
    /// counting a hit or a miss as [`Cache::get`] does: bytes that do not decode within
    /// this cache's limits are a miss plus a counted decode error. When the builder fails,
    /// nothing is counted, so a binding may decode the same bytes again with another
    /// builder.
    ///
    /// # Errors
    /// Only the builder's own error.
    pub fn decode_stored<B: Build>(
        &self,
        stored: &Stored,
        build: &mut B,
    ) -> std::result::Result<Option<B::Value>, B::Error> {
        let bytes = match stored {
            Stored::Value(value) => return value.as_ref().map(|v| v.build_into(build)).transpose(),
            Stored::Bytes(bytes) => bytes,
        };
        let metrics = &self.inner.metrics;
        let Some(bytes) = bytes else {
            metrics.add(Counter::Miss, 1);
            return Ok(None);
        };
        if self.inner.config.raw {
            let value = build.bytes(bytes)?;
            metrics.add(Counter::Hit, 1);
            return Ok(Some(value));
        }
        match codec::decode_into(bytes, &self.inner.config.decode_limits(), build) {
            Ok((header, _)) if header.meta.not_found => {
                metrics.add(Counter::NegativeHit, 1);
                Ok(None)
            }
            Ok((_, value)) => {
                metrics.add(Counter::Hit, 1);
                Ok(Some(value))
            }
            Err(codec::DecodeError::Codec(_)) => {
                metrics.add(Counter::DecodeError, 1);
                metrics.add(Counter::Miss, 1);
                Ok(None)
            }
            Err(codec::DecodeError::Host(err)) => Err(err),
        }
    }

    /// Stores several values, pipelined per node. A write-through cache calls its writer for
    /// every entry first; if any write fails, the cache is not touched.
    ///
    /// # Errors
    /// As [`Cache::set`].
    pub async fn set_many(&self, entries: &[(&str, Value)], ttl: Option<Duration>) -> Result<()> {
        let batch = entries
            .iter()
            .map(|(key, value)| self.entry(self.redis_key(key)?, value, ttl))
            .collect::<Result<Vec<_>>>()?;
        if let Some(writer) = &self.inner.writer {
            try_join_all(entries.iter().map(|(key, value)| writer.write(key, value))).await?;
        }
        let count = batch.len() as u64;
        let written_keys: Vec<String> = if self.inner.near.is_some() {
            batch.iter().map(|e| e.key.clone()).collect()
        } else {
            Vec::new()
        };
        self.forget(written_keys.iter().map(String::as_str));
        let written = self.timed(self.inner.store.set_many(batch)).await;
        self.forget(written_keys.iter().map(String::as_str));
        written?;
        self.inner.metrics.add(Counter::Set, count);
        Ok(())
    }

    /// Removes `key`; whether it was there.
    ///
    /// # Errors
    /// A key error or a store error.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let redis_key = self.redis_key(key)?;
        self.forget([redis_key.as_str()]);
        let existed = self.timed(self.inner.store.delete(&redis_key)).await;
        self.forget([redis_key.as_str()]);
        let existed = existed?;
        self.inner.metrics.add(Counter::Delete, 1);
        Ok(existed)
    }

    /// Remaining time to live of `key`; `None` when it is missing or never expires.
    ///
    /// # Errors
    /// A key error or a store error.
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        let redis_key = self.redis_key(key)?;
        self.timed(self.inner.store.ttl(&redis_key)).await
    }

    /// Cache-aside: the cached value of `key`, or the result of `loader`, which is then
    /// stored for `ttl`. Concurrent callers for one key in this process share one loader
    /// call (single-flight). When the store fails, the loader's value is still returned
    /// (the cache fails open; the failure is counted in `storeErrors`).
    ///
    /// A loader's [`Error::not_found`] is returned as it is, and stored for
    /// `negative_ttl` when that is set (see [`Cache::get_entry`]).
    ///
    /// # Errors
    /// A key error; a loader error carrying the loader's own error as its source; "not
    /// found".
    pub async fn get_or_load<F, Fut>(
        &self,
        key: &str,
        loader: F,
        ttl: Option<Duration>,
    ) -> Result<Value>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Value>>,
    {
        if self.fresh_rules_on() {
            // Freshness rules: a stale value is refreshed by this caller (the loader is
            // borrowed, it cannot run in the background; see `get_or_load_with`).
            let options = crate::LoadOptions {
                ttl,
                ..Default::default()
            };
            return self
                .resolve(key, loader, &options, Err)
                .await
                .map(|loaded| loaded.value);
        }
        let redis_key = self.redis_key(key)?;
        if let Some(hit) = self.near_hit(&redis_key, true)? {
            return Ok(hit.value().clone());
        }
        let ticket = self.near_ticket();
        let started = Instant::now();
        let read = self.timed(self.inner.store.get(&redis_key)).await;
        let budget = self.budget_after(started, read.is_ok());
        match read.map(|bytes| self.decode_read(bytes)) {
            Ok(Lookup::Value(value)) => {
                return Ok(self
                    .remember(ticket, &redis_key, Some(value.clone()))
                    .unwrap_or(value))
            }
            Ok(Lookup::NotFound) => return Err(Error::not_found()),
            Ok(Lookup::Miss) | Err(_) => {}
        }
        self.load_and_store(redis_key, loader, ttl, budget).await
    }

    /// What is left of a call's store budget (`command_timeout`) after a read that started
    /// at `started`: the write after a load draws on it, so the call's store steps together
    /// stay within one timeout. Nothing is left after a failed read: the store is failing,
    /// and the loaded value is returned without waiting on it again.
    fn budget_after(&self, started: Instant, read_ok: bool) -> Duration {
        if !read_ok {
            return Duration::ZERO;
        }
        self.inner
            .config
            .command_timeout
            .saturating_sub(started.elapsed())
    }

    /// Runs the loader through single-flight and stores its value (best effort).
    async fn load_and_store<F, Fut>(
        &self,
        redis_key: String,
        loader: F,
        ttl: Option<Duration>,
        budget: Duration,
    ) -> Result<Value>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Value>>,
    {
        let rules = self.rules(&crate::LoadOptions {
            ttl,
            ..Default::default()
        })?;
        self.load_and_store_fresh(redis_key, loader, rules, budget)
            .await
    }

    /// [`Cache::load_and_store`] under a call's freshness rules (`ttl`, `fresh_for`,
    /// `hard_timeout`). Every load (a miss, a stale refresh, a fail-safe retry) goes
    /// through here: the place where a cross-process stampede lock plugs in, inside
    /// single-flight, before the loader runs.
    async fn load_and_store_fresh<F, Fut>(
        &self,
        redis_key: String,
        loader: F,
        rules: crate::patterns::fresh::Rules,
        budget: Duration,
    ) -> Result<Value>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Value>>,
    {
        let flight_key = redis_key.clone();
        self.inner
            .flights
            .run(&flight_key, || async {
                // hard_timeout bounds the whole answer: a wait for another holder's lock
                // counts against it, and the load gets what the wait left.
                let started = Instant::now();
                let held = match self.lock_step(&redis_key, budget, rules.hard_timeout).await {
                    locked::Step::Found(found) => return found,
                    locked::Step::Load(held) => held,
                };
                self.inner.metrics.add(Counter::Load, 1);
                let load_started = Instant::now();
                let left = rules
                    .hard_timeout
                    .map(|limit| limit.saturating_sub(started.elapsed()));
                let loaded = match fresh::within(left, loader()).await {
                    Some(Err(err)) if err.is_not_found() => {
                        return Err(self.store_not_found(redis_key, held, &rules, budget).await);
                    }
                    Some(loaded) => loaded.map_err(|err| {
                        self.inner.metrics.add(Counter::LoadError, 1);
                        if err.kind() == ErrorKind::Loader {
                            err
                        } else {
                            Error::new(ErrorKind::Loader, err.to_string()).with_source(err)
                        }
                    }),
                    None => {
                        self.inner.metrics.add(Counter::LoaderTimeout, 1);
                        self.inner.metrics.add(Counter::LoadError, 1);
                        Err(fresh::hard_timeout(&redis_key, rules.hard_timeout))
                    }
                };
                let (value, entry) = match loaded.and_then(|v| {
                    Ok((
                        self.entry_fresh(
                            redis_key,
                            &v,
                            rules.ttl,
                            rules.fresh_for,
                            Some(fresh::elapsed_ms(load_started)),
                        )?,
                        v,
                    ))
                }) {
                    Ok((entry, value)) => (value, entry),
                    Err(err) => {
                        self.release_lock(held).await;
                        return Err(err);
                    }
                };
                let key = entry.key.clone();
                let written = self.write_loaded(held, entry, budget).await;
                self.forget([key.as_str()]);
                if written {
                    self.inner.metrics.add(Counter::Set, 1);
                }
                Ok(value)
            })
            .await
    }

    /// A loader said `redis_key` has no value: store that for `negative_ttl` (through the
    /// lock's fence when this load holds it), or only release the lock when negative
    /// caching is off. The "not found" for the caller.
    async fn store_not_found(
        &self,
        redis_key: String,
        held: locked::HeldLock,
        rules: &crate::patterns::fresh::Rules,
        budget: Duration,
    ) -> Error {
        if rules.negative_ttl.is_zero() || self.inner.config.raw {
            self.release_lock(held).await;
            return Error::not_found();
        }
        let meta = Meta {
            created_at_ms: self.inner.clock.now_ms(),
            ..Meta::default()
        };
        let entry = Entry {
            key: redis_key,
            value: codec::encode_not_found(&meta),
            ttl: Some(rules.negative_ttl),
        };
        let key = entry.key.clone();
        let written = self.write_loaded(held, entry, budget).await;
        self.forget([key.as_str()]);
        if written {
            self.inner.metrics.add(Counter::NegativeStored, 1);
        }
        Error::not_found()
    }

    /// A snapshot of the counters and the latency histogram.
    pub fn metrics(&self) -> MetricsSnapshot {
        let near = self.near().map(Near::stats).unwrap_or_default();
        self.inner
            .metrics
            .snapshot(self.inner.store.evictions(), near)
            .with_breakers(self.inner.store.breakers())
    }

    /// Stops accepting calls; later calls fail with a connection error. Connections close
    /// when the last clone of this cache is dropped.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        if let Some(near) = &self.inner.near {
            near.stop();
        }
    }

    fn entry(&self, redis_key: String, value: &Value, ttl: Option<Duration>) -> Result<Entry> {
        self.entry_fresh(redis_key, value, ttl, self.inner.config.fresh_for, None)
    }

    /// An entry whose envelope is fresh for `fresh_for` from now (`None`: until it expires)
    /// and records how long its load took (`load_ms`, for early refresh).
    fn entry_fresh(
        &self,
        redis_key: String,
        value: &Value,
        ttl: Option<Duration>,
        fresh_for: Option<Duration>,
        load_ms: Option<u32>,
    ) -> Result<Entry> {
        let key = redis_key;
        let value = if self.inner.config.raw {
            match value {
                Value::Bytes(b) => b.clone(),
                Value::Str(s) => s.as_bytes().to_vec(),
                other => {
                    return Err(Error::new(
                        ErrorKind::Codec,
                        format!(
                            "raw mode stores bytes or strings, not {}",
                            other.kind_name()
                        ),
                    ))
                }
            }
        } else {
            let created_at_ms = self.inner.clock.now_ms();
            let meta = Meta {
                created_at_ms,
                fresh_until_ms: fresh::fresh_until(created_at_ms, fresh_for),
                load_ms,
                ..Meta::default()
            };
            codec::encode(value, &self.inner.encode, &meta)?
        };
        Ok(Entry {
            key,
            value,
            ttl: self.effective_ttl(ttl)?,
        })
    }

    /// The TTL a write uses: the call's, else the config's; zero means no expiry in both.
    fn effective_ttl(&self, ttl: Option<Duration>) -> Result<Option<Duration>> {
        let Some(ttl) = ttl.or(self.inner.config.ttl).filter(|t| !t.is_zero()) else {
            return Ok(None);
        };
        if ttl > crate::ttl::MAX {
            return Err(Error::config(format!(
                "ttl {ttl:?} is above the maximum of {} s",
                crate::ttl::MAX.as_secs()
            )));
        }
        Ok(Some(crate::ttl::jittered(
            ttl,
            self.inner.config.jitter,
            fastrand::f64(),
        )))
    }

    /// Bytes from the store to a value (`None`: a miss, or a cached "not found").
    fn decode_counted(&self, bytes: Option<Vec<u8>>) -> Option<Value> {
        self.decode_read(bytes).value()
    }

    /// Bytes from the store to what a read found, counted: a hit, a negative hit, or a
    /// miss; undecodable bytes count as a miss and a decode error, never an error to the
    /// caller.
    fn decode_read(&self, bytes: Option<Vec<u8>>) -> Lookup {
        let metrics = &self.inner.metrics;
        let Some(bytes) = bytes else {
            metrics.add(Counter::Miss, 1);
            return Lookup::Miss;
        };
        if self.inner.config.raw {
            metrics.add(Counter::Hit, 1);
            return Lookup::Value(Value::Bytes(bytes));
        }
        match codec::decode_with(&bytes, &self.inner.config.decode_limits()) {
            Ok((header, _)) if header.meta.not_found => {
                metrics.add(Counter::NegativeHit, 1);
                Lookup::NotFound
            }
            Ok((_, value)) => {
                metrics.add(Counter::Hit, 1);
                Lookup::Value(value)
            }
            Err(_) => {
                metrics.add(Counter::DecodeError, 1);
                metrics.add(Counter::Miss, 1);
                Lookup::Miss
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Connection, "the cache is closed"));
        }
        if self.inner.fork_sensitive && store::process_id() != self.inner.opened_by {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "this cache was opened in process {} and this is a fork of it: its \
                     connections belong to the parent; open a new cache in the child",
                    self.inner.opened_by
                ),
            ));
        }
        Ok(())
    }

    /// Runs a store call, recording its latency and counting its failure.
    async fn timed<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.check_open()?;
        let started = Instant::now();
        let result = call.await;
        // A call an open breaker failed made no round trip: no latency to record.
        if !result.as_ref().is_err_and(store::is_rejected) {
            self.inner.metrics.observe(started.elapsed());
        }
        if result.is_err() {
            self.inner.metrics.add(Counter::StoreError, 1);
        }
        result
    }
}
