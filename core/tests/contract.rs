//! The contract API of `polycache::contract` against `tests/vectors/contract.json`: every
//! described function exists with those parameter names, order and types (read from the
//! source with syn), nothing else is public there, and each one called with the
//! description's example gives its result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polycache::contract::{self, EnvelopeOptions, Node, Ring};
use polycache::Value;
use quote::ToTokens;
use serde_json::{json, Value as Json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn description() -> Json {
    let path = repo().join("tests/vectors/contract.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("contract.json is JSON")
}

/// A Rust type as text without spaces (`&BTreeMap<String,Value>`).
fn spelled(ty: &impl ToTokens) -> String {
    ty.to_token_stream()
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// A public function's receiver, parameters (name, type) and result type.
#[derive(Debug)]
struct Signature {
    receiver: Option<String>,
    params: Vec<(String, String)>,
    result: String,
}

fn signature(sig: &syn::Signature) -> Signature {
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => receiver = Some(spelled(r)),
            syn::FnArg::Typed(t) => params.push((spelled(&t.pat), spelled(&t.ty))),
        }
    }
    let result = match &sig.output {
        syn::ReturnType::Default => "()".to_owned(),
        syn::ReturnType::Type(_, ty) => spelled(ty),
    };
    Signature {
        receiver,
        params,
        result,
    }
}

fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{file:?}: {e}"))
}

fn is_pub(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

/// The public free functions of a module file.
fn free_functions(file: &syn::File) -> BTreeMap<String, Signature> {
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Fn(f) if is_pub(&f.vis) => {
                Some((f.sig.ident.to_string(), signature(&f.sig)))
            }
            _ => None,
        })
        .collect()
}

/// The public methods of `impl <type_name>` blocks in a module file.
fn methods(file: &syn::File, type_name: &str) -> BTreeMap<String, Signature> {
    let mut out = BTreeMap::new();
    for item in &file.items {
        let syn::Item::Impl(block) = item else {
            continue;
        };
        if block.trait_.is_some() || spelled(&block.self_ty) != type_name {
            continue;
        }
        for item in &block.items {
            if let syn::ImplItem::Fn(f) = item {
                if is_pub(&f.vis) {
                    out.insert(f.sig.ident.to_string(), signature(&f.sig));
                }
            }
        }
    }
    out
}

/// The Rust spellings the description accepts for a type.
fn spellings(doc: &Json, ty: &str) -> Vec<String> {
    doc["types"][ty]["rust"]
        .as_array()
        .unwrap_or_else(|| panic!("type {ty} has no Rust spelling"))
        .iter()
        .map(|s| s.as_str().expect("spelling").replace(' ', ""))
        .collect()
}

/// Checks one described function against a found signature; returns the mismatches.
fn compare(
    doc: &Json,
    what: &str,
    described: &Json,
    found: &Signature,
    result: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let params = described["params"].as_array().expect("params");
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let found_names: Vec<&str> = found.params.iter().map(|(n, _)| n.as_str()).collect();
    if names != found_names {
        problems.push(format!(
            "{what}: parameters {found_names:?}, described {names:?}"
        ));
    }
    for (p, (name, ty)) in params.iter().zip(&found.params) {
        let want = spellings(doc, p["type"].as_str().unwrap());
        if !want.contains(ty) {
            problems.push(format!(
                "{what}: parameter {name} is {ty}, described {want:?}"
            ));
        }
    }
    let want: Vec<String> = if result == "Self" {
        vec!["Self".to_owned()]
    } else {
        spellings(doc, result)
    };
    let want: Vec<String> = if described["fails"].as_bool().unwrap_or(false) {
        want.iter().map(|t| format!("Result<{t}>")).collect()
    } else {
        want
    };
    if !want.contains(&found.result) {
        problems.push(format!(
            "{what}: returns {}, described {want:?}",
            found.result
        ));
    }
    problems
}

#[test]
fn contract_module_matches_the_description() {
    let doc = description();
    let mut problems = Vec::new();

    let module = free_functions(&parse(&repo().join("core/src/contract.rs")));
    let functions = doc["functions"].as_array().expect("functions");
    for f in functions {
        let name = f["name"].as_str().unwrap();
        match module.get(name) {
            None => problems.push(format!("contract::{name} is missing")),
            Some(sig) => {
                let result = f["result"].as_str().unwrap();
                problems.extend(compare(&doc, name, f, sig, result));
            }
        }
    }
    for name in module.keys() {
        if !functions.iter().any(|f| f["name"] == name.as_str()) {
            problems.push(format!(
                "contract::{name} is public but not in contract.json"
            ));
        }
    }

    for class in doc["classes"].as_array().expect("classes") {
        let class_name = class["name"].as_str().unwrap();
        // Classes live in core/src/<name>.rs; the Rust type is the name in UpperCamelCase.
        let type_name = class_name
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect::<String>();
        let found = methods(
            &parse(&repo().join(format!("core/src/{class_name}.rs"))),
            &type_name,
        );
        for m in class["methods"].as_array().expect("methods") {
            let name = m["name"].as_str().unwrap();
            let what = format!("{type_name}::{name}");
            let Some(sig) = found.get(name) else {
                problems.push(format!("{what} is missing"));
                continue;
            };
            match m["kind"].as_str().unwrap() {
                "constructor" => {
                    if sig.receiver.is_some() {
                        problems.push(format!("{what} takes self"));
                    }
                    problems.extend(compare(&doc, &what, m, sig, "Self"));
                }
                "method" | "length" => {
                    if sig.receiver.as_deref() != Some("&self") {
                        problems.push(format!("{what} does not take &self"));
                    }
                    problems.extend(compare(&doc, &what, m, sig, m["result"].as_str().unwrap()));
                }
                other => problems.push(format!("{what}: unknown kind {other}")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A value from the description's plain JSON (strings, integers, arrays, maps).
fn value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map_or(Value::Float(n.as_f64().unwrap()), Value::Int),
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(value).collect()),
        Json::Object(o) => Value::Map(o.iter().map(|(k, v)| (k.clone(), value(v))).collect()),
    }
}

fn values(v: &Json) -> Vec<Value> {
    v.as_array().expect("array").iter().map(value).collect()
}

fn named(v: &Json) -> BTreeMap<String, Value> {
    v.as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), value(v)))
        .collect()
}

