//! An injectable clock, so TTL tests advance time instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the cache reads "now": the system clock, or a mock that tests move by hand.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    mock: Option<Arc<AtomicU64>>,
}

/// The handle that moves a mock [`Clock`].
#[derive(Debug, Clone)]
pub struct MockClock {
    now_ms: Arc<AtomicU64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { mock: None }
    }

    /// A clock frozen at a fixed instant, and the handle that advances it.
    pub fn mock() -> (Clock, MockClock) {
        let now_ms = Arc::new(AtomicU64::new(1_700_000_000_000));
        (
            Clock {
                mock: Some(now_ms.clone()),
            },
            MockClock { now_ms },
        )
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.mock {
            Some(now) => now.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

impl MockClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}
