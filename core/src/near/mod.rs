//! The near tier: decoded values in this process, in front of any Redis store, kept
//! coherent by Redis itself (server-assisted client-side caching, see [`tracking`]).
//!
//! Hits cost no round trip and no decode: an entry holds the decoded [`Value`] and, once a
//! binding made one, the host object for it (Python keeps its object there, so a hit
//! returns the *same* object each time, as `functools.lru_cache` and cachetools do).
//!
//! Coherence rests on three rules, each enforced here under one lock:
//! - **Serve only while tracked.** Entries are served and stored only while every node's
//!   tracking connection is up (`serving`); losing one flushes everything (counted).
//! - **No stale store after a racing invalidation.** A read takes a [`Ticket`] *before* it
//!   is sent; its reply is stored only if no invalidation of that key (and no flush) was
//!   applied since. Recent invalidations are kept in a bounded log for that check; when
//!   the log no longer reaches back to the ticket, the reply is not stored.
//! - **Bounded age.** An entry older than `near_cache_ttl` is not served.
//! - **A live supervisor.** The tracking supervisor beats every 0.1 s; a tier whose beat
//!   is older than [`SILENT`] serves nothing (a forked child, whose threads did not survive
//!   the fork, stops within that time; a hit costs one clock read, not a `getpid`).

#[cfg(all(feature = "tls", not(target_os = "wasi")))]
mod tls;
#[cfg(all(feature = "redis", not(target_os = "wasi")))]
pub(crate) mod tracking;

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::codec::Value;
use crate::config::Config;
use crate::error::{Error, Result};

/// The near tier of one cache: the map and, while it lives, its tracking connections.
#[derive(Debug)]
pub(crate) struct NearTier {
    pub(crate) near: Arc<Near>,
    #[cfg(all(feature = "redis", not(target_os = "wasi")))]
    tracker: tracking::Tracker,
}

impl NearTier {
    /// The near tier `config` asks for, tracking every master of its URL; `None` when
    /// `near_cache` is 0.
    ///
    /// # Errors
    /// A config error when the URL is `memory://`, this build has no threads (WASI), or a
    /// server refuses RESP3 or client tracking.
    pub(crate) fn open(config: &Config) -> Result<Option<NearTier>> {
        if config.near_cache == 0 {
            return Ok(None);
        }
        Self::open_tracked(config).map(Some)
    }

    #[cfg(all(feature = "redis", not(target_os = "wasi")))]
    fn open_tracked(config: &Config) -> Result<NearTier> {
        let target = crate::config::Target::parse(&config.url)?;
        let source = tracking::Source::of(target).ok_or_else(|| {
            Error::config(
                "nearCache is for Redis URLs: memory:// is in process already (turn nearCache off)",
            )
        })?;
        let near = Arc::new(Near::new(
            config.near_cache,
            config.near_cache_bytes,
            config.near_cache_ttl,
        ));
        let tracker = tracking::Tracker::start(
            near.clone(),
            source,
            format!("{}:{}:", config.prefix, config.namespace),
            config.connect_timeout,
            config.command_timeout,
        )?;
        Ok(NearTier { near, tracker })
    }

    #[cfg(not(all(feature = "redis", not(target_os = "wasi"))))]
    fn open_tracked(_: &Config) -> Result<NearTier> {
        Err(Error::config(
            "this build has no near tier: it needs a thread per tracking connection, which \
             WASI (and builds without the `redis` feature) lack; turn nearCache off",
        ))
    }

    /// Stops tracking; the tier serves nothing more.
    pub(crate) fn stop(&self) {
        if self.near.forked() {
            return; // the parent's: its sockets and locks are not this process's to touch
        }
        #[cfg(all(feature = "redis", not(target_os = "wasi")))]
        self.tracker.stop();
        self.near.lose();
    }

    /// Closes the tracking connection to `addr` as a network failure would.
    pub(crate) fn break_link(&self, addr: &str) -> bool {
        #[cfg(all(feature = "redis", not(target_os = "wasi")))]
        return self.tracker.break_link(addr);
        #[cfg(not(all(feature = "redis", not(target_os = "wasi"))))]
        {
            let _ = addr;
            false
        }
    }
}

