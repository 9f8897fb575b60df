//! The Rust side of the interop matrix: the same commands as `agent.py` (see its docs),
//! one JSON line out. The fault suite's `fault` and `load` commands take SPEC.mode
//! `async` (tokio stores) or `blocking` (blocking stores driven by `polycache::block_on`),
//! and so does `failsafe`.

use std::future::Future;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polycache::{Cache, Config, Io, KeyTemplate, LoadOptions, Node, Ring, Value};
use polycache_harness::agent::{
    emit, epoch_secs, spec_keys, stampede_load, stdin_lines, wait_for_go, StampedeValues,
};
use polycache_harness::notation::{self, interop_cases, to_plain_json, typed};
use serde_json::{json, Value as Json};

async fn cache(url: &str, ns: &str, case: Option<&Json>, raw: bool) -> polycache::Result<Cache> {
    let mut config = Config::from_url(url)?.namespace(ns).raw(raw);
    if let Some(case) = case {
        config = config
            .codec(serde_json::from_value(case["codec"].clone()).expect("codec"))
            .compress_threshold(case["compressThreshold"].as_u64().unwrap_or(1024) as usize);
    }
    Cache::new(config).await
}

/// A cache that stores a loader's "not found" for 600 s.
async fn negative_cache(url: &str, ns: &str) -> polycache::Result<Cache> {
    let config = Config::from_url(url)?.namespace(ns);
    Cache::new(config.negative_ttl(Duration::from_secs(600))).await
}

const RAW_KEYS: [(&str, &[u8]); 2] = [
    ("plain:text", b"hello from redis-cli"),
    ("plain:json", b"{\"a\": 1}"),
];

