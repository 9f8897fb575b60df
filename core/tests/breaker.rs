//! The circuit breaker (README, "Circuit breaker"), against real redis-server processes that
//! each test pauses (SIGSTOP) or kills, in both I/O modes, with the mock clock for the
//! cooldown. "Fast" means before the configured command timeout: a call that waited on a
//! paused node takes at least that long (its timer cannot fire sooner), so a call that ends
//! earlier did not wait on it. The bound is the library's own setting, not a speed claim;
//! "no network" is checked by the server's own command counts.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polycache::store::BreakerState;
use polycache::{
    Cache, Clock, Config, ErrorKind, Freshness, Io, LoadOptions, MockClock, Node, Ring, Value,
};
use polycache_harness::Server;

use common::Driver;

const TIMEOUT: Duration = Duration::from_millis(400);
const FAILURES: u32 = 3;
const COOLDOWN: Duration = Duration::from_secs(5);
const DEADLINE: Duration = Duration::from_secs(10);

/// A call that ends within this did not wait on a paused node: waiting on one takes the
/// whole command timeout.
fn fast() -> Duration {
    TIMEOUT
}

const MODES: [Io; 2] = [Io::Async, Io::Blocking];

/// A cache on `config` with the mock clock, in the driver's I/O mode.
fn open(driver: &Driver, config: Config) -> (Cache, MockClock) {
    let (clock, mock) = Clock::mock();
    let cache = driver.build(Cache::builder(config).clock(clock)).unwrap();
    (cache, mock)
}

fn config(url: &str) -> Config {
    static N: AtomicUsize = AtomicUsize::new(0);
    Config::from_url(url)
        .unwrap()
        .namespace(format!(
            "breaker-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .breaker_failures(FAILURES)
        .breaker_cooldown(COOLDOWN)
}

fn states(cache: &Cache) -> BTreeMap<String, BreakerState> {
    cache.metrics().breaker_states
}

/// Commands the server has run, `INFO` itself left out.
fn commands_run(server: &Server) -> u64 {
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    stats
        .lines()
        .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info:"))
        .filter_map(|line| {
            let calls = line.split("calls=").nth(1)?;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Waits until `ready` holds, or fails after [`DEADLINE`].
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < deadline, "still waiting until {what}");
        std::thread::yield_now();
    }
}

#[test]
fn trips_fails_fast_without_network_probes_once_and_closes() {
    for mode in MODES {
        let server = Server::start(&[]).unwrap();
        let addr = server.addr();
        let driver = Driver::new(mode);
        let (cache, clock) = open(&driver, config(&server.url()));
        driver.run(cache.set("k", &1.into(), None)).unwrap();
        assert_eq!(states(&cache)[&addr], BreakerState::Closed, "{mode:?}");

        server.pause();
        for i in 0..FAILURES {
            let err = driver.run(cache.get("k")).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Timeout,
                "{mode:?} failure {i}: {err}"
            );
        }
        let metrics = cache.metrics();
        assert_eq!(
            metrics.breaker_states[&addr],
            BreakerState::Open,
            "{mode:?}"
        );
        assert_eq!(
            (metrics.breaker_open, metrics.breaker_trips),
            (1, 1),
            "{mode:?}"
        );

        // Open: writes fail fast with the typed error, reads fall back as for any store
        // error (a plain get fails, get_or_load loads).
        let started = Instant::now();
        let err = driver
            .run(cache.set("k", &2.into(), None))
            .expect_err("open: set fails");
        let elapsed = started.elapsed();
        assert!(elapsed < fast(), "{mode:?}: open set took {elapsed:?}");
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?}: {err}");
        let message = err.message();
        assert!(
            message.contains(&addr),
            "{mode:?}: names the node: {message}"
        );
        assert!(
            message.contains("circuit breaker open") && message.contains("another 5s"),
            "{mode:?}: says open and until when: {message}"
        );
        assert!(message.contains("(last failure: "), "{mode:?}: {message}");
        let started = Instant::now();
        let err = driver.run(cache.get("k")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?}: {err}");
        let loaded = driver
            .run(cache.get_or_load("k", || async { Ok(Value::from("db")) }, None))
            .unwrap();
        assert_eq!(loaded, Value::from("db"), "{mode:?}: get_or_load loads");
        assert!(
            started.elapsed() < fast(),
            "{mode:?}: {:?}",
            started.elapsed()
        );

        // Still open with the server back: nothing reaches it until the cooldown ends.
        server.resume();
        let before = commands_run(&server);
        let round_trips =
            |cache: &Cache| -> u64 { cache.metrics().latency_us.iter().map(|(_, n)| n).sum() };
        let timed_before = round_trips(&cache);
        for _ in 0..20 {
            assert!(driver.run(cache.set("k", &2.into(), None)).is_err());
            assert!(driver.run(cache.get("k")).is_err());
            assert!(driver.run(cache.delete("k")).is_err());
        }
        assert_eq!(
            commands_run(&server),
            before,
            "{mode:?}: no command was sent"
        );
        assert_eq!(
            round_trips(&cache),
            timed_before,
            "{mode:?}: no latency recorded"
        );
        assert!(cache.metrics().breaker_rejected >= 61, "{mode:?}");

        // Half-open: one call probes (the server is paused again, so it hangs for the
        // command timeout); the others fail fast meanwhile.
        server.pause();
        clock.advance(COOLDOWN);
        std::thread::scope(|s| {
            let probe = s.spawn(|| driver.run(cache.get("k")));
            wait_until("the probe is in flight", || {
                states(&cache)[&addr] == BreakerState::HalfOpen
            });
            let started = Instant::now();
            let err = driver.run(cache.set("k", &3.into(), None)).unwrap_err();
            assert!(
                started.elapsed() < fast(),
                "{mode:?}: {:?}",
                started.elapsed()
            );
            assert!(err.message().contains("half-open"), "{mode:?}: {err}");
            let probed = probe.join().unwrap().unwrap_err();
            assert_eq!(probed.kind(), ErrorKind::Timeout, "{mode:?}: {probed}");
        });
        let metrics = cache.metrics();
        assert_eq!(
            metrics.breaker_states[&addr],
            BreakerState::Open,
            "{mode:?}"
        );
        assert_eq!(metrics.breaker_trips, 2, "{mode:?}: a failed probe reopens");
        let err = driver.run(cache.get("k")).unwrap_err();
        assert!(
            err.message().contains("open after a failed probe"),
            "{mode:?}: {err}"
        );

        // The server is back and the cooldown over: the probe answers and closes it.
        server.resume();
        clock.advance(COOLDOWN);
        assert_eq!(driver.run(cache.get("k")).unwrap(), Some(Value::from(1)));
        assert_eq!(states(&cache)[&addr], BreakerState::Closed, "{mode:?}");
        driver.run(cache.set("k", &4.into(), None)).unwrap();
        assert_eq!(cache.metrics().breaker_open, 0, "{mode:?}");
    }
}

