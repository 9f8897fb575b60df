//! Failover through Redis Sentinel under load: the harness starts a master, a replica and
//! three sentinels; a client loops over 10,000 keys (a set every 10th op, else a get checked
//! against the key's own value) while the master is killed. It must see no wrong value and
//! must recover once the sentinels promote the replica. Errors and the recovery time (the
//! last error after the kill) are printed, not asserted: they depend on the sentinels'
//! timers. Both I/O modes.

use std::time::{Duration, Instant};

use polycache::{block_on, Cache, Config, Io, Value};
use polycache_harness::{Spec, Topology};

const TIMEOUT: Duration = Duration::from_millis(500);
const KEYS: usize = 10_000;
/// After the kill: the sentinels call the master down after 1 s and then elect and
/// promote; this bounds the whole failover, with room to spare.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);
/// Consecutive successful operations that count as recovered.
const STABLE_OPS: usize = 2_000;

#[derive(Debug, Default)]
struct Tally {
    ops: u64,
    errors: u64,
    wrong: u64,
    misses: u64,
    last_error: Option<Instant>,
    sample: Vec<String>,
}

fn sentinel_topology() -> (Topology, String) {
    let topology = Topology::start_spec(Spec {
        sentinel: true,
        ..Spec::default()
    })
    .unwrap_or_else(|e| panic!("starting the sentinel topology: {e}"));
    let url = topology.endpoints().sentinel.expect("sentinel URL");
    (topology, url)
}

fn config(url: &str, ns: &str) -> Config {
    Config::from_url(url)
        .unwrap()
        .namespace(ns)
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
}

/// One step of the load: the outcome of op `i`, recorded in `tally`.
async fn step(cache: &Cache, keys: &[String], i: usize, tally: &mut Tally) -> bool {
    let n = i % keys.len();
    let expected = Value::from(n as u64);
    let ttl = Some(Duration::from_secs(600));
    let result: polycache::Result<()> = async {
        let mut write = i % 10 == 0;
        if !write {
            match cache.get(&keys[n]).await? {
                None => {
                    tally.misses += 1;
                    write = true;
                }
                Some(got) if got != expected => tally.wrong += 1,
                Some(_) => {}
            }
        }
        if write {
            cache.set(&keys[n], &expected, ttl).await?;
        }
        polycache::Result::Ok(())
    }
    .await;
    tally.ops += 1;
    match result {
        Ok(()) => true,
        Err(err) => {
            tally.errors += 1;
            tally.last_error = Some(Instant::now());
            if tally.sample.len() < 3 {
                tally.sample.push(err.to_string());
            }
            false
        }
    }
}

/// Writes the keys, kills the master, loops until `STABLE_OPS` consecutive successes
/// after the sentinels name a new master (or the deadline), and reports.
async fn kill_master_under_load(cache: &Cache, topology: &Topology, mode: &str) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<(&str, Value)> = chunk
            .iter()
            .map(|&i| (keys[i].as_str(), Value::from(i as u64)))
            .collect();
        cache
            .set_many(&batch, Some(Duration::from_secs(600)))
            .await
            .unwrap();
    }
    let master = &topology.sentinel_data[0];
    let mut tally = Tally::default();
    // Load before the fault, to compare with.
    for i in 0..KEYS {
        assert!(step(cache, &keys, i, &mut tally).await, "{tally:?}");
    }
    master.kill();
    let killed = Instant::now();
    let (mut i, mut streak) = (0usize, 0usize);
    while streak < STABLE_OPS || !promoted(topology, master) {
        assert!(
            killed.elapsed() < RECOVERY_DEADLINE,
            "{mode}: not recovered {RECOVERY_DEADLINE:?} after the kill: {tally:?}"
        );
        streak = if step(cache, &keys, i, &mut tally).await {
            streak + 1
        } else {
            0
        };
        i += 1;
    }
    let recovery = tally
        .last_error
        .map_or(Duration::ZERO, |at| at.duration_since(killed));
    println!(
        "sentinel {mode}: {} ops, {} errors, {} wrong, {} misses, recovered {:.2} s after the kill{}",
        tally.ops,
        tally.errors,
        tally.wrong,
        tally.misses,
        recovery.as_secs_f64(),
        tally
            .sample
            .first()
            .map(|e| format!(" (e.g. {e})"))
            .unwrap_or_default()
    );
    assert_eq!(tally.wrong, 0, "{mode}: wrong values under failover");
}

/// Whether the sentinels name a master other than `old`.
fn promoted(topology: &Topology, old: &polycache_harness::Server) -> bool {
    topology
        .sentinels
        .iter()
        .any(|sentinel| master_port(sentinel).is_some_and(|port| port != old.port()))
}

