//! Counters and a latency histogram: one struct, exposed the same way by every binding.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::store::{BreakerState, BreakerStats};

/// Upper bounds (µs) of the latency buckets; a last bucket counts everything slower.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Live counters, updated with relaxed atomics (they are statistics, not synchronization).
#[derive(Debug, Default)]
pub struct Metrics {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    load_errors: AtomicU64,
    decode_errors: AtomicU64,
    locks_acquired: AtomicU64,
    locks_waited: AtomicU64,
    locks_taken_over: AtomicU64,
    locks_timed_out: AtomicU64,
    lock_writes_refused: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    store_errors: AtomicU64,
    stale_served: AtomicU64,
    fail_safe_served: AtomicU64,
    background_refreshes: AtomicU64,
    loader_timeouts: AtomicU64,
    early_refreshes: AtomicU64,
    negative_hits: AtomicU64,
    negative_stored: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

/// A point-in-time copy of [`Metrics`]; serializes with camelCase names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing (decode errors included).
    pub misses: u64,
    /// Loader calls.
    pub loads: u64,
    /// Loader calls that failed.
    pub load_errors: u64,
    /// Stored bytes that could not be decoded (each also counted as a miss).
    pub decode_errors: u64,
    /// Stampede lock: loads this cache ran holding the lock.
    pub locks_acquired: u64,
    /// Stampede lock: misses answered by another holder's value after waiting for it.
    pub locks_waited: u64,
    /// Stampede lock: locks taken after waiting, because the holder left without writing
    /// (its loader failed, or it died and its lease ran out).
    pub locks_taken_over: u64,
    /// Stampede lock: waits that reached `lock_timeout` (the caller then loaded by itself).
    pub locks_timed_out: u64,
    /// Stampede lock: writes the fence refused (the lease ran out during the load and the
    /// lock had passed on).
    pub lock_writes_refused: u64,
    /// Values written.
    pub sets: u64,
    /// Keys deleted.
    pub deletes: u64,
    /// Store calls that failed (connection, timeout, server errors).
    pub store_errors: u64,
    /// Entries evicted from the in-process store to stay within its capacity.
    pub evictions: u64,
    /// Store round trips per latency bucket; bounds in [`LATENCY_BUCKETS_US`], then +Inf.
    pub latency_us: Vec<(Option<u64>, u64)>,
    /// Reads served by the near tier (each also counted in `hits`).
    pub near_hits: u64,
    /// Reads the near tier could not serve (they went to Redis).
    pub near_misses: u64,
    /// Keys invalidated by Redis's tracking pushes.
    pub near_invalidations: u64,
    /// Times the near tier was emptied: a tracking connection lost, the set of masters
    /// changed, or the server flushed its keyspace.
    pub near_flushes: u64,
    /// Entries in the near tier now.
    pub near_entries: u64,
    /// Estimated bytes held by the near tier now.
    pub near_bytes: u64,
    /// Stale values served while a refresh ran (stale-while-revalidate).
    pub stale_served: u64,
    /// Last good values served because loading failed or the store was unreachable.
    pub fail_safe_served: u64,
    /// Refreshes of stale values started (in the background, or inline where no thread
    /// or runtime can run them).
    pub background_refreshes: u64,
    /// Loads that passed `soft_timeout` (answered by a fail-safe value while they went on)
    /// or `hard_timeout` (abandoned).
    pub loader_timeouts: u64,
    /// Refreshes started early, before the value went stale (XFetch, `early_refresh_beta`).
    pub early_refreshes: u64,
    /// Reads that found a cached "not found" (negative caching; not counted in `hits` or
    /// `misses`).
    pub negative_hits: u64,
    /// Loader answers of "not found" written to the store (for `negative_ttl`).
    pub negative_stored: u64,
    /// Circuit breakers not closed now (open, or half-open with a probe in flight).
    pub breaker_open: u64,
    /// Times a breaker opened: after `breaker_failures` consecutive failures, or again
    /// after a failed probe.
    pub breaker_trips: u64,
    /// Calls failed fast by an open breaker, without touching the network (each also
    /// counted in `store_errors`, never in `latency_us`).
    pub breaker_rejected: u64,
    /// Each node's breaker: `"closed"`, `"open"` or `"half-open"`, by `host:port` (the
    /// redacted URL for a cluster or Sentinel client, which has one breaker). Empty when
    /// the breaker is off.
    pub breaker_states: BTreeMap<String, BreakerState>,
}