#[test]
fn a_killed_server_trips_it_and_error_replies_do_not() {
    for mode in MODES {
        let server = Server::start(&[]).unwrap();
        let addr = server.addr();
        let driver = Driver::new(mode);
        let (cache, _clock) = open(&driver, config(&server.url()));
        // An error reply (WRONGTYPE) proves the node is there: it never counts.
        let redis_key = cache.redis_key("list").unwrap();
        server.command(&["RPUSH", &redis_key, "x"]).unwrap();
        for _ in 0..FAILURES * 2 {
            let err = driver.run(cache.get("list")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Server, "{mode:?}: {err}");
        }
        assert_eq!(states(&cache)[&addr], BreakerState::Closed, "{mode:?}");

        server.kill();
        for _ in 0..FAILURES {
            let err = driver.run(cache.set("k", &1.into(), None)).unwrap_err();
            let kind = err.kind();
            assert!(
                matches!(kind, ErrorKind::Connection | ErrorKind::Timeout),
                "{mode:?}: {err}"
            );
            assert!(!err.message().contains("circuit"), "{mode:?}: {err}");
        }
        let err = driver.run(cache.set("k", &1.into(), None)).unwrap_err();
        assert!(
            err.message().contains("circuit breaker open"),
            "{mode:?}: {err}"
        );
        let metrics = cache.metrics();
        assert_eq!((metrics.breaker_trips, metrics.breaker_rejected), (1, 1));
    }
}

