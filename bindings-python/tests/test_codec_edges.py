"""Edges of the Python codec path (src/value/{walk,build}.rs), each through the harness's
Redis: what the borrowed-pointer walk writes and what the decoder builds."""

from __future__ import annotations

import gc
import json
import math
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import polycache
from polycache import Cache, contract


@pytest.fixture
def redis_url(endpoints: dict[str, Any]) -> str:
    return str(endpoints["standalone"])


@pytest.fixture
def cache(redis_url: str, namespace: str) -> Iterator[Cache]:
    with Cache(redis_url, namespace=namespace) as c:
        yield c


def roundtrip(cache: Cache, value: Any) -> Any:
    cache.set("k", value)
    return cache.get("k")


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (bool is not int, dict order counts)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


# --- subclasses: their dunders are never called ---------------------------------------------

ARMED = False


class S(str):
    def __hash__(self) -> int:
        if ARMED:
            raise AssertionError("__hash__ called")
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        if ARMED:
            raise AssertionError("__eq__ called")
        return str.__eq__(self, other)

    def __str__(self) -> str:
        raise AssertionError("__str__ called")


class I(int):  # noqa: E742
    def __index__(self) -> int:
        raise AssertionError("__index__ called")

    def __int__(self) -> int:
        raise AssertionError("__int__ called")


class F(float):
    def __float__(self) -> float:
        raise AssertionError("__float__ called")


class D(dict[Any, Any]):
    def items(self) -> Any:
        raise AssertionError("items called")

    def keys(self) -> Any:
        raise AssertionError("keys called")

    def __iter__(self) -> Any:
        raise AssertionError("__iter__ called")


class L(list[Any]):
    def __iter__(self) -> Any:
        raise AssertionError("__iter__ called")


class T(tuple[Any, ...]):
    def __iter__(self) -> Any:
        raise AssertionError("__iter__ called")


@pytest.mark.parametrize("general", [False, True], ids=["fast-walk", "general-path"])
def test_subclasses_encode_without_calling_their_dunders(cache: Cache, general: bool) -> None:
    global ARMED
    entries: list[tuple[Any, Any]] = [
        (S("key"), S("text")),
        ("int", I(7)),
        ("big", I(2**64 - 1)),
        ("float", F(-0.5)),
        ("list", L([I(1), S("x")])),
        ("tuple", T((F(1.5), D([(S("in"), L())])))),
    ]
    if general:
        # A memoryview first: the fast walk stops there and the general path writes it all.
        entries.insert(0, ("mv", memoryview(b"m")))
    value = D(entries)
    expected: dict[str, Any] = {
        "key": "text",
        "int": 7,
        "big": 2**64 - 1,
        "float": -0.5,
        "list": [1, "x"],
        "tuple": [1.5, {"in": []}],
    }
    if general:
        expected = {"mv": b"m", **expected}
    ARMED = True
    try:
        cache.set("k", value)
    finally:
        ARMED = False
    assert same(cache.get("k"), expected)


def test_a_large_value_the_fast_walk_gives_up_on_late_is_stored_as_written_once(
    redis_url: str, namespace: str, cache: Cache
) -> None:
    # Complete pieces of a large payload go to the compression helper while the fast walk
    # writes; a memoryview at the end sends the value to the general path, which writes it
    # again from the start. The stored body is the one a single pass stores.
    rows = {f"field_{i}": {"id": i, "name": f"user {i}", "score": i * 1.5} for i in range(20_000)}
    raw = Cache(redis_url, namespace=namespace, raw=True)

    def body(key: str) -> bytes:
        stored = raw.get(key)
        assert isinstance(stored, bytes) and stored[5] == 1, "stored LZ4-compressed"
        return stored[8 + int.from_bytes(stored[6:8], "big") :]

    cache.set("rewound", {**rows, "late": memoryview(b"view")})
    cache.set("once", {**rows, "late": b"view"})
    assert len(body("once")) > 10_000
    assert body("rewound") == body("once")
    assert same(cache.get("rewound"), {**rows, "late": b"view"})


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2**63 - 1, 2**63, 2**64 - 1, -(2**63), -1, 0])
def test_integers_at_the_64_bit_boundaries_round_trip(cache: Cache, n: int) -> None:
    assert same(roundtrip(cache, [n, {"n": n}]), [n, {"n": n}])


@pytest.mark.parametrize("n", [2**64, -(2**63) - 1, 10**30, -(10**30)])
def test_integers_past_64_bits_raise_codec_error(cache: Cache, n: int) -> None:
    for value in (n, [1, n], {"a": n}, [memoryview(b""), n]):
        with pytest.raises(polycache.CodecError, match="64 bits"):
            cache.set("k", value)
    assert cache.get("k") is None


