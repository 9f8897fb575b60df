//! Every case of `tests/vectors/*.json`, computed by the component (the host only parses
//! the cases and compares).

use std::collections::BTreeMap;

use polycache_harness::notation::{hostile_bytes, same_json, vectors};
use polycache_wasm_host::{Codec, Compression, EnvelopeOptions, Guest, Node, WitError};
use serde_json::Value as Json;

use super::{guest, pack, typed};

/// Runs `check` on every case and reports all failures at once.
fn run(file: &str, mut check: impl FnMut(&mut Guest, &Json) -> Result<(), String>) {
    let cases = vectors(file);
    assert!(cases.len() >= 50, "{file}: only {} cases", cases.len());
    let mut guest = guest();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            check(&mut guest, case)
                .err()
                .map(|why| format!("{}: {why}", case["name"]))
        })
        .collect();
    println!(
        "component {file}: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{file}:\n{}", failures.join("\n"));
}

fn str_of<'a>(case: &'a Json, field: &str) -> &'a str {
    case[field].as_str().unwrap_or_default()
}

fn codec_of(name: &str) -> Codec {
    match name {
        "bytes" => Codec::Bytes,
        "msgpack" => Codec::Msgpack,
        "json" => Codec::Json,
        other => panic!("unknown codec {other}"),
    }
}

fn bytes_of(case: &Json) -> Vec<u8> {
    hex::decode(str_of(case, "hex")).expect("hex")
}

/// The component may only fail with the vector's error kind (`"codec"`, `"key"` …).
fn expect_error<T: std::fmt::Debug>(kind: &str, result: Result<T, WitError>) -> Result<(), String> {
    match result {
        Err(e) if e.kind_name().eq_ignore_ascii_case(kind) => Ok(()),
        other => Err(format!("expected a {kind} error, got {other:?}")),
    }
}

/// Decodes `bytes` in the component and compares value and header with the case.
fn check_decoded(guest: &mut Guest, case: &Json, bytes: &[u8]) -> Result<(), String> {
    let decoded = guest
        .decode(bytes)
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("decode failed: {e:?}"))?;
    // Canonical MessagePack is unique per value, so equal bytes are equal values (floats
    // bit for bit).
    if decoded.value != pack(&typed(&case["value"])) {
        return Err(format!("decoded value {}", hex::encode(&decoded.value)));
    }
    let h = &decoded;
    let tags: Vec<String> = case["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t.as_str().expect("tag").to_owned())
        .collect();
    let ok = h.codec == codec_of(str_of(case, "codec"))
        && h.created_at == case["createdAt"].as_u64().expect("createdAt")
        && h.fresh_until == case["freshUntil"].as_u64().expect("freshUntil")
        && h.schema.as_deref() == case["schema"].as_str()
        && h.tags == tags
        && h.not_found == (case["notFound"].as_bool() == Some(true));
    if !ok {
        return Err(format!("header {h:?}"));
    }
    if let Some(compression) = case["compression"].as_str() {
        let lz4 = h.compression == Compression::Lz4;
        if lz4 != (compression == "lz4") {
            return Err(format!("compression {:?}", h.compression));
        }
    }
    Ok(())
}

fn encode_options(case: &Json) -> EnvelopeOptions {
    EnvelopeOptions {
        codec: codec_of(str_of(case, "codec")),
        compression: Compression::Lz4,
        compress_threshold: case["compressThreshold"].as_u64().unwrap_or(1024) as u32,
        created_at: case["createdAt"].as_u64().unwrap_or(0),
        fresh_until: case["freshUntil"].as_u64().unwrap_or(0),
        schema: case["schema"].as_str().map(str::to_owned),
        tags: case["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t.as_str().expect("tag").to_owned())
            .collect(),
    }
}

#[test]
fn envelope_vectors_in_the_component() {
    run("envelope.json", |guest, case| match str_of(case, "op") {
        "roundtrip" => {
            let expected = bytes_of(case);
            check_decoded(guest, case, &expected)?;
            let encoded = guest
                .encode(&pack(&typed(&case["value"])), &encode_options(case))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("encode failed: {e:?}"))?;
            if case["exact"].as_bool() == Some(true) {
                if encoded != expected {
                    return Err(format!("encoded {}", hex::encode(&encoded)));
                }
            } else {
                // LZ4 output is not unique: same header, and the payload must decode.
                let header_len = 8 + usize::from(u16::from_be_bytes([expected[6], expected[7]]));
                if encoded.get(..header_len) != expected.get(..header_len) {
                    return Err(format!("encoded header {}", hex::encode(&encoded)));
                }
                check_decoded(guest, case, &encoded)?;
            }
            Ok(())
        }
        "decode" => {
            let bytes = bytes_of(case);
            if let Some(kind) = case["error"].as_str() {
                return expect_error(kind, guest.decode(&bytes).map_err(|e| e.to_string())?);
            }
            check_decoded(guest, case, &bytes)
        }
        "encode-error" => {
            let options = EnvelopeOptions {
                codec: codec_of(str_of(case, "codec")),
                compression: Compression::Lz4,
                compress_threshold: 1024,
                created_at: 0,
                fresh_until: 0,
                schema: None,
                tags: Vec::new(),
            };
            let result = guest.encode(&pack(&typed(&case["value"])), &options);
            expect_error(str_of(case, "error"), result.map_err(|e| e.to_string())?)
        }
        other => Err(format!("unknown op {other}")),
    });
}

