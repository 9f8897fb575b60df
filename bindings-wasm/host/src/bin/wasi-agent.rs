//! The WASI side of the interop matrix (tests/interop/matrix.py): the commands of
//! `tests/interop/agent.py`, each carried out by `polycache.wasm` in wasmtime (TCP to
//! loopback only). One JSON line out.
//!
//! ```text
//! wasi-agent write|read URL NS | delete|get|ttl URL NS KEY | place URL NS COUNT
//!            | cached URL NS ARG | raw URL NS | fault|load URL NS SPEC
//!            | timed-set|timed-delete URL NS KEY | fresh-write|fresh-read URL NS SPEC
//!            | stampede URL NS SPEC
//! ```
//!
//! `fault` and `load` are the fault suite's (tests/faults/faults.py): they talk with the
//! driver over stdin/stdout as `tests/interop/agent.py` describes, and so do `fresh-write`
//! and `fresh-read` (the freshness matrix): the writer sets `freshFor` in the URL's query
//! (the WIT `options` record has no `fresh-for`), the reader uses `get-entry`.
//!
//! `stampede` is the stampede lock's command (see agent.py), as far as a component can
//! take part: the lock options go in the URL's query (the WIT `options` record has none);
//! one instance runs one call at a time, so SPEC.callers are spread over up to 8
//! instances on threads; `{"missed": true}` is printed as the first calls start (a call
//! cannot be watched from outside while it runs); the report sums hits, misses and loads
//! over the instances.
//!
//! `failsafe` is the fault suite's fail-safe table (see agent.py), with `maxStale` and
//! `hardTimeout` in the URL. The loader import answers "good" until the driver's go, and
//! fails after it; a hanging loader is not offered: the component has no timer to end it.
//!
//! The component is `$POLYCACHE_WASM`, else `$CARGO_TARGET_DIR/wasm32-wasip2/wasm/polycache.wasm`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polycache::codec::msgpack;
use polycache::Value;
use polycache_harness::agent::{
    epoch_secs, spec_keys, stampede_load, stdin_lines, wait_for_go, StampedeValues,
};
use polycache_harness::notation::{self, interop_cases, to_plain_json, typed};
use polycache_wasm_host::{
    default_component_path, no_load_options, CacheHandle, Codec, Guest, Host, Network, Node,
    Options,
};
use serde_json::{json, Value as Json};

/// Keys the orchestrator writes bare with redis-cli.
const RAW_KEYS: [(&str, &[u8]); 2] = [
    ("plain:text", b"hello from redis-cli"),
    ("plain:json", b"{\"a\": 1}"),
];

/// Options for a namespace, with a case's codec settings when given.
fn options(ns: &str, case: Option<&Json>, raw: bool) -> Options {
    let codec = case
        .and_then(|c| c["codec"].as_str())
        .map(|name| match name {
            "json" => Codec::Json,
            "bytes" => Codec::Bytes,
            _ => Codec::Msgpack,
        });
    Options {
        prefix: None,
        namespace: Some(ns.to_owned()),
        ttl: None,
        jitter: None,
        codec,
        compression: None,
        compress_threshold: case
            .and_then(|c| c["compressThreshold"].as_u64())
            .map(|n| n as u32),
        raw: Some(raw),
        connect_timeout: None,
        command_timeout: None,
        max_key_length: None,
        memory_capacity: None,
        read_through: None,
    }
}

struct Agent {
    guest: Guest,
    url: String,
    ns: String,
}

impl Agent {
    fn open(&mut self, case: Option<&Json>, raw: bool) -> Result<CacheHandle, String> {
        let options = options(&self.ns, case, raw);
        call(self.guest.open(&self.url, &options))
    }

    /// A cache with connect and command timeouts of `timeout` seconds.
    fn open_bounded(&mut self, url: &str, timeout: f64) -> Result<CacheHandle, String> {
        let mut options = options(&self.ns, None, false);
        options.connect_timeout = Some(timeout);
        options.command_timeout = Some(timeout);
        call(self.guest.open(url, &options))
    }

