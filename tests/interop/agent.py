"""The Python side of the interop matrix (make interop). One command per process:

    agent.py write URL NS            write every case of cases.json
    agent.py read URL NS             read them back; report what matched
    agent.py delete URL NS KEY       delete one user key
    agent.py get URL NS KEY          whether a user key is there
    agent.py ttl URL NS KEY          its remaining TTL in seconds
    agent.py place URL NS COUNT      write user:0..COUNT-1; report each key's ring node
    agent.py cached URL NS ARG       call a @cache.cached(key="report:{0}") function
    agent.py raw URL NS              read bare keys written by redis-cli, raw and enveloped
    agent.py negative-write URL NS KEY  get_or_load KEY with a loader answering NOT_FOUND,
                                     negative_ttl 600 (the cache stores a not-found envelope)
    agent.py negative-read URL NS KEY   get_entry KEY with a loader that would load:
                                     {"found", "loaded", "get"} (get: whether get finds a value)

Each prints one JSON line. The other runtimes' agents take the same commands.

The stampede lock (FORMAT.md §6) adds one command that talks with the driver over
stdin/stdout, every line JSON:

    agent.py stampede URL NS SPEC    open a cache with stampede_lock on (SPEC.lease,
                                     SPEC.timeout s), print {"ready": true}, wait for a
                                     line, then make SPEC.callers concurrent get_or_load
                                     calls over SPEC.keys (caller i asks for key i mod n).
                                     The loader INCRs SPEC.counterPrefix + key on the Redis
                                     at SPEC.counter (host:port), then with SPEC.hold prints
                                     {"loading": key} and waits for a line, else waits
                                     SPEC.delayMs (a slow database), and returns
                                     "<SPEC.value>:<key>". {"missed": true} is printed once
                                     the cache has missed. Out: {"values": {key: value},
                                     "errors": [...], "metrics": {...}}. SPEC.mode `sync`
                                     (threads on the sync Cache) or `async` (AsyncCache);
                                     SPEC.lock false turns the lock off (a control run).

The fault suite (tests/faults/faults.py) adds two commands that talk with the driver over
stdin/stdout; SPEC is a JSON object, `mode` picks the I/O mode (`sync` or `async` here):

    agent.py fault URL NS SPEC       open a cache with connect and command timeouts of
                                     SPEC.timeout s, set SPEC.keys, print {"ready": true},
                                     wait for a line on stdin (the driver injects a fault
                                     meanwhile), then time SPEC.rounds calls of every API and
                                     one open of SPEC.openUrl: {"cells": {api: [[s, err]…]}}
    agent.py load URL NS SPEC        write SPEC.count keys, print {"ready": true}, wait for a
                                     line, then for SPEC.seconds loop over the keys (a set
                                     every 10th op, else a get checked against its value):
                                     ops, errors, wrong values, misses, error times
    agent.py failsafe URL NS SPEC    the fail-safe table: open a cache with timeouts of
                                     SPEC.timeout s, hard_timeout SPEC.hardTimeout s and
                                     max_stale 600 s (SPEC.failSafe) or 0, load SPEC.key
                                     ("good"), print {"ready": true}, wait for a line (the
                                     driver deletes the key, or pauses or kills Redis),
                                     then SPEC.rounds get_or_load calls whose loader
                                     raises ("database down") or, with SPEC.fault
                                     `loader-hangs`, takes SPEC.hangSeconds:
                                     {"first": v, "calls": [[s, value, kind|null, error]…],
                                     "loaderCalls": n}; kind is `loader` or `timeout`

The freshness matrix (matrix.py) adds a writer and a reader, both started ahead and let
go by a line on stdin (after {"ready": true}), so their process start is not in the
fresh window:

    agent.py fresh-write URL NS SPEC get_or_load each of SPEC.keys (TTL 600 s) on a cache
                                     with fresh_for SPEC.freshFor s; the value is
                                     SPEC.value. Out: {"written": n}
    agent.py fresh-read URL NS SPEC  SPEC.cells [{"ns", "key"}]: read each (get_entry with
                                     a loader that fails, or where a binding has none, the
                                     envelope's fresh-until against this process's clock)
                                     until it reads stale or SPEC.seconds pass. Per cell:
                                     {"value", "first": fresh|stale, "lastFresh": ms before
                                     the last fresh read began, "firstStale": ms after the
                                     first stale read ended} (wall clock); "via" says how

The invalidation matrix (matrix.py) adds a writer's two timed commands and a long-lived
reader holding a near tier:

    agent.py timed-set URL NS KEY    set KEY to "written by <runtime>" (no near tier);
                                     {"returned": wall-clock seconds when set returned}
    agent.py timed-delete URL NS KEY delete KEY; {"returned": ...} likewise
    agent.py near-reader URL NS      open a cache with a near tier, print {"ready": true},
                                     then answer one JSON line per request line:
        {"op": "cache", "key": K}    read K until a read is a near hit:
                                     {"cached": bool, "found": bool, "value": V}
        {"op": "watch"}              print {"watching": true}, then poll the near tier's
                                     entry count in a tight loop until it drops (the
                                     entry was invalidated) or 10 s pass, then read K from
                                     Redis: {"evictedAt": s|null, "found", "value",
                                     "flushes"} (evictedAt in wall-clock seconds)
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polycache
from polycache import NOT_FOUND, AsyncCache, Cache, contract

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vectors"))
from notation import interop_cases, same, typed  # noqa: E402 (tests/vectors/notation.py)

CASES = interop_cases()


def cache_for(url: str, ns: str, case: dict[str, Any] | None = None, **extra: Any) -> Cache:
    options: dict[str, Any] = {"namespace": ns, **extra}
    if case is not None:
        options["codec"] = case["codec"]
        options["compress_threshold"] = case["compressThreshold"]
    return Cache(url, **options)


def timed_calls(spec: dict[str, Any]) -> list[tuple[str, Any]]:
    keys: list[str] = spec["keys"]
    return [
        ("get", lambda c: c.get(keys[0])),
        ("set", lambda c: c.set(keys[0], "after", ttl=60)),
        ("delete", lambda c: c.delete(keys[0])),
        ("ttl", lambda c: c.ttl(keys[0])),
        ("get_many", lambda c: c.get_many(keys)),
        ("set_many", lambda c: c.set_many({k: "after" for k in keys}, ttl=60)),
        ("get_or_load", lambda c: c.get_or_load(keys[0], lambda: "loaded", ttl=60)),
    ]


def error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:300]


def wait_for_go() -> None:
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()


def fault_sync(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    t = spec["timeout"]
    options = {"namespace": ns, "command_timeout": t, "connect_timeout": t}
    cache = Cache(url, **options)
    cache.set_many({k: "before" for k in spec["keys"]}, ttl=600)
    wait_for_go()
    cells: dict[str, list[list[Any]]] = {}
    for _ in range(spec["rounds"]):
        for api, call in timed_calls(spec):
            started = time.perf_counter()
            try:
                call(cache)
                err = None
            except Exception as e:  # noqa: BLE001 - any failure is an outcome to report
                err = error_text(e)
            cells.setdefault(api, []).append([time.perf_counter() - started, err])
        started = time.perf_counter()
        try:
            Cache(spec.get("openUrl") or url, **options)
            err = None
        except Exception as e:  # noqa: BLE001
            err = error_text(e)
        cells.setdefault("open", []).append([time.perf_counter() - started, err])
    return {"cells": cells}


async def fault_async(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    t = spec["timeout"]
    options = {"namespace": ns, "command_timeout": t, "connect_timeout": t}
    cache = await AsyncCache.connect(url, **options)
    await cache.set_many({k: "before" for k in spec["keys"]}, ttl=600)
    await asyncio.get_running_loop().run_in_executor(None, wait_for_go)
    cells: dict[str, list[list[Any]]] = {}
    for _ in range(spec["rounds"]):
        for api, call in timed_calls(spec):
            started = time.perf_counter()
            try:
                await call(cache)
                err = None
            except Exception as e:  # noqa: BLE001
                err = error_text(e)
            cells.setdefault(api, []).append([time.perf_counter() - started, err])
        started = time.perf_counter()
        try:
            await AsyncCache.connect(spec.get("openUrl") or url, **options)
            err = None
        except Exception as e:  # noqa: BLE001
            err = error_text(e)
        cells.setdefault("open", []).append([time.perf_counter() - started, err])
    return {"cells": cells}


class DatabaseDown(Exception):
    """What the fail-safe table's loaders raise."""


