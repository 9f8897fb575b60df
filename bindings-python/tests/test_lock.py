"""The stampede lock (docs/FORMAT.md §6) through Python's kwargs: two caches with their own
connections stand for two processes; one holds the lock while its loader runs, the other
misses, waits and gets the holder's value without loading. Sync and async."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from conftest import wait_until, wait_until_async
from polycache import AsyncCache, Cache

LOCK: dict[str, Any] = {"stampede_lock": True, "lock_lease": 10, "lock_timeout": 10}


def test_memory_ignores_the_option() -> None:
    cache = Cache("memory://", **LOCK)
    assert cache.get_or_load("k", lambda: 1) == 1
    assert cache.metrics()["locksAcquired"] == 0, "single-flight already is the lock"


def test_sync_waiter_gets_the_holders_value(url: str, namespace: str) -> None:
    if url.startswith("memory"):
        pytest.skip("two memory:// caches share nothing: no lock to wait on")
    holder = Cache(url, namespace=namespace, **LOCK)
    waiter = Cache(url, namespace=namespace, **LOCK)
    loading, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def hold() -> str:
        loading.set()
        release.wait(10)
        return "holder"

    def call(name: str, cache: Cache, loader: Any) -> None:
        results[name] = cache.get_or_load("k", loader, ttl=60)

    first = threading.Thread(target=call, args=("holder", holder, hold))
    first.start()
    assert loading.wait(10)
    second = threading.Thread(target=call, args=("waiter", waiter, lambda: "waiter"))
    second.start()
    wait_until(lambda: waiter.metrics()["misses"] >= 1, "the waiter missed")
    release.set()
    first.join(10)
    second.join(10)
    assert results == {"holder": "holder", "waiter": "holder"}
    assert waiter.metrics()["loads"] == 0
    assert holder.metrics()["locksAcquired"] == 1


def test_async_waiter_gets_the_holders_value(url: str, namespace: str) -> None:
    if url.startswith("memory"):
        pytest.skip("two memory:// caches share nothing: no lock to wait on")

    async def run() -> None:
        holder = await AsyncCache.connect(url, namespace=namespace, **LOCK)
        waiter = await AsyncCache.connect(url, namespace=namespace, **LOCK)
        loading, release = asyncio.Event(), asyncio.Event()

        async def hold() -> str:
            loading.set()
            await release.wait()
            return "holder"

        held = asyncio.ensure_future(holder.get_or_load("k", hold, ttl=60))
        await loading.wait()
        waiting = asyncio.ensure_future(waiter.get_or_load("k", lambda: "waiter", ttl=60))
        await wait_until_async(lambda: waiter.metrics()["misses"] >= 1, "the waiter missed")
        release.set()
        assert await held == "holder"
        assert await waiting == "holder"
        assert waiter.metrics()["loads"] == 0

    asyncio.run(run())
