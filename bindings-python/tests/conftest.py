"""Fixtures: real Redis from the harness (never a mock).

`POLYCACHE_TEST_REDIS` (set by `scripts/with-redis` in `make test`) names running servers;
without it the session starts `polycache-harness`, which stops its servers when its stdin
closes, so a crashed pytest cannot leak them.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# tests/vectors/notation.py: the vector files and their typed notation, shared with the
# Python interop agent.
sys.path.insert(0, str(ROOT / "tests" / "vectors"))


def harness_binary() -> str:
    # The Makefile's default target dir, unless CARGO_TARGET_DIR says otherwise.
    default = Path.home() / ".cache" / "polycache" / "target"
    target = Path(os.environ.get("CARGO_TARGET_DIR", default))
    triple = os.environ.get("CARGO_BUILD_TARGET", f"{platform.machine()}-unknown-linux-gnu")
    for candidate in (target / triple / "debug", target / "debug", ROOT / "target" / "debug"):
        if (candidate / "polycache-harness").exists():
            return str(candidate / "polycache-harness")
    pytest.fail("polycache-harness is not built: run `make build` first")


@pytest.fixture(scope="session")
def endpoints() -> Iterator[dict[str, Any]]:
    reuse = os.environ.get("POLYCACHE_TEST_REDIS")
    if reuse:
        yield json.loads(reuse)
        return
    proc = subprocess.Popen(
        [harness_binary()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    if not line:
        pytest.fail("polycache-harness did not start")
    try:
        yield json.loads(line)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.fixture(params=["memory", "standalone", "shards", "cluster"])
def url(request: pytest.FixtureRequest, endpoints: dict[str, Any]) -> str:
    """Each test using `url` runs once per store."""
    if request.param == "memory":
        return "memory://"
    return str(endpoints[request.param])


@pytest.fixture
def namespace() -> str:
    """A namespace of its own, so tests sharing servers never see each other's keys."""
    return f"py-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_server() -> Iterator[tuple[str, int]]:
    """A standalone redis-server of this test's own (it may pause or kill it)."""
    proc = subprocess.Popen(
        [harness_binary(), "--standalone"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    info = json.loads(proc.stdout.readline())
    (pid,) = info["pids"].values()
    try:
        yield info["standalone"], pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Polls `ready` every millisecond (the GIL released meanwhile) until it holds; fails
    after `timeout` seconds. Tests wait on a condition, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"still waiting until {what} after {timeout} s"
        time.sleep(0.001)


async def wait_until_async(ready: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """`wait_until` for coroutines: the event loop keeps running while it polls."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"still waiting until {what} after {timeout} s"
        await asyncio.sleep(0.001)
