//! A circuit breaker in front of one node (`breaker_failures`, `breaker_cooldown`).
//!
//! - **Closed**: calls go through. A connection error or a timeout counts as a failure;
//!   any answer from the node (a value, a miss, an error *reply*) resets the count. Codec
//!   and key errors never reach a store, and a Redis error reply proves the node is there,
//!   so neither counts.
//! - **Open**, after `breaker_failures` consecutive failures: every call fails at once with
//!   a [`Connection`](crate::ErrorKind::Connection) error that names the node, says the
//!   circuit is open and for how long, and quotes the last failure; no byte is sent.
//! - **Half-open**, once `breaker_cooldown` has passed: the next call is the one probe and
//!   goes to the node; every other call keeps failing fast until it answers. An answer
//!   closes the breaker; a failure opens it again for another cooldown.
//!
//! The cache above treats a rejected call as any store error, only sooner: a read falls
//! back to the near tier, a fail-safe value or the loader; a write fails.
//!
//! One breaker per node: each shard of `redis+shards://` has its own, so a dead shard
//! opens only its own breaker. A `redis+sentinel://` set has one (its current master); a
//! `redis+cluster://` client has one for the whole cluster (see [`BreakerStore`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::{Entry, Store};
use crate::clock::Clock;
use crate::codec::Framed;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Script;

/// Where one breaker stands, as metrics show it (`"closed"`, `"open"`, `"half-open"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls go to the node.
    Closed,
    /// Calls fail fast until the cooldown ends.
    Open,
    /// One call is probing the node; the others fail fast.
    HalfOpen,
}

/// The breakers of a store: counters summed over its nodes, and each node's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerStats {
    /// Times a breaker opened: after `breaker_failures` consecutive failures, or again
    /// after a failed probe.
    pub trips: u64,
    /// Calls failed fast by an open (or probing) breaker, without touching the network.
    pub rejected: u64,
    /// Each node's breaker, by node (`host:port`, credentials redacted).
    pub states: BTreeMap<String, BreakerState>,
}

impl BreakerStats {
    /// Adds another store's breakers (a sharded store sums its nodes).
    pub fn merge(&mut self, other: BreakerStats) {
        self.trips += other.trips;
        self.rejected += other.rejected;
        self.states.extend(other.states);
    }
}

/// The source of a call an open breaker rejected: how [`is_rejected`] tells it apart.
#[derive(Debug)]
struct Rejected;

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rejected by an open circuit breaker")
    }
}

impl std::error::Error for Rejected {}

/// Whether `err` is a call an open breaker failed without sending it (no round trip).
pub(crate) fn is_rejected(err: &Error) -> bool {
    err.source_as::<Rejected>().is_some()
}

/// Whether a store error says the node is unreachable (and counts toward opening).
fn is_failure(err: &Error) -> bool {
    matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout)
}

enum State {
    /// `failed` consecutive failures so far.
    Closed { failed: u32 },
    /// Failing fast until `until_ms` (clock time); `probed`: reopened by a failed probe.
    Open {
        until_ms: u64,
        last: Error,
        probed: bool,
    },
    /// One call is probing.
    Probing { last: Error },
}

/// The breaker of one node (see the module docs).
pub struct Breaker {
    node: String,
    failures: u32,
    cooldown: Duration,
    clock: Clock,
    state: Mutex<State>,
    trips: AtomicU64,
    rejected: AtomicU64,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("node", &self.node)
            .field("state", &self.state())
            .finish()
    }
}

/// Leave to call the node; a probe that ends without an outcome (its call was dropped)
/// hands the probe to the next call.
struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            let mut state = self.breaker.lock();
            if let State::Probing { last } = &*state {
                let last = last.clone();
                *state = State::Open {
                    until_ms: self.breaker.clock.now_ms(),
                    last,
                    probed: false,
                };
            }
        }
    }
}

impl Breaker {
    /// A closed breaker for `node` that opens after `failures` consecutive failures
    /// (at least 1) and probes after `cooldown`, timed by `clock`.
    pub fn new(node: impl Into<String>, failures: u32, cooldown: Duration, clock: Clock) -> Self {
        Breaker {
            node: node.into(),
            failures: failures.max(1),
            cooldown,
            clock,
            state: Mutex::new(State::Closed { failed: 0 }),
            trips: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the breaker stands now. An open breaker whose cooldown has ended reads as
    /// open until a call probes.
    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::Probing { .. } => BreakerState::HalfOpen,
        }
    }

    /// This breaker's counters and state.
    pub fn stats(&self) -> BreakerStats {
        BreakerStats {
            trips: self.trips.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            states: BTreeMap::from([(self.node.clone(), self.state())]),
        }
    }

