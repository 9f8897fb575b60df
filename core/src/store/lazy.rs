//! A node of a sharded store that may be down: opened when the cache opens if it can be,
//! otherwise reopened on demand. While it is down its keys fail fast with the error that
//! took it down, without touching the network, and one call per [`RETRY_AFTER`] tries to
//! reopen it (within that call's own deadline). The other nodes never wait for it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;

use super::{Entry, Store};
use crate::clock::Clock;
use crate::codec::Framed;
use crate::error::Result;
use crate::lock::Script;

/// How long a node that failed to open is left alone before a call tries again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

type Open = dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Store>>> + Send + Sync;

enum State {
    Open(Arc<dyn Store>),
    /// Down since `at_ms` (clock time) with this error.
    Down {
        at_ms: u64,
        error: crate::Error,
    },
}

/// A node store that can be down when the cache opens (see the module docs).
pub struct LazyStore {
    name: String,
    open: Box<Open>,
    clock: Clock,
    state: Mutex<State>,
}

impl std::fmt::Debug for LazyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let up = matches!(*self.lock(), State::Open(_));
        f.debug_struct("LazyStore")
            .field("node", &self.name)
            .field("up", &up)
            .finish()
    }
}

impl LazyStore {
    /// A node whose first opening gave `first`; `reopen` opens it again after a failure.
    pub fn new(
        name: String,
        clock: Clock,
        first: Result<Arc<dyn Store>>,
        reopen: Box<Open>,
    ) -> LazyStore {
        let state = match first {
            Ok(store) => State::Open(store),
            Err(error) => State::Down {
                at_ms: clock.now_ms(),
                error,
            },
        };
        LazyStore {
            name,
            open: reopen,
            clock,
            state: Mutex::new(state),
        }
    }

    /// Whether the node is open now.
    pub fn is_up(&self) -> bool {
        matches!(*self.lock(), State::Open(_))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn store(&self) -> Result<Arc<dyn Store>> {
        {
            let mut state = self.lock();
            match &mut *state {
                State::Open(store) => return Ok(store.clone()),
                State::Down { at_ms, error } => {
                    let now = self.clock.now_ms();
                    if now.saturating_sub(*at_ms) < RETRY_AFTER.as_millis() as u64 {
                        return Err(error.clone());
                    }
                    // This call retries; the others keep failing fast meanwhile.
                    *at_ms = now;
                }
            }
        }
        match (self.open)().await {
            Ok(store) => {
                *self.lock() = State::Open(store.clone());
                Ok(store)
            }
            Err(error) => {
                *self.lock() = State::Down {
                    at_ms: self.clock.now_ms(),
                    error: error.clone(),
                };
                Err(error)
            }
        }
    }
}

#[async_trait]
impl Store for LazyStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store().await?.get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.store().await?.get_many(keys).await
    }

    async fn get_each(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        match self.store().await {
            Ok(store) => store.get_each(keys).await,
            Err(err) => vec![Err(err); keys.len()],
        }
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.store().await?.set(entry).await
    }

    async fn set_framed(&self, key: &str, value: Framed, ttl: Option<Duration>) -> Result<()> {
        self.store().await?.set_framed(key, value, ttl).await
    }

    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        self.store().await?.set_within(entry, budget).await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.store().await?.set_many(entries).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.store().await?.delete(key).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.store().await?.ttl(key).await
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        self.store().await?.set_if_absent(entry).await
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        self.store().await?.eval(script, keys, args).await
    }
}
