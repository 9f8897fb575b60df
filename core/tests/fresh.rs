//! Soft and hard expiry, stale-while-revalidate, fail-safe, loader timeouts and early
//! refresh (README, "Freshness"), each on every store (memory, standalone, shards, cluster)
//! in both I/O modes: `<rule>::<store>_<io>` in the test output. Async caches run on a
//! tokio runtime; blocking ones on the test's own thread with `block_on` and no runtime,
//! as Python's sync `Cache` runs them (refreshes on threads, timeouts on timer threads).
//!
//! The envelope's `fresh-until` is read against the cache's clock, so a mock clock makes
//! a value stale on every store. Redis expiry itself is real time: these tests keep the
//! hard TTL long and let a key expire by rewriting it with a 1 ms TTL (memory's expiry
//! runs on the mock clock). The paused-server case and the vectors are at the end.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;
use polycache::store::{self, Entry, Store};
use polycache::{
    block_on, Cache, Clock, Config, Error, ErrorKind, Freshness, Io, LoadOptions, MockClock, Value,
};
use tokio::sync::Semaphore;

use common::{Target, DEADLINE};

const FRESH: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(600);

/// A cache on `target` in a namespace of its own, with the mock clock, `TTL` and `FRESH`.
async fn open(
    target: Target,
    test: &str,
    tweak: impl FnOnce(Config) -> Config,
) -> (Cache, MockClock) {
    let config = target
        .config(&common::unique(test))
        .ttl(Some(TTL))
        .fresh_for(Some(FRESH));
    let (clock, mock) = Clock::mock();
    let cache = Cache::builder(tweak(config))
        .clock(clock)
        .io(target.io)
        .build()
        .await
        .unwrap();
    (cache, mock)
}

fn fails() -> Error {
    Error::new(ErrorKind::Loader, "database down")
}

/// Waits (polling, with a deadline) until `done` holds; for conditions that need the
/// cache's own futures.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

/// Polls `get_entry` until it answers `want` fresh.
async fn until_fresh(cache: &Cache, key: &str, want: Value) {
    until("a fresh value", async || {
        let got = cache
            .get_entry(key, || async { Err(fails()) }, &LoadOptions::default())
            .await;
        got.is_ok_and(|e| e.freshness == Freshness::Fresh && e.value == want)
    })
    .await;
}

/// The hard expiry, for real: `key` is rewritten with a 1 ms TTL (and the mock clock moved
/// past it for memory://) and read until the store no longer has it.
async fn expire(cache: &Cache, clock: &MockClock, key: &str) {
    let redis_key = cache.redis_key(key).unwrap();
    let store = cache.store();
    let bytes = store
        .get(&redis_key)
        .await
        .unwrap()
        .expect("the key is there");
    let entry = Entry {
        key: redis_key.clone(),
        value: bytes,
        ttl: Some(Duration::from_millis(1)),
    };
    store.set(entry).await.unwrap();
    clock.advance(Duration::from_millis(1));
    until("the key expired", async || {
        store.get(&redis_key).await.unwrap().is_none()
    })
    .await;
}

