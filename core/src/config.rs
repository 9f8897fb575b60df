//! One `Config` for every binding: a builder in Rust, kwargs in Python, a plain object in
//! Node (serde, camelCase, durations in seconds).

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::codec::{Codec, Compression, DecodeLimits, EncodeOptions};
use crate::error::{Error, Result};
use crate::key::KeySchema;
use crate::ring::Node;

/// Everything that shapes a cache. `Default` is the embedded in-process store.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[must_use]
pub struct Config {
    /// Where values live: `memory://`, `redis://`, `rediss://`, `redis+shards://`,
    /// `redis+cluster://` (see the README for the formats).
    pub url: String,
    /// First part of every Redis key.
    pub prefix: String,
    /// Second part of every Redis key; caches with different namespaces never collide.
    pub namespace: String,
    /// User keys longer than this many UTF-8 bytes are replaced by their SHA-256.
    pub max_key_length: usize,
    /// Time to live of a value when a call gives none; `None` keeps values until evicted.
    #[serde(with = "secs_opt")]
    pub ttl: Option<Duration>,
    /// Fraction (0–1) by which each TTL is randomly shortened, so keys written together do
    /// not expire together.
    pub jitter: f64,
    /// Payload codec for new values.
    pub codec: Codec,
    /// Compression for payloads of at least `compress_threshold` bytes.
    pub compression: Compression,
    /// Smallest payload worth compressing, in bytes.
    pub compress_threshold: usize,
    /// Read and write bare bytes without the envelope (for keys shared with non-polycache
    /// programs).
    pub raw: bool,
    /// Bound on establishing a connection to Redis.
    #[serde(with = "secs")]
    pub connect_timeout: Duration,
    /// Bound on every Redis command, from send to reply (retries included).
    #[serde(with = "secs")]
    pub command_timeout: Duration,
    /// Maximum number of entries of the in-process store.
    pub memory_capacity: u64,
    /// Largest payload a read accepts after decompression, in bytes (default 64 MiB). A
    /// stored value claiming more is a miss plus a decode error, before anything is
    /// allocated.
    pub max_payload_bytes: usize,
    /// Largest memory a decoded value may take, in bytes, counted while decoding as
    /// docs/FORMAT.md §1 describes (default 256 MiB). A larger value is a miss plus a
    /// decode error.
    pub max_value_bytes: usize,
    /// The stampede lock across processes and languages (docs/FORMAT.md §6): on a miss one
    /// caller in the fleet loads while the others wait for its value. Off by default; a
    /// no-op on `memory://`, where single-flight already is the lock.
    pub stampede_lock: bool,
    /// How long a lock holder may load before another caller may take over (the lease on
    /// the `:lock` key, so a killed holder is replaced).
    #[serde(with = "secs")]
    pub lock_lease: Duration,
    /// How long a caller waits for another's load before it loads by itself.
    #[serde(with = "secs")]
    pub lock_timeout: Duration,
    /// Maximum entries of the near tier, an in-process copy of decoded values kept coherent
    /// by Redis's client-side-caching invalidations (README, "Near tier"); 0 turns it off.
    pub near_cache: u64,
    /// Bound on the near tier's memory, in bytes (an estimate of the decoded values).
    pub near_cache_bytes: u64,
    /// Maximum age of a near-tier entry: it is read from Redis again after this, even
    /// without an invalidation.
    #[serde(with = "secs")]
    pub near_cache_ttl: Duration,
    /// How long a written value is fresh (`fresh-until` in the envelope); after that and
    /// until its `ttl` it is stale: served at once while one refresh runs in the
    /// background. `None` (or 0): values are fresh until they expire.
    #[serde(with = "secs_opt")]
    pub fresh_for: Option<Duration>,
    /// Fail-safe: how long past its freshness the last value may still be served when the
    /// loader fails or Redis is unreachable; 0 turns fail-safe off.
    #[serde(with = "secs")]
    pub max_stale: Duration,
    /// Fail-safe: after a failed load, how long the last value is served before the loader
    /// is tried again (so a dead database is not hammered).
    #[serde(with = "secs")]
    pub fail_safe_backoff: Duration,
    /// When a load is slow and a fail-safe value exists: answer with it after this long and
    /// let the load finish in the background (its value is stored). `None`: wait.
    #[serde(with = "secs_opt")]
    pub soft_timeout: Option<Duration>,
    /// Give up on a load after this long: the fail-safe value, else a timeout error.
    /// `None`: no limit.
    #[serde(with = "secs_opt")]
    pub hard_timeout: Option<Duration>,
    /// Negative caching: how long a loader's "not found" is kept (an envelope that says
    /// so, docs/FORMAT.md §1), so a key with no value does not call the loader on every
    /// read. 0 (default): "not found" is returned, not stored.
    #[serde(with = "secs")]
    pub negative_ttl: Duration,
    /// Early refresh (XFetch, docs/FORMAT.md §7): a fresh read refreshes its value in the
    /// background with a probability that rises as `fresh-until` nears, weighted by the last
    /// load's duration times this; 0 (default) turns it off, 1 is the classic XFetch.
    pub early_refresh_beta: f64,
    /// Circuit breaker (README, "Circuit breaker"): after this many consecutive store
    /// failures (connection errors and timeouts) on one node, calls to that node fail fast
    /// for `breaker_cooldown`, then one call probes it. 0 (the default) turns it off.
    pub breaker_failures: u32,
    /// Circuit breaker: how long an open breaker fails calls fast before one probe.
    #[serde(with = "secs")]
    pub breaker_cooldown: Duration,
}

