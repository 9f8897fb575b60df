//! The component's exports against `tests/vectors/contract.json`, read from the compiled
//! component with wasmtime's type introspection: every described function (kebab-case) in
//! the interface its `module` names, with those parameter names, order and types, records
//! field by field; nothing else exported there; and each example call gives its result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use polycache::Value;
use polycache_wasm_host::{Codec, Compression, EnvelopeOptions, Guest, Node};
use serde_json::{json, Value as Json};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};

use crate::{guest, host, pack, unpack};

fn description() -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/contract.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("contract.json is JSON")
}

fn kebab(name: &str) -> String {
    name.replace('_', "-")
}

/// A component type as WIT spells it; records, variants and resources by kind only.
fn spell(ty: &Type) -> String {
    let join = |types: Vec<String>| types.join(", ");
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S64 => "s64".into(),
        Type::Float64 => "f64".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", spell(&list.ty())),
        Type::Tuple(tuple) => format!(
            "tuple<{}>",
            join(tuple.types().map(|t| spell(&t)).collect())
        ),
        Type::Option(option) => format!("option<{}>", spell(&option.ty())),
        Type::Result(result) => format!(
            "result<{}, {}>",
            result.ok().map_or("_".into(), |t| spell(&t)),
            result.err().map_or("_".into(), |t| spell(&t))
        ),
        Type::Record(_) => "record".into(),
        Type::Enum(e) => format!("enum<{}>", join(e.names().map(str::to_owned).collect())),
        Type::Variant(_) => "variant".into(),
        Type::Own(_) => "own".into(),
        Type::Borrow(_) => "borrow".into(),
        other => format!("{other:?}"),
    }
}

/// The record inside a type (itself, or a list's element).
fn record_of(ty: &Type) -> Option<wasmtime::component::types::Record> {
    match ty {
        Type::Record(r) => Some(r.clone()),
        Type::List(l) => record_of(&l.ty()),
        _ => None,
    }
}

struct Checker {
    doc: Json,
    problems: Vec<String>,
}

impl Checker {
    fn wit_type(&self, ty: &str) -> String {
        self.doc["types"][ty]["wit"]
            .as_str()
            .unwrap_or_else(|| panic!("type {ty} has no WIT spelling"))
            .to_owned()
    }

    /// A described type against a component type, records field by field.
    fn check_type(&mut self, what: &str, described: &str, ty: &Type) {
        let want = self.wit_type(described);
        if spell(ty) != want {
            self.problems
                .push(format!("{what} is {}, described {want}", spell(ty)));
            return;
        }
        let Some(fields) = self.doc["records"][described].as_array().cloned() else {
            return;
        };
        let record = record_of(ty).expect("a record type");
        let got: Vec<(String, String)> = record
            .fields()
            .map(|f| (f.name.to_owned(), spell(&f.ty)))
            .collect();
        let want: Vec<(String, String)> = fields
            .iter()
            .map(|f| {
                let ty = f["type"].as_str().unwrap();
                let wit = self.doc["field_types"][ty]["wit"].as_str().unwrap();
                (kebab(f["name"].as_str().unwrap()), wit.to_owned())
            })
            .collect();
        if got != want {
            self.problems
                .push(format!("{what}: record fields {got:?}, described {want:?}"));
        }
    }

    /// A described function or method against an exported function; `receiver` for
    /// methods, whose first parameter is `self`.
    fn check_func(&mut self, what: &str, described: &Json, func: &ComponentFunc, receiver: bool) {
        let mut params: Vec<(String, Type)> =
            func.params().map(|(n, t)| (n.to_owned(), t)).collect();
        if receiver {
            if params.first().map(|(n, _)| n.as_str()) != Some("self") {
                self.problems.push(format!("{what} has no self"));
                return;
            }
            params.remove(0);
        }
        let described_params = described["params"].as_array().expect("params");
        let want: Vec<String> = described_params
            .iter()
            .map(|p| kebab(p["name"].as_str().unwrap()))
            .collect();
        let got: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
        if want != got {
            self.problems
                .push(format!("{what}: parameters {got:?}, described {want:?}"));
            return;
        }
        let mut takes_value = false;
        for (p, (name, ty)) in described_params.iter().zip(&params) {
            let ty_name = p["type"].as_str().unwrap();
            takes_value |= matches!(ty_name, "value" | "values" | "named_values");
            self.check_type(&format!("{what}({name})"), ty_name, ty);
        }
        let results: Vec<Type> = func.results().collect();
        let [result] = results.as_slice() else {
            self.problems
                .push(format!("{what} returns {} values", results.len()));
            return;
        };
        // WIT has no exceptions: a function that fails, or that takes MessagePack that may
        // be invalid, returns result<T, error>.
        let fails = described["fails"].as_bool().unwrap_or(false) || takes_value;
        let inner = match (fails, result) {
            (true, Type::Result(r)) if r.err().is_some_and(|e| spell(&e) == "variant") => r.ok(),
            (true, _) => {
                self.problems
                    .push(format!("{what} returns {}, not a result", spell(result)));
                return;
            }
            (false, _) => Some(result.clone()),
        };
        match (described["result"].as_str(), inner) {
            (Some(ty_name), Some(ty)) => self.check_type(&format!("{what} result"), ty_name, &ty),
            // A constructor: a new resource.
            (None, Some(Type::Own(_))) => {}
            (_, ty) => self.problems.push(format!("{what} returns {ty:?}")),
        }
    }
}

