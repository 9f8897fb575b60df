//! One `Config` for every binding: a builder in Rust, kwargs in Python, a plain object in
//! Node (serde, camelCase, durations in seconds).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::{Codec, Compression, DecodeLimits, EncodeOptions};
use crate::error::{Error, Result};
use crate::key::KeySchema;
use crate::ring::Node;

/// Everything that shapes a cache. `Default` is the embedded in-process store.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[must_use]
pub struct Config {
    /// Where values live: `memory://`, `redis://`, `rediss://`, `redis+shards://`,
    /// `redis+cluster://` (see the README for the formats).
    pub url: String,
    /// First part of every Redis key.
    pub prefix: String,
    /// Second part of every Redis key; caches with different namespaces never collide.
    pub namespace: String,
    /// User keys longer than this many UTF-8 bytes are replaced by their SHA-256.
    pub max_key_length: usize,
    /// Time to live of a value when a call gives none; `None` keeps values until evicted.
    #[serde(with = "secs_opt")]
    pub ttl: Option<Duration>,
    /// Fraction (0–1) by which each TTL is randomly shortened, so keys written together do
    /// not expire together.
    pub jitter: f64,
    /// Payload codec for new values.
    pub codec: Codec,
    /// Compression for payloads of at least `compress_threshold` bytes.
    pub compression: Compression,
    /// Smallest payload worth compressing, in bytes.
    pub compress_threshold: usize,
    /// Read and write bare bytes without the envelope (for keys shared with non-polycache
    /// programs).
    pub raw: bool,
    /// Bound on establishing a connection to Redis.
    #[serde(with = "secs")]
    pub connect_timeout: Duration,
    /// Bound on every Redis command, from send to reply (retries included).
    #[serde(with = "secs")]
    pub command_timeout: Duration,
    /// Maximum number of entries of the in-process store.
    pub memory_capacity: u64,
    /// Largest payload a read accepts after decompression, in bytes (default 64 MiB). A
    /// stored value claiming more is a miss plus a decode error, before anything is
    /// allocated.
    pub max_payload_bytes: usize,
    /// Largest memory a decoded value may take, in bytes, counted while decoding as
    /// docs/FORMAT.md §1 describes (default 256 MiB). A larger value is a miss plus a
    /// decode error.
    pub max_value_bytes: usize,
}

