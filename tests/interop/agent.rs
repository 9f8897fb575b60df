//! The Rust side of the interop matrix: the same commands as `agent.py` (see its docs),
//! one JSON line out.

use std::path::PathBuf;
use std::time::Duration;

use polycache::{Cache, Config, KeyTemplate, Node, Ring, Value};
use serde_json::{json, Value as Json};

fn typed(v: &Json) -> Value {
    let (tag, inner) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("typed value");
    match tag.as_str() {
        "nil" => Value::Nil,
        "bool" => Value::Bool(inner.as_bool().expect("bool")),
        "int" => {
            let text = inner.as_str().expect("int");
            text.parse::<i64>()
                .map(Value::Int)
                .unwrap_or_else(|_| Value::from(text.parse::<u64>().expect("u64")))
        }
        "float" => Value::Float(inner.as_str().expect("float").parse().expect("float")),
        "str" => Value::Str(inner.as_str().expect("str").to_owned()),
        "bytes" => Value::Bytes(hex::decode(inner.as_str().expect("hex")).expect("hex")),
        "array" => Value::Array(inner.as_array().expect("array").iter().map(typed).collect()),
        _ => Value::Map(
            inner
                .as_object()
                .expect("map")
                .iter()
                .map(|(k, v)| (k.clone(), typed(v)))
                .collect(),
        ),
    }
}

fn cases() -> Vec<Json> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases.json");
    let doc: Json =
        serde_json::from_str(&std::fs::read_to_string(path).expect("cases.json")).expect("json");
    doc["cases"].as_array().expect("cases").clone()
}

async fn cache(url: &str, ns: &str, case: Option<&Json>, raw: bool) -> polycache::Result<Cache> {
    let mut config = Config::from_url(url)?.namespace(ns).raw(raw);
    if let Some(case) = case {
        config = config
            .codec(serde_json::from_value(case["codec"].clone()).expect("codec"))
            .compress_threshold(case["compressThreshold"].as_u64().unwrap_or(1024) as usize);
    }
    Cache::new(config).await
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
            let cases = cases();
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
            let cases = cases();
            let mut failed = Vec::new();
            for case in &cases {
                let key = case["key"].as_str().unwrap_or_default();
                let got = cache(url, ns, Some(case), false).await?.get(key).await?;
                if got.as_ref() != Some(&typed(&case["value"])) {
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
                .map(|k| Ok(ring.nodes()[ring.node_for(&c.redis_key(k)?)].name.clone()))
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
            json!({ "value": to_json(&value), "loaded": loaded })
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
        other => json!({ "error": format!("unknown command {other}") }),
    })
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Bytes(b) => json!(hex::encode(b)),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: interop-agent COMMAND URL NAMESPACE [ARG]");
        std::process::exit(2);
    }
    match run(&args).await {
        Ok(out) => println!("{out}"),
        Err(err) => {
            println!("{}", json!({ "error": err.to_string() }));
            std::process::exit(1);
        }
    }
}
