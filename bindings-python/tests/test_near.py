"""The near tier from Python's sync `Cache`: hits are served without a store round trip
(the latency histogram counts every store round trip, and it does not move), return the
same object each time, and a write by another client evicts."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import pytest

import polycache


def store_round_trips(cache: polycache.Cache | polycache.AsyncCache) -> int:
    return sum(count for _, count in cache.metrics()["latencyUs"])


def eventually(what: str, done: Any, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, f"timed out waiting for: {what}"
        time.sleep(0.005)


@pytest.fixture(params=["standalone", "shards", "cluster"])
def redis_url(request: pytest.FixtureRequest, endpoints: dict[str, Any]) -> str:
    return str(endpoints[request.param])


def populate(cache: polycache.Cache, key: str) -> None:
    """Reads `key` until the near tier holds it (the cache's own write's push may arrive
    after a first read and rightly evict it)."""

    def held() -> bool:
        cache.get(key)
        before = cache.metrics()["nearHits"]
        cache.get(key)
        return bool(cache.metrics()["nearHits"] > before)

    eventually("near entry", held)


def test_near_hits_skip_redis_and_share_one_object(redis_url: str, namespace: str) -> None:
    cache = polycache.Cache(redis_url, namespace=namespace, near_cache=1000)
    writer = polycache.Cache(redis_url, namespace=namespace)
    writer.set("user", {"name": "Ada", "langs": ["en", "fr"]})
    # That write's own push must not land after the entry is stored (and evict it).
    eventually("the write's push", lambda: cache.metrics()["nearInvalidations"] >= 1)
    populate(cache, "user")
    trips = store_round_trips(cache)
    first = cache.get("user")
    assert first == {"name": "Ada", "langs": ["en", "fr"]}
    for _ in range(100):
        assert cache.get("user") is first
    assert store_round_trips(cache) == trips, "a near hit went to Redis"
    metrics = cache.metrics()
    assert metrics["nearHits"] >= 101 and metrics["nearEntries"] == 1

    # Another client's write evicts; the new value is read.
    writer.set("user", {"name": "Grace"})
    eventually("evicted", lambda: cache.get("user") == {"name": "Grace"})
    assert cache.metrics()["nearInvalidations"] >= 1
    writer.delete("user")
    eventually("deleted", lambda: cache.get("user") is None)


def test_cached_decorator_hits_the_near_tier(redis_url: str, namespace: str) -> None:
    cache = polycache.Cache(redis_url, namespace=namespace, nearCache=1000)
    calls = []

    @cache.cached(ttl=60, key="sq:{0}")
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    pushes = cache.metrics()["nearInvalidations"]
    assert square(7) == 49
    # The load's own write is pushed back; wait for it so it cannot evict later.
    eventually("the load's push", lambda: cache.metrics()["nearInvalidations"] > pushes)

    def near_hit() -> bool:
        before = cache.metrics()["nearHits"]
        assert square(7) == 49
        return bool(cache.metrics()["nearHits"] > before)

    eventually("decorator near hit", near_hit)
    trips = store_round_trips(cache)
    for _ in range(100):
        assert square(7) == 49
    assert store_round_trips(cache) == trips
    assert calls == [7]


def test_near_cache_on_memory_is_a_config_error() -> None:
    with pytest.raises(polycache.ConfigError):
        polycache.Cache("memory://", near_cache=10)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_never_serves_the_parents_tier(
    endpoints: dict[str, Any], namespace: str
) -> None:
    url = str(endpoints["standalone"])
    cache = polycache.Cache(url, namespace=namespace, near_cache=100)
    writer = polycache.Cache(url, namespace=namespace)
    writer.set("k", "v1")
    eventually("the write's push", lambda: cache.metrics()["nearInvalidations"] >= 1)
    populate(cache, "k")
    pid = os.fork()
    if pid == 0:  # the child: no near hit, nothing kept; closing leaves the parent alone
        code = 0
        try:
            hits = cache.metrics()["nearHits"]
            if cache.get("k") != "v1" or cache.metrics()["nearHits"] != hits:
                code = 1
            cache.close()
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    # The parent still tracks: a hit, then a write elsewhere evicts.
    populate(cache, "k")
    writer.set("k", "v2")
    eventually("evicted in the parent", lambda: cache.get("k") == "v2")


def test_async_cache_near_hits_skip_the_runtime(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        cache = polycache.AsyncCache(redis_url, namespace=namespace, near_cache=1000)
        writer = polycache.Cache(redis_url, namespace=namespace)
        writer.set("user", {"name": "Ada"})
        end = time.monotonic() + 10
        while cache.metrics()["nearInvalidations"] < 1:  # that write's own push
            assert time.monotonic() < end, "no push"
            await asyncio.sleep(0.005)

        async def held() -> bool:
            await cache.get("user")
            before = cache.metrics()["nearHits"]
            await cache.get("user")
            return bool(cache.metrics()["nearHits"] > before)

        end = time.monotonic() + 10
        while not await held():
            assert time.monotonic() < end, "no near hit"
            await asyncio.sleep(0.005)
        trips = store_round_trips(cache)
        first = await cache.get("user")
        for _ in range(100):
            assert await cache.get("user") is first
            assert await cache.get_or_load("user", lambda: {"name": "x"}) is first
        assert store_round_trips(cache) == trips

    asyncio.run(main())
