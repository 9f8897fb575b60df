//! The stampede lock (docs/FORMAT.md §6) on real servers: standalone, shards and cluster,
//! in both I/O modes. Two caches with their own connections stand for two processes; every
//! caller is a thread (`block_on` for blocking caches, a shared runtime for async ones).
//! No sleeps as synchronisation: loaders hold on latches, waits poll with a deadline. A
//! fault at one exact step of the protocol (the read after a `SET NX`) comes from a store
//! wrapper around the real one ([`Faulty`]).
//! Each scenario runs on every topology in both modes (`<scenario>::<store>_<io>`).

#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use polycache::lock::Script;
use polycache::store::{self, BreakerStats, Entry, Io};
use polycache::{Cache, Clock, Config, Value};
use tokio::sync::oneshot;

use common::{eventually as wait_until, unique, Driver, Store, Target};

const STANDALONE: Target = Target {
    store: Store::Standalone,
    io: Io::Async,
};

/// A cache with its own connections (a "process") on `topology` in `namespace`.
fn open(
    driver: &Driver,
    target: Target,
    namespace: &str,
    tweak: impl FnOnce(Config) -> Config,
) -> Cache {
    driver
        .open(tweak(target.config(namespace).stampede_lock(true)))
        .expect("cache")
}

/// 2 caches × `CALLERS` threads each × `KEYS` keys, all cold: the loader holds until every
/// caller has missed, and each key is loaded exactly once in both caches together.
fn one_load_per_key(target: Target) {
    const KEYS: usize = 5;
    const CALLERS: usize = 8;
    let driver = Arc::new(Driver::new(target.io));
    let namespace = unique("lock-one");
    let caches: Vec<Cache> = (0..2)
        .map(|_| open(&driver, target, &namespace, |c| c))
        .collect();
    let loads: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let total = (caches.len() * KEYS * CALLERS) as u64;
    let barrier = Arc::new(Barrier::new(caches.len() * KEYS * CALLERS));
    let mut threads = Vec::new();
    for cache in &caches {
        for key in 0..KEYS {
            for _ in 0..CALLERS {
                let (cache, driver, barrier, loads) = (
                    cache.clone(),
                    driver.clone(),
                    barrier.clone(),
                    loads.clone(),
                );
                let all = caches.clone();
                threads.push(std::thread::spawn(move || {
                    let key = format!("k{key}");
                    barrier.wait();
                    let load_key = key.clone();
                    driver.run(cache.get_or_load(
                        &key,
                        || async move {
                            *loads.lock().unwrap().entry(load_key.clone()).or_default() += 1;
                            // The latch: every caller of both caches has missed.
                            wait_until("every caller missed", || {
                                all.iter().map(|c| c.metrics().misses).sum::<u64>() >= total
                            });
                            Ok(Value::from(format!("v-{load_key}")))
                        },
                        None,
                    ))
                }));
            }
        }
    }
    for thread in threads {
        let value = thread.join().unwrap().unwrap();
        assert!(matches!(value, Value::Str(ref s) if s.starts_with("v-k")));
    }
    let loads = loads.lock().unwrap();
    assert_eq!(loads.len(), KEYS, "{loads:?}");
    assert!(
        loads.values().all(|&n| n == 1),
        "a key loaded twice: {loads:?}"
    );
    let metrics: Vec<_> = caches.iter().map(Cache::metrics).collect();
    let acquired: u64 = metrics.iter().map(|m| m.locks_acquired).sum();
    let waited: u64 = metrics.iter().map(|m| m.locks_waited).sum();
    assert_eq!(acquired, KEYS as u64, "{metrics:?}");
    assert!(waited >= 1, "the other cache waited: {metrics:?}");
}