/// Shows every option, with the URL's credentials redacted ([`crate::redact_url`]).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Config {}", self.describe())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: "memory://".into(),
            prefix: "pc".into(),
            namespace: "default".into(),
            max_key_length: 200,
            ttl: Some(Duration::from_secs(300)),
            jitter: 0.0,
            codec: Codec::Msgpack,
            compression: Compression::Lz4,
            compress_threshold: 1024,
            raw: false,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            memory_capacity: 10_000,
            max_payload_bytes: crate::codec::DEFAULT_MAX_PAYLOAD_BYTES,
            max_value_bytes: crate::codec::DEFAULT_MAX_VALUE_BYTES,
            stampede_lock: false,
            lock_lease: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(10),
            near_cache: 0,
            near_cache_bytes: 64 << 20,
            near_cache_ttl: Duration::from_secs(60),
            fresh_for: None,
            max_stale: Duration::ZERO,
            fail_safe_backoff: Duration::from_secs(30),
            soft_timeout: None,
            hard_timeout: None,
            early_refresh_beta: 0.0,
            negative_ttl: Duration::ZERO,
            breaker_failures: 0,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// Whether a load with `options` has a soft or hard timeout (this config's unless the
    /// options set one): a binding whose loader blocks its thread then runs it on another,
    /// so the timeout can stop the wait.
    pub fn load_has_timeout(&self, options: &crate::LoadOptions) -> bool {
        let set = |given: Option<Duration>, default: Option<Duration>| {
            given.or(default).is_some_and(|d| !d.is_zero())
        };
        set(options.soft_timeout, self.soft_timeout) || set(options.hard_timeout, self.hard_timeout)
    }

    /// A config for `url`, with options given as query parameters applied
    /// (`?namespace=users&ttl=60&commandTimeout=0.5`; names in camelCase or snake_case,
    /// values percent-decoded). The store's own parameters (`weights`, `replicaReads`,
    /// redis-rs's `protocol`) stay in [`Config::url`], where the store reads them.
    ///
    /// # Errors
    /// A config error for an unknown scheme, a malformed host list, an unknown option or
    /// an invalid value.
    pub fn from_url(url: &str) -> Result<Self> {
        Config::with_overrides(url, &Map::new())
    }

    /// The config every binding builds: `url` (see [`Config::from_url`]) with `overrides`
    /// laid over its query options. `overrides` maps option names (camelCase or
    /// snake_case, as Node objects and Python kwargs spell them) to JSON values: strings,
    /// numbers (durations in seconds), booleans; `ttl` may be `null` or `0` (no expiry). A
    /// `url` entry replaces the `url` argument.
    ///
    /// ```
    /// # use polycache::Config;
    /// let overrides = serde_json::json!({"command_timeout": 0.5, "namespace": "b"});
    /// let c = Config::with_overrides("memory://?namespace=a&ttl=60", overrides.as_object().unwrap())?;
    /// assert_eq!((c.namespace.as_str(), c.ttl.unwrap().as_secs()), ("b", 60));
    /// # Ok::<(), polycache::Error>(())
    /// ```
    ///
    /// # Errors
    /// A config error naming the option for an unknown name or an invalid value, or one
    /// of [`Config::validate`]'s.
    pub fn with_overrides(url: &str, overrides: &Map<String, Json>) -> Result<Self> {
        let url = match overrides.get("url") {
            None | Some(Json::Null) => url,
            Some(Json::String(url)) => url,
            Some(other) => return Err(invalid("url", &Given::Json(other), "a string")),
        };
        let mut config = Config::parse_url(url)?;
        for (name, value) in overrides.iter().filter(|(name, _)| *name != "url") {
            config.set_option(name, &Given::Json(value))?;
        }
        config.validate()?;
        Ok(config)
    }

    /// The resolved config as canonical JSON (keys sorted, no spaces; durations in
    /// seconds; the URL's credentials redacted): what the URL vectors check in every
    /// language.
    pub fn describe(&self) -> String {
        let Ok(Json::Object(fields)) = serde_json::to_value(self) else {
            unreachable!("Config serializes to an object")
        };
        let mut sorted: std::collections::BTreeMap<String, Json> = fields.into_iter().collect();
        sorted.insert("url".into(), Json::from(self.redacted_url()));
        serde_json::to_string(&sorted).unwrap_or_default()
    }

    /// [`Config::with_overrides`] then [`Config::describe`], with the overrides as JSON
    /// text: the `resolve_config` contract function of every binding.
    ///
    /// # Errors
    /// A config error when `options_json` is not a JSON object, or one of
    /// [`Config::with_overrides`]'s.
    pub fn resolve(url: &str, options_json: &str) -> Result<String> {
        let options = match serde_json::from_str(options_json) {
            Ok(Json::Object(options)) => options,
            _ => return Err(Error::config("options must be a JSON object")),
        };
        Ok(Config::with_overrides(url, &options)?.describe())
    }

    /// The URL's options applied to the defaults, not yet validated.
    fn parse_url(url: &str) -> Result<Self> {
        let parts = UrlParts::split(url);
        let mut store_params = Vec::new();
        let mut config = Config::default();
        for (raw, name, value) in parts.params() {
            if STORE_PARAMS.contains(&name.as_ref()) {
                store_params.push(raw);
            } else {
                config.set_option(&name, &Given::Text(&value))?;
            }
        }
        config.url = parts.with_query(&store_params.join("&"));
        Ok(config)
    }

    /// Sets one option from a URL query value or an override.
    fn set_option(&mut self, name: &str, value: &Given<'_>) -> Result<()> {
        let camel = camel_case(name);
        match camel.as_ref() {
            "prefix" => self.prefix = value.string(name)?,
            "namespace" => self.namespace = value.string(name)?,
            "maxKeyLength" => self.max_key_length = value.whole(name)?,
            "ttl" => self.ttl = value.ttl(name)?,
            "jitter" => self.jitter = value.number(name)?,
            "codec" => self.codec = value.string(name)?.parse()?,
            "compression" => self.compression = value.string(name)?.parse()?,
            "compressThreshold" => self.compress_threshold = value.whole(name)?,
            "raw" => self.raw = value.boolean(name)?,
            "connectTimeout" => self.connect_timeout = value.seconds(name)?,
            "commandTimeout" => self.command_timeout = value.seconds(name)?,
            "capacity" | "memoryCapacity" => self.memory_capacity = value.whole(name)?,
            "maxPayloadBytes" => self.max_payload_bytes = value.whole(name)?,
            "maxValueBytes" => self.max_value_bytes = value.whole(name)?,
            "stampedeLock" => self.stampede_lock = value.boolean(name)?,
            "lockLease" => self.lock_lease = value.seconds(name)?,
            "lockTimeout" => self.lock_timeout = value.seconds(name)?,
            "nearCache" => self.near_cache = value.whole(name)?,
            "nearCacheBytes" => self.near_cache_bytes = value.whole(name)?,
            "nearCacheTtl" => self.near_cache_ttl = value.seconds(name)?,
            "freshFor" => self.fresh_for = value.ttl(name)?,
            "maxStale" => self.max_stale = value.seconds(name)?,
            "failSafeBackoff" => self.fail_safe_backoff = value.seconds(name)?,
            "softTimeout" => self.soft_timeout = value.ttl(name)?,
            "hardTimeout" => self.hard_timeout = value.ttl(name)?,
            "earlyRefreshBeta" => self.early_refresh_beta = value.number(name)?,
            "negativeTtl" => self.negative_ttl = value.seconds(name)?,
            "breakerFailures" => self.breaker_failures = value.whole(name)?,
            "breakerCooldown" => self.breaker_cooldown = value.seconds(name)?,
            _ => return Err(Error::config(format!("unknown option {name:?}"))),
        }
        Ok(())
    }

    /// Checks every field; [`crate::Cache`] calls this before opening a store.
    ///
    /// # Errors
    /// A config error naming the first invalid field.
    pub fn validate(&self) -> Result<()> {
        Target::parse(&self.url)?;
        self.key_schema()?;
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config("jitter must be between 0 and 1"));
        }
        if self.ttl.is_some_and(|ttl| ttl > crate::ttl::MAX) {
            return Err(Error::config(format!(
                "ttl must be at most {} s",
                crate::ttl::MAX.as_secs()
            )));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::config("timeouts must be greater than zero"));
        }
        if self.memory_capacity == 0 {
            return Err(Error::config("memoryCapacity must be at least 1"));
        }
        if self.near_cache > 0 && (self.near_cache_bytes == 0 || self.near_cache_ttl.is_zero()) {
            return Err(Error::config(
                "nearCacheBytes and nearCacheTtl must be greater than zero when nearCache is on",
            ));
        }
        if self.raw && (self.fresh_for.is_some() || !self.max_stale.is_zero()) {
            return Err(Error::config(
                "freshFor and maxStale need the envelope: raw mode cannot have them",
            ));
        }
        if !(self.early_refresh_beta.is_finite() && self.early_refresh_beta >= 0.0) {
            return Err(Error::config(
                "earlyRefreshBeta must be a number at least 0",
            ));
        }
        if self.negative_ttl > crate::ttl::MAX {
            return Err(Error::config(format!(
                "negativeTtl must be at most {} s",
                crate::ttl::MAX.as_secs()
            )));
        }
        if self.fresh_for.is_some_and(|fresh| fresh > crate::ttl::MAX) {
            return Err(Error::config(format!(
                "freshFor must be at most {} s",
                crate::ttl::MAX.as_secs()
            )));
        }
        if self.lock_lease < Duration::from_millis(1) {
            return Err(Error::config("lockLease must be at least 0.001 s"));
        }
        if self.max_payload_bytes == 0 || self.max_value_bytes == 0 {
            return Err(Error::config(
                "maxPayloadBytes and maxValueBytes must be at least 1",
            ));
        }
        Ok(())
    }

    /// The URL as it may be shown to humans: credentials replaced by `***`.
    pub fn redacted_url(&self) -> String {
        crate::redact_url(&self.url)
    }

    /// The key schema of this config's prefix, namespace and maximum key length.
    ///
    /// # Errors
    /// A config error for an empty prefix or namespace or one with braces.
    pub fn key_schema(&self) -> Result<KeySchema> {
        KeySchema::new(&self.prefix, &self.namespace, self.max_key_length)
    }

    /// The bounds every read applies to stored bytes.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_payload_bytes: self.max_payload_bytes,
            max_value_bytes: self.max_value_bytes,
        }
    }

    /// An encoder for a value a cache with this config stores: its codec, or raw mode's
    /// bytes or string (what [`crate::Cache::encoder`] returns, before any connection).
    /// It leaves [`crate::codec::HEADROOM`] in front of the payload for the envelope
    /// header and the store's `SET` head.
    pub fn encoder(&self) -> crate::codec::Encoder {
        if self.raw {
            return crate::codec::Encoder::raw().with_room(crate::codec::HEADROOM);
        }
        let encoder = crate::codec::Encoder::new(self.codec).with_room(crate::codec::HEADROOM);
        match self.compression {
            crate::codec::Compression::Lz4 => encoder.compress_ahead(self.compress_threshold),
            crate::codec::Compression::None => encoder,
        }
    }

    pub(crate) fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            codec: self.codec,
            compression: self.compression,
            compress_threshold: self.compress_threshold,
        }
    }

    /// Sets the URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }
    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }
    /// Sets the default TTL (`None`: no expiry).
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }
    /// Sets the TTL jitter fraction.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }
    /// Sets the codec.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }
    /// Sets the compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
    /// Sets the compression threshold in bytes.
    pub fn compress_threshold(mut self, bytes: usize) -> Self {
        self.compress_threshold = bytes;
        self
    }
    /// Switches raw mode (no envelope).
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Sets the command timeout.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }
    /// Sets the in-process store's capacity in entries.
    pub fn memory_capacity(mut self, entries: u64) -> Self {
        self.memory_capacity = entries;
        self
    }
    /// Sets the maximum user-key length in bytes.
    pub fn max_key_length(mut self, bytes: usize) -> Self {
        self.max_key_length = bytes;
        self
    }
    /// Sets the largest payload a read accepts after decompression, in bytes.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }
    /// Sets the largest memory a decoded value may take, in bytes.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }
    /// Turns the cross-process stampede lock on or off.
    pub fn stampede_lock(mut self, on: bool) -> Self {
        self.stampede_lock = on;
        self
    }
    /// Sets the lock's lease (how long a holder may load before others take over).
    pub fn lock_lease(mut self, lease: Duration) -> Self {
        self.lock_lease = lease;
        self
    }
    /// Sets how long a caller waits for another's load before loading by itself.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
    /// Turns the near tier on with at most `entries` entries (0: off).
    pub fn near_cache(mut self, entries: u64) -> Self {
        self.near_cache = entries;
        self
    }
    /// Sets the near tier's memory bound in bytes.
    pub fn near_cache_bytes(mut self, bytes: u64) -> Self {
        self.near_cache_bytes = bytes;
        self
    }
    /// Sets the maximum age of a near-tier entry.
    pub fn near_cache_ttl(mut self, ttl: Duration) -> Self {
        self.near_cache_ttl = ttl;
        self
    }
    /// Sets how long written values are fresh (`None`: until they expire).
    pub fn fresh_for(mut self, fresh_for: Option<Duration>) -> Self {
        self.fresh_for = fresh_for.filter(|d| !d.is_zero());
        self
    }
    /// Sets how long past its freshness a fail-safe value may be served (0: off).
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }
    /// Sets how long a slow load may run before a fail-safe value answers (`None`: wait).
    pub fn soft_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.soft_timeout = timeout.filter(|d| !d.is_zero());
        self
    }
    /// Sets how long a load may run at all (`None`: no limit).
    pub fn hard_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.hard_timeout = timeout.filter(|d| !d.is_zero());
        self
    }
    /// Sets the early refresh weight (XFetch `beta`; 0: off).
    pub fn early_refresh_beta(mut self, beta: f64) -> Self {
        self.early_refresh_beta = beta;
        self
    }
    /// Sets how long a loader's "not found" is cached (0: not cached).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }
    /// Sets how long a fail-safe value is served before the loader is tried again.
    pub fn fail_safe_backoff(mut self, backoff: Duration) -> Self {
        self.fail_safe_backoff = backoff;
        self
    }
    /// Turns the circuit breaker on: a node's breaker opens after `failures` consecutive
    /// connection errors or timeouts (0: off).
    pub fn breaker_failures(mut self, failures: u32) -> Self {
        self.breaker_failures = failures;
        self
    }
    /// Sets how long an open breaker fails calls fast before one call probes the node.
    pub fn breaker_cooldown(mut self, cooldown: Duration) -> Self {
        self.breaker_cooldown = cooldown;
        self
    }
}