#[test]
fn one_dead_shard_opens_only_its_own_breaker() {
    for mode in MODES {
        let servers: Vec<Server> = (0..3).map(|_| Server::start(&[]).unwrap()).collect();
        let addrs: Vec<String> = servers.iter().map(Server::addr).collect();
        let url = format!("redis+shards://{}", addrs.join(","));
        let driver = Driver::new(mode);
        let (cache, _clock) = open(&driver, config(&url));
        let ring = Ring::new(addrs.iter().map(|a| Node::new(a.clone())).collect()).unwrap();
        let dead = 1;
        let (on_dead, elsewhere): (Vec<String>, Vec<String>) = (0..60)
            .map(|i| format!("key-{i}"))
            .partition(|k| ring.index_for(&cache.redis_key(k).unwrap()) == dead);
        assert!(on_dead.len() > FAILURES as usize && elsewhere.len() > 4);

        servers[dead].pause();
        for key in &on_dead[..FAILURES as usize] {
            let err = driver.run(cache.set(key, &1.into(), None)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Timeout, "{mode:?}: {err}");
        }
        let metrics = cache.metrics();
        assert_eq!(metrics.breaker_open, 1, "{mode:?}");
        assert_eq!(metrics.breaker_states[&addrs[dead]], BreakerState::Open);
        for (i, addr) in addrs.iter().enumerate().filter(|(i, _)| *i != dead) {
            assert_eq!(metrics.breaker_states[addr], BreakerState::Closed, "{i}");
        }

        // The dead shard's keys fail fast; every other key works, one by one and in bulk.
        let started = Instant::now();
        let err = driver
            .run(cache.set(&on_dead[0], &1.into(), None))
            .unwrap_err();
        assert!(
            started.elapsed() < fast(),
            "{mode:?}: {:?}",
            started.elapsed()
        );
        assert!(err.message().contains(&addrs[dead]), "{mode:?}: {err}");
        for key in &elsewhere {
            driver.run(cache.set(key, &2.into(), None)).unwrap();
            assert_eq!(driver.run(cache.get(key)).unwrap(), Some(Value::from(2)));
        }
        let mixed: Vec<&str> = elsewhere
            .iter()
            .take(4)
            .chain(&on_dead[..2])
            .map(String::as_str)
            .collect();
        let started = Instant::now();
        let each = driver.run(cache.get_each(&mixed));
        assert!(
            started.elapsed() < fast(),
            "{mode:?}: {:?}",
            started.elapsed()
        );
        for (key, result) in mixed.iter().zip(&each) {
            match on_dead.iter().any(|k| k == key) {
                true => assert!(result.is_err(), "{mode:?} {key}"),
                false => assert_eq!(result.as_ref().unwrap(), &Some(Value::from(2))),
            }
        }
        assert_eq!(cache.metrics().breaker_trips, 1, "{mode:?}");
        servers[dead].resume();
    }
}

#[test]
fn a_fail_safe_value_is_served_at_once_while_open() {
    for mode in MODES {
        let server = Server::start(&[]).unwrap();
        let driver = Driver::new(mode);
        let (cache, _clock) = open(
            &driver,
            config(&server.url())
                .fresh_for(Some(Duration::from_secs(10)))
                .max_stale(Duration::from_secs(600)),
        );
        let loads = Arc::new(AtomicUsize::new(0));
        let entry = |cache: &Cache| {
            let loads = loads.clone();
            let cache = cache.clone();
            async move {
                cache
                    .get_entry(
                        "k",
                        move || async move {
                            loads.fetch_add(1, Ordering::Relaxed);
                            Ok(Value::from("v1"))
                        },
                        &LoadOptions::default(),
                    )
                    .await
            }
        };
        let first = driver.run(entry(&cache)).unwrap();
        assert_eq!(
            (first.value, first.freshness),
            ("v1".into(), Freshness::Fresh)
        );

        server.pause();
        for _ in 0..FAILURES {
            let served = driver.run(entry(&cache)).unwrap();
            assert_eq!(served.freshness, Freshness::FailSafe, "{mode:?}");
        }
        assert_eq!(cache.metrics().breaker_open, 1, "{mode:?}");
        let started = Instant::now();
        let served = driver.run(entry(&cache)).unwrap();
        assert!(
            started.elapsed() < fast(),
            "{mode:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            (served.value, served.freshness),
            ("v1".into(), Freshness::FailSafe)
        );
        assert_eq!(
            loads.load(Ordering::Relaxed),
            1,
            "{mode:?}: no load while open"
        );
        let metrics = cache.metrics();
        assert_eq!(
            metrics.fail_safe_served,
            u64::from(FAILURES) + 1,
            "{mode:?}"
        );
        assert_eq!(metrics.breaker_rejected, 1, "{mode:?}");
        server.resume();
    }
}