/// The holder stalls past its lease: another cache takes over and writes; the stalled
/// holder's late write is refused by the fence, so the newer value stays.
fn takeover_and_fence(target: Target) {
    let driver = Arc::new(Driver::new(target.io));
    let namespace = unique("lock-fence");
    let lease = |c: Config| {
        c.lock_lease(Duration::from_millis(300))
            .lock_timeout(Duration::from_secs(10))
    };
    let holder = open(&driver, target, &namespace, lease);
    let other = open(&driver, target, &namespace, lease);
    let (started_tx, started) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let stalled = {
        let (holder, driver) = (holder.clone(), driver.clone());
        std::thread::spawn(move || {
            driver.run(holder.get_or_load(
                "k",
                || async move {
                    started_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                    Ok(Value::from("old"))
                },
                None,
            ))
        })
    };
    started.recv().unwrap();
    let newer = driver
        .run(other.get_or_load("k", || async { Ok(Value::from("new")) }, None))
        .unwrap();
    assert_eq!(newer, Value::from("new"));
    let m = other.metrics();
    assert_eq!((m.loads, m.locks_taken_over), (1, 1), "{m:?}");
    go.send(()).unwrap();
    assert_eq!(stalled.join().unwrap().unwrap(), Value::from("old"));
    assert_eq!(
        driver.run(other.get("k")).unwrap(),
        Some(Value::from("new")),
        "the late write was refused"
    );
    assert_eq!(holder.metrics().lock_writes_refused, 1);
}

/// A waiter gives up after `lock_timeout` and loads by itself.
fn timeout_bounds_a_waiter(target: Target) {
    let driver = Arc::new(Driver::new(target.io));
    let namespace = unique("lock-timeout");
    let holder = open(&driver, target, &namespace, |c| {
        c.lock_lease(Duration::from_secs(30))
    });
    let waiter = open(&driver, target, &namespace, |c| {
        c.lock_timeout(Duration::from_millis(200))
    });
    let (started_tx, started) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let stalled = {
        let (holder, driver) = (holder.clone(), driver.clone());
        std::thread::spawn(move || {
            driver.run(holder.get_or_load(
                "k",
                || async move {
                    started_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                    Ok(Value::from("holder"))
                },
                None,
            ))
        })
    };
    started.recv().unwrap();
    let own = driver
        .run(waiter.get_or_load("k", || async { Ok(Value::from("waiter")) }, None))
        .unwrap();
    assert_eq!(own, Value::from("waiter"));
    let m = waiter.metrics();
    assert_eq!((m.loads, m.locks_timed_out), (1, 1), "{m:?}");
    go.send(()).unwrap();
    assert_eq!(stalled.join().unwrap().unwrap(), Value::from("holder"));
    assert_eq!(holder.metrics().locks_acquired, 1);
}

/// `hard_timeout` bounds the whole call: a wait for another holder's lock counts against
/// it, so a waiter with a long `lock_timeout` still answers (a Timeout error, no fail-safe
/// value here) within its hard timeout, not after the lock's.
fn hard_timeout_bounds_the_lock_wait(target: Target) {
    let driver = Arc::new(Driver::new(target.io));
    let namespace = unique("lock-hard");
    let long = |c: Config| {
        c.lock_lease(Duration::from_secs(30))
            .lock_timeout(Duration::from_secs(30))
    };
    let holder = open(&driver, target, &namespace, long);
    let hard = Duration::from_millis(300);
    let waiter = open(&driver, target, &namespace, |c| {
        long(c).hard_timeout(Some(hard))
    });
    let (started_tx, started) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let stalled = {
        let (holder, driver) = (holder.clone(), driver.clone());
        std::thread::spawn(move || {
            driver.run(holder.get_or_load(
                "k",
                || async move {
                    started_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                    Ok(Value::from("holder"))
                },
                None,
            ))
        })
    };
    started.recv().unwrap();
    let began = Instant::now();
    // A loader that never answers: what the wait left of hard_timeout ends it.
    let err = driver
        .run(waiter.get_or_load(
            "k",
            || async {
                futures_util::future::pending::<()>().await;
                Ok(Value::Nil)
            },
            None,
        ))
        .unwrap_err();
    let elapsed = began.elapsed();
    assert_eq!(err.kind(), polycache::ErrorKind::Timeout, "{err}");
    assert!(
        elapsed < hard + Duration::from_secs(2),
        "answered after {elapsed:?}; hard_timeout {hard:?}, lock_timeout 30 s"
    );
    let m = waiter.metrics();
    assert_eq!((m.locks_timed_out, m.loader_timeouts), (1, 1), "{m:?}");
    go.send(()).unwrap();
    assert_eq!(stalled.join().unwrap().unwrap(), Value::from("holder"));
}