fn text(v: &Json) -> &str {
    v.as_str().expect("string")
}

fn size(v: &Json) -> usize {
    v.as_u64().expect("integer") as usize
}

fn hex_of(v: &Json) -> Vec<u8> {
    hex::decode(text(&v["hex"])).expect("hex")
}

fn envelope_options(v: &Json) -> EnvelopeOptions {
    let mut options = EnvelopeOptions::default();
    if let Some(at) = v["created_at"].as_u64() {
        options.created_at = at;
    }
    if let Some(tags) = v["tags"].as_array() {
        options.tags = tags.iter().map(|t| text(t).to_owned()).collect();
    }
    options
}

fn envelope_json(e: &contract::Envelope) -> Json {
    json!({
        "value": value_json(&e.value),
        "codec": serde_json::to_value(e.codec).unwrap(),
        "compression": serde_json::to_value(e.compression).unwrap(),
        "created_at": e.created_at,
        "fresh_until": e.fresh_until,
        "schema": e.schema,
        "tags": e.tags,
        "not_found": e.not_found,
    })
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::Str(s) => Json::from(s.as_str()),
        other => panic!("no plain JSON for {other:?}"),
    }
}

/// Calls a contract function with the example's arguments; the call is typed, so a
/// changed signature does not compile.
fn call(name: &str, a: &[Json]) -> Json {
    match name {
        "encode_envelope" => {
            let bytes = contract::encode_envelope(&value(&a[0]), &envelope_options(&a[1]));
            json!({ "hex": hex::encode(bytes.unwrap()) })
        }
        "decode_envelope" => envelope_json(&contract::decode_envelope(&hex_of(&a[0])).unwrap()),
        "redis_key" => Json::from(
            contract::redis_key(text(&a[0]), text(&a[1]), size(&a[2]), text(&a[3])).unwrap(),
        ),
        "lock_key" => Json::from(contract::lock_key(text(&a[0]))),
        "hash_tag" => Json::from(contract::hash_tag(text(&a[0]))),
        "slot" => Json::from(contract::slot(text(&a[0]))),
        "render_key" => {
            Json::from(contract::render_key(text(&a[0]), &values(&a[1]), &named(&a[2])).unwrap())
        }
        "call_key" => Json::from(contract::call_key(
            text(&a[0]),
            &values(&a[1]),
            &named(&a[2]),
        )),
        "resolve_config" => Json::from(contract::resolve_config(text(&a[0]), text(&a[1])).unwrap()),
        "should_refresh_early" => Json::from(contract::should_refresh_early(
            a[0].as_u64().unwrap(),
            a[1].as_u64().unwrap(),
            a[2].as_u64().unwrap(),
            a[3].as_f64().unwrap(),
            a[4].as_f64().unwrap(),
        )),
        other => panic!("contract.json describes {other}; call it here"),
    }
}

fn call_ring(ring: &Ring, name: &str, a: &[Json]) -> Json {
    match name {
        "node_for" => Json::from(ring.node_for(text(&a[0]))),
        "len" => Json::from(ring.len()),
        "head" => json!(ring.head(size(&a[0]))),
        other => panic!("contract.json describes Ring::{other}; call it here"),
    }
}

#[test]
fn contract_examples_give_their_results() {
    let doc = description();
    for f in doc["functions"].as_array().unwrap() {
        let example = &f["example"];
        let got = call(text(&f["name"]), example["args"].as_array().unwrap());
        assert_eq!(got, example["result"], "{}", f["name"]);
    }
    let ring_class = &doc["classes"][0];
    assert_eq!(ring_class["name"], "ring");
    let nodes: Vec<Node> = serde_json::from_value(ring_class["example_args"][0].clone()).unwrap();
    let ring = Ring::new(nodes).unwrap();
    for m in ring_class["methods"].as_array().unwrap() {
        if m["kind"] == "constructor" {
            continue;
        }
        let example = &m["example"];
        let got = call_ring(&ring, text(&m["name"]), example["args"].as_array().unwrap());
        assert_eq!(got, example["result"], "Ring::{}", m["name"]);
    }
}