async fn run(args: &[String]) -> polycache::Result<Json> {
    let (command, url, ns) = (args[0].as_str(), args[1].as_str(), args[2].as_str());
    let arg = args.get(3).map(String::as_str).unwrap_or_default();
    Ok(match command {
        "write" => {
            let cases = interop_cases();
            for case in &cases {
                let ttl = Duration::from_secs_f64(case["ttl"].as_f64().unwrap_or(300.0));
                let key = case["key"].as_str().unwrap_or_default();
                cache(url, ns, Some(case), false)
                    .await?
                    .set(key, &typed(&case["value"]), Some(ttl))
                    .await?;
            }
            json!({ "written": cases.len() })
        }
        "read" => {
            let cases = interop_cases();
            let mut failed = Vec::new();
            for case in &cases {
                let key = case["key"].as_str().unwrap_or_default();
                let got = cache(url, ns, Some(case), false).await?.get(key).await?;
                if !got
                    .as_ref()
                    .is_some_and(|got| notation::same(got, &typed(&case["value"])))
                {
                    failed.push(json!({ "name": case["name"], "got": format!("{got:?}") }));
                }
            }
            json!({ "passed": cases.len() - failed.len(), "failed": failed })
        }
        "delete" => json!({ "deleted": cache(url, ns, None, false).await?.delete(arg).await? }),
        "get" => json!({ "found": cache(url, ns, None, false).await?.get(arg).await?.is_some() }),
        "ttl" => {
            let left = cache(url, ns, None, false).await?.ttl(arg).await?;
            json!({ "ttl": left.map(|d| d.as_secs_f64()) })
        }
        "place" => {
            let c = cache(url, ns, None, false).await?;
            let count: usize = arg.parse().unwrap_or(0);
            let keys: Vec<String> = (0..count).map(|i| format!("user:{i}")).collect();
            let entries: Vec<(&str, Value)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_str(), Value::from(i as u64)))
                .collect();
            c.set_many(&entries, Some(Duration::from_secs(600))).await?;
            let hosts = url.split_once("://").map_or("", |(_, rest)| rest);
            let hosts = hosts.split('/').next().unwrap_or_default();
            let ring = Ring::new(hosts.split(',').map(Node::new).collect())?;
            let nodes: Vec<String> = keys
                .iter()
                .map(|k| Ok(ring.node_for(&c.redis_key(k)?).to_owned()))
                .collect::<polycache::Result<_>>()?;
            json!({ "nodes": nodes })
        }
        "cached" => {
            // The Rust form of a memoized function: the same template, get_or_load.
            let c = cache(url, ns, None, false).await?;
            let n: i64 = arg.parse().unwrap_or(0);
            let key =
                KeyTemplate::parse("report:{0}")?.render(&[Value::from(n)], &Default::default())?;
            let mut loaded = false;
            let value = c
                .get_or_load(
                    &key,
                    || {
                        loaded = true;
                        async move {
                            Ok(Value::from_iter([
                                ("report", Value::from(n)),
                                ("by", Value::from("rust")),
                            ]))
                        }
                    },
                    Some(Duration::from_secs(600)),
                )
                .await?;
            json!({ "value": to_plain_json(&value), "loaded": loaded })
        }
        "raw" => {
            let raw = cache(url, ns, None, true).await?;
            let plain = cache(url, ns, None, false).await?;
            let mut raw_ok = Vec::new();
            let mut missed = Vec::new();
            for (key, bytes) in RAW_KEYS {
                raw_ok.push(raw.get(key).await? == Some(Value::Bytes(bytes.to_vec())));
                missed.push(plain.get(key).await?.is_none());
            }
            json!({ "raw": raw_ok, "enveloped": missed, "decodeErrors": plain.metrics().decode_errors })
        }
        "timed-set" => {
            let c = cache(url, ns, None, false).await?;
            c.set(
                arg,
                &Value::from("written by rust"),
                Some(Duration::from_secs(600)),
            )
            .await?;
            json!({ "returned": epoch_secs() })
        }
        "timed-delete" => {
            cache(url, ns, None, false).await?.delete(arg).await?;
            json!({ "returned": epoch_secs() })
        }
        "negative-write" => {
            let c = negative_cache(url, ns).await?;
            let got = c
                .get_or_load(arg, || async { Err(polycache::Error::not_found()) }, None)
                .await;
            json!({ "notFound": got.is_err_and(|e| e.is_not_found()) })
        }
        "negative-read" => {
            let c = negative_cache(url, ns).await?;
            let loaded = Arc::new(AtomicBool::new(false));
            let load = {
                let loaded = loaded.clone();
                move || async move {
                    loaded.store(true, Ordering::SeqCst);
                    Ok(Value::from("loaded"))
                }
            };
            let entry = c
                .get_entry(arg, load, &polycache::LoadOptions::default())
                .await;
            let found = match entry {
                Ok(_) => true,
                Err(err) if err.is_not_found() => false,
                Err(err) => return Err(err),
            };
            let get = c.get(arg).await?.is_some();
            let loaded = loaded.load(Ordering::SeqCst);
            json!({ "found": found, "loaded": loaded, "get": get })
        }
        other => json!({ "error": format!("unknown command {other}") }),
    })
}

/// `near-reader URL NS`: the reader of the invalidation matrix (see agent.py); a near
/// tier that lives between the driver's requests, one JSON line per request line.
fn near_reader(url: &str, ns: &str) -> polycache::Result<Json> {
    let driver = Driver::new("async");
    let config = Config::from_url(url)?.namespace(ns).near_cache(1000);
    let cache = driver.run(Cache::new(config))?;
    println!("{}", json!({ "ready": true }));
    let mut key = String::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(request) = serde_json::from_str::<Json>(&line.unwrap_or_default()) else {
            continue;
        };
        match request["op"].as_str() {
            Some("cache") => {
                key = request["key"].as_str().unwrap_or_default().to_owned();
                println!("{}", near_cache(&driver, &cache, &key)?);
            }
            Some("watch") => {
                println!("{}", json!({ "watching": true }));
                println!("{}", near_watch(&driver, &cache, &key)?);
            }
            _ => {}
        }
    }
    Ok(json!({ "closed": true }))
}

/// Reads `key` until a read is a near hit (a read overtaken by an invalidation is not
/// stored), with a deadline.
fn near_cache(driver: &Driver, cache: &Cache, key: &str) -> polycache::Result<Json> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = cache.metrics().near_hits;
        let value = driver.run(cache.get(key))?;
        let cached = cache.metrics().near_hits > hits;
        if cached || Instant::now() > deadline {
            let found = value.is_some();
            let value = value.map_or(Json::Null, |v| to_plain_json(&v));
            return Ok(json!({ "cached": cached, "found": found, "value": value }));
        }
    }
}

