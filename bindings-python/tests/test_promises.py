"""Promises under fault and hostile input: every call ends within its timeout against a
paused server, TTLs are checked, and no repr or error shows a password."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import polycache
from polycache import AsyncCache, Cache

TIMEOUT = 0.4
# The promise: within the timeout plus 20 % and 50 ms of scheduling slack.
LIMIT = TIMEOUT * 1.2 + 0.05
SECRET = "S3cr3t-pw"


@pytest.fixture
def paused(own_server: tuple[str, int]) -> Iterator[str]:
    """A server of this test's own; the test pauses it with `os.kill(pid, SIGSTOP)`."""
    url, pid = own_server
    yield url
    os.kill(pid, signal.SIGCONT)


SYNC_CALLS: dict[str, Callable[[Cache], Any]] = {
    "get": lambda c: c.get("k"),
    "set": lambda c: c.set("k", 2),
    "delete": lambda c: c.delete("k"),
    "ttl": lambda c: c.ttl("k"),
    "get_many": lambda c: c.get_many(["k", "j"]),
    "set_many": lambda c: c.set_many({"k": 3}),
}


def test_every_sync_call_on_a_paused_server_ends_within_its_timeout(
    own_server: tuple[str, int],
) -> None:
    url, pid = own_server
    cache = Cache(url, command_timeout=TIMEOUT, connect_timeout=TIMEOUT)
    cache.set("k", 1)
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(2):  # the second round runs on connections opened after timeouts
            for name, call in SYNC_CALLS.items():
                started = time.monotonic()
                with pytest.raises((polycache.TimeoutError, polycache.ConnectionError)) as err:
                    call(cache)
                elapsed = time.monotonic() - started
                assert elapsed <= LIMIT, f"{name} took {elapsed:.3f}s"
                assert url.rsplit("/", 1)[-1].split("?")[0] in str(err.value), str(err.value)
            started = time.monotonic()
            assert cache.get_or_load("k", lambda: "db") == "db"  # fails open
            assert time.monotonic() - started <= LIMIT
        started = time.monotonic()
        with pytest.raises(polycache.TimeoutError):
            Cache(url, command_timeout=TIMEOUT, connect_timeout=TIMEOUT)
        assert time.monotonic() - started <= LIMIT
    finally:
        os.kill(pid, signal.SIGCONT)
    assert cache.get("k") is not None  # recovers


def test_every_async_call_on_a_paused_server_ends_within_its_timeout(
    own_server: tuple[str, int],
) -> None:
    url, pid = own_server

    async def main() -> None:
        cache = await AsyncCache.connect(url, command_timeout=TIMEOUT, connect_timeout=TIMEOUT)
        await cache.set("k", 1)
        os.kill(pid, signal.SIGSTOP)
        calls = {
            "get": lambda: cache.get("k"),
            "set": lambda: cache.set("k", 2),
            "delete": lambda: cache.delete("k"),
            "ttl": lambda: cache.ttl("k"),
            "get_many": lambda: cache.get_many(["k", "j"]),
            "set_many": lambda: cache.set_many({"k": 3}),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises((polycache.TimeoutError, polycache.ConnectionError)):
                await call()
            elapsed = time.monotonic() - started
            assert elapsed <= LIMIT, f"{name} took {elapsed:.3f}s"
        started = time.monotonic()
        assert await cache.get_or_load("k", lambda: "db") == "db"
        assert time.monotonic() - started <= LIMIT

    try:
        asyncio.run(main())
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 1e17, 18446744073709553.0])
def test_bad_ttls_are_config_errors(bad: float, namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)
    with pytest.raises(polycache.ConfigError, match="ttl"):
        cache.set("k", 1, ttl=bad)
    with pytest.raises(polycache.ConfigError, match="ttl"):
        cache.get_or_load("k", lambda: 1, ttl=bad)
    with pytest.raises(polycache.ConfigError):
        Cache("memory://", ttl=bad)


def test_ttl_zero_per_call_means_no_expiry_as_in_the_config(url: str, namespace: str) -> None:
    cache = Cache(url, namespace=namespace, ttl=60)
    cache.set("forever", 1, ttl=0)
    assert cache.get("forever") == 1
    assert cache.ttl("forever") is None
    cache.set("minute", 1)
    left = cache.ttl("minute")
    assert left is not None and 0 < left <= 60


