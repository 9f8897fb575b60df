//! The component and the JS edge package (bindings-wasm/js, with a RESP transport of its
//! own, run by node) share values through Redis in both directions.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use polycache::Value;
use serde_json::{json, Value as Json};

use super::cache::standalone_endpoint;
use super::{guest, in_namespace, namespace, pack, to_typed, typed};

/// Values JS can hold as they are: no integral floats and no -0.0 (a JS number that is
/// integral is an integer, FORMAT.md §2).
fn samples() -> Vec<(String, Value)> {
    vec![
        (
            "user".into(),
            Value::Map(polycache::codec::Map::from([
                ("id".into(), Value::from(7)),
                ("name".into(), Value::from("Grace Hopper")),
                ("score".into(), Value::Float(-2.75)),
                ("avatar".into(), Value::Bytes(vec![0, 1, 254, 255])),
                ("big".into(), Value::from(u64::MAX)),
                ("small".into(), Value::Int(i64::MIN)),
                (
                    "langs".into(),
                    Value::Array(vec!["COBOL".into(), Value::Nil, true.into()]),
                ),
            ])),
        ),
        ("text".into(), Value::from("ünïcödé ✓")),
        ("large".into(), Value::from("edge ".repeat(500))), // compressed
        ("tiny".into(), Value::Float(1e-300)),
        ("nothing".into(), Value::Nil),
    ]
}

#[test]
fn values_cross_between_the_component_and_the_js_edge_package() {
    let test = "js-interop";
    let mut guest = guest();
    let cache = super::cache::open(&mut guest, &super::cache::standalone(), &in_namespace(test));
    for (key, value) in samples() {
        let key = format!("from-wasm/{key}");
        guest
            .set(cache, &key, &pack(&value), Some(60.0))
            .unwrap()
            .unwrap();
    }

    let job = json!({
        "endpoint": standalone_endpoint(),
        "namespace": namespace(test),
        "read": samples().iter().map(|(k, _)| format!("from-wasm/{k}")).collect::<Vec<_>>(),
        "write": samples().iter().map(|(k, v)| json!([format!("from-js/{k}"), to_typed(v)])).collect::<Vec<_>>(),
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js/test/interop.mjs");
    let mut node = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    node.stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("job written");
    let output = node.wait_with_output().expect("node finishes");
    assert!(
        output.status.success(),
        "{script:?} failed (is bindings-wasm/js/pkg built? `make test-wasm`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Json = serde_json::from_slice(&output.stdout).expect("JSON from interop.mjs");

    for (key, value) in samples() {
        // The component wrote it, JS read it.
        let read = &report["read"][format!("from-wasm/{key}")];
        assert!(!read.is_null(), "JS found no from-wasm/{key}");
        assert_eq!(typed(read), value, "JS reads from-wasm/{key}");
        // JS wrote it, the component reads it.
        let got = guest
            .get(cache, &format!("from-js/{key}"))
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(pack(&value)), "the component reads from-js/{key}");
    }
}