/// Polls the near tier until its entry is gone (the tracking thread applies pushes
/// meanwhile), then reads the key from Redis.
fn near_watch(driver: &Driver, cache: &Cache, key: &str) -> polycache::Result<Json> {
    let entries = cache.metrics().near_entries;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut evicted_at = None;
    while Instant::now() < deadline {
        if cache.metrics().near_entries < entries {
            evicted_at = Some(epoch_secs());
            break;
        }
    }
    let value = driver.run(cache.get(key))?;
    Ok(json!({
        "evictedAt": evicted_at,
        "found": value.is_some(),
        "value": value.map_or(Json::Null, |v| to_plain_json(&v)),
        "flushes": cache.metrics().near_flushes,
    }))
}

/// How the fault commands drive a cache's futures: on a tokio runtime (async stores) or on
/// this thread (blocking stores, which complete inside the first poll).
enum Driver {
    Async(tokio::runtime::Runtime),
    Blocking,
}

impl Driver {
    fn new(mode: &str) -> Driver {
        if mode == "blocking" {
            return Driver::Blocking;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Driver::Async(runtime)
    }

    fn run<F: Future>(&self, future: F) -> F::Output {
        match self {
            Driver::Async(runtime) => runtime.block_on(future),
            Driver::Blocking => polycache::block_on(future),
        }
    }

    fn open(&self, url: &str, ns: &str, timeout: Duration) -> polycache::Result<Cache> {
        let config = Config::from_url(url)?
            .namespace(ns)
            .connect_timeout(timeout)
            .command_timeout(timeout);
        let io = match self {
            Driver::Async(_) => Io::Async,
            Driver::Blocking => Io::Blocking,
        };
        self.run(Cache::builder(config).io(io).build())
    }
}

fn error_text(err: &polycache::Error) -> String {
    format!("{:?}: {err}", err.kind())
        .chars()
        .take(300)
        .collect()
}

/// `fault URL NS SPEC`: see agent.py.
fn fault(url: &str, ns: &str, spec: &Json) -> polycache::Result<Json> {
    let driver = Driver::new(spec["mode"].as_str().unwrap_or("async"));
    let timeout = Duration::from_secs_f64(spec["timeout"].as_f64().unwrap_or(1.0));
    let keys = spec_keys(spec);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let open_url = spec["openUrl"].as_str().unwrap_or(url);
    let ttl = Some(Duration::from_secs(60));
    let cache = driver.open(url, ns, timeout)?;
    let before: Vec<(&str, Value)> = keys.iter().map(|k| (*k, Value::from("before"))).collect();
    driver.run(cache.set_many(&before, Some(Duration::from_secs(600))))?;
    let after: Vec<(&str, Value)> = keys.iter().map(|k| (*k, Value::from("after"))).collect();
    wait_for_go();
    let mut cells = serde_json::Map::new();
    let mut record = |api: &str, started: Instant, result: polycache::Result<()>| {
        let elapsed = started.elapsed().as_secs_f64();
        let err = result.err().map(|e| error_text(&e));
        let list = cells.entry(api).or_insert_with(|| json!([]));
        list.as_array_mut()
            .expect("list")
            .push(json!([elapsed, err]));
    };
    for _ in 0..spec["rounds"].as_u64().unwrap_or(1) {
        let key = keys[0];
        let t = Instant::now();
        record("get", t, driver.run(cache.get(key)).map(drop));
        let t = Instant::now();
        record("set", t, driver.run(cache.set(key, &"after".into(), ttl)));
        let t = Instant::now();
        record("delete", t, driver.run(cache.delete(key)).map(drop));
        let t = Instant::now();
        record("ttl", t, driver.run(cache.ttl(key)).map(drop));
        let t = Instant::now();
        record("get_many", t, driver.run(cache.get_many(&keys)).map(drop));
        let t = Instant::now();
        record("set_many", t, driver.run(cache.set_many(&after, ttl)));
        let t = Instant::now();
        let loaded = cache.get_or_load(key, || async { Ok(Value::from("loaded")) }, ttl);
        record("get_or_load", t, driver.run(loaded).map(drop));
        let t = Instant::now();
        record("open", t, driver.open(open_url, ns, timeout).map(drop));
    }
    Ok(json!({ "cells": cells }))
}

/// `fresh-write URL NS SPEC`: see agent.py.
fn fresh_write(url: &str, ns: &str, spec: &Json) -> polycache::Result<Json> {
    let driver = Driver::new("async");
    let fresh_for = Duration::from_secs_f64(spec["freshFor"].as_f64().unwrap_or(1.0));
    let config = Config::from_url(url)?
        .namespace(ns)
        .fresh_for(Some(fresh_for));
    let cache = driver.run(Cache::new(config))?;
    let value = Value::from(spec["value"].as_str().unwrap_or_default());
    let keys = spec_keys(spec);
    wait_for_go();
    for key in &keys {
        let value = value.clone();
        let ttl = Some(Duration::from_secs(600));
        driver.run(cache.get_or_load(key, || async { Ok(value) }, ttl))?;
    }
    Ok(json!({ "written": keys.len() }))
}

fn epoch_ms() -> f64 {
    epoch_secs() * 1000.0
}

/// `fresh-read URL NS SPEC`: see agent.py; reads with `get_entry`.
fn fresh_read(url: &str, spec: &Json) -> polycache::Result<Json> {
    let driver = Driver::new("async");
    let mut readers = Vec::new();
    for cell in spec["cells"].as_array().into_iter().flatten() {
        let ns = cell["ns"].as_str().unwrap_or_default();
        let cache = driver.run(Cache::new(Config::from_url(url)?.namespace(ns)))?;
        readers.push((cache, cell["key"].as_str().unwrap_or_default().to_owned()));
    }
    wait_for_go();
    let mut cells = vec![serde_json::Map::new(); readers.len()];
    let deadline =
        Instant::now() + Duration::from_secs_f64(spec["seconds"].as_f64().unwrap_or(10.0));
    let done =
        |c: &serde_json::Map<String, Json>| c.contains_key("firstStale") || c.contains_key("error");
    while Instant::now() < deadline && !cells.iter().all(done) {
        for ((cache, key), cell) in readers.iter().zip(&mut cells) {
            if done(cell) {
                continue;
            }
            let before = epoch_ms();
            let never = || async {
                Err(polycache::Error::new(
                    polycache::ErrorKind::Loader,
                    "the reader does not load",
                ))
            };
            let read = driver.run(cache.get_entry(key, never, &LoadOptions::default()));
            let after = epoch_ms();
            match read {
                Ok(entry) => {
                    let stale = entry.stale();
                    let state = if stale { "stale" } else { "fresh" };
                    cell.entry("first").or_insert_with(|| json!(state));
                    cell.insert("value".into(), to_plain_json(&entry.value));
                    if stale {
                        cell.insert("firstStale".into(), json!(after));
                    } else {
                        cell.insert("lastFresh".into(), json!(before));
                    }
                }
                Err(err) => {
                    cell.insert("error".into(), json!(error_text(&err)));
                }
            }
        }
    }
    Ok(json!({ "via": "get_entry", "cells": cells }))
}

/// `failsafe URL NS SPEC`: see agent.py. A hanging loader does not block its thread: it
/// waits on a timer (tokio's, or a thread's in blocking mode), as an async database
/// client would.
fn failsafe(url: &str, ns: &str, spec: &Json) -> polycache::Result<Json> {
    let driver = Driver::new(spec["mode"].as_str().unwrap_or("async"));
    let secs = |field: &str| Duration::from_secs_f64(spec[field].as_f64().unwrap_or(1.0));
    let config = Config::from_url(url)?
        .namespace(ns)
        .connect_timeout(secs("timeout"))
        .command_timeout(secs("timeout"))
        .hard_timeout(Some(secs("hardTimeout")))
        .max_stale(if spec["failSafe"].as_bool().unwrap_or(false) {
            Duration::from_secs(600)
        } else {
            Duration::ZERO
        });
    let io = match driver {
        Driver::Async(_) => Io::Async,
        Driver::Blocking => Io::Blocking,
    };
    let cache = driver.run(Cache::builder(config).io(io).build())?;
    let key = spec["key"].as_str().unwrap_or("k");
    let ttl = Some(Duration::from_secs(600));
    let first = driver.run(cache.get_or_load(key, || async { Ok(Value::from("good")) }, ttl))?;
    wait_for_go();
    let hangs = spec["fault"].as_str() == Some("loader-hangs");
    let hang = secs("hangSeconds");
    let blocking = matches!(driver, Driver::Blocking);
    let loads = std::sync::atomic::AtomicUsize::new(0);
    let mut calls = Vec::new();
    for _ in 0..spec["rounds"].as_u64().unwrap_or(1) {
        let loader = || async {
            loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !hangs {
                return Err(polycache::Error::new(
                    polycache::ErrorKind::Loader,
                    "database down",
                ));
            }
            if blocking {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    std::thread::sleep(hang);
                    let _ = tx.send(());
                });
                let _ = rx.await;
            } else {
                tokio::time::sleep(hang).await;
            }
            Ok(Value::from("late"))
        };
        let started = Instant::now();
        let got = driver.run(cache.get_or_load(key, loader, ttl));
        let elapsed = started.elapsed().as_secs_f64();
        calls.push(match got {
            Ok(value) => json!([elapsed, to_plain_json(&value), null, null]),
            Err(err) => {
                let kind = format!("{:?}", err.kind()).to_lowercase();
                json!([elapsed, null, kind, error_text(&err)])
            }
        });
    }
    let loads = loads.load(std::sync::atomic::Ordering::Relaxed);
    Ok(json!({ "first": to_plain_json(&first), "calls": calls, "loaderCalls": loads }))
}

