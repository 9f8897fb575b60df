//! Deadlines under faults: every public call, in both I/O modes, against a paused
//! (SIGSTOP) or killed server, a paused cluster master and a dead shard, ends within
//! `timeout × 1.2 + 50 ms` with a typed error naming the node. Each test owns its servers.
//! The bounds are the library's promise (its configured timeout), not speed assertions.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use polycache::{Cache, Config, ErrorKind, Io, Value};
use polycache_harness::{Server, Topology};

use common::Driver;

const TIMEOUT: Duration = Duration::from_millis(400);

/// The promise: a call ends within its timeout plus 20 % and 50 ms of scheduling slack.
fn limit(timeout: Duration) -> Duration {
    timeout.mul_f64(1.2) + Duration::from_millis(50)
}

fn config(url: &str) -> Config {
    Config::from_url(url)
        .unwrap()
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
}

const MODES: [Io; 2] = [Io::Async, Io::Blocking];

type Call = for<'a> fn(&'a Cache, &'a str) -> Pin<Box<dyn Future<Output = CallResult> + 'a>>;
type CallResult = polycache::Result<()>;

/// Every public call that reaches the store, by name, on one key.
fn calls() -> Vec<(&'static str, Call)> {
    vec![
        ("get", |c, k| {
            Box::pin(async move { c.get(k).await.map(drop) })
        }),
        ("set", |c, k| {
            Box::pin(async move { c.set(k, &Value::from(2), None).await })
        }),
        ("delete", |c, k| {
            Box::pin(async move { c.delete(k).await.map(drop) })
        }),
        ("ttl", |c, k| {
            Box::pin(async move { c.ttl(k).await.map(drop) })
        }),
        // Several commands in one pipeline must still share one timeout.
        ("get_many", |c, k| {
            Box::pin(async move { c.get_many(&[k, "a", "b", "c"]).await.map(drop) })
        }),
        ("set_many", |c, k| {
            Box::pin(async move {
                let entries: Vec<(&str, Value)> = [k, "a", "b", "c"]
                    .iter()
                    .map(|k| (*k, Value::from(3)))
                    .collect();
                c.set_many(&entries, None).await
            })
        }),
        ("get_or_load", |c, k| {
            Box::pin(async move {
                let loaded = c
                    .get_or_load(k, || async { Ok(Value::from("db")) }, None)
                    .await?;
                assert_eq!(loaded, Value::from("db"), "get_or_load fails open");
                Ok(())
            })
        }),
    ]
}

/// Runs every call against a sick node and checks its bound and its error.
fn assert_every_call_bounded(driver: &Driver, cache: &Cache, key: &str, node: &str) {
    for (name, call) in calls() {
        let started = Instant::now();
        let result = driver.run(call(cache, key));
        let elapsed = started.elapsed();
        let mode = driver.io;
        assert!(
            elapsed <= limit(TIMEOUT),
            "{mode:?} {name} took {elapsed:?} (limit {:?})",
            limit(TIMEOUT)
        );
        if name == "get_or_load" {
            assert!(result.is_ok(), "{mode:?} get_or_load: {result:?}");
            continue;
        }
        let err = result.expect_err(name);
        assert!(
            matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection),
            "{mode:?} {name}: {err:?}"
        );
        assert!(
            err.message().contains(node),
            "{mode:?} {name}: the error names the node {node}: {err}"
        );
    }
}

#[test]
fn every_call_on_a_paused_server_ends_within_its_timeout() {
    for mode in MODES {
        let server = Server::start(&[]).unwrap();
        let driver = Driver::new(mode);
        let cache = driver.open(config(&server.url())).unwrap();
        driver.run(cache.set("k", &1.into(), None)).unwrap();
        server.pause();
        // Twice: the second round runs on connections opened after the first timeouts.
        for _ in 0..2 {
            assert_every_call_bounded(&driver, &cache, "k", &server.addr());
        }
        let started = Instant::now();
        let err = driver.open(config(&server.url())).unwrap_err();
        assert!(
            started.elapsed() <= limit(TIMEOUT),
            "{mode:?} open took {:?}",
            started.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::Timeout, "{mode:?} open: {err:?}");
        server.resume();
        let recovered = driver.run(cache.get("k"));
        assert!(recovered.is_ok(), "{mode:?} recovers: {recovered:?}");
    }
}

#[test]
fn every_call_on_a_killed_server_ends_within_its_timeout() {
    for mode in MODES {
        let server = Server::start(&[]).unwrap();
        let driver = Driver::new(mode);
        let cache = driver.open(config(&server.url())).unwrap();
        driver.run(cache.set("k", &1.into(), None)).unwrap();
        server.kill();
        assert_every_call_bounded(&driver, &cache, "k", &server.addr());
    }
}

