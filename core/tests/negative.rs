//! Negative caching (README, "Freshness and resilience"; FORMAT.md §1, extension `04`): a
//! loader's "not found" is stored for `negative_ttl` as an envelope that says so, and read
//! back as "not found" without calling the loader, on every store in both I/O modes.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use polycache::codec::{self, Meta};
use polycache::{Cache, Clock, Config, Error, LoadOptions, MockClock, Value};

use common::{Driver, Target, DEADLINE};

const NEGATIVE: Duration = Duration::from_secs(600);

fn open(
    driver: &Driver,
    target: Target,
    test: &str,
    tweak: impl FnOnce(Config) -> Config,
) -> Cache {
    let config = target.config(&common::unique(test)).negative_ttl(NEGATIVE);
    driver.open(tweak(config)).expect("cache")
}

/// A loader that counts its calls and answers "not found".
fn not_found(
    calls: &Arc<AtomicUsize>,
) -> impl FnOnce() -> std::future::Ready<polycache::Result<Value>> {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err(Error::not_found()))
    }
}

/// The loader says "not found" once: the cache stores that for `negative_ttl` (a
/// not-found envelope with that Redis TTL) and answers "not found" from it without the
/// loader; `get` gives `None` without counting a miss; a `set` replaces it.
fn not_found_is_cached_for_negative_ttl(target: Target) {
    let driver = Driver::new(target.io);
    let cache = open(&driver, target, "negative", |c| c);
    let calls = Arc::new(AtomicUsize::new(0));
    let first = driver.run(cache.get_or_load("k", not_found(&calls), None));
    assert!(first.unwrap_err().is_not_found());
    let m = cache.metrics();
    assert_eq!(
        (m.loads, m.load_errors, m.negative_stored),
        (1, 0, 1),
        "{m:?}"
    );

    let bytes = driver
        .run(cache.store().get(&cache.redis_key("k").unwrap()))
        .unwrap()
        .expect("the not-found envelope is stored");
    let (header, value) = codec::decode(&bytes).unwrap();
    assert!(header.meta.not_found && value == Value::Nil, "{header:?}");
    let ttl = driver.run(cache.ttl("k")).unwrap().expect("a TTL");
    assert!(
        ttl <= NEGATIVE && ttl > NEGATIVE - Duration::from_secs(60),
        "{ttl:?}"
    );

    for _ in 0..3 {
        let again = driver.run(cache.get_or_load("k", not_found(&calls), None));
        assert!(again.unwrap_err().is_not_found());
        let entry = driver.run(cache.get_entry("k", not_found(&calls), &LoadOptions::default()));
        assert!(entry.unwrap_err().is_not_found());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "answered from the cache");
    let misses = cache.metrics().misses;
    assert_eq!(driver.run(cache.get("k")).unwrap(), None);
    assert_eq!(driver.run(cache.get_many(&["k"])).unwrap(), vec![None]);
    let m = cache.metrics();
    assert_eq!(m.misses, misses, "a negative hit is not a miss: {m:?}");
    assert_eq!(m.negative_hits, 8, "{m:?}");

    driver.run(cache.set("k", &Value::from(1), None)).unwrap();
    assert_eq!(driver.run(cache.get("k")).unwrap(), Some(Value::from(1)));
}

