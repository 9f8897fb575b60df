"""What every Python benchmark here shares: the Redis it runs on, the value it caches, and
how it times and reports.

A benchmark that can run on its own imports these; `bench.py` runs the others after its
own scenarios on the same server.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# The ~200-byte object of every hit benchmark.
PROFILE = {
    "id": 123456789,
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "plan": "pro",
    "score": 98.25,
    "active": True,
    "roles": ["admin", "editor", "viewer"],
    "address": {"street": "12 Analytical Engine Way", "city": "London", "country": "GB"},
    "tags": [f"tag-{i}" for i in range(6)],
}


def start_redis() -> tuple[str, subprocess.Popen[str]]:
    """A standalone redis-server from the harness (POLYCACHE_HARNESS): its URL and the
    harness process, which stops the server when its stdin closes (see `redis_url`)."""
    harness = os.environ["POLYCACHE_HARNESS"]
    proc = subprocess.Popen(
        [harness, "--standalone"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return json.loads(proc.stdout.readline())["standalone"], proc


def stop_redis(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait()


@contextmanager
def redis_url() -> Iterator[str]:
    """The standalone server of POLYCACHE_TEST_REDIS when set (`scripts/with-redis`),
    else one started through the harness for this run."""
    shared = os.environ.get("POLYCACHE_TEST_REDIS")
    if shared:
        yield json.loads(shared)["standalone"]
        return
    url, proc = start_redis()
    try:
        yield url
    finally:
        stop_redis(proc)


def pinned(url: str) -> str:
    """With POLYCACHE_BENCH_CPU=n, this process (all its threads) and the redis-server at
    `url` run on CPU n alone, and a round trip costs the CPU work of both ends. Otherwise
    each round trip also waits for an idle CPU to wake (on the VMs this is measured on,
    about 100 µs a call, whichever client makes it). Returns what was done, for the report.
    """
    cpu = os.environ.get("POLYCACHE_BENCH_CPU")
    if cpu is None:
        return "not pinned"
    port = host_port(url)[1]
    servers = subprocess.run(
        ["pgrep", "-f", f"^redis-server .*:{port}( |$)"], check=True, capture_output=True, text=True
    ).stdout.split()
    for pid in [*servers, str(os.getpid())]:
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, pid], check=True, capture_output=True)
    return f"process and redis-server on CPU {cpu}"


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].split("/")[0].rsplit(":", 1)
    return host, int(port)


def rate(ops: int, started: float) -> float:
    """Operations per second since `started` (a perf_counter reading)."""
    return ops / (time.perf_counter() - started)


def loop(fn: Callable[[], Any], ops: int) -> Callable[[], float]:
    """A round of `ops` calls of `fn`, returning operations per second."""

    def run() -> float:
        started = time.perf_counter()
        for _ in range(ops):
            fn()
        return rate(ops, started)

    return run


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds one call of `fn` took, and what it returned."""
    started = time.perf_counter()
    got = fn()
    return (time.perf_counter() - started) * 1000, got
