//! The component's cache against real Redis, checked from Rust: values written by either
//! side are read by the other, the stored bytes are the same, keys land on the same shard
//! and slot. The Rust side is `polycache::Cache` on the same URL and namespace.

use std::time::Duration;

use polycache::{block_on, Cache, Config, Io, Node, Ring, Value};
use polycache_wasm_host::{CacheHandle, Codec, Guest, Network, Options, WitError};

use super::{guest, host, in_namespace, namespace, no_options, pack, unpack};

fn endpoints() -> &'static polycache_harness::Endpoints {
    polycache_harness::shared()
}

pub(crate) fn standalone() -> String {
    endpoints().standalone.clone().expect("a standalone server")
}

fn shards() -> String {
    endpoints().shards.clone().expect("shard servers")
}

fn cluster() -> String {
    endpoints().cluster.clone().expect("a cluster")
}

/// The Rust cache on `url` in the namespace `in_namespace(test)` gives the component.
fn rust_cache(url: &str, test: &str) -> Cache {
    let config = Config::from_url(url)
        .expect("url")
        .namespace(namespace(test));
    block_on(Cache::builder(config).io(Io::Blocking).build()).expect("rust cache")
}

pub(crate) fn open(guest: &mut Guest, url: &str, options: &Options) -> CacheHandle {
    guest
        .open(url, options)
        .expect("no trap")
        .unwrap_or_else(|e| panic!("open {url}: {e:?}"))
}

/// Values covering the model: every kind, 64-bit edges, an integral float, nesting, and
/// one large enough to be compressed.
fn samples() -> Vec<(String, Value)> {
    let user = Value::Map(polycache::codec::Map::from([
        ("id".to_owned(), Value::from(42)),
        ("name".to_owned(), Value::from("Ada Lovelace")),
        (
            "tags".to_owned(),
            Value::Array(vec!["math".into(), "engines".into()]),
        ),
        ("score".to_owned(), Value::Float(1.5)),
        ("ratio".to_owned(), Value::Float(1.0)),
        (
            "avatar".to_owned(),
            Value::Bytes(vec![0, 159, 146, 150, 255]),
        ),
        ("big".to_owned(), Value::from(u64::MAX)),
        ("small".to_owned(), Value::Int(i64::MIN)),
        ("nothing".to_owned(), Value::Nil),
        ("active".to_owned(), Value::Bool(true)),
        (
            "nested".to_owned(),
            Value::Map(polycache::codec::Map::from([(
                "é".to_owned(),
                Value::Array(vec![]),
            )])),
        ),
    ]));
    let large = Value::Str("polycache ".repeat(400)); // 4000 bytes: compressed with LZ4
                                                      // About 320 KB of payload: compressed in pieces, on two threads natively and on one in
                                                      // the 32-bit component, into the same bytes (compared below). One LZ4 pass over more
                                                      // than 64 KiB hashed differently on the two and wrote different bytes.
    let halves = Value::Array(
        (0..6000)
            .map(|i| {
                Value::from(format!(
                    "row {i}: the quick brown fox jumps over the lazy dog"
                ))
            })
            .collect(),
    );
    vec![
        ("user:1".to_owned(), user),
        ("greeting".to_owned(), Value::from("héllo, wörld")),
        ("large".to_owned(), large),
        ("halves".to_owned(), halves),
        ("negative-zero".to_owned(), Value::Float(-0.0)),
        ("bytes".to_owned(), Value::Bytes((0..=255).collect())),
        (
            "empty-map".to_owned(),
            Value::Map(polycache::codec::Map::new()),
        ),
        ("k".repeat(300), Value::from(7)), // a long key, stored under its SHA-256
    ]
}

