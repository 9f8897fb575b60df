//! Runs every case of `tests/vectors/*.json` (the cross-language contract) against core.

use polycache::codec::{self, Codec, Compression, EncodeOptions, Meta};
use polycache::key::{hash_tag, slot};
use polycache::{ErrorKind, KeySchema, Node, Ring, Value};
use polycache_harness::notation::{self, hostile_bytes, typed, vectors};
use serde_json::Value as Json;

fn codec_of(name: &str) -> Codec {
    serde_json::from_value(Json::from(name)).expect("codec name")
}

fn meta_of(case: &Json) -> Meta {
    Meta {
        created_at_ms: case["createdAt"].as_u64().expect("createdAt"),
        fresh_until_ms: case["freshUntil"].as_u64().expect("freshUntil"),
        schema: case["schema"].as_str().map(str::to_owned),
        tags: case["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| t.as_str().expect("tag").to_owned())
            .collect(),
        load_ms: case
            .get("loadMs")
            .and_then(Json::as_u64)
            .map(|ms| ms as u32),
        not_found: case.get("notFound").and_then(Json::as_bool) == Some(true),
    }
}

/// Runs `check` on every case, collecting failures so one run reports all of them.
fn run_all(file: &str, check: impl Fn(&Json) -> Result<(), String>) {
    let cases = vectors(file);
    assert!(cases.len() >= 50, "{file} has only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            check(case)
                .err()
                .map(|why| format!("{}: {why}", case["name"]))
        })
        .collect();
    println!(
        "{file}: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{file} failures:\n{}",
        failures.join("\n")
    );
}

fn check_decoded(case: &Json, bytes: &[u8]) -> Result<(), String> {
    let (header, value) = codec::decode(bytes).map_err(|e| format!("decode failed: {e}"))?;
    if !notation::same(&value, &typed(&case["value"])) {
        return Err(format!("decoded {value:?}"));
    }
    if header.codec != codec_of(case["codec"].as_str().unwrap_or_default()) {
        return Err(format!("codec {:?}", header.codec));
    }
    if header.meta != meta_of(case) {
        return Err(format!("meta {:?}", header.meta));
    }
    Ok(())
}

#[test]
fn envelope_vectors() {
    run_all("envelope.json", |case| {
        match case["op"].as_str().unwrap_or_default() {
            "roundtrip" => {
                let expected = hex::decode(case["hex"].as_str().unwrap_or_default())
                    .map_err(|e| e.to_string())?;
                check_decoded(case, &expected)?;
                let compression: Compression = serde_json::from_value(case["compression"].clone())
                    .map_err(|e| e.to_string())?;
                let options = EncodeOptions {
                    codec: codec_of(case["codec"].as_str().unwrap_or_default()),
                    compression: Compression::Lz4,
                    compress_threshold: case["compressThreshold"].as_u64().unwrap_or(1024) as usize,
                };
                let encoded = codec::encode(&typed(&case["value"]), &options, &meta_of(case))
                    .map_err(|e| format!("encode failed: {e}"))?;
                if case["exact"].as_bool() == Some(true) {
                    if encoded != expected {
                        return Err(format!("encoded {}", hex::encode(&encoded)));
                    }
                } else {
                    let header_len = 8 + u16::from_be_bytes([expected[6], expected[7]]) as usize;
                    if encoded[..header_len] != expected[..header_len] {
                        return Err(format!("header {}", hex::encode(&encoded[..header_len])));
                    }
                    check_decoded(case, &encoded)?;
                }
                if encoded[5] != compression.id() {
                    return Err(format!("compression id {}", encoded[5]));
                }
                Ok(())
            }
            "decode" => {
                let bytes = hex::decode(case["hex"].as_str().unwrap_or_default())
                    .map_err(|e| e.to_string())?;
                if case.get("error").is_some() {
                    return match codec::decode(&bytes) {
                        Err(e) if e.kind() == ErrorKind::Codec => Ok(()),
                        other => Err(format!("expected a codec error, got {other:?}")),
                    };
                }
                check_decoded(case, &bytes)
            }
            "encode-error" => {
                let options = EncodeOptions {
                    codec: codec_of(case["codec"].as_str().unwrap_or_default()),
                    ..EncodeOptions::default()
                };
                match codec::encode(&typed(&case["value"]), &options, &Meta::default()) {
                    Err(e) if e.kind() == ErrorKind::Codec => Ok(()),
                    other => Err(format!("expected a codec error, got {other:?}")),
                }
            }
            other => Err(format!("unknown op {other}")),
        }
    });
}

