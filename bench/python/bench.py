"""polycache vs peer Python cache libraries, one run, same Redis, printing ratios.

Run with `make bench-python` (it starts a redis-server through the harness). Each number is
the best of several rounds: the machine is shared and noisy, so compare ratios, not times.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import codec  # bench/python/codec.py: the codec path at every size
import ormsgpack
import redis
import redis.asyncio as aredis
from _common import PROFILE, rate, start_redis, stop_redis

import polycache

ROUNDS = 5
SEQ_OPS = 3000
CONCURRENCY = 50
ASYNC_OPS = 200  # per task


def best(fn: Callable[[], float]) -> float:
    """Ops per second, best of ROUNDS."""
    return max(fn() for _ in range(ROUNDS))


def report(title: str, ours: tuple[str, float], peers: list[tuple[str, float]]) -> None:
    print(f"\n{title}")
    print(f"  {ours[0]:<44} {ours[1]:>10,.0f} ops/s")
    for name, ops in peers:
        print(f"  {name:<44} {ops:>10,.0f} ops/s   polycache is {ours[1] / ops:4.2f}x")


def paired(title: str, fns: dict[str, Callable[[], Any]]) -> None:
    """Sequential calls of each of `fns` (polycache's first), taking turns in slices within
    each round (`codec.timed_rounds`): ops/s from the median round, and the ratio as the
    median over rounds of the two times taken in the same round. On this VM a small round
    trip swings between about 25 and 130 µs for seconds at a time; measured one after the
    other, each client's best round picked its own phase."""
    rounds = codec.timed_rounds(fns, len(json.dumps(PROFILE)))
    ours, *peers = fns
    print(f"\n{title}")
    print(f"  {ours:<44} {1 / statistics.median(r[ours] for r in rounds):>10,.0f} ops/s")
    for name in peers:
        ops = 1 / statistics.median(r[name] for r in rounds)
        ratio = statistics.median(r[name] / r[ours] for r in rounds)
        print(f"  {name:<44} {ops:>10,.0f} ops/s   polycache is {ratio:4.2f}x")


def sequential(url: str) -> None:
    cache = polycache.Cache(url, namespace="bench")
    cache.set("profile", PROFILE)
    client = redis.Redis.from_url(url)
    client.set("json-profile", json.dumps(PROFILE))
    client.set("msgpack-profile", ormsgpack.packb(PROFILE))
    assert cache.get("profile") == PROFILE

    paired(
        f"cache hit, sequential (gets of a ~{len(json.dumps(PROFILE))}-byte object)",
        {
            "polycache Cache.get": lambda: cache.get("profile"),
            "redis-py+hiredis GET + json.loads": lambda: json.loads(
                client.get("json-profile")  # type: ignore[arg-type]
            ),
            "redis-py+hiredis GET + ormsgpack.unpackb": lambda: ormsgpack.unpackb(
                client.get("msgpack-profile")  # type: ignore[arg-type]
            ),
        },
    )


async def concurrent(url: str) -> None:
    from aiocache import RedisCache
    from aiocache.serializers import JsonSerializer

    cache = await polycache.AsyncCache.connect(url, namespace="bench")
    await cache.set("profile", PROFILE)
    client = aredis.Redis.from_url(url, max_connections=CONCURRENCY)
    await client.set("json-profile", json.dumps(PROFILE))
    host, port = url.removeprefix("redis://").split(":")
    aio = RedisCache(serializer=JsonSerializer(), endpoint=host, port=int(port), namespace="aio")
    await aio.set("profile", PROFILE)

    async def run(get: Callable[[], Awaitable[Any]]) -> float:
        async def task() -> None:
            for _ in range(ASYNC_OPS):
                await get()

        started = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(CONCURRENCY)))
        return rate(CONCURRENCY * ASYNC_OPS, started)

    async def redis_get() -> Any:
        return json.loads(await client.get("json-profile"))  # type: ignore[arg-type]

    async def best_async(get: Callable[[], Awaitable[Any]]) -> float:
        return max([await run(get) for _ in range(ROUNDS)])

    ours = await best_async(lambda: cache.get("profile"))
    peers = [
        ("redis.asyncio+hiredis GET + json.loads", await best_async(redis_get)),
        ("aiocache RedisCache (JSON)", await best_async(lambda: aio.get("profile"))),
    ]
    report(
        f"cache hit, asyncio, {CONCURRENCY} concurrent tasks",
        ("polycache AsyncCache.get", ours),
        peers,
    )
    await client.aclose()
    await aio.close()


def decorator_sync(url: str) -> None:
    from dogpile.cache import make_region

    cache = polycache.Cache(url, namespace="bench")
    host, port = url.removeprefix("redis://").split(":")
    region = make_region().configure(
        "dogpile.cache.redis",
        expiration_time=300,
        arguments={"host": host, "port": int(port), "distributed_lock": False},
    )

    @cache.cached(ttl=300, key="profile:{0}")
    def ours_fn(user_id: int) -> dict[str, Any]:
        return PROFILE

    @region.cache_on_arguments()
    def dogpile_fn(user_id: int) -> dict[str, Any]:
        return PROFILE

    ours_fn(1)
    dogpile_fn(1)

    paired(
        "decorator hit, sync",
        {
            "polycache @cache.cached": lambda: ours_fn(1),
            "dogpile.cache cache_on_arguments (redis)": lambda: dogpile_fn(1),
        },
    )


async def decorator_async(url: str) -> None:
    from cashews import cache as cashews

    cashews.setup(url)
    cache = await polycache.AsyncCache.connect(url, namespace="bench")

    @cache.cached(ttl=300, key="profile:{0}")
    async def ours_fn(user_id: int) -> dict[str, Any]:
        return PROFILE

    @cashews(ttl="5m")
    async def cashews_fn(user_id: int) -> dict[str, Any]:
        return PROFILE

    await ours_fn(1)
    await cashews_fn(1)

    async def run(fn: Callable[[int], Awaitable[Any]]) -> float:
        started = time.perf_counter()
        for _ in range(SEQ_OPS):
            await fn(1)
        return rate(SEQ_OPS, started)

    ours = max([await run(ours_fn) for _ in range(ROUNDS)])
    peer = max([await run(cashews_fn) for _ in range(ROUNDS)])
    report(
        "decorator hit, asyncio, sequential awaits",
        ("polycache @AsyncCache.cached", ours),
        [("cashews @cache (redis)", peer)],
    )


def main() -> None:
    url, proc = start_redis()
    print(f"polycache {polycache.__version__} vs peers on {url}, Python {sys.version.split()[0]}")
    try:
        sequential(url)
        asyncio.run(concurrent(url))
        decorator_sync(url)
        asyncio.run(decorator_async(url))
        codec.run(url)
    finally:
        stop_redis(proc)


if __name__ == "__main__":
    main()
