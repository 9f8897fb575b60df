//! One behavioural suite, run against every store: `memory::…`, `redis::…`, `sharded::…`
//! and `cluster::…` in the test output. Redis backends are real servers started by the
//! harness (or reused from `POLYCACHE_TEST_REDIS`).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polycache::{
    Cache, CacheBuilder, Clock, Codec, Config, Entry, Error, ErrorKind, Io, MockClock, Value,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Redis,
    Sharded,
    Cluster,
    /// The blocking stores (Python's sync `Cache`, WASI) on the same servers.
    RedisBlocking,
    ShardedBlocking,
    ClusterBlocking,
}

/// A cache on `backend` in a namespace of its own, plus the mock clock for memory.
struct Fixture {
    builder: CacheBuilder,
    mock: Option<MockClock>,
}

fn fixture(backend: Backend, test: &str, tweak: impl FnOnce(Config) -> Config) -> Fixture {
    let endpoints = polycache_harness::shared();
    let url = match backend {
        Backend::Memory => "memory://".to_owned(),
        Backend::Redis | Backend::RedisBlocking => {
            endpoints.standalone.clone().expect("standalone")
        }
        Backend::Sharded | Backend::ShardedBlocking => endpoints.shards.clone().expect("shards"),
        Backend::Cluster | Backend::ClusterBlocking => endpoints.cluster.clone().expect("cluster"),
    };
    let namespace = format!("{test}-{}", fastrand_suffix());
    let config = tweak(Config::from_url(&url).expect("url").namespace(namespace));
    let mut builder = Cache::builder(config);
    if matches!(
        backend,
        Backend::RedisBlocking | Backend::ShardedBlocking | Backend::ClusterBlocking
    ) {
        builder = builder.io(Io::Blocking);
    }
    let mut mock = None;
    if backend == Backend::Memory {
        let (clock, handle) = Clock::mock();
        builder = builder.clock(clock);
        mock = Some(handle);
    }
    Fixture { builder, mock }
}

fn fastrand_suffix() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn open(backend: Backend, test: &str) -> Cache {
    fixture(backend, test, |c| c)
        .builder
        .build()
        .await
        .expect("cache")
}

fn sample() -> Value {
    Value::from_iter([
        ("name", Value::from("Zoë 🦀")),
        ("id", Value::from(u64::MAX)),
        ("neg", Value::from(-42i64)),
        ("ratio", Value::from(0.25)),
        ("blob", Value::Bytes(vec![0, 1, 2, 255])),
        (
            "tags",
            Value::Array(vec!["a".into(), Value::Nil, true.into()]),
        ),
        (
            "nested",
            Value::from_iter([("deep", Value::from_iter([("x", 1)]))]),
        ),
    ])
}

