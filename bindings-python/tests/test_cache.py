"""The sync `Cache` on every store (memory, standalone, shards, cluster)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import polycache
from conftest import wait_until
from polycache import Cache

SAMPLE = {
    "name": "Zoë 🦀",
    "id": 2**64 - 1,
    "neg": -42,
    "ratio": 0.25,
    "blob": b"\x00\x01\xff",
    "tags": ["a", None, True],
    "nested": {"deep": {"x": 1}},
}


def test_get_set_delete(url: str, namespace: str) -> None:
    with Cache(url, namespace=namespace) as cache:
        assert cache.get("user:1") is None
        assert cache.get("user:1", "fallback") == "fallback"
        cache.set("user:1", SAMPLE)
        assert cache.get("user:1") == SAMPLE
        assert cache.delete("user:1") is True
        assert cache.delete("user:1") is False
        assert cache.get("user:1") is None
        m = cache.metrics()
        assert (m["hits"], m["misses"], m["sets"], m["deletes"]) == (1, 3, 1, 2)


def test_maps_keep_insertion_order(url: str, namespace: str) -> None:
    value = {"zeta": 1, "alpha": {"z": True, "m": None, "a": [{"y": 1, "x": 2.5}]}, "é": "e"}
    with Cache(url, namespace=namespace) as cache:
        cache.set("ordered", value)
        back = cache.get("ordered")
        assert list(back) == ["zeta", "alpha", "é"]
        assert list(back["alpha"]) == ["z", "m", "a"]
        assert list(back["alpha"]["a"][0]) == ["y", "x"]


def test_a_large_get_leaves_the_gc_as_it_found_it(namespace: str) -> None:
    import gc

    big = {f"field_{i}": {"id": i, "tags": ["a", "b"]} for i in range(5000)}  # > 64 KiB
    with Cache("memory://", namespace=namespace, compression="none") as cache:
        cache.set("big", big)
        cache.set("small", {"a": [1]})
        assert cache.get("small") == {"a": [1]}
        assert gc.isenabled()
        assert cache.get("big") == big
        assert gc.isenabled()
        gc.disable()
        try:
            assert cache.get("big") == big
            assert not gc.isenabled()
        finally:
            gc.enable()


def test_value_types_round_trip(url: str, namespace: str) -> None:
    cache = Cache(url, namespace=namespace)
    values: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1.5,
        1.0,
        "",
        "ü",
        b"",
        b"\x00",
        [],
        {},
        [1, [2, [3]]],
        {"a": {"b": None}},
    ]
    for i, value in enumerate(values):
        cache.set(f"v{i}", value)
        got = cache.get(f"v{i}", "MISSING")
        assert got == value and type(got) is type(value), (value, got)
    cache.set("tuple", (1, "two"))
    assert cache.get("tuple") == [1, "two"]
    cache.set("bytearray", bytearray(b"ab"))
    assert cache.get("bytearray") == b"ab"


def test_subclasses_and_values_the_fast_walk_hands_back_round_trip(namespace: str) -> None:
    """The borrowed-pointer walk (src/value/walk.rs) and the general path it falls back to
    write the same values: subclasses as their base kind, and a value holding a memoryview
    (which only the general path reads) is written again from the start, in order."""
    import enum

    class S(str): ...

    class Int(int): ...

    class F(float): ...

    class D(dict[str, Any]): ...

    class L(list[Any]): ...

    class T(tuple[Any, ...]): ...

    class B(bytes): ...

    class BA(bytearray): ...

    class Color(enum.IntEnum):
        RED = 1

    cases: list[tuple[Any, Any]] = [
        (S("s"), "s"),
        (Int(7), 7),
        (Int(2**64 - 1), 2**64 - 1),
        (F(0.5), 0.5),
        (D(b=1, a=2), {"b": 1, "a": 2}),
        (L([1, S("x")]), [1, "x"]),
        (T((1, 2)), [1, 2]),
        (B(b"b"), b"b"),
        (BA(b"ba"), b"ba"),
        (Color.RED, 1),
        ({S("k"): 1}, {"k": 1}),
        (
            {"a": [1, 2.5, "x"], "b": {"c": memoryview(b"mv"), "d": 1}, "z": (3, bytearray())},
            {"a": [1, 2.5, "x"], "b": {"c": b"mv", "d": 1}, "z": [3, b""]},
        ),
        ([{"deep": [memoryview(b"1")]}, 2], [{"deep": [b"1"]}, 2]),
    ]
    with Cache("memory://", namespace=namespace) as cache:
        for i, (value, expected) in enumerate(cases):
            cache.set(f"k{i}", value)
            back = cache.get(f"k{i}")
            assert back == expected and type(back) is type(expected), (value, back)
            if isinstance(expected, dict):
                assert list(back) == list(expected)
        for value in [
            {"a": 1, "b": [1, {2: "x"}]},  # after entries were written
            [1, -(2**63) - 1],
        ]:
            with pytest.raises(polycache.CodecError):
                cache.set("bad", value)
        # Lone surrogates: CodecError naming the str, the UnicodeEncodeError as its cause,
        # on the fast walk and on the general path (a memoryview sends the value there).
        for value, named in [
            ({"a": "x\ud800"}, "str 'x\\ud800'"),
            ({"k\ud800": 1}, "dict key 'k\\ud800'"),
            ({"m": memoryview(b""), "a": "x\ud800"}, "str 'x\\ud800'"),
            ({"m": memoryview(b""), "k\ud800": 1}, "dict key 'k\\ud800'"),
        ]:
            with pytest.raises(polycache.CodecError) as raised:
                cache.set("bad", value)
            assert named in str(raised.value)
            assert isinstance(raised.value.__cause__, UnicodeEncodeError)
        assert cache.get("bad") is None


def test_lists_longer_than_their_preallocated_slots_keep_every_item_in_order(
    namespace: str,
) -> None:
    """A decoded list sets its first slots in place and joins the items past them at the
    end (src/value/build.rs): every item, in order, for both codecs (JSON gives no length)."""
    value = {
        "long": [i if i % 3 else float(i) for i in range(5000)],
        "nested": [[j, str(j)] for j in range(1500)],
        "edge": list(range(1024)),
        "edge_plus": list(range(1025)),
    }
    for codec in ("msgpack", "json"):
        with Cache("memory://", namespace=namespace, codec=codec) as cache:
            cache.set("k", value)
            assert cache.get("k") == value, codec


def test_unsupported_values_raise_codec_error_naming_the_type(namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for value, named in [
        ({1, 2}, "set"),
        (object(), "object"),
        ({1: "non-str key"}, "int"),
        (2**64, "64 bits"),
        (cyclic, "cyclic"),
    ]:
        # A CodecError, which is also a TypeError as json.dumps raises.
        with pytest.raises(polycache.CodecError, match=named) as raised:
            cache.set("k", value)
        assert isinstance(raised.value, TypeError)
    with pytest.raises(polycache.InvalidKeyError):
        cache.get("")


def test_ttl_and_expiry(url: str, namespace: str) -> None:
    cache = Cache(url, namespace=namespace, ttl=100, jitter=0.5)
    cache.set("default", 1)
    left = cache.ttl("default")
    assert left is not None and 49 < left <= 100
    cache.set("short", 1, ttl=0.2)
    deadline = time.monotonic() + 5
    while cache.get("short") is not None:
        assert time.monotonic() < deadline, "value never expired"
        time.sleep(0.02)
    assert cache.ttl("missing") is None


def test_many(url: str, namespace: str) -> None:
    cache = Cache(url, namespace=namespace)
    cache.set_many({f"k{i}": i for i in range(0, 100, 2)})
    cache.set_many([("pair", "x")], ttl=60)
    got = cache.get_many([f"k{i}" for i in range(100)] + ["pair"])
    assert got == [i if i % 2 == 0 else None for i in range(100)] + ["x"]


def test_get_or_load_single_flight_across_threads(url: str, namespace: str) -> None:
    cache = Cache(url, namespace=namespace)
    threads = 16
    lock = threading.Lock()
    loading = most_loading = 0
    barrier = threading.Barrier(threads)

    def loader() -> dict[str, int]:
        nonlocal loading, most_loading
        with lock:
            loading += 1
            most_loading = max(most_loading, loading)
        # The latch: every thread has missed, so every one of them is in get_or_load now.
        wait_until(lambda: cache.metrics()["misses"] >= threads, "every thread missed")
        with lock:
            loading -= 1
        return {"n": 1}

    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get_or_load("hot", loader, ttl=60))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert results == [{"n": 1}] * threads
    assert cache.metrics()["misses"] == threads, "every thread looked up the key once"
    # A thread that missed just as the load ended may load again after it (single-flight
    # joins loads in flight); a broken single-flight runs the loads side by side.
    assert most_loading == 1, "two loads ran at once"


def test_loader_exception_reaches_the_caller_unchanged(url: str, namespace: str) -> None:
    class Boom(Exception):
        pass

    cache = Cache(url, namespace=namespace)
    err = Boom("database down")

    def loader() -> None:
        raise err

    with pytest.raises(Boom) as caught:
        cache.get_or_load("k", loader)
    assert caught.value is err
    assert cache.get("k") is None
    assert cache.metrics()["loadErrors"] == 1


def test_read_through_and_write_through(url: str, namespace: str) -> None:
    loaded: list[str] = []
    written: list[tuple[str, Any]] = []

    def loader(key: str) -> str:
        loaded.append(key)
        return f"row {key}"

    def writer(key: str, value: Any) -> None:
        if value == "reject":
            raise PermissionError("read-only primary")
        written.append((key, value))

    cache = Cache(url, namespace=namespace, loader=loader, writer=writer)
    assert cache.get("a") == "row a"
    assert cache.get("a") == "row a"
    assert cache.get_many(["a", "b"]) == ["row a", "row b"]
    assert loaded == ["a", "b"]
    cache.set("c", 3)
    assert written == [("c", 3)]
    with pytest.raises(PermissionError):
        cache.set("c", "reject")
    assert cache.get("c") == 3, "a failed write-through leaves the cache untouched"


def test_foreign_bytes_are_a_miss_and_a_decode_error(url: str, namespace: str) -> None:
    if url == "memory://":
        pytest.skip("separate memory:// caches do not share a store")
    raw = Cache(url, namespace=namespace, raw=True)
    raw.set("foreign", b"written by redis-cli")
    cache = Cache(url, namespace=namespace)
    assert cache.get("foreign") is None
    assert cache.metrics()["decodeErrors"] == 1
    assert raw.get("foreign") == b"written by redis-cli"


def test_from_url_combines_url_and_keyword_options(url: str) -> None:
    sep = "&" if "?" in url else "?"
    cache = Cache.from_url(f"{url}{sep}namespace=from-url&ttl=60", command_timeout=0.5)
    assert cache.redis_key("k") == "pc:from-url:{k}"
    cache.set("k", 1)
    left = cache.ttl("k")
    assert left is not None and 0 < left <= 60


def test_config_errors_are_typed() -> None:
    with pytest.raises(polycache.ConfigError, match="scheme"):
        Cache("mongodb://x")
    with pytest.raises(polycache.ConfigError, match="unknown"):
        Cache("memory://", not_an_option=1)
    with pytest.raises(polycache.ConfigError):
        Cache("memory://", jitter=3)
    assert issubclass(polycache.TimeoutError, polycache.PolycacheError)


def test_unreachable_redis_is_a_connection_error() -> None:
    started = time.monotonic()
    with pytest.raises((polycache.ConnectionError, polycache.TimeoutError)):
        Cache("redis://127.0.0.1:1", connect_timeout=0.3)
    assert time.monotonic() - started < 5


def test_close_and_context_manager(namespace: str) -> None:
    with Cache("memory://", namespace=namespace) as cache:
        cache.set("k", 1)
    with pytest.raises(polycache.ConnectionError, match="closed"):
        cache.get("k")


def test_get_or_load_serves_stale_and_refreshes_in_the_background(url: str, namespace: str) -> None:
    """Past `fresh_for` (before `ttl`) a caller gets the stale value at once while one
    refresh runs on a thread: the refresh's loader is held on an event until the stale
    answers are in, so a caller that waited for it would hang here."""
    cache = Cache(url, namespace=namespace, ttl=60)
    assert cache.get_or_load("k", lambda: 1, fresh_for=0.001) == 1
    release = threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        assert release.wait(10)
        return 2

    answers: list[Any] = []

    def stale_read_started() -> bool:
        answers.append(cache.get_or_load("k", slow, fresh_for=0.001))
        return bool(calls)

    wait_until(stale_read_started, "a stale read starts the refresh")
    assert set(answers) == {1}
    assert cache.get_or_load("k", slow, fresh_for=0.001) == 1, "one refresh: stale meanwhile"
    release.set()
    wait_until(lambda: cache.get("k") == 2, "the refresh stores its value")
    assert len(calls) == 1
    metrics = cache.metrics()
    assert metrics["staleServed"] >= 2 and metrics["backgroundRefreshes"] == 1


def test_get_or_load_options_are_checked(namespace: str) -> None:
    cache = Cache("memory://", namespace=namespace)
    with pytest.raises(polycache.ConfigError):
        cache.get_or_load("k", lambda: 1, fresh_for=-1)