/// A holder of the lock of "k" whose loader waits for the returned sender's go and then
/// fails (so it releases the lock); started, its lock held, when this returns.
fn failing_holder(
    driver: &Arc<Driver>,
    holder: &Cache,
) -> (
    mpsc::Sender<()>,
    std::thread::JoinHandle<polycache::Result<Value>>,
) {
    let (started_tx, started) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let failing = {
        let (holder, driver) = (holder.clone(), driver.clone());
        std::thread::spawn(move || {
            driver.run(holder.get_or_load(
                "k",
                || async move {
                    started_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                    Err(polycache::Error::new(
                        polycache::ErrorKind::Loader,
                        "db down",
                    ))
                },
                None,
            ))
        })
    };
    started.recv().unwrap();
    (go, failing)
}

/// A failing holder releases the lock at once: the waiter takes over without waiting out
/// the lease (30 s here, longer than the test's deadline).
fn failed_load_releases(target: Target) {
    let driver = Arc::new(Driver::new(target.io));
    let namespace = unique("lock-fail");
    let long = |c: Config| {
        c.lock_lease(Duration::from_secs(30))
            .lock_timeout(Duration::from_secs(30))
    };
    let holder = open(&driver, target, &namespace, long);
    let waiter = open(&driver, target, &namespace, long);
    let (go, failing) = failing_holder(&driver, &holder);
    let waiting = {
        let (waiter, driver) = (waiter.clone(), driver.clone());
        std::thread::spawn(move || {
            driver.run(waiter.get_or_load("k", || async { Ok(Value::from("w")) }, None))
        })
    };
    wait_until("the waiter missed", || waiter.metrics().misses == 1);
    go.send(()).unwrap();
    assert!(failing.join().unwrap().is_err());
    let started_at = Instant::now();
    assert_eq!(waiting.join().unwrap().unwrap(), Value::from("w"));
    assert!(started_at.elapsed() < Duration::from_secs(30));
    // The waiter holds the lock for its own load. Whether it counted a wait first is
    // timing: it may reach the lock only after the failed holder released it.
    let m = waiter.metrics();
    assert_eq!((m.loads, m.locks_acquired), (1, 1), "{m:?}");
}

on_every_redis_store! {
    one_load_per_key,
    takeover_and_fence,
    timeout_bounds_a_waiter,
    hard_timeout_bounds_the_lock_wait,
    failed_load_releases,
    one_refresh_across_caches,
    failed_read_after_acquire_releases,
    no_set_after_the_wait_ran_out_in_a_read,
}

/// A holder whose task is dropped mid-load releases its lock as it goes: another cache takes
/// over, before its own lock_timeout (20 s, shorter than the 60 s lease) runs out.
#[test]
fn dropped_holder_releases_its_lock() {
    let driver = Driver::new(Io::Async);
    let cluster = Target {
        store: Store::Cluster,
        io: Io::Async,
    };
    let namespace = unique("lock-drop");
    let lease = |c: Config| {
        c.lock_lease(Duration::from_secs(60))
            .lock_timeout(Duration::from_secs(20))
    };
    let holder = open(&driver, cluster, &namespace, lease);
    let other = open(&driver, cluster, &namespace, lease);
    let rt = driver.runtime().unwrap();
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(async move {
        holder
            .get_or_load(
                "k",
                || async move {
                    started_tx.send(()).unwrap();
                    std::future::pending::<polycache::Result<Value>>().await
                },
                None,
            )
            .await
    });
    rt.block_on(started).unwrap();
    task.abort();
    let value = driver
        .run(other.get_or_load("k", || async { Ok(Value::from("next")) }, None))
        .unwrap();
    assert_eq!(value, Value::from("next"));
    let m = other.metrics();
    assert_eq!((m.locks_acquired, m.locks_timed_out), (1, 0), "{m:?}");
}