/// Rule 1, soft and hard expiry: the envelope says fresh-until = created-at + `fresh_for`;
/// a read before it is fresh, a read at it stale; once the TTL ran out the key is a miss
/// and the loader's value comes back (fail-safe off: nothing of the old value is served).
async fn soft_and_hard_expiry(target: Target) {
    let (cache, clock) = open(target, "expiry", |c| c).await;
    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    let bytes = cache
        .store()
        .get(&cache.redis_key("k").unwrap())
        .await
        .unwrap()
        .unwrap();
    let meta = polycache::codec::decode(&bytes).unwrap().0.meta;
    assert_eq!(meta.created_at_ms, Clock::mock().0.now_ms());
    assert_eq!(
        meta.fresh_until_ms,
        meta.created_at_ms + FRESH.as_millis() as u64
    );
    let ttl = cache.ttl("k").await.unwrap().expect("a TTL");
    assert!(
        ttl > TTL - Duration::from_secs(60),
        "hard expiry is the ttl: {ttl:?}"
    );

    let failing = || async { Err(fails()) };
    clock.advance(FRESH - Duration::from_millis(1));
    let fresh = cache.get_entry("k", failing, &options).await.unwrap();
    assert_eq!(fresh.freshness, Freshness::Fresh, "1 ms before fresh-until");
    clock.advance(Duration::from_millis(1));
    let stale = cache.get_entry("k", failing, &options).await.unwrap();
    assert_eq!(
        (stale.value, stale.freshness),
        (Value::from(1), Freshness::Stale),
        "at fresh-until"
    );
    // The stale read's refresh (with the failing loader) has ended before the expiry.
    until("the refresh failed", async || {
        cache.metrics().load_errors == 1
    })
    .await;

    expire(&cache, &clock, "k").await;
    let err = cache.get_entry("k", failing, &options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader, "expired: no stale value");
    let loaded = cache
        .get_entry("k", || async { Ok(Value::from(2)) }, &options)
        .await
        .unwrap();
    assert_eq!(
        (loaded.value, loaded.freshness),
        (Value::from(2), Freshness::Fresh)
    );
    let m = cache.metrics();
    assert_eq!((m.stale_served, m.fail_safe_served), (1, 0), "{m:?}");
}

/// Fresh until `fresh_for`, then stale: every stale caller gets the old value at once (the
/// refresh is held on a semaphore until they all returned), one refresh runs, and later
/// reads see its value fresh.
async fn stale_while_revalidate(target: Target) {
    let (cache, clock) = open(target, "swr", |c| c).await;
    let options = LoadOptions::default();
    let first = cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    assert_eq!(
        (first.value, first.freshness),
        (Value::from(1), Freshness::Fresh)
    );
    clock.advance(FRESH - Duration::from_millis(1));
    let hit = cache
        .get_entry("k", || async { panic!("fresh: no load") }, &options)
        .await
        .unwrap();
    assert_eq!(hit.freshness, Freshness::Fresh);
    assert_eq!(hit.age, Some(FRESH - Duration::from_millis(1)));

    clock.advance(Duration::from_millis(1));
    let gate = Arc::new(Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let stale = join_all((0..5).map(|_| {
        let (gate, calls) = (gate.clone(), calls.clone());
        cache.get_entry(
            "k",
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let _permit = gate.acquire().await.unwrap();
                Ok(Value::from(2))
            },
            &options,
        )
    }))
    .await;
    for entry in stale {
        let entry = entry.unwrap();
        assert!(entry.stale());
        assert_eq!(
            (entry.value, entry.freshness),
            (Value::from(1), Freshness::Stale)
        );
    }
    let m = cache.metrics();
    assert_eq!((m.stale_served, m.background_refreshes), (5, 1));
    gate.add_permits(1);
    until_fresh(&cache, "k", Value::from(2)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one refresh for five stale reads"
    );
    // A poll that read the stale value just before the refresh ended may start a refresh
    // of its own (with the poll's failing loader): only successful loads are counted here.
    let m = cache.metrics();
    assert_eq!(m.loads - m.load_errors, 2);
}

/// `get_or_load` (a borrowed loader) under `fresh_for`: the caller that claims the refresh
/// runs it inline and gets the new value; a caller meanwhile gets the stale value.
async fn borrowed_loader_refreshes_inline(target: Target) {
    let (cache, clock) = open(target, "inline", |c| c).await;
    cache
        .get_or_load("k", || async { Ok(Value::from(1)) }, None)
        .await
        .unwrap();
    clock.advance(FRESH);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let refresher = cache.get_or_load(
        "k",
        || async {
            started_tx.send(()).unwrap();
            rx.await.unwrap();
            Ok(Value::from(2))
        },
        None,
    );
    // The other caller reads once the refresher holds the refresh.
    let other = async {
        started.await.unwrap();
        let got = cache
            .get_or_load("k", || async { panic!("one refresh") }, None)
            .await;
        tx.send(()).unwrap();
        got
    };
    let (refreshed, other) = tokio::join!(refresher, other);
    assert_eq!(refreshed.unwrap(), Value::from(2));
    assert_eq!(other.unwrap(), Value::from(1));
    assert_eq!(cache.metrics().stale_served, 1);
}

