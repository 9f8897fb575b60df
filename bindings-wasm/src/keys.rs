//! The `keys` interface: core's key schema, cluster slots and function keys
//! (docs/FORMAT.md §3 and §5), through `polycache::contract`.

use std::collections::BTreeMap;

use polycache::contract;
use polycache::Value;

use crate::bindings::exports::polycache::cache::keys::Guest;
use crate::bindings::polycache::cache::types::Error as WitError;
use crate::errors::wit;
use crate::{value, Component};

/// Named arguments from their WIT form (name, MessagePack value).
fn named_values(named: Vec<(String, Vec<u8>)>) -> Result<BTreeMap<String, Value>, WitError> {
    wit(named
        .into_iter()
        .map(|(name, v)| value::from_wit(&v).map(|v| (name, v)))
        .collect())
}

impl Guest for Component {
    fn redis_key(
        prefix: String,
        namespace: String,
        max_key_length: u32,
        key: String,
    ) -> Result<String, WitError> {
        wit(contract::redis_key(
            &prefix,
            &namespace,
            max_key_length as usize,
            &key,
        ))
    }

    fn lock_key(redis_key: String) -> String {
        contract::lock_key(&redis_key)
    }

    fn hash_tag(redis_key: String) -> String {
        contract::hash_tag(&redis_key).to_owned()
    }

    fn slot(redis_key: String) -> u16 {
        contract::slot(&redis_key)
    }

    fn render_key(
        template: String,
        args: Vec<Vec<u8>>,
        named: Vec<(String, Vec<u8>)>,
    ) -> Result<String, WitError> {
        let args = wit(value::list_from_wit(&args))?;
        let named = named_values(named)?;
        wit(contract::render_key(&template, &args, &named))
    }

    fn call_key(
        function_name: String,
        args: Vec<Vec<u8>>,
        named: Vec<(String, Vec<u8>)>,
    ) -> Result<String, WitError> {
        let args = wit(value::list_from_wit(&args))?;
        let named = named_values(named)?;
        Ok(contract::call_key(&function_name, &args, &named))
    }
}