#[test]
fn key_vectors() {
    run_all("keys.json", |case| {
        let str_of = |field: &str| case[field].as_str().unwrap_or_default().to_owned();
        match case["kind"].as_str().unwrap_or_default() {
            "schema" => {
                let max = case["maxKeyLength"].as_u64().unwrap_or(200) as usize;
                let result = KeySchema::new(&str_of("prefix"), &str_of("namespace"), max)
                    .and_then(|schema| schema.redis_key(&str_of("key")));
                if let Some(kind) = case["error"].as_str() {
                    let expected = if kind == "key" {
                        ErrorKind::Key
                    } else {
                        ErrorKind::Config
                    };
                    return match result {
                        Err(e) if e.kind() == expected => Ok(()),
                        other => Err(format!("expected a {kind} error, got {other:?}")),
                    };
                }
                let redis_key = result.map_err(|e| e.to_string())?;
                let got = (
                    redis_key.clone(),
                    KeySchema::lock_key(&redis_key),
                    String::from_utf8_lossy(hash_tag(redis_key.as_bytes())).into_owned(),
                    u64::from(slot(redis_key.as_bytes())),
                );
                let want = (
                    str_of("redisKey"),
                    str_of("lockKey"),
                    str_of("hashTag"),
                    case["slot"].as_u64().unwrap_or(u64::MAX),
                );
                (got == want).then_some(()).ok_or(format!("got {got:?}"))
            }
            "slot" => {
                let key = str_of("redisKey");
                let got = (
                    String::from_utf8_lossy(hash_tag(key.as_bytes())).into_owned(),
                    u64::from(slot(key.as_bytes())),
                );
                let want = (str_of("hashTag"), case["slot"].as_u64().unwrap_or(u64::MAX));
                (got == want).then_some(()).ok_or(format!("got {got:?}"))
            }
            other => Err(format!("unknown kind {other}")),
        }
    });
}

fn nodes_of(v: &Json) -> Vec<Node> {
    serde_json::from_value(v.clone()).expect("node list")
}

#[test]
fn ring_vectors() {
    run_all("ring.json", |case| {
        match case["kind"].as_str().unwrap_or_default() {
            "placement" => {
                let ring = Ring::new(nodes_of(&case["nodes"])).map_err(|e| e.to_string())?;
                if ring.len() as u64 != case["continuumSize"].as_u64().unwrap_or(0) {
                    return Err(format!("continuum size {}", ring.len()));
                }
                let head: Vec<(u32, String)> =
                    serde_json::from_value(case["continuumHead"].clone())
                        .map_err(|e| e.to_string())?;
                let got_head: Vec<(u32, String)> = ring
                    .head(head.len())
                    .into_iter()
                    .map(|(p, n)| (p, n.to_owned()))
                    .collect();
                if got_head != head {
                    return Err(format!("continuum head {got_head:?}"));
                }
                for placement in case["placements"].as_array().into_iter().flatten() {
                    let key = placement["key"].as_str().unwrap_or_default();
                    let node = ring.node_for(key);
                    if node != placement["node"].as_str().unwrap_or_default() {
                        return Err(format!("{key} placed on {node}"));
                    }
                }
                Ok(())
            }
            "movement" => {
                let before = Ring::new(nodes_of(&case["before"])).map_err(|e| e.to_string())?;
                let after = Ring::new(nodes_of(&case["after"])).map_err(|e| e.to_string())?;
                let pattern = case["keyPattern"].as_str().unwrap_or_default();
                let count = case["count"].as_u64().unwrap_or(0);
                let mut moved = 0u64;
                let mut balance = std::collections::BTreeMap::<String, u64>::new();
                for i in 0..count {
                    let key = pattern.replace("{i}", &i.to_string());
                    let from = before.node_for(&key);
                    let to = after.node_for(&key);
                    moved += u64::from(from != to);
                    *balance.entry(to.to_owned()).or_default() += 1;
                }
                let want_balance: std::collections::BTreeMap<String, u64> =
                    serde_json::from_value(case["balance"].clone()).map_err(|e| e.to_string())?;
                if moved != case["moved"].as_u64().unwrap_or(u64::MAX) || balance != want_balance {
                    return Err(format!("moved {moved}, balance {balance:?}"));
                }
                Ok(())
            }
            other => Err(format!("unknown kind {other}")),
        }
    });
}