/// Per call: `fresh_for` overrides the config's (0: no fresh window for this write).
async fn per_call_fresh_for(target: Target) {
    let (cache, clock) = open(target, "per-call", |c| c.fresh_for(None)).await;
    let short = LoadOptions {
        fresh_for: Some(Duration::from_secs(1)),
        ..LoadOptions::default()
    };
    cache
        .get_entry("a", || async { Ok(Value::from(1)) }, &short)
        .await
        .unwrap();
    cache
        .get_entry(
            "b",
            || async { Ok(Value::from(1)) },
            &LoadOptions::default(),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let never = || async { Err(fails()) };
    let a = cache.get_entry("a", never, &short).await.unwrap();
    let b = cache.get_entry("b", never, &short).await.unwrap();
    assert_eq!(a.freshness, Freshness::Stale, "a was written fresh for 1 s");
    assert_eq!(
        b.freshness,
        Freshness::Fresh,
        "b was written with no fresh window"
    );
}

/// Fail-safe: after the value is gone and the loader fails, the last good value is served
/// up to `max_stale` past its freshness; the loader is not called again for
/// `fail_safe_backoff`; off, the loader's error comes back.
async fn fail_safe_after_expiry(target: Target) {
    let backoff = Duration::from_secs(30);
    let (cache, clock) = open(target, "fail-safe", |c| {
        c.max_stale(Duration::from_secs(600))
            .fail_safe_backoff(backoff)
    })
    .await;
    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    expire(&cache, &clock, "k").await;
    clock.advance(FRESH + Duration::from_secs(1) - Duration::from_millis(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = |calls: &Arc<AtomicUsize>| {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<Value, _>(fails())
        }
    };
    let served = cache
        .get_entry("k", failing(&calls), &options)
        .await
        .unwrap();
    assert_eq!(
        (served.value, served.freshness),
        (Value::from(1), Freshness::FailSafe)
    );
    assert_eq!(served.age, Some(FRESH + Duration::from_secs(1)));
    let again = cache
        .get_entry("k", failing(&calls), &options)
        .await
        .unwrap();
    assert_eq!(again.freshness, Freshness::FailSafe);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "backing off: the loader is not called"
    );
    clock.advance(backoff);
    cache
        .get_entry("k", failing(&calls), &options)
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "after the backoff the loader is tried"
    );
    let m = cache.metrics();
    assert_eq!((m.fail_safe_served, m.load_errors), (3, 2));

    // Off for this call: the error.
    let off = LoadOptions {
        max_stale: Some(Duration::ZERO),
        ..LoadOptions::default()
    };
    let err = cache
        .get_entry("k", failing(&calls), &off)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader);

    // Past max_stale: the error too.
    clock.advance(Duration::from_secs(600));
    let err = cache
        .get_entry("k", failing(&calls), &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader);

    // A load that works ends it.
    let loaded = cache
        .get_entry("k", || async { Ok(Value::from(3)) }, &options)
        .await
        .unwrap();
    assert_eq!(
        (loaded.value, loaded.freshness),
        (Value::from(3), Freshness::Fresh)
    );
}

/// The real store behind a switch: while `down`, reads and writes fail with a connection
/// error, as an unreachable Redis does (the fault suite pauses and kills real servers;
/// this puts the same failure on every topology).
#[derive(Debug)]
struct Switch {
    inner: Arc<dyn Store>,
    down: AtomicBool,
}

