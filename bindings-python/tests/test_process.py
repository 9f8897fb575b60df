"""Threads, fork and interpreter exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import polycache
from polycache import AsyncCache, Cache


def test_the_gil_is_released_while_waiting_on_redis(own_server: tuple[str, int]) -> None:
    url, pid = own_server
    cache = Cache(url, command_timeout=1.0)
    cache.set("k", 1)
    os.kill(pid, signal.SIGSTOP)  # the server stops answering; the call below waits 1 s
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        with pytest.raises(polycache.TimeoutError):
            cache.get("k")
    finally:
        stop.set()
        spinner.join()
        os.kill(pid, signal.SIGCONT)
    # Holding the GIL for the whole second would have frozen the spinner at ~0 ticks.
    assert ticks > 50, ticks


def test_threads_share_one_cache(url: str, namespace: str) -> None:
    cache = Cache(url, namespace=namespace)

    def work(i: int) -> int:
        cache.set(f"k{i}", i)
        value = cache.get(f"k{i}")
        assert isinstance(value, int)
        return value

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(work, range(200))) == list(range(200))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_builds_and_uses_its_own_cache(endpoints: dict[str, str]) -> None:
    url = endpoints["standalone"]
    parent = Cache(url, namespace="fork")
    parent.set("from-parent", "p")
    parent_async = AsyncCache(url, namespace="fork")  # starts the runtime in the parent
    pid = os.fork()
    if pid == 0:  # the child: any failure becomes a non-zero exit status
        code = 1
        try:
            child = Cache(url, namespace="fork")
            assert child.get("from-parent") == "p"
            child.set("from-child", "c")
            parent.set("parent-cache-in-child", "ok")  # the inherited cache reconnects

            async def main() -> None:
                # The inherited AsyncCache's connections are the parent's: a clear error at
                # once, not a timeout per call.
                started = time.monotonic()
                try:
                    await parent_async.get("from-parent")
                    raise AssertionError("an inherited AsyncCache must refuse")
                except polycache.ConnectionError as err:
                    assert "fork" in str(err), str(err)
                assert time.monotonic() - started < 0.2
                cache = await AsyncCache.connect(url, namespace="fork")
                await cache.set("async-child", 1)
                assert await cache.get("async-child") == 1

            asyncio.run(main())
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.get("from-child") == "c"
    assert parent.get("parent-cache-in-child") == "ok"

    async def parent_reads() -> Any:
        return await parent_async.get("async-child")

    # The child's refusal left the parent's own AsyncCache working, and it sees the child's
    # async write.
    assert asyncio.run(parent_reads()) == 1


SHORT_LIVED = """
import asyncio, sys
import polycache

async def main():
    cache = await polycache.AsyncCache.connect(sys.argv[1], namespace="short")
    await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(50)))
    assert await cache.get("k7") == 7

asyncio.run(main())
"""


def test_100_short_lived_processes_exit_cleanly(endpoints: dict[str, str]) -> None:
    """Processes that exit right after awaiting must never crash at interpreter exit."""
    url = endpoints["standalone"]

    def one(_: int) -> int:
        return subprocess.run(
            [sys.executable, "-c", SHORT_LIVED, url], capture_output=True, timeout=60
        ).returncode

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(one, range(100)))
    crashes = [c for c in codes if c != 0]
    assert crashes == [], f"{len(crashes)} of 100 processes failed: {crashes[:10]}"
