//! Coalescing calls: a host collects the calls of one turn of its event loop and hands them
//! to a [`Batcher`], which runs them all at once on one async [`Cache`]:
//!
//! * a run of consecutive `Get`s becomes one `get_many` **per node** (one `MGET` per node,
//!   per slot on a cluster), so a dead or slow node fails or delays only its own keys;
//! * every other call is its own future, started in order, so consecutive writes are
//!   pipelined on the node's multiplexed connection rather than awaited one by one;
//! * each call's result is handed back as soon as *its own* reply arrives, never after the
//!   calls queued before it (a paused server costs every call one `command_timeout`, not
//!   one per call ahead of it).
//!
//! Commands reach each node's connection in call order (futures are first polled in the
//! order they were queued), so a `get` after a `set` of the same key in one batch sees the
//! value. The Node binding starts the first call of a tick alone ([`Batcher::result`]), so
//! its request is written before the call returns, and submits the calls after it here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::cache::{Cache, Stored};
use crate::codec::{Encoded, Value};
use crate::config::Target;
use crate::error::Result;
use crate::key::slot;
use crate::patterns::{found, LoadOptions, Loaded, LoadedEntry, Loader};
use crate::ring::Ring;

/// One queued cache call.
pub enum Op {
    /// [`Cache::get`]; consecutive ones are coalesced per node.
    Get(String),
    /// [`Cache::get_many`].
    GetMany(Vec<String>),
    /// [`Cache::get_or_load_with`] with a host loader (called with the key).
    GetOrLoad {
        /// The user key.
        key: String,
        /// Produces the value on a miss.
        loader: Arc<dyn Loader>,
        /// The call's options over the cache's (`ttl`, `fresh_for`, …).
        options: LoadOptions,
    },
    /// [`Cache::get_entry`]: a `GetOrLoad` answered with the value's freshness and age.
    GetEntry {
        /// The user key.
        key: String,
        /// Produces the value on a miss.
        loader: Arc<dyn Loader>,
        /// The call's options over the cache's.
        options: LoadOptions,
    },
    /// [`Cache::set`].
    Set {
        /// The user key.
        key: String,
        /// The value to store.
        value: Value,
        /// Its time to live (`None`: the cache's default).
        ttl: Option<Duration>,
    },
    /// [`Cache::set_encoded`]: a value the host wrote with [`Cache::encoder`] on its own
    /// thread (no [`Value`] on the way).
    SetEncoded {
        /// The user key.
        key: String,
        /// The value's payload.
        encoded: Encoded,
        /// Its time to live (`None`: the cache's default).
        ttl: Option<Duration>,
    },
    /// [`Cache::set_many`] (one pipeline per node).
    SetMany {
        /// The user keys and values.
        entries: Vec<(String, Value)>,
        /// Their time to live (`None`: the cache's default).
        ttl: Option<Duration>,
    },
    /// [`Cache::delete`].
    Delete(String),
    /// [`Cache::ttl`].
    Ttl(String),
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Get(key) => f.debug_tuple("Get").field(key).finish(),
            Op::GetMany(keys) => f.debug_tuple("GetMany").field(keys).finish(),
            Op::GetOrLoad { key, options, .. } => f
                .debug_struct("GetOrLoad")
                .field("key", key)
                .field("options", options)
                .finish_non_exhaustive(),
            Op::GetEntry { key, options, .. } => f
                .debug_struct("GetEntry")
                .field("key", key)
                .field("options", options)
                .finish_non_exhaustive(),
            Op::Set { key, ttl, .. } => f
                .debug_struct("Set")
                .field("key", key)
                .field("ttl", ttl)
                .finish_non_exhaustive(),
            Op::SetEncoded { key, ttl, .. } => f
                .debug_struct("SetEncoded")
                .field("key", key)
                .field("ttl", ttl)
                .finish_non_exhaustive(),
            Op::SetMany { entries, ttl } => f
                .debug_struct("SetMany")
                .field("entries", &entries.len())
                .field("ttl", ttl)
                .finish(),
            Op::Delete(key) => f.debug_tuple("Delete").field(key).finish(),
            Op::Ttl(key) => f.debug_tuple("Ttl").field(key).finish(),
        }
    }
}

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// What a `GetOrLoad` returned (`None`: "not found").
    Value(Option<Value>),
    /// What a `Get` found, not yet decoded: the host decodes it on its own thread with
    /// [`Cache::decode_stored`], which counts the hit or miss (no [`Value`] on the way).
    Found(Stored),
    /// What a `GetMany` found, in order, not yet decoded (as [`Done::Found`]).
    FoundMany(Vec<Stored>),
    /// A `Set` or `SetMany` stored its values.
    Stored,
    /// Whether a `Delete` removed something.
    Deleted(bool),
    /// A `Ttl`'s remaining time to live.
    Ttl(Option<Duration>),
    /// What a `GetEntry` returned ("not found" is an entry too: [`LoadedEntry::of`]).
    Entry(LoadedEntry),
}

