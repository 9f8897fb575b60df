//! Runs every case of `tests/vectors/*.json` (the cross-language contract) against core.

use std::path::PathBuf;

use polycache::codec::{self, Codec, Compression, EncodeOptions, Meta};
use polycache::key::{hash_tag, slot};
use polycache::{ErrorKind, KeySchema, Node, Ring, Value};
use serde_json::Value as Json;

fn load(name: &str) -> Vec<Json> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: Json = serde_json::from_str(&text).expect("vector file is JSON");
    doc["cases"].as_array().expect("cases").clone()
}

/// The typed value notation of tests/vectors/README.md.
fn typed(v: &Json) -> Value {
    let (tag, inner) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("typed value");
    match tag.as_str() {
        "nil" => Value::Nil,
        "bool" => Value::Bool(inner.as_bool().expect("bool")),
        "int" => {
            let text = inner.as_str().expect("int string");
            match text.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::from(text.parse::<u64>().expect("u64")),
            }
        }
        "float" => Value::Float(match inner.as_str().expect("float string") {
            "NaN" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => other.parse().expect("float"),
        }),
        "str" => Value::Str(inner.as_str().expect("str").to_owned()),
        "bytes" => Value::Bytes(hex::decode(inner.as_str().expect("hex")).expect("hex")),
        "array" => Value::Array(inner.as_array().expect("array").iter().map(typed).collect()),
        "map" => Value::Map(
            inner
                .as_object()
                .expect("map")
                .iter()
                .map(|(k, v)| (k.clone(), typed(v)))
                .collect(),
        ),
        other => panic!("unknown typed tag {other}"),
    }
}

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
    }
}

/// Runs `check` on every case, collecting failures so one run reports all of them.
fn run_all(file: &str, check: impl Fn(&Json) -> Result<(), String>) {
    let cases = load(file);
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
    if value != typed(&case["value"]) {
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
                    let node = &ring.nodes()[ring.node_for(key)].name;
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
                    let from = &before.nodes()[before.node_for(&key)].name;
                    let to = &after.nodes()[after.node_for(&key)].name;
                    moved += u64::from(from != to);
                    *balance.entry(to.clone()).or_default() += 1;
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
    use polycache::{call_key, KeyTemplate};
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
                let key = call_key(case["function"].as_str().unwrap_or_default(), &args);
                (key == case["key"].as_str().unwrap_or_default())
                    .then_some(())
                    .ok_or(format!("got {key}"))
            }
            other => Err(format!("unknown kind {other}")),
        }
    });
}
