//! Freshness and fail-safe: the options of one `get_or_load` call, the state of an answer,
//! and the small per-process bookkeeping they need (which keys are being refreshed, the
//! last good value of each key, when a failed key may be loaded again).
//!
//! The states of a stored value, by the clock of the reader:
//!
//! | state | when | a read returns |
//! |---|---|---|
//! | fresh | `now < fresh-until` (or no `fresh-until`) | the value |
//! | stale | `fresh-until <= now`, before the Redis expiry (`ttl`) | the value at once; one refresh starts |
//! | expired | gone from Redis | the loader's value |
//! | fail-safe | loader failed / timed out, or Redis unreachable, within `max_stale` past freshness | the last good value |
//!
//! One refresh per stale value: a read takes a [`ReadStart`] before its GET, and may claim
//! the key's refresh only if no refresh of that key ended since. A GET answered with the
//! old value before a refresh wrote the new one can reach the claim after that refresh
//! ended; its refresh would load again what was just loaded.
//!
//! Where "the last good value" comes from: an in-process map of the last value this process
//! read fresh or loaded, per key (bounded by `memory_capacity` entries), kept only when
//! fail-safe is on (`max_stale > 0`). Not the near tier: the near tier is off by default,
//! and it drops its entries exactly when Redis is lost (a tracking link down empties it),
//! which is when fail-safe needs them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::codec::Value;

/// Per-call options of [`crate::Cache::get_entry`] and [`crate::Cache::get_or_load_with`];
/// every `None` takes the [`crate::Config`]'s value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Hard expiry: the Redis TTL of the value written.
    pub ttl: Option<Duration>,
    /// Soft expiry: how long the value written is fresh; `Some(ZERO)`: fresh until it expires.
    pub fresh_for: Option<Duration>,
    /// How long past its freshness the last value may be served when loading fails;
    /// `Some(ZERO)` turns fail-safe off for this call.
    pub max_stale: Option<Duration>,
    /// How long a fail-safe value is served before the loader is tried again.
    pub fail_safe_backoff: Option<Duration>,
    /// How long a slow load may run before a fail-safe value answers (the load goes on in
    /// the background and stores its value); `Some(ZERO)`: wait.
    pub soft_timeout: Option<Duration>,
    /// How long a load may run at all; `Some(ZERO)`: no limit.
    pub hard_timeout: Option<Duration>,
    /// Early refresh weight (XFetch `beta`, FORMAT.md §7); `Some(0.0)`: off for this call.
    pub early_refresh_beta: Option<f64>,
    /// How long a loader's "not found" is cached; `Some(ZERO)`: not cached.
    pub negative_ttl: Option<Duration>,
}

/// How current an answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Within its fresh window, or just loaded.
    Fresh,
    /// Past `fresh-until` but not expired: served while a refresh runs.
    Stale,
    /// The last good value, served because loading failed or Redis is unreachable.
    FailSafe,
}

impl Freshness {
    /// `"fresh"`, `"stale"` or `"fail-safe"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::FailSafe => "fail-safe",
        }
    }
}

/// A value with what the caller may want to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The value.
    pub value: Value,
    /// Fresh, stale or fail-safe.
    pub freshness: Freshness,
    /// Time since the value was written (its envelope's created-at); `None` when unknown
    /// (a near-tier hit, which keeps no envelope).
    pub age: Option<Duration>,
}

impl Loaded {
    /// Whether the value is past its freshness (stale or fail-safe).
    pub fn stale(&self) -> bool {
        self.freshness != Freshness::Fresh
    }
}

/// A `get_entry` answer as every binding shows it (Python's `Entry`, Node's `Entry<T>`, the
/// WIT `entry` record): a loaded value with how current it is, or "not found" as an answer
/// of its own (`found` false: the value nil, fresh, no age). Rust's `get_entry` keeps "not
/// found" an error ([`crate::Error::is_not_found`]); [`LoadedEntry::of`] turns it into this.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedEntry {
    /// The value; nil when not found.
    pub value: Value,
    /// False for "not found" (the loader's, or one cached for `negative_ttl`).
    pub found: bool,
    /// Past its freshness (stale or fail-safe).
    pub stale: bool,
    /// Fresh, stale or fail-safe ([`Freshness::as_str`] names it).
    pub freshness: Freshness,
    /// Time since the value was written; `None` when unknown or not found.
    pub age: Option<Duration>,
}

