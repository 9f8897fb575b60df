//! TTL decisions, pure so every runtime (and an edge function doing its own I/O) makes
//! the same ones.

use std::time::Duration;

use crate::codec::Meta;

/// `ttl` shortened by the jitter: `ttl × (1 − jitter × unit)` for `unit` in [0, 1), never
/// below 1 ms. Caches draw `unit` at random, so keys written together expire apart.
pub fn jittered(ttl: Duration, jitter: f64, unit: f64) -> Duration {
    if jitter <= 0.0 {
        return ttl;
    }
    let cut = ttl.mul_f64((jitter * unit).clamp(0.0, 1.0));
    ttl.saturating_sub(cut).max(Duration::from_millis(1))
}

/// Whether a value is inside its fresh window at `now_ms` (stale-while-revalidate): a value
/// without a window (`fresh_until_ms == 0`) is fresh until it expires.
pub fn is_fresh(meta: &Meta, now_ms: u64) -> bool {
    meta.fresh_until_ms == 0 || now_ms < meta.fresh_until_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_only_shortens() {
        let ttl = Duration::from_secs(100);
        assert_eq!(jittered(ttl, 0.0, 0.9), ttl);
        assert_eq!(jittered(ttl, 0.5, 0.5), Duration::from_secs(75));
        assert_eq!(jittered(ttl, 1.0, 0.999_999), Duration::from_millis(1));
        assert_eq!(
            jittered(Duration::from_millis(1), 1.0, 0.99),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn freshness() {
        let mut meta = Meta::default();
        assert!(is_fresh(&meta, u64::MAX));
        meta.fresh_until_ms = 1_000;
        assert!(is_fresh(&meta, 999));
        assert!(!is_fresh(&meta, 1_000));
    }
}
