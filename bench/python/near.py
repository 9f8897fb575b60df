"""The near tier (issue 11) against in-process and Redis-backed peers, one run, printing ratios.

Run with `make bench-python` (after bench.py; it starts its own redis-server through the
harness). Each rate is the best of ROUNDS rounds, rounds outermost so a burst of load elsewhere
on the shared machine hits every contender alike: compare the ratios, not the times.

- `@cache.cached` near hit vs dogpile.cache `cache_on_arguments` (redis backend): target >= 20x
- `@cache.cached` near hit vs cachetools `TTLCache.get`: target >= 0.5x
- `Cache.get` near hit vs cachetools `TTLCache.get`: target >= 0.5x
- invalidation delay: another client's `set` returning -> this process's near entry gone,
  on loopback: target p99 < 5 ms
- 100,000 entries of the ~200-byte object in a near tier: its byte bound holds (RSS shown)
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import cachetools
from _common import PROFILE, loop, percentile, redis_url
from dogpile.cache import make_region

import polycache

ROUNDS = 5
OPS = 20_000
REDIS_OPS = 2_000  # per round for contenders that go to Redis on every call
DELAY_SAMPLES = 1_000
ENTRIES = 100_000
BYTE_BOUND = 64 << 20  # the default nearCacheBytes

results: list[tuple[str, float, float]] = []  # (what, ratio, target)


def best_of(contenders: dict[str, Callable[[], float]]) -> dict[str, float]:
    rates = dict.fromkeys(contenders, 0.0)
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            rates[name] = max(rates[name], run())
    return rates


def ratio(what: str, ours: float, peer: float, target: float) -> None:
    results.append((what, ours / peer, target))


def hits(url: str) -> None:
    cache = polycache.Cache(url, namespace="near-bench", near_cache=10_000)
    host, port = url.removeprefix("redis://").split(":")
    region = make_region().configure(
        "dogpile.cache.redis",
        expiration_time=300,
        arguments={"host": host, "port": int(port), "distributed_lock": False},
    )
    ttl_cache: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=10_000, ttl=300)
    ttl_cache["profile"] = PROFILE

    @cache.cached(ttl=300, key="profile:{0}")
    def ours_fn(user_id: int) -> dict[str, Any]:
        return PROFILE

    @region.cache_on_arguments()
    def dogpile_fn(user_id: int) -> dict[str, Any]:
        return PROFILE

    @cachetools.cached(cachetools.TTLCache(maxsize=10_000, ttl=300))
    def cachetools_fn(user_id: int) -> dict[str, Any]:
        return PROFILE

    cache.set("profile", PROFILE, ttl=300)
    for warm in (ours_fn, dogpile_fn, cachetools_fn):
        warm(1)
    # The near tier stores the first read's reply; later reads are near hits.
    for _ in range(3):
        ours_fn(1)
        cache.get("profile")
    before = cache.metrics()["nearHits"]
    rates = best_of(
        {
            "polycache @cache.cached (near hit)": loop(lambda: ours_fn(1), OPS),
            "polycache Cache.get (near hit)": loop(lambda: cache.get("profile"), OPS),
            "cachetools TTLCache.get": loop(lambda: ttl_cache.get("profile"), OPS),
            "cachetools @cached(TTLCache)": loop(lambda: cachetools_fn(1), OPS),
            "dogpile.cache cache_on_arguments (redis)": loop(lambda: dogpile_fn(1), REDIS_OPS),
        }
    )
    m = cache.metrics()
    served = m["nearHits"] - before
    expected = ROUNDS * 2 * OPS
    print(f"\nnear hits (best of {ROUNDS} rounds)")
    for name, rate in rates.items():
        print(f"  {name:<44} {rate:>12,.0f} ops/s")
    print(f"  near hits counted: {served:,} of {expected:,} polycache calls")
    decorated = rates["polycache @cache.cached (near hit)"]
    get = rates["polycache Cache.get (near hit)"]
    ttl_get = rates["cachetools TTLCache.get"]
    dogpile = rates["dogpile.cache cache_on_arguments (redis)"]
    ratio("@cache.cached near hit vs dogpile.cache (redis)", decorated, dogpile, 20)
    ratio("@cache.cached near hit vs cachetools TTLCache.get", decorated, ttl_get, 0.5)
    ratio("Cache.get near hit vs cachetools TTLCache.get", get, ttl_get, 0.5)
    ratio(
        "@cache.cached near hit vs cachetools @cached",
        decorated,
        rates["cachetools @cached(TTLCache)"],
        0,
    )
    cache.close()


def invalidation_delay(url: str) -> None:
    """Another client's write returning -> the near entry gone, polled in a tight loop."""
    reader = polycache.Cache(url, namespace="near-delay", near_cache=100)
    writer = polycache.Cache(url, namespace="near-delay")
    writer.set("k", 0, ttl=300)
    delays = []
    deadline = time.monotonic() + 60
    for i in range(1, DELAY_SAMPLES + 1):
        # Cache it: read until a read is a near hit (a read overtaken by the previous
        # write's push is not stored).
        while True:
            before = reader.metrics()["nearHits"]
            reader.get("k")
            if reader.metrics()["nearHits"] > before:
                break
            if time.monotonic() > deadline:
                raise SystemExit("near tier did not store the key")
        writer.set("k", i, ttl=300)
        returned = time.perf_counter()
        while reader.metrics()["nearEntries"]:
            if time.monotonic() > deadline:
                raise SystemExit("invalidation not seen")
        delays.append(time.perf_counter() - returned)
    ms = [d * 1000 for d in delays]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    print(f"\ninvalidation delay, loopback ({DELAY_SAMPLES} writes by another client)")
    print(f"  p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {max(ms):.3f} ms")
    results.append(("invalidation delay p99 (ms, lower is better)", p99, -5))
    reader.close()
    writer.close()


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def fill(url: str, ns: str, entries: int, bound: int) -> tuple[dict[str, Any], int, float]:
    """Reads ENTRIES keys through a near tier of `entries` / `bound` bytes: its metrics,
    peak nearBytes and the RSS it added (MiB)."""
    keys = [f"user:{i}" for i in range(ENTRIES)]
    rss_before = rss_mib()
    cache = polycache.Cache(url, namespace=ns, near_cache=entries, near_cache_bytes=bound)
    peak = 0
    for start in range(0, ENTRIES, 1000):
        cache.get_many(keys[start : start + 1000])
        peak = max(peak, cache.metrics()["nearBytes"])
    m = cache.metrics()
    grown = rss_mib() - rss_before
    cache.close()
    return m, peak, grown