/// The exported functions of interface `module`, by name.
fn interface_functions(module: &str) -> BTreeMap<String, ComponentFunc> {
    let host = host();
    let component = host.component_type();
    let engine = host.engine();
    let prefix = format!("polycache:cache/{module}@");
    let (_, export) = component
        .exports(engine)
        .find(|(name, _)| name.starts_with(&prefix))
        .unwrap_or_else(|| panic!("the component exports no interface {module}"));
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        panic!("{module} is not an instance");
    };
    instance
        .exports(engine)
        .filter_map(|(name, item)| match item.ty {
            ComponentItem::ComponentFunc(f) => Some((name.to_owned(), f)),
            _ => None,
        })
        .collect()
}

#[test]
fn exports_match_the_contract_description() {
    let mut checker = Checker {
        doc: description(),
        problems: Vec::new(),
    };
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let functions = checker.doc["functions"].as_array().unwrap().clone();
    for f in &functions {
        let module = f["module"].as_str().unwrap();
        let name = kebab(f["name"].as_str().unwrap());
        expected
            .entry(module.to_owned())
            .or_default()
            .push(name.clone());
        match interface_functions(module).get(&name) {
            None => checker
                .problems
                .push(format!("{module}.{name} is not exported")),
            Some(func) => checker.check_func(&format!("{module}.{name}"), f, func, false),
        }
    }
    let classes = checker.doc["classes"].as_array().unwrap().clone();
    for class in &classes {
        let module = class["module"].as_str().unwrap();
        let resource = kebab(class["name"].as_str().unwrap());
        let exported = interface_functions(module);
        for m in class["methods"].as_array().unwrap() {
            let (name, receiver) = match m["kind"].as_str().unwrap() {
                "constructor" => (format!("[static]{resource}.build"), false),
                _ => (
                    format!("[method]{resource}.{}", kebab(m["name"].as_str().unwrap())),
                    true,
                ),
            };
            expected
                .entry(module.to_owned())
                .or_default()
                .push(name.clone());
            match exported.get(&name) {
                None => checker
                    .problems
                    .push(format!("{module}: {name} is not exported")),
                Some(func) => checker.check_func(&name, m, func, receiver),
            }
        }
    }
    for (module, names) in &expected {
        for name in interface_functions(module).keys() {
            if !names.contains(name) {
                checker
                    .problems
                    .push(format!("{module}.{name} is exported but not described"));
            }
        }
    }
    assert!(
        checker.problems.is_empty(),
        "{}",
        checker.problems.join("\n")
    );
}

/// The WIT `metrics` record has exactly the fields of core's `MetricsSnapshot` (the other
/// bindings show the snapshot's serde names; kebab-case here), so a new counter in core
/// shows up in the component too.
#[test]
fn the_metrics_record_has_every_counter_of_core() {
    let snapshot = serde_json::to_value(polycache::MetricsSnapshot::default()).unwrap();
    let want: BTreeSet<String> = snapshot
        .as_object()
        .unwrap()
        .keys()
        .map(|camel| {
            camel.chars().fold(String::new(), |mut kebab, c| {
                if c.is_ascii_uppercase() {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
                kebab
            })
        })
        .collect();
    let metrics = &interface_functions("cache")["[method]cache.metrics"];
    let record = metrics
        .results()
        .find_map(|ty| record_of(&ty))
        .expect("metrics returns a record");
    let got: BTreeSet<String> = record.fields().map(|f| f.name.to_owned()).collect();
    assert_eq!(got, want);
}

/// A value from the description's plain JSON.
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

fn values(v: &Json) -> Vec<Vec<u8>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| pack(&value(v)))
        .collect()
}

fn named(v: &Json) -> Vec<(String, Vec<u8>)> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), pack(&value(v))))
        .collect()
}

fn text(v: &Json) -> &str {
    v.as_str().expect("string")
}