/// Which node serves a Redis key, mirroring the store the cache's URL opens.
#[derive(Debug)]
enum Placement {
    /// One node (or the in-process store): one group.
    One,
    /// `redis+shards://`: the ring of docs/FORMAT.md §4, as [`crate::store::ShardedStore`].
    Ring(Ring),
    /// `redis+cluster://`: the hash slot (a slot lives on one node).
    Slots,
}

impl Placement {
    fn of(url: &str) -> Placement {
        match Target::parse(url) {
            Ok(Target::Shards(nodes)) => {
                match Ring::new(nodes.into_iter().map(|(_, node)| node).collect()) {
                    Ok(ring) => Placement::Ring(ring),
                    Err(_) => Placement::One,
                }
            }
            Ok(Target::Cluster(_)) => Placement::Slots,
            _ => Placement::One,
        }
    }

    fn group(&self, redis_key: &str) -> usize {
        match self {
            Placement::One => 0,
            Placement::Ring(ring) => ring.index_for(redis_key),
            Placement::Slots => usize::from(slot(redis_key.as_bytes())),
        }
    }
}

/// The results a future of one run hands back: `(position, result)` pairs.
type Settled = Vec<(usize, Result<Done>)>;

/// Runs batches of calls on one cache (see the module docs). Cheap to share.
#[derive(Debug)]
pub struct Batcher {
    cache: Cache,
    placement: Placement,
    reads_through: bool,
}

impl Batcher {
    /// A batcher over `cache`. `reads_through` says the cache was built with a loader: its
    /// `Get`s then run one by one, so loading one key never delays another key's reply.
    pub fn new(cache: Cache, reads_through: bool) -> Batcher {
        let placement = Placement::of(&cache.config().url);
        Batcher {
            cache,
            placement,
            reads_through,
        }
    }

    /// The cache the batches run on.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Runs `ops` (see the module docs) and calls `each(position, result)` once per op, as
    /// soon as that op's reply arrives; returns when every op has been answered.
    pub async fn run(&self, ops: Vec<Op>, mut each: impl FnMut(usize, Result<Done>)) {
        // A lone call (sequential code's every call): nothing to coalesce, so it runs as
        // it is, without the per-node groups and the set of futures a batch needs.
        if ops.len() == 1 {
            if let Some(op) = ops.into_iter().next() {
                each(0, self.result(op).await);
            }
            return;
        }
        let mut running: FuturesUnordered<BoxFuture<'_, Settled>> = FuturesUnordered::new();
        let mut reads: Vec<(usize, String)> = Vec::new();
        for (position, op) in ops.into_iter().enumerate() {
            match op {
                Op::Get(key) if !self.reads_through => {
                    reads.push((position, key));
                    continue;
                }
                op => {
                    self.read_run(std::mem::take(&mut reads), &mut running, &mut each);
                    running.push(Box::pin(self.one(position, op)));
                }
            }
        }
        self.read_run(reads, &mut running, &mut each);
        while let Some(settled) = running.next().await {
            for (position, result) in settled {
                each(position, result);
            }
        }
    }