    /// `fault URL NS SPEC`: see tests/interop/agent.py.
    fn fault(&mut self, spec: &Json) -> Result<Json, String> {
        let timeout = spec["timeout"].as_f64().unwrap_or(1.0);
        let keys = spec_keys(spec);
        let url = self.url.clone();
        let open_url = spec["openUrl"].as_str().unwrap_or(&url).to_owned();
        let cache = self.open_bounded(&url, timeout)?;
        let entries = |text: &str| -> Vec<(String, Vec<u8>)> {
            let bytes = msgpack::encode(&Value::from(text));
            keys.iter().map(|k| (k.clone(), bytes.clone())).collect()
        };
        call(self.guest.set_many(cache, &entries("before"), Some(600.0)))?;
        let after = entries("after");
        wait_for_go();
        let mut cells = serde_json::Map::new();
        let mut record = |api: &str, started: Instant, err: Option<String>| {
            let elapsed = started.elapsed().as_secs_f64();
            let list = cells.entry(api).or_insert_with(|| json!([]));
            list.as_array_mut()
                .expect("list")
                .push(json!([elapsed, err]));
        };
        let key = keys[0].as_str();
        let value = msgpack::encode(&Value::from("after"));
        for _ in 0..spec["rounds"].as_u64().unwrap_or(1) {
            let t = Instant::now();
            record("get", t, call(self.guest.get(cache, key)).err());
            let t = Instant::now();
            record(
                "set",
                t,
                call(self.guest.set(cache, key, &value, Some(60.0))).err(),
            );
            let t = Instant::now();
            record("delete", t, call(self.guest.delete(cache, key)).err());
            let t = Instant::now();
            record("ttl", t, call(self.guest.ttl(cache, key)).err());
            let t = Instant::now();
            record("get_many", t, call(self.guest.get_many(cache, &keys)).err());
            let t = Instant::now();
            record(
                "set_many",
                t,
                call(self.guest.set_many(cache, &after, Some(60.0))).err(),
            );
            let t = Instant::now();
            record(
                "get_or_load",
                t,
                call(self.guest.get_or_load(cache, key, Some(60.0))).err(),
            );
            let t = Instant::now();
            record("open", t, self.open_bounded(&open_url, timeout).err());
        }
        Ok(json!({ "cells": cells }))
    }

