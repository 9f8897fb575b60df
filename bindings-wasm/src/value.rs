//! Values cross the WIT boundary as MessagePack (`type value = list<u8>`): decoded with
//! core's reader (any valid MessagePack of the value model), written canonically.

use polycache::codec::msgpack;
use polycache::{Result, Value};

/// A value from the caller's MessagePack; invalid input is a codec error.
pub(crate) fn from_wit(bytes: &[u8]) -> Result<Value> {
    msgpack::decode(bytes)
}

/// The canonical MessagePack of a value.
pub(crate) fn to_wit(value: &Value) -> Vec<u8> {
    msgpack::encode(value)
}

/// Several values from MessagePack.
pub(crate) fn list_from_wit(values: &[Vec<u8>]) -> Result<Vec<Value>> {
    values.iter().map(|v| from_wit(v)).collect()
}