impl crate::LoadOptions {
    /// The per-call options every binding reads (Python kwargs, a Node options object, the
    /// WIT record): `ttl`, `fresh_for`, `max_stale`, `fail_safe_backoff`, `soft_timeout`,
    /// `hard_timeout`, `negative_ttl` (seconds) and `early_refresh_beta`, camelCase or snake_case, as JSON
    /// values. `null` (or a missing name) takes the cache's value; `0` turns the option off
    /// for the call (`ttl: 0`: no expiry). The names and checks are [`Config`]'s, so a bad
    /// value is the same config error as in the cache's options.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let given = serde_json::json!({"fresh_for": 1.5, "hardTimeout": 2, "max_stale": null});
    /// let options = polycache::LoadOptions::from_overrides(given.as_object().unwrap())?;
    /// assert_eq!(options.fresh_for, Some(Duration::from_millis(1500)));
    /// assert_eq!((options.hard_timeout, options.max_stale), (Some(Duration::from_secs(2)), None));
    /// # Ok::<(), polycache::Error>(())
    /// ```
    ///
    /// # Errors
    /// A config error naming the option for an unknown name or an invalid value.
    pub fn from_overrides(overrides: &Map<String, Json>) -> Result<Self> {
        let mut options = crate::LoadOptions::default();
        for (name, value) in overrides {
            if value.is_null() {
                continue;
            }
            let given = Given::Json(value);
            match camel_case(name).as_ref() {
                "ttl" => {
                    let secs = given.number(name)?;
                    options.ttl = Some(crate::ttl::from_secs(secs)?);
                }
                "freshFor" => {
                    let secs = given.number(name)?;
                    options.fresh_for = Some(crate::ttl::from_secs(secs).map_err(|_| {
                        invalid(
                            name,
                            &given,
                            "a number of seconds from 0 to the maximum TTL",
                        )
                    })?);
                }
                "negativeTtl" => {
                    let secs = given.number(name)?;
                    options.negative_ttl = Some(crate::ttl::from_secs(secs).map_err(|_| {
                        invalid(
                            name,
                            &given,
                            "a number of seconds from 0 to the maximum TTL",
                        )
                    })?);
                }
                "maxStale" => options.max_stale = Some(given.seconds(name)?),
                "failSafeBackoff" => options.fail_safe_backoff = Some(given.seconds(name)?),
                "softTimeout" => options.soft_timeout = Some(given.seconds(name)?),
                "hardTimeout" => options.hard_timeout = Some(given.seconds(name)?),
                "earlyRefreshBeta" => {
                    let beta = given.number(name)?;
                    if beta < 0.0 {
                        return Err(invalid(name, &given, "a number at least 0"));
                    }
                    options.early_refresh_beta = Some(beta);
                }
                _ => return Err(Error::config(format!("unknown per-call option {name:?}"))),
            }
        }
        Ok(options)
    }
}