    /// `load URL NS SPEC`: see tests/interop/agent.py.
    fn load(&mut self, spec: &Json) -> Result<Json, String> {
        let timeout = spec["timeout"].as_f64().unwrap_or(1.0);
        let count = spec["count"].as_u64().unwrap_or(10_000) as usize;
        let url = self.url.clone();
        let cache = self.open_bounded(&url, timeout)?;
        let keys: Vec<String> = (0..count).map(|i| format!("k{i}")).collect();
        let values: Vec<Vec<u8>> = (0..count)
            .map(|i| msgpack::encode(&Value::from(i as u64)))
            .collect();
        for start in (0..count).step_by(500) {
            let batch: Vec<(String, Vec<u8>)> = (start..count.min(start + 500))
                .map(|i| (keys[i].clone(), values[i].clone()))
                .collect();
            call(self.guest.set_many(cache, &batch, Some(600.0)))?;
        }
        wait_for_go();
        let seconds = spec["seconds"].as_f64().unwrap_or(10.0);
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        let (mut ops, mut errors, mut wrong, mut misses) = (0u64, 0u64, 0u64, 0u64);
        let (mut first_error, mut last_error, mut sample) = (None, None, Vec::new());
        let mut i = 0usize;
        while Instant::now() < end {
            let n = i % count;
            let mut write = i % 10 == 0;
            let mut result = Ok(());
            if !write {
                match call(self.guest.get(cache, &keys[n])) {
                    Ok(None) => {
                        misses += 1;
                        write = true;
                    }
                    Ok(Some(got)) if got != values[n] => wrong += 1,
                    Ok(Some(_)) => {}
                    Err(err) => result = Err(err),
                }
            }
            if write && result.is_ok() {
                result = call(self.guest.set(cache, &keys[n], &values[n], Some(600.0)));
            }
            if let Err(err) = result {
                let at = epoch_secs();
                errors += 1;
                first_error.get_or_insert(at);
                last_error = Some(at);
                if sample.len() < 3 {
                    sample.push(err);
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

    /// `fresh-write URL NS SPEC`: see tests/interop/agent.py. The loader import answers
    /// SPEC.value (see `main`).
    fn fresh_write(&mut self, spec: &Json) -> Result<Json, String> {
        let fresh_for = spec["freshFor"].as_f64().unwrap_or(1.0);
        let join = if self.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{join}freshFor={fresh_for}", self.url);
        let cache = call(self.guest.open(&url, &options(&self.ns, None, false)))?;
        let keys = spec_keys(spec);
        wait_for_go();
        for key in &keys {
            call(self.guest.get_or_load(cache, key, Some(600.0)))?;
        }
        Ok(json!({ "written": keys.len() }))
    }

    /// `fresh-read URL NS SPEC`: see tests/interop/agent.py; reads with `get-entry` (the
    /// loader import fails for this command, so a stale read's inline refresh keeps it).
    fn fresh_read(&mut self, spec: &Json) -> Result<Json, String> {
        let mut readers = Vec::new();
        for cell in spec["cells"].as_array().into_iter().flatten() {
            let ns = cell["ns"].as_str().unwrap_or_default();
            let cache = call(self.guest.open(&self.url, &options(ns, None, false)))?;
            readers.push((cache, cell["key"].as_str().unwrap_or_default().to_owned()));
        }
        wait_for_go();
        let mut cells = vec![serde_json::Map::new(); readers.len()];
        let seconds = spec["seconds"].as_f64().unwrap_or(10.0);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let done = |c: &serde_json::Map<String, Json>| {
            c.contains_key("firstStale") || c.contains_key("error")
        };
        while Instant::now() < deadline && !cells.iter().all(done) {
            for ((cache, key), cell) in readers.iter().zip(&mut cells) {
                if done(cell) {
                    continue;
                }
                let before = epoch_secs() * 1000.0;
                let read = call(self.guest.get_entry(*cache, key, &no_load_options()));
                let after = epoch_secs() * 1000.0;
                match read.and_then(|e| {
                    Ok((
                        e.stale,
                        msgpack::decode(&e.value).map_err(|e| e.to_string())?,
                    ))
                }) {
                    Ok((stale, value)) => {
                        let state = if stale { "stale" } else { "fresh" };
                        cell.entry("first").or_insert_with(|| json!(state));
                        cell.insert("value".into(), to_plain_json(&value));
                        if stale {
                            cell.insert("firstStale".into(), json!(after));
                        } else {
                            cell.insert("lastFresh".into(), json!(before));
                        }
                    }
                    Err(err) => {
                        cell.insert("error".into(), json!(err));
                    }
                }
            }
        }
        Ok(json!({ "via": "get-entry", "cells": cells }))
    }

    /// `failsafe URL NS SPEC`: see the module docs. `failing` turns the loader's failure on.
    fn failsafe(&mut self, spec: &Json, failing: &AtomicBool) -> Result<Json, String> {
        let timeout = spec["timeout"].as_f64().unwrap_or(1.0);
        let max_stale = if spec["failSafe"].as_bool().unwrap_or(false) {
            600
        } else {
            0
        };
        let join = if self.url.contains('?') { '&' } else { '?' };
        let hard = spec["hardTimeout"].as_f64().unwrap_or(timeout);
        let url = format!("{}{join}maxStale={max_stale}&hardTimeout={hard}", self.url);
        let cache = self.open_bounded(&url, timeout)?;
        let key = spec["key"].as_str().unwrap_or("fs");
        let first = found(self.guest.get_or_load(cache, key, Some(600.0)))?;
        let first = msgpack::decode(&first).map_err(|e| e.to_string())?;
        failing.store(true, Ordering::SeqCst);
        wait_for_go();
        let loads = self.guest.loads();
        let mut calls = Vec::new();
        for _ in 0..spec["rounds"].as_u64().unwrap_or(1) {
            let started = Instant::now();
            let got = self.guest.get_or_load(cache, key, Some(600.0));
            let elapsed = started.elapsed().as_secs_f64();
            calls.push(match got {
                Ok(Ok(Some(value))) => {
                    let value = msgpack::decode(&value).map_err(|e| e.to_string())?;
                    json!([elapsed, to_plain_json(&value), null, null])
                }
                Ok(Ok(None)) => json!([elapsed, null, "not-found", "not found"]),
                Ok(Err(err)) => {
                    let kind = err.kind_name().to_lowercase();
                    json!([elapsed, null, kind, err.message()])
                }
                Err(trap) => json!([elapsed, null, "trap", format!("{trap:?}")]),
            });
        }
        let loads = self.guest.loads() - loads;
        Ok(json!({ "first": to_plain_json(&first), "calls": calls, "loaderCalls": loads }))
    }

    fn run(&mut self, command: &str, arg: &str, loaded: &AtomicBool) -> Result<Json, String> {
        Ok(match command {
            "failsafe" => {
                let spec: Json = serde_json::from_str(arg).map_err(|e| e.to_string())?;
                return self.failsafe(&spec, loaded);
            }
            "fresh-write" | "fresh-read" => {
                let spec: Json = serde_json::from_str(arg).map_err(|e| e.to_string())?;
                return if command == "fresh-write" {
                    self.fresh_write(&spec)
                } else {
                    self.fresh_read(&spec)
                };
            }
            "fault" | "load" => {
                let spec: Json = serde_json::from_str(arg).map_err(|e| e.to_string())?;
                return if command == "fault" {
                    self.fault(&spec)
                } else {
                    self.load(&spec)
                };
            }
            "write" => {
                let cases = interop_cases();
                for case in &cases {
                    let cache = self.open(Some(case), false)?;
                    let key = case["key"].as_str().unwrap_or_default();
                    let value = msgpack::encode(&typed(&case["value"]));
                    call(self.guest.set(cache, key, &value, case["ttl"].as_f64()))?;
                }
                json!({ "written": cases.len() })
            }
            "read" => {
                let cases = interop_cases();
                let mut failed = Vec::new();
                for case in &cases {
                    let cache = self.open(Some(case), false)?;
                    let key = case["key"].as_str().unwrap_or_default();
                    let got = call(self.guest.get(cache, key))?;
                    let got = got.map(|bytes| msgpack::decode(&bytes)).transpose();
                    let got = got.map_err(|e| e.to_string())?;
                    if !got
                        .as_ref()
                        .is_some_and(|got| notation::same(got, &typed(&case["value"])))
                    {
                        failed.push(json!({ "name": case["name"], "got": format!("{got:?}") }));
                    }
                }
                json!({ "passed": cases.len() - failed.len(), "failed": failed })
            }
            "delete" => {
                let cache = self.open(None, false)?;
                json!({ "deleted": call(self.guest.delete(cache, arg))? })
            }
            "get" => {
                let cache = self.open(None, false)?;
                json!({ "found": call(self.guest.get(cache, arg))?.is_some() })
            }
            "ttl" => {
                let cache = self.open(None, false)?;
                json!({ "ttl": call(self.guest.ttl(cache, arg))? })
            }
            "place" => {
                let cache = self.open(None, false)?;
                let count: usize = arg.parse().unwrap_or(0);
                let entries: Vec<(String, Vec<u8>)> = (0..count)
                    .map(|i| (format!("user:{i}"), msgpack::encode(&Value::from(i as u64))))
                    .collect();
                call(self.guest.set_many(cache, &entries, Some(600.0)))?;
                let hosts = self.url.split_once("://").map_or("", |(_, rest)| rest);
                let nodes: Vec<Node> = hosts
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|host| Node {
                        name: host.to_owned(),
                        weight: 1,
                    })
                    .collect();
                let ring = call(self.guest.ring(&nodes))?;
                let mut placed = Vec::with_capacity(count);
                for (key, _) in &entries {
                    let redis_key = call(self.guest.redis_key(cache, key))?;
                    let node = self
                        .guest
                        .node_for(ring, &redis_key)
                        .map_err(|e| e.to_string())?;
                    placed.push(node);
                }
                json!({ "nodes": placed })
            }
            "cached" => {
                // A memoized function in the component: the same template, get-or-load
                // with the host's loader.
                let cache = self.open(None, false)?;
                let n: i64 = arg.parse().unwrap_or(0);
                let arg = msgpack::encode(&Value::from(n));
                let key = call(self.guest.render_key("report:{0}", &[arg], &[]))?;
                let value = found(self.guest.get_or_load(cache, &key, Some(600.0)))?;
                let value = msgpack::decode(&value).map_err(|e| e.to_string())?;
                json!({ "value": to_plain_json(&value), "loaded": loaded.load(Ordering::Relaxed) })
            }
            "raw" => {
                let raw = self.open(None, true)?;
                let plain = self.open(None, false)?;
                let (mut raw_ok, mut missed) = (Vec::new(), Vec::new());
                for (key, bytes) in RAW_KEYS {
                    let got = call(self.guest.get(raw, key))?;
                    let got = got.map(|b| msgpack::decode(&b)).transpose();
                    raw_ok.push(got.ok().flatten() == Some(Value::Bytes(bytes.to_vec())));
                    missed.push(call(self.guest.get(plain, key))?.is_none());
                }
                let metrics = self.guest.metrics(plain).map_err(|e| e.to_string())?;
                json!({ "raw": raw_ok, "enveloped": missed, "decodeErrors": metrics.decode_errors })
            }
            // The invalidation matrix's writer (the component has no near tier to read
            // with): one write, and the wall-clock time it returned.
            "timed-set" => {
                let cache = self.open(None, false)?;
                let value = msgpack::encode(&Value::from("written by wasi"));
                call(self.guest.set(cache, arg, &value, Some(600.0)))?;
                json!({ "returned": epoch_secs() })
            }
            "timed-delete" => {
                let cache = self.open(None, false)?;
                call(self.guest.delete(cache, arg))?;
                json!({ "returned": epoch_secs() })
            }
            other => return Err(format!("unknown command {other}")),
        })
    }
}

/// A call's two layers of failure as one message: a trap, or the WIT error.
fn call<T>(result: polycache_wasm_host::Call<T>) -> Result<T, String> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("{}Error: {}", err.kind_name(), err.message())),
        Err(trap) => Err(format!("trap: {trap:?}")),
    }
}