impl Switch {
    fn check(&self) -> polycache::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Connection, "switched off"));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Switch {
    async fn get(&self, key: &str) -> polycache::Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> polycache::Result<Vec<Option<Vec<u8>>>> {
        self.check()?;
        self.inner.get_many(keys).await
    }
    async fn set(&self, entry: Entry) -> polycache::Result<()> {
        self.check()?;
        self.inner.set(entry).await
    }
    async fn set_many(&self, entries: Vec<Entry>) -> polycache::Result<()> {
        self.check()?;
        self.inner.set_many(entries).await
    }
    async fn delete(&self, key: &str) -> polycache::Result<bool> {
        self.check()?;
        self.inner.delete(key).await
    }
    async fn ttl(&self, key: &str) -> polycache::Result<Option<Duration>> {
        self.check()?;
        self.inner.ttl(key).await
    }
}

/// Rule 3 with the store unreachable: fail-safe on, the last good value (the loader is
/// not called: the value may well be in Redis still); off, the cache fails open and
/// loads, and a failing loader's error comes back.
async fn fail_safe_when_the_store_fails(target: Target) {
    let config = target
        .config(&common::unique("store-down"))
        .ttl(Some(TTL))
        .fresh_for(Some(FRESH))
        .max_stale(Duration::from_secs(600));
    let (clock, mock) = Clock::mock();
    let inner = store::open(&config, clock.clone(), target.io)
        .await
        .unwrap();
    let switch = Arc::new(Switch {
        inner,
        down: AtomicBool::new(false),
    });
    let cache = Cache::builder(config)
        .clock(clock)
        .io(target.io)
        .store(switch.clone())
        .build()
        .await
        .unwrap();
    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    mock.advance(FRESH);
    switch.down.store(true, Ordering::SeqCst);
    let served = cache
        .get_entry("k", || async { panic!("fail-safe: no load") }, &options)
        .await
        .unwrap();
    assert_eq!(
        (served.value, served.freshness, served.age),
        (Value::from(1), Freshness::FailSafe, Some(FRESH))
    );
    let off = LoadOptions {
        max_stale: Some(Duration::ZERO),
        ..LoadOptions::default()
    };
    let loaded = cache
        .get_entry("k", || async { Ok(Value::from(2)) }, &off)
        .await
        .unwrap();
    assert_eq!(
        (loaded.value, loaded.freshness),
        (Value::from(2), Freshness::Fresh),
        "off: fails open"
    );
    let err = cache
        .get_entry("k", || async { Err(fails()) }, &off)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader, "{err}");
    // Past max_stale the fail-safe value is gone: the loader runs.
    mock.advance(Duration::from_secs(600) + Duration::from_millis(1));
    let late = cache
        .get_entry("k", || async { Ok(Value::from(3)) }, &options)
        .await
        .unwrap();
    assert_eq!(late.value, Value::from(3));
    assert_eq!(cache.metrics().fail_safe_served, 1);
    switch.down.store(false, Ordering::SeqCst);
}

/// A stale value whose refresh fails stays served (stale) until its hard expiry; with
/// fail-safe on, the failed refresh backs off.
async fn failed_refresh_keeps_serving_stale(target: Target) {
    let (cache, clock) = open(target, "stale-fail", |c| {
        c.max_stale(Duration::from_secs(600))
    })
    .await;
    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    clock.advance(FRESH);
    let stale = cache
        .get_entry("k", || async { Err(fails()) }, &options)
        .await
        .unwrap();
    assert_eq!(
        (stale.value, stale.freshness),
        (Value::from(1), Freshness::Stale)
    );
    // Wait until the failed refresh has released its claim, then check the backoff: no
    // second refresh starts.
    until("the refresh ran", async || cache.metrics().load_errors >= 1).await;
    let again = cache
        .get_entry("k", || async { panic!("backing off") }, &options)
        .await
        .unwrap();
    assert_eq!(again.freshness, Freshness::Stale);
    assert_eq!(cache.metrics().background_refreshes, 1);
}

