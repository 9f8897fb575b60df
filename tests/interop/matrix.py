"""The interop matrix (make interop): every runtime writes, every runtime reads, in
separate processes, over real Redis (standalone, 3 shards, a 3-master cluster).

For each topology: 16 cells (writer x reader) of the values in cases.json, then deletes
and TTLs seen across runtimes. On the shards: every runtime places 10,000 keys (the ring
reports must be identical, and each key must physically sit on the reported node). On the
standalone server: decorator keys shared between runtimes, and bare values written by
redis-cli read in raw mode (and as counted decode errors otherwise).

Usage: matrix.py [--runtimes rust,python,node,wasi] [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from polycache.contract import redis_key

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


def write_readme(readme: Path, runtimes: list[str], results: dict[str, dict[Any, bool]]) -> None:
    lines = ["<!-- interop:begin (generated by make interop) -->"]
    for topology, cells in results.items():
        lines += ["", f"**{topology}** (writer ↓, reader →)", ""]
        lines.append("| writer \\ reader | " + " | ".join(runtimes) + " |")
        lines.append("|---|" + "---|" * len(runtimes))
        for w in runtimes:
            marks = ["✓" if cells.get((w, r)) else "✗" for r in runtimes]
            lines.append(f"| {w} | " + " | ".join(marks) + " |")
    lines.append("<!-- interop:end -->")
    text = readme.read_text("utf-8")
    start, end = text.find("<!-- interop:begin"), text.find("<!-- interop:end -->")
    if start < 0 or end < 0:
        raise SystemExit("README has no interop markers")
    end += len("<!-- interop:end -->")
    readme.write_text(text[:start] + "\n".join(lines) + text[end:], "utf-8")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtimes", default="rust,python,node,wasi")
    parser.add_argument("--readme", type=Path)
    opts = parser.parse_args()
    endpoints = json.loads(os.environ["POLYCACHE_TEST_REDIS"])
    run = Run(opts.runtimes.split(","))
    results = {
        topology: run.matrix(topology, endpoints[topology])
        for topology in ("standalone", "shards", "cluster")
    }
    run.placement(endpoints["shards"])
    run.decorators(endpoints["standalone"])
    run.raw_values(endpoints["standalone"])
    if opts.readme:
        write_readme(opts.readme, run.runtimes, results)
    print()
    for failure in run.failed:
        print(f"FAILED: {failure}")
    print(f"interop: {run.passed} passed, {len(run.failed)} failed")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