/// `load URL NS SPEC`: see agent.py.
fn load(url: &str, ns: &str, spec: &Json) -> polycache::Result<Json> {
    let driver = Driver::new(spec["mode"].as_str().unwrap_or("async"));
    let timeout = Duration::from_secs_f64(spec["timeout"].as_f64().unwrap_or(1.0));
    let count = spec["count"].as_u64().unwrap_or(10_000) as usize;
    let ttl = Some(Duration::from_secs(600));
    let cache = driver.open(url, ns, timeout)?;
    let keys: Vec<String> = (0..count).map(|i| format!("k{i}")).collect();
    for start in (0..count).step_by(500) {
        let batch: Vec<(&str, Value)> = (start..count.min(start + 500))
            .map(|i| (keys[i].as_str(), Value::from(i as u64)))
            .collect();
        driver.run(cache.set_many(&batch, ttl))?;
    }
    wait_for_go();
    let end = Instant::now() + Duration::from_secs_f64(spec["seconds"].as_f64().unwrap_or(10.0));
    let (mut ops, mut errors, mut wrong, mut misses) = (0u64, 0u64, 0u64, 0u64);
    let (mut first_error, mut last_error, mut sample) = (None, None, Vec::new());
    let mut i = 0usize;
    while Instant::now() < end {
        let n = i % count;
        let result = driver.run(async {
            let mut write = i.is_multiple_of(10);
            if !write {
                match cache.get(&keys[n]).await? {
                    None => {
                        misses += 1;
                        write = true;
                    }
                    Some(got) if got != Value::from(n as u64) => wrong += 1,
                    Some(_) => {}
                }
            }
            if write {
                cache.set(&keys[n], &Value::from(n as u64), ttl).await?;
            }
            polycache::Result::Ok(())
        });
        if let Err(err) = result {
            let at = epoch_secs();
            errors += 1;
            first_error.get_or_insert(at);
            last_error = Some(at);
            if sample.len() < 3 {
                sample.push(error_text(&err));
            }
        }
        ops += 1;
        i += 1;
    }
    Ok(json!({
        "ops": ops, "errors": errors, "wrong": wrong, "misses": misses,
        "firstError": first_error, "lastError": last_error, "sample": sample,
    }))
}

