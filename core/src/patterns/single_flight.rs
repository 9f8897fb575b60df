//! Local single-flight: concurrent callers for one key share one in-flight load.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use crate::codec::Value;
use crate::error::Result;

type Flight = Arc<OnceCell<Result<Value>>>;

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
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights.entry(key.to_owned()).or_default().clone()
        };
        let result = flight.get_or_init(load).await.clone();
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(key);
        }
        result
    }

    /// Number of keys with a load in flight.
    pub fn in_flight(&self) -> usize {
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