/// Where a URL points, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Memory,
    /// One node; the URL is passed to redis-rs as is.
    Redis(String),
    /// Independent nodes behind the ring: per-node redis-rs URLs and ring nodes.
    Shards(Vec<(String, Node)>),
    /// Seed nodes of a Redis Cluster, as redis-rs URLs.
    Cluster(Vec<String>),
    /// A master found through Redis Sentinel.
    Sentinel(SentinelTarget),
}

/// `redis+sentinel://[user:pass@]s1:p1,s2:p2/<master name>[/<db>]`: the sentinels' addresses,
/// the name they monitor, and how to reach the data nodes (the credentials and database
/// are the data nodes'; the sentinels are asked without them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    pub(crate) sentinels: Vec<String>,
    pub(crate) master_name: String,
    /// `?replicaReads=true`: reads go to a replica (default false).
    pub(crate) replica_reads: bool,
    node_scheme: String,
    auth: String,
    db: String,
    /// redis-rs's own parameters for the data nodes (`?protocol=…`, `#insecure`).
    node_params: String,
}

impl SentinelTarget {
    /// The redis-rs URL of the data node at `addr` (`host:port`).
    #[cfg(feature = "redis")]
    pub(crate) fn node_url(&self, addr: &str) -> String {
        format!(
            "{}://{}{addr}{}{}",
            self.node_scheme, self.auth, self.db, self.node_params
        )
    }