/// `stampede URL NS SPEC`: see agent.py. SPEC.mode `async` (tokio tasks) or `blocking`
/// (threads with `polycache::block_on`).
fn stampede(url: &str, ns: &str, spec: &Json) -> polycache::Result<Json> {
    let mode = spec["mode"].as_str().unwrap_or("async");
    let driver = Arc::new(Driver::new(mode));
    let secs = |field: &str| Duration::from_secs_f64(spec[field].as_f64().unwrap_or(10.0));
    let config = Config::from_url(url)?
        .namespace(ns)
        .stampede_lock(spec["lock"].as_bool().unwrap_or(true))
        .lock_lease(secs("lease"))
        .lock_timeout(secs("timeout"));
    let io = if mode == "blocking" {
        Io::Blocking
    } else {
        Io::Async
    };
    let cache = driver.run(Cache::builder(config).io(io).build())?;
    let lines = stdin_lines();
    emit(&json!({ "ready": true }));
    let _ = lines.lock().map(|rx| rx.recv());
    let keys = spec_keys(spec);
    let spec = Arc::new(spec.clone());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (cache, done) = (cache.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if cache.metrics().misses >= 1 {
                    emit(&json!({ "missed": true }));
                    return;
                }
                std::thread::yield_now();
            }
        })
    };
    let callers = spec["callers"].as_u64().unwrap_or(1) as usize;
    let threads: Vec<_> = (0..callers)
        .map(|i| {
            let key = keys[i % keys.len()].clone();
            let (cache, driver, spec, lines) =
                (cache.clone(), driver.clone(), spec.clone(), lines.clone());
            std::thread::spawn(move || {
                let loader = || async {
                    stampede_load(&spec, &key, &lines)
                        .map(Value::from)
                        .map_err(|e| {
                            polycache::Error::new(polycache::ErrorKind::Loader, e.to_string())
                        })
                };
                let got =
                    driver.run(cache.get_or_load(&key, loader, Some(Duration::from_secs(600))));
                (key, got)
            })
        })
        .collect();
    let mut values = StampedeValues::default();
    for thread in threads {
        let (key, got) = thread.join().expect("caller");
        values.add(
            key,
            got.map(|value| to_plain_json(&value))
                .map_err(|err| error_text(&err)),
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();
    let metrics = serde_json::to_value(cache.metrics()).unwrap_or_default();
    Ok(values.report(metrics))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: interop-agent COMMAND URL NAMESPACE [ARG]");
        std::process::exit(2);
    }
    let result = match args[0].as_str() {
        "stampede" => {
            let spec: Json = serde_json::from_str(args.get(3).map_or("{}", String::as_str))
                .unwrap_or_else(|e| panic!("SPEC is not JSON: {e}"));
            stampede(&args[1], &args[2], &spec)
        }
        "fresh-write" | "fresh-read" => {
            let spec: Json = serde_json::from_str(args.get(3).map_or("{}", String::as_str))
                .unwrap_or_else(|e| panic!("SPEC is not JSON: {e}"));
            if args[0] == "fresh-write" {
                fresh_write(&args[1], &args[2], &spec)
            } else {
                fresh_read(&args[1], &spec)
            }
        }
        "failsafe" => {
            let spec: Json = serde_json::from_str(args.get(3).map_or("{}", String::as_str))
                .unwrap_or_else(|e| panic!("SPEC is not JSON: {e}"));
            failsafe(&args[1], &args[2], &spec)
        }
        "fault" | "load" => {
            let spec: Json = serde_json::from_str(args.get(3).map_or("{}", String::as_str))
                .unwrap_or_else(|e| panic!("SPEC is not JSON: {e}"));
            let run = if args[0] == "fault" { fault } else { load };
            run(&args[1], &args[2], &spec)
        }
        "near-reader" => near_reader(&args[1], &args[2]),
        _ => Driver::new("async").run(run(&args)),
    };
    match result {
        Ok(out) => println!("{out}"),
        Err(err) => {
            println!("{}", json!({ "error": err.to_string() }));
            std::process::exit(1);
        }
    }
}
