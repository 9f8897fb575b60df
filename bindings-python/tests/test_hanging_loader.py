"""A sync loader that blocks past `hard_timeout`: the sync `Cache` runs a load with a timeout
on a thread of its own, so core's timeout ends the call (a `TimeoutError`, or the fail-safe
value) while the loader still blocks. Each loader blocks on an event that the test sets at
the end (a watchdog sets it after `WATCHDOG` seconds so a call that does wait still ends)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import polycache
from conftest import wait_until
from polycache import Cache

HARD_TIMEOUT = 0.3
# Generous: the bound checked is "cut near hard_timeout", far below the watchdog's 5 s.
MARGIN = 2.0
WATCHDOG = 5.0

REQUEST = contextvars.ContextVar("request", default="none")


class Hang:
    """A loader that blocks until released, recording what it saw and when it ended."""

    def __init__(self, value: object = "late") -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.ended = threading.Event()
        self.value = value
        self.request_seen: list[str] = []
        self.watchdog = threading.Timer(WATCHDOG, self.release.set)
        self.watchdog.start()

    def __call__(self) -> object:
        self.request_seen.append(REQUEST.get())
        self.started.set()
        try:
            self.release.wait()
            return self.value
        finally:
            self.ended.set()

    def close(self) -> None:
        """Lets the loader thread end (no blocked thread outlives the test)."""
        self.release.set()
        self.watchdog.cancel()
        if self.started.is_set():
            assert self.ended.wait(WATCHDOG), "the loader thread ended"


@pytest.fixture
def hang() -> Iterator[Hang]:
    loader = Hang()
    yield loader
    loader.close()


def test_hanging_loader_without_fail_safe_times_out(url: str, namespace: str, hang: Hang) -> None:
    cache = Cache(url, namespace=namespace, ttl=60, hard_timeout=HARD_TIMEOUT)
    token = REQUEST.set("caller's")
    try:
        start = time.monotonic()
        with pytest.raises(polycache.TimeoutError):
            cache.get_or_load("k", hang)
        elapsed = time.monotonic() - start
    finally:
        REQUEST.reset(token)
    assert not hang.release.is_set(), "the call ended before the loader did"
    assert elapsed < HARD_TIMEOUT + MARGIN, f"cut at hard_timeout, took {elapsed:.2f} s"
    # The loader runs in a copy of the caller's contextvars context.
    assert hang.request_seen == ["caller's"]


def test_hanging_loader_with_fail_safe_answers_the_last_good_value(
    endpoints: dict[str, Any], namespace: str, hang: Hang
) -> None:
    url = endpoints["standalone"]
    cache = Cache(url, namespace=namespace, ttl=60, max_stale=600)
    assert cache.get_or_load("k", lambda: "good") == "good"
    # The key expires in Redis (another client deletes it) while this cache remembers it.
    assert Cache(url, namespace=namespace).delete("k")
    start = time.monotonic()
    entry = cache.get_entry("k", hang, hard_timeout=HARD_TIMEOUT)
    elapsed = time.monotonic() - start
    assert not hang.release.is_set(), "the call ended before the loader did"
    assert entry.value == "good"
    assert entry.freshness != "fresh"
    assert elapsed < HARD_TIMEOUT + MARGIN, f"cut at hard_timeout, took {elapsed:.2f} s"


def test_read_through_loader_with_hard_timeout_times_out(url: str, namespace: str) -> None:
    hang = Hang()
    keys: list[str] = []

    def loader(key: str) -> object:
        keys.append(key)
        return hang()

    cache = Cache(url, namespace=namespace, ttl=60, hard_timeout=HARD_TIMEOUT, loader=loader)
    try:
        start = time.monotonic()
        with pytest.raises(polycache.TimeoutError):
            cache.get("k")
        elapsed = time.monotonic() - start
        assert not hang.release.is_set(), "the call ended before the loader did"
        assert elapsed < HARD_TIMEOUT + MARGIN, f"cut at hard_timeout, took {elapsed:.2f} s"
    finally:
        hang.close()
    assert keys == ["k"]
    wait_until(lambda: hang.ended.is_set(), "the loader thread ends once released")