/// The stored bytes of `key` with the created-at field zeroed (it is the write time).
fn stored_bytes(rust: &Cache, key: &str) -> Vec<u8> {
    let redis_key = rust.redis_key(key).expect("key");
    let mut bytes = block_on(rust.store().get(&redis_key))
        .expect("store get")
        .unwrap_or_else(|| panic!("{redis_key} is missing"));
    assert_eq!(&bytes[..4], &[0xC1, b'P', b'C', 1], "an envelope v1");
    bytes[8..16].fill(0);
    bytes
}

/// Rust writes, the component reads; the component writes, Rust reads; both wrote the
/// same bytes; deletes and TTLs are seen across.
fn check_cross_runtime(url: &str, test: &str) {
    let rust = rust_cache(url, test);
    let mut guest = guest();
    let cache = open(&mut guest, url, &in_namespace(test));

    for (key, value) in samples() {
        // Same Redis key from both.
        let redis_key = guest.redis_key(cache, &key).unwrap().unwrap();
        assert_eq!(redis_key, rust.redis_key(&key).unwrap());

        // Rust → component.
        let from_rust = format!("{key}/from-rust");
        block_on(rust.set(&from_rust, &value, None)).unwrap();
        let read = guest.get(cache, &from_rust).unwrap().unwrap();
        assert_eq!(
            read,
            Some(pack(&value)),
            "component reads {from_rust} written by Rust"
        );

        // Component → Rust.
        let from_wasm = format!("{key}/from-wasm");
        guest
            .set(cache, &from_wasm, &pack(&value), None)
            .unwrap()
            .unwrap();
        let read = block_on(rust.get(&from_wasm)).unwrap();
        assert_eq!(
            read,
            Some(value.clone()),
            "Rust reads {from_wasm} written by the component"
        );

        // The same value gives the same envelope from both runtimes.
        assert_eq!(
            stored_bytes(&rust, &from_rust),
            stored_bytes(&rust, &from_wasm),
            "envelopes of {key}"
        );
    }

    // Batches: the component's set-many is read by Rust, Rust's values by get-many.
    let entries: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("batch:{i}"), pack(&Value::from(i * 1000))))
        .collect();
    guest
        .set_many(cache, &entries, Some(60.0))
        .unwrap()
        .unwrap();
    let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let from_rust = block_on(rust.get_many(&key_refs)).unwrap();
    for (i, value) in from_rust.into_iter().enumerate() {
        assert_eq!(value, Some(Value::from(i as i64 * 1000)));
    }
    let mut asked = keys.clone();
    asked.push("batch:missing".into());
    let got = guest.get_many(cache, &asked).unwrap().unwrap();
    assert_eq!(got.len(), 21);
    assert!(got[..20]
        .iter()
        .zip(&entries)
        .all(|(g, (_, v))| g.as_ref() == Some(v)));
    assert_eq!(got[20], None);

    // TTLs both ways.
    let ttl = block_on(rust.ttl("batch:0")).unwrap().expect("a TTL");
    assert!(
        ttl > Duration::from_secs(55) && ttl <= Duration::from_secs(60),
        "{ttl:?}"
    );
    block_on(rust.set("ttl:rust", &Value::from(1), Some(Duration::from_secs(120)))).unwrap();
    let ttl = guest
        .ttl(cache, "ttl:rust")
        .unwrap()
        .unwrap()
        .expect("a TTL");
    assert!(ttl > 115.0 && ttl <= 120.0, "{ttl}");

    // Deletes both ways.
    assert!(guest.delete(cache, "greeting/from-rust").unwrap().unwrap());
    assert_eq!(block_on(rust.get("greeting/from-rust")).unwrap(), None);
    assert!(block_on(rust.delete("greeting/from-wasm")).unwrap());
    assert_eq!(
        guest.get(cache, "greeting/from-wasm").unwrap().unwrap(),
        None
    );
    assert!(!guest.delete(cache, "greeting/from-wasm").unwrap().unwrap());

    let metrics = guest.metrics(cache).unwrap();
    assert!(
        metrics.hits >= samples().len() as u64 && metrics.misses >= 2,
        "{metrics:?}"
    );
    assert!(
        metrics.sets >= samples().len() as u64 + 20 && metrics.deletes == 2,
        "{metrics:?}"
    );
    assert_eq!(metrics.store_errors, 0);
    assert!(metrics.latency_us.iter().map(|b| b.count).sum::<u64>() > 0);
    guest.close(cache).unwrap();
}