/// Shows every option, with the URL's credentials redacted ([`crate::redact_url`]).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        shown["url"] = serde_json::Value::from(self.redacted_url());
        write!(f, "Config {shown}")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: "memory://".into(),
            prefix: "pc".into(),
            namespace: "default".into(),
            max_key_length: 200,
            ttl: Some(Duration::from_secs(300)),
            jitter: 0.0,
            codec: Codec::Msgpack,
            compression: Compression::Lz4,
            compress_threshold: 1024,
            raw: false,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            memory_capacity: 10_000,
            max_payload_bytes: crate::codec::DEFAULT_MAX_PAYLOAD_BYTES,
            max_value_bytes: crate::codec::DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl Config {
    /// A config for `url`, with options given as query parameters applied
    /// (`?namespace=users&ttl=60&commandTimeout=0.5`).
    ///
    /// # Errors
    /// A config error for an unknown scheme, a malformed host list or an unknown option.
    pub fn from_url(url: &str) -> Result<Self> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut config = Config {
            url: base.to_owned(),
            ..Config::default()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            config.set_option(name, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn set_option(&mut self, name: &str, value: &str) -> Result<()> {
        let bad = || Error::config(format!("invalid value {value:?} for URL option {name}"));
        let number = || value.parse::<f64>().map_err(|_| bad());
        let seconds = || number().and_then(|s| Duration::try_from_secs_f64(s).map_err(|_| bad()));
        let ttl = || number().and_then(crate::ttl::from_secs);
        match name {
            "prefix" => self.prefix = value.into(),
            "namespace" => self.namespace = value.into(),
            "maxKeyLength" => self.max_key_length = value.parse().map_err(|_| bad())?,
            "ttl" => self.ttl = Some(ttl()?).filter(|d| !d.is_zero()),
            "jitter" => self.jitter = number()?,
            "codec" => {
                self.codec =
                    serde_json::from_value(serde_json::Value::from(value)).map_err(|_| bad())?
            }
            "compression" => {
                self.compression =
                    serde_json::from_value(serde_json::Value::from(value)).map_err(|_| bad())?
            }
            "compressThreshold" => self.compress_threshold = value.parse().map_err(|_| bad())?,
            "raw" => self.raw = value.parse().map_err(|_| bad())?,
            "connectTimeout" => self.connect_timeout = seconds()?,
            "commandTimeout" => self.command_timeout = seconds()?,
            "capacity" | "memoryCapacity" => {
                self.memory_capacity = value.parse().map_err(|_| bad())?
            }
            "maxPayloadBytes" => self.max_payload_bytes = value.parse().map_err(|_| bad())?,
            "maxValueBytes" => self.max_value_bytes = value.parse().map_err(|_| bad())?,
            // Consumed by the sharded store when it opens.
            "weights" if self.url.contains("+shards://") => {
                self.url = format!("{}?weights={value}", self.url)
            }
            // Consumed by the Sentinel store when it opens.
            "replicaReads" if self.url.contains("+sentinel://") => {
                let on: bool = value.parse().map_err(|_| bad())?;
                self.url = format!("{}?replicaReads={on}", self.url)
            }
            _ => return Err(Error::config(format!("unknown URL option {name:?}"))),
        }
        Ok(())
    }

    /// Checks every field; [`crate::Cache`] calls this before opening a store.
    ///
    /// # Errors
    /// A config error naming the first invalid field.
    pub fn validate(&self) -> Result<()> {
        Target::parse(&self.url)?;
        self.key_schema()?;
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config("jitter must be between 0 and 1"));
        }
        if self.ttl.is_some_and(|ttl| ttl > crate::ttl::MAX) {
            return Err(Error::config(format!(
                "ttl must be at most {} s",
                crate::ttl::MAX.as_secs()
            )));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::config("timeouts must be greater than zero"));
        }
        if self.memory_capacity == 0 {
            return Err(Error::config("memoryCapacity must be at least 1"));
        }
        if self.max_payload_bytes == 0 || self.max_value_bytes == 0 {
            return Err(Error::config(
                "maxPayloadBytes and maxValueBytes must be at least 1",
            ));
        }
        Ok(())
    }

    /// The URL as it may be shown to humans: credentials replaced by `***`.
    pub fn redacted_url(&self) -> String {
        crate::redact_url(&self.url)
    }

    pub(crate) fn key_schema(&self) -> Result<KeySchema> {
        KeySchema::new(&self.prefix, &self.namespace, self.max_key_length)
    }

    /// The bounds every read applies to stored bytes.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_payload_bytes: self.max_payload_bytes,
            max_value_bytes: self.max_value_bytes,
        }
    }

    pub(crate) fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            codec: self.codec,
            compression: self.compression,
            compress_threshold: self.compress_threshold,
        }
    }

    /// Sets the URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }
    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }
    /// Sets the default TTL (`None`: no expiry).
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }
    /// Sets the TTL jitter fraction.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }
    /// Sets the codec.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }
    /// Sets the compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
    /// Sets the compression threshold in bytes.
    pub fn compress_threshold(mut self, bytes: usize) -> Self {
        self.compress_threshold = bytes;
        self
    }
    /// Switches raw mode (no envelope).
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Sets the command timeout.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }
    /// Sets the in-process store's capacity in entries.
    pub fn memory_capacity(mut self, entries: u64) -> Self {
        self.memory_capacity = entries;
        self
    }
    /// Sets the maximum user-key length in bytes.
    pub fn max_key_length(mut self, bytes: usize) -> Self {
        self.max_key_length = bytes;
        self
    }
    /// Sets the largest payload a read accepts after decompression, in bytes.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }
    /// Sets the largest memory a decoded value may take, in bytes.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }
}

/// Where a URL points, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Memory,
    /// One node; the URL is passed to redis-rs as is.
    Redis(String),
    /// Independent nodes behind the ring: per-node redis-rs URLs and ring nodes.
    Shards(Vec<(String, Node)>),
    /// Seed nodes of a Redis Cluster, as redis-rs URLs.
    Cluster(Vec<String>),
    /// A master found through Redis Sentinel.
    Sentinel(SentinelTarget),
}

