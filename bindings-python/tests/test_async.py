"""`AsyncCache` on every store."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import polycache
from conftest import wait_until_async
from polycache import AsyncCache


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_basic_calls(url: str, namespace: str) -> None:
    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace)
        assert await cache.get("k") is None
        await cache.set("k", {"a": [1, 2.5, b"x"]}, ttl=60)
        assert await cache.get("k") == {"a": [1, 2.5, b"x"]}
        left = await cache.ttl("k")
        assert left is not None and 0 < left <= 60
        await cache.set_many({"x": 1, "y": 2})
        assert await cache.get_many(["x", "y", "z"]) == [1, 2, None]
        assert await cache.delete("k") is True
        assert cache.metrics()["sets"] == 3

    run(main())


def test_gather_1000_calls_is_correct(url: str, namespace: str) -> None:
    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace)
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(1000)))
        got = await asyncio.gather(*(cache.get(f"k{i}") for i in range(1000)))
        assert got == list(range(1000))

    run(main())


def test_coroutine_loader_single_flight(url: str, namespace: str) -> None:
    callers = 50
    calls = 0

    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace)

        async def loader() -> str:
            nonlocal calls
            calls += 1
            # The latch: every caller has missed before the load ends, so a single-flight
            # that let callers load on their own would call this 50 times.
            await wait_until_async(lambda: cache.metrics()["misses"] >= callers, "all missed")
            return "loaded"

        got = await asyncio.gather(*(cache.get_or_load("hot", loader) for _ in range(callers)))
        assert got == ["loaded"] * callers
        assert cache.metrics()["misses"] == callers, "every caller looked up the key once"
        assert calls == 1
        assert await cache.get("hot") == "loaded"

    run(main())


def test_loader_exception_reaches_the_caller_unchanged(url: str, namespace: str) -> None:
    class Boom(Exception):
        pass

    async def loader() -> None:
        await asyncio.sleep(0)
        raise Boom("nope")

    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace)
        with pytest.raises(Boom, match="nope"):
            await cache.get_or_load("k", loader)

    run(main())


def test_read_and_write_through_coroutines(url: str, namespace: str) -> None:
    written: list[tuple[str, Any]] = []

    async def loader(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    async def writer(key: str, value: Any) -> None:
        if value is None:
            raise PermissionError("no nulls")
        written.append((key, value))

    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace, loader=loader, writer=writer)
        assert await cache.get("abc") == "ABC"
        await cache.set("x", 1)
        assert written == [("x", 1)]
        with pytest.raises(PermissionError):
            await cache.set("x", None)
        assert await cache.get("x") == 1

    run(main())


def test_errors_are_typed() -> None:
    async def main() -> None:
        with pytest.raises(polycache.ConfigError):
            await AsyncCache.connect("memory://", bogus=1)
        cache = await AsyncCache.connect("memory://")
        with pytest.raises(polycache.InvalidKeyError):
            await cache.get("")
        async with cache:
            pass
        with pytest.raises(polycache.ConnectionError):
            await cache.get("k")

    run(main())


def test_constructor_connects_outside_a_loop(namespace: str) -> None:
    cache = AsyncCache("memory://", namespace=namespace)

    async def main() -> None:
        await cache.set("k", 1)
        assert await cache.get("k") == 1

    run(main())


def test_a_loader_waiting_on_a_stream_survives_garbage_collection(url: str, namespace: str) -> None:
    """A coroutine loader awaiting `StreamReader.readline` is held only by a reference
    cycle (the stream's protocol holds its reader weakly, the loop holds tasks weakly):
    the cache must keep it alive, or a collection ends the load ("coroutine was dropped")."""

    async def main() -> None:
        cache = await AsyncCache.connect(url, namespace=namespace)
        reading = asyncio.Event()
        answer = asyncio.Event()

        async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await answer.wait()
            writer.write(b"loaded\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def loader() -> str:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            reading.set()
            line = await reader.readline()
            writer.close()
            return line.decode().strip()

        load = asyncio.ensure_future(cache.get_or_load("k", loader, ttl=60))
        await reading.wait()
        await asyncio.sleep(0)  # the loader is now parked in readline
        for _ in range(3):
            gc.collect()
        answer.set()
        assert await load == "loaded"
        server.close()
        await server.wait_closed()

    run(main())
