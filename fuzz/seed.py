"""Writes a seed corpus for `make fuzz` from the vectors: every envelope case and every
hostile case up to 4 KiB (libFuzzer's default max_len)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for case in json.loads((ROOT / "tests/vectors/envelope.json").read_text())["cases"]:
    if "hex" in case and len(case["hex"]) <= 8192:
        (out / f"envelope-{case['name']}").write_bytes(bytes.fromhex(case["hex"]))
for case in json.loads((ROOT / "tests/vectors/hostile.json").read_text())["cases"]:
    if case["size"] <= 4096:
        data = b"".join(
            bytes.fromhex(s) if isinstance(s, str) else bytes.fromhex(s["repeat"]) * s["times"]
            for s in case["bytes"]
        )
        (out / f"hostile-{case['name']}").write_bytes(data)
