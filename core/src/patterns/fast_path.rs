//! When a host may run cache calls on a *blocking* cache on its own event-loop thread.
//!
//! A host that batches the calls of one event-loop turn (the Node binding does) can run
//! them on a blocking cache without a thread hop, provided no command holds the loop for
//! long: [`FastPath::budgeted`] caps the timeouts of that blocking cache. A store failure
//! there means the store is slow or gone, so [`FastPath::record_failure`] turns the fast
//! path off for [`FastPath::COOL_DOWN`]; meanwhile the host sends calls to its async cache,
//! which reports real errors within the configured timeouts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Config;

/// The on/off switch of a host's fast path (see the module docs).
#[derive(Debug, Default)]
pub struct FastPath {
    clock: Clock,
    /// Clock time (ms) from which the fast path is open again; 0 when it never closed.
    off_until_ms: AtomicU64,
}

impl FastPath {
    /// Longest a command of the fast path may hold the event loop.
    pub const COMMAND_BUDGET: Duration = Duration::from_millis(5);
    /// Longest connecting may hold the event loop (once per connection).
    pub const CONNECT_BUDGET: Duration = Duration::from_millis(20);
    /// How long the fast path stays off after a store failure.
    pub const COOL_DOWN: Duration = Duration::from_secs(1);

    /// An open fast path on the system clock.
    pub fn new() -> Self {
        FastPath::with_clock(Clock::system())
    }

    /// An open fast path reading time from `clock` (tests pass [`Clock::mock`]).
    pub fn with_clock(clock: Clock) -> Self {
        FastPath {
            clock,
            off_until_ms: AtomicU64::new(0),
        }
    }

    /// The configuration of the fast path's blocking cache: `config` with its command and
    /// connect timeouts capped at [`FastPath::COMMAND_BUDGET`] and
    /// [`FastPath::CONNECT_BUDGET`].
    pub fn budgeted(config: &Config) -> Config {
        let mut config = config.clone();
        config.command_timeout = config.command_timeout.min(FastPath::COMMAND_BUDGET);
        config.connect_timeout = config.connect_timeout.min(FastPath::CONNECT_BUDGET);
        config
    }

    /// Whether calls may take the fast path now.
    pub fn is_open(&self) -> bool {
        self.clock.now_ms() >= self.off_until_ms.load(Ordering::Relaxed)
    }

    /// A store failure on the fast path (or while building its cache): off for
    /// [`FastPath::COOL_DOWN`] from now. Never reopens a path that is [`shut`](Self::shut).
    pub fn record_failure(&self) {
        let until = self
            .clock
            .now_ms()
            .saturating_add(FastPath::COOL_DOWN.as_millis() as u64);
        self.off_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Off for good (the cache was closed: the async path reports the closed state).
    pub fn shut(&self) {
        self.off_until_ms.store(u64::MAX, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_open() {
        let (clock, _mock) = Clock::mock();
        assert!(FastPath::with_clock(clock).is_open());
        assert!(FastPath::new().is_open());
    }

    #[test]
    fn a_failure_closes_it_for_the_cool_down() {
        let (clock, mock) = Clock::mock();
        let fast = FastPath::with_clock(clock);
        fast.record_failure();
        assert!(!fast.is_open());
        mock.advance(FastPath::COOL_DOWN - Duration::from_millis(1));
        assert!(!fast.is_open());
        mock.advance(Duration::from_millis(1));
        assert!(fast.is_open());
    }

    #[test]
    fn a_later_failure_restarts_the_cool_down() {
        let (clock, mock) = Clock::mock();
        let fast = FastPath::with_clock(clock);
        fast.record_failure();
        mock.advance(FastPath::COOL_DOWN);
        assert!(fast.is_open());
        mock.advance(Duration::from_millis(300));
        fast.record_failure();
        mock.advance(FastPath::COOL_DOWN - Duration::from_millis(1));
        assert!(!fast.is_open());
        mock.advance(Duration::from_millis(1));
        assert!(fast.is_open());
    }

    #[test]
    fn shut_is_for_good() {
        let (clock, mock) = Clock::mock();
        let fast = FastPath::with_clock(clock);
        fast.shut();
        assert!(!fast.is_open());
        fast.record_failure();
        mock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
        assert!(!fast.is_open());
    }

    #[test]
    fn budget_caps_timeouts_only_downwards() {
        let config = Config::default();
        let fast = FastPath::budgeted(&config);
        assert_eq!(fast.command_timeout, FastPath::COMMAND_BUDGET);
        assert_eq!(fast.connect_timeout, FastPath::CONNECT_BUDGET);
        assert_eq!(fast.url, config.url);

        let tight = Config {
            command_timeout: Duration::from_millis(2),
            connect_timeout: Duration::from_millis(10),
            ..Config::default()
        };
        let fast = FastPath::budgeted(&tight);
        assert_eq!(fast.command_timeout, Duration::from_millis(2));
        assert_eq!(fast.connect_timeout, Duration::from_millis(10));
    }
}