    fn parse(url: &str, scheme: &str, rest: &str, params: StoreParams) -> Result<SentinelTarget> {
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let mut parts = rest.split('/');
        let sentinels: Vec<String> = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        let master_name = parts.next().unwrap_or_default().to_owned();
        let db = parts.next().filter(|db| !db.is_empty());
        if sentinels.is_empty() || master_name.is_empty() || parts.next().is_some() {
            return Err(Error::config(format!(
                "{:?} is not a Sentinel URL (expected {scheme}://host:port,…/master-name[/db])",
                url.split_once('@').map_or(url, |(_, hosts)| hosts)
            )));
        }
        Ok(SentinelTarget {
            sentinels,
            master_name,
            replica_reads: params.replica_reads,
            node_scheme: scheme.split_once('+').map_or(scheme, |(s, _)| s).to_owned(),
            auth,
            db: db.map(|db| format!("/{db}")).unwrap_or_default(),
            node_params: params.node_params,
        })
    }
}

/// The store parameters of a URL ([`STORE_PARAMS`]), decoded and checked against its
/// scheme.
#[derive(Default)]
struct StoreParams {
    weights: Option<String>,
    replica_reads: bool,
    /// What every node URL built from a host list carries for redis-rs: `?protocol=…`
    /// and the fragment (`#insecure`), as the user wrote them.
    node_params: String,
}

impl StoreParams {
    fn parse(scheme: &str, parts: &UrlParts<'_>) -> Result<Self> {
        let mut params = StoreParams::default();
        let mut protocol = "";
        for (raw, name, value) in parts.params() {
            match name.as_ref() {
                // redis-rs's own parameter, read by redis-rs.
                "protocol" if scheme != "memory" => {
                    if !["2", "3", "resp2", "resp3"].contains(&value.as_ref()) {
                        return Err(Error::config(format!(
                            "invalid value {value:?} for URL parameter protocol: expected resp2 or resp3"
                        )));
                    }
                    protocol = raw;
                }
                "weights" if scheme.ends_with("+shards") => {
                    params.weights = Some(value.into_owned());
                }
                "replicaReads" if scheme.ends_with("+sentinel") => {
                    params.replica_reads = Given::Text(&value).boolean("replicaReads")?;
                }
                name => {
                    return Err(Error::config(format!(
                        "{name:?} is not a parameter of a {scheme}:// URL"
                    )))
                }
            }
        }
        if !protocol.is_empty() {
            params.node_params = format!("?{protocol}");
        }
        params.node_params.push_str(parts.fragment);
        Ok(params)
    }
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let (scheme, _) = url.split_once("://").ok_or_else(|| {
            Error::config(format!(
                "{:?} is not a URL (expected scheme://…)",
                crate::redact_url(url)
            ))
        })?;
        let known = [
            "memory",
            "redis",
            "rediss",
            "redis+shards",
            "rediss+shards",
            "redis+cluster",
            "rediss+cluster",
            "redis+sentinel",
            "rediss+sentinel",
        ];
        if !known.contains(&scheme) {
            return Err(Error::config(format!(
                "unknown URL scheme {scheme:?} (expected memory, redis, rediss, redis+shards, redis+cluster, redis+sentinel)"
            )));
        }
        let parts = UrlParts::split(url);
        let params = StoreParams::parse(scheme, &parts)?;
        let rest = &parts.head[scheme.len() + 3..];
        let (node_scheme, kind) = scheme.split_once('+').unwrap_or((scheme, ""));
        match kind {
            _ if scheme == "memory" => Ok(Target::Memory),
            // redis-rs reads the whole URL itself.
            "" => Ok(Target::Redis(url.to_owned())),
            "sentinel" => Ok(Target::Sentinel(SentinelTarget::parse(
                url, scheme, rest, params,
            )?)),
            _ => {
                let (auth, rest) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                let (hosts, db) = match rest.split_once('/') {
                    Some((hosts, db)) => (hosts, format!("/{db}")),
                    None => (rest, String::new()),
                };
                let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
                if hosts.is_empty() {
                    return Err(Error::config(format!(
                        "{:?} names no hosts",
                        crate::redact_url(url)
                    )));
                }
                let urls = hosts
                    .iter()
                    .map(|host| format!("{node_scheme}://{auth}{host}{db}{}", params.node_params));
                if kind == "cluster" {
                    return Ok(Target::Cluster(urls.collect()));
                }
                let weights = parse_weights(params.weights.as_deref(), hosts.len())?;
                Ok(Target::Shards(
                    urls.zip(hosts.iter().zip(weights))
                        .map(|(url, (host, weight))| {
                            (
                                url,
                                Node {
                                    name: (*host).to_owned(),
                                    weight,
                                },
                            )
                        })
                        .collect(),
                ))
            }
        }
    }
}

