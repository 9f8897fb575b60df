//! The `cache` interface: a core [`polycache::Cache`] on blocking stores, one call at a
//! time on the component's thread.

use std::time::Duration;

use polycache::store::BreakerState;
use polycache::{
    block_on, Config, Error, ErrorKind, Freshness, Io, LoadedEntry, MetricsSnapshot, Value,
};
use serde_json::{Map, Value as Json};

use crate::bindings::exports::polycache::cache::cache::{
    BreakerState as WitBreakerState, Cache, Entry, Freshness as WitFreshness, Guest, GuestCache,
    LatencyBucket, LoadOptions, Metrics, Options,
};
use crate::bindings::polycache::cache::loader;
use crate::bindings::polycache::cache::types::Error as WitError;
use crate::envelope::{codec_from_wit, compression_from_wit};
use crate::errors::wit;
use crate::{value, Component};

impl Guest for Component {
    type Cache = CacheResource;
}

/// The `cache` resource.
#[derive(Debug)]
pub(crate) struct CacheResource {
    cache: polycache::Cache,
}

impl GuestCache for CacheResource {
    fn open(url: String, options: Options) -> Result<Cache, WitError> {
        let read_through = options.read_through == Some(true);
        let config = wit(config(&url, options))?;
        let mut builder = polycache::Cache::builder(config).io(Io::Blocking);
        if read_through {
            builder = builder.loader(|key: String| async move { load(&key) });
        }
        let cache = wit(block_on(builder.build()))?;
        Ok(Cache::new(CacheResource { cache }))
    }

    fn get(&self, key: String) -> Result<Option<Vec<u8>>, WitError> {
        let found = wit(block_on(self.cache.get(&key)))?;
        Ok(found.as_ref().map(value::to_wit))
    }

    fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, WitError> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = wit(block_on(self.cache.get_many(&keys)))?;
        Ok(found
            .iter()
            .map(|v| v.as_ref().map(value::to_wit))
            .collect())
    }

    fn set(&self, key: String, value: Vec<u8>, ttl: Option<f64>) -> Result<(), WitError> {
        let value = wit(value::from_wit(&value))?;
        let ttl = wit(seconds(ttl))?;
        wit(block_on(self.cache.set(&key, &value, ttl)))
    }

    fn set_many(&self, entries: Vec<(String, Vec<u8>)>, ttl: Option<f64>) -> Result<(), WitError> {
        let entries = entries
            .iter()
            .map(|(key, v)| value::from_wit(v).map(|v| (key.as_str(), v)))
            .collect::<polycache::Result<Vec<_>>>();
        let entries = wit(entries)?;
        let ttl = wit(seconds(ttl))?;
        wit(block_on(self.cache.set_many(&entries, ttl)))
    }

    fn delete(&self, key: String) -> Result<bool, WitError> {
        wit(block_on(self.cache.delete(&key)))
    }

    fn ttl(&self, key: String) -> Result<Option<f64>, WitError> {
        let ttl = wit(block_on(self.cache.ttl(&key)))?;
        Ok(ttl.map(|d| d.as_secs_f64()))
    }

    /// `none` for "not found" (the loader's, or a cached one).
    fn get_or_load(&self, key: String, options: LoadOptions) -> Result<Option<Vec<u8>>, WitError> {
        let entry = self.get_entry(key, options)?;
        Ok(entry.found.then_some(entry.value))
    }

    fn get_entry(&self, key: String, options: LoadOptions) -> Result<Entry, WitError> {
        let options = wit(load_options(options))?;
        // No thread to refresh on: a stale value's refresh runs in the call that claims it.
        let loader_key = key.clone();
        let loaded = block_on(self.cache.get_entry(
            &key,
            move || async move { load(&loader_key) },
            &options,
        ));
        let entry = wit(LoadedEntry::of(loaded))?;
        Ok(Entry {
            value: value::to_wit(&entry.value),
            found: entry.found,
            stale: entry.stale,
            freshness: match entry.freshness {
                Freshness::Fresh => WitFreshness::Fresh,
                Freshness::Stale => WitFreshness::Stale,
                Freshness::FailSafe => WitFreshness::FailSafe,
            },
            age: entry.age.map(|age| age.as_secs_f64()),
        })
    }

    fn redis_key(&self, key: String) -> Result<String, WitError> {
        wit(self.cache.redis_key(&key))
    }

    fn metrics(&self) -> Metrics {
        metrics_to_wit(self.cache.metrics())
    }
}

/// Calls the host's loader for a user key; its `none` is core's "not found".
fn load(key: &str) -> polycache::Result<Value> {
    let bytes = loader::load(key)
        .map_err(|message| Error::new(ErrorKind::Loader, message))?
        .ok_or_else(Error::not_found)?;
    value::from_wit(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::Loader,
            format!(
                "the loader returned a value that is not MessagePack: {}",
                e.message()
            ),
        )
    })
}