#[test]
fn template_vectors() {
    use polycache::{call_key_named, KeyTemplate};
    run_all("templates.json", |case| {
        let args: Vec<Value> = case["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(typed)
            .collect();
        match case["kind"].as_str().unwrap_or_default() {
            "template" => {
                let named = case["named"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), typed(v)))
                    .collect();
                let result = KeyTemplate::parse(case["template"].as_str().unwrap_or_default())
                    .and_then(|t| t.render(&args, &named));
                match (case["error"].as_str(), result) {
                    (Some("config"), Err(e)) if e.kind() == ErrorKind::Config => Ok(()),
                    (Some("key"), Err(e)) if e.kind() == ErrorKind::Key => Ok(()),
                    (None, Ok(key)) if key == case["key"].as_str().unwrap_or_default() => Ok(()),
                    (_, other) => Err(format!("got {other:?}")),
                }
            }
            "default" => {
                let named: std::collections::BTreeMap<String, Value> = case["named"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), typed(v)))
                    .collect();
                let key =
                    call_key_named(case["function"].as_str().unwrap_or_default(), &args, &named);
                (key == case["key"].as_str().unwrap_or_default())
                    .then_some(())
                    .ok_or(format!("got {key}"))
            }
            other => Err(format!("unknown kind {other}")),
        }
    });
}

// ---------------------------------------------------------------------------------------
// Hostile input: bounded time and memory (docs/FORMAT.md §1, "Limits")
// ---------------------------------------------------------------------------------------

/// Peak resident memory of this process so far, in bytes (Linux; 0 elsewhere).
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

/// Resets the peak to the current resident size where the kernel allows it.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `body` alone in a fresh process of this test binary, so the peak memory it
/// measures is its own and not that of tests running beside it.
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

/// Peak memory a hostile input may add, and the time it may take to refuse (a hang
/// detector with slack for debug builds, not a speed assertion).
const HOSTILE_MAX_RSS: u64 = 64 * 1024 * 1024;
const HOSTILE_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// An LZ4 block whose output is `prefix` followed by `zeros` zero bytes: the prefix and
/// one zero as literals, one match at offset 1 for the rest but 5, and 5 literal zeros.
fn lz4_zeros(prefix: &[u8], zeros: usize) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, mut n: usize) {
        while n >= 255 {
            out.push(255);
            n -= 255;
        }
        out.push(n as u8);
    }
    let literals = prefix.len() + 1;
    let matched = zeros - 6;
    let mut out = vec![((literals.min(15) as u8) << 4) | (matched - 4).min(15) as u8];
    if literals >= 15 {
        length(&mut out, literals - 15);
    }
    out.extend_from_slice(prefix);
    out.push(0);
    out.extend_from_slice(&[1, 0]);
    if matched - 4 >= 15 {
        length(&mut out, matched - 4 - 15);
    }
    out.extend_from_slice(&[0x50, 0, 0, 0, 0, 0]);
    out
}

/// The decode bomb: a valid LZ4 block of a MessagePack array32 of `n` zero bytes.
fn decode_bomb(n: u32) -> Vec<u8> {
    let mut prefix = vec![0xdd];
    prefix.extend_from_slice(&n.to_be_bytes());
    let mut out = vec![0xC1, b'P', b'C', 1, 1, 1, 0, 16];
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&(5 + n).to_be_bytes());
    out.extend_from_slice(&lz4_zeros(&prefix, n as usize));
    out
}

#[test]
fn decode_bomb_is_refused_in_bounded_time_and_memory() {
    in_own_process("decode_bomb_is_refused_in_bounded_time_and_memory", || {
        // 128 Mi items (above the payload cap) and 12 Mi items (under it, above the value
        // budget): both must fail without memory proportional to the claim.
        for n in [128 << 20, 12 << 20] {
            let bomb = decode_bomb(n);
            reset_peak_rss();
            let before = peak_rss();
            let started = std::time::Instant::now();
            let result = codec::decode(&bomb);
            let elapsed = started.elapsed();
            let grew = peak_rss().saturating_sub(before);
            println!(
                "bomb of {n} items ({} bytes stored): {elapsed:?}, peak RSS +{} KiB",
                bomb.len(),
                grew / 1024
            );
            assert!(matches!(&result, Err(e) if e.kind() == ErrorKind::Codec));
            assert!(elapsed < HOSTILE_MAX_TIME, "took {elapsed:?}");
            assert!(grew < HOSTILE_MAX_RSS, "peak RSS grew by {grew} bytes");
        }
    });
}

