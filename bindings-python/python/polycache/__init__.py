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
import os
from typing import Any, Callable, TypeVar

from . import _native
from ._native import (
    NOT_FOUND,
    AsyncCache,
    Cache,
    ClusterError,
    CodecError,
    ConfigError,
    # Named after core's ErrorKind like every binding; each subclasses the builtin it
    # shadows, so `except TimeoutError` / `except ConnectionError` still catch it.
    ConnectionError,  # noqa: A004
    Entry,
    InvalidKeyError,
    LoaderError,
    PolycacheError,
    ServerError,
    TimeoutError,  # noqa: A004
    WriterError,
)

__all__ = [
    "NOT_FOUND",
    "AsyncCache",
    "Cache",
    "ClusterError",
    "CodecError",
    "ConfigError",
    "ConnectionError",
    "Entry",
    "InvalidKeyError",
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
if hasattr(os, "register_at_fork"):
    # A forked child's near tiers have no tracking threads: make them inert at once.
    os.register_at_fork(after_in_child=_native._after_fork)

F = TypeVar("F", bound=Callable[..., Any])


class _CallKey:
    """Turns one call's arguments into its user key (docs/FORMAT.md §5): the template
    rendered with the call's arguments, or the function name plus a hash of the
    arguments (the parameters in signature order, then any `**kwargs` by name). Calls
    with plain positional arguments skip `inspect` binding."""

    def __init__(self, fn: Callable[..., Any], key: str | None) -> None:
        self.name = fn.__name__
        self.signature = inspect.signature(fn)
        self.template = _native.KeyTemplate(key) if key is not None else None
        params = list(self.signature.parameters.values())
        plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        # Without kwargs, `args` alone is the positional list when the template needs no
        # names and (without a template) no default has to be filled in.
        if self.template is None:
            self.fast_arity = len(params) if plain else -1
        elif plain and not self.template.uses_names:
            self.fast_arity = self.template.positional_arity
        else:
            self.fast_arity = -1

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if not kwargs and self.fast_arity >= 0:
            if self.template is not None and len(args) >= self.fast_arity:
                return self.template.render(args)
            if self.template is None and len(args) == self.fast_arity:
                return _native.call_key(self.name, list(args))
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        positional: list[Any] = []
        named: dict[str, Any] = {}
        extra: dict[str, Any] = {}  # **kwargs: in the default key by name, not position
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                positional.extend(value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                named.update(value)
                extra.update(value)
            else:
                positional.append(value)
                named[name] = value
        if self.template is None:
            return _native.call_key(self.name, positional, extra)
        return self.template.render(positional, named)


def cached(
    cache: Cache | AsyncCache,
    *,
    ttl: float | None = None,
    key: str | None = None,
    **options: float | None,
) -> Callable[[F], F]:
    """Memoizes a sync or async function in `cache` (see `Cache.cached`). `options` are
    `get_or_load`'s per-call options (`fresh_for`, `max_stale`, `fail_safe_backoff`,
    `soft_timeout`, `hard_timeout`, `early_refresh_beta`, `negative_ttl`), given to every
    call. A function that returns `NOT_FOUND` returns `None` (and with `negative_ttl` the
    answer is cached)."""

    def decorate(fn: F) -> F:
        call_key = _CallKey(fn, key)
        if inspect.iscoroutinefunction(fn):
            if not isinstance(cache, AsyncCache):
                raise TypeError("an async function needs an AsyncCache")

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                user_key = call_key(args, kwargs)
                return await cache.get_or_load(
                    user_key, lambda: fn(*args, **kwargs), ttl, **options
                )

            return async_wrapper  # type: ignore[return-value]
        if not isinstance(cache, Cache):
            raise TypeError("a sync function needs a Cache")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user_key = call_key(args, kwargs)
            return cache.get_or_load(user_key, lambda: fn(*args, **kwargs), ttl, **options)

        return wrapper  # type: ignore[return-value]

    return decorate
