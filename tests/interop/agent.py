"""The Python side of the interop matrix (make interop). One command per process:

    agent.py write URL NS            write every case of cases.json
    agent.py read URL NS             read them back; report what matched
    agent.py delete URL NS KEY       delete one user key
    agent.py get URL NS KEY          whether a user key is there
    agent.py ttl URL NS KEY          its remaining TTL in seconds
    agent.py place URL NS COUNT      write user:0..COUNT-1; report each key's ring node
    agent.py cached URL NS ARG       call a @cache.cached(key="report:{0}") function
    agent.py raw URL NS              read bare keys written by redis-cli, raw and enveloped

Each prints one JSON line. The other runtimes' agents take the same commands.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import polycache
from polycache import Cache, contract

CASES = json.loads((Path(__file__).parent / "cases.json").read_text("utf-8"))["cases"]


def typed(v: dict[str, Any]) -> Any:
    ((tag, inner),) = v.items()
    if tag == "nil":
        return None
    if tag in ("bool", "str"):
        return inner
    if tag == "int":
        return int(inner)
    if tag == "float":
        return float(inner)
    if tag == "bytes":
        return bytes.fromhex(inner)
    if tag == "array":
        return [typed(x) for x in inner]
    return {k: typed(x) for k, x in inner.items()}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def cache_for(url: str, ns: str, case: dict[str, Any] | None = None, **extra: Any) -> Cache:
    options: dict[str, Any] = {"namespace": ns, **extra}
    if case is not None:
        options["codec"] = case["codec"]
        options["compress_threshold"] = case["compressThreshold"]
    return Cache(url, **options)


def main(argv: list[str]) -> Any:
    command, url, ns, *rest = argv
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