#[test]
fn hostile_vectors() {
    in_own_process("hostile_vectors", || {
        let cases: Vec<(Json, Vec<u8>)> = vectors("hostile.json")
            .into_iter()
            .map(|case| {
                let bytes = hostile_bytes(&case);
                (case, bytes)
            })
            .collect();
        let slowest = std::cell::Cell::new(std::time::Duration::ZERO);
        let heaviest = std::cell::Cell::new(0u64);
        run_all("hostile.json", |case| {
            let bytes = &cases
                .iter()
                .find(|(c, _)| c["name"] == case["name"])
                .expect("case")
                .1;
            reset_peak_rss();
            let before = peak_rss();
            let started = std::time::Instant::now();
            let result = codec::decode(bytes);
            let elapsed = started.elapsed();
            let grew = peak_rss().saturating_sub(before);
            slowest.set(slowest.get().max(elapsed));
            heaviest.set(heaviest.get().max(grew));
            let outcome = match (case["expect"].as_str().unwrap_or_default(), &result) {
                ("decode_error", Err(e)) if e.kind() == ErrorKind::Codec => Ok(()),
                ("ok", Ok(_)) => Ok(()),
                ("value", Ok((_, v))) if notation::same(v, &typed(&case["value"])) => Ok(()),
                (expect, got) => Err(format!(
                    "expected {expect}, got {:?}",
                    got.as_ref().map(|(_, v)| v.kind_name())
                )),
            };
            drop(result);
            outcome?;
            if elapsed > HOSTILE_MAX_TIME {
                return Err(format!("took {elapsed:?}"));
            }
            if grew > HOSTILE_MAX_RSS {
                return Err(format!("peak RSS grew by {} KiB", grew / 1024));
            }
            Ok(())
        });
        println!(
            "hostile.json: slowest case {:?}, largest peak RSS growth {} KiB",
            slowest.get(),
            heaviest.get() / 1024
        );
    });
}

/// Every hostile value planted in a real Redis reads as a miss plus a counted decode
/// error, within the time bound and without memory proportional to a claim.
#[test]
fn hostile_values_in_redis_are_counted_misses() {
    in_own_process("hostile_values_in_redis_are_counted_misses", || {
        let server = polycache_harness::Server::start(&[]).expect("redis-server");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut conn = redis::Client::open(server.url())
            .and_then(|c| c.get_connection())
            .expect("plain connection");
        let schema = KeySchema::new("pc", "default", 200).expect("schema");
        let hostile: Vec<(String, Vec<u8>)> = vectors("hostile.json")
            .iter()
            .filter(|case| case["expect"] == "decode_error")
            .map(|case| {
                (
                    case["name"].as_str().expect("name").to_owned(),
                    hostile_bytes(case),
                )
            })
            .collect();
        for (name, bytes) in &hostile {
            let key = schema.redis_key(name).expect("key");
            redis::cmd("SET")
                .arg(key)
                .arg(bytes.as_slice())
                .exec(&mut conn)
                .expect("SET");
        }
        runtime.block_on(async {
            let cache = polycache::Cache::new(polycache::Config::from_url(&server.url()).unwrap())
                .await
                .expect("cache");
            for (name, _) in &hostile {
                reset_peak_rss();
                let before = peak_rss();
                let started = std::time::Instant::now();
                let got = cache.get(name).await;
                let elapsed = started.elapsed();
                let grew = peak_rss().saturating_sub(before);
                assert!(matches!(got, Ok(None)), "{name}: {got:?}");
                assert!(elapsed < HOSTILE_MAX_TIME, "{name}: took {elapsed:?}");
                assert!(
                    grew < HOSTILE_MAX_RSS,
                    "{name}: peak RSS grew by {grew} bytes"
                );
            }
            let metrics = cache.metrics();
            assert_eq!(metrics.decode_errors, hostile.len() as u64);
            assert_eq!(metrics.misses, hostile.len() as u64);
            assert_eq!(metrics.hits, 0);
            println!(
                "{} hostile values in Redis: all counted misses",
                hostile.len()
            );
        });
    });
}
