"""The files every suite reads (tests/vectors/*.json, tests/interop/cases.json) and the typed
value notation of tests/vectors/README.md, for the Python suite and the Python interop
agent. Rust and JS have one counterpart each: tests/src/notation.rs (crate
polycache-harness, feature `notation`) and tests/vectors/notation.cjs.

Python values follow docs/FORMAT.md's Python column: nil is None, int is int, float is
float, bytes is bytes, array is list, map is dict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]


def vectors(name: str) -> list[dict[str, Any]]:
    """The cases of tests/vectors/<name>."""
    return _cases(TESTS / "vectors" / name)


def interop_cases() -> list[dict[str, Any]]:
    """The cases of tests/interop/cases.json (every runtime writes and reads them)."""
    return _cases(TESTS / "interop" / "cases.json")


def _cases(path: Path) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))["cases"]
    return cases


def typed(v: dict[str, Any]) -> Any:
    """A value from its typed notation."""
    ((tag, inner),) = v.items()
    if tag == "nil":
        return None
    if tag == "bool":
        return bool(inner)
    if tag == "int":
        return int(inner)
    if tag == "float":
        return float(inner)  # also "NaN", "inf", "-inf"
    if tag == "str":
        return str(inner)
    if tag == "bytes":
        return bytes.fromhex(inner)
    if tag == "array":
        return [typed(x) for x in inner]
    if tag == "map":
        return {k: typed(x) for k, x in inner.items()}
    raise ValueError(f"unknown typed tag {tag!r}")


def same(a: Any, b: Any) -> bool:
    """Equality as the vectors mean it: floats bit for bit (NaN equals NaN, -0.0 is not
    0.0), and int never equals float (1 != 1.0 here)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        # In order: list(a) == list(b) (a.keys() == b.keys() would ignore it).
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def hostile_bytes(case: dict[str, Any]) -> bytes:
    """The bytes of a hostile.json case: its segments (hex strings and
    {"repeat": hex, "times": n} runs) concatenated, checked against its size."""
    data = b"".join(
        bytes.fromhex(s) if isinstance(s, str) else bytes.fromhex(s["repeat"]) * s["times"]
        for s in case["bytes"]
    )
    assert len(data) == case["size"], case["name"]
    return data
