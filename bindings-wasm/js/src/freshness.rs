//! Freshness decisions (docs/FORMAT.md §7), as every binding makes them.

use wasm_bindgen::prelude::*;

/// Early refresh (XFetch): whether a read at `now` of a value fresh until `freshUntil` whose
/// last load took `delta` (all ms) refreshes it now; `beta` > 0, `random` in [0, 1).
/// Milliseconds are JS numbers (exact up to 2^53).
#[wasm_bindgen(js_name = shouldRefreshEarly)]
pub fn should_refresh_early(
    now: f64,
    #[wasm_bindgen(js_name = freshUntil)] fresh_until: f64,
    delta: f64,
    beta: f64,
    random: f64,
) -> bool {
    let ms = |v: f64| v.max(0.0) as u64;
    polycache::contract::should_refresh_early(ms(now), ms(fresh_until), ms(delta), beta, random)
}