/// The record's defaults with the example's fields on top.
fn envelope_options(v: &Json) -> EnvelopeOptions {
    EnvelopeOptions {
        codec: Codec::Msgpack,
        compression: Compression::Lz4,
        compress_threshold: 1024,
        created_at: v["created_at"].as_u64().unwrap_or(0),
        fresh_until: v["fresh_until"].as_u64().unwrap_or(0),
        schema: v["schema"].as_str().map(str::to_owned),
        tags: v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| text(t).to_owned())
            .collect(),
    }
}

fn plain(v: &Value) -> Json {
    match v {
        Value::Str(s) => Json::from(s.as_str()),
        other => panic!("no plain JSON for {other:?}"),
    }
}

/// Calls an exported function with the example's arguments (typed, so a changed WIT
/// signature does not compile).
fn call(guest: &mut Guest, name: &str, a: &[Json]) -> Json {
    match name {
        "encode_envelope" => {
            let bytes = guest.encode(&pack(&value(&a[0])), &envelope_options(&a[1]));
            json!({ "hex": hex::encode(bytes.unwrap().unwrap()) })
        }
        "decode_envelope" => {
            let bytes = hex::decode(text(&a[0]["hex"])).unwrap();
            let e = guest.decode(&bytes).unwrap().unwrap();
            json!({
                "value": plain(&unpack(&e.value)),
                "codec": match e.codec {
                    Codec::Bytes => "bytes",
                    Codec::Msgpack => "msgpack",
                    Codec::Json => "json",
                },
                "compression": match e.compression {
                    Compression::None => "none",
                    Compression::Lz4 => "lz4",
                },
                "created_at": e.created_at,
                "fresh_until": e.fresh_until,
                "schema": e.schema,
                "tags": e.tags,
                "not_found": e.not_found,
            })
        }
        "redis_key" => {
            let max = a[2].as_u64().unwrap() as u32;
            Json::from(
                guest
                    .schema_key(text(&a[0]), text(&a[1]), max, text(&a[3]))
                    .unwrap()
                    .unwrap(),
            )
        }
        "lock_key" => Json::from(guest.lock_key(text(&a[0])).unwrap()),
        "hash_tag" => Json::from(guest.hash_tag(text(&a[0])).unwrap()),
        "slot" => Json::from(guest.slot(text(&a[0])).unwrap()),
        "render_key" => Json::from(
            guest
                .render_key(text(&a[0]), &values(&a[1]), &named(&a[2]))
                .unwrap()
                .unwrap(),
        ),
        "call_key" => Json::from(
            guest
                .call_key(text(&a[0]), &values(&a[1]), &named(&a[2]))
                .unwrap()
                .unwrap(),
        ),
        "resolve_config" => Json::from(
            guest
                .resolve_config(text(&a[0]), text(&a[1]))
                .unwrap()
                .unwrap(),
        ),
        "should_refresh_early" => Json::from(
            guest
                .should_refresh_early(
                    a[0].as_u64().unwrap(),
                    a[1].as_u64().unwrap(),
                    a[2].as_u64().unwrap(),
                    a[3].as_f64().unwrap(),
                    a[4].as_f64().unwrap(),
                )
                .unwrap(),
        ),
        other => panic!("contract.json describes {other}; call it here"),
    }
}

#[test]
fn contract_examples_give_their_results() {
    let doc = description();
    let mut guest = guest();
    for f in doc["functions"].as_array().unwrap() {
        let example = &f["example"];
        let got = call(
            &mut guest,
            text(&f["name"]),
            example["args"].as_array().unwrap(),
        );
        assert_eq!(got, example["result"], "{}", f["name"]);
    }
    let class = &doc["classes"][0];
    assert_eq!(class["name"], "ring");
    let nodes: Vec<Node> = class["example_args"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| Node {
            name: text(&n["name"]).to_owned(),
            weight: n["weight"].as_u64().unwrap() as u32,
        })
        .collect();
    let ring = guest.ring(&nodes).unwrap().unwrap();
    for m in class["methods"].as_array().unwrap() {
        let a = m["example"]["args"].as_array().cloned().unwrap_or_default();
        let got = match text(&m["name"]) {
            "new" => continue,
            "node_for" => Json::from(guest.node_for(ring, text(&a[0])).unwrap()),
            "len" => Json::from(guest.ring_len(ring).unwrap()),
            "head" => json!(guest
                .ring_head(ring, a[0].as_u64().unwrap() as u32)
                .unwrap()),
            other => panic!("contract.json describes ring.{other}; call it here"),
        };
        assert_eq!(got, m["example"]["result"], "ring.{}", m["name"]);
    }
}
