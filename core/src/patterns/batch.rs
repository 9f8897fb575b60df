//! Coalescing calls: the operations a host collects in one turn of its event loop run in
//! order, with every run of consecutive reads sent as one [`Cache::get_many`] (one round
//! trip per node), while each operation keeps its own result. The Node binding uses it to
//! turn the `get`s of one tick into one `MGET`.

use std::time::Duration;

use crate::cache::Cache;
use crate::codec::Value;
use crate::error::{Error, ErrorKind, Result};

/// One queued cache call.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// [`Cache::get`].
    Get(String),
    /// [`Cache::set`].
    Set {
        /// The user key.
        key: String,
        /// The value to store.
        value: Value,
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
}

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// What a `Get` found.
    Value(Option<Value>),
    /// A `Set` or `SetMany` stored its values.
    Stored,
    /// Whether a `Delete` removed something.
    Deleted(bool),
}

/// Operations in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    ops: Vec<Op>,
}

/// What [`Batch::run`] did.
#[derive(Debug)]
pub struct Ran {
    /// Results of the operations that ran, in order (the first `results.len()` ops).
    pub results: Vec<Result<Done>>,
    /// When the run stopped at a store failure: that failure and the operations that did
    /// not run (the failed one first), to retry elsewhere.
    pub stopped: Option<(Error, Vec<Op>)>,
}

/// Whether a failure is the store's (the same call may succeed on another connection).
pub fn is_store_failure(err: &Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Cluster
    )
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Queues an operation; returns its position.
    pub fn push(&mut self, op: Op) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }

    /// Number of queued operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs the operations in order. Consecutive `Get`s go as one `get_many`; a key that
    /// is invalid fails alone, not the reads around it. With `stop_at_store_failure`, the
    /// first connection, timeout or cluster failure stops the run and hands back the
    /// operations from the failed one on (see [`Ran::stopped`]); otherwise every operation
    /// runs and carries its own result.
    pub async fn run(self, cache: &Cache, stop_at_store_failure: bool) -> Ran {
        let mut results: Vec<Result<Done>> = Vec::with_capacity(self.ops.len());
        let mut ops = self.ops.into_iter().peekable();
        while let Some(op) = ops.next() {
            let (outcome, unrun) = match op {
                Op::Get(key) => {
                    let mut keys = vec![key];
                    while let Some(Op::Get(_)) = ops.peek() {
                        if let Some(Op::Get(key)) = ops.next() {
                            keys.push(key);
                        }
                    }
                    match read(cache, &keys).await {
                        Ok(found) => (Ok(found), Vec::new()),
                        Err(err) => (Err(err), keys.into_iter().map(Op::Get).collect()),
                    }
                }
                Op::Set { key, value, ttl } => match cache.set(&key, &value, ttl).await {
                    Ok(()) => (Ok(vec![Ok(Done::Stored)]), Vec::new()),
                    Err(err) => (Err(err), vec![Op::Set { key, value, ttl }]),
                },
                Op::SetMany { entries, ttl } => {
                    let refs: Vec<(&str, Value)> = entries
                        .iter()
                        .map(|(key, value)| (key.as_str(), value.clone()))
                        .collect();
                    match cache.set_many(&refs, ttl).await {
                        Ok(()) => (Ok(vec![Ok(Done::Stored)]), Vec::new()),
                        Err(err) => (Err(err), vec![Op::SetMany { entries, ttl }]),
                    }
                }
                Op::Delete(key) => match cache.delete(&key).await {
                    Ok(existed) => (Ok(vec![Ok(Done::Deleted(existed))]), Vec::new()),
                    Err(err) => (Err(err), vec![Op::Delete(key)]),
                },
            };
            match outcome {
                Ok(found) => results.extend(found),
                Err(err) if stop_at_store_failure && is_store_failure(&err) => {
                    let mut rest = unrun;
                    rest.extend(ops);
                    return Ran {
                        results,
                        stopped: Some((err, rest)),
                    };
                }
                Err(err) => results.extend(unrun.iter().map(|_| Err(err.clone()))),
            }
        }
        Ran {
            results,
            stopped: None,
        }
    }
}

/// One run of reads: invalid keys fail alone, the others go as one `get_many`. An `Err`
/// is the `get_many` failure, shared by the whole run.
async fn read(cache: &Cache, keys: &[String]) -> Result<Vec<Result<Done>>> {
    let mut out: Vec<Option<Result<Done>>> = keys
        .iter()
        .map(|key| cache.redis_key(key).err().map(Err))
        .collect();
    let valid: Vec<&str> = keys
        .iter()
        .zip(&out)
        .filter(|(_, failed)| failed.is_none())
        .map(|(key, _)| key.as_str())
        .collect();
    if !valid.is_empty() {
        let mut values = cache.get_many(&valid).await?.into_iter();
        for slot in out.iter_mut().filter(|slot| slot.is_none()) {
            *slot = Some(Ok(Done::Value(values.next().flatten())));
        }
    }
    Ok(out.into_iter().flatten().collect())
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::Config;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        crate::block_on(f)
    }

    #[test]
    fn runs_in_order_with_one_result_per_op() {
        let cache = block(Cache::new(Config::default().namespace("batch"))).unwrap();
        let mut batch = Batch::new();
        batch.push(Op::Get("a".into()));
        batch.push(Op::Set {
            key: "a".into(),
            value: Value::from(1),
            ttl: None,
        });
        batch.push(Op::Get("a".into()));
        batch.push(Op::Get(String::new()));
        batch.push(Op::Get("b".into()));
        batch.push(Op::Delete("a".into()));
        batch.push(Op::Get("a".into()));
        batch.push(Op::SetMany {
            entries: vec![("x".into(), Value::from("y"))],
            ttl: None,
        });
        batch.push(Op::Get("x".into()));
        assert_eq!(batch.len(), 9);
        let ran = block(batch.run(&cache, true));
        assert!(ran.stopped.is_none());
        let results: Vec<_> = ran
            .results
            .into_iter()
            .map(|r| r.map_err(|e| e.kind()))
            .collect();
        assert_eq!(
            results,
            vec![
                Ok(Done::Value(None)),
                Ok(Done::Stored),
                Ok(Done::Value(Some(Value::from(1)))),
                Err(ErrorKind::Key),
                Ok(Done::Value(None)),
                Ok(Done::Deleted(true)),
                Ok(Done::Value(None)),
                Ok(Done::Stored),
                Ok(Done::Value(Some(Value::from("y")))),
            ]
        );
        // Five lookups reached the store: the empty key failed alone, before it.
        let metrics = cache.metrics();
        assert_eq!(metrics.hits + metrics.misses, 5);
    }

    #[test]
    fn store_failures_stop_the_run_and_hand_back_the_rest() {
        let cache = block(Cache::new(Config::default())).unwrap();
        cache.close(); // every store call now fails with a connection error
        let mut batch = Batch::new();
        batch.push(Op::Get("a".into()));
        batch.push(Op::Get("b".into()));
        batch.push(Op::Delete("c".into()));
        let ran = block(batch.clone().run(&cache, true));
        assert!(ran.results.is_empty());
        let (err, rest) = ran.stopped.expect("stopped");
        assert!(is_store_failure(&err));
        assert_eq!(rest.len(), 3);
        assert_eq!(rest[2], Op::Delete("c".into()));

        let ran = block(batch.run(&cache, false));
        assert!(ran.stopped.is_none());
        assert_eq!(ran.results.len(), 3);
        assert!(ran
            .results
            .iter()
            .all(|r| r.as_ref().is_err_and(is_store_failure)));
    }
}
