//! Counters and a latency histogram: one struct, exposed the same way by every binding.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

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
    sets: AtomicU64,
    deletes: AtomicU64,
    store_errors: AtomicU64,
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
}

impl MetricsSnapshot {
    /// The sum of two snapshots (a host that runs one logical cache as two core caches,
    /// such as Node's fast and async paths). `evictions` is added only when the two caches
    /// have separate stores: a shared store reports the same evictions to both.
    #[must_use]
    pub fn combined(mut self, other: &MetricsSnapshot, shared_store: bool) -> MetricsSnapshot {
        self.hits += other.hits;
        self.misses += other.misses;
        self.loads += other.loads;
        self.load_errors += other.load_errors;
        self.decode_errors += other.decode_errors;
        self.sets += other.sets;
        self.deletes += other.deletes;
        self.store_errors += other.store_errors;
        if !shared_store {
            self.evictions += other.evictions;
        }
        for (bucket, more) in self.latency_us.iter_mut().zip(&other.latency_us) {
            bucket.1 += more.1;
        }
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
    Set,
    Delete,
    StoreError,
}

impl Metrics {
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let cell = match counter {
            Counter::Hit => &self.hits,
            Counter::Miss => &self.misses,
            Counter::Load => &self.loads,
            Counter::LoadError => &self.load_errors,
            Counter::DecodeError => &self.decode_errors,
            Counter::Set => &self.sets,
            Counter::Delete => &self.deletes,
            Counter::StoreError => &self.store_errors,
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

    /// Copies the counters; `evictions` comes from the store.
    pub(crate) fn snapshot(&self, evictions: u64) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            hits: get(&self.hits),
            misses: get(&self.misses),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            decode_errors: get(&self.decode_errors),
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_snapshots_add_up_and_count_shared_evictions_once() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.add(Counter::Hit, 2);
        b.add(Counter::Hit, 3);
        b.add(Counter::Miss, 1);
        a.observe(Duration::from_micros(10));
        b.observe(Duration::from_micros(10));
        let sum = a.snapshot(4).combined(&b.snapshot(4), true);
        assert_eq!((sum.hits, sum.misses, sum.evictions), (5, 1, 4));
        assert_eq!(sum.latency_us[0], (Some(50), 2));
        let separate = a.snapshot(4).combined(&b.snapshot(6), false);
        assert_eq!(separate.evictions, 10);
    }
}