impl LoadedEntry {
    /// The entry of a `get_entry` result; errors other than "not found" stay errors.
    ///
    /// # Errors
    /// The result's error, unless it is "not found".
    pub fn of(loaded: crate::Result<Loaded>) -> crate::Result<LoadedEntry> {
        match loaded {
            Ok(loaded) => Ok(LoadedEntry {
                stale: loaded.stale(),
                value: loaded.value,
                found: true,
                freshness: loaded.freshness,
                age: loaded.age,
            }),
            Err(err) if err.is_not_found() => Ok(LoadedEntry {
                value: Value::Nil,
                found: false,
                stale: false,
                freshness: Freshness::Fresh,
                age: None,
            }),
            Err(err) => Err(err),
        }
    }
}

/// A `get_or_load` answer with "not found" as `None`: what Python (`None`), Node
/// (`undefined`) and the WIT (`none`) answer for it.
///
/// # Errors
/// The result's error, unless it is "not found".
pub fn found<T>(answer: crate::Result<T>) -> crate::Result<Option<T>> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether a value with envelope `fresh_until_ms` is stale at `now_ms` (0 = no fresh window).
pub fn is_stale(now_ms: u64, fresh_until_ms: u64) -> bool {
    fresh_until_ms != 0 && now_ms >= fresh_until_ms
}

/// Early refresh, probabilistic (XFetch, FORMAT.md §7): whether a read at `now` (ms)
/// of a value fresh until `fresh_until` (ms; 0 = no fresh window), whose last load took
/// `delta` ms, refreshes it early. `beta` weighs it (> 0; larger refreshes earlier),
/// `random` is uniform in [0, 1). True when
/// `now - delta * beta * ln(1 - random) >= fresh_until` in binary64, so the chance rises as
/// `fresh_until` nears and with slower loads; false for out-of-range arguments.
pub fn should_refresh_early(
    now: u64,
    fresh_until: u64,
    delta: u64,
    beta: f64,
    random: f64,
) -> bool {
    if fresh_until == 0 || beta.is_nan() || beta <= 0.0 || !(0.0..1.0).contains(&random) {
        return false;
    }
    now as f64 - delta as f64 * beta * (-random).ln_1p() >= fresh_until as f64
}

/// The rules of one call: the call's options over the config's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub ttl: Option<Duration>,
    pub fresh_for: Option<Duration>,
    pub max_stale: Duration,
    pub backoff: Duration,
    pub soft_timeout: Option<Duration>,
    pub hard_timeout: Option<Duration>,
    pub early_refresh_beta: f64,
    pub negative_ttl: Duration,
}

impl Rules {
    pub fn fail_safe(&self) -> bool {
        !self.max_stale.is_zero()
    }
}

/// The last good value of a key, for fail-safe.
#[derive(Debug, Clone)]
pub(crate) struct LastGood {
    pub value: Value,
    pub created_at_ms: u64,
    /// The last instant the value was known fresh (its `fresh-until`, or when it was read
    /// or loaded fresh).
    pub fresh_until_ms: u64,
    /// After a failed load: the loader is not called again before this instant.
    pub retry_at_ms: u64,
}

/// Per-process freshness bookkeeping of one cache.
#[derive(Debug)]
pub(crate) struct FreshState {
    refreshes: Arc<Mutex<Refreshes>>,
    last_good: Mutex<HashMap<String, LastGood>>,
    capacity: usize,
}

/// The keys being refreshed, and when the recent refreshes ended.
#[derive(Debug, Default)]
struct Refreshes {
    running: HashSet<String>,
    /// Refreshes ended so far in this process: the clock of [`ReadStart`].
    ended: u64,
    /// Per key, the value of `ended` when its last refresh ended.
    ended_at: HashMap<String, u64>,
    /// `ended_at`'s entries oldest first, to keep `capacity` of them (a key refreshed
    /// again is here twice; its older entry is skipped when dropped).
    order: VecDeque<(u64, String)>,
    capacity: usize,
}