    /// Queues one run of consecutive `Get`s: invalid keys are answered now, the others go
    /// as one `get_many` per node.
    fn read_run<'a>(
        &'a self,
        reads: Vec<(usize, String)>,
        running: &mut FuturesUnordered<BoxFuture<'a, Settled>>,
        each: &mut impl FnMut(usize, Result<Done>),
    ) {
        let mut groups: BTreeMap<usize, Vec<(usize, String)>> = BTreeMap::new();
        for (position, key) in reads {
            match self.cache.redis_key(&key) {
                Ok(redis_key) => groups
                    .entry(self.placement.group(&redis_key))
                    .or_default()
                    .push((position, key)),
                Err(err) => each(position, Err(err)),
            }
        }
        for (_, group) in groups {
            running.push(Box::pin(async move {
                let keys: Vec<&str> = group.iter().map(|(_, key)| key.as_str()).collect();
                match self.cache.get_many_stored(&keys).await {
                    Ok(found) => group
                        .iter()
                        .zip(found)
                        .map(|((position, _), found)| (*position, Ok(Done::Found(found))))
                        .collect(),
                    Err(err) => group
                        .iter()
                        .map(|(position, _)| (*position, Err(err.clone())))
                        .collect(),
                }
            }));
        }
    }

    /// Runs one op that is not coalesced.
    async fn one(&self, position: usize, op: Op) -> Settled {
        vec![(position, self.result(op).await)]
    }

    /// What one op returns, run on its own: a lone call (nothing to coalesce), which a
    /// binding may run without [`Batcher::run`]'s vectors.
    pub async fn result(&self, op: Op) -> Result<Done> {
        let cache = &self.cache;
        match op {
            Op::Get(key) => cache.get_stored(&key).await.map(Done::Found),
            Op::GetMany(keys) => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                cache.get_many_stored(&keys).await.map(Done::FoundMany)
            }
            // `get_or_load_with` is `get_entry` without the metadata. The loads' futures are
            // boxed: this one's size is its largest arm's, moved whole by every lone call.
            Op::GetOrLoad {
                key,
                loader,
                options,
            } => found(Box::pin(load_entry(cache, key, loader, &options)).await)
                .map(|loaded| Done::Value(loaded.map(|loaded| loaded.value))),
            Op::GetEntry {
                key,
                loader,
                options,
            } => LoadedEntry::of(Box::pin(load_entry(cache, key, loader, &options)).await)
                .map(Done::Entry),
            Op::Set { key, value, ttl } => {
                cache.set(&key, &value, ttl).await.map(|()| Done::Stored)
            }
            Op::SetEncoded { key, encoded, ttl } => cache
                .set_encoded(&key, encoded, ttl)
                .await
                .map(|()| Done::Stored),
            Op::SetMany { entries, ttl } => {
                let (keys, values): (Vec<String>, Vec<Value>) = entries.into_iter().unzip();
                let entries: Vec<(&str, Value)> =
                    keys.iter().map(String::as_str).zip(values).collect();
                cache.set_many(&entries, ttl).await.map(|()| Done::Stored)
            }
            Op::Delete(key) => cache.delete(&key).await.map(Done::Deleted),
            Op::Ttl(key) => cache.ttl(&key).await.map(Done::Ttl),
        }
    }
}