impl MetricsSnapshot {
    /// This snapshot with the store's breakers.
    pub(crate) fn with_breakers(mut self, stats: BreakerStats) -> Self {
        self.breaker_open = stats
            .states
            .values()
            .filter(|s| **s != BreakerState::Closed)
            .count() as u64;
        self.breaker_trips = stats.trips;
        self.breaker_rejected = stats.rejected;
        self.breaker_states = stats.states;
        self
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Hit,
    Miss,
    Load,
    LoadError,
    DecodeError,
    LockAcquired,
    LockWaited,
    LockTakenOver,
    LockTimedOut,
    LockWriteRefused,
    Set,
    Delete,
    StoreError,
    StaleServed,
    FailSafeServed,
    BackgroundRefresh,
    LoaderTimeout,
    EarlyRefresh,
    NegativeHit,
    NegativeStored,
}

impl Metrics {
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let cell = match counter {
            Counter::Hit => &self.hits,
            Counter::Miss => &self.misses,
            Counter::Load => &self.loads,
            Counter::LoadError => &self.load_errors,
            Counter::DecodeError => &self.decode_errors,
            Counter::LockAcquired => &self.locks_acquired,
            Counter::LockWaited => &self.locks_waited,
            Counter::LockTakenOver => &self.locks_taken_over,
            Counter::LockTimedOut => &self.locks_timed_out,
            Counter::LockWriteRefused => &self.lock_writes_refused,
            Counter::Set => &self.sets,
            Counter::Delete => &self.deletes,
            Counter::StoreError => &self.store_errors,
            Counter::StaleServed => &self.stale_served,
            Counter::FailSafeServed => &self.fail_safe_served,
            Counter::BackgroundRefresh => &self.background_refreshes,
            Counter::LoaderTimeout => &self.loader_timeouts,
            Counter::EarlyRefresh => &self.early_refreshes,
            Counter::NegativeHit => &self.negative_hits,
            Counter::NegativeStored => &self.negative_stored,
        };
        cell.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters; `evictions` comes from the store, `near` from the near tier.
    pub(crate) fn snapshot(&self, evictions: u64, near: crate::near::NearStats) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            hits: get(&self.hits),
            misses: get(&self.misses),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            decode_errors: get(&self.decode_errors),
            locks_acquired: get(&self.locks_acquired),
            locks_waited: get(&self.locks_waited),
            locks_taken_over: get(&self.locks_taken_over),
            locks_timed_out: get(&self.locks_timed_out),
            lock_writes_refused: get(&self.lock_writes_refused),
            sets: get(&self.sets),
            deletes: get(&self.deletes),
            store_errors: get(&self.store_errors),
            evictions,
            latency_us: self
                .latency
                .iter()
                .enumerate()
                .map(|(i, c)| (LATENCY_BUCKETS_US.get(i).copied(), get(c)))
                .collect(),
            near_hits: near.hits,
            near_misses: near.misses,
            near_invalidations: near.invalidations,
            near_flushes: near.flushes,
            near_entries: near.entries,
            near_bytes: near.bytes,
            stale_served: get(&self.stale_served),
            fail_safe_served: get(&self.fail_safe_served),
            background_refreshes: get(&self.background_refreshes),
            loader_timeouts: get(&self.loader_timeouts),
            early_refreshes: get(&self.early_refreshes),
            negative_hits: get(&self.negative_hits),
            negative_stored: get(&self.negative_stored),
            ..MetricsSnapshot::default()
        }
    }
}
