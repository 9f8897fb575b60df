"""The cross-language contract (docs/FORMAT.md) as plain functions: envelope bytes, Redis
keys, cluster slots, ring placement and function keys. The same functions exist in every
binding; `tests/vectors/*.json` checks them all."""

from ._native import (
    Ring,
    call_key,
    decode_envelope,
    encode_envelope,
    hash_tag,
    redis_key,
    render_key,
    slot,
)

__all__ = [
    "Ring",
    "call_key",
    "decode_envelope",
    "encode_envelope",
    "hash_tag",
    "redis_key",
    "render_key",
    "slot",
]
