import builtins
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Literal, TypeVar, final

from typing_extensions import TypeAlias

# What the value model of docs/FORMAT.md §2 holds.
_Value: TypeAlias = (
    None | bool | int | float | str | bytes | list[_Value] | tuple[_Value, ...] | dict[str, _Value]
)
_Items: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any]]
_F = TypeVar("_F", bound=Callable[..., Any])

__version__: str
# Whether dicts and strs are read in place (CPython 3.11–3.13) rather than through CPython calls.
_reads_cpython_layout: bool
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
    "KeyTemplate",
    "LoaderError",
    "NotFound",
    "PolycacheError",
    "Ring",
    "ServerError",
    "TimeoutError",
    "WriterError",
    "__version__",
    "_after_fork",
    "_reads_cpython_layout",
    "_shutdown",
    "call_key",
    "decode_envelope",
    "encode_envelope",
    "hash_tag",
    "lock_key",
    "redis_key",
    "render_key",
    "resolve_config",
    "should_refresh_early",
    "slot",
]

class PolycacheError(Exception): ...
class ConfigError(PolycacheError, ValueError): ...
class InvalidKeyError(PolycacheError, ValueError): ...
class CodecError(PolycacheError, TypeError): ...
class ConnectionError(PolycacheError, builtins.ConnectionError): ...  # noqa: A001
class TimeoutError(PolycacheError, builtins.TimeoutError): ...  # noqa: A001
class ServerError(PolycacheError): ...
class ClusterError(PolycacheError): ...
class LoaderError(PolycacheError): ...
class WriterError(PolycacheError): ...

@final
class Cache:
    def __new__(
        cls,
        url: str | None = None,
        *,
        loader: Callable[[str], Any] | None = None,
        writer: Callable[[str, Any], Any] | None = None,
        **options: Any,
    ) -> Cache: ...
    @staticmethod
    def from_url(
        url: str,
        *,
        loader: Callable[[str], Any] | None = None,
        writer: Callable[[str, Any], Any] | None = None,
        **options: Any,
    ) -> Cache: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...
    def delete(self, key: str) -> bool: ...
    def ttl(self, key: str) -> float | None: ...
    def get_many(self, keys: list[str]) -> list[Any]: ...
    def set_many(self, items: _Items, ttl: float | None = None) -> None: ...
    def get_or_load(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None = None,
        *,
        fresh_for: float | None = None,
        max_stale: float | None = None,
        fail_safe_backoff: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        early_refresh_beta: float | None = None,
        negative_ttl: float | None = None,
    ) -> Any: ...
    def get_entry(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None = None,
        *,
        fresh_for: float | None = None,
        max_stale: float | None = None,
        fail_safe_backoff: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        early_refresh_beta: float | None = None,
        negative_ttl: float | None = None,
    ) -> Entry: ...
    def cached(
        self,
        *,
        ttl: float | None = None,
        key: str | None = None,
        fresh_for: float | None = None,
        max_stale: float | None = None,
        fail_safe_backoff: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        early_refresh_beta: float | None = None,
        negative_ttl: float | None = None,
    ) -> Callable[[_F], _F]: ...
    def metrics(self) -> dict[str, Any]: ...
    def redis_key(self, key: str) -> str: ...
    def close(self) -> None: ...
    def __enter__(self) -> Cache: ...
    def __exit__(self, _exc: object, _value: object, _tb: object) -> None: ...

@final
class AsyncCache:
    def __new__(
        cls,
        url: str | None = None,
        *,
        loader: Callable[[str], Any] | None = None,
        writer: Callable[[str, Any], Any] | None = None,
        **options: Any,
    ) -> AsyncCache: ...
    @staticmethod
    def connect(
        url: str | None = None,
        *,
        loader: Callable[[str], Any] | None = None,
        writer: Callable[[str, Any], Any] | None = None,
        **options: Any,
    ) -> Awaitable[AsyncCache]: ...
    def get(self, key: str, default: Any = None) -> Awaitable[Any]: ...
    def set(self, key: str, value: Any, ttl: float | None = None) -> Awaitable[None]: ...
    def delete(self, key: str) -> Awaitable[bool]: ...
    def ttl(self, key: str) -> Awaitable[float | None]: ...
    def get_many(self, keys: list[str]) -> Awaitable[list[Any]]: ...
    def set_many(self, items: _Items, ttl: float | None = None) -> Awaitable[None]: ...
    def get_or_load(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None = None,
        *,
        fresh_for: float | None = None,
        max_stale: float | None = None,
        fail_safe_backoff: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        early_refresh_beta: float | None = None,
        negative_ttl: float | None = None,
    ) -> Awaitable[Any]: ...
    def get_entry(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None = None,
        *,
        fresh_for: float | None = None,
        max_stale: float | None = None,
        fail_safe_backoff: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        early_refresh_beta: float | None = None,
        negative_ttl: float | None = None,
    ) -> Awaitable[Entry]: ...
    def cached(
        self,
        *,
        ttl: float | None = None,
        key: str | None = None,
        fresh_for: float | None = None,
        max_stale: float | None = None,
        fail_safe_backoff: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        early_refresh_beta: float | None = None,
        negative_ttl: float | None = None,
    ) -> Callable[[_F], _F]: ...
    def metrics(self) -> dict[str, Any]: ...
    def redis_key(self, key: str) -> str: ...
    def close(self) -> None: ...
    def __aenter__(self) -> Awaitable[AsyncCache]: ...
    def __aexit__(self, _exc: object, _value: object, _tb: object) -> Awaitable[None]: ...

@final
class NotFound:
    # The type of NOT_FOUND, which a loader returns to say the key has no value.
    ...

NOT_FOUND: Final[NotFound]

@final
class Entry:
    # What `get_entry` returns: the value and how current it is.
    @property
    def value(self) -> Any: ...
    @property
    def found(self) -> bool: ...
    @property
    def stale(self) -> bool: ...
    @property
    def freshness(self) -> Literal["fresh", "stale", "fail-safe"]: ...
    @property
    def age(self) -> float | None: ...

@final
class Ring:
    def __new__(cls, nodes: list[tuple[str, int]]) -> Ring: ...
    def node_for(self, redis_key: str) -> str: ...
    def head(self, n: int) -> list[tuple[int, str]]: ...
    def __len__(self) -> int: ...

@final
class KeyTemplate:
    def __new__(cls, template: str) -> KeyTemplate: ...
    def render(self, args: Iterable[Any], named: dict[str, Any] | None = None) -> str: ...
    @property
    def positional_arity(self) -> int: ...
    @property
    def uses_names(self) -> bool: ...

def encode_envelope(
    value: Any,
    *,
    codec: str = "msgpack",
    compression: str = "lz4",
    compress_threshold: int = 1024,
    created_at: int = 0,
    fresh_until: int = 0,
    schema: str | None = None,
    tags: list[str] = ...,
) -> bytes: ...
def decode_envelope(bytes: bytes) -> dict[str, Any]: ...
def redis_key(prefix: str, namespace: str, max_key_length: int, key: str) -> str: ...
def lock_key(redis_key: str) -> str: ...
def hash_tag(redis_key: str) -> str: ...
def slot(redis_key: str) -> int: ...
def render_key(template: str, args: list[Any], named: dict[str, Any] | None = None) -> str: ...
def call_key(function_name: str, args: list[Any], named: dict[str, Any] | None = None) -> str: ...
def resolve_config(url: str, options: str) -> str: ...
def should_refresh_early(
    now: int, fresh_until: int, delta: int, beta: float, random: float
) -> bool: ...
def _shutdown() -> None: ...
def _after_fork() -> None: ...
