"""Freshness from Python: per-call options of every `get_or_load` form and of `@cached`,
and `get_entry` (the value with `stale`, `freshness` and `age`). The rules themselves are
core's, tested with a mock clock in core/tests/fresh.rs; these tests check that each
Python surface hands its options to core and reports core's answer. Time passes for
real here (a short `fresh_for`), and every wait polls a condition with a deadline."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

import polycache
from conftest import wait_until
from polycache import AsyncCache, Cache, Entry


def test_per_call_fresh_for_makes_the_value_stale(url: str, namespace: str) -> None:
    """The cache has no `fresh_for`; the call's makes the value stale once it passes, and
    `get_entry` says so (with the stale value and its age) while one refresh stores the
    next value in the background."""
    cache = Cache(url, namespace=namespace, ttl=60)
    first = cache.get_entry("k", lambda: 1, fresh_for=0.05)
    assert isinstance(first, Entry)
    assert (first.value, first.stale, first.freshness, first.age) == (1, False, "fresh", 0.0)
    seen: list[Entry] = []

    def stale_seen() -> bool:
        seen.append(cache.get_entry("k", lambda: 2, fresh_for=0.05))
        return seen[-1].stale

    wait_until(stale_seen, "the value is past the call's fresh_for")
    stale = seen[-1]
    assert (stale.value, stale.freshness) == (1, "stale")
    assert stale.age is not None and stale.age >= 0.05
    wait_until(lambda: cache.get("k") == 2, "the background refresh stores its value")
    assert cache.metrics()["staleServed"] >= 1


def test_get_or_load_fresh_for_per_call_skips_the_near_tier(
    endpoints: dict[str, Any], namespace: str
) -> None:
    """A near-tier hit keeps no envelope: a call with its own `fresh_for` must read Redis,
    or the value would never go stale and never be refreshed."""
    cache = Cache(endpoints["standalone"], namespace=namespace, ttl=60, near_cache=100)
    assert cache.get_or_load("k", lambda: 1, fresh_for=0.05) == 1
    calls: list[int] = []

    def loader() -> int:
        calls.append(1)
        return 2

    def refreshed() -> bool:
        cache.get_or_load("k", loader, fresh_for=0.05)
        return bool(calls)

    wait_until(refreshed, "a stale read starts a refresh")
    wait_until(lambda: cache.get("k") == 2, "the refresh stores its value")


def test_get_entry_reports_fail_safe_after_a_loader_failure(url: str, namespace: str) -> None:
    """With `max_stale` per call, the last good value outlives the key: once Redis expired
    it (the call's `ttl`) and the loader fails, `get_entry` answers with it, marked."""
    cache = Cache(url, namespace=namespace)
    assert cache.get_entry("k", lambda: "good", ttl=0.05, max_stale=60).freshness == "fresh"

    def failing() -> Any:
        raise RuntimeError("the database is down")

    seen: list[Entry] = []

    def fail_safe_seen() -> bool:
        seen.append(cache.get_entry("k", failing, max_stale=60, fail_safe_backoff=60))
        return seen[-1].freshness == "fail-safe"

    wait_until(fail_safe_seen, "the key expired and the loader failed")
    entry = seen[-1]
    assert (entry.value, entry.stale) == ("good", True)
    assert entry.age is not None and entry.age >= 0.05
    assert cache.get_or_load("k", failing, max_stale=60) == "good", "backing off"
    assert cache.metrics()["failSafeServed"] >= 2
    # Without fail-safe for this call, the loader's own error comes through.
    with pytest.raises(RuntimeError, match="database is down"):
        cache.get_or_load("k", failing, max_stale=0)


BAD_OPTIONS: list[dict[str, Any]] = [
    {"fresh_for": -1},
    {"max_stale": "soon"},
    {"soft_timeout": math.nan},
    {"hard_timeout": math.inf},
    {"fail_safe_backoff": True},
    {"early_refresh_beta": -0.5},
    {"ttl": -1},
    {"fresh_fro": 1},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=lambda o: ",".join(o))
def test_bad_per_call_options_are_config_errors(options: dict[str, Any], namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)
    acache = AsyncCache("memory://", namespace=namespace)
    for call in (cache.get_or_load, cache.get_entry):
        with pytest.raises(polycache.ConfigError) as raised:
            call("k", lambda: 1, **options)
        assert isinstance(raised.value, ValueError)
    with pytest.raises(polycache.ConfigError):
        cache.cached(**options)
    with pytest.raises(polycache.ConfigError):
        acache.cached(**options)

    async def main() -> None:
        for call in (acache.get_or_load, acache.get_entry):
            with pytest.raises(polycache.ConfigError):
                await call("k", lambda: 1, **options)

    asyncio.run(main())
    assert cache.metrics()["loads"] == 0


def test_async_per_call_options_and_get_entry(url: str, namespace: str) -> None:
    """`AsyncCache` takes the same options; a stale value's refresh runs in the background
    with a coroutine loader (on the caller's loop) while the call answers stale."""

    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace, ttl=60)
        assert await cache.get_or_load("k", lambda: 1, fresh_for=0.05) == 1
        release = asyncio.Event()

        async def slow() -> int:
            await release.wait()
            return 2

        seen: list[Entry] = []

        async def read() -> None:
            seen.append(await cache.get_entry("k", slow, fresh_for=0.05))

        deadline = asyncio.get_running_loop().time() + 10
        while not (seen and seen[-1].stale):
            assert asyncio.get_running_loop().time() < deadline, "never stale"
            await read()
        assert (seen[-1].value, seen[-1].freshness) == (1, "stale")
        # The refresh waits on `release`: this call is answered without it.
        assert await cache.get_or_load("k", slow, fresh_for=0.05) == 1
        release.set()

        while await cache.get("k") != 2:
            assert asyncio.get_running_loop().time() < deadline, "the refresh never stored"
            await asyncio.sleep(0.001)
        assert cache.metrics()["backgroundRefreshes"] == 1

    asyncio.run(main())


