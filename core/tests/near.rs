//! The near tier against real Redis: every topology in both I/O modes. A hit is served
//! without the store; any write by anyone (another cache, a plain client, an expiry, a Lua
//! script) evicts; a read overtaken by an invalidation is not stored; a lost tracking
//! connection flushes (counted) and serves nothing until tracking is back; servers that
//! refuse RESP3 or tracking give a config error; the byte bound holds.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use polycache::store::{self, Entry, Io, Store};
use polycache::{Cache, Clock, Config, ErrorKind, Result, Value};
use polycache_harness::{shared, Server};

use common::{Driver, Target};

const DEADLINE: Duration = Duration::from_secs(10);

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "near-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn near_config(url: &str, ns: &str) -> Config {
    Config::from_url(url)
        .unwrap()
        .namespace(ns)
        .near_cache(10_000)
}

/// Polls `done` until it holds or the deadline passes.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A store that counts reads and can run a hook between a read's reply and its return.
struct Spy {
    inner: Arc<dyn Store>,
    reads: AtomicU64,
    #[allow(clippy::type_complexity)]
    after_read: OnceLock<Box<dyn Fn(&str) + Send + Sync>>,
}

impl std::fmt::Debug for Spy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spy").field("inner", &self.inner).finish()
    }
}

#[async_trait]
impl Store for Spy {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let reply = self.inner.get(key).await;
        if let Some(hook) = self.after_read.get() {
            hook(key);
        }
        reply
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get_many(keys).await
    }
    async fn set(&self, entry: Entry) -> Result<()> {
        self.inner.set(entry).await
    }
    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.inner.set_many(entries).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.inner.ttl(key).await
    }
}

/// A near cache over a [`Spy`] of the store its URL names.
fn spied(d: &Driver, config: Config) -> (Cache, Arc<Spy>) {
    let inner = d.run(store::open(&config, Clock::system(), d.io)).unwrap();
    let spy = Arc::new(Spy {
        inner,
        reads: AtomicU64::new(0),
        after_read: OnceLock::new(),
    });
    let cache = d
        .run(Cache::builder(config).io(d.io).store(spy.clone()).build())
        .unwrap();
    eventually("tracking up", || cache.near_is_serving());
    (cache, spy)
}

/// A writer that is not this cache: a second cache (its own connections), no near tier.
fn other(d: &Driver, url: &str, ns: &str) -> Cache {
    let config = Config::from_url(url).unwrap().namespace(ns);
    d.run(Cache::builder(config).io(d.io).build()).unwrap()
}

/// Runs a raw command on the node(s) holding `key`: every node of a shard list (the others
/// do not have the key, so DEL/EXPIRE there are no-ops), or the cluster's routing.
fn raw(url: &str, cmd: &redis::Cmd) {
    if let Some(rest) = url.strip_prefix("redis+cluster://") {
        let seeds: Vec<String> = rest.split(',').map(|a| format!("redis://{a}")).collect();
        let client = redis::cluster::ClusterClient::new(seeds).unwrap();
        let mut conn = client.get_connection().unwrap();
        cmd.query::<redis::Value>(&mut conn).unwrap();
        return;
    }
    let nodes: Vec<String> = match url.strip_prefix("redis+shards://") {
        Some(rest) => rest.split(',').map(|a| format!("redis://{a}")).collect(),
        None => vec![url.to_owned()],
    };
    for node in nodes {
        let mut conn = redis::Client::open(node).unwrap().get_connection().unwrap();
        cmd.query::<redis::Value>(&mut conn).unwrap();
    }
}

/// Writes through `cache` and waits for the tracking push of that very write, so it
/// cannot arrive later and evict what the test stores next.
fn set_settled(d: &Driver, cache: &Cache, key: &str, value: &str) {
    let before = cache.metrics().near_invalidations;
    d.run(cache.set(key, &Value::from(value), None)).unwrap();
    eventually("own write's push", || {
        cache.metrics().near_invalidations > before
    });
}