#[test]
fn off_by_default_and_on_memory() {
    assert_eq!(Config::default().breaker_failures, 0);
    let server = Server::start(&[]).unwrap();
    let driver = Driver::new(Io::Async);
    let (cache, _clock) = open(&driver, config(&server.url()).breaker_failures(0));
    assert!(cache.metrics().breaker_states.is_empty());
    let (memory, _clock) = open(&driver, config("memory://"));
    assert!(
        memory.metrics().breaker_states.is_empty(),
        "no network, no breaker"
    );
}

/// Calls `attempt` after each cooldown (mock clock) until it succeeds: the probe that finds
/// the store back. Fails after [`DEADLINE`] × 3 (a failover takes seconds of real time).
fn probe_until_back(clock: &MockClock, mut attempt: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE * 3;
    loop {
        clock.advance(COOLDOWN);
        if attempt() {
            return;
        }
        assert!(Instant::now() < deadline, "the store did not come back");
        // Polling pace, not synchronisation: a refused probe returns at once.
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_cluster_client_has_one_breaker() {
    let topology = polycache_harness::Topology::start(false, 0, 3).unwrap();
    let url = topology.endpoints().cluster.unwrap();
    for mode in MODES {
        let driver = Driver::new(mode);
        let config = config(&url);
        let unit = config.redacted_url();
        let (cache, clock) = open(&driver, config);
        driver.run(cache.set("k", &1.into(), None)).unwrap();
        for master in &topology.cluster {
            master.pause();
        }
        for _ in 0..FAILURES {
            assert!(driver.run(cache.set("k", &2.into(), None)).is_err());
        }
        let metrics = cache.metrics();
        assert_eq!(
            metrics.breaker_states,
            BTreeMap::from([(unit.clone(), BreakerState::Open)]),
            "{mode:?}"
        );
        let started = Instant::now();
        let err = driver.run(cache.get("k")).unwrap_err();
        assert!(
            started.elapsed() < fast(),
            "{mode:?}: {:?}",
            started.elapsed()
        );
        assert!(
            err.message().contains("circuit breaker open"),
            "{mode:?}: {err}"
        );
        for master in &topology.cluster {
            master.resume();
        }
        probe_until_back(&clock, || driver.run(cache.get("k")).is_ok());
        assert_eq!(states(&cache)[&unit], BreakerState::Closed, "{mode:?}");
    }
}

#[test]
fn a_sentinel_client_trips_on_a_dead_master_and_its_probe_finds_the_new_one() {
    for mode in MODES {
        let topology = polycache_harness::Topology::start_spec(polycache_harness::Spec {
            sentinel: true,
            ..Default::default()
        })
        .unwrap();
        let url = topology.endpoints().sentinel.unwrap();
        let driver = Driver::new(mode);
        let config = config(&url);
        let unit = config.redacted_url();
        let (cache, clock) = open(&driver, config);
        driver.run(cache.set("k", &1.into(), None)).unwrap();
        topology.sentinel_data[0].kill();
        for _ in 0..FAILURES {
            assert!(driver.run(cache.set("k", &2.into(), None)).is_err());
        }
        assert_eq!(states(&cache)[&unit], BreakerState::Open, "{mode:?}");
        let err = driver.run(cache.set("k", &2.into(), None)).unwrap_err();
        assert!(
            err.message().contains("circuit breaker open"),
            "{mode:?}: {err}"
        );
        // The sentinels promote the replica (seconds); each probe asks them again.
        probe_until_back(&clock, || {
            driver.run(cache.set("k", &3.into(), None)).is_ok()
        });
        assert_eq!(states(&cache)[&unit], BreakerState::Closed, "{mode:?}");
        assert_eq!(driver.run(cache.get("k")).unwrap(), Some(Value::from(3)));
    }
}