/// The master's port as a sentinel reports it (`INFO sentinel`: `address=host:port`).
fn master_port(sentinel: &polycache_harness::Server) -> Option<u16> {
    let info = sentinel.command(&["INFO", "sentinel"]).ok()?;
    let address = info.split("address=").nth(1)?.split(',').next()?;
    address.rsplit_once(':')?.1.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_under_load_async() {
    let (topology, url) = sentinel_topology();
    let cache = Cache::new(config(&url, "sentinel-async")).await.unwrap();
    kill_master_under_load(&cache, &topology, "async").await;
}

#[test]
fn sentinel_failover_under_load_blocking() {
    let (topology, url) = sentinel_topology();
    let cache = block_on(
        Cache::builder(config(&url, "sentinel-blocking"))
            .io(Io::Blocking)
            .build(),
    )
    .unwrap();
    block_on(kill_master_under_load(&cache, &topology, "blocking"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_url_without_sentinels_fails_within_the_connect_timeout() {
    let blackhole = polycache_harness::BlackHole::start().unwrap();
    let url = format!("redis+sentinel://{}/mymaster", blackhole.addr());
    let started = Instant::now();
    let err = Cache::new(config(&url, "sentinel-none")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed <= TIMEOUT.mul_f64(1.2) + Duration::from_millis(50),
        "took {elapsed:?}: {err}"
    );
}

/// With `replicaReads=true` reads go to the replica: they are served while the master is
/// paused, when a master-only cache times out.
fn replica_reads_while_the_master_is_paused(io: Io) {
    let (topology, url) = sentinel_topology();
    let open = |url: String| block_on(Cache::builder(config(&url, "replica-reads")).io(io).build());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run = |future| match io {
        Io::Async => runtime.block_on(future),
        Io::Blocking => block_on(future),
    };
    let (writer, reader) = match io {
        Io::Async => runtime.block_on(async {
            let writer = Cache::new(config(&url, "replica-reads")).await.unwrap();
            let reader = Cache::new(config(&format!("{url}?replicaReads=true"), "replica-reads"));
            (writer, reader.await.unwrap())
        }),
        Io::Blocking => (
            open(url.clone()).unwrap(),
            open(format!("{url}?replicaReads=true")).unwrap(),
        ),
    };
    run(Box::pin(async {
        writer.set("k", &Value::from(7u64), None).await.unwrap();
        // Replication is asynchronous: poll until the replica has the value.
        let deadline = Instant::now() + Duration::from_secs(10);
        while reader.get("k").await.unwrap() != Some(Value::from(7u64)) {
            assert!(Instant::now() < deadline, "the replica never got the value");
            std::thread::yield_now();
        }
        topology.sentinel_data[0].pause();
        let read = reader.get("k").await;
        let master_only = writer.get("k").await;
        topology.sentinel_data[0].resume();
        assert_eq!(
            read.unwrap(),
            Some(Value::from(7u64)),
            "{io:?}: read from the replica"
        );
        assert!(
            master_only.unwrap_err().is_timeout(),
            "{io:?}: the master is paused"
        );
    }));
}

#[test]
fn replica_reads_async() {
    replica_reads_while_the_master_is_paused(Io::Async);
}

#[test]
fn replica_reads_blocking() {
    replica_reads_while_the_master_is_paused(Io::Blocking);
}

/// A blocking call that must ask the sentinels again (its master went away) while every
/// sentinel is paused ends within its timeout: the sentinels share one lookup budget
/// instead of costing one timeout (or three, with redis-rs's handshake) each.
#[test]
fn paused_sentinels_cost_one_timeout_in_blocking_mode() {
    let (topology, url) = sentinel_topology();
    let cache = block_on(
        Cache::builder(config(&url, "paused-sentinels"))
            .io(Io::Blocking)
            .build(),
    )
    .unwrap();
    block_on(cache.set("k", &Value::from(1u64), None)).unwrap();
    for sentinel in &topology.sentinels {
        sentinel.pause();
    }
    topology.sentinel_data[0].kill();
    let limit = TIMEOUT.mul_f64(1.2) + Duration::from_millis(50);
    // The first call finds the master gone; the next ones must ask the paused sentinels.
    for call in 0..3 {
        let started = Instant::now();
        let err = block_on(cache.get("k")).unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed <= limit, "call {call} took {elapsed:?}: {err}");
    }
    for sentinel in &topology.sentinels {
        sentinel.resume();
    }
}