/// The URL's config with the record's options laid over it: the record becomes the
/// overrides map of core's `Config::with_overrides`, exactly as a Node options object or
/// Python kwargs do, so names, meanings (`ttl: 0` is no expiry …) and checks are core's.
fn config(url: &str, options: Options) -> polycache::Result<Config> {
    let Options {
        prefix,
        namespace,
        ttl,
        jitter,
        codec,
        compression,
        compress_threshold,
        raw,
        connect_timeout,
        command_timeout,
        max_key_length,
        memory_capacity,
        read_through: _,
    } = options;
    let given = [
        ("prefix", prefix.map(Json::from)),
        ("namespace", namespace.map(Json::from)),
        ("ttl", ttl.map(Json::from)),
        ("jitter", jitter.map(Json::from)),
        (
            "codec",
            codec.map(|c| Json::from(codec_from_wit(c).as_str())),
        ),
        (
            "compression",
            compression.map(|c| Json::from(compression_from_wit(c).as_str())),
        ),
        ("compressThreshold", compress_threshold.map(Json::from)),
        ("raw", raw.map(Json::from)),
        ("connectTimeout", connect_timeout.map(Json::from)),
        ("commandTimeout", command_timeout.map(Json::from)),
        ("maxKeyLength", max_key_length.map(Json::from)),
        ("memoryCapacity", memory_capacity.map(Json::from)),
    ];
    let mut overrides = Map::new();
    for (name, value) in given {
        if let Some(value) = value {
            // JSON has no NaN or infinities: core's TTL rule must see them, not null.
            if value.is_null() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("invalid value for option {name}: expected a finite number"),
                ));
            }
            overrides.insert(name.to_owned(), value);
        }
    }
    Config::with_overrides(url, &overrides)
}

/// The record's per-call options, read by core as every binding's are.
fn load_options(options: LoadOptions) -> polycache::Result<polycache::LoadOptions> {
    let LoadOptions {
        ttl,
        fresh_for,
        max_stale,
        fail_safe_backoff,
        soft_timeout,
        hard_timeout,
        early_refresh_beta,
        negative_ttl,
    } = options;
    let given = [
        ("ttl", ttl),
        ("freshFor", fresh_for),
        ("maxStale", max_stale),
        ("failSafeBackoff", fail_safe_backoff),
        ("softTimeout", soft_timeout),
        ("hardTimeout", hard_timeout),
        ("earlyRefreshBeta", early_refresh_beta),
        ("negativeTtl", negative_ttl),
    ];
    let mut overrides = Map::new();
    for (name, value) in given {
        if let Some(value) = value {
            // JSON has no NaN or infinities: core sees them as text, and refuses them.
            let json = serde_json::Number::from_f64(value)
                .map_or_else(|| Json::from(value.to_string()), Json::Number);
            overrides.insert(name.to_owned(), json);
        }
    }
    polycache::LoadOptions::from_overrides(&overrides)
}

/// A per-call TTL in seconds, checked by core.
fn seconds(ttl: Option<f64>) -> polycache::Result<Option<Duration>> {
    ttl.map(polycache::ttl::from_secs).transpose()
}

/// Every counter of core's snapshot (a host test checks the record has each of them).
fn metrics_to_wit(m: MetricsSnapshot) -> Metrics {
    Metrics {
        hits: m.hits,
        misses: m.misses,
        loads: m.loads,
        load_errors: m.load_errors,
        decode_errors: m.decode_errors,
        locks_acquired: m.locks_acquired,
        locks_waited: m.locks_waited,
        locks_taken_over: m.locks_taken_over,
        locks_timed_out: m.locks_timed_out,
        lock_writes_refused: m.lock_writes_refused,
        sets: m.sets,
        deletes: m.deletes,
        store_errors: m.store_errors,
        evictions: m.evictions,
        latency_us: m
            .latency_us
            .into_iter()
            .map(|(le_us, count)| LatencyBucket { le_us, count })
            .collect(),
        near_hits: m.near_hits,
        near_misses: m.near_misses,
        near_invalidations: m.near_invalidations,
        near_flushes: m.near_flushes,
        near_entries: m.near_entries,
        near_bytes: m.near_bytes,
        stale_served: m.stale_served,
        fail_safe_served: m.fail_safe_served,
        background_refreshes: m.background_refreshes,
        loader_timeouts: m.loader_timeouts,
        early_refreshes: m.early_refreshes,
        negative_hits: m.negative_hits,
        negative_stored: m.negative_stored,
        breaker_open: m.breaker_open,
        breaker_trips: m.breaker_trips,
        breaker_rejected: m.breaker_rejected,
        breaker_states: m
            .breaker_states
            .into_iter()
            .map(|(node, state)| (node, breaker_state_to_wit(state)))
            .collect(),
    }
}

fn breaker_state_to_wit(state: BreakerState) -> WitBreakerState {
    match state {
        BreakerState::Closed => WitBreakerState::Closed,
        BreakerState::Open => WitBreakerState::Open,
        BreakerState::HalfOpen => WitBreakerState::HalfOpen,
    }
}
