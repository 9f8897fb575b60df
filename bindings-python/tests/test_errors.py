"""Every polycache failure is a `polycache.PolycacheError`; the kinds that mean what a
builtin means also subclass that builtin, so `except ValueError` / `except TimeoutError`
keep working."""

from __future__ import annotations

import asyncio
import builtins
import math
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import pytest

import polycache
from polycache import AsyncCache, Cache, PolycacheError, contract

BUILTIN_BASES = {
    "ConfigError": ValueError,
    "InvalidKeyError": ValueError,
    "CodecError": TypeError,
    "ConnectionError": builtins.ConnectionError,
    "TimeoutError": builtins.TimeoutError,
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_error_class_is_a_polycache_error_and_shadows_no_builtin() -> None:
    errors = [name for name in polycache.__all__ if name.endswith("Error")]
    assert len(errors) == 10, errors
    for name in errors:
        cls = getattr(polycache, name)
        assert issubclass(cls, PolycacheError), name
        assert cls.__module__ == "polycache", name
        if name in BUILTIN_BASES:
            assert issubclass(cls, BUILTIN_BASES[name]), name
        # A name that is also a builtin's must be a subclass of that builtin.
        shadowed = getattr(builtins, name, None)
        if isinstance(shadowed, type):
            assert issubclass(cls, shadowed), f"polycache.{name} shadows builtins.{name}"


BAD_TTLS: list[Any] = [-1, -0.001, math.nan, math.inf, -math.inf, 1e17, 10**400, "60", [1]]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_a_bad_ttl_is_a_config_error_and_a_value_error(ttl: Any) -> None:
    cache = Cache("memory://")
    calls: list[Callable[[], Any]] = [
        lambda: cache.set("k", 1, ttl=ttl),
        lambda: cache.set_many({"k": 1}, ttl=ttl),
        lambda: cache.get_or_load("k", lambda: 1, ttl=ttl),
        lambda: cache.cached(ttl=ttl),
        lambda: Cache("memory://", ttl=ttl),
        lambda: AsyncCache("memory://", ttl=ttl),
    ]
    for call in calls:
        try:
            call()
        except ValueError as err:  # what a bad TTL meant before polycache had its own
            assert isinstance(err, polycache.ConfigError), repr(err)
        else:
            pytest.fail(f"ttl={ttl!r} was accepted")


def test_async_bad_ttl_is_a_config_error() -> None:
    async def main() -> None:
        cache = await AsyncCache.connect("memory://")
        with pytest.raises(polycache.ConfigError):
            await cache.set("k", 1, ttl=-1)
        with pytest.raises(ValueError):
            await cache.set("k", 1, ttl="soon")  # type: ignore[arg-type]

    asyncio.run(main())


def provoked(own_server: tuple[str, int]) -> dict[str, Callable[[], Any]]:
    """One call per failure polycache can be made to raise here."""
    url, pid = own_server
    memory = Cache("memory://")

    def timeout() -> None:
        cache = Cache(url, command_timeout=0.3)
        cache.set("k", 1)
        os.kill(pid, signal.SIGSTOP)  # the server stops answering: a blackhole
        try:
            cache.get("k")
        finally:
            os.kill(pid, signal.SIGCONT)

    def reentrant() -> None:
        async def main() -> None:
            cache = await AsyncCache.connect("memory://")

            async def load() -> int:
                return int(await cache.get_or_load("k", load))

            await cache.get_or_load("k", load)

        asyncio.run(main())

    def closed() -> None:
        cache = Cache("memory://")
        cache.close()
        cache.get("k")

    return {
        "config-url": lambda: Cache("mongodb://h"),
        "config-option": lambda: Cache("memory://", bogus=1),
        "config-option-value": lambda: Cache("memory://", namespace=["a"]),
        "config-url-query": lambda: Cache("redis://h?bogus=1"),
        "config-resolve": lambda: contract.resolve_config("memory://", "[]"),
        "codec-value": lambda: memory.set("k", object()),
        "codec-loader-value": lambda: memory.get_or_load("x", object),
        "codec-bytes": lambda: contract.decode_envelope(b"not an envelope"),
        "key-empty": lambda: memory.get(""),
        "key-template": lambda: contract.render_key("{missing}", [], {}),
        "timeout": timeout,
        "connection-refused": lambda: Cache(
            f"redis://127.0.0.1:{closed_port()}", connect_timeout=0.5
        ),
        "connection-closed": closed,
        "loader-reentrant": reentrant,
    }


EXPECTED = {
    "config": polycache.ConfigError,
    "codec": polycache.CodecError,
    "key": polycache.InvalidKeyError,
    "timeout": polycache.TimeoutError,
    "connection": polycache.ConnectionError,
    "loader": polycache.LoaderError,
}


def test_polycache_error_catches_everything_polycache_raises(
    own_server: tuple[str, int],
) -> None:
    for name, call in provoked(own_server).items():
        try:
            call()
        except PolycacheError as err:
            expected = EXPECTED[name.split("-")[0]]
            assert isinstance(err, expected), f"{name}: {err!r}"
            # One message format: the kind is the class, not a prefix of the message.
            assert not str(err).startswith(("Timeout error", "Config error")), str(err)
        else:
            pytest.fail(f"{name} did not fail")


def test_builtin_handlers_still_catch() -> None:
    with pytest.raises(builtins.ConnectionError):
        Cache(f"redis://127.0.0.1:{closed_port()}", connect_timeout=0.5)
    with pytest.raises(ValueError):
        Cache("memory://", jitter=2)
    with pytest.raises(TypeError):
        Cache("memory://").set("k", {1, 2})


def test_a_loaders_own_exception_passes_through_unwrapped() -> None:
    class Own(Exception):
        pass

    failure = Own("db down")

    def load() -> None:
        raise failure

    with pytest.raises(Own) as raised:
        Cache("memory://").get_or_load("k", load)
    assert raised.value is failure