/// `hard_timeout`: a loader that never finishes is abandoned: a timeout error without a
/// fail-safe value, the last good value with one.
async fn hard_timeout_bounds_a_hanging_loader(target: Target) {
    let limit = Duration::from_millis(100);
    let (cache, clock) = open(target, "hard-timeout", |c| {
        c.hard_timeout(Some(limit))
            .max_stale(Duration::from_secs(600))
    })
    .await;
    let off = LoadOptions {
        max_stale: Some(Duration::ZERO),
        ..LoadOptions::default()
    };
    let hang = || std::future::pending::<polycache::Result<Value>>();
    let err = cache.get_entry("cold", hang, &off).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let err = cache.get_or_load("cold", hang, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "get_or_load too: {err}");

    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    expire(&cache, &clock, "k").await;
    let served = cache.get_entry("k", hang, &options).await.unwrap();
    assert_eq!(
        (served.value, served.freshness),
        (Value::from(1), Freshness::FailSafe)
    );
    assert_eq!(cache.metrics().loader_timeouts, 3);
}

/// `soft_timeout`: with a fail-safe value, a slow load answers with it after the soft
/// timeout, goes on, and stores its value when it finishes.
async fn soft_timeout_answers_then_stores(target: Target) {
    let (cache, clock) = open(target, "soft-timeout", |c| {
        c.soft_timeout(Some(Duration::from_millis(50)))
            .max_stale(Duration::from_secs(600))
    })
    .await;
    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    expire(&cache, &clock, "k").await;
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let slow = move || async move {
        let _permit = held.acquire().await.unwrap();
        Ok(Value::from(2))
    };
    let served = cache.get_entry("k", slow, &options).await.unwrap();
    assert_eq!(
        (served.value, served.freshness),
        (Value::from(1), Freshness::FailSafe)
    );
    assert_eq!(cache.metrics().loader_timeouts, 1);
    gate.add_permits(1);
    until("the slow load stored its value", async || {
        cache.get("k").await.unwrap() == Some(Value::from(2))
    })
    .await;
}

/// Early refresh (XFetch): a fresh value whose last load was slow, read with a large
/// `early_refresh_beta`, is answered fresh and refreshed in the background; with beta 0 it
/// is not. The stored envelope is written by hand to carry a 1 s load duration.
async fn early_refresh_before_staleness(target: Target) {
    let (cache, _clock) = open(target, "early", |c| c).await;
    let now = Clock::mock().0.now_ms();
    let write = |key: &str| {
        let meta = polycache::codec::Meta {
            created_at_ms: now,
            fresh_until_ms: now + FRESH.as_millis() as u64,
            load_ms: Some(1_000),
            ..Default::default()
        };
        let options = polycache::codec::EncodeOptions::default();
        Entry {
            key: cache.redis_key(key).unwrap(),
            value: polycache::codec::encode(&Value::from(1), &options, &meta).unwrap(),
            ttl: Some(TTL),
        }
    };
    cache.store().set(write("off")).await.unwrap();
    cache.store().set(write("on")).await.unwrap();
    let off = cache
        .get_entry(
            "off",
            || async { panic!("beta 0: no early refresh") },
            &LoadOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (off.value, off.freshness),
        (Value::from(1), Freshness::Fresh)
    );
    // gap = 1000 ms * 1e9 * -ln(1 - random): beyond any fresh window unless random is 0.
    let eager = LoadOptions {
        early_refresh_beta: Some(1e9),
        ..LoadOptions::default()
    };
    let on = cache
        .get_entry("on", || async { Ok(Value::from(2)) }, &eager)
        .await
        .unwrap();
    assert_eq!((on.value, on.freshness), (Value::from(1), Freshness::Fresh));
    until("the early refresh stored", async || {
        cache.get("on").await.unwrap() == Some(Value::from(2))
    })
    .await;
    let m = cache.metrics();
    assert_eq!((m.early_refreshes, m.stale_served, m.loads), (1, 0, 1));
    // The refreshed value records its own load duration.
    let bytes = cache
        .store()
        .get(&cache.redis_key("on").unwrap())
        .await
        .unwrap()
        .unwrap();
    let (header, _) = polycache::codec::decode(&bytes).unwrap();
    assert!(header.meta.load_ms.is_some());
}

