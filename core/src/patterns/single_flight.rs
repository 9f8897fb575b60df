//! Local single-flight: concurrent callers for one key share one in-flight load.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::OnceCell;

use crate::codec::Value;
use crate::error::{Error, ErrorKind, Result};

type Flight = Arc<OnceCell<Result<Value>>>;

thread_local! {
    /// The loads being polled on this thread right now: (single-flight, key) pairs.
    static LOADING: RefCell<Vec<(usize, String)>> = const { RefCell::new(Vec::new()) };
}

/// A load future that marks its key as loading on this thread while it is polled, so a
/// call for the same key made from inside the load (a loader asking for its own key) is
/// recognised instead of waiting for itself forever.
struct Loading<Fut> {
    load: Pin<Box<Fut>>,
    owner: usize,
    key: String,
}

impl<Fut: Future> Future for Loading<Fut> {
    type Output = Fut::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let entry = (self.owner, self.key.clone());
        LOADING.with(|loading| loading.borrow_mut().push(entry));
        let polled = self.load.as_mut().poll(cx);
        LOADING.with(|loading| loading.borrow_mut().pop());
        polled
    }
}

/// The error of a load for `key` asked for by the loader of `key` itself (which would
/// otherwise wait for its own result forever). Hosts whose loaders run outside the polling
/// thread (asyncio, JS) detect the case themselves and report it with this.
pub fn reentrant_load(key: &str) -> Error {
    Error::new(
        ErrorKind::Loader,
        format!("the loader of {key:?} asked for {key:?} again: it would wait for itself forever"),
    )
}

/// Deduplicates concurrent loads per key within one process.
///
/// The first caller's future runs; later callers wait for its result (errors included, so
/// a failing loader is still called once). If the running caller is cancelled, a waiting
/// caller's future takes over.
#[derive(Debug, Default)]
pub struct SingleFlight {
    flights: Mutex<HashMap<String, Flight>>,
}

impl SingleFlight {
    /// Runs `load` unless a load for `key` is already in flight, then returns its result.
    pub async fn run<F, Fut>(&self, key: &str, load: F) -> Result<Value>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value>>,
    {
        let owner = self as *const Self as usize;
        let reentrant = LOADING.with(|loading| {
            loading
                .borrow()
                .iter()
                .any(|(o, k)| *o == owner && k == key)
        });
        if reentrant {
            return Err(reentrant_load(key));
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights.entry(key.to_owned()).or_default().clone()
        };
        let loading = || Loading {
            load: Box::pin(load()),
            owner,
            key: key.to_owned(),
        };
        let result = flight.get_or_init(loading).await.clone();
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(key);
        }
        result
    }
}
