"""Freshness and the stampede lock (issue 12) in Python, side by side with dogpile.cache,
the Python peer that has both features over Redis. One Redis, printing ratios.

Run by `make bench-python`, or on its own:

    POLYCACHE_HARNESS=.../polycache-harness python bench/python/fresh.py
    scripts/with-redis python bench/python/fresh.py

1. Reads during a background refresh, loader 50 ms. Per episode a key is written with a
   20 ms freshness, becomes stale, and is read in a tight loop through `get_or_load` until
   the refreshed value shows: every read before that ran while the refresh did. As many
   reads of a fresh key (no refresh) are interleaved. Reported: p50 / p99 / max of both.
   Peer: dogpile.cache `get_or_create` with an `async_creation_runner` (a thread), the
   documented way to serve the stale value while one thread regenerates (its redis
   backend with `distributed_lock`, so a stale read tries the Redis lock: one round trip
   more, by design). Apples to apples: both answer from Redis, both refresh on a thread.
   Then `AsyncCache` (its refresh is a task on the caller's event loop), 8 tasks reading
   each stale key, then as many reads of a fresh key; reads that waited out a load are
   counted.
2. The stampede lock's added latency on a miss: `get_or_load` of a new key each call (a
   loader returning at once), `stampede_lock` on vs off, p50 / p99. Peer: dogpile.cache
   `get_or_create` with `distributed_lock` on (a redis-py `Lock`) vs off (a thread lock).
   polycache's lock costs a `SET NX` and a re-read before the load and an `EVALSHA`
   instead of the `SET` after it.

The 1,000-caller stampede over four processes is bench/stampede.py (`make bench-stampede`).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import PROFILE, host_port, percentile, redis_url, timed
from dogpile.cache import make_region

import polycache

LOAD_SECONDS = 0.05
FRESH_FOR = 0.02  # the stale key's freshness; it is read once past it
EPISODES = 20
READERS = 8  # concurrent tasks reading one stale key (AsyncCache)
MISSES = 2000  # per contender
OLD, NEW = "old", "new"

summary: list[tuple[str, float]] = []


loader_calls = 0


def slow_load() -> str:
    global loader_calls
    loader_calls += 1
    time.sleep(LOAD_SECONDS)
    return NEW


def stats(ms: list[float]) -> str:
    return (
        f"{percentile(ms, 50):8.3f} {percentile(ms, 99):8.3f} {max(ms):8.3f}   ({len(ms):,} reads)"
    )


def episodes(
    make_stale: Callable[[str], None], read: Callable[[str], Any], fresh_key: str
) -> tuple[list[float], list[float]]:
    """Reads of a stale key while its refresh runs, and as many of a fresh key (ms)."""
    during: list[float] = []
    fresh: list[float] = []
    for i in range(EPISODES):
        key = f"swr:{i}"
        make_stale(key)
        time.sleep(FRESH_FOR * 1.25)  # past its freshness: the next read is stale
        reads = 0
        while True:
            ms, got = timed(lambda k=key: read(k))  # type: ignore[misc]
            if got == NEW:
                break  # the refresh stored its value
            assert got == OLD, got
            during.append(ms)
            reads += 1
        for _ in range(reads):
            fresh.append(timed(lambda: read(fresh_key))[0])
    return during, fresh


def refresh_reads(url: str) -> None:
    print(
        f"\nreads during a background refresh (loader {LOAD_SECONDS * 1000:.0f} ms, "
        f"{EPISODES} refreshes), ms"
    )
    print(f"  {'':<62} {'p50':>8} {'p99':>8} {'max':>8}")
    ns = "bench-swr"
    writer = polycache.Cache(url, namespace=ns, fresh_for=FRESH_FOR)
    reader = polycache.Cache(url, namespace=ns, fresh_for=3600)
    reader.set("fresh", OLD, ttl=600)
    before = reader.metrics()

    def stale_write(key: str) -> None:
        writer.set(key, OLD, ttl=600)

    during, fresh = episodes(
        stale_write, lambda k: reader.get_or_load(k, slow_load, ttl=600), "fresh"
    )
    time.sleep(LOAD_SECONDS * 2)  # a refresh started by the last stale read ends
    after = reader.metrics()
    refreshes = after["backgroundRefreshes"] - before["backgroundRefreshes"]
    calls = loader_calls
    print(f"  {'polycache Cache.get_or_load, stale key, refresh running':<62} {stats(during)}")
    print(f"  {'polycache Cache.get_or_load, fresh key':<62} {stats(fresh)}")
    print(f"  background refreshes {refreshes}, loader calls {calls}, for {EPISODES} stale keys")
    ours = percentile(during, 99)
    summary.append(("polycache p99 during refresh / p99 fresh", ours / percentile(fresh, 99)))

    host, port = host_port(url)

    def runner(cache: Any, key: str, creator: Callable[[], Any], mutex: Any) -> None:
        def run() -> None:
            try:
                cache.set(key, creator())
            finally:
                mutex.release()

        threading.Thread(target=run).start()

    region = make_region(async_creation_runner=runner).configure(
        "dogpile.cache.redis",
        expiration_time=FRESH_FOR,
        arguments={
            "host": host,
            "port": port,
            "distributed_lock": True,
            "thread_local_lock": False,  # the runner's thread releases the lock
            "redis_expiration_time": 600,
        },
    )
    region.set("fresh", OLD)

    def dogpile_read(key: str) -> Any:
        # The fresh key is read with a long expiry; the stale ones with FRESH_FOR.
        return region.get_or_create(
            key, slow_load, expiration_time=3600 if key == "fresh" else None
        )

    during_d, fresh_d = episodes(lambda k: region.set(k, OLD), dogpile_read, "fresh")
    time.sleep(LOAD_SECONDS * 2)
    label = "dogpile.cache + async_creation_runner, stale, refresh running"
    print(f"  {label:<62} {stats(during_d)}")
    print(f"  {'dogpile.cache get_or_create, fresh key':<62} {stats(fresh_d)}")
    print(f"  dogpile.cache loader calls {loader_calls - calls} for {EPISODES} stale keys")
    summary.append(
        (
            "dogpile p99 during refresh / p99 fresh",
            percentile(during_d, 99) / percentile(fresh_d, 99),
        )
    )
    summary.append(("polycache / dogpile p99 during refresh", ours / percentile(during_d, 99)))
    reader.close()
    writer.close()


async def refresh_reads_async(url: str) -> None:
    """The same with AsyncCache, whose refresh is a task on the caller's event loop:
    READERS concurrent tasks read each stale key until the refreshed value shows, then as
    many reads of a fresh key."""
    ns = "bench-swr-async"
    writer = polycache.Cache(url, namespace=ns, fresh_for=FRESH_FOR)
    reader = await polycache.AsyncCache.connect(url, namespace=ns, fresh_for=3600)
    await reader.set("fresh", OLD, ttl=600)

    async def slow() -> str:
        await asyncio.sleep(LOAD_SECONDS)
        return NEW

    async def read(key: str, into: list[float]) -> Any:
        started = time.perf_counter()
        got = await reader.get_or_load(key, slow, 600)
        into.append((time.perf_counter() - started) * 1000)
        return got

    during: list[float] = []
    fresh: list[float] = []
    for i in range(EPISODES):
        key = f"swr-async:{i}"
        writer.set(key, OLD, ttl=600)
        await asyncio.sleep(FRESH_FOR * 1.25)
        before = len(during)

        async def until_new(k: str = key) -> None:
            while await read(k, during) != NEW:
                pass

        await asyncio.gather(*(until_new() for _ in range(READERS)))
        per_task = (len(during) - before) // READERS

        async def fresh_reads(n: int = per_task) -> None:
            for _ in range(n):
                await read("fresh", fresh)

        await asyncio.gather(*(fresh_reads() for _ in range(READERS)))
    waited = sum(ms >= LOAD_SECONDS * 1000 * 0.8 for ms in during)
    label = f"polycache AsyncCache, {READERS} tasks"
    print(f"  {label + ', stale key, refresh running':<62} {stats(during)}")
    print(f"  {label + ', fresh key':<62} {stats(fresh)}")
    print(f"  stale reads that took a whole load (>= 40 ms): {waited}")
    summary.append(
        (
            "AsyncCache p99 during refresh / p99 fresh",
            percentile(during, 99) / percentile(fresh, 99),
        )
    )
    reader.close()
    writer.close()


def miss_pair(
    name: str, on: Callable[[str], Any], off: Callable[[str], Any], round_: str
) -> tuple[float, float]:
    """`MISSES` misses each with the lock on and off, interleaved; prints p50/p99; the
    added p50 and p99 (ms)."""
    with_lock: list[float] = []
    without: list[float] = []
    for i in range(MISSES):
        with_lock.append(timed(lambda k=f"{round_}:on:{i}": on(k))[0])  # type: ignore[misc]
        without.append(timed(lambda k=f"{round_}:off:{i}": off(k))[0])  # type: ignore[misc]
    return lock_added(name, with_lock, without)


def lock_added(name: str, with_lock: list[float], without: list[float]) -> tuple[float, float]:
    """Prints the miss latencies with the lock on and off; the added p50 and p99 (ms)."""
    print(f"  {name + ', lock on':<62} {stats(with_lock)}")
    print(f"  {name + ', lock off':<62} {stats(without)}")
    added = (
        percentile(with_lock, 50) - percentile(without, 50),
        percentile(with_lock, 99) - percentile(without, 99),
    )
    print(f"  {'  added by the lock':<62} {added[0]:8.3f} {added[1]:8.3f}")
    return added


def lock_misses(url: str) -> None:
    print(f"\nmiss latency, stampede lock on vs off ({MISSES:,} misses each, loader at once), ms")
    print(f"  {'':<62} {'p50':>8} {'p99':>8} {'max':>8}")
    on = polycache.Cache(url, namespace="bench-lock-on", stampede_lock=True)
    off = polycache.Cache(url, namespace="bench-lock-off")
    ours = miss_pair(
        "polycache Cache.get_or_load",
        lambda k: on.get_or_load(k, lambda: PROFILE, ttl=60),
        lambda k: off.get_or_load(k, lambda: PROFILE, ttl=60),
        "sync",
    )
    assert on.metrics()["locksAcquired"] >= MISSES, on.metrics()
    async_added = asyncio.run(lock_misses_async(url))

    host, port = host_port(url)
    regions = {
        lock: make_region().configure(
            "dogpile.cache.redis",
            expiration_time=60,
            arguments={
                "host": host,
                "port": port,
                "distributed_lock": lock,
                "thread_local_lock": False,
            },
        )
        for lock in (True, False)
    }
    peer = miss_pair(
        "dogpile.cache get_or_create",
        lambda k: regions[True].get_or_create(k, lambda: PROFILE),
        lambda k: regions[False].get_or_create(k, lambda: PROFILE),
        "dogpile",
    )
    summary.append(("polycache Cache added p50 / dogpile added p50", ours[0] / peer[0]))
    summary.append(("polycache AsyncCache added p50 (ms)", async_added[0]))
    on.close()
    off.close()


async def lock_misses_async(url: str) -> tuple[float, float]:
    on = await polycache.AsyncCache.connect(url, namespace="bench-lock-on", stampede_lock=True)
    off = await polycache.AsyncCache.connect(url, namespace="bench-lock-off")
    with_lock: list[float] = []
    without: list[float] = []

    async def once(cache: polycache.AsyncCache, key: str) -> float:
        load: Callable[[], Awaitable[Any]] = lambda: cache.get_or_load(key, lambda: PROFILE, 60)  # noqa: E731
        started = time.perf_counter()
        await load()
        return (time.perf_counter() - started) * 1000

    for i in range(MISSES):
        with_lock.append(await once(on, f"async:on:{i}"))
        without.append(await once(off, f"async:off:{i}"))
    added = lock_added("polycache AsyncCache.get_or_load", with_lock, without)
    on.close()
    off.close()
    return added


def run(url: str) -> None:
    refresh_reads(url)
    asyncio.run(refresh_reads_async(url))
    lock_misses(url)
    print("\nsummary (freshness and the stampede lock)")
    for what, value in summary:
        print(f"  {what:<62} {value:8.2f}")


def main() -> None:
    with redis_url() as url:
        print(f"polycache {polycache.__version__} freshness and lock vs dogpile.cache on {url}")
        run(url)


if __name__ == "__main__":
    sys.exit(main())
