"""The cross-language contract (docs/FORMAT.md) as plain functions: envelope bytes, Redis
keys, cluster slots, ring placement and function keys. The same functions, with the same
parameters in the same order, exist in every binding: `tests/vectors/contract.json`
describes them and `tests/test_contract.py` checks this module against it."""

from ._native import (
    Ring,
    call_key,
    decode_envelope,
    encode_envelope,
    hash_tag,
    lock_key,
    redis_key,
    render_key,
    resolve_config,
    should_refresh_early,
    slot,
)

__all__ = [
    "Ring",
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
