"""polycache: one Redis cache shared by Python, Node, Rust and WASI programs.

>>> from polycache import Cache
>>> cache = Cache("memory://", namespace="docs")
>>> cache.get_or_load("answer", lambda: 42)
42
>>> cache.get("answer")
42

The values, keys and shard placement are identical in every language; see the project
README and docs/FORMAT.md.
"""

from __future__ import annotations

import atexit
import functools
import inspect
from typing import Any, Callable, TypeVar

from . import _native
from ._native import (
    AsyncCache,
    Cache,
    ClusterError,
    CodecError,
    ConfigError,
    ConnectionError,  # noqa: A004 - named after core's ErrorKind, like every binding
    KeyError,  # noqa: A004
    LoaderError,
    PolycacheError,
    ServerError,
    TimeoutError,  # noqa: A004
    WriterError,
)

__all__ = [
    "AsyncCache",
    "Cache",
    "ClusterError",
    "CodecError",
    "ConfigError",
    "ConnectionError",
    "KeyError",
    "LoaderError",
    "PolycacheError",
    "ServerError",
    "TimeoutError",
    "WriterError",
    "cached",
]
__version__: str = _native.__version__

# Stop the async runtime before the interpreter finalizes, so no runtime thread touches a
# dying interpreter.
atexit.register(_native._shutdown)

F = TypeVar("F", bound=Callable[..., Any])


def _call_key(
    fn: Callable[..., Any], signature: inspect.Signature, key: str | None, args: Any, kwargs: Any
) -> str:
    """The user key of one call: the template rendered with the call's arguments
    (docs/FORMAT.md §5), or the function name plus a hash of the positional arguments."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            positional.extend(value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            positional.append(value)
            named[name] = value
    if key is None:
        return _native.call_key(fn.__name__, positional)
    return _native.render_key(key, positional, named)


def cached(
    cache: Cache | AsyncCache, *, ttl: float | None = None, key: str | None = None
) -> Callable[[F], F]:
    """Memoizes a sync or async function in `cache` (see `Cache.cached`)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        if inspect.iscoroutinefunction(fn):
            if not isinstance(cache, AsyncCache):
                raise TypeError("an async function needs an AsyncCache")

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                user_key = _call_key(fn, signature, key, args, kwargs)
                return await cache.get_or_load(user_key, lambda: fn(*args, **kwargs), ttl)

            return async_wrapper  # type: ignore[return-value]
        if not isinstance(cache, Cache):
            raise TypeError("a sync function needs a Cache")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user_key = _call_key(fn, signature, key, args, kwargs)
            return cache.get_or_load(user_key, lambda: fn(*args, **kwargs), ttl)

        return wrapper  # type: ignore[return-value]

    return decorate
