//! tests/vectors/urls.json: a URL plus options resolve to the same config in every language.

use polycache::{contract, ErrorKind};
use polycache_harness::notation::vectors;
use serde_json::Value as Json;

/// JSON equality with numbers compared by value (`60` equals `60.0`).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

#[test]
fn every_url_vector_resolves() {
    let cases = vectors("urls.json");
    assert!(cases.len() >= 60);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let url = case["url"].as_str().unwrap();
        let options = case["options"].to_string();
        let got = contract::resolve_config(url, &options);
        match case.get("error") {
            Some(kind) => {
                assert_eq!(kind, "config", "{name}");
                let err = got.expect_err(name);
                assert_eq!(err.kind(), ErrorKind::Config, "{name}: {err}");
            }
            None => {
                let got: Json = serde_json::from_str(&got.unwrap_or_else(|e| {
                    panic!("{name}: {e}");
                }))
                .unwrap();
                assert!(
                    same(&got, &case["config"]),
                    "{name}: got {got}, expected {}",
                    case["config"]
                );
            }
        }
    }
}