/// With `negative_ttl` 0 (the default) "not found" is returned, not stored: the next call
/// asks the loader again.
fn not_found_is_not_stored_when_off(target: Target) {
    let driver = Driver::new(target.io);
    let cache = open(&driver, target, "negative-off", |c| {
        c.negative_ttl(Duration::ZERO)
    });
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let got = driver.run(cache.get_or_load("k", not_found(&calls), None));
        assert!(got.unwrap_err().is_not_found());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(driver
        .run(cache.store().get(&cache.redis_key("k").unwrap()))
        .unwrap()
        .is_none());
    assert_eq!(cache.metrics().negative_stored, 0);
    // The per-call option turns it on for one call.
    let options = LoadOptions {
        negative_ttl: Some(NEGATIVE),
        ..LoadOptions::default()
    };
    let got = driver.run(cache.get_entry("k", not_found(&calls), &options));
    assert!(got.unwrap_err().is_not_found());
    assert_eq!(cache.metrics().negative_stored, 1);
    let got = driver.run(cache.get_or_load("k", not_found(&calls), None));
    assert!(got.unwrap_err().is_not_found());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A stale value whose refresh finds nothing: the stale value is answered meanwhile, then
/// the key reads "not found"; fail-safe does not bring the old value back.
fn a_refresh_that_finds_nothing_stores_not_found(target: Target) {
    let driver = Driver::new(target.io);
    let fresh = Duration::from_secs(10);
    let (clock, mock): (Clock, MockClock) = Clock::mock();
    let config = target
        .config(&common::unique("negative-refresh"))
        .negative_ttl(NEGATIVE)
        .fresh_for(Some(fresh))
        .max_stale(Duration::from_secs(600));
    let cache = driver
        .build(Cache::builder(config).clock(clock))
        .expect("cache");
    let options = LoadOptions::default();
    let loaded = driver.run(cache.get_or_load_with("k", || async { Ok(Value::from(1)) }, &options));
    assert_eq!(loaded.unwrap(), Value::from(1));
    mock.advance(fresh);
    let calls = Arc::new(AtomicUsize::new(0));
    let stale = driver
        .run(cache.get_entry("k", not_found(&calls), &options))
        .unwrap();
    assert_eq!(stale.value, Value::from(1), "the stale value, at once");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = driver.run(cache.get_entry("k", not_found(&calls), &options));
        match got {
            Err(err) if err.is_not_found() => break,
            other => assert!(Instant::now() < deadline, "still {other:?}"),
        }
        std::thread::yield_now();
    }
    assert_eq!(driver.run(cache.get("k")).unwrap(), None);
    assert_eq!(cache.metrics().fail_safe_served, 0);
}

on_every_store!(
    not_found_is_cached_for_negative_ttl,
    not_found_is_not_stored_when_off,
    a_refresh_that_finds_nothing_stores_not_found
);

/// With the stampede lock, a caller waiting for the holder gets the holder's "not found"
/// (read from the envelope the holder wrote), without loading.
fn a_lock_waiter_gets_the_holders_not_found(target: Target) {
    let driver = Arc::new(Driver::new(target.io));
    let namespace = common::unique("negative-lock");
    let config = |c: Config| c.negative_ttl(NEGATIVE).stampede_lock(true);
    let holder = driver.open(config(target.config(&namespace))).unwrap();
    let waiter = driver.open(config(target.config(&namespace))).unwrap();
    let (started_tx, started) = mpsc::channel::<()>();
    let release = Arc::new(AtomicBool::new(false));
    let held = {
        let (holder, driver, release) = (holder.clone(), driver.clone(), release.clone());
        std::thread::spawn(move || {
            driver.run(holder.get_or_load(
                "k",
                || async move {
                    started_tx.send(()).unwrap();
                    while !release.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    Err(Error::not_found())
                },
                None,
            ))
        })
    };
    started.recv().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let waiting = {
        let (waiter, driver, calls) = (waiter.clone(), driver.clone(), calls.clone());
        std::thread::spawn(move || driver.run(waiter.get_or_load("k", not_found(&calls), None)))
    };
    common::eventually("the waiter missed", || waiter.metrics().misses >= 1);
    release.store(true, Ordering::SeqCst);
    assert!(held.join().unwrap().unwrap_err().is_not_found());
    assert!(waiting.join().unwrap().unwrap_err().is_not_found());
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the waiter did not load");
    assert_eq!(waiter.metrics().loads, 0);
}

on_every_redis_store!(a_lock_waiter_gets_the_holders_not_found);

/// The envelope a cache writes for "not found" is the vector `decode-not-found` byte for
/// byte (at its created-at), and every `notFound` vector decodes as one.
#[test]
fn not_found_envelope_vectors() {
    let mut seen = 0;
    for case in polycache_harness::notation::vectors("envelope.json") {
        if case.get("notFound").and_then(|v| v.as_bool()) != Some(true) {
            continue;
        }
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let (header, value) = codec::decode(&bytes).unwrap();
        assert!(header.meta.not_found, "{}", case["name"]);
        assert_eq!(value, Value::Nil);
        if case["name"] == "decode-not-found" {
            let meta = Meta {
                created_at_ms: case["createdAt"].as_u64().unwrap(),
                ..Meta::default()
            };
            assert_eq!(codec::encode_not_found(&meta), bytes);
        }
        seen += 1;
    }
    assert!(seen >= 3);
}
