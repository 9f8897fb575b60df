"""Every case of tests/vectors/*.json, through the Python binding."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import polycache
from notation import hostile_bytes, same, typed, vectors
from polycache import contract

ENVELOPE = vectors("envelope.json")
KEYS = vectors("keys.json")
RING = vectors("ring.json")
TEMPLATES = vectors("templates.json")
HOSTILE = vectors("hostile.json")
URLS = vectors("urls.json")
XFETCH = vectors("xfetch.json")
# The lock's keys; its scripts, tokens and poll pauses live in core (core/tests/lock.rs).
LOCK_KEYS = [c for c in vectors("lock.json") if c["kind"] == "lock-key"]


def test_every_file_has_at_least_50_cases() -> None:
    assert min(len(ENVELOPE), len(KEYS), len(RING), len(TEMPLATES), len(HOSTILE), len(URLS)) >= 50


def check_decoded(case: dict[str, Any], data: bytes) -> None:
    got = contract.decode_envelope(data)
    assert same(got["value"], typed(case["value"]))
    assert got["codec"] == case["codec"]
    assert got["created_at"] == case["createdAt"]
    assert got["fresh_until"] == case["freshUntil"]
    assert got["schema"] == case["schema"]
    assert got["tags"] == case["tags"]
    assert got["not_found"] == case.get("notFound", False)


@pytest.mark.parametrize("case", ENVELOPE, ids=lambda c: c["name"])
def test_envelope(case: dict[str, Any]) -> None:
    op = case["op"]
    if op == "encode-error":
        with pytest.raises(polycache.CodecError):
            contract.encode_envelope(typed(case["value"]), codec=case["codec"])
        return
    data = bytes.fromhex(case["hex"])
    if op == "decode":
        if "error" in case:
            with pytest.raises(polycache.CodecError):
                contract.decode_envelope(data)
        else:
            check_decoded(case, data)
        return
    check_decoded(case, data)
    encoded = contract.encode_envelope(
        typed(case["value"]),
        codec=case["codec"],
        compression="lz4",
        compress_threshold=case["compressThreshold"],
        created_at=case["createdAt"],
        fresh_until=case["freshUntil"],
        schema=case["schema"],
        tags=case["tags"],
    )
    if case["exact"]:
        assert encoded.hex() == case["hex"]
    else:
        header_len = 8 + int.from_bytes(data[6:8], "big")
        assert encoded[:header_len] == data[:header_len]
        check_decoded(case, encoded)
    assert encoded[5] == (1 if case["compression"] == "lz4" else 0)


# The cases a plain `set` writes: no header extensions, no fresh window.
SET_CASES = [
    c
    for c in ENVELOPE
    if c["op"] == "roundtrip"
    and c["schema"] is None
    and not c["tags"]
    and c["freshUntil"] == 0
    and "loadMs" not in c
    and "notFound" not in c
]


async def connect_async(url: str, namespace: str, options: dict[str, Any]) -> polycache.AsyncCache:
    return await polycache.AsyncCache.connect(url, namespace=namespace, **options)


async def set_async(cache: polycache.AsyncCache, key: str, value: Any, ttl: float | None) -> None:
    await cache.set(key, value, ttl=ttl)


def test_sets_store_the_envelope_bytes(endpoints: dict[str, Any], namespace: str) -> None:
    """What `Cache.set` and `AsyncCache.set` leave in Redis, read back with a plain GET: the
    vectors' envelope, with and without PX, with keys short and too long for the room the
    encoder leaves in front of the payload (FORMAT.md §1); large values compressed and not."""
    url = endpoints["standalone"]
    assert len(SET_CASES) >= 100
    raw = polycache.Cache(url, namespace=namespace, raw=True)
    big = [{"id": i, "name": f"user {i}", "tags": ["a", "b"]} for i in range(3000)]
    cases: list[tuple[str, Any, dict[str, Any]]] = [
        (
            c["name"],
            typed(c["value"]),
            {
                "codec": c["codec"],
                "compression": c["compression"],
                "compress_threshold": c["compressThreshold"],
            },
        )
        for c in SET_CASES
    ]
    cases += [
        ("big-records", big, {}),
        ("big-floats", [i * 0.271 for i in range(30_000)], {}),
    ]
    loop = asyncio.new_event_loop()
    try:
        check_sets(cases, url, namespace, raw, loop)
    finally:
        loop.close()


def check_sets(
    cases: list[tuple[str, Any, dict[str, Any]]],
    url: str,
    namespace: str,
    raw: polycache.Cache,
    loop: asyncio.AbstractEventLoop,
) -> None:
    for i, (name, value, options) in enumerate(cases):
        sync = polycache.Cache(url, namespace=namespace, ttl=0, **options)
        in_asyncio = loop.run_until_complete(connect_async(url, namespace, {"ttl": 0, **options}))
        # The second key is longer than the room in front of the payload and short enough
        # not to be hashed (over 200 bytes a key becomes a digest): the copy fallback runs.
        for key, ttl in ((f"v{i}", None), (f"{'k' * 150}{i}", 90.5)):
            if key.startswith("k"):
                assert len(sync.redis_key(key)) > 128, key
            for who in ("sync", "asyncio"):
                before_ms = time.time_ns() // 1_000_000
                if who == "sync":
                    sync.set(key, value, ttl=ttl)
                else:
                    loop.run_until_complete(set_async(in_asyncio, key, value, ttl))
                after_ms = time.time_ns() // 1_000_000
                stored = raw.get(key)
                assert isinstance(stored, bytes), (name, who)
                created_at = int.from_bytes(stored[8:16], "big")
                assert before_ms <= created_at <= after_ms, (name, who, created_at)
                want = contract.encode_envelope(
                    value,
                    codec=options.get("codec", "msgpack"),
                    compression=options.get("compression", "lz4"),
                    compress_threshold=options.get("compress_threshold", 1024),
                    created_at=created_at,
                )
                assert stored == want, (name, who, len(key), ttl)
                left = raw.ttl(key)
                if ttl is None:
                    assert left is None, (name, who)
                else:
                    assert left is not None and 30 < left <= ttl, (name, who, left)
                raw.delete(key)


@pytest.mark.parametrize("case", KEYS, ids=lambda c: c["name"])
def test_keys(case: dict[str, Any]) -> None:
    if case["kind"] == "slot":
        assert contract.hash_tag(case["redisKey"]) == case["hashTag"]
        assert contract.slot(case["redisKey"]) == case["slot"]
        return
    schema = (case["prefix"], case["namespace"], case["maxKeyLength"])
    if "error" in case:
        error = polycache.InvalidKeyError if case["error"] == "key" else polycache.ConfigError
        with pytest.raises(error):
            contract.redis_key(*schema, case["key"])
        return
    key = contract.redis_key(*schema, case["key"])
    assert key == case["redisKey"]
    assert contract.lock_key(key) == case["lockKey"]
    assert contract.hash_tag(key) == case["hashTag"]
    assert contract.slot(key) == case["slot"]


@pytest.mark.parametrize("case", LOCK_KEYS, ids=lambda c: c["name"])
def test_lock_keys(case: dict[str, Any]) -> None:
    key = contract.redis_key(case["prefix"], case["namespace"], 200, case["key"])
    lock = contract.lock_key(key)
    assert (key, lock) == (case["redisKey"], case["lockKey"])
    assert contract.slot(lock) == contract.slot(key) == case["slot"]


def ring_of(nodes: list[dict[str, Any]]) -> contract.Ring:
    return contract.Ring([(n["name"], n["weight"]) for n in nodes])


@pytest.mark.parametrize("case", RING, ids=lambda c: c["name"])
def test_ring(case: dict[str, Any]) -> None:
    if case["kind"] == "placement":
        ring = ring_of(case["nodes"])
        assert len(ring) == case["continuumSize"]
        assert [list(p) for p in ring.head(len(case["continuumHead"]))] == case["continuumHead"]
        for placement in case["placements"]:
            assert ring.node_for(placement["key"]) == placement["node"], placement["key"]
        return
    before, after = ring_of(case["before"]), ring_of(case["after"])
    keys = [case["keyPattern"].replace("{i}", str(i)) for i in range(case["count"])]
    moved = sum(before.node_for(k) != after.node_for(k) for k in keys)
    balance: dict[str, int] = {}
    for k in keys:
        balance[after.node_for(k)] = balance.get(after.node_for(k), 0) + 1
    assert moved == case["moved"]
    assert balance == case["balance"]


@pytest.mark.parametrize("case", TEMPLATES, ids=lambda c: c["name"])
def test_templates(case: dict[str, Any]) -> None:
    args = [typed(a) for a in case["args"]]
    if case["kind"] == "default":
        named_args = {k: typed(v) for k, v in case["named"].items()}
        assert contract.call_key(case["function"], args, named_args) == case["key"]
        return
    named = {k: typed(v) for k, v in case["named"].items()}
    if "error" in case:
        error = polycache.InvalidKeyError if case["error"] == "key" else polycache.ConfigError
        with pytest.raises(error):
            contract.render_key(case["template"], args, named)
        return
    assert contract.render_key(case["template"], args, named) == case["key"]


@pytest.mark.parametrize("case", URLS, ids=lambda c: c["name"])
def test_urls(case: dict[str, Any]) -> None:
    def resolve() -> Any:
        return json.loads(contract.resolve_config(case["url"], json.dumps(case["options"])))

    if "error" in case:
        assert case["error"] == "config"
        with pytest.raises(polycache.ConfigError):
            resolve()
        return
    assert resolve() == case["config"]


@pytest.mark.parametrize("case", XFETCH, ids=lambda c: c["name"])
def test_xfetch(case: dict[str, Any]) -> None:
    got = contract.should_refresh_early(
        case["now"], case["freshUntil"], case["delta"], case["beta"], case["random"]
    )
    assert got is case["refresh"]


# --- hostile.json: bounded time and memory (docs/FORMAT.md section 1, "Limits") ----------

HOSTILE_MAX_RSS = 64 * 1024 * 1024
HOSTILE_MAX_SECONDS = 2.0  # a hang detector, not a speed assertion


def peak_rss() -> int:
    """Peak resident memory of this process, in bytes (VmHWM; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> None:
    """Lower the peak to the current size where Linux allows it, so growth is this case's."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c["name"])
def test_hostile(case: dict[str, Any]) -> None:
    data = hostile_bytes(case)
    reset_peak_rss()
    before = peak_rss()
    started = time.monotonic()
    got: Any = None
    try:
        got = contract.decode_envelope(data)
    except polycache.CodecError:
        got = polycache.CodecError
    elapsed = time.monotonic() - started
    grew = peak_rss() - before
    if case["expect"] == "decode_error":
        assert got is polycache.CodecError
    else:
        assert got is not polycache.CodecError
        if case["expect"] == "value":
            assert same(got["value"], typed(case["value"]))
    del got
    assert elapsed < HOSTILE_MAX_SECONDS, f"took {elapsed:.3f} s"
    assert grew < HOSTILE_MAX_RSS, f"peak RSS grew by {grew} bytes"


def test_hostile_values_in_redis_are_counted_misses(
    endpoints: dict[str, Any], namespace: str
) -> None:
    url = endpoints["standalone"]
    hostile = [c for c in HOSTILE if c["expect"] == "decode_error"]
    raw = polycache.Cache(url, namespace=namespace, raw=True)
    for case in hostile:
        raw.set(case["name"], hostile_bytes(case))
    cache = polycache.Cache(url, namespace=namespace)
    for case in hostile:
        reset_peak_rss()
        before = peak_rss()
        started = time.monotonic()
        assert cache.get(case["name"]) is None, case["name"]
        elapsed = time.monotonic() - started
        grew = peak_rss() - before
        assert elapsed < HOSTILE_MAX_SECONDS, f"{case['name']}: took {elapsed:.3f} s"
        assert grew < HOSTILE_MAX_RSS, f"{case['name']}: peak RSS grew by {grew} bytes"
    metrics = cache.metrics()
    assert metrics["decodeErrors"] == len(hostile)
    assert metrics["misses"] == len(hostile)
    assert metrics["hits"] == 0


# Peak resident memory misses what is reserved but never touched (calloc'd pages): a reader
# that reserves per claimed length (256 nested claims of 1M items each: 2 GB) passes the RSS
# bound. So the same reads run again in a child process whose address space is capped a
# little above what it holds once warm, where such a reservation is a MemoryError.
HOSTILE_MAX_ADDRESS_SPACE = 512 * 1024 * 1024

ADDRESS_SPACE_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[3])
import polycache
from notation import hostile_bytes, vectors

url, namespace, limit = sys.argv[1], sys.argv[2], int(sys.argv[4])
cases = [c for c in vectors("hostile.json") if c["expect"] == "decode_error"]
raw = polycache.Cache(url, namespace=namespace, raw=True)
for case in cases:
    raw.set(case["name"], hostile_bytes(case))
cache = polycache.Cache(url, namespace=namespace)
cache.set("warm", [1, {"a": "b"}])
assert cache.get("warm") == [1, {"a": "b"}]
with open("/proc/self/status") as status:
    size = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + limit, resource.RLIM_INFINITY))
failed = {}
for case in cases:
    try:
        got = cache.get(case["name"])
        if got is not None:
            failed[case["name"]] = "a value"
    except BaseException as exc:
        failed[case["name"]] = type(exc).__name__
print(json.dumps({"read": [case["name"] for case in cases], "failed": failed}))
"""


def test_hostile_values_in_redis_stay_within_an_address_space_limit(
    endpoints: dict[str, Any], namespace: str
) -> None:
    vectors_dir = str(Path(__file__).resolve().parents[2] / "tests" / "vectors")
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            ADDRESS_SPACE_CHILD,
            endpoints["standalone"],
            namespace,
            vectors_dir,
            str(HOSTILE_MAX_ADDRESS_SPACE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    # The child read every decode-error case (an empty list would pass the check below).
    expected = [c["name"] for c in HOSTILE if c["expect"] == "decode_error"]
    assert expected, "hostile.json has decode-error cases"
    assert report["read"] == expected, "the child read the cases hostile.json has"
    assert report["failed"] == {}, "reads that failed under the address-space cap"
