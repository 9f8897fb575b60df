//! Freshness in JS: the `Entry` object `getEntry` resolves to (index.d.ts, `Entry<T>`).

use napi::{sys, Env, Result};
use polycache::{Loaded, Value};

use crate::value;

/// `{ value, stale, freshness, age }`: `age` in seconds, `null` when unknown.
pub fn entry_to_js(env: &Env, loaded: &Loaded) -> Result<sys::napi_value> {
    let age = loaded
        .age
        .map_or(Value::Nil, |age| Value::Float(age.as_secs_f64()));
    let entry = Value::Map(
        [
            ("value", loaded.value.clone()),
            ("stale", Value::Bool(loaded.stale())),
            ("freshness", Value::from(loaded.freshness.as_str())),
            ("age", age),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect(),
    );
    value::to_js(env, &entry)
}
