"""LZ4 on and off through bench/node/delay-proxy.mjs (a fixed delay each way), for the
compression default in the README: polycache set/get of the codec benchmark's values at
10 KB, 100 KB and 1 MB, µs per call.

    POLYCACHE_HARNESS=.../polycache-harness python bench/python/lz4_proxy.py 0.5
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import codec

import polycache
from bench import start_redis

ROOT = Path(__file__).resolve().parents[2]


def main(delay_ms: str) -> None:
    url, harness = start_redis()
    upstream = url.split("://", 1)[1].split("/")[0]
    proxy = subprocess.Popen(
        ["node", str(ROOT / "bench/node/delay-proxy.mjs"), upstream, delay_ms],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proxy.stdout is not None and proxy.stdin is not None
    proxied = f"redis://{proxy.stdout.readline().strip()}"
    caches = {
        c: polycache.Cache(proxied, namespace="bench-lz4-proxy", compression=c)
        for c in ("lz4", "none")
    }
    print(f"through the delay proxy (+{delay_ms} ms each way): µs per call, lz4 / none")
    try:
        for kind, make in (("records", codec.records), ("floats", codec.floats)):
            for target in (10_000, 100_000, 1_000_000):
                value = codec.sized(make, target)
                size = len(json.dumps(value))
                cells = []
                for name, cache in caches.items():
                    key = f"{name}:{kind}:{target}"
                    set_t = codec.per_call(lambda c=cache, k=key, v=value: c.set(k, v), size)
                    get_t = codec.per_call(lambda c=cache, k=key: c.get(k), size)
                    cells.append(f"{name} set {set_t * 1e6:8.0f} get {get_t * 1e6:8.0f}")
                print(f"  {kind} {size / 1000:g} KB".ljust(22) + "   ".join(cells), flush=True)
    finally:
        proxy.stdin.close()
        proxy.wait()
        assert harness.stdin is not None
        harness.stdin.close()
        harness.wait()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "0.5")