/// Reads `key` until the near tier holds it (a first read may race the cache's own write's
/// invalidation, which rightly keeps it out).
fn populate(d: &Driver, cache: &Cache, key: &str) -> Value {
    let mut value = None;
    eventually("near entry stored", || {
        value = d.run(cache.get(key)).unwrap();
        cache.get_near(key).unwrap().is_some()
    });
    value.unwrap()
}

fn hits_and_foreign_writes(target: Target) {
    let url = &target.url();
    let d = Driver::new(target.io);
    let ns = unique("writes");
    let (cache, spy) = spied(&d, near_config(url, &ns));
    let writer = other(&d, url, &ns);
    let redis_key = cache.redis_key("k").unwrap();

    // A hit is served without the store.
    set_settled(&d, &cache, "k", "v1");
    assert_eq!(populate(&d, &cache, "k"), Value::from("v1"));
    let reads = spy.reads.load(Ordering::Relaxed);
    for _ in 0..100 {
        assert_eq!(d.run(cache.get("k")).unwrap(), Some(Value::from("v1")));
    }
    assert_eq!(
        spy.reads.load(Ordering::Relaxed),
        reads,
        "near hits read the store"
    );
    let m = cache.metrics();
    assert!(m.near_hits >= 100 && m.near_entries == 1, "{m:?}");

    // get_many and get_each are served by the tier too.
    let reads = spy.reads.load(Ordering::Relaxed);
    assert_eq!(
        d.run(cache.get_many(&["k"])).unwrap(),
        vec![Some(Value::from("v1"))]
    );
    let each = d.run(cache.get_each(&["k"]));
    assert_eq!(each[0].as_ref().unwrap(), &Some(Value::from("v1")));
    assert_eq!(spy.reads.load(Ordering::Relaxed), reads);

    // Another cache's write evicts, and the new value is read.
    d.run(writer.set("k", &Value::from("v2"), None)).unwrap();
    eventually("evicted by another cache's SET", || {
        cache.get_near("k").unwrap().is_none()
    });
    assert_eq!(d.run(cache.get("k")).unwrap(), Some(Value::from("v2")));

    // A plain client's DEL.
    populate(&d, &cache, "k");
    raw(url, redis::cmd("DEL").arg(&redis_key));
    eventually("evicted by DEL", || cache.get_near("k").unwrap().is_none());
    assert_eq!(d.run(cache.get("k")).unwrap(), None);

    // An expiry (Redis's active expiry deletes the key and pushes the invalidation).
    d.run(writer.set("k", &Value::from("v3"), None)).unwrap();
    populate(&d, &cache, "k");
    raw(url, redis::cmd("PEXPIRE").arg(&redis_key).arg(30));
    eventually("evicted by expiry", || {
        cache.get_near("k").unwrap().is_none()
    });

    // A Lua script.
    d.run(writer.set("k", &Value::from("v4"), None)).unwrap();
    populate(&d, &cache, "k");
    raw(
        url,
        redis::cmd("EVAL")
            .arg("return redis.call('DEL', KEYS[1])")
            .arg(1)
            .arg(&redis_key),
    );
    eventually("evicted by a script", || {
        cache.get_near("k").unwrap().is_none()
    });
    assert!(cache.metrics().near_invalidations >= 4);

    // This process's own write is seen at once (no wait for the push).
    d.run(writer.set("k", &Value::from("v5"), None)).unwrap();
    populate(&d, &cache, "k");
    d.run(cache.set("k", &Value::from("v6"), None)).unwrap();
    assert_eq!(d.run(cache.get("k")).unwrap(), Some(Value::from("v6")));
    d.run(cache.delete("k")).unwrap();
    assert_eq!(d.run(cache.get("k")).unwrap(), None);
}

on_every_redis_store!(hits_and_foreign_writes);