def failure_kind(err: BaseException) -> str:
    """`loader` (the loader's own error, or LoaderError), `timeout`, or the class name."""
    if isinstance(err, polycache.TimeoutError):
        return "timeout"
    if isinstance(err, (DatabaseDown, polycache.LoaderError)):
        return "loader"
    return type(err).__name__


def failsafe_options(ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    t = spec["timeout"]
    return {
        "namespace": ns,
        "command_timeout": t,
        "connect_timeout": t,
        "hard_timeout": spec["hardTimeout"],
        "max_stale": 600 if spec["failSafe"] else 0,
    }


class FailsafeRounds:
    """What the fail-safe rounds saw: each call's seconds and value or failure, and how
    often the loader ran."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.calls: list[list[Any]] = []
        self.loads = 0

    def load(self) -> None:
        """Counts a loader call; raises DatabaseDown unless SPEC.fault is a hanging loader."""
        self.loads += 1
        if self.spec["fault"] != "loader-hangs":
            raise DatabaseDown("database down")

    def add(self, started: float, value: Any = None, error: Exception | None = None) -> None:
        seconds = time.perf_counter() - started
        if error is None:
            self.calls.append([seconds, value, None, None])
        else:
            self.calls.append([seconds, None, failure_kind(error), error_text(error)])

    def report(self, first: Any) -> dict[str, Any]:
        return {"first": first, "calls": self.calls, "loaderCalls": self.loads}


def failsafe_sync(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    cache = Cache(url, **failsafe_options(ns, spec))
    key = spec["key"]
    first = cache.get_or_load(key, lambda: "good", ttl=600)
    wait_for_go()
    rounds = FailsafeRounds(spec)

    def loader() -> str:
        rounds.load()
        time.sleep(spec["hangSeconds"])
        return "late"

    for _ in range(spec["rounds"]):
        started = time.perf_counter()
        try:
            rounds.add(started, cache.get_or_load(key, loader, ttl=600))
        except Exception as e:  # noqa: BLE001 - the outcome to report
            rounds.add(started, error=e)
    return rounds.report(first)


async def failsafe_async(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    cache = await AsyncCache.connect(url, **failsafe_options(ns, spec))
    key = spec["key"]

    async def good() -> str:
        return "good"

    first = await cache.get_or_load(key, good, ttl=600)
    await asyncio.get_running_loop().run_in_executor(None, wait_for_go)
    rounds = FailsafeRounds(spec)

    async def loader() -> str:
        rounds.load()
        await asyncio.sleep(spec["hangSeconds"])
        return "late"

    for _ in range(spec["rounds"]):
        started = time.perf_counter()
        try:
            rounds.add(started, await cache.get_or_load(key, loader, ttl=600))
        except Exception as e:  # noqa: BLE001 - the outcome to report
            rounds.add(started, error=e)
    return rounds.report(first)


class Tally:
    """What a load loop saw: a set every 10th op, else a get checked against its value."""

    def __init__(self) -> None:
        self.ops = self.errors = self.wrong = self.misses = 0
        self.first_error: float | None = None
        self.last_error: float | None = None
        self.sample: list[str] = []

    def error(self, err: BaseException) -> None:
        now = time.time()
        self.errors += 1
        self.first_error = self.first_error or now
        self.last_error = now
        if len(self.sample) < 3:
            self.sample.append(error_text(err))

    def seen(self, i: int, got: Any) -> bool:
        """Counts a read; whether the key must be written again (a miss)."""
        if got is None:
            self.misses += 1
            return True
        if got != i:
            self.wrong += 1
        return False

    def report(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "errors": self.errors,
            "wrong": self.wrong,
            "misses": self.misses,
            "firstError": self.first_error,
            "lastError": self.last_error,
            "sample": self.sample,
        }


def load_sync(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    t = spec["timeout"]
    cache = Cache(url, namespace=ns, command_timeout=t, connect_timeout=t)
    count = spec["count"]
    for start in range(0, count, 500):
        cache.set_many({f"k{i}": i for i in range(start, min(count, start + 500))}, ttl=600)
    wait_for_go()
    tally, end, i = Tally(), time.monotonic() + spec["seconds"], 0
    while time.monotonic() < end:
        n = i % count
        try:
            if i % 10 == 0 or tally.seen(n, cache.get(f"k{n}")):
                cache.set(f"k{n}", n, ttl=600)
        except polycache.PolycacheError as err:
            tally.error(err)
        tally.ops += 1
        i += 1
    return tally.report()


async def load_async(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    t = spec["timeout"]
    cache = await AsyncCache.connect(url, namespace=ns, command_timeout=t, connect_timeout=t)
    count = spec["count"]
    for start in range(0, count, 500):
        batch = {f"k{i}": i for i in range(start, min(count, start + 500))}
        await cache.set_many(batch, ttl=600)
    await asyncio.get_running_loop().run_in_executor(None, wait_for_go)
    tally, end, i = Tally(), time.monotonic() + spec["seconds"], 0
    while time.monotonic() < end:
        n = i % count
        try:
            if i % 10 == 0 or tally.seen(n, await cache.get(f"k{n}")):
                await cache.set(f"k{n}", n, ttl=600)
        except polycache.PolycacheError as err:
            tally.error(err)
        tally.ops += 1
        i += 1
    return tally.report()


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def incr_command(key: str) -> bytes:
    raw = key.encode()
    return b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(raw), raw)


def incr_sync(addr: str, key: str) -> None:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(incr_command(key))
        sock.makefile("rb").readline()


async def incr_async(addr: str, key: str) -> None:
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(incr_command(key))
    await writer.drain()
    await reader.readline()
    writer.close()


def lock_options(spec: dict[str, Any], ns: str) -> dict[str, Any]:
    return {
        "namespace": ns,
        "stampede_lock": spec.get("lock", True),
        "lock_lease": spec.get("lease", 10),
        "lock_timeout": spec.get("timeout", 10),
    }


def stampede_sync(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    cache = Cache(url, **lock_options(spec, ns))
    keys: list[str] = spec["keys"]
    wait_for_go()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and cache.metrics()["misses"] < 1:
            done.wait(0.001)
        if not done.is_set():
            emit({"missed": True})

    def call(i: int) -> tuple[str, Any]:
        key = keys[i % len(keys)]

        def loader() -> str:
            incr_sync(spec["counter"], spec["counterPrefix"] + key)
            if spec.get("hold"):
                emit({"loading": key})
                sys.stdin.readline()
            else:
                time.sleep(spec.get("delayMs", 0) / 1000)
            return f"{spec['value']}:{key}"

        try:
            return key, cache.get_or_load(key, loader, ttl=600)
        except polycache.PolycacheError as err:
            return key, {"error": error_text(err)}

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(max_workers=spec["callers"]) as pool:
        results = list(pool.map(call, range(spec["callers"])))
    done.set()
    watcher.join()
    return stampede_report(results, cache.metrics())


async def stampede_async(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    cache = await AsyncCache.connect(url, **lock_options(spec, ns))
    keys: list[str] = spec["keys"]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wait_for_go)

    async def watch() -> None:
        while cache.metrics()["misses"] < 1:
            await asyncio.sleep(0.001)
        emit({"missed": True})

    async def call(i: int) -> tuple[str, Any]:
        key = keys[i % len(keys)]

        async def loader() -> str:
            await incr_async(spec["counter"], spec["counterPrefix"] + key)
            if spec.get("hold"):
                emit({"loading": key})
                await loop.run_in_executor(None, sys.stdin.readline)
            else:
                await asyncio.sleep(spec.get("delayMs", 0) / 1000)
            return f"{spec['value']}:{key}"

        try:
            return key, await cache.get_or_load(key, loader, ttl=600)
        except polycache.PolycacheError as err:
            return key, {"error": error_text(err)}

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(call(i) for i in range(spec["callers"])))
    watcher.cancel()
    return stampede_report(results, cache.metrics())


def stampede_report(results: list[tuple[str, Any]], metrics: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    errors: list[str] = []
    for key, got in results:
        if isinstance(got, dict):
            errors.append(got["error"])
        elif values.setdefault(key, got) != got:
            errors.append(f"{key}: {got!r} after {values[key]!r}")
    return {"values": values, "errors": errors[:5], "metrics": metrics}


def fresh_write(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    cache = Cache(url, namespace=ns, fresh_for=spec["freshFor"])
    wait_for_go()
    for key in spec["keys"]:
        cache.get_or_load(key, lambda: spec["value"], ttl=600)
    return {"written": len(spec["keys"])}


def epoch_ms() -> float:
    return time.time_ns() / 1e6


class FreshReader:
    """Reads one key of the freshness matrix: with `get_entry` where the binding has it,
    otherwise the stored envelope's fresh-until (raw read, contract decode) against this
    process's clock, by FORMAT.md §7's rule."""

    def __init__(self, url: str, ns: str, key: str) -> None:
        self.key = key
        self.cache = Cache(url, namespace=ns)
        self.raw = Cache(url, namespace=ns, raw=True)
        self.via = "get_entry" if hasattr(self.cache, "get_entry") else "envelope"

    def read(self) -> tuple[float, float, Any, bool]:
        """(ms before, ms after, value, stale)"""
        before = epoch_ms()
        if self.via == "get_entry":
            entry = self.cache.get_entry(self.key, fails)  # type: ignore[attr-defined]
            value, stale = entry.value, entry.stale
        else:
            envelope = contract.decode_envelope(self.raw.get(self.key))
            fresh_until = envelope["fresh_until"]
            value, stale = envelope["value"], fresh_until != 0 and before >= fresh_until
        return before, epoch_ms(), value, stale


def fails() -> Any:
    raise DatabaseDown("the reader does not load")


def fresh_read(url: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    readers = [FreshReader(url, cell["ns"], cell["key"]) for cell in spec["cells"]]
    wait_for_go()
    cells: list[dict[str, Any]] = [{} for _ in readers]
    deadline = time.monotonic() + spec["seconds"]
    while time.monotonic() < deadline and not all("firstStale" in c for c in cells):
        for reader, cell in zip(readers, cells):
            if "firstStale" in cell or "error" in cell:
                continue
            try:
                before, after, value, stale = reader.read()
            except Exception as e:  # noqa: BLE001 - the outcome to report
                cell["error"] = error_text(e)
                continue
            cell.setdefault("first", "stale" if stale else "fresh")
            cell["value"] = value
            if stale:
                cell["firstStale"] = after
            else:
                cell["lastFresh"] = before
    return {"via": readers[0].via if readers else None, "cells": cells}


def near_reader(url: str, ns: str) -> dict[str, Any]:
    """The reader of the invalidation matrix: see the module docs."""
    cache = Cache(url, namespace=ns, near_cache=1000)
    print(json.dumps({"ready": True}), flush=True)
    key = ""
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "cache":
            key = request["key"]
            print(json.dumps(near_cache(cache, key)), flush=True)
        elif request["op"] == "watch":
            print(json.dumps({"watching": True}), flush=True)
            print(json.dumps(near_watch(cache, key)), flush=True)
    return {"closed": True}


def near_cache(cache: Cache, key: str) -> dict[str, Any]:
    """Reads `key` until a read is served by the near tier (a read may not be stored when
    an invalidation overtook it), with a deadline."""
    deadline = time.monotonic() + 5
    while True:
        hits = cache.metrics()["nearHits"]
        value = cache.get(key, default=KeyError)
        cached = cache.metrics()["nearHits"] > hits
        if cached or time.monotonic() > deadline:
            found = value is not KeyError
            return {"cached": cached, "found": found, "value": value if found else None}


def near_watch(cache: Cache, key: str) -> dict[str, Any]:
    """Polls the near tier until its entry for `key` is gone; then reads `key` from Redis."""
    entries = cache.metrics()["nearEntries"]
    deadline = time.monotonic() + 10
    evicted_at = None
    while time.monotonic() < deadline:
        if cache.metrics()["nearEntries"] < entries:
            evicted_at = time.time()
            break
    value = cache.get(key, default=KeyError)
    found = value is not KeyError
    return {
        "evictedAt": evicted_at,
        "found": found,
        "value": value if found else None,
        "flushes": cache.metrics()["nearFlushes"],
    }


def main(argv: list[str]) -> Any:
    command, url, ns, *rest = argv
    if command == "near-reader":
        return near_reader(url, ns)
    if command == "timed-set":
        cache_for(url, ns).set(rest[0], "written by python", ttl=600)
        return {"returned": time.time()}
    if command == "timed-delete":
        cache_for(url, ns).delete(rest[0])
        return {"returned": time.time()}
    if command == "stampede":
        spec = json.loads(rest[0])
        if spec.get("mode") == "async":
            return asyncio.run(stampede_async(url, ns, spec))
        return stampede_sync(url, ns, spec)
    if command in ("fresh-write", "fresh-read"):
        spec = json.loads(rest[0])
        return (fresh_write if command == "fresh-write" else fresh_read)(url, ns, spec)
    if command == "failsafe":
        spec = json.loads(rest[0])
        if spec.get("mode") == "async":
            return asyncio.run(failsafe_async(url, ns, spec))
        return failsafe_sync(url, ns, spec)
    if command in ("fault", "load"):
        spec = json.loads(rest[0])
        if spec.get("mode") == "async":
            run = fault_async if command == "fault" else load_async
            return asyncio.run(run(url, ns, spec))
        return (fault_sync if command == "fault" else load_sync)(url, ns, spec)
    if command == "write":
        for case in CASES:
            cache_for(url, ns, case).set(case["key"], typed(case["value"]), ttl=case["ttl"])
        return {"written": len(CASES)}
    if command == "read":
        failed = []
        for case in CASES:
            got = cache_for(url, ns, case).get(case["key"], default=KeyError)
            if got is KeyError or not same(got, typed(case["value"])):
                failed.append({"name": case["name"], "got": repr(got)[:200]})
        return {"passed": len(CASES) - len(failed), "failed": failed}
    cache = cache_for(url, ns)
    if command == "delete":
        return {"deleted": cache.delete(rest[0])}
    if command == "get":
        return {"found": cache.get(rest[0], default=KeyError) is not KeyError}
    if command == "ttl":
        return {"ttl": cache.ttl(rest[0])}
    if command == "place":
        keys = [f"user:{i}" for i in range(int(rest[0]))]
        cache.set_many({k: i for i, k in enumerate(keys)}, ttl=600)
        hosts = url.split("://", 1)[1].split("/")[0].split(",")
        ring = contract.Ring([(h, 1) for h in hosts])
        return {"nodes": [ring.node_for(cache.redis_key(k)) for k in keys]}
    if command == "cached":
        loaded = False

        @cache.cached(ttl=600, key="report:{0}")
        def report(n: int) -> dict[str, Any]:
            nonlocal loaded
            loaded = True
            return {"report": n, "by": "python"}

        return {"value": report(int(rest[0])), "loaded": loaded}
    if command == "negative-write":
        got = cache_for(url, ns, negative_ttl=600).get_or_load(rest[0], lambda: NOT_FOUND)
        return {"notFound": got is None}
    if command == "negative-read":
        reader = cache_for(url, ns, negative_ttl=600)
        loaded = False

        def load() -> str:
            nonlocal loaded
            loaded = True
            return "loaded"

        entry = reader.get_entry(rest[0], load)
        found = reader.get(rest[0], default=KeyError) is not KeyError
        return {"found": entry.found, "loaded": loaded, "get": found}
    if command == "raw":
        raw = cache_for(url, ns, raw=True)
        plain = cache_for(url, ns)
        return {
            "raw": [raw.get(k) == v for k, v in RAW_KEYS.items()],
            "enveloped": [plain.get(k, default=KeyError) is KeyError for k in RAW_KEYS],
            "decodeErrors": plain.metrics()["decodeErrors"],
        }
    raise SystemExit(f"unknown command {command}")


# Written bare by the orchestrator (redis-cli SET), read by every runtime.
RAW_KEYS = {"plain:text": b"hello from redis-cli", "plain:json": b'{"a": 1}'}

if __name__ == "__main__":
    try:
        print(json.dumps(main(sys.argv[1:]), default=repr))
    except polycache.PolycacheError as err:
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        sys.exit(1)