async fn get_set_delete(backend: Backend) {
    let cache = open(backend, "gsd").await;
    assert_eq!(cache.get("user:1").await.unwrap(), None);
    cache.set("user:1", &sample(), None).await.unwrap();
    assert_eq!(cache.get("user:1").await.unwrap(), Some(sample()));
    assert!(cache.delete("user:1").await.unwrap());
    assert!(!cache.delete("user:1").await.unwrap());
    assert_eq!(cache.get("user:1").await.unwrap(), None);
    let m = cache.metrics();
    assert_eq!((m.hits, m.misses, m.sets, m.deletes), (1, 2, 1, 2));
    assert_eq!(m.latency_us.iter().map(|b| b.1).sum::<u64>(), 6);
    let err = cache.get("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Key);
}

async fn ttl_expiry(backend: Backend) {
    let fx = fixture(backend, "ttl", |c| c);
    let cache = fx.builder.build().await.unwrap();
    match fx.mock {
        Some(clock) => {
            cache
                .set("k", &1.into(), Some(Duration::from_secs(10)))
                .await
                .unwrap();
            clock.advance(Duration::from_secs(9));
            assert_eq!(cache.get("k").await.unwrap(), Some(1.into()));
            let left = cache.ttl("k").await.unwrap().unwrap();
            assert_eq!(left, Duration::from_secs(1));
            clock.advance(Duration::from_secs(1));
            assert_eq!(cache.get("k").await.unwrap(), None);
        }
        None => {
            // Redis expires on its own clock: a short TTL, then poll until it is gone.
            cache
                .set("k", &1.into(), Some(Duration::from_millis(200)))
                .await
                .unwrap();
            let left = cache.ttl("k").await.unwrap().expect("has a ttl");
            assert!(left <= Duration::from_millis(200));
            let mut polls = 0;
            while cache.get("k").await.unwrap().is_some() {
                polls += 1;
                assert!(polls < 300, "value never expired");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // The config's default TTL applies when a call gives none; jitter only shortens it.
    let fx = fixture(backend, "ttl-default", |c| {
        c.ttl(Some(Duration::from_secs(100))).jitter(0.5)
    });
    let cache = fx.builder.build().await.unwrap();
    for i in 0..20 {
        let key = format!("j{i}");
        cache.set(&key, &Value::Nil, None).await.unwrap();
        let ttl = cache.ttl(&key).await.unwrap().expect("default ttl");
        assert!(
            ttl > Duration::from_secs(49) && ttl <= Duration::from_secs(100),
            "{ttl:?}"
        );
    }
    let fx = fixture(backend, "ttl-none", |c| c.ttl(None));
    let cache = fx.builder.build().await.unwrap();
    cache.set("forever", &Value::Nil, None).await.unwrap();
    assert_eq!(cache.ttl("forever").await.unwrap(), None);
    assert_eq!(cache.get("forever").await.unwrap(), Some(Value::Nil));
}

async fn many_key_ops(backend: Backend) {
    let cache = open(backend, "many").await;
    let keys: Vec<String> = (0..200).map(|i| format!("item:{i}")).collect();
    let entries: Vec<(&str, Value)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(i, k)| (k.as_str(), Value::from(i as i64)))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = cache.get_many(&refs).await.unwrap();
    for (i, value) in got.iter().enumerate() {
        let expected = (i % 3 != 0).then(|| Value::from(i as i64));
        assert_eq!(value, &expected, "item:{i}");
    }
    assert_eq!(cache.get_many(&[]).await.unwrap(), vec![]);
    let m = cache.metrics();
    assert_eq!((m.hits, m.misses, m.sets), (133, 67, 133));
}

/// `n` concurrent `get_or_load` calls of one cold key whose loader returns `outcome`;
/// returns how often the loader ran and what each caller got.
///
/// The callers are futures of this one task, so a caller goes from its miss to joining the
/// flight without yielding. The loader holds until every caller has missed (the cache's
/// miss count is the latch), so each of them is in the flight while it runs: a single-flight
/// that let callers load on their own would run the loader `n` times.
async fn flight(
    cache: &Cache,
    key: &str,
    n: u64,
    outcome: Result<Value, Error>,
) -> (usize, Vec<Result<Value, Error>>) {
    let calls = AtomicUsize::new(0);
    let arrived = cache.metrics().misses + n;
    let callers = (0..n).map(|_| {
        cache.get_or_load(
            key,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                wait_until("every caller missed", || cache.metrics().misses >= arrived).await;
                outcome.clone()
            },
            None,
        )
    });
    let results = futures_util::future::join_all(callers).await;
    assert_eq!(
        cache.metrics().misses,
        arrived,
        "every caller looked up the key once"
    );
    (calls.load(Ordering::SeqCst), results)
}

/// Yields to the other futures of this task until `ready()` holds (at most 10 s).
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting until {what} after 10 s"
        );
        tokio::task::yield_now().await;
    }
}

async fn single_flight(backend: Backend) {
    let cache = open(backend, "flight").await;
    let (calls, results) = flight(&cache, "hot", 50, Ok(Value::from("computed"))).await;
    for result in results {
        assert_eq!(result.unwrap(), Value::from("computed"));
    }
    assert_eq!(calls, 1, "exactly one loader call");
    assert_eq!(cache.metrics().loads, 1);
    // Later calls hit without loading.
    let again = cache
        .get_or_load("hot", || async { panic!("must not load") }, None)
        .await
        .unwrap();
    assert_eq!(again, Value::from("computed"));

    // A failing loader is also called once, and every caller sees its error.
    let down = Error::loader(io::Error::other("database down"));
    let (calls, results) = flight(&cache, "broken", 20, Err(down)).await;
    for result in results {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Loader);
        assert_eq!(
            err.source_as::<io::Error>().unwrap().to_string(),
            "database down"
        );
    }
    assert_eq!(calls, 1);
    assert_eq!(
        cache.get("broken").await.unwrap(),
        None,
        "errors are not cached"
    );
    assert_eq!(cache.metrics().load_errors, 1);
}

async fn read_through(backend: Backend) {
    let loads = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = loads.clone();
    let cache = fixture(backend, "read", |c| c)
        .builder
        .loader(move |key: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(key.clone());
                Ok(Value::from(format!("loaded {key}")))
            }
        })
        .build()
        .await
        .unwrap();
    assert_eq!(cache.get("a").await.unwrap(), Some("loaded a".into()));
    assert_eq!(cache.get("a").await.unwrap(), Some("loaded a".into()));
    cache.set("b", &"stored b".into(), None).await.unwrap();
    let got = cache.get_many(&["a", "b", "c"]).await.unwrap();
    assert_eq!(
        got,
        vec![
            Some("loaded a".into()),
            Some("stored b".into()),
            Some("loaded c".into())
        ]
    );
    assert_eq!(*loads.lock().unwrap(), vec!["a".to_owned(), "c".to_owned()]);
}