    /// Leave to call the node, or the error to fail fast with.
    fn admit(&self) -> Result<Permit<'_>> {
        let mut state = self.lock();
        let rejected = match &*state {
            State::Closed { .. } => None,
            State::Open {
                until_ms,
                last,
                probed,
            } => {
                let now = self.clock.now_ms();
                if now >= *until_ms {
                    *state = State::Probing { last: last.clone() };
                    return Ok(Permit {
                        breaker: self,
                        probe: true,
                        settled: false,
                    });
                }
                let why = match probed {
                    true => "a failed probe".to_owned(),
                    false => format!("{} consecutive failures", self.failures),
                };
                Some(format!(
                    "{}: circuit breaker open after {why}: no call for another {:?}, then \
                     one probe (last failure: {})",
                    self.node,
                    Duration::from_millis(until_ms - now),
                    last.message()
                ))
            }
            State::Probing { last } => Some(format!(
                "{}: circuit breaker half-open: one call is probing the node, the others \
                 fail until it answers (last failure: {})",
                self.node,
                last.message()
            )),
        };
        match rejected {
            None => Ok(Permit {
                breaker: self,
                probe: false,
                settled: false,
            }),
            Some(message) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(Error::new(ErrorKind::Connection, message).with_source(Rejected))
            }
        }
    }

    /// Records how a permitted call ended: `Some(err)` for a failure that counts.
    fn settle(&self, mut permit: Permit<'_>, failure: Option<&Error>) {
        permit.settled = true;
        let mut state = self.lock();
        let Some(err) = failure else {
            // The node answered: whatever the state, it is reachable.
            *state = State::Closed { failed: 0 };
            return;
        };
        let open = match &mut *state {
            State::Closed { failed } => {
                *failed += 1;
                *failed >= self.failures
            }
            State::Probing { .. } => permit.probe,
            // A call sent before the breaker opened: the breaker already knows.
            State::Open { .. } => false,
        };
        if open {
            let probed = permit.probe;
            self.trips.fetch_add(1, Ordering::Relaxed);
            *state = State::Open {
                until_ms: self
                    .clock
                    .now_ms()
                    .saturating_add(self.cooldown.as_millis() as u64),
                last: err.clone(),
                probed,
            };
        }
    }

    /// Runs one call to the node through the breaker.
    async fn call<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let permit = self.admit()?;
        let result = call.await;
        self.settle(permit, result.as_ref().err().filter(|e| is_failure(e)));
        result
    }
}

/// A store behind a [`Breaker`].
///
/// Over a `redis+cluster://` client the unit is the whole client: the cluster clients
/// route and fail over inside one call and do not say which node failed. The breaker
/// opens only when `breaker_failures` calls in a row fail, which a whole cluster being
/// unreachable does at once; with one master of M down and keys spread evenly, a run of
/// N failures comes about once in M^N calls, so keep `breaker_failures` high (≥ 10) on a
/// cluster or leave it off there.
#[derive(Debug)]
pub struct BreakerStore {
    inner: Arc<dyn Store>,
    breaker: Breaker,
}

impl BreakerStore {
    /// `inner` behind `breaker`.
    pub fn new(inner: Arc<dyn Store>, breaker: Breaker) -> Self {
        BreakerStore { inner, breaker }
    }

    /// The breaker in front of the store.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }
}

#[async_trait]
impl Store for BreakerStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.breaker.call(self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.breaker.call(self.inner.get_many(keys)).await
    }

    async fn get_each(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        let permit = match self.breaker.admit() {
            Ok(permit) => permit,
            Err(err) => return vec![Err(err); keys.len()],
        };
        let results = self.inner.get_each(keys).await;
        // One answer proves the node (or a cluster node) reachable.
        let answered = results
            .iter()
            .any(|r| r.as_ref().map_or_else(|e| !is_failure(e), |_| true));
        let failure = results.iter().find_map(|r| r.as_ref().err());
        self.breaker.settle(permit, failure.filter(|_| !answered));
        results
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.breaker.call(self.inner.set(entry)).await
    }

    async fn set_framed(&self, key: &str, value: Framed, ttl: Option<Duration>) -> Result<()> {
        self.breaker
            .call(self.inner.set_framed(key, value, ttl))
            .await
    }

    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        self.breaker
            .call(self.inner.set_within(entry, budget))
            .await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.breaker.call(self.inner.set_many(entries)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.breaker.call(self.inner.delete(key)).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.breaker.call(self.inner.ttl(key)).await
    }

    fn evictions(&self) -> u64 {
        self.inner.evictions()
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        self.breaker.call(self.inner.set_if_absent(entry)).await
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        self.breaker.call(self.inner.eval(script, keys, args)).await
    }

    fn breakers(&self) -> BreakerStats {
        self.breaker.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Error {
        Error::new(ErrorKind::Connection, "h:1: connection refused")
    }

    #[test]
    fn opens_after_n_failures_probes_once_and_closes_on_an_answer() {
        let (clock, mock) = Clock::mock();
        let breaker = Breaker::new("h:1", 3, Duration::from_secs(2), clock);
        for _ in 0..2 {
            let permit = breaker.admit().unwrap();
            breaker.settle(permit, Some(&refused()));
        }
        // An answer in between resets the count.
        let permit = breaker.admit().unwrap();
        breaker.settle(permit, None);
        for _ in 0..3 {
            let permit = breaker.admit().unwrap();
            breaker.settle(permit, Some(&refused()));
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let err = breaker.admit().err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(is_rejected(&err) && !is_rejected(&refused()));
        assert!(err.message().contains("h:1: circuit breaker open"), "{err}");
        assert!(err.message().contains("another 2s"), "{err}");
        assert!(err.message().contains("connection refused"), "{err}");

        mock.advance(Duration::from_secs(2));
        let probe = breaker.admit().unwrap();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let err = breaker.admit().err().unwrap();
        assert!(err.message().contains("half-open"), "{err}");
        breaker.settle(probe, Some(&refused()));
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "a failed probe reopens"
        );
        let err = breaker.admit().err().unwrap();
        assert!(err.message().contains("open after a failed probe"), "{err}");

        mock.advance(Duration::from_secs(2));
        let probe = breaker.admit().unwrap();
        breaker.settle(probe, None);
        assert_eq!(breaker.state(), BreakerState::Closed);
        let stats = breaker.stats();
        assert_eq!((stats.trips, stats.rejected), (2, 3));
    }

    #[test]
    fn a_dropped_probe_hands_the_probe_on() {
        let (clock, _mock) = Clock::mock();
        let breaker = Breaker::new("h:1", 1, Duration::ZERO, clock);
        let permit = breaker.admit().unwrap();
        breaker.settle(permit, Some(&refused()));
        drop(breaker.admit().unwrap()); // the probe's call was cancelled
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.admit().is_ok(), "the next call probes");
    }
}