/// Invalidations remembered for the read/invalidate race check.
const RECENT: usize = 4096;
/// Forks announced by [`after_fork`]; a tier made before one is inert in the child.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// Tells polycache that this process is the child of a `fork()`. Every near tier inherited
/// from the parent becomes inert at once: it serves, stores and locks nothing (its
/// tracking threads did not survive the fork, and a lock one of them held at the fork
/// would never be released), and closing it leaves the parent's sockets alone. Python
/// calls this from `os.register_at_fork`; a Rust program that forks should call it in the
/// child. Without it a child's tier stops serving within a second (the supervisor's
/// heartbeat goes silent), but may block on such a lock.
pub fn after_fork() {
    FORKS.fetch_add(1, Ordering::SeqCst);
}

/// A supervisor silent this long means the tier may no longer be told of writes.
const SILENT: Duration = Duration::from_secs(1);
/// Bookkeeping bytes charged per entry on top of its key and value: the hash-map slot at
/// its load factor, the shared key and value allocations, the eviction queue's item with
/// its growth slack (measured against RSS in `measure_memory_of_100k_entries`).
const ENTRY_OVERHEAD: usize = 256;

/// A value held by the near tier: the decoded value, plus one host object a binding may
/// attach to it (made on the first hit, shared by every later hit).
pub struct NearValue {
    value: Value,
    host: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for NearValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearValue")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl NearValue {
    fn new(value: Value) -> NearValue {
        NearValue {
            value,
            host: OnceLock::new(),
        }
    }

    /// The decoded value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The host object attached with [`NearValue::attach`], if it is a `T`.
    pub fn host<T: Any>(&self) -> Option<&T> {
        self.host.get()?.downcast_ref()
    }

    /// Attaches `object` unless one is attached already; returns the attached one if it is
    /// a `T`. Bindings attach their converted object on the first hit, so later hits skip
    /// the conversion.
    pub fn attach<T: Any + Send + Sync>(&self, object: T) -> Option<&T> {
        let _ = self.host.set(Box::new(object));
        self.host()
    }
}

/// Taken before a read is sent; the reply may be stored only with a ticket still valid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    seq: u64,
}

struct Slot {
    value: Arc<NearValue>,
    bytes: usize,
    /// When it was stored, in milliseconds of the tier's clock ([`Near::now_ms`]).
    stored: u64,
    /// Set by a hit; the eviction clock spares a visited entry once (CLOCK / second chance).
    visited: AtomicBool,
    generation: u64,
}

#[derive(Default)]
struct State {
    serving: bool,
    /// Bumped by every flush: a ticket from an older epoch stores nothing.
    epoch: u64,
    /// Bumped by every invalidated key.
    seq: u64,
    /// `(seq, key)` of the latest invalidations, oldest first; `floor` is the seq of the
    /// newest one dropped from it.
    recent: VecDeque<(u64, Arc<str>)>,
    floor: u64,
    entries: HashMap<Arc<str>, Slot>,
    /// Eviction order: `(key, generation)`; an item whose generation no longer matches its
    /// key's slot is stale and skipped.
    clock: VecDeque<(Arc<str>, u64)>,
    next_generation: u64,
    bytes: usize,
}

/// Counters of the near tier, in [`crate::MetricsSnapshot`].
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

/// A point-in-time view of the near tier's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NearStats {
    pub hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub flushes: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The bounded map of decoded values and its coherence state.
pub(crate) struct Near {
    max_entries: usize,
    max_bytes: usize,
    max_age: Duration,
    /// The process that made this tier: a forked child has no tracking threads, so it
    /// never serves the entries it inherited.
    pid: u32,
    /// [`FORKS`] when this tier was made.
    forks: u64,
    born: Instant,
    /// The supervisor's last beat, in milliseconds of the tier's clock.
    heartbeat: AtomicU64,
    state: RwLock<State>,
    counters: Counters,
}