/// [`Cache::get_entry`] with a host loader called with the key. The loader is owned
/// ('static): a stale value's refresh can run in the background (stale-while-revalidate),
/// not in this call.
async fn load_entry(
    cache: &Cache,
    key: String,
    loader: Arc<dyn Loader>,
    options: &LoadOptions,
) -> Result<Loaded> {
    let load_key = key.clone();
    cache
        .get_entry(&key, move || loader.load(&load_key), options)
        .await
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::codec::Tree;
    use crate::{Config, ErrorKind};

    fn block<F: std::future::Future>(f: F) -> F::Output {
        crate::block_on(f)
    }

    fn run(batcher: &Batcher, ops: Vec<Op>) -> Vec<(usize, Result<Done>)> {
        let mut out = Vec::new();
        block(batcher.run(ops, |position, result| out.push((position, result))));
        out.sort_by_key(|(position, _)| *position);
        out
    }

    /// What a read found, decoded as the host would (counting the hit or miss then).
    #[derive(Debug, PartialEq)]
    enum Read {
        One(Option<Value>),
        Many(Vec<Option<Value>>),
        Other(Done),
    }

    fn decoded(cache: &Cache, done: Done) -> Read {
        let decode = |stored: &Stored| cache.decode_stored(stored, &mut Tree).unwrap();
        match done {
            Done::Found(stored) => Read::One(decode(&stored)),
            Done::FoundMany(found) => Read::Many(found.iter().map(decode).collect()),
            Done::Value(value) => Read::One(value),
            other => Read::Other(other),
        }
    }

    /// A miss, a set of `a`, a hit, and a key error.
    fn written_then_read() -> Vec<Op> {
        vec![
            Op::Get("a".into()),
            Op::Set {
                key: "a".into(),
                value: Value::from(1),
                ttl: None,
            },
            Op::Get("a".into()),
            Op::Get(String::new()),
        ]
    }

    #[test]
    fn runs_in_order_with_one_result_per_op() {
        let cache = block(Cache::new(Config::default().namespace("batch"))).unwrap();
        let batcher = Batcher::new(cache.clone(), false);
        let loader: Arc<dyn Loader> =
            Arc::new(|key: String| async move { Ok(Value::from(format!("loaded {key}"))) });
        let mut ops = written_then_read();
        ops.extend([
            Op::Get("b".into()),
            Op::Delete("a".into()),
            Op::Get("a".into()),
            Op::SetMany {
                entries: vec![("x".into(), Value::from("y"))],
                ttl: None,
            },
            Op::GetMany(vec!["x".into(), "a".into()]),
            Op::SetEncoded {
                key: "e".into(),
                encoded: {
                    let mut encoder = cache.encoder();
                    encoder.str("one pass").unwrap();
                    encoder.finish().unwrap()
                },
                ttl: None,
            },
            Op::Get("e".into()),
            Op::GetOrLoad {
                key: "l".into(),
                loader,
                options: LoadOptions::default(),
            },
            Op::Ttl("nope".into()),
        ]);
        let results: Vec<_> = run(&batcher, ops)
            .into_iter()
            .map(|(position, r)| {
                (
                    position,
                    r.map(|done| decoded(&cache, done)).map_err(|e| e.kind()),
                )
            })
            .collect();
        assert_eq!(
            results,
            vec![
                (0, Ok(Read::One(None))),
                (1, Ok(Read::Other(Done::Stored))),
                (2, Ok(Read::One(Some(Value::from(1))))),
                (3, Err(ErrorKind::Key)),
                (4, Ok(Read::One(None))),
                (5, Ok(Read::Other(Done::Deleted(true)))),
                (6, Ok(Read::One(None))),
                (7, Ok(Read::Other(Done::Stored))),
                (8, Ok(Read::Many(vec![Some(Value::from("y")), None]))),
                (9, Ok(Read::Other(Done::Stored))),
                (10, Ok(Read::One(Some(Value::from("one pass"))))),
                (11, Ok(Read::One(Some(Value::from("loaded l"))))),
                (12, Ok(Read::Other(Done::Ttl(None)))),
            ]
        );
        // Lookups that reached the store: 5 gets (the empty key failed alone, before it),
        // 2 of getMany, 1 of getOrLoad; each miss counted once (5), never twice.
        let metrics = cache.metrics();
        assert_eq!(metrics.hits + metrics.misses, 8);
        assert_eq!(metrics.misses, 5);
    }

    #[test]
    fn a_lone_op_returns_what_it_returns_in_a_batch() {
        // The same calls on two caches, alone on one and each followed by a `Ttl` (a batch)
        // on the other, with a loader too (where `get` takes another way). The near tier's
        // way needs Redis: the Node suite's near-tier tests make lone calls.
        let config = Config::default();
        for loader in [false, true] {
            let open = || {
                let mut builder = Cache::builder(config.clone());
                if loader {
                    builder = builder
                        .loader(|key: String| async move { Ok(Value::from(format!("l {key}"))) });
                }
                block(builder.build()).unwrap()
            };
            let (lone, batched) = (open(), open());
            let ops = || {
                let mut ops = written_then_read();
                ops.extend([Op::Delete("a".into()), Op::Get("a".into())]);
                ops
            };
            let answer = |cache: &Cache, result: Result<Done>| {
                result
                    .map(|done| decoded(cache, done))
                    .map_err(|e| e.kind())
            };
            let lone_batcher = Batcher::new(lone.clone(), loader);
            let batcher = Batcher::new(batched.clone(), loader);
            for (alone, in_batch) in ops().into_iter().zip(ops()) {
                let results = run(&lone_batcher, vec![alone]);
                assert_eq!(results.len(), 1);
                let (position, result) = results.into_iter().next().unwrap();
                assert_eq!(position, 0);
                let mut both = run(&batcher, vec![in_batch, Op::Ttl("other".into())]);
                let (_, expected) = both.remove(0);
                assert_eq!(
                    answer(&lone, result),
                    answer(&batched, expected),
                    "loader {loader}"
                );
            }
            let (a, b) = (lone.metrics(), batched.metrics());
            assert_eq!((a.hits, a.misses, a.loads), (b.hits, b.misses, b.loads));
        }
    }

    #[test]
    fn each_op_is_answered_on_its_own_reply() {
        // A loader that waits until the `Get` queued after it has been answered: if the
        // batch answered ops only when all were done, this would never finish.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let cache = Cache::new(Config::default()).await.unwrap();
            cache.set("hit", &Value::from(1), None).await.unwrap();
            let batcher = Batcher::new(cache, false);
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            let released = std::sync::Mutex::new(Some(released));
            let loader: Arc<dyn Loader> = Arc::new(move |_key: String| {
                let released = released.lock().unwrap().take();
                async move {
                    if let Some(released) = released {
                        let _ = released.await;
                    }
                    Ok(Value::from("slow"))
                }
            });
            let ops = vec![
                Op::GetOrLoad {
                    key: "slow".into(),
                    loader,
                    options: LoadOptions::default(),
                },
                Op::Get("hit".into()),
            ];
            let mut release = Some(release);
            let mut order = Vec::new();
            let reader = batcher.cache().clone();
            let ran = batcher.run(ops, |position, result| {
                order.push((position, decoded(&reader, result.unwrap())));
                if position == 1 {
                    if let Some(release) = release.take() {
                        let _ = release.send(());
                    }
                }
            });
            tokio::time::timeout(Duration::from_secs(5), ran)
                .await
                .expect("the get was answered before the slow load finished");
            assert_eq!(
                order,
                vec![
                    (1, Read::One(Some(Value::from(1)))),
                    (0, Read::One(Some(Value::from("slow")))),
                ]
            );
        });
    }

    #[test]
    fn store_failures_are_each_calls_own() {
        let cache = block(Cache::new(Config::default())).unwrap();
        cache.close(); // every store call now fails with a connection error
        let batcher = Batcher::new(cache, false);
        let ops = vec![
            Op::Get("a".into()),
            Op::Get("b".into()),
            Op::Delete("c".into()),
        ];
        let results = run(&batcher, ops);
        assert_eq!(results.len(), 3);
        assert!(results
            .iter()
            .all(|(_, r)| r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Connection)));
    }

    #[test]
    fn placement_follows_the_url() {
        assert!(matches!(Placement::of("memory://"), Placement::One));
        assert!(matches!(Placement::of("redis://h:1"), Placement::One));
        assert!(matches!(
            Placement::of("redis+cluster://h:1,h:2"),
            Placement::Slots
        ));
        let Placement::Ring(ring) = Placement::of("redis+shards://a:1,b:2,c:3") else {
            panic!("a ring")
        };
        let expected = Ring::new(vec![
            crate::Node::new("a:1"),
            crate::Node::new("b:2"),
            crate::Node::new("c:3"),
        ])
        .unwrap();
        for i in 0..100 {
            let key = format!("pc:k:{i}");
            assert_eq!(ring.node_for(&key), expected.node_for(&key));
        }
    }
}