impl Refreshes {
    fn end(&mut self, key: &str) {
        self.running.remove(key);
        self.ended += 1;
        self.ended_at.insert(key.to_owned(), self.ended);
        self.order.push_back((self.ended, key.to_owned()));
        while self.order.len() > self.capacity {
            let Some((at, old)) = self.order.pop_front() else {
                break;
            };
            if self.ended_at.get(&old) == Some(&at) {
                self.ended_at.remove(&old);
            }
        }
    }
}

/// When a read began, in refreshes ended: taken before its GET, so a refresh that ended
/// after it is one the read's value may predate. (Past `capacity` ended refreshes a key's
/// end is forgotten, and a late read may refresh once more, as it could before.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadStart(u64);

/// The right to refresh one key; released when dropped (the refresh ended or was abandoned).
#[derive(Debug)]
pub(crate) struct RefreshClaim {
    refreshes: Arc<Mutex<Refreshes>>,
    key: String,
}

impl Drop for RefreshClaim {
    fn drop(&mut self) {
        lock(&self.refreshes).end(&self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FreshState {
    pub fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        FreshState {
            refreshes: Arc::new(Mutex::new(Refreshes {
                capacity,
                ..Refreshes::default()
            })),
            last_good: Mutex::default(),
            capacity,
        }
    }

    /// Marks the start of a read: take it before the GET whose answer may lead to a claim.
    pub fn read_start(&self) -> ReadStart {
        ReadStart(lock(&self.refreshes).ended)
    }

    /// Claims the one refresh of `key` in this process for a read that began at `read`;
    /// `None` while another runs, or when one ended after `read` (the read's value may be
    /// the one it replaced).
    pub fn claim(&self, key: &str, read: ReadStart) -> Option<RefreshClaim> {
        let mut refreshes = lock(&self.refreshes);
        if refreshes.ended_at.get(key).is_some_and(|&at| at > read.0) {
            return None;
        }
        refreshes
            .running
            .insert(key.to_owned())
            .then(|| RefreshClaim {
                refreshes: self.refreshes.clone(),
                key: key.to_owned(),
            })
    }

    /// Records a value known good (fresh) at `now_ms`.
    pub fn keep(&self, key: &str, value: &Value, created_at_ms: u64, fresh_until_ms: u64) {
        let mut map = lock(&self.last_good);
        if map.len() >= self.capacity && !map.contains_key(key) {
            // Bounded: drop an arbitrary entry (fail-safe is best effort).
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(
            key.to_owned(),
            LastGood {
                value: value.clone(),
                created_at_ms,
                fresh_until_ms,
                retry_at_ms: 0,
            },
        );
    }

    /// The last good value of `key` if it may still be served at `now_ms`.
    pub fn usable(&self, key: &str, now_ms: u64, max_stale: Duration) -> Option<LastGood> {
        let map = lock(&self.last_good);
        let good = map.get(key)?;
        let limit = good
            .fresh_until_ms
            .saturating_add(max_stale.as_millis() as u64);
        (now_ms < limit).then(|| good.clone())
    }

    /// A load of `key` failed at `now_ms`: no new attempt before `now_ms + backoff`.
    pub fn back_off(&self, key: &str, now_ms: u64, backoff: Duration) {
        if let Some(good) = lock(&self.last_good).get_mut(key) {
            good.retry_at_ms = now_ms.saturating_add(backoff.as_millis() as u64);
        }
    }

    /// Forgets `key` (it was written or deleted by this process).
    pub fn forget(&self, key: &str) {
        let mut last_good = lock(&self.last_good);
        // Most caches keep no last good value: skip hashing the key (every write forgets
        // its key twice).
        if !last_good.is_empty() {
            last_good.remove(key);
        }
    }
}

/// `future`'s output, or `None` when `limit` passes first (`None`: no limit). The timer is
/// the tokio runtime's when there is one, else a thread that sleeps (blocking stores have
/// no runtime); on wasm there is neither, and the limit is not applied. A loader that does
/// its work inside one poll (a synchronous host function) cannot be interrupted: the limit
/// applies when it yields.
pub(crate) async fn within<F: Future>(limit: Option<Duration>, future: F) -> Option<F::Output> {
    use futures_util::future::{select, Either};
    let Some(limit) = limit else {
        return Some(future.await);
    };
    let Some(timer) = sleep(limit) else {
        return Some(future.await);
    };
    let future = std::pin::pin!(future);
    match select(future, timer).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

fn sleep(limit: Duration) -> Option<futures_util::future::BoxFuture<'static, ()>> {
    #[cfg(feature = "tokio-redis")]
    if tokio::runtime::Handle::try_current().is_ok() {
        return Some(Box::pin(tokio::time::sleep(limit)));
    }
    if cfg!(target_family = "wasm") {
        return None;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("polycache-timer".into())
        .spawn(move || {
            std::thread::sleep(limit);
            let _ = tx.send(());
        })
        .ok()?;
    Some(Box::pin(async move {
        let _ = rx.await;
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_only_with_a_fresh_window_that_ended() {
        assert!(!is_stale(100, 0));
        assert!(!is_stale(99, 100));
        assert!(is_stale(100, 100));
    }

    #[test]
    fn one_claim_per_key_until_dropped() {
        let state = FreshState::new(10);
        let claim = state.claim("k", state.read_start()).unwrap();
        assert!(state.claim("k", state.read_start()).is_none());
        assert!(state.claim("other", state.read_start()).is_some());
        drop(claim);
        assert!(state.claim("k", state.read_start()).is_some());
    }

    #[test]
    fn no_claim_for_a_read_that_began_before_the_last_refresh_ended() {
        let state = FreshState::new(2);
        let early = state.read_start();
        drop(state.claim("k", early).unwrap());
        assert!(state.claim("k", early).is_none(), "k was refreshed since");
        assert!(state.claim("other", early).is_some(), "per key");
        let late = state.read_start();
        assert!(state.claim("k", late).is_some(), "began after the refresh");
    }

    #[test]
    fn ended_refreshes_are_bounded() {
        let state = FreshState::new(2);
        let early = state.read_start();
        for key in ["a", "b", "a", "c"] {
            drop(state.claim(key, state.read_start()).unwrap());
        }
        let refreshes = lock(&state.refreshes);
        assert_eq!(refreshes.order.len(), 2);
        assert_eq!(refreshes.ended_at.len(), 2, "{refreshes:?}");
        drop(refreshes);
        assert!(state.claim("a", early).is_none(), "a and c are kept");
        assert!(state.claim("c", early).is_none());
        assert!(state.claim("b", early).is_some(), "b was forgotten");
    }

    #[test]
    fn last_good_within_max_stale_and_bounded() {
        let state = FreshState::new(1);
        state.keep("a", &Value::from(1), 0, 100);
        let max = Duration::from_millis(50);
        assert!(state.usable("a", 149, max).is_some());
        assert!(state.usable("a", 150, max).is_none());
        state.keep("b", &Value::from(2), 0, 100);
        assert!(state.usable("a", 0, max).is_none(), "capacity 1");
        state.back_off("b", 10, Duration::from_millis(5));
        assert_eq!(state.usable("b", 10, max).unwrap().retry_at_ms, 15);
    }

    #[test]
    fn not_found_is_an_entry_and_none_other_errors_stay() {
        let stale = Loaded {
            value: Value::from(1),
            freshness: Freshness::Stale,
            age: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            LoadedEntry::of(Ok(stale)).unwrap(),
            LoadedEntry {
                value: Value::from(1),
                found: true,
                stale: true,
                freshness: Freshness::Stale,
                age: Some(Duration::from_secs(3)),
            }
        );
        assert_eq!(
            LoadedEntry::of(Err(crate::Error::not_found())).unwrap(),
            LoadedEntry {
                value: Value::Nil,
                found: false,
                stale: false,
                freshness: Freshness::Fresh,
                age: None,
            }
        );
        let down = crate::Error::new(crate::ErrorKind::Loader, "db down");
        assert!(LoadedEntry::of(Err(down.clone())).is_err());
        assert_eq!(found(Ok(1)).unwrap(), Some(1));
        assert_eq!(found::<i64>(Err(crate::Error::not_found())).unwrap(), None);
        assert!(found::<i64>(Err(down)).is_err());
    }
}
