"""The fault suite (make faults): every public call in every binding, under faults, against
real redis-server processes that this driver starts (polycache-harness) and then pauses,
kills, black-holes, fails over or reshards.

Matrices, each printed with one summary line per topology (`<matrix> <topology>: p/n`):

- deadline: API x binding x fault -> worst elapsed / configured timeout. A cell passes when
  elapsed <= timeout x 1.2 + 50 ms in every round (the bound of issue 9: a timeout is a
  deadline, never retried past). Faults: a paused server (SIGSTOP), a killed server
  (SIGKILL), a paused cluster master, a black-holed address (opening a cache on an address
  whose connects hang; the other calls on a server that is paused with its accept queue
  full, so existing connections get no answer and new ones hang in connect), and a paused
  Sentinel master (`redis+sentinel://`; the sentinels fail over after 1 s, mid-run).
- failover: clients in every runtime loop over 10,000 keys (a set every 10th op, else a
  checked get) while a cluster master with a replica is killed, and while a slot range
  is resharded; a cell passes with 0 wrong values and recovery before the run ends.
  Errors, misses and recovery time (last error after the fault) are reported.
- sentinel: the same load on `redis+sentinel://` while the master is killed.
- failsafe: binding x fault x fail-safe (on: max_stale 600 s, off: 0) -> get_or_load of a
  key each agent loaded before the fault. Faults: the loader raises, the loader hangs
  past hard_timeout (the key deleted first, as if it expired), Redis paused (SIGSTOP)
  and killed (the loader raises too). A cell passes when every call ends within
  timeout x 1.2 + 50 ms (hard_timeout = command timeout = --timeout) and answers as
  promised: on, the value loaded before the fault (fail-safe); off, the typed error
  (`loader`: the loader's own error or LoaderError; `timeout` for the hung loader).
  The WASI component (maxStale and hardTimeout in its URL) has no cell for the hanging
  loader: without threads or timers in the guest nothing can end a loader there.

The agents are the interop matrix's (tests/interop/agent.*, the wasmtime host's wasi-agent)
with their `fault` and `load` commands.

Usage: faults.py [--bindings rust-async,…] [--matrices deadline,failover,sentinel,failsafe]
                 [--faults paused,killed,cluster-paused,blackhole,sentinel-paused]
                 [--failsafe-faults loader-raises,loader-hangs,redis-paused,redis-killed]
                 [--timeout 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

from matrix import agents, bin_dir  # noqa: E402

from polycache.contract import redis_key, slot  # noqa: E402

# binding -> (runtime agent, I/O mode passed as SPEC.mode)
BINDINGS: dict[str, tuple[str, str]] = {
    "rust-async": ("rust", "async"),
    "rust-blocking": ("rust", "blocking"),
    "python-sync": ("python", "sync"),
    "python-async": ("python", "async"),
    "node": ("node", "auto"),
    "node-async": ("node", "async"),
    "wasi": ("wasi", ""),
}
APIS = ("open", "get", "set", "delete", "ttl", "get_many", "set_many", "get_or_load")
FAULTS = ("paused", "killed", "cluster-paused", "blackhole", "sentinel-paused")
FAILSAFE_FAULTS = ("loader-raises", "loader-hangs", "redis-paused", "redis-killed")
# What a call answers without fail-safe, per fault (with it: the value loaded before).
FAILSAFE_OFF_KIND = {"loader-hangs": "timeout"}  # every other fault: "loader"
AGENT_DEADLINE = 240.0  # seconds an agent may take before it counts as hung


class Harness:
    """One polycache-harness process; its servers stop when its stdin closes."""

    def __init__(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [str(bin_dir() / "polycache-harness"), *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"polycache-harness {' '.join(flags)} did not start")
        self.endpoints: dict[str, Any] = json.loads(line)

    def pid(self, addr: str) -> int:
        return int(self.endpoints["pids"][addr])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Agent:
    """An agent process running one `fault` or `load` command, read line by line."""

    def __init__(self, binding: str, command: str, url: str, ns: str, spec: dict[str, Any]):
        runtime, mode = BINDINGS[binding]
        self.binding = binding
        args = [*agents()[runtime], command, url, ns, json.dumps({**spec, "mode": mode})]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def next(self, deadline: float) -> dict[str, Any]:
        """The next JSON line, or an error when the agent exits or passes `deadline`."""
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                return {"error": "no answer before the deadline (hung)"}
            if line is None:
                self.proc.wait()
                return {"error": f"exit {self.proc.returncode}: {self.stderr[-400:]}"}
            try:
                out: dict[str, Any] = json.loads(line)
                return out
            except json.JSONDecodeError:
                continue  # a stray line (a warning); keep reading

    def go(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def finish(self, deadline: float) -> dict[str, Any]:
        out = self.next(deadline)
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return out


def run_agents(
    bindings: list[str], command: str, url: str, ns: str, spec: dict[str, Any], inject: Any
) -> tuple[dict[str, dict[str, Any]], float]:
    """Starts one agent per binding, waits until all are ready, calls `inject()` (the
    fault), lets them go and collects their reports; also returns when the fault began."""
    started = [Agent(b, command, url, f"{ns}-{b}", spec) for b in bindings]
    deadline = time.monotonic() + AGENT_DEADLINE
    results: dict[str, dict[str, Any]] = {}
    ready = []
    for agent in started:
        first = agent.next(deadline)
        if first.get("ready"):
            ready.append(agent)
        else:
            results[agent.binding] = {"error": first.get("error", f"not ready: {first}")}
    fault_at = time.time()
    inject()
    for agent in ready:
        agent.go()
    for agent in ready:
        results[agent.binding] = agent.finish(deadline)
    return results, fault_at


def signal_pid(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def fill_accept_queue(addr: str, limit: int = 8192) -> list[socket.socket]:
    """Connects to a paused server until a connect hangs: from then on the kernel drops
    every SYN to it, as for a black-holed host. Returns the sockets to hold."""
    host, port = addr.split(":")
    held = []
    for _ in range(limit):
        sock = socket.socket()
        sock.settimeout(0.2)
        try:
            sock.connect((host, int(port)))
        except (socket.timeout, TimeoutError):
            sock.close()
            return held
        held.append(sock)
    raise SystemExit(f"the accept queue of {addr} did not fill")


def cluster_nodes(addr: str) -> list[dict[str, Any]]:
    """CLUSTER NODES as dicts: id, addr, role, master id, slot ranges."""
    host, port = addr.split(":")
    text = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "CLUSTER", "NODES"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        ranges = []
        for part in parts[8:]:
            if part.startswith("["):
                continue  # a slot being migrated
            lo, _, hi = part.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        role = "master" if "master" in parts[2] else "replica"
        nodes.append(
            {
                "id": parts[0],
                "addr": parts[1].split("@")[0],
                "role": role,
                "failed": "fail" in parts[2],
                "master": parts[3],
                "ranges": ranges,
            }
        )
    return nodes


def owner(nodes: list[dict[str, Any]], slot_no: int) -> str:
    for node in nodes:
        if node["role"] == "master" and any(lo <= slot_no <= hi for lo, hi in node["ranges"]):
            return str(node["addr"])
    raise SystemExit(f"no master owns slot {slot_no}")


def cluster_addrs(url: str) -> list[str]:
    return url.split("://", 1)[1].split("/")[0].split(",")


class Suite:
    def __init__(self, bindings: list[str], timeout: float, rounds: int) -> None:
        self.bindings = bindings
        self.timeout = timeout
        self.rounds = rounds
        self.id = uuid.uuid4().hex[:8]
        self.summaries: list[tuple[str, str, int, int]] = []

    def bound(self) -> float:
        return self.timeout * 1.2 + 0.05

    # -- deadline matrix ---------------------------------------------------------------

    def deadline_fault(self, fault: str) -> dict[tuple[str, str], dict[str, Any]]:
        ns = f"faults-{self.id}-{fault}"
        keys = ["fault:a", "fault:b", "fault:c"]
        spec: dict[str, Any] = {"timeout": self.timeout, "rounds": self.rounds, "keys": keys}
        held: list[socket.socket] = []
        if fault == "cluster-paused":
            harness = Harness("--cluster", "3")
            url = harness.endpoints["cluster"]
            nodes = cluster_nodes(cluster_addrs(url)[0])
            # Keys on one master (the slot depends on the user key only: it is the hash tag).
            target = owner(nodes, slot_of(0))
            keys = [f"fault:{i}" for i in range(2000) if owner(nodes, slot_of(i)) == target][:3]
            spec["keys"] = keys
            victim = target
        elif fault == "sentinel-paused":
            harness = Harness("--sentinel")
            url = harness.endpoints["sentinel"]
            victim = sentinel_master(url)
        else:
            flags = ["--standalone", "--blackhole"] if fault == "blackhole" else ["--standalone"]
            harness = Harness(*flags)
            url = harness.endpoints["standalone"]
            victim = url.split("://", 1)[1]
            if fault == "blackhole":
                spec["openUrl"] = harness.endpoints["blackhole"]

        def inject() -> None:
            pid = harness.pid(victim)
            if fault == "killed":
                signal_pid(pid, signal.SIGKILL)
                return
            signal_pid(pid, signal.SIGSTOP)
            if fault == "blackhole":
                held.extend(fill_accept_queue(victim))

        try:
            results, _ = run_agents(self.bindings, "fault", url, ns, spec, inject)
        finally:
            for sock in held:
                sock.close()
            signal_pid(harness.pid(victim), signal.SIGCONT)
            harness.close()
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        for binding in self.bindings:
            out = results.get(binding, {"error": "no result"})
            for api in APIS:
                rounds = out.get("cells", {}).get(api)
                if not rounds:
                    cells[api, binding] = {"ok": False, "worst": None, "why": out.get("error")}
                    continue
                worst, err = max(rounds, key=lambda r: r[0])
                why = err or "succeeded, too late"
                cells[api, binding] = {"ok": worst <= self.bound(), "worst": worst, "why": why}
        return cells

    def deadline(self, faults: list[str]) -> bool:
        table = {}
        for fault in faults:
            print(f"\ndeadline {fault}: running {len(self.bindings)} agents", flush=True)
            table[fault] = self.deadline_fault(fault)
        t = self.timeout
        print(
            f"\ndeadline table: worst elapsed / timeout ({t:.2f} s) over {self.rounds} rounds;"
            f" a cell fails (✗) above timeout x 1.2 + 50 ms = {self.bound():.3f} s"
        )
        header = f"{'api':<12} {'binding':<14}" + "".join(f" {f:>17}" for f in faults)
        print(header)
        print("-" * len(header))
        failures = []
        for api in APIS:
            for binding in self.bindings:
                row = f"{api:<12} {binding:<14}"
                for fault in faults:
                    cell = table[fault][api, binding]
                    if cell["worst"] is None:
                        row += f" {'no result ✗':>17}"
                    else:
                        mark = "✓" if cell["ok"] else "✗"
                        row += f" {cell['worst']:6.3f}/{t:.2f} {cell['worst'] / t:4.1f}{mark}"
                    if not cell["ok"]:
                        failures.append(f"{fault} {api} {binding}: {str(cell['why'])[:160]}")
                print(row)
        print()
        for failure in failures:
            print(f"  slow or failed: {failure}")
        ok = True
        for fault in faults:
            cells = table[fault].values()
            passed = sum(c["ok"] for c in cells)
            self.summaries.append(("deadline", fault, passed, len(cells)))
            ok = ok and passed == len(cells)
        return ok

    # -- fail-safe table --------------------------------------------------------------

    def failsafe_cell(self, fault: str, on: bool, bindings: list[str]) -> dict[str, dict[str, Any]]:
        """One fault with fail-safe on or off, every binding at once on a server of its own."""
        ns = f"faults-{self.id}-fs-{fault}-{'on' if on else 'off'}"
        key = "fs"
        spec = {
            "timeout": self.timeout,
            "hardTimeout": self.timeout,
            "failSafe": on,
            "fault": fault,
            "rounds": self.rounds,
            "key": key,
            # Long past hard_timeout: a call that waits for it fails its bound.
            "hangSeconds": max(3.0, self.timeout * 6),
        }
        harness = Harness("--standalone")
        url = harness.endpoints["standalone"]
        victim = url.split("://", 1)[1]

        def inject() -> None:
            pid = harness.pid(victim)
            if fault == "redis-killed":
                signal_pid(pid, signal.SIGKILL)
            elif fault == "redis-paused":
                signal_pid(pid, signal.SIGSTOP)
            else:
                # The value expires (its hard TTL) while the process remembers it.
                host, port = victim.split(":")
                for binding in bindings:
                    rkey = redis_key("pc", f"{ns}-{binding}", 200, key)
                    delete = ["redis-cli", "-h", host, "-p", port, "DEL", rkey]
                    subprocess.run(delete, check=True, capture_output=True)

        try:
            results, _ = run_agents(bindings, "failsafe", url, ns, spec, inject)
        finally:
            signal_pid(harness.pid(victim), signal.SIGCONT)
            harness.close()
        want_kind = None if on else FAILSAFE_OFF_KIND.get(fault, "loader")
        cells = {}
        for binding in bindings:
            out = results.get(binding, {"error": "no result"})
            calls = out.get("calls") or []
            if not calls or out.get("first") != "good":
                cells[binding] = {"ok": False, "worst": None, "why": out.get("error", out)}
                continue
            worst = max(c[0] for c in calls)
            wrong = [
                c
                for c in calls
                if (on and (c[1] != "good" or c[2] is not None))
                or (not on and (c[2] != want_kind or c[1] is not None))
            ]
            why = (
                f"answered {wrong[0][1]!r} (error: {wrong[0][2]} {wrong[0][3] or ''})"
                f" after {wrong[0][0]:.3f} s"
                if wrong
                else f"{worst:.3f} s, over the bound"
            )
            ok = not wrong and worst <= self.bound()
            cells[binding] = {"ok": ok, "worst": worst, "why": why, "loads": out.get("loaderCalls")}
        return cells

    def failsafe(self, faults: list[str]) -> bool:
        bindings = self.bindings
        table: dict[tuple[str, bool], dict[str, dict[str, Any]]] = {}
        for fault in faults:
            # The component has no timer: a hanging loader cannot be ended there.
            runs = [b for b in bindings if not (b == "wasi" and fault == "loader-hangs")]
            for on in (True, False):
                state = "on" if on else "off"
                print(f"\nfailsafe {fault}, fail-safe {state}: {len(runs)} agents", flush=True)
                table[fault, on] = self.failsafe_cell(fault, on, runs)
        t = self.timeout
        print(
            f"\nfail-safe table: worst get_or_load elapsed over {self.rounds} rounds (hard_timeout"
            f" = command timeout = {t:.2f} s; bound {self.bound():.3f} s); on: the value loaded"
            " before the fault, off: the typed error"
        )
        columns = [(f, on) for f in faults for on in (True, False)]
        header = f"{'binding':<14}" + "".join(
            f" {f + (' on' if on else ' off'):>19}" for f, on in columns
        )
        print(header)
        print("-" * len(header))
        failures = []
        for binding in bindings:
            row = f"{binding:<14}"
            for fault, on in columns:
                cell = table[fault, on].get(binding)
                if cell is None:
                    row += f" {'n/a':>19}"
                    continue
                if cell["worst"] is None:
                    row += f" {'no result ✗':>19}"
                else:
                    mark = "✓" if cell["ok"] else "✗"
                    answer = "value" if on else FAILSAFE_OFF_KIND.get(fault, "loader")
                    row += f" {cell['worst']:6.3f} {answer:>8} {mark} "
                if not cell["ok"]:
                    state = "on" if on else "off"
                    failures.append(f"{fault} {state} {binding}: {str(cell['why'])[:200]}")
            print(row)
        print()
        for failure in failures:
            print(f"  failed: {failure}")
        ok = True
        for fault in faults:
            cells = [c for on in (True, False) for c in table[fault, on].values()]
            passed = sum(c["ok"] for c in cells)
            self.summaries.append(("failsafe", fault, passed, len(cells)))
            ok = ok and passed == len(cells)
        return ok

    # -- load under failover -----------------------------------------------------------

    def load_matrix(self, matrix: str, topology: str, seconds: float) -> bool:
        ns = f"faults-{self.id}-{topology}"
        spec = {"timeout": self.timeout, "count": 10_000, "seconds": seconds}
        if topology == "sentinel":
            harness = Harness("--sentinel")
            url = harness.endpoints["sentinel"]
        elif topology == "cluster-kill":
            harness = Harness("--cluster-replicas", "3")
            url = harness.endpoints["cluster_replicas"]
        else:
            harness = Harness("--cluster", "3")
            url = harness.endpoints["cluster"]
        events: list[str] = []
        resharding = threading.Thread(target=reshard, args=(url, events), daemon=True)

        def inject() -> None:
            if topology == "cluster-reshard":
                resharding.start()
                return
            if topology == "sentinel":
                victim = sentinel_master(url)
            else:
                victim = next(n for n in cluster_nodes(cluster_addrs(url)[0]) if n["ranges"])
                victim = victim["addr"]
            signal_pid(harness.pid(victim), signal.SIGKILL)
            events.append(f"killed master {victim}")

        try:
            print(f"\n{matrix} {topology}: {url}", flush=True)
            results, fault_at = run_agents(self.bindings, "load", url, ns, spec, inject)
            if topology == "sentinel":
                events.append(f"master now {sentinel_master(url)}")
            if resharding.is_alive():
                events.append("the load ended before the reshard did")
                resharding.join()
        finally:
            harness.close()
        for event in events:
            print(f"  {event}")
        passed = 0
        for binding in self.bindings:
            out = results.get(binding, {})
            if "error" in out or "ops" not in out:
                print(f"  FAIL {binding:<14} {out.get('error')}")
                continue
            last = out.get("lastError")
            recovery = max(0.0, last - fault_at) if last else 0.0
            recovered = recovery < seconds - 2.0
            ok = out["wrong"] == 0 and recovered
            passed += ok
            detail = (
                f"{out['ops']:>6} ops, {out['errors']:>4} errors, {out['wrong']} wrong,"
                f" {out['misses']:>4} misses, recovered after {recovery:5.2f} s"
                + ("" if recovered else " (NOT recovered)")
            )
            sample = f"  e.g. {out['sample'][0]}" if out.get("sample") else ""
            print(f"  {'ok  ' if ok else 'FAIL'} {binding:<14} {detail}{sample}")
        self.summaries.append((matrix, topology, passed, len(self.bindings)))
        return passed == len(self.bindings)


def slot_of(i: int) -> int:
    # The hash tag is the user key, so the slot does not depend on the namespace.
    return slot(redis_key("pc", "any", 200, f"fault:{i}"))


def sentinel_master(url: str) -> str:
    first = cluster_addrs(url)[0]
    host, port = first.split(":")
    name = url.split("://", 1)[1].split("/")[1].split("?")[0]
    out = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "SENTINEL", "get-master-addr-by-name", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return f"{out[0]}:{out[1]}"


def reshard(url: str, events: list[str]) -> None:
    """Moves 1,000 slots from one master to another with redis-cli, while the load runs."""
    seed = cluster_addrs(url)[0]
    masters = [n for n in cluster_nodes(seed) if n["role"] == "master" and n["ranges"]]
    source, dest = masters[0], masters[1]
    started = time.monotonic()
    proc = subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "reshard",
            seed,
            "--cluster-from",
            source["id"],
            "--cluster-to",
            dest["id"],
            "--cluster-slots",
            "1000",
            "--cluster-yes",
        ],
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    status = "done" if proc.returncode == 0 else f"FAILED: {proc.stderr[-300:]}"
    events.append(
        f"resharded 1000 slots {source['addr']} -> {dest['addr']} in {took:.2f} s ({status})"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bindings", default=",".join(BINDINGS))
    parser.add_argument("--matrices", default="deadline,failover,sentinel")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--failsafe-faults", default=",".join(FAILSAFE_FAULTS))
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    opts = parser.parse_args()
    suite = Suite(opts.bindings.split(","), opts.timeout, opts.rounds)
    matrices = opts.matrices.split(",")
    ok = True
    if "deadline" in matrices:
        ok = suite.deadline(opts.faults.split(",")) and ok
    if "failsafe" in matrices:
        ok = suite.failsafe(opts.failsafe_faults.split(",")) and ok
    if "failover" in matrices:
        ok = suite.load_matrix("failover", "cluster-kill", opts.seconds) and ok
        ok = suite.load_matrix("failover", "cluster-reshard", opts.seconds) and ok
    if "sentinel" in matrices:
        ok = suite.load_matrix("sentinel", "sentinel", opts.seconds) and ok
    print()
    for matrix, topology, passed, cells in suite.summaries:
        print(f"{matrix} {topology}: {passed}/{cells}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