/// A `get-or-load` answer that must be a value: this agent's loaders never say "not found".
fn found(result: polycache_wasm_host::Call<Option<Vec<u8>>>) -> Result<Vec<u8>, String> {
    call(result)?.ok_or_else(|| "not found, from a loader that always has a value".to_owned())
}

/// `stampede URL NS SPEC`: see the module docs and tests/interop/agent.py.
fn stampede(host: &Host, url: &str, ns: &str, spec: &Json) -> Result<Json, String> {
    let secs = |field: &str| spec[field].as_f64().unwrap_or(10.0);
    let join = if url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{url}{join}stampedeLock={}&lockLease={}&lockTimeout={}",
        spec["lock"].as_bool().unwrap_or(true),
        secs("lease"),
        secs("timeout")
    );
    let keys = spec_keys(spec);
    let callers = spec["callers"].as_u64().unwrap_or(1) as usize;
    let instances = callers.clamp(1, 8);
    let lines = stdin_lines();
    let mut guests = Vec::with_capacity(instances);
    for _ in 0..instances {
        let (spec, lines) = (spec.clone(), lines.clone());
        let loader = move |key: &str| {
            let value = stampede_load(&spec, key, &lines).map_err(|e| e.to_string())?;
            Ok(Some(msgpack::encode(&Value::from(value))))
        };
        let mut guest = host
            .instantiate(Network::Loopback, loader)
            .map_err(|e| format!("{e:?}"))?;
        let cache = call(guest.open(&url, &options(ns, None, false)))?;
        guests.push((guest, cache));
    }
    println!("{}", json!({ "ready": true }));
    let _ = lines.lock().map(|rx| rx.recv());
    println!("{}", json!({ "missed": true }));
    let threads: Vec<_> = guests
        .into_iter()
        .enumerate()
        .map(|(i, (mut guest, cache))| {
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for caller in (i..callers).step_by(instances) {
                    let key = keys[caller % keys.len()].clone();
                    let value = found(guest.get_or_load(cache, &key, Some(600.0)))
                        .and_then(|v| msgpack::decode(&v).map_err(|e| e.to_string()));
                    got.push((key, value));
                }
                let metrics = guest.metrics(cache).map_err(|e| e.to_string());
                (got, metrics)
            })
        })
        .collect();
    let mut values = StampedeValues::default();
    let (mut hits, mut misses, mut loads) = (0, 0, 0);
    for thread in threads {
        let (got, metrics) = thread.join().map_err(|_| "a caller thread panicked")?;
        for (key, value) in got {
            values.add(key, value.map(|value| to_plain_json(&value)));
        }
        let metrics = metrics?;
        hits += metrics.hits;
        misses += metrics.misses;
        loads += metrics.loads;
    }
    let metrics = json!({ "hits": hits, "misses": misses, "loads": loads });
    Ok(values.report(metrics))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: wasi-agent COMMAND URL NAMESPACE [ARG]");
        std::process::exit(2);
    }
    // The loader of the `cached` command: the memoized function's body.
    let loaded = Arc::new(AtomicBool::new(false));
    let flag = loaded.clone();
    let n: i64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    let report = Value::from_iter([("report", Value::from(n)), ("by", Value::from("wasi"))]);
    let failsafe = args[0] == "failsafe";
    let fresh_read = args[0] == "fresh-read";
    let report = if failsafe {
        Value::from("good")
    } else {
        report
    };
    // fresh-write's loader answers SPEC.value instead.
    let report = match args[0].as_str() {
        "fresh-write" => serde_json::from_str::<Json>(args.get(3).map_or("{}", String::as_str))
            .ok()
            .and_then(|spec| spec["value"].as_str().map(Value::from))
            .unwrap_or(report),
        _ => report,
    };
    if args[0] == "stampede" {
        let spec: Json = serde_json::from_str(args.get(3).map_or("{}", String::as_str))
            .unwrap_or_else(|e| panic!("SPEC is not JSON: {e}"));
        let result = Host::load(&default_component_path())
            .map_err(|e| format!("{e:?}"))
            .and_then(|host| stampede(&host, &args[1], &args[2], &spec));
        match result {
            Ok(out) => println!("{out}"),
            Err(error) => {
                println!("{}", json!({ "error": error }));
                std::process::exit(1);
            }
        }
        return;
    }
    let result = Host::load(&default_component_path())
        .and_then(|host| {
            host.instantiate(Network::Loopback, move |_key: &str| {
                if fresh_read {
                    return Err("the reader does not load".to_owned());
                }
                if failsafe {
                    // The flag, set at the driver's go, makes the loader fail.
                    return match flag.load(Ordering::SeqCst) {
                        true => Err("database down".to_owned()),
                        false => Ok(Some(msgpack::encode(&report))),
                    };
                }
                flag.store(true, Ordering::Relaxed);
                Ok(Some(msgpack::encode(&report)))
            })
        })
        .map_err(|e| format!("{e:?}"))
        .and_then(|guest| {
            let mut agent = Agent {
                guest,
                url: args[1].clone(),
                ns: args[2].clone(),
            };
            agent.run(
                &args[0],
                args.get(3).map(String::as_str).unwrap_or_default(),
                &loaded,
            )
        });
    match result {
        Ok(out) => println!("{out}"),
        Err(error) => {
            println!("{}", json!({ "error": error }));
            std::process::exit(1);
        }
    }
}
