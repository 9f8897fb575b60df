"""The codec path at every size (issue 13): polycache get/set against redis-py + ormsgpack
and redis-py + json, one loopback Redis, sequential calls.

Values: the record dict `{"field_i": {"id": i, "name": ..., "score": i * 1.5, "tags": ["a",
"b"], "ok": True}}` and a list of floats, each at about 100 B, 1 KB, 10 KB, 100 KB and 1 MB of
JSON. Printed: polycache's time per call (median of rounds) and microseconds per KB (cost
linear in size), ratios against each peer (the peer's time / polycache's in the same round,
median of rounds: above 1 polycache is faster; see `row`), and the peak RSS growth of one
1 MB get in a fresh process. Run by `make bench-python` (bench.py) or on its own:

    POLYCACHE_HARNESS=.../polycache-harness python bench/python/codec.py

POLYCACHE_BENCH_ROUNDS sets the number of rounds (5 by default); POLYCACHE_BENCH_CPU=0 runs
this process and the server on CPU 0 alone (see `_common.pinned`: the work of a round trip,
without the wait for an idle CPU to wake).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import ormsgpack
import redis
from _common import pinned

import polycache

SIZES = [100, 1_000, 10_000, 100_000, 1_000_000]
# The same round trip as the cache's: it writes every value with its TTL (300 s by
# default), so the peers write theirs with it too (a SET without one is less work for Redis).
TTL_MS = 300_000
# Rounds per cell; more (POLYCACHE_BENCH_ROUNDS=15) steadies a loaded machine.
ROUNDS = int(os.environ.get("POLYCACHE_BENCH_ROUNDS", "5"))


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
    return compare({"": fn}, size)[""]


def timed_rounds(fns: dict[str, Callable[[], Any]], size: int) -> list[dict[str, float]]:
    """Seconds per call of each function in each of ROUNDS rounds. Within a round the
    functions take turns in slices of a tenth of its calls, each slice starting with the
    next one, so a phase of the machine falls on all of them alike, and none always
    follows the same one (and the heap it left: a 1 MB `json.loads` leaves the allocator
    handing out large blocks differently)."""
    calls = max(5, min(2000, 2_000_000 // max(size, 1)))
    slices = min(10, calls)
    per_slice = -(-calls // slices)
    for fn in fns.values():
        fn()  # warm up: connections, caches
    items = list(fns.items())
    rounds = []
    for r in range(ROUNDS):
        spent = dict.fromkeys(fns, 0.0)
        for s in range(slices):
            turn = (r * slices + s) % len(items)
            for name, fn in items[turn:] + items[:turn]:
                started = time.perf_counter()
                for _ in range(per_slice):
                    fn()
                spent[name] += time.perf_counter() - started
        rounds.append({name: t / (slices * per_slice) for name, t in spent.items()})
    return rounds


def compare(fns: dict[str, Callable[[], Any]], size: int) -> dict[str, float]:
    """Seconds per call of each function, best of its rounds ([`timed_rounds`])."""
    rounds = timed_rounds(fns, size)
    return {name: min(r[name] for r in rounds) for name in fns}


def row(label: str, rounds: list[dict[str, float]], size: int) -> None:
    """polycache's median time per call and, against each peer, the median over rounds of
    the round's ratio (the peer's time / polycache's in that round): two times taken in the
    same round, slice by slice, leave out the machine's phases that two best-of-rounds
    times each pick up on their own. Last, the middle half of the rounds' ratios against
    ormsgpack."""
    ours = statistics.median(r["polycache"] for r in rounds)
    peers = [name for name in rounds[0] if name != "polycache"]
    ratios = "  ".join(
        f"{statistics.median(r[name] / r['polycache'] for r in rounds):9.2f}x" for name in peers
    )
    against = sorted(r["ormsgpack"] / r["polycache"] for r in rounds)
    low, high = against[(len(against) - 1) // 4], against[-(-(len(against) - 1) * 3 // 4)]
    print(
        f"  {label:<22} {ours * 1e6:10.1f} µs  {ours * 1e6 / (size / 1000):7.2f} µs/KB  "
        f"{ratios}  {low:.2f}–{high:.2f}"
    )


def measure(
    cache: polycache.Cache, client: redis.Redis, label: str, key: str, value: Any, size: int
) -> None:
    gets: dict[str, Callable[[], Any]] = {
        "polycache": lambda: cache.get(key),
        "ormsgpack": lambda: ormsgpack.unpackb(client.get("mp:" + key)),
        "json": lambda: json.loads(client.get("js:" + key)),
    }
    row(label + " get", timed_rounds(gets, size), size)
    sets: dict[str, Callable[[], Any]] = {
        "polycache": lambda: cache.set(key, value),
        "ormsgpack": lambda: client.set("mp:" + key, ormsgpack.packb(value), px=TTL_MS),
        "json": lambda: client.set("js:" + key, json.dumps(value), px=TTL_MS),
    }
    row(label + " set", timed_rounds(sets, size), size)


def run(url: str) -> None:
    cache = polycache.Cache(url, namespace="bench-codec")
    client = redis.Redis.from_url(url)
    placement = pinned(url)
    print(
        f"\ncodec path, sequential calls, {placement}, {ROUNDS} rounds (time: median; ratio ="
        " peer time / polycache time in a round, median of rounds; > 1: polycache faster)"
    )
    print(
        f"  {'value, direction':<22} {'polycache':>13}  {'cost':>13}  vs ormsgpack    vs json"
        "  (middle half vs ormsgpack)"
    )
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


# What compression costs or saves: LZ4 from 1 KiB (the default before issue 13), from
# 64 KiB, and none. Used here (loopback) and by lz4_proxy.py (through a delay proxy).
COMPRESSION = {
    "lz4 1K": {"compression": "lz4", "compress_threshold": 1024},
    "lz4 64K": {"compression": "lz4", "compress_threshold": 65536},
    "none": {"compression": "none"},
}


def compression_table(url: str, sizes: list[int]) -> None:
    """µs per set and get for each COMPRESSION setting, interleaved."""
    caches = {
        name: polycache.Cache(url, namespace="bench-lz4", **options)
        for name, options in COMPRESSION.items()
    }
    print(f"  {'':<22}" + "".join(f"{name + ' set':>13}{name + ' get':>13}" for name in caches))
    for kind, make in (("records", records), ("floats", floats)):
        for target in sizes:
            value = sized(make, target)
            size = len(json.dumps(value))
            key = f"{kind}:{target}"
            sets = {n: (lambda c=c, k=n + key, v=value: c.set(k, v)) for n, c in caches.items()}
            set_t = compare(sets, size)
            gets = {n: (lambda c=c, k=n + key: c.get(k)) for n, c in caches.items()}
            get_t = compare(gets, size)
            cells = "".join(f"{set_t[n] * 1e6:13.1f}{get_t[n] * 1e6:13.1f}" for n in caches)
            print(f"  {kind} {size / 1000:g} KB".ljust(24) + cells, flush=True)


def compression(url: str) -> None:
    print("\ncompression on loopback: polycache µs per call")
    compression_table(url, SIZES[1:])


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