/// The option is a no-op on memory://: single-flight already is the lock.
#[test]
fn memory_store_ignores_the_option() {
    let driver = Driver::new(Io::Async);
    let cache = driver
        .run(Cache::new(Config::default().stampede_lock(true)))
        .unwrap();
    let value = driver
        .run(cache.get_or_load("k", || async { Ok(Value::from(1)) }, None))
        .unwrap();
    assert_eq!(value, Value::from(1));
    assert_eq!(cache.metrics().locks_acquired, 0);
}

/// How long a waiter takes to see the holder's value after the holder wrote it (polling
/// with backoff, FORMAT.md §6): from the moment the holder's store sends the fenced write
/// (so a figure is at most that one round trip high, never low) to the waiter's return.
/// Printed, not asserted: `--nocapture` shows the numbers.
#[test]
fn wake_latency_is_measured() {
    const ROUNDS: usize = 30;
    let driver = Arc::new(Driver::new(Io::Async));
    let namespace = unique("lock-wake");
    let (holder, holder_store) = Faulty::open(&driver, STANDALONE, &namespace, Fault::None, |c| c);
    let waiter = open(&driver, STANDALONE, &namespace, |c| c);
    let mut wakes = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let key = format!("k{round}");
        let (started_tx, started) = mpsc::channel::<()>();
        let (go, go_rx) = mpsc::channel::<()>();
        let go_rx = Arc::new(Mutex::new(go_rx));
        let loading = {
            let (holder, driver, key) = (holder.clone(), driver.clone(), key.clone());
            std::thread::spawn(move || {
                driver.run(holder.get_or_load(
                    &key,
                    || async move {
                        started_tx.send(()).unwrap();
                        go_rx.lock().unwrap().recv().unwrap();
                        Ok(Value::from("v"))
                    },
                    None,
                ))
            })
        };
        started.recv().unwrap();
        let waiting = {
            let (waiter, driver, key) = (waiter.clone(), driver.clone(), key.clone());
            std::thread::spawn(move || {
                let value =
                    driver.run(waiter.get_or_load(&key, || async { Ok(Value::from("w")) }, None));
                (value, Instant::now())
            })
        };
        let misses = round as u64 + 1;
        wait_until("the waiter missed", || waiter.metrics().misses == misses);
        // Let the waiter go a round of polls of a varying length before the holder writes.
        let spin = Instant::now() + Duration::from_millis(fastrand_ms(round));
        while Instant::now() < spin {
            std::thread::yield_now();
        }
        go.send(()).unwrap();
        loading.join().unwrap().unwrap();
        let (value, woke) = waiting.join().unwrap();
        assert_eq!(value.unwrap(), Value::from("v"));
        let sent = holder_store
            .write_sent
            .lock()
            .unwrap()
            .take()
            .expect("the holder wrote");
        assert!(
            woke >= sent,
            "round {round}: the waiter answered the value before its write"
        );
        wakes.push(woke - sent);
    }
    wakes.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = wakes.iter().map(|d| ms(*d)).sum::<f64>() / ROUNDS as f64;
    println!(
        "lock wake latency (polling, {ROUNDS} rounds): mean {mean:.2} ms, p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(wakes[ROUNDS / 2]),
        ms(wakes[ROUNDS * 9 / 10]),
        ms(wakes[ROUNDS - 1])
    );
}

/// 0–99 ms, spread over the rounds.
fn fastrand_ms(round: usize) -> u64 {
    (round as u64 * 37) % 100
}