/// A write lands between a read's reply and its return (the store hook holds the reply
/// until the cache has applied the write's invalidation): the stale reply is returned to
/// that caller (the read happened before the write) but never stored.
fn read_overtaken_by_invalidation(target: Target) {
    let url = &target.url();
    let d = Driver::new(target.io);
    let ns = unique("race");
    let (cache, spy) = spied(&d, near_config(url, &ns));
    let writer = other(&d, url, &ns);
    d.run(writer.set("k", &Value::from("old"), None)).unwrap();
    let cache_slot: Arc<OnceLock<Cache>> = Arc::new(OnceLock::new());
    cache_slot.set(cache.clone()).unwrap();
    let hook_url = url.to_owned();
    let hook_cache = cache_slot.clone();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let hook_armed = armed.clone();
    spy.after_read
        .set(Box::new(move |key: &str| {
            if !hook_armed.swap(false, Ordering::SeqCst) {
                return;
            }
            let cache = hook_cache.get().unwrap();
            let before = cache.metrics().near_invalidations;
            // A foreign write of the key, by a plain client.
            raw(&hook_url, redis::cmd("DEL").arg(key));
            eventually("invalidation applied", || {
                cache.metrics().near_invalidations > before
            });
        }))
        .unwrap_or_else(|_| panic!("hook set twice"));
    assert_eq!(d.run(cache.get("k")).unwrap(), Some(Value::from("old")));
    assert!(!armed.load(Ordering::SeqCst), "the hook ran");
    assert!(
        cache.get_near("k").unwrap().is_none(),
        "a reply overtaken by an invalidation was stored"
    );
    assert_eq!(d.run(cache.get("k")).unwrap(), None);
}

on_every_redis_store!(read_overtaken_by_invalidation);

/// The tracking connection's client id on a private server (the only tracking client).
fn tracking_client_ids(server: &Server) -> Vec<String> {
    let list = server.command(&["CLIENT", "LIST"]).unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|f| f.contains('t')))
        })
        .filter_map(|line| {
            line.split(' ')
                .next()?
                .strip_prefix("id=")
                .map(str::to_owned)
        })
        .collect()
}

fn killed_tracking_connection_flushes(io: Io) {
    let server = Server::start(&[]).unwrap();
    let d = Driver::new(io);
    let (cache, _) = spied(&d, near_config(&server.url(), "kill"));
    d.run(cache.set("k", &Value::from(1), None)).unwrap();
    populate(&d, &cache, "k");
    let ids = tracking_client_ids(&server);
    assert_eq!(ids.len(), 1, "one tracking connection: {ids:?}");
    server.command(&["CLIENT", "KILL", "ID", &ids[0]]).unwrap();
    eventually("flush counted", || cache.metrics().near_flushes >= 1);
    // The flush came first: nothing is served from before the loss.
    assert!(cache.metrics().near_entries == 0);
    // Tracking comes back by itself, and the tier serves again.
    eventually("tracking back", || cache.near_is_serving());
    assert_eq!(tracking_client_ids(&server).len(), 1);
    populate(&d, &cache, "k");
    raw(
        &server.url(),
        redis::cmd("DEL").arg(cache.redis_key("k").unwrap()),
    );
    eventually("evicted after re-tracking", || {
        cache.get_near("k").unwrap().is_none()
    });
}

#[test]
fn client_kill_async() {
    killed_tracking_connection_flushes(Io::Async);
}
#[test]
fn client_kill_blocking() {
    killed_tracking_connection_flushes(Io::Blocking);
}

/// A redis-server on a fixed port, for the restart test (the harness picks ports itself);
/// killed when dropped.
struct FixedPort(std::process::Child);