#[test]
fn standalone_values_cross_between_the_component_and_rust() {
    check_cross_runtime(&standalone(), "standalone");
}

#[test]
fn sharded_values_cross_between_the_component_and_rust() {
    check_cross_runtime(&shards(), "shards");
}

#[test]
fn cluster_values_cross_between_the_component_and_rust() {
    check_cross_runtime(&cluster(), "cluster");
}

fn hosts(url: &str, scheme: &str) -> Vec<String> {
    url.trim_start_matches(scheme)
        .split(',')
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_key_lands_on_the_same_shard_as_from_rust() {
    let url = shards();
    let hosts = hosts(&url, "redis+shards://");
    let rust_ring = Ring::new(hosts.iter().map(Node::new).collect()).unwrap();
    let mut conns: Vec<redis::Connection> = hosts
        .iter()
        .map(|h| {
            redis::Client::open(format!("redis://{h}"))
                .unwrap()
                .get_connection()
                .unwrap()
        })
        .collect();

    let mut guest = guest();
    let cache = open(&mut guest, &url, &in_namespace("placement"));
    let ring_nodes: Vec<_> = hosts
        .iter()
        .map(|h| polycache_wasm_host::Node {
            name: h.clone(),
            weight: 1,
        })
        .collect();
    let ring = guest.ring(&ring_nodes).unwrap().unwrap();
    let mut per_node = vec![0usize; hosts.len()];
    for i in 0..120 {
        let key = format!("user:{i}");
        guest
            .set(cache, &key, &pack(&Value::from(i)), Some(60.0))
            .unwrap()
            .unwrap();
        let redis_key = guest.redis_key(cache, &key).unwrap().unwrap();
        let owner = rust_ring.index_for(&redis_key);
        assert_eq!(
            guest.node_for(ring, &redis_key).unwrap(),
            rust_ring.node_for(&redis_key)
        );
        per_node[owner] += 1;
        for (node, conn) in conns.iter_mut().enumerate() {
            let exists: bool = redis::cmd("EXISTS").arg(&redis_key).query(conn).unwrap();
            assert_eq!(exists, node == owner, "{redis_key} on {}", hosts[node]);
        }
    }
    println!("keys per shard from the component: {per_node:?}");
    assert!(
        per_node.iter().all(|&n| n > 10),
        "every shard gets keys: {per_node:?}"
    );
}

#[test]
fn a_key_lands_on_the_slot_redis_cluster_computes() {
    let url = cluster();
    let seed = hosts(&url, "redis+cluster://").remove(0);
    let mut conn = redis::Client::open(format!("redis://{seed}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let rust = rust_cache(&url, "slots");
    let mut guest = guest();
    let cache = open(&mut guest, &url, &in_namespace("slots"));
    for i in 0..50 {
        let key = format!("order:{i}");
        guest
            .set(cache, &key, &pack(&Value::from(i)), Some(60.0))
            .unwrap()
            .unwrap();
        let redis_key = guest.redis_key(cache, &key).unwrap().unwrap();
        let slot = guest.slot(&redis_key).unwrap();
        let server: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&redis_key)
            .query(&mut conn)
            .unwrap();
        assert_eq!(slot, server, "{redis_key}");
        assert_eq!(slot, polycache::key::slot(redis_key.as_bytes()));
        assert_eq!(block_on(rust.get(&key)).unwrap(), Some(Value::from(i)));
    }
}

#[test]
fn get_or_load_calls_the_host_loader_once_and_caches() {
    let url = standalone();
    let mut guest = host()
        .instantiate(Network::Loopback, |key: &str| match key {
            "fails" => Err("database is down".into()),
            "garbage" => Ok(Some(vec![0xc1])),
            _ => Ok(Some(pack(&Value::from(format!("row for {key}"))))),
        })
        .unwrap();
    let cache = open(&mut guest, &url, &in_namespace("load"));
    let expected = pack(&Value::from("row for user:7"));
    assert_eq!(
        guest
            .get_or_load(cache, "user:7", Some(30.0))
            .unwrap()
            .unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        guest
            .get_or_load(cache, "user:7", Some(30.0))
            .unwrap()
            .unwrap(),
        Some(expected)
    );
    assert_eq!(guest.loads(), 1, "the second call is a hit");

    // The loaded value is in Redis for every runtime.
    let rust = rust_cache(&url, "load");
    assert_eq!(
        block_on(rust.get("user:7")).unwrap(),
        Some(Value::from("row for user:7"))
    );
    let ttl = block_on(rust.ttl("user:7")).unwrap().expect("a TTL");
    assert!(ttl <= Duration::from_secs(30), "{ttl:?}");

    match guest.get_or_load(cache, "fails", None).unwrap() {
        Err(WitError::Loader(message)) => {
            assert!(message.contains("database is down"), "{message}")
        }
        other => panic!("expected a loader error, got {other:?}"),
    }
    match guest.get_or_load(cache, "garbage", None).unwrap() {
        Err(WitError::Loader(message)) => assert!(message.contains("MessagePack"), "{message}"),
        other => panic!("expected a loader error, got {other:?}"),
    }
    let metrics = guest.metrics(cache).unwrap();
    assert_eq!(
        (metrics.loads, metrics.load_errors, metrics.hits),
        (3, 2, 1),
        "{metrics:?}"
    );
    assert_eq!(
        block_on(rust.get("fails")).unwrap(),
        None,
        "a failed load stores nothing"
    );
}

/// Polls `call` until `done` holds for its answer; panics after 10 s.
fn poll<T: std::fmt::Debug>(
    what: &str,
    mut call: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = call();
        if done(&answer) {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting until {what}: {answer:?}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn get_entry_takes_per_call_options_and_reports_freshness() {
    use polycache_wasm_host::{no_load_options, Freshness, LoadOptions};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let url = standalone();
    let failing = Arc::new(AtomicBool::new(false));
    let fail = failing.clone();
    let mut guest = host()
        .instantiate(Network::Loopback, move |key: &str| {
            if fail.load(Ordering::SeqCst) {
                return Err("database is down".into());
            }
            Ok(Some(pack(&Value::from(format!("row for {key}")))))
        })
        .unwrap();
    let cache = open(&mut guest, &url, &in_namespace("entry"));
    let row = pack(&Value::from("row for k"));

    // A per-call freshFor: once it passes, the next call refreshes (inline: the component
    // has no thread), so the loader runs again though the cache has no freshFor.
    let fresh_for = LoadOptions {
        fresh_for: Some(0.05),
        ..no_load_options()
    };
    let first = guest.get_entry(cache, "f", &fresh_for).unwrap().unwrap();
    assert_eq!(
        (first.stale, first.freshness, first.age),
        (false, Freshness::Fresh, Some(0.0))
    );
    let loads = poll(
        "a refresh loads again",
        || {
            guest.get_entry(cache, "f", &fresh_for).unwrap().unwrap();
            guest.loads()
        },
        |loads| *loads >= 2,
    );
    assert!(loads >= 2);

    // Fail-safe per call: the key expires (the call's ttl), the loader fails, the last good
    // value answers, marked.
    let good = guest
        .get_entry(
            cache,
            "k",
            &LoadOptions {
                ttl: Some(0.05),
                max_stale: Some(60.0),
                ..no_load_options()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (good.value.clone(), good.freshness),
        (row.clone(), Freshness::Fresh)
    );
    failing.store(true, Ordering::SeqCst);
    let fail_safe = LoadOptions {
        max_stale: Some(60.0),
        fail_safe_backoff: Some(60.0),
        ..no_load_options()
    };
    let entry = poll(
        "the key expired and the loader failed",
        || guest.get_entry(cache, "k", &fail_safe).unwrap().unwrap(),
        |entry| entry.freshness == Freshness::FailSafe,
    );
    assert_eq!((entry.value, entry.stale), (row.clone(), true));
    assert!(entry.age.is_some_and(|age| age >= 0.05), "{:?}", entry.age);
    assert_eq!(
        guest
            .get_or_load_with(cache, "k", &fail_safe)
            .unwrap()
            .unwrap(),
        Some(row.clone()),
        "backing off"
    );

    // A "not found" another runtime stored (negative caching) reads as such, without the
    // component's loader.
    let rust = rust_cache(&url, "entry");
    let negative = rust.config().clone().negative_ttl(Duration::from_secs(600));
    let rust = block_on(Cache::builder(negative).io(Io::Blocking).build()).unwrap();
    let stored = block_on(rust.get_or_load(
        "gone",
        || async { Err(polycache::Error::not_found()) },
        None,
    ));
    assert!(stored.unwrap_err().is_not_found());
    failing.store(false, Ordering::SeqCst);
    let loads = guest.loads();
    let gone = guest
        .get_entry(cache, "gone", &no_load_options())
        .unwrap()
        .unwrap();
    assert_eq!((gone.found, gone.value), (false, pack(&Value::Nil)));
    let answer = guest
        .get_or_load_with(cache, "gone", &no_load_options())
        .unwrap();
    assert!(
        matches!(answer, Ok(None)),
        "get-or-load answers a cached not found as none, not an error: {answer:?}"
    );
    assert_eq!(
        guest.loads(),
        loads,
        "the component's loader was not called"
    );
    assert_eq!(guest.get(cache, "gone").unwrap().unwrap(), None);

    // Bad values are config errors, as in every binding.
    for bad in [
        LoadOptions {
            fresh_for: Some(-1.0),
            ..no_load_options()
        },
        LoadOptions {
            hard_timeout: Some(f64::NAN),
            ..no_load_options()
        },
        LoadOptions {
            early_refresh_beta: Some(-0.5),
            ..no_load_options()
        },
    ] {
        match guest.get_entry(cache, "k", &bad).unwrap() {
            Err(WitError::Config(_)) => {}
            other => panic!("{bad:?}: expected a config error, got {other:?}"),
        }
    }
}

/// The loader import's `none` is "not found": `get-or-load` answers `none` (not an error),
/// and with `negative-ttl` the answer is cached, so the next calls and a Rust reader read
/// the key as not found without the loader; the negative counters say so.
#[test]
fn a_loaders_not_found_is_none_and_cached_for_negative_ttl() {
    use polycache_wasm_host::{no_load_options, LoadOptions};
    let url = standalone();
    let mut guest = host()
        .instantiate(Network::Loopback, |_key: &str| Ok(None))
        .unwrap();
    let cache = open(&mut guest, &url, &in_namespace("not-found"));
    let negative = LoadOptions {
        negative_ttl: Some(60.0),
        ..no_load_options()
    };
    for call in 0..2 {
        let answer = guest.get_or_load_with(cache, "gone", &negative).unwrap();
        assert!(matches!(answer, Ok(None)), "call {call}: {answer:?}");
    }
    assert_eq!(
        guest.loads(),
        1,
        "the second call read the cached not found"
    );
    let entry = guest.get_entry(cache, "gone", &negative).unwrap().unwrap();
    assert_eq!((entry.found, entry.value), (false, pack(&Value::Nil)));
    let m = guest.metrics(cache).unwrap();
    assert_eq!(
        (m.loads, m.load_errors, m.negative_stored, m.negative_hits),
        (1, 0, 1, 2),
        "{m:?}"
    );
    let rust = rust_cache(&url, "not-found");
    let read = block_on(rust.get_entry(
        "gone",
        || async { Ok(Value::from("loaded")) },
        &polycache::LoadOptions::default(),
    ));
    assert!(
        read.is_err_and(|e| e.is_not_found()),
        "Rust reads the component's cached not found"
    );
}

#[test]
fn read_through_loads_misses_in_get_and_get_many() {
    let mut guest = host()
        .instantiate(Network::Loopback, |key: &str| {
            Ok(Some(pack(&Value::from(key.len() as i64))))
        })
        .unwrap();
    let options = Options {
        read_through: Some(true),
        ..in_namespace("read-through")
    };
    let cache = open(&mut guest, &standalone(), &options);
    assert_eq!(
        guest.get(cache, "abc").unwrap().unwrap(),
        Some(pack(&Value::from(3)))
    );
    let keys = vec!["abc".to_owned(), "abcdef".to_owned()];
    let got = guest.get_many(cache, &keys).unwrap().unwrap();
    assert_eq!(
        got,
        vec![Some(pack(&Value::from(3))), Some(pack(&Value::from(6)))]
    );
    assert_eq!(
        guest.loads(),
        2,
        "abc was loaded once, then read from Redis"
    );
}

#[test]
fn options_and_url_options_configure_the_cache_like_elsewhere() {
    let url = format!("{}?prefix=edge&ttl=90", standalone());
    let mut guest = guest();
    let options = Options {
        codec: Some(Codec::Json),
        ..in_namespace("options")
    };
    let cache = open(&mut guest, &url, &options);
    let key = guest.redis_key(cache, "a").unwrap().unwrap();
    assert_eq!(key, format!("edge:{}:{{a}}", namespace("options")));
    guest
        .set(cache, "a", &pack(&Value::from(1)), None)
        .unwrap()
        .unwrap();
    let ttl = guest
        .ttl(cache, "a")
        .unwrap()
        .unwrap()
        .expect("the URL's TTL");
    assert!(ttl > 85.0 && ttl <= 90.0, "{ttl}");

    // The JSON codec, read by a Rust cache with the default (msgpack) codec.
    let rust_config = Config::from_url(&standalone())
        .unwrap()
        .prefix("edge")
        .namespace(namespace("options"));
    let rust = block_on(Cache::builder(rust_config).io(Io::Blocking).build()).unwrap();
    let bytes = block_on(rust.store().get(&key)).unwrap().unwrap();
    assert_eq!(bytes[4], 2, "codec id 2 (JSON)");
    assert_eq!(block_on(rust.get("a")).unwrap(), Some(Value::from(1)));

    // ttl 0 means no expiry, as in every binding.
    let forever = Options {
        ttl: Some(0.0),
        ..in_namespace("options-forever")
    };
    let cache = open(&mut guest, &standalone(), &forever);
    guest
        .set(cache, "k", &pack(&Value::Nil), None)
        .unwrap()
        .unwrap();
    assert_eq!(guest.ttl(cache, "k").unwrap().unwrap(), None);
}

#[test]
fn errors_arrive_as_the_wit_variant_of_their_kind() {
    let mut guest = guest();
    let kind = |r: Result<CacheHandle, WitError>| r.map(|_| ()).unwrap_err().kind_name();
    assert_eq!(
        kind(guest.open("mongodb://x", &no_options()).unwrap()),
        "Config"
    );
    assert_eq!(
        kind(
            guest
                .open("redis://127.0.0.1:1?bogus=1", &no_options())
                .unwrap()
        ),
        "Config"
    );
    let bad_jitter = Options {
        jitter: Some(2.0),
        ..no_options()
    };
    assert_eq!(
        kind(guest.open("memory://", &bad_jitter).unwrap()),
        "Config"
    );
    let bad_prefix = Options {
        prefix: Some("a{b".into()),
        ..no_options()
    };
    assert_eq!(
        kind(guest.open("memory://", &bad_prefix).unwrap()),
        "Config"
    );

    let cache = open(&mut guest, &standalone(), &in_namespace("errors"));
    let err = guest.get(cache, "").unwrap().unwrap_err();
    assert_eq!(err.kind_name(), "Key", "{err:?}");
    let err = guest.set(cache, "k", &[0xc1], None).unwrap().unwrap_err();
    assert_eq!(err.kind_name(), "Codec", "{err:?}");
    let err = guest
        .set(cache, "k", &pack(&Value::Nil), Some(-1.0))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind_name(), "Config", "{err:?}");

    let raw = Options {
        raw: Some(true),
        ..in_namespace("errors-raw")
    };
    let cache = open(&mut guest, &standalone(), &raw);
    let err = guest
        .set(cache, "k", &pack(&Value::Array(vec![])), None)
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.kind_name(),
        "Codec",
        "raw mode stores bytes or strings: {err:?}"
    );
}

/// The component has no near tier (it needs a thread per tracking connection, which
/// wasm32-wasip2 lacks): asking for one is a Config error naming it, never a silent no-op.
#[test]
fn a_near_tier_is_refused_with_a_config_error() {
    let mut guest = guest();
    let url = format!("{}?nearCache=100", standalone());
    let err = guest
        .open(&url, &no_options())
        .unwrap()
        .map(|_| ())
        .unwrap_err();
    let WitError::Config(message) = &err else {
        panic!("expected a Config error, got {err:?}");
    };
    assert!(message.contains("near"), "{message}");
}

#[test]
fn foreign_bytes_are_a_miss_and_a_decode_error() {
    let url = standalone();
    let mut guest = guest();
    let cache = open(&mut guest, &url, &in_namespace("foreign"));
    let redis_key = guest.redis_key(cache, "plain").unwrap().unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&redis_key)
        .arg("written by redis-cli")
        .query(&mut conn)
        .unwrap();
    assert_eq!(guest.get(cache, "plain").unwrap().unwrap(), None);
    let metrics = guest.metrics(cache).unwrap();
    assert_eq!(
        (metrics.misses, metrics.decode_errors),
        (1, 1),
        "{metrics:?}"
    );

    // A raw cache reads the same key as bytes.
    let raw = Options {
        raw: Some(true),
        ..in_namespace("foreign")
    };
    let cache = open(&mut guest, &url, &raw);
    let value = guest
        .get(cache, "plain")
        .unwrap()
        .unwrap()
        .expect("raw bytes");
    assert_eq!(
        unpack(&value),
        Value::Bytes(b"written by redis-cli".to_vec())
    );
}

#[test]
fn the_memory_store_works_inside_the_component() {
    let mut guest = host()
        .instantiate(Network::None, |_key: &str| {
            Ok(Some(pack(&Value::from("loaded"))))
        })
        .unwrap();
    let options = Options {
        memory_capacity: Some(100),
        ..no_options()
    };
    let cache = open(&mut guest, "memory://", &options);
    guest
        .set(cache, "a", &pack(&Value::from(1)), Some(60.0))
        .unwrap()
        .unwrap();
    assert_eq!(
        guest.get(cache, "a").unwrap().unwrap(),
        Some(pack(&Value::from(1)))
    );
    assert_eq!(
        guest.get_or_load(cache, "b", None).unwrap().unwrap(),
        Some(pack(&Value::from("loaded")))
    );
    let ttl = guest.ttl(cache, "a").unwrap().unwrap().expect("a TTL");
    assert!(ttl > 55.0 && ttl <= 60.0, "{ttl}");
    assert!(guest.delete(cache, "a").unwrap().unwrap());
    assert_eq!(guest.get(cache, "a").unwrap().unwrap(), None);
}

/// The port of the standalone server.
pub(crate) fn standalone_port() -> u16 {
    standalone_endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("redis://host:port")
}

/// `host:port` of the standalone server.
pub(crate) fn standalone_endpoint() -> String {
    standalone()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned()
}