impl std::fmt::Debug for Near {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Near")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

// Without tracking (WASI, no `redis` feature) nothing makes a tier, so most of this is unused.
#[cfg_attr(not(all(feature = "redis", not(target_os = "wasi"))), allow(dead_code))]
impl Near {
    pub(crate) fn new(max_entries: u64, max_bytes: u64, max_age: Duration) -> Near {
        Near {
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            max_age,
            pid: crate::store::process_id(),
            forks: FORKS.load(Ordering::SeqCst),
            born: Instant::now(),
            heartbeat: AtomicU64::new(0),
            state: RwLock::new(State::default()),
            counters: Counters::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this tier belongs to a parent process ([`after_fork`] was called since it
    /// was made): one atomic load.
    pub(crate) fn inherited(&self) -> bool {
        FORKS.load(Ordering::Relaxed) != self.forks
    }

    /// [`Near::inherited`], or a `getpid` that differs (for the slow paths only: it costs
    /// a system call).
    pub(crate) fn forked(&self) -> bool {
        self.inherited() || crate::store::process_id() != self.pid
    }

    /// Milliseconds since this tier was made (one clock read).
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// The supervisor is alive (called every tick).
    pub(crate) fn beat(&self) {
        self.heartbeat.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The entry for `key` if it may be served; counts a near hit, or a miss if
    /// `count_miss` (a caller that will go to Redis next).
    pub(crate) fn get(&self, key: &str, count_miss: bool) -> Option<Arc<NearValue>> {
        if self.inherited() {
            return None;
        }
        let now = self.now_ms();
        let max_age = self.max_age.as_millis() as u64;
        let alive =
            now.saturating_sub(self.heartbeat.load(Ordering::Relaxed)) < SILENT.as_millis() as u64;
        let hit = {
            let state = self.read();
            match state.entries.get(key) {
                Some(slot) if state.serving && alive && now - slot.stored < max_age => {
                    slot.visited.store(true, Ordering::Relaxed);
                    Some(slot.value.clone())
                }
                _ => None,
            }
        };
        match hit {
            Some(_) => self.counters.hits.fetch_add(1, Ordering::Relaxed),
            None if count_miss => self.counters.misses.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        hit
    }

    /// A ticket for a read about to be sent, or `None` when nothing may be stored now.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        if self.forked() {
            return None;
        }
        let state = self.read();
        state.serving.then_some(Ticket {
            epoch: state.epoch,
            seq: state.seq,
        })
    }

    /// Stores a value read with `ticket`, unless the ticket was overtaken by a flush or an
    /// invalidation of `key`; returns the stored entry.
    pub(crate) fn insert(&self, ticket: Ticket, key: &str, value: Value) -> Option<Arc<NearValue>> {
        let bytes = footprint(&value) + 2 * key.len() + ENTRY_OVERHEAD;
        if bytes > self.max_bytes || self.max_entries == 0 || self.inherited() {
            return None;
        }
        let mut state = self.write();
        if !state.serving || state.epoch != ticket.epoch || state.invalidated_since(ticket, key) {
            return None;
        }
        let key: Arc<str> = Arc::from(key);
        let value = Arc::new(NearValue::new(value));
        state.next_generation += 1;
        let generation = state.next_generation;
        let slot = Slot {
            value: value.clone(),
            bytes,
            stored: self.now_ms(),
            visited: AtomicBool::new(false),
            generation,
        };
        if let Some(old) = state.entries.insert(key.clone(), slot) {
            state.bytes -= old.bytes;
        }
        state.bytes += bytes;
        state.clock.push_back((key, generation));
        state.evict(self.max_entries, self.max_bytes);
        Some(value)
    }

    /// Applies an invalidation of `keys` (from a tracking connection, or this process's own
    /// write); counts each key when `pushed`.
    pub(crate) fn invalidate<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>, pushed: bool) {
        if self.inherited() {
            return;
        }
        let mut count = 0;
        let mut state = self.write();
        for key in keys {
            let Ok(key) = std::str::from_utf8(key) else {
                continue; // polycache keys are UTF-8: not one of ours
            };
            count += 1;
            state.seq += 1;
            if let Some(old) = state.entries.remove(key) {
                state.bytes -= old.bytes;
            }
            let seq = state.seq;
            state.recent.push_back((seq, Arc::from(key)));
            if state.recent.len() > RECENT {
                if let Some((dropped, _)) = state.recent.pop_front() {
                    state.floor = dropped;
                }
            }
        }
        drop(state);
        if pushed {
            self.counters
                .invalidations
                .fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Drops every entry and makes every outstanding ticket invalid; counted.
    pub(crate) fn flush(&self) {
        if self.inherited() {
            return;
        }
        self.write().flush();
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// A tracking connection was lost (or the set of nodes changed): stop serving and
    /// flush, before anything else can read the tier.
    pub(crate) fn lose(&self) {
        if self.inherited() {
            return;
        }
        let mut state = self.write();
        let was_serving = std::mem::replace(&mut state.serving, false);
        state.flush();
        drop(state);
        if was_serving {
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every node is tracked again: serve and store.
    #[cfg(test)]
    pub(crate) fn serve(&self) {
        self.beat();
        self.write().serving = true;
    }

    /// Serves if `tracked` (evaluated under the tier's lock) says every node is tracked.
    pub(crate) fn serve_if(&self, tracked: impl FnOnce() -> bool) {
        if self.inherited() {
            return;
        }
        let mut state = self.write();
        if tracked() {
            state.serving = true;
        }
    }

    pub(crate) fn is_serving(&self) -> bool {
        !self.inherited() && self.read().serving
    }

    pub(crate) fn stats(&self) -> NearStats {
        let (entries, bytes) = if self.inherited() {
            (0, 0)
        } else {
            let state = self.read();
            (state.entries.len() as u64, state.bytes as u64)
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NearStats {
            hits: get(&self.counters.hits),
            misses: get(&self.counters.misses),
            invalidations: get(&self.counters.invalidations),
            flushes: get(&self.counters.flushes),
            entries,
            bytes,
        }
    }
}

impl State {
    fn invalidated_since(&self, ticket: Ticket, key: &str) -> bool {
        if ticket.seq == self.seq {
            return false;
        }
        if ticket.seq < self.floor {
            return true; // the log no longer reaches back to the ticket: assume the worst
        }
        self.recent
            .iter()
            .rev()
            .take_while(|(seq, _)| *seq > ticket.seq)
            .any(|(_, k)| &**k == key)
    }

    fn flush(&mut self) {
        self.epoch += 1;
        self.entries.clear();
        self.clock.clear();
        self.recent.clear();
        self.floor = self.seq;
        self.bytes = 0;
    }

    /// Evicts with the CLOCK policy until both bounds hold.
    fn evict(&mut self, max_entries: usize, max_bytes: usize) {
        while self.entries.len() > max_entries || self.bytes > max_bytes {
            let Some((key, generation)) = self.clock.pop_front() else {
                break;
            };
            let Some(slot) = self
                .entries
                .get(&key)
                .filter(|s| s.generation == generation)
            else {
                continue; // stale: the key was invalidated or stored again since
            };
            if slot.visited.swap(false, Ordering::Relaxed) {
                self.clock.push_back((key, generation));
                continue;
            }
            if let Some(old) = self.entries.remove(&key) {
                self.bytes -= old.bytes;
            }
        }
        // Invalidated keys leave stale items behind: keep the queue proportional to the map.
        if self.clock.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.clock
                .retain(|(key, g)| entries.get(key).is_some_and(|s| s.generation == *g));
        }
    }
}

/// An estimate of the memory a decoded value holds, in bytes: the value itself plus what
/// it owns on the heap. Containers are charged by capacity, and a map by the B-tree leaves
/// it needs (Rust's `BTreeMap` keeps up to 11 entries per node, 24-byte `String` keys next
/// to the values), so a small map costs a whole node.
fn footprint(value: &Value) -> usize {
    std::mem::size_of::<Value>() + heap(value)
}

fn heap(value: &Value) -> usize {
    const NODE_ENTRIES: usize = 11;
    let value_size = std::mem::size_of::<Value>();
    match value {
        Value::Str(s) => s.capacity(),
        Value::Bytes(b) => b.capacity(),
        Value::Array(items) => {
            items.capacity() * value_size + items.iter().map(heap).sum::<usize>()
        }
        Value::Map(map) => {
            let nodes = map.len().div_ceil(NODE_ENTRIES).max(1);
            let node = NODE_ENTRIES * (std::mem::size_of::<String>() + value_size) + 16;
            nodes * node
                + map
                    .iter()
                    .map(|(k, v)| k.capacity() + heap(v))
                    .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(entries: u64, bytes: u64) -> Near {
        let near = Near::new(entries, bytes, Duration::from_secs(60));
        near.serve();
        near
    }

    #[test]
    fn a_racing_invalidation_prevents_the_store() {
        let near = tier(10, 1 << 20);
        let ticket = near.ticket().unwrap();
        near.invalidate([b"k".as_slice()], true);
        assert!(near.insert(ticket, "k", Value::from(1)).is_none());
        // Another key's invalidation does not block this one.
        let ticket = near.ticket().unwrap();
        near.invalidate([b"other".as_slice()], true);
        assert!(near.insert(ticket, "k", Value::from(2)).is_some());
        assert_eq!(near.get("k", true).unwrap().value(), &Value::from(2));
    }

    #[test]
    fn a_flush_or_a_lost_link_overtakes_every_ticket() {
        let near = tier(10, 1 << 20);
        let ticket = near.ticket().unwrap();
        near.flush();
        assert!(near.insert(ticket, "k", Value::from(1)).is_none());
        let ticket = near.ticket().unwrap();
        near.insert(ticket, "k", Value::from(1)).unwrap();
        near.lose();
        assert!(near.get("k", true).is_none());
        assert!(near.ticket().is_none());
        assert_eq!(near.stats().flushes, 2);
    }

    #[test]
    fn a_ticket_older_than_the_log_stores_nothing() {
        let near = tier(10, 1 << 20);
        let ticket = near.ticket().unwrap();
        let keys: Vec<String> = (0..=RECENT).map(|i| format!("x{i}")).collect();
        near.invalidate(keys.iter().map(|k| k.as_bytes()), true);
        assert!(near.insert(ticket, "k", Value::from(1)).is_none());
    }

    #[test]
    fn both_bounds_hold_and_visited_entries_are_spared() {
        let near = tier(3, 1 << 20);
        for i in 0..3 {
            near.insert(near.ticket().unwrap(), &format!("k{i}"), Value::from(i))
                .unwrap();
        }
        assert!(near.get("k0", true).is_some());
        near.insert(near.ticket().unwrap(), "k3", Value::from(3))
            .unwrap();
        assert!(near.get("k0", true).is_some(), "visited: spared");
        assert!(near.get("k1", true).is_none(), "oldest unvisited: evicted");
        let small = tier(1000, 4096);
        for i in 0..100 {
            small.insert(
                small.ticket().unwrap(),
                &format!("k{i}"),
                Value::from("x".repeat(100)),
            );
        }
        let stats = small.stats();
        assert!(stats.bytes <= 4096 && stats.entries > 0, "{stats:?}");
    }

    #[test]
    fn invalidate_and_reinsert_keeps_the_queue_small() {
        let near = tier(10, 1 << 20);
        for i in 0..10_000 {
            near.insert(near.ticket().unwrap(), "k", Value::from(i))
                .unwrap();
            near.invalidate([b"k".as_slice()], false);
        }
        assert!(near.read().clock.len() < 200);
    }

    #[test]
    fn a_tier_from_before_a_fork_is_inert() {
        let mut near = tier(10, 1 << 20);
        near.insert(near.ticket().unwrap(), "k", Value::from(1))
            .unwrap();
        let ticket = near.ticket().unwrap();
        // As `after_fork` would, without touching the global that parallel tests share.
        near.forks = near.forks.wrapping_add(1);
        assert!(near.get("k", true).is_none());
        assert!(near.ticket().is_none());
        assert!(near.insert(ticket, "j", Value::from(2)).is_none());
        assert!(!near.is_serving());
        assert_eq!(near.stats().entries, 0);
        let fresh = tier(10, 1 << 20);
        fresh
            .insert(fresh.ticket().unwrap(), "k", Value::from(1))
            .unwrap();
        assert!(
            fresh.get("k", true).is_some(),
            "a tier made after the fork works"
        );
    }
}
