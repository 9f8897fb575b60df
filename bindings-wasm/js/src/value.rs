//! JS values <-> core's [`Value`], by FORMAT.md §2's Node column: `null` (and `undefined`
//! inside arrays and objects) is nil, a `number` follows core's JS rule (`codec::js`, shared
//! with the Node package), a `bigint` is an integer of at most 64 bits, a `Uint8Array` (or
//! `Buffer`) is bytes, arrays are arrays and plain objects are maps. Nesting is bounded by
//! core's limit (`msgpack::MAX_DEPTH`). Anything else is a `TypeError` with code `ECODEC`.

use js_sys::{Array, BigInt, Object, Reflect, Uint8Array};
use polycache::codec::{js, Map};
use polycache::Value;
use wasm_bindgen::{JsCast, JsValue};

use crate::errors::type_error;

/// Deeper nesting (or a cycle) is refused: what no reader accepts is not written.
const MAX_DEPTH: usize = polycache::codec::msgpack::MAX_DEPTH;

/// A value from JS.
pub(crate) fn from_js(value: &JsValue) -> Result<Value, JsValue> {
    read(value, 0)
}

/// Several values from a JS array.
pub(crate) fn list_from_js(values: &JsValue) -> Result<Vec<Value>, JsValue> {
    if !Array::is_array(values) {
        return Err(type_error("expected an array of values"));
    }
    Array::from(values).iter().map(|v| read(&v, 1)).collect()
}

fn number(n: f64) -> Value {
    match js::number(n) {
        js::Number::Int(i) => Value::Int(i),
        js::Number::Float(f) => Value::Float(f),
    }
}

fn read(value: &JsValue, depth: usize) -> Result<Value, JsValue> {
    if depth > MAX_DEPTH {
        return Err(type_error("value nested too deeply (or cyclic)"));
    }
    if value.is_null() {
        return Ok(Value::Nil);
    }
    if value.is_undefined() {
        return if depth > 0 {
            Ok(Value::Nil)
        } else {
            Err(type_error(
                "undefined cannot be cached (use null for an empty value)",
            ))
        };
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = value.as_f64() {
        return Ok(number(n));
    }
    if let Some(s) = value.as_string() {
        return Ok(Value::Str(s));
    }
    if value.is_bigint() {
        return bigint(value);
    }
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(Value::Bytes(bytes.to_vec()));
    }
    if Array::is_array(value) {
        return Array::from(value)
            .iter()
            .map(|item| read(&item, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if value.is_object() && !value.is_function() && is_plain(value) {
        let object: &Object = value.unchecked_ref();
        let mut map = Map::new();
        for key in Object::keys(object).iter() {
            let name = key.as_string().unwrap_or_default();
            let item = Reflect::get(object, &key)?;
            map.insert(name, read(&item, depth + 1)?);
        }
        return Ok(Value::Map(map));
    }
    Err(type_error(
        "this kind of value cannot be cached (functions, symbols, class instances, Date, Map …)",
    ))
}

/// Whether an object's prototype is `Object.prototype` or `null`.
fn is_plain(value: &JsValue) -> bool {
    let proto = Object::get_prototype_of(value);
    proto.is_null() || proto == Object::get_prototype_of(&Object::new())
}

fn bigint(value: &JsValue) -> Result<Value, JsValue> {
    if let Ok(i) = i64::try_from(value.clone()) {
        return Ok(Value::Int(i));
    }
    u64::try_from(value.clone())
        .map(Value::from)
        .map_err(|_| type_error("a bigint outside -2^63 … 2^64-1 cannot be cached"))
}

/// A value for JS: integers beyond `Number.MAX_SAFE_INTEGER` become `bigint`, bytes a
/// `Uint8Array`, maps plain objects (in the map's order). Containers that JSON holds
/// exactly for JS are made by `JSON.parse` of core's [`js::JsonText`], as in the Node package.
pub(crate) fn to_js(value: &Value) -> JsValue {
    if matches!(value, Value::Array(_) | Value::Map(_)) {
        let mut text = js::JsonText::default();
        if value.build_into(&mut text).is_ok() {
            if let Some(parsed) = text
                .finish()
                .ok()
                .and_then(|t| String::from_utf8(t).ok())
                .and_then(|t| js_sys::JSON::parse(&t).ok())
            {
                return parsed;
            }
        }
    }
    to_js_direct(value)
}

fn to_js_direct(value: &Value) -> JsValue {
    match value {
        Value::Nil => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Int(i) if js::is_safe(*i) => JsValue::from_f64(*i as f64),
        Value::Int(i) => BigInt::from(*i).into(),
        Value::UInt(u) => BigInt::from(*u).into(),
        Value::Float(f) => JsValue::from_f64(*f),
        Value::Str(s) => JsValue::from_str(s),
        Value::Bytes(b) => Uint8Array::from(b.as_slice()).into(),
        Value::Array(items) => items.iter().map(to_js_direct).collect::<Array>().into(),
        // `Object.fromEntries` defines own properties, so a key such as `__proto__` stays
        // data instead of changing the object's prototype.
        Value::Map(map) => {
            let entries: Array = map
                .iter()
                .map(|(key, item)| Array::of2(&JsValue::from_str(key), &to_js_direct(item)))
                .collect();
            Object::from_entries(&entries).map_or(JsValue::NULL, JsValue::from)
        }
    }
}