/// `tests/vectors/lock.json`: the scripts byte for byte and their SHA-1, lock keys and
/// their shared slot, the token format, the waiters' poll schedule.
#[test]
fn lock_vectors() {
    use polycache::{contract, lock};
    let cases = polycache_harness::notation::vectors("lock.json");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for case in &cases {
        let str_of = |field: &str| case[field].as_str().unwrap_or_default().to_owned();
        let name = str_of("name");
        let kind = case["kind"].as_str().unwrap_or_default();
        *seen.entry(kind).or_default() += 1;
        match kind {
            "script" => {
                let script = lock::SCRIPTS
                    .iter()
                    .find(|s| s.name == str_of("script"))
                    .unwrap_or_else(|| panic!("{name}: no such script"));
                assert_eq!(script.text, str_of("text"), "{name}");
                assert_eq!(script.sha1, str_of("sha1"), "{name}");
            }
            "lock-key" => {
                let redis_key = contract::redis_key(
                    &str_of("prefix"),
                    &str_of("namespace"),
                    200,
                    &str_of("key"),
                )
                .unwrap();
                let lock_key = contract::lock_key(&redis_key);
                assert_eq!(
                    (&redis_key, &lock_key),
                    (&str_of("redisKey"), &str_of("lockKey")),
                    "{name}"
                );
                let want = case["slot"].as_u64().unwrap();
                assert_eq!(u64::from(contract::slot(&lock_key)), want, "{name}");
                assert_eq!(u64::from(contract::slot(&redis_key)), want, "{name}");
            }
            "token" => {
                let valid = case["valid"].as_bool().unwrap();
                assert_eq!(lock::is_token(&str_of("token")), valid, "{name}");
            }
            "poll-delay" => {
                let attempt = u32::try_from(case["attempt"].as_u64().unwrap()).unwrap();
                let ms = case["ms"].as_u64().unwrap();
                assert_eq!(
                    lock::poll_delay(attempt),
                    Duration::from_millis(ms),
                    "{name}"
                );
            }
            other => panic!("{name}: unknown kind {other}"),
        }
    }
    assert_eq!(seen.get("script"), Some(&lock::SCRIPTS.len()), "{seen:?}");
    assert!(seen.len() == 4 && seen.values().all(|&n| n > 0), "{seen:?}");
    assert!(lock::is_token(&lock::token()));
}

/// A stale value refreshed in two caches at once: one refresh loads (holding the lock),
/// the other waits for the refreshed value instead of taking the stale one for an answer.
fn one_refresh_across_caches(target: Target) {
    let driver = Arc::new(Driver::new(target.io));
    let namespace = unique("lock-refresh");
    let fresh = |c: Config| c.fresh_for(Some(Duration::from_secs(60)));
    let a = open(&driver, target, &namespace, fresh);
    let b = open(&driver, target, &namespace, fresh);
    let short = polycache::LoadOptions {
        fresh_for: Some(Duration::from_millis(1)),
        ..polycache::LoadOptions::default()
    };
    let first = || async { Ok(Value::from("v1")) };
    driver.run(a.get_or_load_with("k", first, &short)).unwrap();
    let written = Instant::now();
    // The condition itself: the stored value's fresh window (1 ms) has passed.
    wait_until("v1 is stale", || {
        written.elapsed() > Duration::from_millis(2)
    });
    let loads = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|cache| {
            let (driver, loads, both) = (driver.clone(), loads.clone(), [a.clone(), b.clone()]);
            std::thread::spawn(move || {
                driver.run(cache.get_or_load(
                    "k",
                    || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        // The latch: both caches have read the stale value and claimed
                        // their refresh, so the other one is in the lock's wait.
                        wait_until("both refreshes claimed", || {
                            both.iter()
                                .map(|c| c.metrics().background_refreshes)
                                .sum::<u64>()
                                >= 2
                        });
                        Ok(Value::from("v2"))
                    },
                    None,
                ))
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap().unwrap(), Value::from("v2"));
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one refresh in both caches"
    );
    // Not asserted: that the other cache counted a wait. It has claimed its refresh when
    // the latch opens, but it may reach the lock only after the holder released it, and
    // then finds v2 without waiting; either way it must answer v2 and not load.
}

/// What the lock adds to a miss (`SET NX`, a second `GET`, the write as a script instead
/// of a `SET`): cold `get_or_load` calls with an instant loader, with and without it.
/// Printed, not asserted (`--nocapture`; a debug build on loopback).
#[test]
fn miss_latency_with_the_lock_is_measured() {
    const KEYS: usize = 300;
    let driver = Driver::new(Io::Async);
    for lock in [false, true] {
        let namespace = unique("lock-miss");
        let cache = open(&driver, STANDALONE, &namespace, |c| c.stampede_lock(lock));
        let mut took: Vec<Duration> = (0..KEYS)
            .map(|i| {
                let started = Instant::now();
                driver
                    .run(cache.get_or_load(&format!("k{i}"), || async { Ok(Value::from(1)) }, None))
                    .unwrap();
                started.elapsed()
            })
            .collect();
        took.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "miss with an instant loader, stampede_lock={lock}: p50 {:.0} µs, p90 {:.0} µs, mean {:.0} µs ({KEYS} keys)",
            us(took[KEYS / 2]),
            us(took[KEYS * 9 / 10]),
            took.iter().map(|d| us(*d)).sum::<f64>() / KEYS as f64
        );
        assert_eq!(
            cache.metrics().locks_acquired,
            if lock { KEYS as u64 } else { 0 }
        );
    }
}