def test_no_repr_or_error_shows_the_password(own_server: tuple[str, int]) -> None:
    url, _ = own_server
    host = url.split("://", 1)[1]
    printed: list[str] = []
    bad_urls = [
        f"redis://:{SECRET}@{host}?bogus=1",
        f"redis://:{SECRET}@{host}?ttl=nope",
        f"mongodb://:{SECRET}@{host}",
        f"redis+shards://:{SECRET}@",
        f":{SECRET}@{host}",
    ]
    for bad in bad_urls:
        with pytest.raises(polycache.PolycacheError) as err:
            Cache(bad)
        printed += [str(err.value), repr(err.value)]
    # A server that wants a password, given a wrong one and the right one.
    Cache(url).set("probe", 1)
    subprocess.run(
        ["redis-cli", "-p", host.rsplit(":", 1)[1], "CONFIG", "SET", "requirepass", SECRET],
        check=True,
        capture_output=True,
    )
    with pytest.raises(polycache.PolycacheError) as err:
        Cache(f"redis://:{SECRET}x@{host}")
    printed += [str(err.value), repr(err.value)]
    good = f"redis://:{SECRET}@{host}"
    printed += [repr(Cache(good)), repr(Cache.from_url(good, namespace="n"))]

    async def open_async() -> str:
        return repr(await AsyncCache.connect(good))

    printed.append(asyncio.run(open_async()))
    printed.append(repr(AsyncCache(good)))
    for text in printed:
        assert SECRET not in text, text
    assert any("***" in text for text in printed)


def test_a_loader_asking_for_its_own_key_raises_instead_of_hanging(
    url: str, namespace: str
) -> None:
    cache = Cache(url, namespace=namespace)

    def loader() -> Any:
        return cache.get_or_load("self", lambda: 1)

    with pytest.raises(polycache.LoaderError, match="wait for itself"):
        cache.get_or_load("self", loader)
    # Other keys may be loaded from inside a loader.
    assert cache.get_or_load("outer", lambda: cache.get_or_load("inner", lambda: 2)) == 2


def test_plain_slow_loaders_do_not_hold_up_other_async_calls(url: str, namespace: str) -> None:
    """A plain (non-async) loader that blocks runs off the runtime's workers: other calls
    keep their timeout while it works."""
    if url == "memory://":
        pytest.skip("memory calls do no I/O to hold up")

    running = threading.Semaphore(0)
    finish = threading.Event()

    def slow_loader() -> int:
        running.release()
        assert finish.wait(timeout=30), "never told to finish"
        return 1

    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace, command_timeout=TIMEOUT)
        await cache.set("fast", 2)
        loads = [
            asyncio.ensure_future(cache.get_or_load(f"slow{i}", slow_loader)) for i in range(4)
        ]
        try:
            for _ in loads:  # every loader is running (and blocking) before the fast calls
                assert await asyncio.to_thread(running.acquire, True, 10), "a loader never ran"
            for _ in range(10):
                started = time.monotonic()
                assert await cache.get("fast") == 2
                assert time.monotonic() - started <= LIMIT
        finally:
            finish.set()
        assert await asyncio.gather(*loads) == [1, 1, 1, 1]

    asyncio.run(main())


def test_tls_to_a_plain_port_says_so(own_server: tuple[str, int]) -> None:
    url, _ = own_server
    tls_url = url.replace("redis://", "rediss://") + "/#insecure"
    started = time.monotonic()
    with pytest.raises(polycache.ConnectionError, match="TLS"):
        Cache(tls_url, connect_timeout=TIMEOUT, command_timeout=TIMEOUT)
    assert time.monotonic() - started <= LIMIT


def test_an_async_loader_asking_for_its_own_key_raises_instead_of_hanging(
    url: str, namespace: str
) -> None:
    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace)

        async def loader() -> Any:
            return await cache.get_or_load("self", lambda: 1)

        with pytest.raises(polycache.LoaderError, match="wait for itself"):
            await asyncio.wait_for(cache.get_or_load("self", loader), timeout=5)

        async def outer() -> Any:
            return await cache.get_or_load("inner", lambda: 2)

        # Other keys may be loaded from inside a loader, and concurrent callers still share.
        assert await cache.get_or_load("outer", outer) == 2
        assert await asyncio.gather(*(cache.get_or_load("x", outer) for _ in range(5))) == [2] * 5

    asyncio.run(main())


def test_a_sharded_cache_opens_with_a_dead_shard_and_isolates_it(namespace: str) -> None:
    from conftest import harness_binary

    proc = subprocess.Popen(
        [harness_binary(), "--shards", "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        info = json.loads(proc.stdout.readline())
        url = info["shards"]
        dead_addr, dead_pid = sorted(info["pids"].items())[1]
        os.kill(dead_pid, signal.SIGKILL)
        cache = Cache(url, namespace=namespace, command_timeout=TIMEOUT, connect_timeout=TIMEOUT)
        dead, live = [], []
        for i in range(40):
            key = f"k{i}"
            started = time.monotonic()
            try:
                cache.set(key, i)
                live.append(key)
            except polycache.ConnectionError as err:
                assert dead_addr in str(err), str(err)
                dead.append(key)
            assert time.monotonic() - started <= LIMIT
        assert dead and live
        assert [cache.get(key) for key in live] == [int(k[1:]) for k in live]

        async def main() -> None:
            async_cache = await AsyncCache.connect(
                url, namespace=namespace, command_timeout=TIMEOUT
            )
            assert await async_cache.get(live[0]) == int(live[0][1:])
            with pytest.raises(polycache.ConnectionError):
                await async_cache.get(dead[0])

        asyncio.run(main())
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
