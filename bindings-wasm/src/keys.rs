//! The `keys` interface: core's key schema, cluster slots and function keys
//! (docs/FORMAT.md §3 and §5).

use std::collections::BTreeMap;

use polycache::key::{hash_tag, slot};
use polycache::{call_key, KeySchema, KeyTemplate};

use crate::bindings::exports::polycache::cache::keys::Guest;
use crate::bindings::polycache::cache::types::Error as WitError;
use crate::errors::wit;
use crate::{value, Component};

impl Guest for Component {
    fn redis_key(
        prefix: String,
        namespace: String,
        max_key_length: u32,
        key: String,
    ) -> Result<String, WitError> {
        wit(KeySchema::new(&prefix, &namespace, max_key_length as usize)
            .and_then(|schema| schema.redis_key(&key)))
    }

    fn lock_key(redis_key: String) -> String {
        KeySchema::lock_key(&redis_key)
    }

    fn hash_tag(redis_key: String) -> String {
        // `{` and `}` are ASCII, so the tag of a UTF-8 key is UTF-8.
        String::from_utf8_lossy(hash_tag(redis_key.as_bytes())).into_owned()
    }

    fn slot(redis_key: String) -> u16 {
        slot(redis_key.as_bytes())
    }

    fn render_template(
        template: String,
        args: Vec<Vec<u8>>,
        named: Vec<(String, Vec<u8>)>,
    ) -> Result<String, WitError> {
        let args = wit(value::list_from_wit(&args))?;
        let named = named
            .into_iter()
            .map(|(name, v)| value::from_wit(&v).map(|v| (name, v)))
            .collect::<polycache::Result<BTreeMap<_, _>>>();
        let named = wit(named)?;
        wit(KeyTemplate::parse(&template).and_then(|t| t.render(&args, &named)))
    }

    fn call_key(function: String, args: Vec<Vec<u8>>) -> Result<String, WitError> {
        let args = wit(value::list_from_wit(&args))?;
        Ok(call_key(&function, &args))
    }
}