impl FixedPort {
    fn start(port: &str) -> FixedPort {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = std::process::Command::new(binary)
            .args([
                "--port",
                port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = FixedPort(child);
        eventually("restarted server up", || {
            redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_connection()
                .is_ok()
        });
        server
    }
}

impl Drop for FixedPort {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn restart_flushes(io: Io) {
    let server = Server::start(&[]).unwrap();
    let port = server.port().to_string();
    let url = server.url();
    let d = Driver::new(io);
    let (cache, _) = spied(&d, near_config(&url, "restart"));
    d.run(cache.set("k", &Value::from("before"), None)).unwrap();
    populate(&d, &cache, "k");
    drop(server); // killed; its data is gone (no persistence)
    eventually("flush on restart", || cache.metrics().near_flushes >= 1);
    assert!(cache.get_near("k").unwrap().is_none());
    assert!(!cache.near_is_serving());
    let _server = FixedPort::start(&port);
    eventually("tracking back after restart", || cache.near_is_serving());
    // The new server has no value: the near tier must not pretend it does.
    let mut value = Some(Value::Nil);
    eventually("the restarted server answers", || {
        match d.run(cache.get("k")) {
            Ok(v) => {
                value = v;
                true
            }
            Err(_) => false,
        }
    });
    assert_eq!(value, None);
    d.run(cache.set("k", &Value::from("after"), None)).unwrap();
    assert_eq!(populate(&d, &cache, "k"), Value::from("after"));
    raw(&url, redis::cmd("DEL").arg(cache.redis_key("k").unwrap()));
    eventually("tracked after restart", || {
        cache.get_near("k").unwrap().is_none()
    });
}

#[test]
fn restart_async() {
    restart_flushes(Io::Async);
}
#[test]
fn restart_blocking() {
    restart_flushes(Io::Blocking);
}

/// A paused server (SIGSTOP) answers nothing, yet a near hit is served (briefly: a paused
/// link is called lost after its PING goes unanswered).
fn paused_server_still_hits(io: Io) {
    let server = Server::start(&[]).unwrap();
    let d = Driver::new(io);
    let config = near_config(&server.url(), "pause").command_timeout(Duration::from_secs(5));
    let (cache, _) = spied(&d, config);
    set_settled(&d, &cache, "k", "v");
    populate(&d, &cache, "k");
    server.pause();
    let got = d.run(cache.get("k"));
    server.resume();
    assert_eq!(got.unwrap(), Some(Value::from("v")));
}

#[test]
fn paused_server_async() {
    paused_server_still_hits(Io::Async);
}
#[test]
fn paused_server_blocking() {
    paused_server_still_hits(Io::Blocking);
}

/// Servers that refuse what the near tier needs: one without `HELLO` (renamed away, as
/// for a server that predates RESP3), one whose ACL user may not run `CLIENT` (NOPERM).
#[test]
fn refused_resp3_or_tracking_is_a_config_error() {
    let no_hello = Server::start(&["--rename-command", "HELLO", ""]).unwrap();
    let no_client = Server::start(&[]).unwrap();
    no_client
        .command(&[
            "ACL", "SETUSER", "notrack", "on", ">pw", "~*", "&*", "+@all", "-client",
        ])
        .unwrap();
    let cases = [
        (no_hello.url(), "RESP3"),
        (
            format!("redis://notrack:pw@{}", no_client.addr()),
            "CLIENT TRACKING",
        ),
    ];
    for io in [Io::Async, Io::Blocking] {
        let d = Driver::new(io);
        for (url, says) in &cases {
            let err = d
                .run(Cache::builder(near_config(url, "refused")).io(io).build())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert!(err.to_string().contains(says), "{err}");
            // Without the near tier the same server works.
            let plain = Config::from_url(url).unwrap().namespace("refused");
            let cache = d.run(Cache::builder(plain).io(io).build()).unwrap();
            d.run(cache.set("k", &Value::from(1), None)).unwrap();
        }
    }
}

#[test]
fn memory_url_with_a_near_tier_is_a_config_error() {
    let d = Driver::new(Io::Async);
    let err = d
        .run(Cache::new(Config::default().near_cache(10)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[test]
fn byte_bound_holds_with_100k_entries() {
    let url = shared().standalone.as_deref().unwrap();
    let d = Driver::new(Io::Blocking);
    let bound: u64 = 8 << 20;
    let config = near_config(url, &unique("bytes"))
        .near_cache(200_000)
        .near_cache_bytes(bound);
    let (cache, _) = spied(&d, config);
    // The 200-byte object of the benches: a map of a few fields.
    let object = |i: usize| {
        let mut map = polycache::codec::Map::new();
        map.insert("id".to_owned(), Value::from(i as i64));
        map.insert("name".to_owned(), Value::from(format!("user-{i:08}")));
        map.insert(
            "email".to_owned(),
            Value::from(format!("user{i}@example.com")),
        );
        map.insert("bio".to_owned(), Value::from("x".repeat(120)));
        Value::Map(map)
    };
    let keys: Vec<String> = (0..100_000).map(|i| format!("u{i}")).collect();
    for chunk in keys.chunks(1000) {
        let entries: Vec<(&str, Value)> = chunk
            .iter()
            .map(|k| (k.as_str(), object(k[1..].parse().unwrap())))
            .collect();
        d.run(cache.set_many(&entries, None)).unwrap();
    }
    eventually("own pushes", || {
        cache.metrics().near_invalidations >= 100_000
    });
    let before = rss();
    let mut peak = 0;
    for chunk in keys.chunks(1000) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let got = d.run(cache.get_many(&refs)).unwrap();
        assert!(got.iter().all(Option::is_some));
        let m = cache.metrics();
        assert!(m.near_bytes <= bound, "{} > {bound}", m.near_bytes);
        peak = peak.max(m.near_entries);
    }
    let m = cache.metrics();
    assert!(m.near_entries > 1000, "the tier holds entries: {m:?}");
    eprintln!(
        "100k entries through an {bound}-byte near tier: {} entries, {} bytes held (peak \
         {peak} entries); RSS grew {:?} bytes",
        m.near_entries,
        m.near_bytes,
        before.zip(rss()).map(|(b, a)| a.saturating_sub(b))
    );
}

#[test]
fn flushall_empties_the_tier() {
    let server = Server::start(&[]).unwrap();
    let d = Driver::new(Io::Blocking);
    let (cache, _) = spied(&d, near_config(&server.url(), "flushall"));
    set_settled(&d, &cache, "k", "v");
    populate(&d, &cache, "k");
    server.command(&["FLUSHALL"]).unwrap();
    eventually("emptied by FLUSHALL", || {
        cache.get_near("k").unwrap().is_none() && cache.metrics().near_flushes >= 1
    });
    assert!(
        cache.near_is_serving(),
        "a flush by the server is not a lost link"
    );
}

/// Measures (prints, asserts nothing about speed): a near hit's cost through
/// `Cache::get_near`, and the delay from a foreign write's reply to the eviction.
#[test]
fn measure_hit_cost_and_invalidation_delay() {
    let url = shared().standalone.as_deref().unwrap();
    let d = Driver::new(Io::Blocking);
    let (cache, _) = spied(&d, near_config(url, &unique("measure")));
    let redis_key = cache.redis_key("k").unwrap();
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    set_settled(&d, &cache, "k", "v");
    populate(&d, &cache, "k");
    let n = 200_000;
    let started = Instant::now();
    for _ in 0..n {
        assert!(cache.get_near("k").unwrap().is_some());
    }
    let per_hit = started.elapsed() / n;
    let started = Instant::now();
    for _ in 0..n {
        assert!(d.run(cache.get("k")).unwrap().is_some());
    }
    let per_get = started.elapsed() / n;
    let mut delays = Vec::new();
    for i in 0..300 {
        set_settled(&d, &cache, "k", "v");
        populate(&d, &cache, "k");
        let _: () = redis::cmd("SET")
            .arg(&redis_key)
            .arg(i)
            .query(&mut conn)
            .unwrap();
        let written = Instant::now();
        let deadline = written + DEADLINE;
        while cache.get_near("k").unwrap().is_some() {
            assert!(Instant::now() < deadline, "never evicted");
            std::hint::spin_loop();
        }
        delays.push(written.elapsed());
    }
    delays.sort();
    let pct = |p: usize| delays[(delays.len() * p / 100).min(delays.len() - 1)];
    eprintln!(
        "near hit: get_near {per_hit:?}, get (clone) {per_get:?}; invalidation delay after the \
         writer's reply: p50 {:?}, p99 {:?}, max {:?}",
        pct(50),
        pct(99),
        delays.last().unwrap()
    );
}

/// The resident memory of this process, in bytes (Linux).
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Measures (prints): 100,000 entries of the 200-byte object held in a tier large enough
/// for all of them: the tier's byte estimate against the growth of the process's RSS.
#[test]
fn measure_memory_of_100k_entries() {
    let url = shared().standalone.as_deref().unwrap();
    let d = Driver::new(Io::Blocking);
    let config = near_config(url, &unique("rss"))
        .near_cache(200_000)
        .near_cache_bytes(1 << 30);
    let (cache, _) = spied(&d, config);
    let object = |i: usize| {
        let mut map = polycache::codec::Map::new();
        map.insert("id".to_owned(), Value::from(i as i64));
        map.insert("name".to_owned(), Value::from(format!("user-{i:08}")));
        map.insert(
            "email".to_owned(),
            Value::from(format!("user{i}@example.com")),
        );
        map.insert("bio".to_owned(), Value::from("x".repeat(120)));
        Value::Map(map)
    };
    let keys: Vec<String> = (0..100_000).map(|i| format!("u{i}")).collect();
    for chunk in keys.chunks(1000) {
        let entries: Vec<(&str, Value)> = chunk
            .iter()
            .map(|k| (k.as_str(), object(k[1..].parse().unwrap())))
            .collect();
        d.run(cache.set_many(&entries, None)).unwrap();
    }
    // Wait for the pushes of those writes, so they do not evict what is read next.
    eventually("own pushes", || {
        cache.metrics().near_invalidations >= 100_000
    });
    let before = rss();
    for chunk in keys.chunks(1000) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        d.run(cache.get_many(&refs)).unwrap();
    }
    let after = rss();
    let m = cache.metrics();
    eprintln!(
        "100k entries of the 200-byte object: {} entries held, estimate {} bytes ({} per \
         entry); RSS grew {:?} bytes",
        m.near_entries,
        m.near_bytes,
        m.near_bytes / m.near_entries.max(1),
        before.zip(after).map(|(b, a)| a.saturating_sub(b))
    );
}

/// With `fresh_for`, a call that loads must see the envelope's freshness, which the near
/// tier does not keep: the load paths skip it; a plain `get` still hits.
#[test]
fn freshness_rules_keep_loads_off_the_tier() {
    let url = shared().standalone.as_deref().unwrap();
    let d = Driver::new(Io::Blocking);
    let config = near_config(url, &unique("fresh")).fresh_for(Some(Duration::from_secs(30)));
    let (cache, _) = spied(&d, config);
    set_settled(&d, &cache, "k", "v");
    populate(&d, &cache, "k");
    assert!(cache.get_near("k").unwrap().is_some());
    assert!(cache.get_near_for_load("k").unwrap().is_none());
}

/// `rediss://`: the tracking connection speaks TLS too (here to a self-signed server, the
/// URL's `#insecure` as for the data connections).
fn near_over_tls(io: Io) {
    let server = Server::start_tls().unwrap();
    let url = server.url();
    let d = Driver::new(io);
    let (cache, spy) = spied(&d, near_config(&url, "tls"));
    let writer = other(&d, &url, "tls");
    set_settled(&d, &cache, "k", "v1");
    assert_eq!(populate(&d, &cache, "k"), Value::from("v1"));
    let reads = spy.reads.load(Ordering::Relaxed);
    for _ in 0..10 {
        assert_eq!(d.run(cache.get("k")).unwrap(), Some(Value::from("v1")));
    }
    assert_eq!(spy.reads.load(Ordering::Relaxed), reads);
    d.run(writer.set("k", &Value::from("v2"), None)).unwrap();
    eventually("evicted over TLS", || {
        cache.get_near("k").unwrap().is_none()
    });
    assert_eq!(d.run(cache.get("k")).unwrap(), Some(Value::from("v2")));
    // PINGs cross TLS while the reader blocks in a read: the supervisor sends the next one
    // only after the reply to the last came back, so three of them mean two round trips.
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut pings = || {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut admin)
            .unwrap();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (flushes, before) = (cache.metrics().near_flushes, pings());
    eventually("PING round trips over TLS", || pings() >= before + 3);
    assert!(cache.near_is_serving());
    assert_eq!(
        cache.metrics().near_flushes,
        flushes,
        "the TLS link was lost"
    );
}

#[test]
fn tls_async() {
    near_over_tls(Io::Async);
}
#[test]
fn tls_blocking() {
    near_over_tls(Io::Blocking);
}