def test_negative_zero_nan_and_infinities_through_msgpack(cache: Cache) -> None:
    back = roundtrip(cache, [-0.0, math.nan, math.inf, -math.inf, {"z": -0.0}])
    assert math.copysign(1.0, back[0]) == -1.0
    assert math.copysign(1.0, back[4]["z"]) == -1.0
    assert math.isnan(back[1])
    assert back[2:4] == [math.inf, -math.inf]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_refuses_nan_and_infinities_inside_a_container(
    redis_url: str, namespace: str, bad: float
) -> None:
    with Cache(redis_url, namespace=namespace, codec="json") as cache:
        assert math.copysign(1.0, roundtrip(cache, {"z": [-0.0]})["z"][0]) == -1.0
        for value in ([1.0, bad], {"a": {"b": bad}}):
            with pytest.raises(polycache.CodecError):
                cache.set("bad", value)
        assert cache.get("bad") is None


def test_bools_inside_containers_stay_bools(cache: Cache) -> None:
    value = [True, False, 1, 0, {"t": True, "f": False, "l": [False, 1]}, (True,)]
    assert same(
        roundtrip(cache, value),
        [True, False, 1, 0, {"t": True, "f": False, "l": [False, 1]}, [True]],
    )


# --- nesting --------------------------------------------------------------------------------


def nested(depth: int, inner: Any) -> Any:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("inner", [None, memoryview(b"mv")], ids=["nil", "memoryview"])
def test_256_nested_lists_are_stored_and_257_raise(cache: Cache, inner: Any) -> None:
    # The innermost value sits at depth 256 (FORMAT.md §1): accepted; one more level is not.
    back = roundtrip(cache, nested(256, inner))
    assert same(back, nested(256, None if inner is None else b"mv"))
    with pytest.raises(polycache.CodecError):
        cache.set("deep", nested(257, inner))
    assert cache.get("deep") is None


def test_a_cyclic_dict_raises_codec_error(cache: Cache) -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    with pytest.raises(polycache.CodecError):
        cache.set("k", cyclic)
    with pytest.raises(polycache.CodecError):
        cache.set("k", {"mv": memoryview(b""), "c": cyclic})
    assert cache.get("k") is None


# --- decoding -------------------------------------------------------------------------------


def envelope(payload: bytes) -> bytes:
    """A MessagePack envelope around `payload`, uncompressed (FORMAT.md §1)."""
    return b"\xc1PC\x01\x01\x00" + struct.pack(">H", 16) + b"\0" * 16 + payload


def mp_str(s: str) -> bytes:
    data = s.encode()
    assert len(data) < 256
    return (bytes([0xA0 | len(data)]) if len(data) < 32 else b"\xd9" + bytes([len(data)])) + data


def test_the_gc_is_on_again_after_a_decode_and_after_a_decode_error(
    redis_url: str, namespace: str, cache: Cache
) -> None:
    raw = Cache(redis_url, namespace=namespace, raw=True)
    # An array of two items, the second cut off: the decoder fails inside a list.
    raw.set("cut", envelope(b"\x92\x81\xa1a\x01"))
    cache.set("ok", [{"a": 1}])
    assert gc.isenabled()
    assert cache.get("cut") is None
    assert cache.metrics()["decodeErrors"] == 1
    assert gc.isenabled()
    assert cache.get("ok") == [{"a": 1}]
    assert gc.isenabled()
    gc.disable()
    try:
        assert cache.get("ok") == [{"a": 1}]
        assert cache.get("cut") is None
        assert not gc.isenabled(), "a decode leaves a paused GC paused"
    finally:
        gc.enable()


def test_a_repeated_key_keeps_its_first_place_and_takes_the_last_value(
    redis_url: str, namespace: str, cache: Cache
) -> None:
    raw = Cache(redis_url, namespace=namespace, raw=True)
    entries = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
    payload = bytes([0x80 | len(entries)]) + b"".join(mp_str(k) + bytes([v]) for k, v in entries)
    raw.set("dup", envelope(b"\x92" + payload + payload))
    back = cache.get("dup")
    assert same(back, [{"a": 3, "b": 5, "c": 4}] * 2)