#[test]
fn a_timed_out_write_is_not_sent_again() {
    // A SET that timed out must not be retried: with the server resumed, a retried SET
    // would land after the later DEL below and resurrect the value.
    for mode in MODES {
        let server = Server::start(&[]).unwrap();
        let driver = Driver::new(mode);
        let cache = driver.open(config(&server.url())).unwrap();
        server.pause();
        let err = driver.run(cache.set("k", &1.into(), None)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{mode:?}");
        assert!(
            !err.message().contains("os error"),
            "{mode:?}: a timeout says so: {err}"
        );
        server.resume();
        // The paused SET is still in the server's socket buffer and runs on resume; what
        // must not happen is a second copy sent on another connection.
        let sets = || {
            server
                .command(&["INFO", "commandstats"])
                .unwrap()
                .lines()
                .find(|l| l.starts_with("cmdstat_set:"))
                .map(|l| l.split(['=', ',']).nth(1).unwrap().parse::<u32>().unwrap())
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while sets() == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let sent = sets();
        assert_eq!(sent, 1, "{mode:?}: SET was sent {sent} times");
    }
}

#[test]
fn a_paused_cluster_master_slows_only_its_own_keys() {
    let topology = Topology::start(false, 0, 3).unwrap();
    let url = topology.endpoints().cluster.unwrap();
    let paused = &topology.cluster[0];
    for mode in MODES {
        let driver = Driver::new(mode);
        let cache = driver.open(config(&url)).unwrap();
        let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        for key in &keys {
            driver.run(cache.set(key, &1.into(), None)).unwrap();
        }
        // Which keys the paused master owns: it answers them and redirects the others.
        let (sick, healthy): (Vec<&String>, Vec<&String>) = keys.iter().partition(|key| {
            let redis_key = cache.redis_key(key).unwrap();
            !paused
                .command(&["GET", &redis_key])
                .is_err_and(|e| e.to_string().contains("MOVED"))
        });
        assert!(!sick.is_empty() && !healthy.is_empty());
        paused.pause();
        // Healthy masters first: after cluster-node-timeout (2 s) the whole cluster reports
        // CLUSTERDOWN, as Redis Cluster without replicas does.
        for key in healthy {
            let started = Instant::now();
            let found = driver.run(cache.get(key));
            let elapsed = started.elapsed();
            assert_eq!(found.unwrap(), Some(1.into()), "{mode:?} {key}");
            assert!(
                elapsed < TIMEOUT / 2,
                "{mode:?} healthy {key} took {elapsed:?}"
            );
        }
        // Batches over the sick master's keys (several slots, one pipeline) keep one timeout.
        let batch: Vec<&str> = sick.iter().map(|k| k.as_str()).collect();
        let started = Instant::now();
        assert!(driver.run(cache.get_many(&batch)).is_err());
        let elapsed = started.elapsed();
        assert!(
            elapsed <= limit(TIMEOUT),
            "{mode:?} get_many took {elapsed:?}"
        );
        let entries: Vec<(&str, Value)> = batch.iter().map(|k| (*k, Value::from(2))).collect();
        let started = Instant::now();
        assert!(driver.run(cache.set_many(&entries, None)).is_err());
        let elapsed = started.elapsed();
        assert!(
            elapsed <= limit(TIMEOUT),
            "{mode:?} set_many took {elapsed:?}"
        );
        for key in sick {
            let started = Instant::now();
            let err = driver.run(cache.get(key)).unwrap_err();
            let elapsed = started.elapsed();
            assert!(
                elapsed <= limit(TIMEOUT),
                "{mode:?} get({key}) took {elapsed:?}"
            );
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Cluster
                ),
                "{mode:?} {err:?}"
            );
        }
        paused.resume();
        // Wait for the cluster to heal before the next mode.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !topology.cluster.iter().all(|node| {
            node.command(&["CLUSTER", "INFO"])
                .unwrap()
                .contains("cluster_state:ok")
        }) {
            assert!(Instant::now() < deadline, "cluster heals");
            std::thread::yield_now();
        }
    }
}

#[test]
fn a_sharded_cache_opens_with_a_dead_shard_and_isolates_it() {
    let topology = Topology::start(false, 3, 0).unwrap();
    let url = topology.endpoints().shards.unwrap();
    let dead = &topology.shards[1];
    dead.kill();
    for mode in MODES {
        let driver = Driver::new(mode);
        let started = Instant::now();
        let cache = driver
            .open(config(&url))
            .expect("opens with one shard down");
        assert!(started.elapsed() <= limit(TIMEOUT), "{mode:?} open");
        let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut on_dead = Vec::new();
        for key in &keys {
            let started = Instant::now();
            match driver.run(cache.set(key, &Value::from(key.as_str()), None)) {
                Ok(()) => {}
                Err(err) => {
                    assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?} {err:?}");
                    on_dead.push(key.as_str());
                }
            }
            assert!(started.elapsed() <= limit(TIMEOUT), "{mode:?} set({key})");
        }
        assert!(
            !on_dead.is_empty() && on_dead.len() < keys.len(),
            "{mode:?}"
        );
        // One call over every shard: the dead shard's keys fail alone.
        let each = driver.run(cache.get_each(&refs));
        for (key, result) in keys.iter().zip(each) {
            if on_dead.contains(&key.as_str()) {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::Connection);
            } else {
                assert_eq!(
                    result.unwrap(),
                    Some(Value::from(key.as_str())),
                    "{mode:?} {key}"
                );
            }
        }
    }
}

#[test]
fn a_sharded_cache_with_every_shard_down_does_not_open() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for mode in MODES {
        let driver = Driver::new(mode);
        let started = Instant::now();
        let err = driver
            .open(config(&format!("redis+shards://127.0.0.1:{port}")))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?} {err:?}");
        assert!(started.elapsed() <= limit(TIMEOUT), "{mode:?}");
        let err = driver
            .open(config(&format!("redis://127.0.0.1:{port}")))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?} {err:?}");
        assert!(err.message().contains(&port.to_string()), "{err}");
    }
}

#[tokio::test]
async fn closed_cache_refuses_calls() {
    let cache = Cache::connect("memory://").await.unwrap();
    cache.close();
    assert_eq!(
        cache.get("k").await.unwrap_err().kind(),
        ErrorKind::Connection
    );
}
