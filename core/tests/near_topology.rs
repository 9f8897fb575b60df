//! The near tier through topology changes, on private servers. Redis Cluster with
//! replicas: a slot migrated to another master (the key moves; its entry is evicted and the
//! key stays tracked on its new node), then a manual failover (the promoted replica is
//! tracked, the tier is flushed and serves again). Sentinel: the master killed, a replica
//! promoted, tracking follows. Both I/O modes.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use polycache::store::Io;
use polycache::{Cache, Config, Value};
use polycache_harness::{Server, Spec, Topology};

use common::Driver;

const DEADLINE: Duration = Duration::from_secs(20);

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `CLUSTER NODES` as `(id, host:port, is_master, master id)`.
fn nodes(server: &Server) -> Vec<(String, String, bool, String)> {
    server
        .command(&["CLUSTER", "NODES"])
        .unwrap()
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?.to_owned();
            let master = f.get(2)?.contains("master");
            Some((f[0].to_owned(), addr, master, f.get(3)?.to_string()))
        })
        .collect()
}

fn server_at<'a>(topology: &'a Topology, addr: &str) -> &'a Server {
    topology
        .cluster_replicas
        .iter()
        .find(|s| s.addr() == addr)
        .unwrap()
}

/// The master serving `slot` (from `CLUSTER SLOTS` as the nodes see it).
fn owner(topology: &Topology, slot: u16) -> String {
    let any = &topology.cluster_replicas[0];
    let url = format!("redis://{}", any.addr());
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let slots: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<redis::Value>>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|range| {
            let redis::Value::Array(parts) = range else {
                panic!("bad CLUSTER SLOTS")
            };
            let start: u16 = redis::from_redis_value(parts[0].clone()).unwrap();
            let end: u16 = redis::from_redis_value(parts[1].clone()).unwrap();
            let (host, port): (String, u16) = redis::from_redis_value(match &parts[2] {
                redis::Value::Array(m) => redis::Value::Array(m[..2].to_vec()),
                other => other.clone(),
            })
            .unwrap();
            (start, end, (host, port))
        })
        .collect();
    let (_, _, (host, port)) = slots
        .into_iter()
        .find(|(s, e, _)| (*s..=*e).contains(&slot))
        .unwrap();
    format!("{host}:{port}")
}

fn cluster_write(url: &str, cmd: &redis::Cmd) {
    let seeds: Vec<String> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|a| format!("redis://{a}"))
        .collect();
    let client = redis::cluster::ClusterClient::new(seeds).unwrap();
    let mut conn = client.get_connection().unwrap();
    cmd.query::<redis::Value>(&mut conn).unwrap();
}

fn populate(d: &Driver, cache: &Cache, key: &str) -> Option<Value> {
    let mut value = None;
    eventually("near entry stored", || {
        value = d.run(cache.get(key)).ok().flatten();
        cache.get_near(key).unwrap().is_some()
    });
    value
}

