//! The `freshness` interface: core's early-refresh decision (docs/FORMAT.md §7).

use crate::bindings::exports::polycache::cache::freshness::Guest;
use crate::Component;

impl Guest for Component {
    fn should_refresh_early(
        now: u64,
        fresh_until: u64,
        delta: u64,
        beta: f64,
        random: f64,
    ) -> bool {
        polycache::contract::should_refresh_early(now, fresh_until, delta, beta, random)
    }
}
