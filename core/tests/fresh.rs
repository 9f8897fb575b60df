//! Soft expiry, stale-while-revalidate and fail-safe (README, "Freshness"), with the mock
//! clock: the envelope's `fresh-until` is read against the cache's clock, so a mock clock
//! makes a value stale on every store (Redis expiry itself is real time; these tests keep
//! the hard TTL long and delete the key to stand for its expiry). Memory, Redis (async)
//! and Redis with blocking stores; the plain-thread and paused-server cases at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use polycache::{
    block_on, Cache, Clock, Config, Error, ErrorKind, Freshness, Io, LoadOptions, MockClock, Value,
};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Redis,
    RedisBlocking,
}

const FRESH: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(600);
const DEADLINE: Duration = Duration::from_secs(10);

fn namespace(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn open(
    backend: Backend,
    test: &str,
    tweak: impl FnOnce(Config) -> Config,
) -> (Cache, MockClock) {
    let url = match backend {
        Backend::Memory => "memory://".to_owned(),
        _ => polycache_harness::shared()
            .standalone
            .clone()
            .expect("standalone"),
    };
    let config = Config::from_url(&url)
        .unwrap()
        .namespace(namespace(test))
        .ttl(Some(TTL))
        .fresh_for(Some(FRESH));
    let (clock, mock) = Clock::mock();
    let mut builder = Cache::builder(tweak(config)).clock(clock);
    if backend == Backend::RedisBlocking {
        builder = builder.io(Io::Blocking);
    }
    (builder.build().await.unwrap(), mock)
}

fn fails() -> Error {
    Error::new(ErrorKind::Loader, "database down")
}

/// Polls `get_entry` until it answers `want` fresh, within [`DEADLINE`].
async fn until_fresh(cache: &Cache, key: &str, want: Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = cache
            .get_entry(key, || async { Err(fails()) }, &LoadOptions::default())
            .await;
        if let Ok(entry) = &got {
            if entry.freshness == Freshness::Fresh && entry.value == want {
                return;
            }
        }
        assert!(Instant::now() < deadline, "never fresh: last {got:?}");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

/// Fresh until `fresh_for`, then stale: every stale caller gets the old value at once (the
/// refresh is held on a semaphore until they all returned), one refresh runs, and later
/// reads see its value fresh.
async fn stale_while_revalidate(backend: Backend) {
    let (cache, clock) = open(backend, "swr", |c| c).await;
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
async fn borrowed_loader_refreshes_inline(backend: Backend) {
    let (cache, clock) = open(backend, "inline", |c| c).await;
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
async fn per_call_fresh_for(backend: Backend) {
    let (cache, clock) = open(backend, "per-call", |c| c.fresh_for(None)).await;
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
async fn fail_safe_after_expiry(backend: Backend) {
    let backoff = Duration::from_secs(30);
    let (cache, clock) = open(backend, "fail-safe", |c| {
        c.max_stale(Duration::from_secs(600))
            .fail_safe_backoff(backoff)
    })
    .await;
    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    // The hard expiry, without waiting for it.
    cache
        .store()
        .delete(&cache.redis_key("k").unwrap())
        .await
        .unwrap();
    clock.advance(FRESH + Duration::from_secs(1));
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

/// A stale value whose refresh fails stays served (stale) until its hard expiry; with
/// fail-safe on, the failed refresh backs off.
async fn failed_refresh_keeps_serving_stale(backend: Backend) {
    let (cache, clock) = open(backend, "stale-fail", |c| {
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
    // Poll until the failed refresh has released its claim, then check the backoff: no
    // second refresh starts.
    let deadline = Instant::now() + DEADLINE;
    while cache.metrics().load_errors < 1 {
        assert!(Instant::now() < deadline, "the refresh never ran");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    let again = cache
        .get_entry("k", || async { panic!("backing off") }, &options)
        .await
        .unwrap();
    assert_eq!(again.freshness, Freshness::Stale);
    assert_eq!(cache.metrics().background_refreshes, 1);
}

/// `hard_timeout`: a loader that never finishes is abandoned: a timeout error without a
/// fail-safe value, the last good value with one.
async fn hard_timeout_bounds_a_hanging_loader(backend: Backend) {
    let limit = Duration::from_millis(100);
    let (cache, _clock) = open(backend, "hard-timeout", |c| {
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
    cache
        .store()
        .delete(&cache.redis_key("k").unwrap())
        .await
        .unwrap();
    let served = cache.get_entry("k", hang, &options).await.unwrap();
    assert_eq!(
        (served.value, served.freshness),
        (Value::from(1), Freshness::FailSafe)
    );
    assert_eq!(cache.metrics().loader_timeouts, 3);
}

/// `soft_timeout`: with a fail-safe value, a slow load answers with it after the soft
/// timeout, goes on, and stores its value when it finishes.
async fn soft_timeout_answers_then_stores(backend: Backend) {
    let (cache, _clock) = open(backend, "soft-timeout", |c| {
        c.soft_timeout(Some(Duration::from_millis(50)))
            .max_stale(Duration::from_secs(600))
    })
    .await;
    let options = LoadOptions::default();
    cache
        .get_entry("k", || async { Ok(Value::from(1)) }, &options)
        .await
        .unwrap();
    cache
        .store()
        .delete(&cache.redis_key("k").unwrap())
        .await
        .unwrap();
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
    let deadline = Instant::now() + DEADLINE;
    while cache.get("k").await.unwrap() != Some(Value::from(2)) {
        assert!(
            Instant::now() < deadline,
            "the slow load never stored its value"
        );
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

/// Early refresh (XFetch): a fresh value whose last load was slow, read with a large
/// `early_refresh_beta`, is answered fresh and refreshed in the background; with beta 0 it
/// is not. The stored envelope is written by hand to carry a 1 s load duration.
async fn early_refresh_before_staleness(backend: Backend) {
    let (cache, _clock) = open(backend, "early", |c| c).await;
    let now = Clock::mock().0.now_ms();
    let write = |key: &str| {
        let meta = polycache::codec::Meta {
            created_at_ms: now,
            fresh_until_ms: now + FRESH.as_millis() as u64,
            load_ms: Some(1_000),
            ..Default::default()
        };
        let options = polycache::codec::EncodeOptions::default();
        polycache::Entry {
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
    let deadline = Instant::now() + DEADLINE;
    while cache.get("on").await.unwrap() != Some(Value::from(2)) {
        assert!(Instant::now() < deadline, "the early refresh never stored");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
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

macro_rules! suite {
    ($($module:ident => $backend:expr),* $(,)?) => {$(
        mod $module {
            use super::Backend;
            const B: Backend = $backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_while_revalidate() { super::stale_while_revalidate(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn borrowed_loader_refreshes_inline() { super::borrowed_loader_refreshes_inline(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn per_call_fresh_for() { super::per_call_fresh_for(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fail_safe_after_expiry() { super::fail_safe_after_expiry(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failed_refresh_keeps_serving_stale() { super::failed_refresh_keeps_serving_stale(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn hard_timeout_bounds_a_hanging_loader() { super::hard_timeout_bounds_a_hanging_loader(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn soft_timeout_answers_then_stores() { super::soft_timeout_answers_then_stores(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn early_refresh_before_staleness() { super::early_refresh_before_staleness(B).await }
        }
    )*};
}

suite! {
    memory => Backend::Memory,
    redis => Backend::Redis,
    redis_blocking => Backend::RedisBlocking,
}

/// Blocking stores without a runtime (Python's sync `Cache`): the refresh runs on a thread
/// of its own while the stale caller returns.
#[test]
fn blocking_refresh_runs_on_a_thread() {
    let url = polycache_harness::shared()
        .standalone
        .clone()
        .expect("standalone");
    let config = Config::from_url(&url)
        .unwrap()
        .namespace(namespace("thread"))
        .ttl(Some(TTL))
        .fresh_for(Some(FRESH));
    let (clock, mock) = Clock::mock();
    let cache = block_on(Cache::builder(config).clock(clock).io(Io::Blocking).build()).unwrap();
    let options = LoadOptions::default();
    block_on(cache.get_entry("k", || async { Ok(Value::from(1)) }, &options)).unwrap();
    mock.advance(FRESH);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let loader = move || async move {
        rx.recv().unwrap();
        Ok(Value::from(2))
    };
    let stale = block_on(cache.get_entry("k", loader, &options)).unwrap();
    assert_eq!(
        (stale.value, stale.freshness),
        (Value::from(1), Freshness::Stale)
    );
    tx.send(()).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = block_on(cache.get_entry("k", || async { Err(fails()) }, &options)).unwrap();
        if got.freshness == Freshness::Fresh {
            assert_eq!(got.value, Value::from(2));
            break;
        }
        assert!(Instant::now() < deadline, "the thread never refreshed");
        std::thread::yield_now();
    }
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
            .namespace(namespace("paused"))
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

/// Blocking stores on a plain thread: `hard_timeout` runs on a timer thread.
#[test]
fn blocking_hard_timeout_without_a_runtime() {
    let url = polycache_harness::shared()
        .standalone
        .clone()
        .expect("standalone");
    let config = Config::from_url(&url)
        .unwrap()
        .namespace(namespace("blocking-hard"))
        .hard_timeout(Some(Duration::from_millis(100)));
    let cache = block_on(Cache::builder(config).io(Io::Blocking).build()).unwrap();
    let (_keep, never) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let err = block_on(cache.get_or_load(
        "k",
        || async {
            let _ = never.await;
            Ok(Value::from(1))
        },
        None,
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < DEADLINE);
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
