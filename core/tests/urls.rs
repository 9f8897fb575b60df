//! tests/vectors/urls.json: a URL plus options resolve to the same config in every language.

use polycache::{contract, ErrorKind};
use polycache_harness::notation::{same_json, vectors};
use serde_json::Value as Json;

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
                    same_json(&got, &case["config"]),
                    "{name}: got {got}, expected {}",
                    case["config"]
                );
            }
        }
    }
}