def test_cached_passes_its_options_to_every_call(url: str, namespace: str) -> None:
    """`@cache.cached(fresh_for=…)` and `polycache.cached(acache, fresh_for=…)`: a stale
    value is refreshed (the function runs again) though the cache has no `fresh_for`."""
    cache = Cache(url, namespace=namespace, ttl=60)
    calls: list[int] = []

    @cache.cached(key="double:{0}", fresh_for=0.05)
    def double(n: int) -> int:
        calls.append(n)
        return 2 * n

    assert double(4) == 8
    wait_until(lambda: double(4) == 8 and len(calls) >= 2, "a stale call refreshes")

    async def main() -> None:
        acache = await AsyncCache.connect(url, namespace=namespace, ttl=60)
        async_calls: list[int] = []

        @polycache.cached(acache, key="triple:{0}", fresh_for=0.05)
        async def triple(n: int) -> int:
            async_calls.append(n)
            return 3 * n

        assert await triple(2) == 6

        async def refreshed() -> bool:
            assert await triple(2) == 6
            return len(async_calls) >= 2

        deadline = asyncio.get_running_loop().time() + 10
        while not await refreshed():
            assert asyncio.get_running_loop().time() < deadline, "never refreshed"
            await asyncio.sleep(0.001)

    asyncio.run(main())


def test_not_found_is_cached_for_negative_ttl(url: str, namespace: str) -> None:
    """A loader returns `polycache.NOT_FOUND`: `get_or_load` answers `None`, the answer is
    stored for `negative_ttl`, and later reads answer from it without the loader; `get`
    gives its default without counting a miss. `None` itself stays a value."""
    cache = Cache(url, namespace=namespace, negative_ttl=60)
    calls: list[int] = []

    def missing() -> Any:
        calls.append(1)
        return polycache.NOT_FOUND

    assert repr(polycache.NOT_FOUND) == "polycache.NOT_FOUND"
    assert cache.get_or_load("k", missing) is None
    assert cache.get_or_load("k", missing) is None
    entry = cache.get_entry("k", missing)
    assert (entry.found, entry.value, entry.stale) == (False, None, False)
    assert len(calls) == 1, "answered from the cached not-found"
    misses = cache.metrics()["misses"]
    assert cache.get("k", "default") == "default"
    assert cache.get_many(["k"]) == [None]
    metrics = cache.metrics()
    assert metrics["misses"] == misses, "a negative hit is not a miss"
    assert (metrics["negativeStored"], metrics["negativeHits"]) == (1, 4)
    assert cache.get_entry("v", lambda: 1).found is True

    # None is a value: cached like any other, the loader is not called again.
    assert cache.get_or_load("none", lambda: None) is None
    assert cache.get_or_load("none", missing) is None
    assert len(calls) == 1


def test_not_found_without_negative_ttl_is_not_stored(namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)
    calls: list[int] = []

    def missing() -> Any:
        calls.append(1)
        return polycache.NOT_FOUND

    assert cache.get_or_load("k", missing) is None
    assert cache.get_or_load("k", missing) is None
    assert len(calls) == 2
    # Per call, negative_ttl turns it on.
    assert cache.get_or_load("k", missing, negative_ttl=60) is None
    assert cache.get_or_load("k", missing) is None
    assert len(calls) == 3


def test_async_not_found(url: str, namespace: str) -> None:
    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace, negative_ttl=60)
        calls: list[int] = []

        async def missing() -> Any:
            calls.append(1)
            return polycache.NOT_FOUND

        assert await cache.get_or_load("k", missing) is None
        entry = await cache.get_entry("k", missing)
        assert (entry.found, entry.value) == (False, None)
        assert await cache.get("k", 7) == 7
        assert len(calls) == 1

        @polycache.cached(cache, key="user:{0}")
        async def user(n: int) -> Any:
            calls.append(n)
            return polycache.NOT_FOUND

        assert await user(5) is None
        assert await user(5) is None
        assert calls == [1, 5]

    asyncio.run(main())
