//! TTL decisions, pure so every runtime (and an edge function doing its own I/O) makes
//! the same ones.

use std::time::Duration;

use crate::codec::Meta;
use crate::error::{Error, Result};

/// The longest TTL polycache accepts: 100 years. Longer values are almost always a unit
/// mistake (milliseconds passed as seconds), and Redis refuses expiries that overflow.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A TTL given in seconds by a host language, checked once for every binding: finite,
/// at least 0, at most [`MAX`]. `0` means "no expiry", as in the config; resolution is
/// 1 ms (a positive TTL below 1 ms is stored as 1 ms).
///
/// # Errors
/// A config error for NaN, infinities, negative values and values above [`MAX`].
pub fn from_secs(secs: f64) -> Result<Duration> {
    if !secs.is_finite() || secs < 0.0 || secs > MAX.as_secs_f64() {
        return Err(Error::config(format!(
            "ttl must be a number of seconds between 0 and {} (0 = no expiry), not {secs}",
            MAX.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A TTL as Redis `PX` milliseconds: `None` for no expiry (`0`), at least 1 ms otherwise.
pub fn as_px(ttl: Duration) -> Option<u64> {
    if ttl.is_zero() {
        return None;
    }
    Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
}

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
    fn ttl_from_seconds_is_checked() {
        assert_eq!(from_secs(1.5).unwrap(), Duration::from_millis(1500));
        assert_eq!(from_secs(0.0).unwrap(), Duration::ZERO);
        assert_eq!(from_secs(MAX.as_secs_f64()).unwrap(), MAX);
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -0.001,
            1e17,
            18_446_744_073_709_553.0,
        ] {
            let err = from_secs(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{bad}");
        }
    }

    #[test]
    fn px_milliseconds() {
        assert_eq!(as_px(Duration::ZERO), None);
        assert_eq!(as_px(Duration::from_micros(10)), Some(1));
        assert_eq!(as_px(Duration::from_secs(2)), Some(2000));
        assert_eq!(as_px(MAX), Some(MAX.as_millis() as u64));
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