def byte_bound(url: str) -> None:
    writer = polycache.Cache(url, namespace="near-bytes")
    for start in range(0, ENTRIES, 1000):
        writer.set_many({f"user:{i}": PROFILE for i in range(start, start + 1000)}, ttl=600)
    writer.close()
    print(f"\nnear tier reading {ENTRIES:,} keys of the ~200-byte object")
    # Room for all of them first (RSS grows from a fresh heap), then the default byte bound.
    for label, bound in (("1 GiB", 1 << 30), ("64 MiB (default)", BYTE_BOUND)):
        m, peak, grown = fill(url, "near-bytes", ENTRIES, bound)
        print(
            f"  bound {label}: nearEntries {m['nearEntries']:,}, nearBytes "
            f"{m['nearBytes'] / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB), "
            f"RSS +{grown:.1f} MiB"
        )
        results.append((f"near tier peak bytes / bound ({label})", peak / bound, -1))


def main() -> None:
    with redis_url() as url:
        print(f"polycache {polycache.__version__} near tier vs peers on {url}")
        hits(url)
        invalidation_delay(url)
        byte_bound(url)
    print("\nsummary (issue 11 targets)")
    for what, value, target in results:
        if target > 0:
            verdict = f"target >= {target}x: {'met' if value >= target else 'NOT met'}"
        elif target < 0:
            verdict = f"target <= {-target}: {'met' if value <= -target else 'NOT met'}"
        else:
            verdict = "for reference"
        print(f"  {what:<52} {value:8.2f}   ({verdict})")


if __name__ == "__main__":
    sys.exit(main())