#[test]
fn key_vectors_in_the_component() {
    run("keys.json", |guest, case| {
        let trap = |e: wasmtime::Error| e.to_string();
        match str_of(case, "kind") {
            "schema" => {
                let max = case["maxKeyLength"].as_u64().unwrap_or(200) as u32;
                let result = guest
                    .schema_key(
                        str_of(case, "prefix"),
                        str_of(case, "namespace"),
                        max,
                        str_of(case, "key"),
                    )
                    .map_err(trap)?;
                if let Some(kind) = case["error"].as_str() {
                    return expect_error(kind, result);
                }
                let redis_key = result.map_err(|e| format!("{e:?}"))?;
                let got = (
                    redis_key.clone(),
                    guest.lock_key(&redis_key).map_err(trap)?,
                    guest.hash_tag(&redis_key).map_err(trap)?,
                    u64::from(guest.slot(&redis_key).map_err(trap)?),
                );
                let want = (
                    str_of(case, "redisKey").to_owned(),
                    str_of(case, "lockKey").to_owned(),
                    str_of(case, "hashTag").to_owned(),
                    case["slot"].as_u64().unwrap_or(u64::MAX),
                );
                (got == want).then_some(()).ok_or(format!("got {got:?}"))
            }
            "slot" => {
                let key = str_of(case, "redisKey");
                let got = (
                    guest.hash_tag(key).map_err(trap)?,
                    u64::from(guest.slot(key).map_err(trap)?),
                );
                let want = (
                    str_of(case, "hashTag").to_owned(),
                    case["slot"].as_u64().unwrap_or(u64::MAX),
                );
                (got == want).then_some(()).ok_or(format!("got {got:?}"))
            }
            other => Err(format!("unknown kind {other}")),
        }
    });
}

#[test]
fn url_vectors_in_the_component() {
    run("urls.json", |guest, case| {
        let options = case["options"].to_string();
        let got = guest
            .resolve_config(str_of(case, "url"), &options)
            .map_err(|e| e.to_string())?;
        if let Some(kind) = case["error"].as_str() {
            return expect_error(kind, got);
        }
        let got: Json =
            serde_json::from_str(&got.map_err(|e| format!("{e:?}"))?).map_err(|e| e.to_string())?;
        if same_json(&got, &case["config"]) {
            Ok(())
        } else {
            Err(format!("got {got}, expected {}", case["config"]))
        }
    });
}

#[test]
fn xfetch_vectors_in_the_component() {
    run("xfetch.json", |guest, case| {
        let u = |field: &str| case[field].as_u64().expect(field);
        let f = |field: &str| case[field].as_f64().expect(field);
        let got = guest
            .should_refresh_early(
                u("now"),
                u("freshUntil"),
                u("delta"),
                f("beta"),
                f("random"),
            )
            .map_err(|e| e.to_string())?;
        let want = case["refresh"].as_bool().expect("refresh");
        (got == want).then_some(()).ok_or(format!("got {got}"))
    });
}

fn nodes_of(v: &Json) -> Vec<Node> {
    v.as_array()
        .expect("node list")
        .iter()
        .map(|n| Node {
            name: n["name"].as_str().expect("name").to_owned(),
            weight: n["weight"].as_u64().unwrap_or(1) as u32,
        })
        .collect()
}

