"""A 1,000-caller stampede over four processes in three languages (issue 12), with the
stampede lock on: how many loads, and how long until every caller has the value.

Run by `make bench-stampede`, or on its own (after `make interop-deps` or the builds it
names):

    POLYCACHE_HARNESS=.../polycache-harness python bench/python/stampede.py
    scripts/with-redis python bench/python/stampede.py

The processes are the interop agents of tests/interop (driven through matrix.py's `Agent`
and `LockRun`): Rust (tokio tasks; a debug build), Python `AsyncCache`, Python `Cache` on
threads and Node, 250 concurrent `get_or_load` calls each on one key, a loader that counts
its calls in Redis (INCR) and takes 50 ms. All four are started and ready before the clock
starts; the time runs from the driver's "go" to the last process's answer (each process
prints it once all its callers have the value). A control round runs with the lock off.

Peer: dogpile.cache, whose redis backend has a cross-process lock (`distributed_lock`, a
redis-py `Lock`), in four Python processes (250 threads each; Python only, so not the same
mix of languages). Its waiters poll the lock every `lock_sleep` (0.1 s by default, kept).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from _common import host_port, redis_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "interop"))
from matrix import Agent, LockRun, Run  # noqa: E402 (tests/interop/matrix.py)

CALLERS = 250  # per process
LOAD_MS = 50
ROUNDS = 3
RUNTIMES = ["rust", "python", "python-sync", "node"]


def race(agents: dict[str, Agent]) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Starts every ready agent at once: seconds until the last one answered, each one's
    seconds, and their answers."""
    answered: dict[str, float] = {}

    def wait(name: str, agent: Agent) -> None:
        if agent.expect("values", 60) is not None:
            answered[name] = time.perf_counter()

    waiters = [threading.Thread(target=wait, args=item) for item in agents.items()]
    for waiter in waiters:
        waiter.start()
    started = time.perf_counter()
    for agent in agents.values():
        agent.send()
    for waiter in waiters:
        waiter.join()
    outs = {name: agent.result() for name, agent in agents.items()}
    each = {name: at - started for name, at in answered.items()}
    return max(each.values(), default=float("nan")), each, outs


def counted(url: str, key: str) -> int:
    host, port = host_port(url)
    raw = key.encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw))
        reply = sock.makefile("rb")
        head = reply.readline()
        return int(reply.readline()) if head.startswith(b"$") and head != b"$-1\r\n" else 0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def polycache_rounds(url: str) -> list[float]:
    run = Run(["rust", "python", "node"])
    host, port = host_port(url)
    locks = LockRun(run, f"{host}:{port}")
    assert sorted(locks.runtimes) == sorted(RUNTIMES), locks.runtimes
    print(
        f"\npolycache, stampede lock on: {len(RUNTIMES)} processes ({', '.join(RUNTIMES)}) x "
        f"{CALLERS} callers, one key, loader {LOAD_MS} ms"
    )
    print(f"  {'round':<10} {'loads':>5} {'all have it, ms':>16}   per process (ms)")
    totals = []
    for round_ in [*range(1, ROUNDS + 1), "no lock"]:
        lock = round_ != "no lock"
        ns = run.ns("bench", f"stampede-{round_}".replace(" ", "-"))
        agents = {
            r: locks.start(r, url, ns, keys=["k"], callers=CALLERS, delayMs=LOAD_MS, lock=lock)
            for r in RUNTIMES
        }
        if not all(agent.expect("ready") is not None for agent in agents.values()):
            raise SystemExit(f"an agent did not start: {[a.lines for a in agents.values()]}")
        total, each, outs = race(agents)
        loads = locks.loads(ns, "k")
        values = {out.get("values", {}).get("k") for out in outs.values()}
        errors = [out.get("errors") or out.get("error") for out in outs.values()]
        per = ", ".join(f"{r} {each[r] * 1000:.0f}" for r in RUNTIMES)
        print(f"  {round_!s:<10} {loads:>5} {ms(total):>16}   {per}")
        if lock:
            # Without the lock each process loads its own value, so only these must agree.
            if loads != 1 or len(values) != 1 or any(errors):
                raise SystemExit(f"round {round_}: {loads} loads, {values}, errors {errors}")
            totals.append(total)
        else:
            print(f"             (values seen: {len(values)}, each process loads its own)")
    return totals


DOGPILE_AGENT = """
import json, socket, sys, time
from concurrent.futures import ThreadPoolExecutor
from dogpile.cache import make_region

url, ns, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
host, port = url.split("://", 1)[1].rsplit(":", 1)
region = make_region(key_mangler=lambda k: ns + ":" + k).configure(
    "dogpile.cache.redis",
    expiration_time=600,
    arguments={"host": host, "port": int(port), "distributed_lock": True,
               "thread_local_lock": False, "redis_expiration_time": 600,
               "connection_kwargs": {"max_connections": 2 * spec["callers"]}},
)

def load():
    with socket.create_connection((host, int(port))) as sock:
        counter = (spec["counterPrefix"] + "k").encode()
        sock.sendall(b"*2\\r\\n$4\\r\\nINCR\\r\\n$%d\\r\\n%s\\r\\n" % (len(counter), counter))
        sock.recv(64)
    time.sleep(spec["delayMs"] / 1000)
    return "dogpile:k"

print(json.dumps({"ready": True}), flush=True)
sys.stdin.readline()
with ThreadPoolExecutor(max_workers=spec["callers"]) as pool:
    got = list(pool.map(lambda _: region.get_or_create("k", load), range(spec["callers"])))
print(json.dumps({"values": {"k": got[0]}, "errors": sorted(set(got) - {got[0]})}), flush=True)
"""


def dogpile_rounds(url: str) -> list[float]:
    print(
        f"\ndogpile.cache, distributed_lock: 4 Python processes x {CALLERS} threads, one key, "
        f"loader {LOAD_MS} ms"
    )
    print(f"  {'round':<10} {'loads':>5} {'all have it, ms':>16}   per process (ms)")
    totals = []
    for round_ in range(1, ROUNDS + 1):
        ns = f"bench-dogpile-{uuid.uuid4().hex[:8]}"
        spec = {"callers": CALLERS, "delayMs": LOAD_MS, "counterPrefix": f"count:{ns}:"}
        agents = {
            f"p{i}": Agent([sys.executable, "-c", DOGPILE_AGENT], url, ns, json.dumps(spec))
            for i in range(4)
        }
        if not all(agent.expect("ready") is not None for agent in agents.values()):
            raise SystemExit("a dogpile agent did not start")
        total, each, outs = race(agents)
        loads = counted(url, f"count:{ns}:k")
        values = {out.get("values", {}).get("k") for out in outs.values()}
        if values != {"dogpile:k"}:
            raise SystemExit(f"dogpile round {round_}: {outs}")
        per = ", ".join(f"{each[p] * 1000:.0f}" for p in sorted(each))
        print(f"  {round_!s:<10} {loads:>5} {ms(total):>16}   {per}")
        totals.append(total)
    return totals


def main() -> None:
    with redis_url() as url:
        print(f"stampede over processes and languages on {url}")
        ours = polycache_rounds(url)
        peer = dogpile_rounds(url)
    best, best_peer = min(ours), min(peer)
    print("\nsummary (best round, time until all 1,000 callers have the value)")
    print(f"  polycache (Rust, Python x2, Node), 1 load   {best * 1000:7.1f} ms")
    print(f"  dogpile.cache (Python x4)                   {best_peer * 1000:7.1f} ms")
    print(f"  ratio dogpile / polycache                   {best_peer / best:7.2f}x")


if __name__ == "__main__":
    sys.exit(main())