fn parse_weights(list: Option<&str>, hosts: usize) -> Result<Vec<u32>> {
    let Some(list) = list else {
        return Ok(vec![1; hosts]);
    };
    let weights: Vec<u32> = list
        .split(',')
        .map(|w| w.parse().ok().filter(|&w| w > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::config(format!("invalid weights {list:?}")))?;
    if weights.len() != hosts {
        return Err(Error::config(format!(
            "{} weights given for {hosts} hosts",
            weights.len()
        )));
    }
    Ok(weights)
}

/// URL query parameters that belong to the store, not to [`Config`]'s fields: they stay
/// in [`Config::url`] and [`Target::parse`] checks them against the scheme.
const STORE_PARAMS: [&str; 3] = ["weights", "replicaReads", "protocol"];

/// `snake_case` → `camelCase`; camelCase names pass unchanged.
fn camel_case(name: &str) -> Cow<'_, str> {
    if !name.contains('_') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An option's value: text from a URL query, or JSON from a binding's overrides. Text is
/// parsed; JSON must already have the right type (`"60"` is not a TTL in an object).
enum Given<'a> {
    Text(&'a str),
    Json(&'a Json),
}

impl std::fmt::Display for Given<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Given::Text(text) => write!(f, "{text:?}"),
            Given::Json(json) => write!(f, "{json}"),
        }
    }
}

fn invalid(name: &str, value: &Given<'_>, expected: &str) -> Error {
    Error::config(format!(
        "invalid value {value} for option {name}: expected {expected}"
    ))
}

impl Given<'_> {
    fn string(&self, name: &str) -> Result<String> {
        match self {
            Given::Text(text) => Ok((*text).to_owned()),
            Given::Json(Json::String(text)) => Ok(text.clone()),
            _ => Err(invalid(name, self, "a string")),
        }
    }

    fn number(&self, name: &str) -> Result<f64> {
        let number = match self {
            Given::Text(text) => text.parse::<f64>().ok(),
            Given::Json(json) => json.as_f64(),
        };
        number
            .filter(|n| n.is_finite())
            .ok_or_else(|| invalid(name, self, "a finite number"))
    }

    fn whole<T: TryFrom<u64>>(&self, name: &str) -> Result<T> {
        let whole = match self {
            Given::Text(text) => text.parse::<u64>().ok(),
            Given::Json(json) => json.as_u64().or_else(|| {
                // JS numbers and Python floats such as 1024.0.
                json.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < u64::MAX as f64)
                    .map(|f| f as u64)
            }),
        };
        whole
            .and_then(|w| T::try_from(w).ok())
            .ok_or_else(|| invalid(name, self, "a whole number at least 0"))
    }

    fn boolean(&self, name: &str) -> Result<bool> {
        match self {
            Given::Text("true") | Given::Json(Json::Bool(true)) => Ok(true),
            Given::Text("false") | Given::Json(Json::Bool(false)) => Ok(false),
            _ => Err(invalid(name, self, "true or false")),
        }
    }

    fn seconds(&self, name: &str) -> Result<Duration> {
        Duration::try_from_secs_f64(self.number(name)?)
            .map_err(|_| invalid(name, self, "a number of seconds at least 0"))
    }

    /// `null` and `0` mean no expiry; otherwise [`crate::ttl::from_secs`]'s rule.
    fn ttl(&self, name: &str) -> Result<Option<Duration>> {
        if let Given::Json(Json::Null) = self {
            return Ok(None);
        }
        let secs = match self {
            Given::Text(text) => text.parse::<f64>().ok(),
            Given::Json(json) => json.as_f64(),
        }
        .ok_or_else(|| invalid(name, self, "a number of seconds"))?;
        Ok(Some(crate::ttl::from_secs(secs)?).filter(|d| !d.is_zero()))
    }
}