#[test]
fn ring_vectors_in_the_component() {
    run("ring.json", |guest, case| {
        let trap = |e: wasmtime::Error| e.to_string();
        match str_of(case, "kind") {
            "placement" => {
                let nodes = nodes_of(&case["nodes"]);
                let ring = guest
                    .ring(&nodes)
                    .map_err(trap)?
                    .map_err(|e| format!("{e:?}"))?;
                let len = guest.ring_len(ring).map_err(trap)?;
                if u64::from(len) != case["continuumSize"].as_u64().unwrap_or(0) {
                    return Err(format!("continuum size {len}"));
                }
                let head: Vec<(u32, String)> =
                    serde_json::from_value(case["continuumHead"].clone())
                        .map_err(|e| e.to_string())?;
                let got = guest.ring_head(ring, head.len() as u32).map_err(trap)?;
                if got != head {
                    return Err(format!("continuum head {got:?}"));
                }
                for placement in case["placements"].as_array().into_iter().flatten() {
                    let key = str_of(placement, "key");
                    let node = guest.node_for(ring, key).map_err(trap)?;
                    if node != str_of(placement, "node") {
                        return Err(format!("{key} placed on {node}"));
                    }
                }
                guest.drop_ring(ring).map_err(trap)
            }
            "movement" => {
                let (before_nodes, after_nodes) =
                    (nodes_of(&case["before"]), nodes_of(&case["after"]));
                let before = guest
                    .ring(&before_nodes)
                    .map_err(trap)?
                    .map_err(|e| format!("{e:?}"))?;
                let after = guest
                    .ring(&after_nodes)
                    .map_err(trap)?
                    .map_err(|e| format!("{e:?}"))?;
                let pattern = str_of(case, "keyPattern");
                let mut moved = 0u64;
                let mut balance = BTreeMap::<String, u64>::new();
                for i in 0..case["count"].as_u64().unwrap_or(0) {
                    let key = pattern.replace("{i}", &i.to_string());
                    let from = guest.node_for(before, &key).map_err(trap)?;
                    let to = guest.node_for(after, &key).map_err(trap)?;
                    moved += u64::from(from != to);
                    *balance.entry(to).or_default() += 1;
                }
                let want: BTreeMap<String, u64> =
                    serde_json::from_value(case["balance"].clone()).map_err(|e| e.to_string())?;
                guest.drop_ring(before).map_err(trap)?;
                guest.drop_ring(after).map_err(trap)?;
                if moved != case["moved"].as_u64().unwrap_or(u64::MAX) || balance != want {
                    return Err(format!("moved {moved}, balance {balance:?}"));
                }
                Ok(())
            }
            other => Err(format!("unknown kind {other}")),
        }
    });
}

#[test]
fn template_vectors_in_the_component() {
    run("templates.json", |guest, case| {
        let args: Vec<Vec<u8>> = case["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| pack(&typed(v)))
            .collect();
        let result = match str_of(case, "kind") {
            "template" => {
                let named: Vec<(String, Vec<u8>)> = case["named"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), pack(&typed(v))))
                    .collect();
                guest.render_key(str_of(case, "template"), &args, &named)
            }
            "default" => {
                // Named arguments (FORMAT.md §5) go in as the argument list [positional, named].
                let named: polycache::Value = case["named"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), typed(v)))
                    .collect();
                let hashed = match &named {
                    polycache::Value::Map(m) if !m.is_empty() => {
                        let positional = case["args"].as_array().into_iter().flatten().map(typed);
                        vec![
                            pack(&polycache::Value::Array(positional.collect())),
                            pack(&named),
                        ]
                    }
                    _ => args,
                };
                guest.call_key(str_of(case, "function"), &hashed, &[])
            }
            other => return Err(format!("unknown kind {other}")),
        }
        .map_err(|e| e.to_string())?;
        if let Some(kind) = case["error"].as_str() {
            return expect_error(kind, result);
        }
        match result {
            Ok(key) if key == str_of(case, "key") => Ok(()),
            other => Err(format!("got {other:?}")),
        }
    });
}

// --- hostile.json: bounded time and memory (docs/FORMAT.md §1, "Limits") ---------------

const HOSTILE_MAX_RSS: u64 = 64 * 1024 * 1024;
/// A hang detector, not a speed assertion.
const HOSTILE_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `body` alone in a fresh process of this test binary, so the memory it measures
/// is its own.
fn in_own_process(test: &str, body: impl FnOnce()) {
    if std::env::var("POLYCACHE_OWN_PROCESS").as_deref() == Ok(test) {
        body();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("POLYCACHE_OWN_PROCESS", test)
        .output()
        .expect("run the test binary");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{test} failed in its own process ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_vectors_in_the_component() {
    in_own_process("vectors::hostile_vectors_in_the_component", || {
        let inputs: BTreeMap<String, Vec<u8>> = vectors("hostile.json")
            .iter()
            .map(|c| (str_of(c, "name").to_owned(), hostile_bytes(c)))
            .collect();
        run("hostile.json", |guest, case| {
            let bytes = &inputs[str_of(case, "name")];
            reset_peak_rss();
            let before = peak_rss();
            let started = std::time::Instant::now();
            let result = guest.decode(bytes).map_err(|e| e.to_string())?;
            let elapsed = started.elapsed();
            let grew = peak_rss().saturating_sub(before);
            match str_of(case, "expect") {
                "decode_error" => expect_error("codec", result)?,
                "ok" => drop(result.map_err(|e| format!("decode failed: {e:?}"))?),
                _ => {
                    let decoded = result.map_err(|e| format!("decode failed: {e:?}"))?;
                    if decoded.value != pack(&typed(&case["value"])) {
                        return Err("decoded another value".into());
                    }
                }
            }
            if elapsed > HOSTILE_MAX_TIME {
                return Err(format!("took {elapsed:?}"));
            }
            if grew > HOSTILE_MAX_RSS {
                return Err(format!("peak RSS grew by {} KiB", grew / 1024));
            }
            Ok(())
        });
    });
}
