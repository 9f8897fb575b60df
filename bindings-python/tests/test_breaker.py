"""The circuit breaker as a Python user sees it (core/tests/breaker.rs tests the rules):
after `breaker_failures` timeouts on a paused server, a write fails at once with
polycache.ConnectionError saying the circuit is open, and the metrics show the trip."""

from __future__ import annotations

import os
import signal
import time

import pytest

import polycache
from polycache import Cache

TIMEOUT = 0.4


def test_an_open_breaker_fails_a_set_fast_and_counts_the_trip(
    own_server: tuple[str, int],
) -> None:
    url, pid = own_server
    addr = url.removeprefix("redis://")
    cache = Cache(url, command_timeout=TIMEOUT, breaker_failures=2, breaker_cooldown=60)
    cache.set("k", 1)
    assert cache.metrics()["breakerStates"] == {addr: "closed"}
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(2):
            with pytest.raises(polycache.TimeoutError):
                cache.set("k", 2)
        started = time.monotonic()
        with pytest.raises(polycache.ConnectionError, match="circuit breaker open") as raised:
            cache.set("k", 3)
        elapsed = time.monotonic() - started
        assert addr in str(raised.value)
        # Well inside the command timeout (a bound against the setting, not a speed claim).
        assert elapsed < TIMEOUT / 2, f"an open breaker took {elapsed:.3f} s"
        metrics = cache.metrics()
        assert (metrics["breakerTrips"], metrics["breakerOpen"]) == (1, 1)
        assert metrics["breakerRejected"] == 1
        assert metrics["breakerStates"] == {addr: "open"}
    finally:
        os.kill(pid, signal.SIGCONT)
