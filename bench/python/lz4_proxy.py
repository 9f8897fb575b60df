"""LZ4 on and off through bench/node/delay-proxy.mjs (a fixed delay each way), for the
compression default in the README: polycache set/get of the codec benchmark's values at
10 KB, 100 KB and 1 MB for each of codec.COMPRESSION's settings, µs per call.

    POLYCACHE_HARNESS=.../polycache-harness python bench/python/lz4_proxy.py 0.5
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import codec

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
    print(f"through the delay proxy (+{delay_ms} ms each way): µs per call")
    try:
        codec.compression_table(proxied, [10_000, 100_000, 1_000_000])
    finally:
        proxy.stdin.close()
        proxy.wait()
        assert harness.stdin is not None
        harness.stdin.close()
        harness.wait()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "0.5")
