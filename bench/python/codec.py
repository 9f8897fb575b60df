"""The codec path at every size (issue 13): polycache get/set against redis-py + ormsgpack
and redis-py + json, one loopback Redis, sequential calls.

Values: the record dict `{"field_i": {"id": i, "name": ..., "score": i * 1.5, "tags": ["a",
"b"], "ok": True}}` and a list of floats, each at about 100 B, 1 KB, 10 KB, 100 KB and 1 MB of
JSON. Printed: time per call, ratios (peer time / polycache time: above 1 polycache is
faster), polycache's microseconds per KB (cost linear in size), and the peak RSS growth of
one 1 MB get in a fresh process. Run by `make bench-python` (bench.py) or on its own:

    POLYCACHE_HARNESS=.../polycache-harness python bench/python/codec.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import ormsgpack
import redis

import polycache

SIZES = [100, 1_000, 10_000, 100_000, 1_000_000]
ROUNDS = 5


def records(n: int) -> dict[str, Any]:
    return {
        f"field_{i}": {
            "id": i,
            "name": f"user {i}",
            "score": i * 1.5,
            "tags": ["a", "b"],
            "ok": True,
        }
        for i in range(n)
    }


def floats(n: int) -> list[float]:
    return [i * 0.3183098861837907 + 0.1 for i in range(n)]


def sized(make: Callable[[int], Any], target: int) -> Any:
    """The value whose JSON is closest to `target` bytes (at least one item)."""
    lo, hi = 1, 1
    while len(json.dumps(make(hi))) < target:
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if len(json.dumps(make(mid))) < target:
            lo = mid + 1
        else:
            hi = mid
    return make(lo)


def per_call(fn: Callable[[], Any], size: int) -> float:
    """Seconds per call, best of ROUNDS rounds of about 0.2 s each."""
    calls = max(5, min(2000, 2_000_000 // max(size, 1)))
    fn()  # warm up: connections, caches
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def row(label: str, ours: float, peers: dict[str, float], size: int) -> None:
    ratios = "  ".join(f"{peers[name] / ours:5.2f}x" for name in peers)
    print(f"  {label:<22} {ours * 1e6:10.1f} µs  {ours * 1e6 / (size / 1000):7.2f} µs/KB  {ratios}")


def measure(
    cache: polycache.Cache, client: redis.Redis, label: str, key: str, value: Any, size: int
) -> None:
    row(
        label + " get",
        per_call(lambda: cache.get(key), size),
        {
            "ormsgpack": per_call(lambda: ormsgpack.unpackb(client.get("mp:" + key)), size),
            "json": per_call(lambda: json.loads(client.get("js:" + key)), size),
        },
        size,
    )
    row(
        label + " set",
        per_call(lambda: cache.set(key, value), size),
        {
            "ormsgpack": per_call(lambda: client.set("mp:" + key, ormsgpack.packb(value)), size),
            "json": per_call(lambda: client.set("js:" + key, json.dumps(value)), size),
        },
        size,
    )


def run(url: str) -> None:
    cache = polycache.Cache(url, namespace="bench-codec")
    client = redis.Redis.from_url(url)
    print(
        "\ncodec path, sequential calls (ratio = peer time / polycache time; > 1: polycache faster)"
    )
    print(f"  {'value, direction':<22} {'polycache':>13}  {'cost':>13}  vs ormsgpack  vs json")
    for kind, make in (("records", records), ("floats", floats)):
        for target in SIZES:
            value = sized(make, target)
            size = len(json.dumps(value))
            key = f"{kind}:{target}"
            packed, text = ormsgpack.packb(value), json.dumps(value)
            client.set("mp:" + key, packed)
            client.set("js:" + key, text)
            cache.set(key, value)
            assert cache.get(key) == value
            measure(cache, client, f"{kind} {size / 1000:g} KB", key, value, size)
    compression(url)
    peak_rss(url)


def compression(url: str) -> None:
    """What LZ4 (the default above compressThreshold) costs or saves on loopback."""
    print("\ncompression on loopback: polycache µs per call, lz4 (default) / none")
    caches = {
        c: polycache.Cache(url, namespace="bench-lz4", compression=c) for c in ("lz4", "none")
    }
    for kind, make in (("records", records), ("floats", floats)):
        for target in SIZES[1:]:
            value = sized(make, target)
            size = len(json.dumps(value))
            cells = []
            for name, cache in caches.items():
                key = f"{name}:{kind}:{target}"
                set_t = per_call(lambda c=cache, k=key, v=value: c.set(k, v), size)
                get_t = per_call(lambda c=cache, k=key: c.get(k), size)
                cells.append(f"{name} set {set_t * 1e6:9.1f} get {get_t * 1e6:9.1f}")
            print(f"  {kind} {size / 1000:g} KB".ljust(24) + "   ".join(cells))


RSS_PROBE = """
import json, sys, ormsgpack, redis, polycache
url, who = sys.argv[1], sys.argv[2]
cache = polycache.Cache(url, namespace="bench-codec")
client = redis.Redis.from_url(url)
get = {
    "polycache": lambda: cache.get("records:1000000"),
    "ormsgpack": lambda: ormsgpack.unpackb(client.get("mp:records:1000000")),
    "json": lambda: json.loads(client.get("js:records:1000000")),
}[who]
client.ping()

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current RSS
before = status("VmRSS:")
value = get()
print(status("VmHWM:") - before)
"""


def peak_rss(url: str) -> None:
    print("\npeak RSS growth of one 1 MB records get (fresh process each)")
    for who in ("polycache", "ormsgpack", "json"):
        out = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, url, who], capture_output=True, text=True, check=True
        )
        print(f"  {who:<10} {int(out.stdout.strip()) / 1024:8.1f} MiB")


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from bench import start_redis

    url, proc = start_redis()
    try:
        run(url)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