on_every_store! {
    async soft_and_hard_expiry,
    async stale_while_revalidate,
    async borrowed_loader_refreshes_inline,
    async per_call_fresh_for,
    async fail_safe_after_expiry,
    async fail_safe_when_the_store_fails,
    async failed_refresh_keeps_serving_stale,
    async hard_timeout_bounds_a_hanging_loader,
    async soft_timeout_answers_then_stores,
    async early_refresh_before_staleness,
}

/// Redis paused (SIGSTOP): with fail-safe on, the last good value within one command
/// timeout; off, a loaded value (the cache fails open) — never a hang.
#[test]
fn paused_redis_serves_fail_safe() {
    for io in [Io::Async, Io::Blocking] {
        let server = polycache_harness::Server::start(&[]).unwrap();
        let timeout = Duration::from_millis(300);
        let config = Config::from_url(&server.url())
            .unwrap()
            .namespace(common::unique("paused"))
            .command_timeout(timeout)
            .ttl(Some(TTL))
            .fresh_for(Some(FRESH))
            .max_stale(Duration::from_secs(600));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let run = |future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>| match io {
            Io::Async => runtime.block_on(future),
            Io::Blocking => block_on(future),
        };
        let cache = match io {
            Io::Async => runtime.block_on(Cache::new(config)).unwrap(),
            Io::Blocking => block_on(Cache::builder(config).io(io).build()).unwrap(),
        };
        let options = LoadOptions::default();
        run(Box::pin(async {
            cache
                .get_entry("k", || async { Ok(Value::from(1)) }, &options)
                .await
                .unwrap();
            server.pause();
            let started = Instant::now();
            let served = cache
                .get_entry("k", || async { Err(fails()) }, &options)
                .await;
            let off = LoadOptions {
                max_stale: Some(Duration::ZERO),
                ..LoadOptions::default()
            };
            let loaded = cache
                .get_entry("k", || async { Ok(Value::from(9)) }, &off)
                .await;
            let elapsed = started.elapsed();
            server.resume();
            let served = served.unwrap();
            assert_eq!(
                (served.value, served.freshness),
                (Value::from(1), Freshness::FailSafe),
                "{io:?}"
            );
            assert_eq!(loaded.unwrap().value, Value::from(9), "{io:?}: fails open");
            assert!(
                elapsed < Duration::from_secs(5),
                "{io:?}: bounded, took {elapsed:?}"
            );
        }));
    }
}

/// tests/vectors/xfetch.json: the early-refresh decision, case by case.
#[test]
fn xfetch_vectors() {
    let cases = polycache_harness::notation::vectors("xfetch.json");
    assert!(cases.len() >= 60);
    for case in cases {
        let u = |field: &str| case[field].as_u64().unwrap();
        let f = |field: &str| case[field].as_f64().unwrap();
        let got = polycache::contract::should_refresh_early(
            u("now"),
            u("freshUntil"),
            u("delta"),
            f("beta"),
            f("random"),
        );
        assert_eq!(got, case["refresh"].as_bool().unwrap(), "{}", case["name"]);
    }
}

/// Envelope extension `03` (the last load's duration): the envelope.json cases that carry
/// `loadMs` decode to it, and a written duration reads back.
#[test]
fn load_duration_extension_vectors() {
    let mut seen = 0;
    for case in polycache_harness::notation::vectors("envelope.json") {
        let Some(load_ms) = case.get("loadMs") else {
            continue;
        };
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let (header, _) = polycache::codec::decode(&bytes).unwrap();
        assert_eq!(
            header.meta.load_ms,
            Some(load_ms.as_u64().unwrap() as u32),
            "{}",
            case["name"]
        );
        seen += 1;
    }
    assert!(seen >= 2);
    let meta = polycache::codec::Meta {
        load_ms: Some(7),
        ..Default::default()
    };
    let options = polycache::codec::EncodeOptions::default();
    let bytes = polycache::codec::encode(&Value::from(1), &options, &meta).unwrap();
    assert_eq!(polycache::codec::decode(&bytes).unwrap().0.meta, meta);
}
