"""The interop matrix (make interop): every runtime writes, every runtime reads, in
separate processes, over real Redis (standalone, 3 shards, a 3-master cluster).

For each topology: 16 cells (writer x reader) of the values in cases.json, then deletes
and TTLs seen across runtimes. On the shards: every runtime places 10,000 keys (the ring
reports must be identical, and each key must physically sit on the reported node). On the
standalone server: decorator keys shared between runtimes, and bare values written by
redis-cli read in raw mode (and as counted decode errors otherwise). The stampede lock on
every topology (Rust, Python, Node and the WASI component; without WASI, Python twice,
AsyncCache and the sync Cache): a lock matrix (the writer
holds the lock, the reader waits and gets its value), 4 processes x 250 concurrent misses
on 10 keys with one load per key (counted by INCR in Redis), a holder killed with kill -9
replaced after its lease, and a paused holder's late write refused by the fence.

Per topology, the freshness matrix: every writer W writes a key for every reader R with
`fresh_for` (FRESH_FOR s) through get_or_load; every R reads its keys, at once and then
until they read stale. A cell passes when R saw W's value fresh before the envelope's
fresh-until and stale from it on, by R's own clock: never fresh after it, never stale
before it. Writers and readers start first and are let go together, so no process start
counts against the fresh window.

Then, per topology, the invalidation matrix: for every writer W (each runtime, and
redis-cli) and every reader R with a near tier (Rust, Python, Node; the WASI component has
none), R caches a key in its near tier (a long-lived `near-reader` process), W updates it
and then deletes it, and R must see each change: its near entry dropped (polled with a
deadline) and the new value (or nothing) read. The delay runs from W's write returning (W's
wall clock) to R seeing its entry gone (R's), on the same machine.

Usage: matrix.py [--runtimes rust,python,node,wasi] [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import polycache
from polycache.contract import Ring, decode_envelope, encode_envelope, redis_key

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = json.loads((HERE / "cases.json").read_text("utf-8"))["cases"]


def bin_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/polycache/target"))
    triple = os.environ.get("CARGO_BUILD_TARGET", "")
    return (target / triple if triple else target) / "debug"


def agents() -> dict[str, list[str]]:
    return {
        "rust": [str(bin_dir() / "interop-agent")],
        "python": [sys.executable, str(HERE / "agent.py")],
        "node": ["node", str(HERE / "agent.js")],
        "wasi": os.environ.get("POLYCACHE_WASI_AGENT", "wasi-agent-not-configured").split(),
    }


class Run:
    def __init__(self, runtimes: list[str]) -> None:
        self.runtimes = runtimes
        self.commands = agents()
        self.passed = 0
        self.failed: list[str] = []
        self.id = uuid.uuid4().hex[:8]

    def agent(self, runtime: str, *args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [*self.commands[runtime], *args], capture_output=True, text=True, timeout=300
        )
        lines = proc.stdout.strip().splitlines()
        try:
            out: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            out = {"error": proc.stdout[-500:]}
        if proc.returncode != 0 or "error" in out:
            out.setdefault("error", f"exit {proc.returncode}: {proc.stderr[-500:]}")
        return out

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        return ok

    def ns(self, topology: str, name: str) -> str:
        return f"interop-{self.id}-{topology}-{name}"

    def matrix(self, topology: str, url: str) -> dict[tuple[str, str], bool]:
        print(f"\n{topology}: {url}")
        cells: dict[tuple[str, str], bool] = {}
        for writer in self.runtimes:
            out = self.agent(writer, "write", url, self.ns(topology, writer))
            if "error" in out:
                print(f"  {writer} could not write: {out['error']}")
        for writer in self.runtimes:
            for reader in self.runtimes:
                out = self.agent(reader, "read", url, self.ns(topology, writer))
                passed = out.get("passed", 0)
                detail = out.get("error") or ", ".join(f["name"] for f in out.get("failed", []))
                ok = passed == len(CASES) and not detail
                label = f"{writer:>6} -> {reader:<6} {passed}/{len(CASES)} values"
                self.check(ok, label + (f"  ({detail})" if detail else ""))
                cells[writer, reader] = ok
        total = len(self.runtimes) ** 2
        print(f"interop {topology}: {sum(cells.values())}/{total}")
        if topology == "standalone":
            self.same_bytes(url)
        self.deletes_and_ttls(topology, url)
        self.negative(topology, url)
        return cells

    def same_bytes(self, url: str) -> None:
        """The stored envelopes are byte-identical whoever wrote them (created-at aside)."""
        print("\nsame value bytes from every writer (standalone)")
        host, port = url.split("://", 1)[1].split("/")[0].split(":")
        for case in CASES:
            stored = {
                w: resp_get(
                    host, int(port), redis_key("pc", self.ns("standalone", w), 200, case["key"])
                )
                for w in self.runtimes
            }
            blobs = {w: (b[:8] + b[16:]) if b else None for w, b in stored.items()}
            first = blobs[self.runtimes[0]]
            ok = first is not None and all(b == first for b in blobs.values())
            self.check(ok, f"{case['name']}: {len(first or b'')} bytes, identical from all writers")

    def deletes_and_ttls(self, topology: str, url: str) -> None:
        source = self.ns(topology, self.runtimes[0])
        keys = [c["key"] for c in CASES]
        for i, deleter in enumerate(self.runtimes):
            key = keys[i]
            out = self.agent(deleter, "delete", url, source, key)
            self.check(out.get("deleted") is True, f"{deleter} deletes {key!r}")
            for reader in self.runtimes:
                seen = self.agent(reader, "get", url, source, key)
                self.check(seen.get("found") is False, f"  {reader} misses it after the delete")
        ttl_key = keys[-1]
        for reader in self.runtimes:
            out = self.agent(reader, "ttl", url, source, ttl_key)
            ttl = out.get("ttl")
            ok = isinstance(ttl, (int, float)) and 0 < ttl <= CASES[-1]["ttl"]
            self.check(ok, f"{reader} sees the TTL {self.runtimes[0]} set ({ttl})")

    def negative(self, topology: str, url: str) -> None:
        """Negative caching (FORMAT.md §1, extension 04): W's loader says NOT_FOUND and W
        stores that; R reads the key as not found, without calling its own loader. The
        WASI component has no NOT_FOUND in its loader import yet, so it takes no part."""
        runtimes = [r for r in self.runtimes if r != "wasi"]
        print(f"\nnegative caching {topology}: a writer's not-found, read by every runtime")
        cells = 0
        for writer in runtimes:
            ns = self.ns(topology, f"negative-{writer}")
            wrote = self.agent(writer, "negative-write", url, ns, "gone")
            if not self.check(wrote.get("notFound") is True, f"{writer} stores a not-found"):
                continue
            for reader in runtimes:
                out = self.agent(reader, "negative-read", url, ns, "gone")
                ok = out.get("found") is False and out.get("loaded") is False
                ok = ok and out.get("get") is False
                cells += self.check(ok, f"  {writer:>6} -> {reader:<6} not found ({out})")
        print(f"negative {topology}: {cells}/{len(runtimes) ** 2}")

    def placement(self, url: str, count: int = 10_000) -> None:
        print(f"\nshard placement of {count} keys")
        hosts = url.split("://", 1)[1].split("/")[0].split(",")
        reports: dict[str, list[str]] = {}
        for runtime in self.runtimes:
            ns = self.ns("place", runtime)
            out = self.agent(runtime, "place", url, ns, str(count))
            reports[runtime] = out.get("nodes", [])
            physical = locate(hosts, ns)
            where = [physical.get(f"user:{i}") for i in range(count)]
            self.check(
                len(reports[runtime]) == count and where == reports[runtime],
                f"{runtime}: every key sits on the node its ring reports",
            )
        first = self.runtimes[0]
        for runtime in self.runtimes[1:]:
            same = reports[runtime] == reports[first]
            self.check(same, f"{runtime} places all {count} keys like {first}")

    def decorators(self, url: str) -> None:
        print("\nmemoized functions share entries (template report:{0})")
        for i, first in enumerate(self.runtimes):
            ns = self.ns("cached", first)
            arg = str(100 + i)
            lead = self.agent(first, "cached", url, ns, arg)
            self.check(lead.get("loaded") is True, f"{first} loads report({arg})")
            for other in self.runtimes:
                if other == first:
                    continue
                out = self.agent(other, "cached", url, ns, arg)
                ok = out.get("loaded") is False and out.get("value") == lead.get("value")
                self.check(ok, f"  {other} hits {first}'s entry")

    def raw_values(self, url: str) -> None:
        print("\nbare values written by redis-cli")
        host, port = url.split("://", 1)[1].split("/")[0].split(":")
        for runtime in self.runtimes:
            ns = self.ns("raw", runtime)
            for key, value in (("plain:text", "hello from redis-cli"), ("plain:json", '{"a": 1}')):
                redis_cli(host, port, "SET", f"pc:{ns}:{{{key}}}", value)
            out = self.agent(runtime, "raw", url, ns)
            self.check(out.get("raw") == [True, True], f"{runtime} reads them in raw mode")
            ok = out.get("enveloped") == [True, True] and out.get("decodeErrors") == 2
            self.check(ok, f"{runtime} counts them as 2 decode errors otherwise ({out})")


class Agent:
    """A running agent speaking the line protocol of agent.py's `stampede` command."""

    def __init__(self, command: list[str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [*command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.lines: list[dict[str, Any]] = []
        # Bytes read but not yet split into lines: reads go straight to the pipe (os.read),
        # since a buffered reader could hold a line that select() then never reports.
        self.pending = b""

    def expect(self, field: str, limit: float = 60) -> dict[str, Any] | None:
        """Reads lines until one has `field`; None when the agent ends or `limit` passes."""
        import select

        deadline = time.monotonic() + limit
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            if b"\n" not in self.pending:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self.pending += chunk
                continue
            line, self.pending = self.pending.split(b"\n", 1)
            try:
                parsed = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.lines.append(parsed)
            if field in parsed:
                return parsed

    def send(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def result(self, limit: float = 120) -> dict[str, Any]:
        """The agent's last line once it has ended (error: it did not end in time)."""
        found = self.expect("values", limit) or next(
            (line for line in self.lines if "values" in line or "error" in line), None
        )
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return found or {"error": f"no result (exit {self.proc.poll()})"}

    def kill(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)


class LockRun:
    """The stampede lock across processes and languages (FORMAT.md §6): agents of every
    runtime over one topology: Rust, Python (AsyncCache), Node and the WASI component, or
    without WASI, Python twice (the sync Cache on threads too). The takeover runs leave
    the component out: they read lock counters its WIT `metrics` record does not have."""

    def __init__(self, run: Run, counter: str) -> None:
        self.run = run
        self.counter = counter
        have = [r for r in run.runtimes if r in ("rust", "python", "node", "wasi")]
        twice = "python" in have and "wasi" not in have
        self.runtimes = have + (["python-sync"] if twice else [])

    def command(self, runtime: str) -> list[str]:
        return self.run.commands["python" if runtime == "python-sync" else runtime]

    def start(self, runtime: str, url: str, ns: str, **spec: Any) -> Agent:
        spec.setdefault("mode", "sync" if runtime == "python-sync" else "async")
        spec.setdefault("value", runtime)
        spec.setdefault("counter", self.counter)
        spec.setdefault("counterPrefix", f"lockcount:{ns}:")
        return Agent(self.command(runtime), "stampede", url, ns, json.dumps(spec))

    def ready(self, agent: Agent) -> bool:
        if agent.expect("ready") is None:
            return False
        agent.send()
        return True

    def loads(self, ns: str, key: str) -> int:
        host, port = self.counter.rsplit(":", 1)
        got = resp_get(host, int(port), f"lockcount:{ns}:{key}")
        return int(got) if got else 0

    def matrix(self, topology: str, url: str) -> None:
        """Writer holds the lock while it loads; reader misses, waits and gets its value."""
        print(f"\nlock {topology}: writer holds the lock, reader waits for its value")
        passed = 0
        for writer in self.runtimes:
            for reader in self.runtimes:
                ns = self.run.ns(topology, f"lock-{writer}-{reader}")
                key = "m"
                w = self.start(writer, url, ns, keys=[key], callers=1, hold=True)
                ok = self.ready(w) and w.expect("loading") is not None
                r = self.start(reader, url, ns, keys=[key], callers=1)
                ok = self.ready(r) and ok and r.expect("missed") is not None
                w.send()
                wout, rout = w.result(), r.result()
                want = f"{writer}:{key}"
                got = rout.get("values", {}).get(key)
                loaded = rout.get("metrics", {}).get("loads")
                ok = ok and got == want and loaded == 0 and self.loads(ns, key) == 1
                ok = ok and wout.get("values", {}).get(key) == want
                detail = "" if ok else f"  (reader {rout}, writer {wout.get('error', '')})"
                passed += self.run.check(ok, f"{writer:>11} -> {reader:<11} {got}{detail}")
        total = len(self.runtimes) ** 2
        print(f"lock {topology}: {passed}/{total}")

    def stampede(self, topology: str, url: str, callers: int = 250, count: int = 10) -> None:
        """Every runtime at once, `callers` concurrent misses each on the same keys."""
        print(f"\nstampede {topology}: {len(self.runtimes)} processes x {callers} callers")
        ns = self.run.ns(topology, "stampede")
        keys = [f"k{i}" for i in range(count)]
        agents = {
            r: self.start(r, url, ns, keys=keys, callers=callers, delayMs=50) for r in self.runtimes
        }
        ready = all(a.expect("ready") is not None for a in agents.values())
        for agent in agents.values():
            agent.send()
        outs = {r: a.result() for r, a in agents.items()}
        loads = [self.loads(ns, k) for k in keys]
        values = {k: {out.get("values", {}).get(k) for out in outs.values()} for k in keys}
        errors = {r: out.get("errors") or out.get("error") for r, out in outs.items()}
        ok = ready and loads == [1] * count and all(len(v) == 1 for v in values.values())
        ok = ok and not any(errors.values())
        self.run.check(ok, f"loads per key {loads}, one value per key, errors {errors}")
        waited = {r: out.get("metrics", {}).get("locksWaited") for r, out in outs.items()}
        print(f"  locksWaited per process: {waited}")
        # The control: the same run without the lock (single-flight per process only).
        ns = self.run.ns(topology, "stampede-control")
        agents = {
            r: self.start(r, url, ns, keys=keys, callers=callers, delayMs=50, lock=False)
            for r in self.runtimes
        }
        for agent in agents.values():
            agent.expect("ready")
        for agent in agents.values():
            agent.send()
        for agent in agents.values():
            agent.result()
        print(f"  without the lock: loads per key {[self.loads(ns, k) for k in keys]}")

    def takeover(self, topology: str, url: str) -> None:
        """A holder killed with kill -9 mid-load: another process loads after the lease.
        A holder paused past its lease (SIGSTOP) and resumed: its late write is refused."""
        print(f"\nlock takeover {topology}: holder killed (kill -9) or paused past its lease")
        takers = [r for r in self.runtimes if r != "wasi"]
        for i, holder in enumerate(takers):
            other = takers[(i + 1) % len(takers)]
            for how in ("killed", "paused"):
                ns = self.run.ns(topology, f"take-{how}-{holder}")
                key = "t"
                a = self.start(holder, url, ns, keys=[key], callers=1, hold=True, lease=2)
                ok = self.ready(a) and a.expect("loading") is not None
                a.kill(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
                b = self.start(other, url, ns, keys=[key], callers=1, timeout=30)
                ok = self.ready(b) and ok
                bout = b.result()
                # B holds the lock and loads: after waiting out the lease (locksTakenOver), or
                # at once when the lease ran out before B started.
                took = bout.get("metrics", {}).get("locksAcquired") == 1
                waited = bout.get("metrics", {}).get("locksTakenOver") == 1
                ok = ok and took and bout.get("values", {}).get(key) == f"{other}:{key}"
                refused = None
                if how == "paused":
                    a.kill(signal.SIGCONT)
                    a.send()
                    aout = a.result()
                    refused = aout.get("metrics", {}).get("lockWritesRefused")
                    c = self.start(holder, url, ns, keys=[key], callers=1)
                    self.ready(c)
                    cout = c.result()
                    ok = ok and refused == 1 and cout.get("values", {}).get(key) == f"{other}:{key}"
                else:
                    a.proc.wait()
                ok = ok and self.loads(ns, key) == 2
                what = (
                    f"{holder} {how}: {other} takes over"
                    + (" after waiting" if waited else " (lease already out)")
                    + (", the late write is refused" if how == "paused" else "")
                )
                self.run.check(ok, what + ("" if ok else f"  ({bout}, refused {refused})"))


FRESH_FOR = 2.0  # seconds: the window a reader must read in to see a value fresh


class Freshness:
    """The freshness matrix of one topology (see the module docs)."""

    def __init__(self, run: Run, topology: str, url: str) -> None:
        self.run, self.topology, self.url = run, topology, url
        self.summary = f"freshness {topology}: not run"

    def ns(self, writer: str) -> str:
        return self.run.ns(self.topology, f"fresh-{writer}")

    def start(self, runtime: str, command: str, ns: str, spec: dict[str, Any]) -> Agent:
        """An agent that has printed its ready line (or ended: its answer says why)."""
        agent = Agent(self.run.commands[runtime], command, self.url, ns, json.dumps(spec))
        agent.expect("ready")
        return agent

    def fresh_until(self, writer: str, reader: str) -> tuple[int, int] | None:
        """The stored envelope's (created-at, fresh-until), read raw and decoded."""
        raw = polycache.Cache(self.url, namespace=self.ns(writer), raw=True)
        try:
            stored = raw.get(f"fresh:{reader}")
            if stored is None:
                return None
            envelope = decode_envelope(stored)
            return int(envelope["created_at"]), int(envelope["fresh_until"])
        finally:
            raw.close()

    def matrix(self) -> None:
        runtimes = self.run.runtimes
        print(f"\nfreshness {self.topology}: W writes with fresh_for {FRESH_FOR} s, R reads")
        writers = {
            w: self.start(
                w,
                "fresh-write",
                self.ns(w),
                {
                    "keys": [f"fresh:{r}" for r in runtimes],
                    "freshFor": FRESH_FOR,
                    "value": w,
                },
            )
            for w in runtimes
        }
        cells = [{"ns": self.ns(w)} for w in runtimes]
        readers = {
            r: self.start(
                r,
                "fresh-read",
                self.ns(r),
                {"cells": [{**c, "key": f"fresh:{r}"} for c in cells], "seconds": FRESH_FOR + 20},
            )
            for r in runtimes
        }
        for agent in writers.values():
            agent.send()
        written = {w: a.expect("written") or {"error": a.lines[-1:]} for w, a in writers.items()}
        for agent in readers.values():
            agent.send()
        read = {r: a.expect("cells", FRESH_FOR + 60) or {} for r, a in readers.items()}
        for agent in [*writers.values(), *readers.values()]:
            try:
                agent.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.proc.kill()
        passed = 0
        for i, w in enumerate(runtimes):
            for r in runtimes:
                cell = (read[r].get("cells") or [{}] * len(runtimes))[i]
                passed += self.cell(w, r, cell, written[w], read[r].get("via"))
        self.summary = f"freshness {self.topology}: {passed}/{len(runtimes) ** 2}"
        print(self.summary)

    def cell(self, w: str, r: str, seen: dict[str, Any], wrote: dict[str, Any], via: Any) -> bool:
        stored = self.fresh_until(w, r)
        created, until = stored or (0, 0)
        notes = []
        if "written" not in wrote:
            notes.append(f"writer: {wrote}")
        if until - created != FRESH_FOR * 1000:
            notes.append(f"stored created-at, fresh-until {stored}: not fresh for {FRESH_FOR} s")
            until = 0
        if "error" in seen or not seen:
            notes.append(f"reader: {seen.get('error', 'no answer')}")
        elif until:
            if seen.get("value") != w:
                notes.append(f"read {seen.get('value')!r}")
            if seen.get("first") != "fresh" or seen.get("lastFresh") is None:
                notes.append(f"never read fresh (first read {seen.get('first')})")
            elif seen["lastFresh"] >= until:
                notes.append(f"fresh {seen['lastFresh'] - until:.1f} ms after fresh-until")
            if seen.get("firstStale") is None:
                notes.append("never read stale")
            elif seen["firstStale"] < until:
                notes.append(f"stale {until - seen['firstStale']:.1f} ms before fresh-until")
        ok = not notes
        margin = ""
        if ok:
            margin = (
                f"fresh until {until - seen['lastFresh']:.1f} ms before, stale"
                f" {seen['firstStale'] - until:.1f} ms after"
            )
        label = f"{w:>6} -> {r:<6} ({via}) {margin}"
        return self.run.check(ok, label + (f"  ({'; '.join(notes)})" if notes else ""))


NEAR_READERS = ("rust", "python", "node")


class NearReader:
    """A runtime's `near-reader` process: requests on stdin, one JSON line per answer."""

    def __init__(self, command: list[str], url: str, ns: str) -> None:
        self.proc = subprocess.Popen(
            [*command, "near-reader", url, ns],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready = self.answer(60).get("ready") is True

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 30) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return {"error": f"no answer in {timeout} s"}
        if line is None:
            err = self.proc.stderr.read()[-500:] if self.proc.stderr else ""
            return {"error": f"reader exited: {err}"}
        try:
            out: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            out = {"error": line[-500:]}
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Invalidation:
    """The invalidation matrix of one topology (see the module docs)."""

    def __init__(self, run: Run, topology: str, url: str) -> None:
        self.run, self.topology, self.url = run, topology, url
        self.readers = [r for r in run.runtimes if r in NEAR_READERS]
        self.writers = [*run.runtimes, "redis-cli"]
        self.delays: list[float] = []  # seconds, polycache writers only
        self.cells: dict[tuple[str, str], bool] = {}

    @property
    def summary(self) -> str:
        return delay_summary(self.delays)

    def matrix(self) -> None:
        print(f"\ninvalidation matrix ({self.topology}): writer -> reader's near tier")
        cells = self.cells
        for reader in self.readers:
            ns = self.run.ns(self.topology, f"near-{reader}")
            seeder = polycache.Cache(self.url, namespace=ns)
            # Seeded before the reader tracks the namespace: no push of the seed can arrive
            # after the reader cached it.
            for writer in self.writers:
                seeder.set(f"near:{writer}", "seed", ttl=600)
            seeder.close()
            near = NearReader(self.run.commands[reader], self.url, ns)
            if not near.ready:
                for writer in self.writers:
                    cells[writer, reader] = self.run.check(
                        False, f"{writer:>9} -> {reader:<6} (reader did not start)"
                    )
                near.close()
                continue
            for writer in self.writers:
                cells[writer, reader] = self.cell(near, writer, reader, ns)
            near.close()
        passed, total = sum(cells.values()), len(cells)
        print(f"invalidation {self.topology}: {passed}/{total}")
        print(f"invalidation {self.topology} delay: {self.summary}")

    def cell(self, near: NearReader, writer: str, reader: str, ns: str) -> bool:
        key = f"near:{writer}"
        wrote = f"written by {writer}"
        steps = [("update", "seed", wrote, True), ("delete", wrote, None, False)]
        notes = []
        for step, before, after, found in steps:
            near.send({"op": "cache", "key": key})
            cached = near.answer()
            if cached.get("cached") is not True or cached.get("value") != before:
                notes.append(f"{step}: not cached before the write ({cached})")
                break
            near.send({"op": "watch"})
            if near.answer().get("watching") is not True:
                notes.append(f"{step}: reader did not watch")
                break
            returned = self.write(writer, ns, key, step)
            seen = near.answer(60)
            evicted = seen.get("evictedAt")
            if evicted is None:
                notes.append(f"{step}: near entry not dropped ({seen})")
                break
            if seen.get("found") is not found or seen.get("value") != after:
                notes.append(f"{step}: read {seen.get('value')!r} after it")
                break
            if returned is not None and writer != "redis-cli":
                self.delays.append(evicted - returned)
        label = f"{writer:>9} -> {reader:<6} update and delete seen"
        return self.run.check(not notes, label + (f"  ({'; '.join(notes)})" if notes else ""))

    def write(self, writer: str, ns: str, key: str, step: str) -> float | None:
        """Writes as `writer`; when its write returned (wall clock), None if it failed."""
        if writer == "redis-cli":
            return self.redis_cli_write(ns, key, step)
        command = "timed-set" if step == "update" else "timed-delete"
        out = self.run.agent(writer, command, self.url, ns, key)
        if "error" in out:
            print(f"    {writer} {command} failed: {out['error']}")
            return None
        returned: float = out["returned"]
        return returned

    def redis_cli_write(self, ns: str, key: str, step: str) -> float | None:
        """A foreign SET (an envelope made by the contract) or DEL, by the redis-cli binary."""
        rkey = redis_key("pc", ns, 200, key)
        hosts = self.url.split("://", 1)[1].split("/")[0].split(",")
        cluster = self.topology == "cluster"
        node = hosts[0] if cluster else Ring([(h, 1) for h in hosts]).node_for(rkey)
        host, port = node.split(":")
        cli = ["redis-cli", *(["-c"] if cluster else []), "-h", host, "-p", port]
        if step == "update":
            value = encode_envelope("written by redis-cli")
            args, stdin = [*cli, "-x", "SET", rkey], value
        else:
            args, stdin = [*cli, "DEL", rkey], b""
        proc = subprocess.run(args, input=stdin, capture_output=True, timeout=30)
        if proc.returncode != 0:
            print(f"    redis-cli failed: {proc.stderr.decode()[-300:]}")
            return None
        return time.time()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def delay_summary(delays: list[float]) -> str:
    if not delays:
        return "no samples"
    ms = sorted(d * 1000 for d in delays)
    return (
        f"p50 {percentile(ms, 50):.2f} ms, p99 {percentile(ms, 99):.2f} ms, "
        f"max {ms[-1]:.2f} ms ({len(ms)} writes)"
    )


def resp_get(host: str, port: int, key: str) -> bytes | None:
    """GET over a raw socket: the exact stored bytes (redis-cli would reformat them)."""
    import socket

    with socket.create_connection((host, port), timeout=5) as sock:
        raw = key.encode()
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw))
        reader = sock.makefile("rb")
        header = reader.readline()
        if header.startswith(b"$-1"):
            return None
        if not header.startswith(b"$"):
            raise RuntimeError(f"unexpected reply {header!r}")
        return reader.read(int(header[1:]))


def redis_cli(host: str, port: str, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-h", host, "-p", port, *args], capture_output=True, text=True, check=True
    ).stdout


def locate(hosts: list[str], ns: str) -> dict[str, str]:
    """user key -> the node that holds it, read from the servers themselves."""
    where: dict[str, str] = {}
    prefix = f"pc:{ns}:{{"
    for node in hosts:
        host, port = node.split(":")
        for key in redis_cli(host, port, "--scan", "--pattern", f"pc:{ns}:*").split():
            if key.startswith(prefix) and key.endswith("}"):
                where[key[len(prefix) : -1]] = node
    return where


def write_readme(
    readme: Path,
    runtimes: list[str],
    results: dict[str, dict[Any, bool]],
    invalidation: dict[str, Invalidation] | None = None,
) -> None:
    lines = ["<!-- interop:begin (generated by make interop) -->"]
    for topology, cells in results.items():
        lines += ["", f"**{topology}** (writer ↓, reader →)", ""]
        lines.append("| writer \\ reader | " + " | ".join(runtimes) + " |")
        lines.append("|---|" + "---|" * len(runtimes))
        for w in runtimes:
            marks = ["✓" if cells.get((w, r)) else "✗" for r in runtimes]
            lines.append(f"| {w} | " + " | ".join(marks) + " |")
    lines += invalidation_tables(runtimes, invalidation or {})
    lines.append("<!-- interop:end -->")
    text = readme.read_text("utf-8")
    start, end = text.find("<!-- interop:begin"), text.find("<!-- interop:end -->")
    if start < 0 or end < 0:
        raise SystemExit("README has no interop markers")
    end += len("<!-- interop:end -->")
    readme.write_text(text[:start] + "\n".join(lines) + text[end:], "utf-8")


def invalidation_tables(runtimes: list[str], runs: dict[str, Invalidation]) -> list[str]:
    """The README's invalidation tables: ✓ when the reader's near tier saw the writer's
    update and delete; a reader without a near tier says so."""
    lines = []
    for topology, inv in runs.items():
        caption = f"**invalidation, {topology}** (writer ↓, reader's near tier →)"
        lines += ["", f"{caption}: write returned → entry dropped {inv.summary}", ""]
        lines.append("| writer \\ reader | " + " | ".join(runtimes) + " |")
        lines.append("|---|" + "---|" * len(runtimes))
        for w in inv.writers:
            marks = [
                ("✓" if inv.cells.get((w, r)) else "✗") if r in inv.readers else "no near tier"
                for r in runtimes
            ]
            lines.append(f"| {w} | " + " | ".join(marks) + " |")
    return lines


def section_only(run: Run, endpoints: dict[str, str], section: str) -> int:
    """`--freshness-only` / `--locks-only`: that section alone on every topology."""
    standalone = endpoints["standalone"].split("://", 1)[1].split("/")[0]
    locks = LockRun(run, standalone)
    for topology in ("standalone", "shards", "cluster"):
        if section == "freshness":
            Freshness(run, topology, endpoints[topology]).matrix()
        else:
            locks.matrix(topology, endpoints[topology])
            locks.stampede(topology, endpoints[topology])
            locks.takeover(topology, endpoints[topology])
    for failure in run.failed:
        print(f"FAILED: {failure}")
    print(f"interop: {run.passed} passed, {len(run.failed)} failed")
    return 1 if run.failed else 0


def invalidation_only(run: Run, endpoints: dict[str, str]) -> int:
    """`--invalidation-only`: the invalidation matrices alone (no README update)."""
    for topology in ("standalone", "shards", "cluster"):
        Invalidation(run, topology, endpoints[topology]).matrix()
    print(f"interop: {run.passed} passed, {len(run.failed)} failed")
    return 1 if run.failed else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtimes", default="rust,python,node,wasi")
    parser.add_argument("--readme", type=Path)
    parser.add_argument(
        "--invalidation-only", action="store_true", help="only the invalidation matrices"
    )
    parser.add_argument("--freshness-only", action="store_true", help="only the freshness matrices")
    parser.add_argument("--locks-only", action="store_true", help="only the stampede lock runs")
    opts = parser.parse_args()
    endpoints = json.loads(os.environ["POLYCACHE_TEST_REDIS"])
    run = Run(opts.runtimes.split(","))
    if opts.invalidation_only:
        return invalidation_only(run, endpoints)
    if opts.freshness_only or opts.locks_only:
        return section_only(run, endpoints, "freshness" if opts.freshness_only else "locks")
    results = {
        topology: run.matrix(topology, endpoints[topology])
        for topology in ("standalone", "shards", "cluster")
    }
    standalone = endpoints["standalone"].split("://", 1)[1].split("/")[0]
    locks = LockRun(run, standalone)
    if len(locks.runtimes) > 1:
        for topology in ("standalone", "shards", "cluster"):
            locks.matrix(topology, endpoints[topology])
            locks.stampede(topology, endpoints[topology])
            locks.takeover(topology, endpoints[topology])
    topologies = ("standalone", "shards", "cluster")
    freshness = [Freshness(run, topology, endpoints[topology]) for topology in topologies]
    for matrix in freshness:
        matrix.matrix()
    invalidation = {}
    for topology in ("standalone", "shards", "cluster"):
        inv = Invalidation(run, topology, endpoints[topology])
        inv.matrix()
        invalidation[topology] = inv
    run.placement(endpoints["shards"])
    run.decorators(endpoints["standalone"])
    run.raw_values(endpoints["standalone"])
    if opts.readme:
        write_readme(opts.readme, run.runtimes, results, invalidation)
    print()
    for matrix in freshness:
        print(matrix.summary)
    for topology, inv in invalidation.items():
        print(f"invalidation {topology}: {sum(inv.cells.values())}/{len(inv.cells)}, {inv.summary}")
    for failure in run.failed:
        print(f"FAILED: {failure}")
    print(f"interop: {run.passed} passed, {len(run.failed)} failed")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