/// A URL cut where polycache reads it: `<head>[?<query>][#<fragment>]`.
struct UrlParts<'a> {
    head: &'a str,
    query: &'a str,
    /// `#…` or empty (redis-rs reads `rediss://…/#insecure`).
    fragment: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Self {
        // The authority (user info included, where `/`, `?` and `#` must be escaped, as
        // for redis-rs's parser) ends at the first of them.
        let authority = url.find("://").map_or(0, |i| i + 3);
        let rest = authority
            + url[authority..]
                .find(['/', '?', '#'])
                .unwrap_or(url.len() - authority);
        let (before_fragment, fragment) = match url[rest..].find('#') {
            Some(i) => url.split_at(rest + i),
            None => (url, ""),
        };
        let (head, query) = match before_fragment[rest..].find('?') {
            Some(i) => (&url[..rest + i], &before_fragment[rest + i + 1..]),
            None => (before_fragment, ""),
        };
        UrlParts {
            head,
            query,
            fragment,
        }
    }

    /// Every query parameter: the raw `name=value` text and its decoded name and value
    /// (percent-decoding and `+` as space, as redis-rs's `url` crate reads them).
    fn params(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>, Cow<'a, str>)> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (name, value) = form_urlencoded::parse(pair.as_bytes()).next()?;
                Some((pair, name, value))
            })
    }

    /// The URL with `query` in place of its own.
    fn with_query(&self, query: &str) -> String {
        let mut url = self.head.to_owned();
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url.push_str(self.fragment);
        url
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

mod secs_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    /// `null` or `0` mean "no expiry".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(secs) => crate::ttl::from_secs(secs)
                .map(|d| Some(d).filter(|d| !d.is_zero()))
                .map_err(|e| serde::de::Error::custom(e.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls() {
        let t = Target::parse("redis+sentinel://:pw@a:1,b:2/mymaster/3").unwrap();
        let Target::Sentinel(t) = t else {
            panic!("not a sentinel target")
        };
        assert_eq!(t.sentinels, ["a:1", "b:2"]);
        assert_eq!(t.master_name, "mymaster");
        assert_eq!(t.node_url("m:9"), "redis://:pw@m:9/3");
        assert!(!t.replica_reads);
        let c = Config::from_url("redis+sentinel://a:1/m?replicaReads=true&ttl=5").unwrap();
        let Target::Sentinel(t) = Target::parse(&c.url).unwrap() else {
            panic!("not a sentinel target")
        };
        assert!(t.replica_reads);
        assert!(Config::from_url("redis://a:1?replicaReads=true").is_err());
        let t = Target::parse("rediss+sentinel://a:1/m").unwrap();
        let Target::Sentinel(t) = t else {
            panic!("not a sentinel target")
        };
        assert_eq!(t.node_url("m:9"), "rediss://m:9");
        for bad in [
            "redis+sentinel://a:1",
            "redis+sentinel://a:1/",
            "redis+sentinel:///m",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let err = Target::parse("redis+sentinel://:secret@a:1").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn url_options_and_host_lists() {
        let c = Config::from_url("redis://127.0.0.1:6379/0?namespace=users&ttl=60").unwrap();
        assert_eq!(c.namespace, "users");
        assert_eq!(c.ttl, Some(Duration::from_secs(60)));
        assert_eq!(c.url, "redis://127.0.0.1:6379/0");

        let t = Target::parse("redis+shards://:pw@a:1,b:2/3?weights=1,2").unwrap();
        let Target::Shards(nodes) = t else {
            panic!("not shards")
        };
        assert_eq!(nodes[0].0, "redis://:pw@a:1/3");
        assert_eq!(
            nodes[1].1,
            Node {
                name: "b:2".into(),
                weight: 2
            }
        );

        assert!(Config::from_url("mongodb://x").is_err());
        assert!(Config::from_url("redis://x?bogus=1").is_err());
        assert!(Config::from_url("redis+shards://a:1,b:2?weights=1").is_err());
    }

    #[test]
    fn url_queries_are_decoded_and_store_parameters_kept() {
        let c = Config::from_url("redis://h:1/2?name%73pace=a%20b+c&max_key_length=9").unwrap();
        assert_eq!((c.namespace.as_str(), c.max_key_length), ("a b c", 9));
        assert_eq!(c.url, "redis://h:1/2");

        let c = Config::from_url("rediss://:p%40ss@h:1/?protocol=resp3&ttl=0#insecure").unwrap();
        assert_eq!(c.url, "rediss://:p%40ss@h:1/?protocol=resp3#insecure");
        assert_eq!(c.ttl, None);
        assert!(Config::from_url("redis://h?protocol=resp9").is_err());
        assert!(Config::from_url("memory://?protocol=resp3").is_err());

        let c = Config::from_url("redis+shards://a:1,b:2?weights=1%2C3&protocol=3").unwrap();
        let Target::Shards(nodes) = Target::parse(&c.url).unwrap() else {
            panic!("not shards")
        };
        assert_eq!(nodes[1].0, "redis://b:2?protocol=3");
        assert_eq!(nodes[1].1.weight, 3);
        let c = Config::from_url("rediss+cluster://a:1,b:2/0#insecure").unwrap();
        let Target::Cluster(seeds) = Target::parse(&c.url).unwrap() else {
            panic!("not a cluster")
        };
        assert_eq!(
            seeds,
            ["rediss://a:1/0#insecure", "rediss://b:2/0#insecure"]
        );
    }

    #[test]
    fn overrides_win_and_name_the_bad_option() {
        let overrides = serde_json::json!({
            "namespace": "b", "ttl": null, "command_timeout": 0.25, "codec": "json", "raw": true
        });
        let c = Config::with_overrides(
            "memory://?namespace=a&ttl=5",
            overrides.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(c.namespace, "b");
        assert_eq!(c.ttl, None);
        assert_eq!(c.command_timeout, Duration::from_millis(250));
        assert_eq!((c.codec, c.raw), (Codec::Json, true));

        for (name, value) in [
            ("bogus", serde_json::json!(1)),
            ("ttl", serde_json::json!("60")),
            ("ttl", serde_json::json!(-1)),
            ("maxKeyLength", serde_json::json!(1.5)),
            ("codec", serde_json::json!("xml")),
            ("connect_timeout", serde_json::json!(-1)),
        ] {
            let mut overrides = Map::new();
            overrides.insert(name.into(), value);
            let err = Config::with_overrides("memory://", &overrides).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{name}");
        }
        let err = Config::from_url("redis://h?bogus=1").unwrap_err();
        assert!(err.message().contains("bogus"), "{err}");

        let mut url = Map::new();
        url.insert("url".into(), Json::from("redis://h?bogus=1"));
        assert!(Config::with_overrides("memory://", &url).is_err());
    }

    #[test]
    fn resolve_is_sorted_json_without_the_password() {
        let json = Config::resolve("redis://:secret@h:1?ttl=1.5", r#"{"jitter":0.5}"#).unwrap();
        assert!(!json.contains("secret"), "{json}");
        let value: Json = serde_json::from_str(&json).unwrap();
        assert_eq!(value["ttl"], 1.5);
        assert_eq!(value["url"], "redis://***@h:1");
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(Config::resolve("memory://", "[]").is_err());
    }

    #[test]
    fn serde_uses_camel_case_and_seconds() {
        let c: Config =
            serde_json::from_str(r#"{"url":"memory://","commandTimeout":0.25,"ttl":null}"#)
                .unwrap();
        assert_eq!(c.command_timeout, Duration::from_millis(250));
        assert_eq!(c.ttl, None);
        assert!(serde_json::from_str::<Config>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn decode_caps_have_safe_defaults_and_every_spelling() {
        let d = Config::default();
        assert_eq!(d.max_payload_bytes, 64 << 20);
        assert_eq!(d.max_value_bytes, 256 << 20);
        assert_eq!(d.decode_limits(), DecodeLimits::default());

        let c = Config::from_url("memory://?maxPayloadBytes=1024&maxValueBytes=4096").unwrap();
        assert_eq!((c.max_payload_bytes, c.max_value_bytes), (1024, 4096));
        let c: Config =
            serde_json::from_str(r#"{"maxPayloadBytes":10,"maxValueBytes":20}"#).unwrap();
        assert_eq!(c.decode_limits().max_payload_bytes, 10);
        assert_eq!(c.decode_limits().max_value_bytes, 20);
        let c = Config::default().max_payload_bytes(7).max_value_bytes(9);
        assert_eq!((c.max_payload_bytes, c.max_value_bytes), (7, 9));

        assert!(Config::from_url("memory://?maxValueBytes=0").is_err());
        assert!(Config::from_url("memory://?maxPayloadBytes=-1").is_err());
    }

    #[test]
    fn near_tier_options_in_every_spelling() {
        let d = Config::default();
        assert_eq!(d.near_cache, 0, "off by default");
        let c = Config::from_url("redis://a:1?nearCache=100&nearCacheBytes=4096&nearCacheTtl=2.5")
            .unwrap();
        assert_eq!(c.near_cache, 100);
        assert_eq!(c.near_cache_bytes, 4096);
        assert_eq!(c.near_cache_ttl, Duration::from_millis(2500));
        let s = Config::from_url("redis://a:1?near_cache=7&near_cache_ttl=1").unwrap();
        assert_eq!(
            (s.near_cache, s.near_cache_ttl),
            (7, Duration::from_secs(1))
        );
        let options = serde_json::json!({"nearCache": 5, "near_cache_bytes": 9, "nearCacheTtl": 3});
        let j = Config::with_overrides("redis://a:1", options.as_object().unwrap()).unwrap();
        assert_eq!((j.near_cache, j.near_cache_bytes), (5, 9));
        assert_eq!(j.near_cache_ttl, Duration::from_secs(3));
        let b = Config::default()
            .near_cache(3)
            .near_cache_bytes(10)
            .near_cache_ttl(Duration::from_secs(4));
        assert_eq!((b.near_cache, b.near_cache_bytes), (3, 10));
        assert!(Config::from_url("redis://a:1?nearCache=1&nearCacheTtl=0").is_err());
        assert!(Config::from_url("redis://a:1?nearCache=1&nearCacheBytes=0").is_err());
    }

    #[test]
    fn lock_options_in_every_spelling() {
        let d = Config::default();
        assert!(!d.stampede_lock, "off by default");
        let c =
            Config::from_url("redis://a:1?stampedeLock=true&lockLease=2.5&lock_timeout=1").unwrap();
        assert!(c.stampede_lock);
        assert_eq!(c.lock_lease, Duration::from_millis(2500));
        assert_eq!(c.lock_timeout, Duration::from_secs(1));
        let options = serde_json::json!({"stampede_lock": true, "lockLease": 3, "lockTimeout": 0});
        let j = Config::with_overrides("redis://a:1", options.as_object().unwrap()).unwrap();
        assert_eq!(
            (j.stampede_lock, j.lock_lease),
            (true, Duration::from_secs(3))
        );
        assert_eq!(j.lock_timeout, Duration::ZERO);
        assert!(Config::from_url("redis://a:1?lockLease=0").is_err());
    }

    #[test]
    fn breaker_options_in_every_spelling() {
        let d = Config::default();
        assert_eq!(d.breaker_failures, 0, "off by default");
        assert_eq!(d.breaker_cooldown, Duration::from_secs(1));
        let c = Config::from_url("redis://a:1?breakerFailures=5&breaker_cooldown=2.5").unwrap();
        assert_eq!(c.breaker_failures, 5);
        assert_eq!(c.breaker_cooldown, Duration::from_millis(2500));
        let options = serde_json::json!({"breaker_failures": 3.0, "breakerCooldown": 0});
        let j = Config::with_overrides("redis://a:1", options.as_object().unwrap()).unwrap();
        assert_eq!(
            (j.breaker_failures, j.breaker_cooldown),
            (3, Duration::ZERO)
        );
        let b = Config::default()
            .breaker_failures(2)
            .breaker_cooldown(Duration::from_secs(4));
        assert_eq!((b.breaker_failures, b.breaker_cooldown.as_secs()), (2, 4));
        assert!(Config::from_url("redis://a:1?breakerFailures=-1").is_err());
        assert!(Config::from_url("redis://a:1?breakerFailures=1.5").is_err());
        assert!(Config::from_url("redis://a:1?breakerCooldown=-1").is_err());
    }

    #[test]
    fn per_call_options_are_read_and_checked_as_the_cache_options_are() {
        let given = serde_json::json!({
            "ttl": 0, "freshFor": 1.5, "max_stale": 60, "failSafeBackoff": null,
            "soft_timeout": 0, "hardTimeout": 2, "earlyRefreshBeta": 1
        });
        let options = crate::LoadOptions::from_overrides(given.as_object().unwrap()).unwrap();
        assert_eq!(
            options,
            crate::LoadOptions {
                ttl: Some(Duration::ZERO),
                fresh_for: Some(Duration::from_millis(1500)),
                max_stale: Some(Duration::from_secs(60)),
                fail_safe_backoff: None,
                soft_timeout: Some(Duration::ZERO),
                hard_timeout: Some(Duration::from_secs(2)),
                early_refresh_beta: Some(1.0),
                negative_ttl: None,
            }
        );
        for bad in [
            serde_json::json!({"freshFor": -1}),
            serde_json::json!({"maxStale": "soon"}),
            serde_json::json!({"hardTimeout": "NaN"}),
            serde_json::json!({"failSafeBackoff": true}),
            serde_json::json!({"earlyRefreshBeta": -0.5}),
            serde_json::json!({"ttl": 1e12}),
            serde_json::json!({"freshFro": 1}),
        ] {
            let err = crate::LoadOptions::from_overrides(bad.as_object().unwrap()).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{bad}: {err}");
        }
    }
}
