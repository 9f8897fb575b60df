//! The key schema (docs/FORMAT.md §3): `<prefix>:<namespace>:{<key>}`. Pure.

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// Number of Redis Cluster hash slots.
pub const SLOTS: u16 = 16384;

/// Turns user keys into Redis keys. One per cache; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    /// Text before the namespace, shared by everything polycache writes (`pc`).
    prefix: String,
    namespace: String,
    max_key_length: usize,
    /// `<prefix>:<namespace>:{`, built once so a key costs one allocation.
    head: String,
}

impl KeySchema {
    /// A schema with the given prefix, namespace and maximum user-key length in bytes.
    ///
    /// # Errors
    /// A config error when the prefix or namespace is empty or contains `{` or `}`.
    pub fn new(prefix: &str, namespace: &str, max_key_length: usize) -> Result<Self> {
        for (what, text) in [("prefix", prefix), ("namespace", namespace)] {
            if text.is_empty() {
                return Err(Error::config(format!("the key {what} must not be empty")));
            }
            if text.contains(['{', '}']) {
                return Err(Error::config(format!(
                    "the key {what} {text:?} must not contain '{{' or '}}' (they mark the cluster hash tag)"
                )));
            }
        }
        Ok(KeySchema {
            prefix: prefix.to_owned(),
            namespace: namespace.to_owned(),
            max_key_length,
            head: format!("{prefix}:{namespace}:{{"),
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key for a user key.
    ///
    /// # Errors
    /// A key error for an empty key.
    pub fn redis_key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(Error::new(ErrorKind::Key, "cache keys must not be empty"));
        }
        let mut out = String::with_capacity(self.head.len() + key.len().min(65) + 1);
        out.push_str(&self.head);
        // A key starting with `}` would leave an empty hash tag, so Redis would hash the
        // whole key and its lock would land elsewhere: such keys are hashed like long ones.
        if key.len() > self.max_key_length || key.starts_with('}') {
            out.push('#');
            for byte in Sha256::digest(key.as_bytes()) {
                out.push(char::from(HEX[(byte >> 4) as usize]));
                out.push(char::from(HEX[(byte & 0xf) as usize]));
            }
        } else {
            out.push_str(key);
        }
        out.push('}');
        Ok(out)
    }

    /// The stampede-lock key that goes with a Redis key (same hash tag, same slot).
    pub fn lock_key(redis_key: &str) -> String {
        format!("{redis_key}:lock")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The Redis Cluster hash tag of a Redis key: the bytes between the first `{` and the next
/// `}` when that is non-empty, otherwise the whole key.
pub fn hash_tag(redis_key: &[u8]) -> &[u8] {
    if let Some(open) = redis_key.iter().position(|&b| b == b'{') {
        if let Some(len) = redis_key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &redis_key[open + 1..open + 1 + len];
            }
        }
    }
    redis_key
}

/// The Redis Cluster slot of a Redis key: CRC16-XMODEM of its hash tag, mod 16384.
pub fn slot(redis_key: &[u8]) -> u16 {
    crc16(hash_tag(redis_key)) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_redis_cluster_spec() {
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
    }

    #[test]
    fn value_and_lock_share_a_slot() {
        let schema = KeySchema::new("pc", "default", 200).unwrap();
        for key in ["a", "a}b", "}", "}a", "{x}", "a{b", &"k".repeat(500)] {
            let redis_key = schema.redis_key(key).unwrap();
            assert_eq!(
                slot(redis_key.as_bytes()),
                slot(KeySchema::lock_key(&redis_key).as_bytes())
            );
        }
    }
}