fn migration_then_failover(topology: &Topology, io: Io) {
    static N: AtomicU64 = AtomicU64::new(0);
    let ns = format!("nc-{}", N.fetch_add(1, Ordering::Relaxed));
    let url = topology.endpoints().cluster_replicas.unwrap();
    let d = Driver::new(io);
    let config = Config::from_url(&url)
        .unwrap()
        .namespace(&ns)
        .near_cache(1000)
        .command_timeout(Duration::from_secs(3));
    let cache = d.run(Cache::builder(config).io(io).build()).unwrap();
    eventually("tracking up", || cache.near_is_serving());
    let redis_key = cache.redis_key("k").unwrap();
    let slot = polycache::key::slot(redis_key.as_bytes());

    // 1. Slot migration: the key moves from its master to another one.
    d.run(cache.set("k", &Value::from("v1"), None)).unwrap();
    assert_eq!(populate(&d, &cache, "k"), Some(Value::from("v1")));
    let from_addr = owner(topology, slot);
    let from = server_at(topology, &from_addr);
    let all = nodes(from);
    let from_id = all.iter().find(|n| n.1 == from_addr).unwrap().0.clone();
    // Another master that serves slots (a node's view of a fresh cluster may still list a
    // replica as a slotless master).
    let to_addr = [0u16, 5500, 11000, 16383]
        .into_iter()
        .map(|s| owner(topology, s))
        .find(|addr| *addr != from_addr)
        .unwrap();
    let to_id = all.iter().find(|n| n.1 == to_addr).unwrap().0.clone();
    let to = server_at(topology, &to_addr);
    let slot_text = slot.to_string();
    to.command(&["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id])
        .unwrap();
    from.command(&["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id])
        .unwrap();
    let (host, port) = to_addr.split_once(':').unwrap();
    from.command(&["MIGRATE", host, port, "", "0", "5000", "KEYS", &redis_key])
        .unwrap();
    // The move deleted the key on its old node: that node's push evicts the entry.
    eventually("evicted by the migration", || {
        cache.get_near("k").unwrap().is_none()
    });
    for addr in [&from_addr, &to_addr] {
        server_at(topology, addr)
            .command(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id])
            .unwrap();
    }
    // Read from the new owner (after MOVED), then a write there is seen.
    assert_eq!(populate(&d, &cache, "k"), Some(Value::from("v1")));
    cluster_write(&url, redis::cmd("DEL").arg(&redis_key));
    eventually("evicted by a write on the new owner", || {
        cache.get_near("k").unwrap().is_none()
    });

    // 2. Failover: the owner's replica takes over.
    d.run(cache.set("k", &Value::from("v2"), None)).unwrap();
    assert_eq!(populate(&d, &cache, "k"), Some(Value::from("v2")));
    let flushes = cache.metrics().near_flushes;
    let master = owner(topology, slot);
    let master_id = nodes(server_at(topology, &master))
        .into_iter()
        .find(|n| n.1 == master)
        .unwrap()
        .0;
    let replica = nodes(server_at(topology, &master))
        .into_iter()
        .find(|n| !n.2 && n.3 == master_id)
        .unwrap()
        .1;
    server_at(topology, &replica)
        .command(&["CLUSTER", "FAILOVER"])
        .unwrap();
    eventually("replica promoted", || owner(topology, slot) == replica);
    eventually("flushed for the new master", || {
        cache.metrics().near_flushes > flushes
    });
    eventually("serving again", || cache.near_is_serving());
    assert_eq!(populate(&d, &cache, "k"), Some(Value::from("v2")));
    cluster_write(&url, redis::cmd("DEL").arg(&redis_key));
    eventually("evicted by a write on the promoted master", || {
        cache.get_near("k").unwrap().is_none()
    });
}

#[test]
fn cluster_topology_changes() {
    let topology = Topology::start_spec(Spec {
        cluster_replicas: 3,
        ..Spec::default()
    })
    .unwrap();
    migration_then_failover(&topology, Io::Async);
    migration_then_failover(&topology, Io::Blocking);
}

#[test]
fn sentinel_failover() {
    let topology = Topology::start_spec(Spec {
        sentinel: true,
        ..Spec::default()
    })
    .unwrap();
    let url = topology.endpoints().sentinel.unwrap();
    let drivers = [Driver::new(Io::Async), Driver::new(Io::Blocking)];
    let caches: Vec<Cache> = [Io::Async, Io::Blocking]
        .iter()
        .zip(&drivers)
        .map(|(io, d)| {
            let config = Config::from_url(&url)
                .unwrap()
                .namespace("near-sentinel")
                .near_cache(100);
            d.run(Cache::builder(config).io(*io).build()).unwrap()
        })
        .collect();
    for cache in &caches {
        eventually("tracking up", || cache.near_is_serving());
    }
    drivers[0]
        .run(caches[0].set("k", &Value::from("v1"), None))
        .unwrap();
    for (cache, d) in caches.iter().zip(&drivers) {
        assert_eq!(populate(d, cache, "k"), Some(Value::from("v1")));
    }
    let old = &topology.sentinel_data[0];
    old.kill();
    for cache in &caches {
        eventually("flushed on the lost master", || {
            cache.metrics().near_flushes >= 1 && cache.get_near("k").unwrap().is_none()
        });
    }
    let new = &topology.sentinel_data[1];
    eventually("replica promoted", || {
        new.command(&["ROLE"]).is_ok_and(|r| r.contains("master"))
            || new
                .command(&["INFO", "replication"])
                .is_ok_and(|r| r.contains("role:master"))
    });
    for (cache, d) in caches.iter().zip(&drivers) {
        eventually("serving again", || cache.near_is_serving());
        assert_eq!(populate(d, cache, "k"), Some(Value::from("v1")));
    }
    let key = caches[0].redis_key("k").unwrap();
    new.command(&["DEL", &key]).unwrap();
    for cache in &caches {
        eventually("evicted by a write on the new master", || {
            cache.get_near("k").unwrap().is_none()
        });
    }
}