/// `redis+sentinel://[user:pass@]s1:p1,s2:p2/<master name>[/<db>]`: the sentinels' addresses,
/// the name they monitor, and how to reach the data nodes (the credentials and database
/// are the data nodes'; the sentinels are asked without them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    pub(crate) sentinels: Vec<String>,
    pub(crate) master_name: String,
    /// `?replicaReads=true`: reads go to a replica (default false).
    pub(crate) replica_reads: bool,
    node_scheme: String,
    auth: String,
    db: String,
}

impl SentinelTarget {
    /// The redis-rs URL of the data node at `addr` (`host:port`).
    #[cfg(feature = "redis")]
    pub(crate) fn node_url(&self, addr: &str) -> String {
        format!("{}://{}{addr}{}", self.node_scheme, self.auth, self.db)
    }

    fn parse(url: &str, scheme: &str, rest: &str) -> Result<SentinelTarget> {
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let replica_reads = query.split('&').any(|p| p == "replicaReads=true");
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let mut parts = rest.split('/');
        let sentinels: Vec<String> = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        let master_name = parts.next().unwrap_or_default().to_owned();
        let db = parts.next().filter(|db| !db.is_empty());
        if sentinels.is_empty() || master_name.is_empty() || parts.next().is_some() {
            return Err(Error::config(format!(
                "{:?} is not a Sentinel URL (expected {scheme}://host:port,…/master-name[/db])",
                url.split_once('@').map_or(url, |(_, hosts)| hosts)
            )));
        }
        Ok(SentinelTarget {
            sentinels,
            master_name,
            replica_reads,
            node_scheme: scheme.split_once('+').map_or(scheme, |(s, _)| s).to_owned(),
            auth,
            db: db.map(|db| format!("/{db}")).unwrap_or_default(),
        })
    }
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            Error::config(format!(
                "{:?} is not a URL (expected scheme://…)",
                crate::redact_url(url)
            ))
        })?;
        match scheme {
            "memory" => Ok(Target::Memory),
            "redis" | "rediss" => Ok(Target::Redis(url.to_owned())),
            "redis+shards" | "rediss+shards" | "redis+cluster" | "rediss+cluster" => {
                let (node_scheme, kind) = scheme.split_once('+').unwrap_or((scheme, ""));
                let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
                let (auth, rest) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                let (hosts, db) = match rest.split_once('/') {
                    Some((hosts, db)) => (hosts, format!("/{db}")),
                    None => (rest, String::new()),
                };
                let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
                if hosts.is_empty() {
                    return Err(Error::config(format!(
                        "{:?} names no hosts",
                        crate::redact_url(url)
                    )));
                }
                let urls = hosts
                    .iter()
                    .map(|host| format!("{node_scheme}://{auth}{host}{db}"));
                if kind == "cluster" {
                    return Ok(Target::Cluster(urls.collect()));
                }
                let weights = parse_weights(query, hosts.len())?;
                Ok(Target::Shards(
                    urls.zip(hosts.iter().zip(weights))
                        .map(|(url, (host, weight))| {
                            (
                                url,
                                Node {
                                    name: (*host).to_owned(),
                                    weight,
                                },
                            )
                        })
                        .collect(),
                ))
            }
            "redis+sentinel" | "rediss+sentinel" => Ok(Target::Sentinel(SentinelTarget::parse(
                url, scheme, rest,
            )?)),
            other => Err(Error::config(format!(
                "unknown URL scheme {other:?} (expected memory, redis, rediss, redis+shards, redis+cluster, redis+sentinel)"
            ))),
        }
    }
}