def test_many_long_and_non_ascii_keys_decode(cache: Cache) -> None:
    # Past the builder's 512 key slots (so slots collide), keys past its 64-byte cache limit,
    # and non-ASCII keys; three records share them, so cached key objects are reused.
    keys = [f"k{i}" for i in range(600)]
    keys += ["x" * 64, "y" * 65, "z" * 300, "é", "ключ", "鍵" * 30, "🔑", "e\u0301"]
    record = {k: i for i, k in enumerate(keys)}
    back = roundtrip(cache, [record, record, {"only": record}])
    assert same(back, [record, record, {"only": record}])
    assert all(type(k) is str for k in back[0])
    assert list(back[1]) == keys


@pytest.mark.parametrize(
    ("value", "expected"),
    [([], []), ({}, {}), ("", ""), (b"", b""), (bytearray(), b""), ((), [])],
    ids=["list", "dict", "str", "bytes", "bytearray", "tuple"],
)
def test_top_level_empties(cache: Cache, value: Any, expected: Any) -> None:
    assert same(roundtrip(cache, value), expected)
    assert contract.decode_envelope(contract.encode_envelope(value))["value"] == expected


@pytest.mark.parametrize("n", [1025, 5000, 60_000])
def test_a_long_list_is_decoded_into_all_its_slots_at_once(cache: Cache, n: int) -> None:
    # Core's preallocation budget grants an honest list its whole length, so the list is
    # made with exactly n slots (as `[None] * n` is), not grown by appending past a cap.
    values: list[Any] = [[i * 0.5 for i in range(n)], list(range(n)), [[i] for i in range(n)]]
    for value in values:
        back = roundtrip(cache, value)
        assert same(back, value)
        assert sys.getsizeof(back) == sys.getsizeof([None] * n)
    nested = roundtrip(cache, {"a": values[0], "b": [values[1]]})
    assert sys.getsizeof(nested["a"]) == sys.getsizeof(nested["b"][0]) == sys.getsizeof([None] * n)


# --- dicts and strs read in place (value/layout.rs) -----------------------------------------

# Builds the values checked, in this process and in one that reads dicts and strs only
# through CPython's calls.
VALUES = r"""
class Sub(dict):
    pass

class Text(str):
    pass

class Obj:
    def __init__(self):
        self.a = 1
        self.b = "two"

holed = {f"k{i}": i for i in range(50)}
for k in list(holed)[::3]:
    del holed[k]
grown = {}  # 70,000 entries: a 4-byte hash index
for i in range(70_000):
    grown[f"g{i}"] = i
for k in list(grown)[::5]:
    del grown[k]
was_mixed = {1: "x", "s": 2}  # a table for any keys, holding str keys only now
del was_mixed[1]
values = [
    {"zeta": 1, "alpha": {"y": [1, 2.5, None], "x": True}, "é": "ü"},
    {f"field_{i}": {"id": i, "name": f"user {i}", "tags": ["a", "b"]} for i in range(3000)},
    ["", "a", "x" * 31, "y" * 32, "z" * 70_000, "日本", "mixed é", Text("sub"), {Text("k"): 1}],
    "plain",
    Text("a subclass"),
    holed,
    grown,
    Obj().__dict__,
    was_mixed,
    Sub([("b", 1), ("a", Sub(c=2))]),
    {},
    {"": {}},
    {1: "x"},
    {"a": 1, 2: "b"},
]
"""


def encoded_values() -> list[str]:
    """Each value of VALUES as the hex of its envelope, or its CodecError's message."""
    scope: dict[str, Any] = {}
    exec(VALUES, scope)
    out = []
    for value in scope["values"]:
        try:
            out.append(contract.encode_envelope(value, compression="none").hex())
        except polycache.CodecError as err:
            out.append(f"CodecError: {err}")
    return out


def test_dicts_and_strs_are_read_in_place_on_the_cpythons_whose_layout_is_known() -> None:
    known = sys.implementation.name == "cpython" and (3, 11) <= sys.version_info < (3, 14)
    if os.environ.get("POLYCACHE_CPYTHON_LAYOUT") == "0":
        known = False
    assert polycache._native._reads_cpython_layout is known


def test_values_read_in_place_are_written_as_read_through_cpython_calls() -> None:
    script = (
        "import json, polycache, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_codec_edges import encoded_values\n"
        "print(json.dumps([polycache._native._reads_cpython_layout, encoded_values()]))\n"
    )
    env = {**os.environ, "POLYCACHE_CPYTHON_LAYOUT": "0"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    read_in_place, through_calls = json.loads(run.stdout)
    assert read_in_place is False
    ours = encoded_values()
    assert ours == through_calls
    assert ours[-2].startswith("CodecError") and ours[-1].startswith("CodecError")
    assert sum(not e.startswith("CodecError") for e in ours) == len(ours) - 2