async fn write_through(backend: Backend) {
    let db = Arc::new(Mutex::new(Vec::<(String, Value)>::new()));
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (record, failing) = (db.clone(), fail.clone());
    let cache = fixture(backend, "write", |c| c)
        .builder
        .writer(move |key: String, value: Value| {
            let (record, failing) = (record.clone(), failing.clone());
            async move {
                if failing.load(Ordering::SeqCst) {
                    return Err(Error::writer(io::Error::other("primary is read-only")));
                }
                record.lock().unwrap().push((key, value));
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    cache.set("a", &1.into(), None).await.unwrap();
    cache
        .set_many(&[("b", 2.into()), ("c", 3.into())], None)
        .await
        .unwrap();
    assert_eq!(db.lock().unwrap().len(), 3);
    assert_eq!(cache.get("c").await.unwrap(), Some(3.into()));

    fail.store(true, Ordering::SeqCst);
    let err = cache.set("a", &100.into(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Writer);
    assert_eq!(
        err.source_as::<io::Error>().unwrap().to_string(),
        "primary is read-only"
    );
    assert_eq!(
        cache.get("a").await.unwrap(),
        Some(1.into()),
        "cache untouched"
    );
    let err = cache.set("d", &4.into(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Writer);
    assert_eq!(cache.get("d").await.unwrap(), None, "cache untouched");
}

async fn decode_errors(backend: Backend) {
    let cache = open(backend, "decode").await;
    let foreign: [&[u8]; 4] = [
        b"hello from redis-cli",
        b"{\"json\":true}",
        &[0xc1, b'P', b'C', 1, 1, 0, 0, 16, 0], // truncated envelope
        &[0xc1, b'P', b'C', 9, 1, 0, 0, 16],    // a future version
    ];
    for (i, bytes) in foreign.iter().enumerate() {
        let entry = Entry {
            key: cache.redis_key(&format!("foreign:{i}")).unwrap(),
            value: bytes.to_vec(),
            ttl: Some(Duration::from_secs(60)),
        };
        cache.store().set(entry).await.unwrap();
        assert_eq!(cache.get(&format!("foreign:{i}")).await.unwrap(), None);
    }
    let m = cache.metrics();
    assert_eq!((m.decode_errors, m.misses, m.hits), (4, 4, 0));

    // get_or_load replaces an undecodable value with a fresh one.
    let v = cache
        .get_or_load("foreign:0", || async { Ok(Value::from(7)) }, None)
        .await
        .unwrap();
    assert_eq!(v, Value::from(7));
    assert_eq!(cache.get("foreign:0").await.unwrap(), Some(Value::from(7)));

    // Raw mode reads the same bytes as they are.
    let raw = fixture(backend, "decode", |c| {
        c.raw(true).namespace(cache.config().namespace.clone())
    })
    .builder
    .store(cache.store().clone())
    .build()
    .await
    .unwrap();
    assert_eq!(
        raw.get("foreign:1").await.unwrap(),
        Some(Value::Bytes(b"{\"json\":true}".to_vec()))
    );
    raw.set("plain", &"text".into(), None).await.unwrap();
    assert_eq!(
        raw.get("plain").await.unwrap(),
        Some(Value::Bytes(b"text".to_vec()))
    );
    assert_eq!(
        raw.set("n", &1.into(), None).await.unwrap_err().kind(),
        ErrorKind::Codec
    );
}

async fn codecs_and_compression(backend: Backend) {
    let big = Value::Array((0..500).map(|i| Value::from(format!("row {i}"))).collect());
    for codec in [Codec::Msgpack, Codec::Json] {
        let cache = fixture(backend, "codec", |c| c.codec(codec))
            .builder
            .build()
            .await
            .unwrap();
        let value = if codec == Codec::Json {
            Value::from_iter([("name", "x"), ("note", "no bytes in json")])
        } else {
            sample()
        };
        cache.set("v", &value, None).await.unwrap();
        assert_eq!(cache.get("v").await.unwrap(), Some(value));
        cache.set("big", &big, None).await.unwrap();
        assert_eq!(cache.get("big").await.unwrap(), Some(big.clone()));
        let stored = cache
            .store()
            .get(&cache.redis_key("big").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored[5], 1, "large values are stored LZ4-compressed");
        let err = cache.set("nan", &Value::Bytes(vec![1]), None).await;
        assert_eq!(err.is_err(), codec == Codec::Json);
    }
    let cache = fixture(backend, "codec", |c| c.codec(Codec::Bytes))
        .builder
        .build()
        .await
        .unwrap();
    cache
        .set("b", &Value::Bytes(b"\x00\xff".to_vec()), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get("b").await.unwrap(),
        Some(Value::Bytes(b"\x00\xff".to_vec()))
    );
    let err = cache.set("s", &"not bytes".into(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec);
}

async fn typed_rust_values(backend: Backend) {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct User {
        name: String,
        age: u32,
        admin: bool,
    }
    let cache = open(backend, "typed").await;
    let ada = User {
        name: "Ada".into(),
        age: 36,
        admin: true,
    };
    cache
        .set("u", &polycache::to_value(&ada).unwrap(), None)
        .await
        .unwrap();
    let back: User = polycache::from_value(&cache.get("u").await.unwrap().unwrap()).unwrap();
    assert_eq!(back, ada);
}

/// A loader that asks for its own key gets a clear error instead of waiting for itself.
async fn reentrant_get_or_load(backend: Backend) {
    let cache = open(backend, "reentrant").await;
    let inner = cache.clone();
    let err = cache
        .get_or_load(
            "self",
            || async move {
                inner
                    .get_or_load("self", || async { Ok(Value::from(1)) }, None)
                    .await
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader, "{err:?}");
    assert!(err.message().contains("wait for itself"), "{err}");
    // Other keys are fine from inside a loader.
    let inner = cache.clone();
    let value = cache
        .get_or_load(
            "outer",
            || async move {
                inner
                    .get_or_load("other", || async { Ok(Value::from(2)) }, None)
                    .await
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(value, Value::from(2));
}

macro_rules! suite {
    ($($backend:ident => $variant:expr),* $(,)?) => {$(
        mod $backend {
            use super::*;
            const B: Backend = $variant;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_set_delete() { super::get_set_delete(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ttl_expiry() { super::ttl_expiry(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_key_ops() { super::many_key_ops(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single_flight() { super::single_flight(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn read_through() { super::read_through(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn write_through() { super::write_through(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn decode_errors() { super::decode_errors(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn codecs_and_compression() { super::codecs_and_compression(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn typed_rust_values() { super::typed_rust_values(B).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reentrant_get_or_load() { super::reentrant_get_or_load(B).await }
        }
    )*};
}

suite! {
    memory => Backend::Memory,
    redis => Backend::Redis,
    sharded => Backend::Sharded,
    cluster => Backend::Cluster,
    redis_blocking => Backend::RedisBlocking,
    sharded_blocking => Backend::ShardedBlocking,
    cluster_blocking => Backend::ClusterBlocking,
}

/// The way blocking caches are really used: plain threads, `block_on`, no runtime.
/// 16 threads ask for one cold key; the loader holds until all 16 have missed, and no
/// second load runs beside it.
#[test]
fn blocking_cache_on_plain_threads_single_flight() {
    const THREADS: u64 = 16;
    let url = polycache_harness::shared()
        .standalone
        .clone()
        .expect("standalone");
    let config = Config::from_url(&url)
        .unwrap()
        .namespace(format!("threads-{}", fastrand_suffix()));
    let cache = polycache::block_on(Cache::builder(config).io(Io::Blocking).build()).unwrap();
    let loading = Arc::new(AtomicUsize::new(0));
    let most_loading = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, barrier) = (cache.clone(), barrier.clone());
            let (loading, most_loading) = (loading.clone(), most_loading.clone());
            std::thread::spawn(move || {
                barrier.wait();
                polycache::block_on(cache.get_or_load(
                    "cold",
                    || async {
                        let now = loading.fetch_add(1, Ordering::SeqCst) + 1;
                        most_loading.fetch_max(now, Ordering::SeqCst);
                        // The latch: every thread has missed, so all of them are waiting.
                        let deadline = std::time::Instant::now() + Duration::from_secs(10);
                        while cache.metrics().misses < THREADS {
                            assert!(std::time::Instant::now() < deadline, "callers missing");
                            std::thread::yield_now();
                        }
                        loading.fetch_sub(1, Ordering::SeqCst);
                        Ok(Value::from("v"))
                    },
                    None,
                ))
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), Value::from("v"));
    }
    assert_eq!(cache.metrics().misses, THREADS, "every thread missed once");
    // Threads are not futures of one task: one that missed just as the load ended may
    // load again after it (single-flight joins loads in flight), never beside it.
    assert_eq!(
        most_loading.load(Ordering::SeqCst),
        1,
        "two loads ran at once"
    );
    assert_eq!(
        polycache::block_on(cache.get("cold")).unwrap(),
        Some(Value::from("v"))
    );
}