fn parse_weights(query: &str, hosts: usize) -> Result<Vec<u32>> {
    let Some(list) = query.split('&').find_map(|p| p.strip_prefix("weights=")) else {
        return Ok(vec![1; hosts]);
    };
    let weights: Vec<u32> = list
        .split(',')
        .map(|w| w.parse().ok().filter(|&w| w > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::config(format!("invalid weights {list:?}")))?;
    if weights.len() != hosts {
        return Err(Error::config(format!(
            "{} weights given for {hosts} hosts",
            weights.len()
        )));
    }
    Ok(weights)
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

mod secs_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    /// `null` or `0` mean "no expiry".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(secs) => crate::ttl::from_secs(secs)
                .map(|d| Some(d).filter(|d| !d.is_zero()))
                .map_err(|e| serde::de::Error::custom(e.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls() {
        let t = Target::parse("redis+sentinel://:pw@a:1,b:2/mymaster/3").unwrap();
        let Target::Sentinel(t) = t else {
            panic!("not a sentinel target")
        };
        assert_eq!(t.sentinels, ["a:1", "b:2"]);
        assert_eq!(t.master_name, "mymaster");
        assert_eq!(t.node_url("m:9"), "redis://:pw@m:9/3");
        assert!(!t.replica_reads);
        let c = Config::from_url("redis+sentinel://a:1/m?replicaReads=true&ttl=5").unwrap();
        let Target::Sentinel(t) = Target::parse(&c.url).unwrap() else {
            panic!("not a sentinel target")
        };
        assert!(t.replica_reads);
        assert!(Config::from_url("redis://a:1?replicaReads=true").is_err());
        let t = Target::parse("rediss+sentinel://a:1/m").unwrap();
        let Target::Sentinel(t) = t else {
            panic!("not a sentinel target")
        };
        assert_eq!(t.node_url("m:9"), "rediss://m:9");
        for bad in [
            "redis+sentinel://a:1",
            "redis+sentinel://a:1/",
            "redis+sentinel:///m",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let err = Target::parse("redis+sentinel://:secret@a:1").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn url_options_and_host_lists() {
        let c = Config::from_url("redis://127.0.0.1:6379/0?namespace=users&ttl=60").unwrap();
        assert_eq!(c.namespace, "users");
        assert_eq!(c.ttl, Some(Duration::from_secs(60)));
        assert_eq!(c.url, "redis://127.0.0.1:6379/0");

        let t = Target::parse("redis+shards://:pw@a:1,b:2/3?weights=1,2").unwrap();
        let Target::Shards(nodes) = t else {
            panic!("not shards")
        };
        assert_eq!(nodes[0].0, "redis://:pw@a:1/3");
        assert_eq!(
            nodes[1].1,
            Node {
                name: "b:2".into(),
                weight: 2
            }
        );

        assert!(Config::from_url("mongodb://x").is_err());
        assert!(Config::from_url("redis://x?bogus=1").is_err());
        assert!(Config::from_url("redis+shards://a:1,b:2?weights=1").is_err());
    }

    #[test]
    fn serde_uses_camel_case_and_seconds() {
        let c: Config =
            serde_json::from_str(r#"{"url":"memory://","commandTimeout":0.25,"ttl":null}"#)
                .unwrap();
        assert_eq!(c.command_timeout, Duration::from_millis(250));
        assert_eq!(c.ttl, None);
        assert!(serde_json::from_str::<Config>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn decode_caps_have_safe_defaults_and_every_spelling() {
        let d = Config::default();
        assert_eq!(d.max_payload_bytes, 64 << 20);
        assert_eq!(d.max_value_bytes, 256 << 20);
        assert_eq!(d.decode_limits(), DecodeLimits::default());

        let c = Config::from_url("memory://?maxPayloadBytes=1024&maxValueBytes=4096").unwrap();
        assert_eq!((c.max_payload_bytes, c.max_value_bytes), (1024, 4096));
        let c: Config =
            serde_json::from_str(r#"{"maxPayloadBytes":10,"maxValueBytes":20}"#).unwrap();
        assert_eq!(c.decode_limits().max_payload_bytes, 10);
        assert_eq!(c.decode_limits().max_value_bytes, 20);
        let c = Config::default().max_payload_bytes(7).max_value_bytes(9);
        assert_eq!((c.max_payload_bytes, c.max_value_bytes), (7, 9));

        assert!(Config::from_url("memory://?maxValueBytes=0").is_err());
        assert!(Config::from_url("memory://?maxPayloadBytes=-1").is_err());
    }
}