/// The fault a [`Faulty`] store puts on the GET that follows a `SET NX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    None,
    /// After a won `SET NX`: the GET fails, as a connection dropping at that step does.
    FailRead,
    /// After a lost `SET NX` (a waiter's poll): the GET waits for the test's [`Hold`]
    /// before it goes to Redis, as a slow read does.
    HoldRead,
}

/// What a held GET reports (when it began) and waits for.
#[derive(Debug)]
struct Hold {
    entered: mpsc::Sender<Instant>,
    go: oneshot::Receiver<()>,
}

/// The real store with one fault at one step of the lock protocol, which a paused or
/// killed server cannot aim at (it hits the `SET NX` and the release as well). Counts the
/// `SET NX`s it sends, and notes when it last sent the holder's fenced write.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn store::Store>,
    fault: Fault,
    /// The fault the next GET takes, armed by a `SET NX`'s answer.
    next_get: AtomicU8,
    hold: Mutex<Option<Hold>>,
    set_nx: AtomicUsize,
    write_sent: Mutex<Option<Instant>>,
}

impl Faulty {
    /// A cache on `target` in `namespace` (the lock on, `tweak` applied) whose store is the
    /// real one behind `fault`; the wrapper, to count and to reach Redis directly.
    fn open(
        driver: &Driver,
        target: Target,
        namespace: &str,
        fault: Fault,
        tweak: impl FnOnce(Config) -> Config,
    ) -> (Cache, Arc<Faulty>) {
        let config = tweak(target.config(namespace).stampede_lock(true));
        let inner = driver
            .run(store::open(&config, Clock::system(), target.io))
            .expect("store");
        let faulty = Arc::new(Faulty {
            inner,
            fault,
            next_get: AtomicU8::new(Fault::None as u8),
            hold: Mutex::default(),
            set_nx: AtomicUsize::new(0),
            write_sent: Mutex::default(),
        });
        let cache = driver
            .build(Cache::builder(config).store(faulty.clone()))
            .expect("cache");
        (cache, faulty)
    }
}

#[async_trait]
impl store::Store for Faulty {
    async fn get(&self, key: &str) -> polycache::Result<Option<Vec<u8>>> {
        let fault = self.next_get.swap(Fault::None as u8, Ordering::SeqCst);
        if fault == Fault::FailRead as u8 {
            return Err(polycache::Error::new(
                polycache::ErrorKind::Connection,
                "injected: the read after SET NX failed",
            ));
        }
        if fault == Fault::HoldRead as u8 {
            let hold = self.hold.lock().unwrap().take();
            if let Some(Hold { entered, go }) = hold {
                entered.send(Instant::now()).unwrap();
                go.await.unwrap();
            }
        }
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> polycache::Result<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys).await
    }
    async fn set(&self, entry: Entry) -> polycache::Result<()> {
        self.inner.set(entry).await
    }
    async fn set_within(&self, entry: Entry, budget: Duration) -> polycache::Result<()> {
        self.inner.set_within(entry, budget).await
    }
    async fn set_many(&self, entries: Vec<Entry>) -> polycache::Result<()> {
        self.inner.set_many(entries).await
    }
    async fn delete(&self, key: &str) -> polycache::Result<bool> {
        self.inner.delete(key).await
    }
    async fn ttl(&self, key: &str) -> polycache::Result<Option<Duration>> {
        self.inner.ttl(key).await
    }
    fn breakers(&self) -> BreakerStats {
        self.inner.breakers()
    }
    async fn set_if_absent(&self, entry: Entry) -> polycache::Result<bool> {
        self.set_nx.fetch_add(1, Ordering::SeqCst);
        let won = self.inner.set_if_absent(entry).await;
        let arm = match (self.fault, &won) {
            (Fault::FailRead, Ok(true)) => Fault::FailRead,
            (Fault::HoldRead, Ok(false)) => Fault::HoldRead,
            _ => Fault::None,
        };
        self.next_get.store(arm as u8, Ordering::SeqCst);
        won
    }
    async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> polycache::Result<i64> {
        if script.name == polycache::lock::WRITE.name {
            *self.write_sent.lock().unwrap() = Some(Instant::now());
        }
        self.inner.eval(script, keys, args).await
    }
}

/// The read right after a won `SET NX` fails: the caller loads without the lock (fails
/// open) and gives back the lock it took, instead of leaving it to its lease (30 s) for
/// other processes' waiters to sit out.
fn failed_read_after_acquire_releases(target: Target) {
    let driver = Driver::new(target.io);
    let namespace = unique("lock-read-fails");
    let (cache, faulty) = Faulty::open(&driver, target, &namespace, Fault::FailRead, |c| {
        c.lock_lease(Duration::from_secs(30))
    });
    let value = driver
        .run(cache.get_or_load("k", || async { Ok(Value::from("v")) }, None))
        .unwrap();
    assert_eq!(value, Value::from("v"));
    let m = cache.metrics();
    assert_eq!(
        (m.loads, m.locks_acquired, m.store_errors),
        (1, 0, 1),
        "loaded without the lock after the failed read: {m:?}"
    );
    let lock_key = polycache::contract::lock_key(&cache.redis_key("k").unwrap());
    let lock = driver.run(faulty.inner.get(&lock_key)).unwrap();
    assert_eq!(lock, None, "the lock was given back, not left to its lease");
}

/// A waiter's poll (a GET) is slow and its wait (`lock_timeout`) runs out meanwhile; the
/// holder fails and frees the lock before the GET answers. The waiter loads as one whose
/// wait timed out, without a new `SET NX` round trip past its deadline (which would now
/// win the lock).
fn no_set_after_the_wait_ran_out_in_a_read(target: Target) {
    const WAIT: Duration = Duration::from_millis(300);
    let driver = Arc::new(Driver::new(target.io));
    let namespace = unique("lock-late-read");
    let long = |c: Config| c.lock_lease(Duration::from_secs(30));
    let holder = open(&driver, target, &namespace, long);
    let (waiter, faulty) = Faulty::open(&driver, target, &namespace, Fault::HoldRead, |c| {
        long(c).lock_timeout(WAIT)
    });
    let (entered_tx, entered) = mpsc::channel::<Instant>();
    let (read_go, read_go_rx) = oneshot::channel::<()>();
    *faulty.hold.lock().unwrap() = Some(Hold {
        entered: entered_tx,
        go: read_go_rx,
    });
    let (fail, failing) = failing_holder(&driver, &holder);
    let waiting = {
        let (waiter, driver) = (waiter.clone(), driver.clone());
        std::thread::spawn(move || {
            driver.run(waiter.get_or_load("k", || async { Ok(Value::from("w")) }, None))
        })
    };
    // The waiter lost its SET NX and its poll is held. Its deadline is at most WAIT after
    // this GET began (its wait started before).
    let poll_began = entered.recv().unwrap();
    wait_until("the waiter's deadline passed", || {
        poll_began.elapsed() > WAIT
    });
    fail.send(()).unwrap();
    assert!(failing.join().unwrap().is_err());
    let set_nx_before = faulty.set_nx.load(Ordering::SeqCst);
    read_go.send(()).unwrap();
    assert_eq!(waiting.join().unwrap().unwrap(), Value::from("w"));
    assert_eq!(
        faulty.set_nx.load(Ordering::SeqCst),
        set_nx_before,
        "no SET NX after the deadline"
    );
    let m = waiter.metrics();
    assert_eq!(
        (m.loads, m.locks_timed_out, m.locks_acquired),
        (1, 1, 0),
        "{m:?}"
    );
}
