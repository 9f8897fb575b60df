"""Generate the cross-language test vectors for polycache.

This is an independent Python implementation of docs/FORMAT.md (envelope v1,
canonical MessagePack, JSON layout, keys and cluster slots, the ketama ring).
It writes these files next to itself:

    envelope.json   value envelope encode / decode / error cases
    hostile.json    bombs, huge length claims, deep nesting: must fail fast and small
    keys.json       Redis key derivation, hash tags and cluster slots
    ring.json       ketama continuum placement and key movement

The JSON files are committed; every runtime's test suite reads them. Re-run
this script after changing the contract and commit the diff:

    python3 -m venv /tmp/vecenv
    /tmp/vecenv/bin/pip install msgpack lz4
    /tmp/vecenv/bin/python tests/vectors/generate.py

(plain `python3 tests/vectors/generate.py` works when msgpack and lz4 are
importable). Output is deterministic: no randomness and no clock. Every case
is checked against the reference decoder below before it is written. Only
the LZ4 blocks of the `"exact": false` cases may change with the lz4 package
version.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from bisect import bisect_left
from decimal import Decimal
from pathlib import Path
from typing import Any

import lz4.block
import msgpack

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------
# Constants from the contract
# ---------------------------------------------------------------------------

MAGIC = b"\xc1PC"
VERSION = 1
CODEC_IDS = {"bytes": 0, "msgpack": 1, "json": 2}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}
COMPRESSION_NAMES = {0: "none", 1: "lz4"}
EXT_SCHEMA = 0x01
EXT_TAG = 0x02
EXT_LOAD_MS = 0x03
EXT_NOT_FOUND = 0x04  # negative caching: a cached "not found", empty, with an empty payload
MAX_UNCOMPRESSED = 512 * 1024 * 1024
DEFAULT_THRESHOLD = 1024
NO_COMPRESS = 1 << 20  # threshold for long compressible values whose exact bytes we want

T0 = 1_700_000_000_000  # a fixed createdAt (2023-11-14T22:13:20Z)
T1 = T0 + 60_000  # a fixed freshUntil, one minute later

I64_MIN = -(2**63)
U64_MAX = 2**64 - 1


class CodecError(Exception):
    """Any envelope or codec error (the contract's single error kind)."""


# ---------------------------------------------------------------------------
# Value model helpers
# ---------------------------------------------------------------------------


def utf8_key(s: str) -> bytes:
    """Sort key for byte-wise ordering of strings."""
    return s.encode("utf-8")


def float_text(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def to_typed(v: Any) -> dict[str, Any]:
    """Python value -> typed JSON notation (map keys in byte-wise order)."""
    if v is None:
        return {"nil": None}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        if not I64_MIN <= v <= U64_MAX:
            raise ValueError(f"integer out of range: {v}")
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": float_text(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return {"array": [to_typed(x) for x in v]}
    if isinstance(v, dict):
        return {"map": {k: to_typed(x) for k, x in v.items()}}
    raise TypeError(f"not a model value: {type(v).__name__}")


def same_typed(a: Any, b: Any) -> bool:
    """Equal values with every map's keys in the same order (dict == ignores order)."""
    return json.dumps(to_typed(a)) == json.dumps(to_typed(b))


def sorted_maps(v: Any) -> Any:
    """Rebuild dicts with keys in byte-wise order: the order-independent form that
    function keys hash and render (FORMAT.md section 5)."""
    if isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise CodecError("map key is not a string")
        return {k: sorted_maps(v[k]) for k in sorted(v, key=utf8_key)}
    if isinstance(v, (list, tuple)):
        return [sorted_maps(x) for x in v]
    return v


def check_model(v: Any) -> None:
    """Reject anything a decoder may not return (ext, Timestamp, ...)."""
    if v is None or isinstance(v, (bool, float, str, bytes)):
        return
    if isinstance(v, int):
        if not I64_MIN <= v <= U64_MAX:
            raise CodecError("integer out of range")
        return
    if isinstance(v, list):
        for x in v:
            check_model(x)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise CodecError("map key is not a string")
            check_model(x)
        return
    raise CodecError(f"not a model value: {type(v).__name__}")


# ---------------------------------------------------------------------------
# MessagePack: the library encoder plus an own canonical encoder to cross-check
# ---------------------------------------------------------------------------


def _mp_len(
    n: int, fix_base: int, fix_max: int, m16: int, m32: int, m8: int | None = None
) -> bytes:
    if n <= fix_max:
        return bytes([fix_base | n])
    if m8 is not None and n <= 0xFF:
        return bytes([m8, n])
    if n <= 0xFFFF:
        return bytes([m16]) + struct.pack(">H", n)
    return bytes([m32]) + struct.pack(">I", n)


def own_msgpack(v: Any) -> bytes:
    """Canonical MessagePack written straight from FORMAT.md section 2."""
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if v >= 0:
            if v <= 0x7F:
                return bytes([v])
            for tag, fmt, top in (
                (0xCC, ">B", 0xFF),
                (0xCD, ">H", 0xFFFF),
                (0xCE, ">I", 0xFFFFFFFF),
            ):
                if v <= top:
                    return bytes([tag]) + struct.pack(fmt, v)
            return b"\xcf" + struct.pack(">Q", v)
        if v >= -32:
            return struct.pack(">b", v)
        for tag, fmt, low in (
            (0xD0, ">b", -(2**7)),
            (0xD1, ">h", -(2**15)),
            (0xD2, ">i", -(2**31)),
        ):
            if v >= low:
                return bytes([tag]) + struct.pack(fmt, v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        if math.isnan(v):
            return bytes.fromhex("cb7ff8000000000000")
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return _mp_len(len(b), 0xA0, 31, 0xDA, 0xDB, m8=0xD9) + b
    if isinstance(v, bytes):
        return _mp_len(len(v), 0, -1, 0xC5, 0xC6, m8=0xC4) + v
    if isinstance(v, (list, tuple)):
        return _mp_len(len(v), 0x90, 15, 0xDC, 0xDD) + b"".join(own_msgpack(x) for x in v)
    if isinstance(v, dict):
        # Entries in the order the map gives them (insertion order).
        body = b"".join(own_msgpack(k) + own_msgpack(x) for k, x in v.items())
        return _mp_len(len(v), 0x80, 15, 0xDE, 0xDF) + body
    raise CodecError(f"cannot encode {type(v).__name__}")


def msgpack_encode(v: Any) -> bytes:
    sorted_maps(v)  # raises for a non-string key
    data = msgpack.packb(v, use_bin_type=True)
    if data != own_msgpack(v):
        raise AssertionError(f"msgpack library and own encoder disagree for {v!r:.80}")
    return data


def msgpack_decode(raw: bytes) -> Any:
    def pairs(items: list[tuple[Any, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, x in items:
            if not isinstance(k, str):
                raise CodecError("map key is not a string")
            out[k] = x
        return out

    def ext(code: int, data: bytes) -> Any:
        raise CodecError(f"ext type {code}")

    try:
        value = msgpack.unpackb(
            raw,
            raw=False,
            use_list=True,
            strict_map_key=False,
            object_pairs_hook=pairs,
            ext_hook=ext,
            timestamp=0,
        )
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(str(exc)) from exc
    check_model(value)
    return value


# ---------------------------------------------------------------------------
# JSON codec (serde_json escaping, ryu float layout)
# ---------------------------------------------------------------------------

JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in JSON_ESCAPES:
            out.append(JSON_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def ryu_float(x: float) -> str:
    """Shortest round-trip digits laid out like Rust's ryu (format64)."""
    if not math.isfinite(x):
        raise CodecError("NaN and infinities cannot be written as JSON")
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    tup = Decimal(repr(abs(x))).as_tuple()
    all_digits = "".join(str(d) for d in tup.digits).lstrip("0")
    digits = all_digits.rstrip("0")
    exp10 = int(tup.exponent) + len(all_digits) - len(digits)  # value = digits * 10^exp10
    e = len(digits) - 1 + exp10  # value = d.ddd * 10^e
    if -5 <= e <= 15:
        if e >= 0:
            padded = digits + "0" * max(0, e + 1 - len(digits))
            body = padded[: e + 1] + "." + (padded[e + 1 :] or "0")
        else:
            body = "0." + "0" * (-e - 1) + digits
    else:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + "e" + str(e)
    if float(sign + body) != x:
        raise AssertionError(f"float layout does not round-trip: {x!r} -> {body}")
    return sign + body


def json_text(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ryu_float(v)
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(json_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json_string(k) + ":" + json_text(x) for k, x in v.items()) + "}"
    raise CodecError(f"{type(v).__name__} cannot be written as JSON")


def json_decode(raw: bytes) -> Any:
    def reject(name: str) -> Any:
        raise CodecError(f"non-standard JSON constant {name}")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        return dict(items)

    try:
        value = json.loads(
            raw.decode("utf-8"),
            parse_float=float,
            # "-0" is the float -0.0: integers have no negative zero (FORMAT.md).
            parse_int=lambda text: -0.0 if text == "-0" else int(text),
            parse_constant=reject,
            object_pairs_hook=pairs,
        )
    except CodecError:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise CodecError(str(exc)) from exc
    check_model(value)
    return value


# ---------------------------------------------------------------------------
# Envelope
# ---------------------------------------------------------------------------


def codec_encode(value: Any, codec: str) -> bytes:
    if codec == "msgpack":
        return msgpack_encode(value)
    if codec == "json":
        return json_text(value).encode("utf-8")
    if codec == "bytes":
        if not isinstance(value, bytes):
            raise CodecError("only a bytes value can use the bytes codec")
        return value
    raise ValueError(codec)


def codec_decode(raw: bytes, codec: str) -> Any:
    if codec == "msgpack":
        return msgpack_decode(raw)
    if codec == "json":
        return json_decode(raw)
    return bytes(raw)


def tlv(kind: int, text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">BH", kind, len(data)) + data


def header(codec_id: int, comp_id: int, created: int, fresh: int, ext: bytes = b"") -> bytes:
    return (
        MAGIC
        + bytes([VERSION, codec_id, comp_id])
        + struct.pack(">HQQ", 16 + len(ext), created, fresh)
        + ext
    )


def lz4_payload(raw: bytes, stated: int | None = None) -> bytes:
    # FORMAT.md does not name the byte order of this u32 (it sits in the payload,
    # not the header); big-endian is assumed, like every other integer.
    block = lz4.block.compress(raw, store_size=False)
    return struct.pack(">I", len(raw) if stated is None else stated) + block


def encode_envelope(
    value: Any,
    codec: str,
    *,
    threshold: int,
    created: int,
    fresh: int,
    schema: str | None,
    tags: list[str],
) -> tuple[bytes, str]:
    raw = codec_encode(value, codec)
    comp_id, payload = 0, raw
    if len(raw) >= threshold:
        candidate = lz4_payload(raw)
        block_smaller = len(candidate) - 4 < len(raw)
        payload_smaller = len(candidate) < len(raw)
        if block_smaller != payload_smaller:
            raise AssertionError("case sits on the 'makes it smaller' ambiguity; pick another")
        if payload_smaller:
            comp_id, payload = 1, candidate
    ext = b""
    if schema is not None:
        ext += tlv(EXT_SCHEMA, schema)
    for tag in tags:
        ext += tlv(EXT_TAG, tag)
    return header(CODEC_IDS[codec], comp_id, created, fresh, ext) + payload, COMPRESSION_NAMES[
        comp_id
    ]


def decode_envelope(data: bytes) -> dict[str, Any]:
    if len(data) < 24:
        raise CodecError("truncated header")
    if data[:3] != MAGIC:
        raise CodecError("wrong magic")
    if data[3] != VERSION:
        raise CodecError("unsupported version")
    if data[4] not in CODEC_NAMES:
        raise CodecError("unknown codec")
    if data[5] not in COMPRESSION_NAMES:
        raise CodecError("unknown compression")
    (hlen,) = struct.unpack_from(">H", data, 6)
    if hlen < 16:
        raise CodecError("header length below 16")
    end = 8 + hlen
    if end > len(data):
        raise CodecError("header length past end")
    created, fresh = struct.unpack_from(">QQ", data, 8)
    schema: str | None = None
    tags: list[str] = []
    load_ms: int | None = None
    not_found = False
    pos = 24
    while pos < end:
        if pos + 3 > end:
            raise CodecError("extension entry overruns header")
        kind = data[pos]
        (length,) = struct.unpack_from(">H", data, pos + 1)
        pos += 3
        if pos + length > end:
            raise CodecError("extension value overruns header")
        chunk = data[pos : pos + length]
        pos += length
        if kind == EXT_LOAD_MS:
            if length != 4:
                raise CodecError("load duration is not 4 bytes")
            (load_ms,) = struct.unpack(">I", chunk)
        if kind == EXT_NOT_FOUND:
            if length != 0:
                raise CodecError("the not-found extension is not empty")
            not_found = True
        if kind in (EXT_SCHEMA, EXT_TAG):
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CodecError("extension is not UTF-8") from exc
            if kind == EXT_SCHEMA:
                schema = text
            else:
                tags.append(text)
    payload = data[end:]
    if not_found:
        # A cached "not found" has no value: its payload is empty, read as nil.
        if payload:
            raise CodecError("a not-found envelope has a payload")
        return {
            "codec": CODEC_NAMES[data[4]],
            "compression": COMPRESSION_NAMES[data[5]],
            "createdAt": created,
            "freshUntil": fresh,
            "schema": schema,
            "tags": tags,
            "loadMs": load_ms,
            "notFound": True,
            "value": None,
        }
    if data[5] == 1:
        if len(payload) < 4:
            raise CodecError("truncated compressed payload")
        (stated,) = struct.unpack_from(">I", payload, 0)
        if stated > MAX_UNCOMPRESSED:
            raise CodecError("uncompressed length above 512 MiB")
        try:
            raw = lz4.block.decompress(payload[4:], uncompressed_size=stated)
        except Exception as exc:
            raise CodecError(str(exc)) from exc
        if len(raw) != stated:
            raise CodecError("LZ4 block does not match the stated length")
    else:
        raw = payload
    codec = CODEC_NAMES[data[4]]
    return {
        "codec": codec,
        "compression": COMPRESSION_NAMES[data[5]],
        "createdAt": created,
        "freshUntil": fresh,
        "schema": schema,
        "tags": tags,
        "loadMs": load_ms,
        "notFound": False,
        "value": codec_decode(raw, codec),
    }


# ---------------------------------------------------------------------------
# Envelope cases
# ---------------------------------------------------------------------------


def pseudo_random(n: int, seed: bytes = b"polycache") -> bytes:
    """Deterministic incompressible bytes (SHA-256 in counter mode)."""
    out = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(n // 32 + 1))
    return out[:n]


def str_of_bytes(n: int, unit: str = "a") -> str:
    s = unit * (n // len(unit.encode("utf-8")))
    if len(s.encode("utf-8")) != n:
        raise AssertionError("unit does not divide the length")
    return s


class EnvelopeCases:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []

    def _add(self, case: dict[str, Any]) -> None:
        self.cases.append(case)

    def roundtrip(
        self,
        name: str,
        value: Any,
        codec: str = "msgpack",
        *,
        compression: str = "none",
        threshold: int = DEFAULT_THRESHOLD,
        created: int = T0,
        fresh: int = 0,
        schema: str | None = None,
        tags: tuple[str, ...] = (),
        expect_payload: str | None = None,
    ) -> None:
        data, comp = encode_envelope(
            value,
            codec,
            threshold=threshold,
            created=created,
            fresh=fresh,
            schema=schema,
            tags=list(tags),
        )
        if comp != compression:
            raise AssertionError(f"{name}: expected compression {compression}, got {comp}")
        if expect_payload is not None and comp == "none":
            ext_len = len(data) - 24 - len(codec_encode(value, codec))
            if data[24 + ext_len :].hex() != expect_payload:
                raise AssertionError(
                    f"{name}: payload {data[24 + ext_len :].hex()} != {expect_payload}"
                )
        decoded = decode_envelope(data)
        if not same_typed(decoded["value"], value):
            raise AssertionError(f"{name}: does not round-trip")
        self._add(
            {
                "name": name,
                "op": "roundtrip",
                "codec": codec,
                "compression": compression,
                "compressThreshold": threshold,
                "createdAt": created,
                "freshUntil": fresh,
                "schema": schema,
                "tags": list(tags),
                "value": to_typed(value),
                "hex": data.hex(),
                "exact": compression == "none",
            }
        )

    def decode_ok(
        self,
        name: str,
        data: bytes,
        value: Any,
        codec: str,
        *,
        created: int = T0,
        fresh: int = 0,
        schema: str | None = None,
        tags: tuple[str, ...] = (),
        load_ms: int | None = None,
        not_found: bool = False,
    ) -> None:
        got = decode_envelope(data)
        want = {
            "codec": codec,
            "createdAt": created,
            "freshUntil": fresh,
            "schema": schema,
            "tags": list(tags),
            "loadMs": load_ms,
            "notFound": not_found,
        }
        for key, expected in want.items():
            if got[key] != expected:
                raise AssertionError(f"{name}: {key} {got[key]!r} != {expected!r}")
        if not same_typed(got["value"], value):
            raise AssertionError(f"{name}: decoded {got['value']!r:.80} != {value!r:.80}")
        self._add(
            {
                "name": name,
                "op": "decode",
                "hex": data.hex(),
                "value": to_typed(value),
                "codec": codec,
                "createdAt": created,
                "freshUntil": fresh,
                "schema": schema,
                "tags": list(tags),
                **({} if load_ms is None else {"loadMs": load_ms}),
                **({"notFound": True} if not_found else {}),
            }
        )

    def decode_err(self, name: str, data: bytes) -> None:
        try:
            decode_envelope(data)
        except CodecError:
            pass
        else:
            raise AssertionError(f"{name}: expected a codec error")
        self._add({"name": name, "op": "decode", "hex": data.hex(), "error": "codec"})

    def encode_err(self, name: str, value: Any, codec: str) -> None:
        try:
            codec_encode(value, codec)
        except CodecError:
            pass
        else:
            raise AssertionError(f"{name}: expected an encode error")
        self._add(
            {
                "name": name,
                "op": "encode-error",
                "value": to_typed(value),
                "codec": codec,
                "error": "codec",
            }
        )


def mp_env(payload: bytes, ext: bytes = b"") -> bytes:
    return header(CODEC_IDS["msgpack"], 0, T0, 0, ext) + payload


def json_env(text: bytes) -> bytes:
    return header(CODEC_IDS["json"], 0, T0, 0) + text


def envelope_cases() -> list[dict[str, Any]]:
    c = EnvelopeCases()

    # --- MessagePack scalars ------------------------------------------------
    c.roundtrip("msgpack-nil", None, expect_payload="c0")
    c.roundtrip("msgpack-true", True, expect_payload="c3")
    c.roundtrip("msgpack-false", False, expect_payload="c2")
    ints = [
        ("0", 0, "00"),
        ("127", 127, "7f"),
        ("128", 128, "cc80"),
        ("255", 255, "ccff"),
        ("256", 256, "cd0100"),
        ("65535", 65535, "cdffff"),
        ("65536", 65536, "ce00010000"),
        ("u32-max", 2**32 - 1, "ceffffffff"),
        ("2-pow-32", 2**32, "cf0000000100000000"),
        ("i64-max", 2**63 - 1, "cf7fffffffffffffff"),
        ("2-pow-63", 2**63, "cf8000000000000000"),
        ("u64-max", U64_MAX, "cfffffffffffffffff"),
        ("minus-1", -1, "ff"),
        ("minus-32", -32, "e0"),
        ("minus-33", -33, "d0df"),
        ("minus-128", -128, "d080"),
        ("minus-129", -129, "d1ff7f"),
        ("minus-32768", -32768, "d18000"),
        ("minus-32769", -32769, "d2ffff7fff"),
        ("i32-min", -(2**31), "d280000000"),
        ("i32-min-minus-1", -(2**31) - 1, "d3ffffffff7fffffff"),
        ("i64-min", I64_MIN, "d38000000000000000"),
    ]
    for label, n, payload in ints:
        c.roundtrip(f"msgpack-int-{label}", n, expect_payload=payload)
    floats = [
        ("zero", 0.0),
        ("negative-zero", -0.0),
        ("one", 1.0),
        ("minus-1-5", -1.5),
        ("0-1", 0.1),
        ("1e16", 1e16),
        ("1e-6", 1e-6),
        ("0-00001", 0.00001),
        ("1e300", 1e300),
        ("min-subnormal", 5e-324),
        ("max", 1.7976931348623157e308),
        ("nan", math.nan),
        ("inf", math.inf),
        ("minus-inf", -math.inf),
    ]
    for label, x in floats:
        c.roundtrip(f"msgpack-float-{label}", x)

    # --- strings --------------------------------------------------------------
    c.roundtrip("msgpack-str-empty", "", expect_payload="a0")
    c.roundtrip("msgpack-str-ascii", "hello, world")
    c.roundtrip("msgpack-str-cjk", "日本語のテキスト、中文")
    c.roundtrip("msgpack-str-emoji", "emoji 😀👍🏽🇯🇵")
    c.roundtrip("msgpack-str-combining-marks", "e\u0301 a\u0308 n\u0303 Z\u0335\u0321")
    c.roundtrip("msgpack-str-control-and-nul", "a\u0000b\nc\u007f")
    c.roundtrip("msgpack-str-31-bytes", str_of_bytes(31))
    c.roundtrip("msgpack-str-32-bytes", str_of_bytes(32))
    c.roundtrip("msgpack-str-32-bytes-multibyte", str_of_bytes(32, "é"))
    c.roundtrip("msgpack-str-255-bytes", str_of_bytes(255, "xyz"))
    c.roundtrip("msgpack-str-256-bytes", str_of_bytes(256, "ab"))
    c.roundtrip("msgpack-str-65535-bytes", str_of_bytes(65535, "abc"), threshold=NO_COMPRESS)
    c.roundtrip("msgpack-str-65536-bytes", str_of_bytes(65536, "😀"), threshold=NO_COMPRESS)

    # --- bytes ----------------------------------------------------------------
    c.roundtrip("msgpack-bytes-empty", b"", expect_payload="c400")
    c.roundtrip("msgpack-bytes-1", b"\x00", expect_payload="c40100")
    c.roundtrip("msgpack-bytes-255", bytes(range(255)))
    c.roundtrip("msgpack-bytes-256", bytes(range(256)))
    c.roundtrip(
        "msgpack-bytes-65536",
        bytes(i % 251 for i in range(65536)),
        threshold=NO_COMPRESS,
    )

    # --- arrays ---------------------------------------------------------------
    c.roundtrip("msgpack-array-empty", [], expect_payload="90")
    c.roundtrip("msgpack-array-15", list(range(15)))
    c.roundtrip("msgpack-array-16", list(range(16)))
    c.roundtrip("msgpack-array-mixed", [None, True, -1, 2.5, "s", b"\x01\x02", [], {}])
    c.roundtrip("msgpack-array-nested", [1, [2, [3, [4, []]]], ["x", ["y"]]])

    # --- maps -----------------------------------------------------------------
    c.roundtrip("msgpack-map-empty", {}, expect_payload="80")
    c.roundtrip("msgpack-map-15", {f"k{i:02d}": i for i in range(15)})
    c.roundtrip("msgpack-map-16", {f"k{i:02d}": i for i in range(16)})
    c.roundtrip("msgpack-map-nested-3-deep", {"a": {"b": {"c": {"d": 1}}}, "z": [{"y": None}]})
    # Maps keep insertion order: written as the host gives them, read back in wire order.
    unsorted_keys = {"B": 1, "a": 2, "é": 3, "Z": 4, "aa": 5, "a\u0000": 6}
    c.roundtrip(
        "msgpack-map-insertion-order",
        unsorted_keys,
        expect_payload="86a14201a16102a2c3a903a15a04a2616105a2610006",
    )
    c.roundtrip(
        "msgpack-map-reverse-order",
        {"zeta": 1, "alpha": {"z": True, "m": None, "a": [{"y": 1, "x": 2}]}},
    )
    c.roundtrip("msgpack-map-unicode-keys", {"日本": 1, "😀": 2, "z": 3, "é": 4, "\u00ff": 5})
    c.roundtrip(
        "msgpack-map-mixed-values",
        {
            "name": "Ada",
            "age": 36,
            "score": 99.5,
            "tags": ["x", "y"],
            "blob": b"\xc1\x00",
            "none": None,
        },
    )

    # --- JSON codec -----------------------------------------------------------
    c.roundtrip("json-null", None, "json", expect_payload=b"null".hex())
    c.roundtrip("json-true", True, "json")
    c.roundtrip("json-false", False, "json")
    for label, n in [
        ("0", 0),
        ("minus-1", -1),
        ("u64-max", U64_MAX),
        ("i64-min", I64_MIN),
        ("2-pow-53-plus-1", 2**53 + 1),
    ]:
        c.roundtrip(f"json-int-{label}", n, "json", expect_payload=str(n).encode().hex())
    json_floats = [
        ("one", 1.0, "1.0"),
        ("half", 0.5, "0.5"),
        ("minus-1-5", -1.5, "-1.5"),
        ("0-1", 0.1, "0.1"),
        ("negative-zero", -0.0, "-0.0"),
        ("1e15", 1e15, "1000000000000000.0"),
        ("1e16", 1e16, "1e16"),
        ("1-5e16", 1.5e16, "1.5e16"),
        ("0-00001", 0.00001, "0.00001"),
        ("1e-6", 1e-6, "1e-6"),
        ("1-5e-7", 1.5e-7, "1.5e-7"),
        ("minus-1-2345e100", -1.2345e100, "-1.2345e100"),
        ("123456-789", 123456.789, "123456.789"),
        ("1e300", 1e300, "1e300"),
        ("min-subnormal", 5e-324, "5e-324"),
        ("max", 1.7976931348623157e308, "1.7976931348623157e308"),
        ("0-000123", 0.000123, "0.000123"),
    ]
    for label, x, text in json_floats:
        c.roundtrip(f"json-float-{label}", x, "json", expect_payload=text.encode().hex())
    c.roundtrip("json-str-empty", "", "json", expect_payload=b'""'.hex())
    c.roundtrip(
        "json-str-escapes",
        'q" b\\ s/ \b\f\n\r\t \u0000\u0001\u001f \u007f \u2028',
        "json",
        expect_payload=json_string('q" b\\ s/ \b\f\n\r\t \u0000\u0001\u001f \u007f \u2028')
        .encode()
        .hex(),
    )
    c.roundtrip("json-str-unicode", "日本語 😀 e\u0301", "json")
    c.roundtrip("json-array-nested", [1, [2.5, [None, ["x"]]], []], "json")
    c.roundtrip(
        "json-map-insertion-order",
        unsorted_keys,
        "json",
        expect_payload='{"B":1,"a":2,"é":3,"Z":4,"aa":5,"a\\u0000":6}'.encode().hex(),
    )
    c.roundtrip(
        "json-map-nested",
        {"user": {"id": 7, "roles": ["admin"], "meta": {"ok": True, "ratio": 0.25}}},
        "json",
    )
    c.roundtrip("json-map-empty", {}, "json", expect_payload=b"{}".hex())

    # --- bytes codec ----------------------------------------------------------
    c.roundtrip("bytes-codec-empty", b"", "bytes", expect_payload="")
    c.roundtrip("bytes-codec-1", b"\xff", "bytes", expect_payload="ff")
    c.roundtrip("bytes-codec-256", bytes(range(256)), "bytes")
    c.roundtrip("bytes-codec-magic-lookalike", MAGIC + b"\x01\x01\x00", "bytes")

    # --- extensions and timestamps -------------------------------------------
    c.roundtrip("ext-schema-id", {"id": 1}, schema="user.v1")
    c.roundtrip("ext-one-tag", "v", tags=("users",))
    c.roundtrip("ext-schema-and-tags", [1, 2], schema="list.v2", tags=("a", "b", "users:42"))
    c.roundtrip("ext-unicode-schema-and-tags", "x", schema="スキーマ", tags=("タグ", "😀"))
    c.roundtrip("ext-empty-tag", 1, tags=("",))
    c.roundtrip("ext-with-json-codec", {"a": 1}, "json", schema="s", tags=("t",))
    c.roundtrip("fresh-until-set", "stale-ok", fresh=T1)
    c.roundtrip("fresh-until-with-extensions", 7, fresh=T1, schema="n", tags=("t1", "t2"))
    c.roundtrip("created-at-zero", None, created=0)
    c.roundtrip("created-at-large", True, created=2**53 - 1, fresh=2**53 - 1)

    # --- compression ----------------------------------------------------------
    c.roundtrip("lz4-msgpack-str", str_of_bytes(500, "abcd"), compression="lz4", threshold=64)
    c.roundtrip(
        "lz4-msgpack-map",
        {f"key{i}": "same value here" for i in range(20)},
        compression="lz4",
        threshold=64,
    )
    c.roundtrip(
        "lz4-json",
        [{"id": i, "name": "repeat"} for i in range(10)],
        "json",
        compression="lz4",
        threshold=64,
    )
    c.roundtrip("lz4-bytes-codec", b"\x00" * 300, "bytes", compression="lz4", threshold=64)
    c.roundtrip(
        "lz4-with-extensions",
        "z" * 200,
        compression="lz4",
        threshold=64,
        schema="s",
        tags=("t",),
        fresh=T1,
    )
    c.roundtrip("lz4-default-threshold", str_of_bytes(2000, "polycache "), compression="lz4")
    c.roundtrip(
        "lz4-exactly-at-threshold", "a" * 62, compression="lz4", threshold=64
    )  # output is 64 bytes
    c.roundtrip("uncompressed-one-below-threshold", "a" * 61, threshold=64)  # output is 63 bytes
    c.roundtrip("uncompressed-below-default-threshold", "a" * 1000)
    c.roundtrip("uncompressed-incompressible", pseudo_random(256), threshold=64)
    c.roundtrip("uncompressed-incompressible-bytes-codec", pseudo_random(2048), "bytes")

    # --- valid but non-canonical decodes -------------------------------------
    c.decode_ok("decode-float32-widened", mp_env(bytes.fromhex("ca3fc00000")), 1.5, "msgpack")
    c.decode_ok(
        "decode-float32-inexact",
        mp_env(bytes.fromhex("ca3dcccccd")),
        0.10000000149011612,
        "msgpack",
    )
    c.decode_ok("decode-uint8-small-int", mp_env(bytes.fromhex("cc05")), 5, "msgpack")
    c.decode_ok(
        "decode-uint64-small-int",
        mp_env(bytes.fromhex("cf0000000000000001")),
        1,
        "msgpack",
    )
    c.decode_ok("decode-int8-positive", mp_env(bytes.fromhex("d005")), 5, "msgpack")
    c.decode_ok(
        "decode-int64-minus-1",
        mp_env(bytes.fromhex("d3ffffffffffffffff")),
        -1,
        "msgpack",
    )
    c.decode_ok("decode-str8-short", mp_env(bytes.fromhex("d903616263")), "abc", "msgpack")
    c.decode_ok(
        "decode-bin16-short",
        mp_env(bytes.fromhex("c500020102")),
        b"\x01\x02",
        "msgpack",
    )
    c.decode_ok("decode-array16-short", mp_env(bytes.fromhex("dc000101")), [1], "msgpack")
    c.decode_ok("decode-map16-short", mp_env(bytes.fromhex("de0001a16101")), {"a": 1}, "msgpack")
    c.decode_ok(
        "decode-map-keys-in-wire-order",
        mp_env(bytes.fromhex("83a17a03a16202a16101")),
        {"z": 3, "b": 2, "a": 1},
        "msgpack",
    )
    # A repeated key keeps its first position and takes its last value (a dict, an object).
    c.decode_ok(
        "decode-map-duplicate-key",
        mp_env(bytes.fromhex("83a16101a16202a16103")),
        {"a": 3, "b": 2},
        "msgpack",
    )
    c.decode_ok(
        "decode-unknown-extension-skipped",
        mp_env(b"\x2a", ext=bytes.fromhex("7f0003010203") + tlv(EXT_SCHEMA, "s")),
        42,
        "msgpack",
        schema="s",
    )
    # Type 03, the last load's duration (FORMAT.md §1): a u32, exactly 4 bytes.
    load = lambda ms: bytes([EXT_LOAD_MS]) + struct.pack(">HI", 4, ms)  # noqa: E731
    c.decode_ok(
        "decode-load-duration",
        mp_env(b"\x2a", ext=load(250)),
        42,
        "msgpack",
        load_ms=250,
    )
    c.decode_ok(
        "decode-load-duration-after-tags",
        mp_env(b"\x2a", ext=tlv(EXT_SCHEMA, "s") + tlv(EXT_TAG, "t") + load(4294967295)),
        42,
        "msgpack",
        schema="s",
        tags=("t",),
        load_ms=4294967295,
    )
    c.decode_err(
        "decode-load-duration-short",
        mp_env(b"\x2a", ext=bytes([EXT_LOAD_MS]) + struct.pack(">HH", 2, 250)),
    )
    c.decode_err(
        "decode-load-duration-long",
        mp_env(b"\x2a", ext=bytes([EXT_LOAD_MS]) + struct.pack(">HQ", 8, 250)),
    )
    # Type 04, "not found" (FORMAT.md §1, negative caching): empty, with an empty payload
    # and codec id 01, so a reader that does not know 04 sees an invalid payload (a miss).
    # "decode-not-found" is the exact envelope a cache writes (created-at T0).
    not_found = bytes([EXT_NOT_FOUND]) + struct.pack(">H", 0)
    c.decode_ok("decode-not-found", mp_env(b"", ext=not_found), None, "msgpack", not_found=True)
    c.decode_ok(
        "decode-not-found-after-schema-and-tags",
        mp_env(b"", ext=tlv(EXT_SCHEMA, "s") + tlv(EXT_TAG, "t") + not_found),
        None,
        "msgpack",
        schema="s",
        tags=("t",),
        not_found=True,
    )
    c.decode_ok(
        "decode-not-found-json-codec-id",
        header(CODEC_IDS["json"], 0, T0, 0, not_found),
        None,
        "json",
        not_found=True,
    )
    c.decode_err("decode-not-found-with-a-payload", mp_env(b"\xc0", ext=not_found))
    c.decode_err(
        "decode-not-found-extension-long",
        mp_env(b"", ext=bytes([EXT_NOT_FOUND]) + struct.pack(">HB", 1, 0)),
    )
    # What a reader without type 04 does with the envelope a cache writes: skip the
    # extension, then fail on the empty payload (a miss). Kept as the bytes without 04.
    c.decode_err("decode-empty-msgpack-payload", mp_env(b""))
    c.decode_ok(
        "decode-unknown-extension-empty",
        mp_env(
            b"\xc0",
            ext=bytes.fromhex("000000") + tlv(EXT_TAG, "t") + bytes.fromhex("ff0000"),
        ),
        None,
        "msgpack",
        tags=("t",),
    )
    c.decode_ok(
        "decode-tags-before-schema",
        mp_env(b"\xc3", ext=tlv(EXT_TAG, "t1") + tlv(EXT_SCHEMA, "s") + tlv(EXT_TAG, "t2")),
        True,
        "msgpack",
        schema="s",
        tags=("t1", "t2"),
    )
    c.decode_ok(
        "decode-json-whitespace",
        json_env(b' { "b" : [ 1 , 2.5 ] ,\n"a" : null } '),
        {"b": [1, 2.5], "a": None},
        "json",
    )
    c.decode_ok(
        "decode-json-unicode-escapes",
        json_env(b'"\\u00e9\\ud83d\\ude00\\/"'),
        "é😀/",
        "json",
    )
    c.decode_ok(
        "decode-json-exponent-is-float",
        json_env(b"[1E2,1e-7,2.50,-0,0]"),
        [100.0, 1e-7, 2.5, -0.0, 0],
        "json",
    )
    c.decode_ok("decode-json-top-level-string", json_env(b'"hi"'), "hi", "json")
    c.decode_ok(
        "decode-bytes-codec-any-payload",
        header(0, 0, T0, 0) + b"hello \xc1\xff",
        b"hello \xc1\xff",
        "bytes",
    )
    lz4_stated = header(1, 1, T0, 0) + lz4_payload(own_msgpack("b" * 100))
    c.decode_ok("decode-lz4-msgpack", lz4_stated, "b" * 100, "msgpack")

    # --- decode errors --------------------------------------------------------
    good = mp_env(b"\x01")
    c.decode_err("error-empty-input", b"")
    c.decode_err("error-wrong-magic", b"\xc1PD" + good[3:])
    c.decode_err("error-foreign-json-text", b'{"a":1}')
    c.decode_err("error-foreign-msgpack", bytes.fromhex("81a16101"))
    c.decode_err("error-foreign-redis-cli-string", b"hello")
    c.decode_err("error-foreign-pickle", bytes.fromhex("80049505000000000000004b2a2e"))
    c.decode_err("error-version-00", good[:3] + b"\x00" + good[4:])
    c.decode_err("error-version-02", good[:3] + b"\x02" + good[4:])
    c.decode_err("error-unknown-codec-03", good[:4] + b"\x03" + good[5:])
    c.decode_err("error-unknown-codec-ff", good[:4] + b"\xff" + good[5:])
    c.decode_err("error-unknown-compression-02", good[:5] + b"\x02" + good[6:])
    c.decode_err("error-truncated-header-magic-only", MAGIC)
    c.decode_err("error-truncated-header-mid-timestamps", good[:20])
    c.decode_err("error-header-length-15", good[:6] + b"\x00\x0f" + good[8:])
    c.decode_err("error-header-length-0", good[:6] + b"\x00\x00" + good[8:])
    c.decode_err("error-header-length-past-end", good[:6] + b"\x00\x30" + good[8:])
    c.decode_err(
        "error-extension-overruns-header",
        mp_env(b"\x01", ext=bytes.fromhex("01000a6162")),
    )
    c.decode_err("error-extension-entry-cut", mp_env(b"\x01", ext=bytes.fromhex("0100")))
    c.decode_err("error-msgpack-empty-payload", mp_env(b""))
    c.decode_err("error-msgpack-truncated-array", mp_env(bytes.fromhex("9201")))
    c.decode_err("error-msgpack-truncated-str", mp_env(bytes.fromhex("a56162")))
    c.decode_err("error-msgpack-truncated-uint16", mp_env(bytes.fromhex("cd01")))
    c.decode_err("error-msgpack-trailing-garbage", mp_env(bytes.fromhex("0102")))
    c.decode_err("error-msgpack-reserved-byte-c1", mp_env(b"\xc1"))
    c.decode_err("error-msgpack-int-map-key", mp_env(bytes.fromhex("810101")))
    c.decode_err("error-msgpack-bin-map-key", mp_env(bytes.fromhex("81c4016101")))
    c.decode_err("error-msgpack-nil-map-key", mp_env(bytes.fromhex("81c001")))
    c.decode_err("error-msgpack-fixext1", mp_env(bytes.fromhex("d40100")))
    c.decode_err("error-msgpack-timestamp-ext", mp_env(bytes.fromhex("d6ff00000000")))
    c.decode_err("error-msgpack-ext8-nested", mp_env(bytes.fromhex("91c7010501")))
    c.decode_err("error-msgpack-invalid-utf8", mp_env(bytes.fromhex("a2c328")))
    c.decode_err("error-json-invalid", json_env(b"{"))
    c.decode_err("error-json-empty", json_env(b""))
    c.decode_err("error-json-nan-literal", json_env(b"NaN"))
    c.decode_err("error-json-infinity-literal", json_env(b"[Infinity]"))
    c.decode_err("error-json-single-quotes", json_env(b"{'a':1}"))
    c.decode_err("error-json-trailing-garbage", json_env(b"1 2"))
    c.decode_err("error-json-invalid-utf8", json_env(b'"\xc3\x28"'))
    c.decode_err("error-json-raw-control-char", json_env(b'"a\nb"'))
    raw = own_msgpack("c" * 100)
    c.decode_err(
        "error-lz4-stated-length-too-large",
        header(1, 1, T0, 0) + lz4_payload(raw, stated=len(raw) + 1),
    )
    c.decode_err(
        "error-lz4-stated-length-too-small",
        header(1, 1, T0, 0) + lz4_payload(raw, stated=len(raw) - 1),
    )
    c.decode_err(
        "error-lz4-corrupt-block",
        header(1, 1, T0, 0) + struct.pack(">I", 100) + b"\xf0\x00",
    )
    c.decode_err(
        "error-lz4-stated-length-over-512mib",
        header(1, 1, T0, 0) + struct.pack(">I", MAX_UNCOMPRESSED + 1) + b"\x10\x61",
    )
    c.decode_err("error-lz4-payload-shorter-than-length", header(1, 1, T0, 0) + b"\x00\x00")

    # --- encode errors --------------------------------------------------------
    c.encode_err("encode-error-json-nan", math.nan, "json")
    c.encode_err("encode-error-json-inf", math.inf, "json")
    c.encode_err("encode-error-json-minus-inf", -math.inf, "json")
    c.encode_err("encode-error-json-nested-nan", {"a": [1.0, math.nan]}, "json")
    c.encode_err("encode-error-json-bytes", b"\x01", "json")
    c.encode_err("encode-error-json-nested-bytes", {"k": [b""]}, "json")
    c.encode_err("encode-error-bytes-codec-str", "text", "bytes")
    c.encode_err("encode-error-bytes-codec-int", 1, "bytes")
    c.encode_err("encode-error-bytes-codec-nil", None, "bytes")
    c.encode_err("encode-error-bytes-codec-array-of-bytes", [b"\x01"], "bytes")
    c.encode_err("encode-error-bytes-codec-map", {"a": b"\x01"}, "bytes")

    return c.cases


# ---------------------------------------------------------------------------
# Keys and cluster slots
# ---------------------------------------------------------------------------


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def hash_tag(key: bytes) -> bytes:
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def slot(key: bytes) -> int:
    return crc16_xmodem(hash_tag(key)) % 16384


class KeyDerivationError(Exception):
    """Carries the contract's error kind ("key" or "config")."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def redis_key(prefix: str, namespace: str, key: str, max_len: int) -> str:
    for part in (prefix, namespace):
        if not part or "{" in part or "}" in part:
            raise KeyDerivationError("config")
    if not key:
        raise KeyDerivationError("key")
    raw = key.encode("utf-8")
    # A key starting with "}" would leave an empty hash tag (its lock would land on
    # another slot), so such keys are hashed like over-long ones.
    hashed = len(raw) > max_len or key.startswith("}")
    inner = "#" + hashlib.sha256(raw).hexdigest() if hashed else key
    return f"{prefix}:{namespace}:{{{inner}}}"


def keys_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def schema(
        name: str,
        key: str,
        prefix: str = "pc",
        namespace: str = "default",
        max_len: int = 200,
    ) -> None:
        case: dict[str, Any] = {
            "name": name,
            "kind": "schema",
            "prefix": prefix,
            "namespace": namespace,
            "maxKeyLength": max_len,
            "key": key,
        }
        try:
            rk = redis_key(prefix, namespace, key, max_len)
        except KeyDerivationError as exc:
            case["error"] = exc.kind
        else:
            tag = hash_tag(rk.encode("utf-8"))
            case.update(
                {
                    "redisKey": rk,
                    "lockKey": rk + ":lock",
                    "hashTag": tag.decode("utf-8"),
                    "slot": slot(rk.encode("utf-8")),
                }
            )
        cases.append(case)

    def raw_slot(name: str, key: str) -> None:
        b = key.encode("utf-8")
        cases.append(
            {
                "name": name,
                "kind": "slot",
                "redisKey": key,
                "hashTag": hash_tag(b).decode("utf-8"),
                "slot": slot(b),
            }
        )

    schema("ascii", "user:1000")
    schema("single-char", "a")
    schema("space", "hello world")
    schema("newline", "line1\nline2")
    schema("tab-and-cr", "a\tb\r")
    schema("nul-byte", "a\u0000b")
    schema("colons", "a:b:c:")
    schema("open-brace", "a{b")
    schema("close-brace", "a}b")
    schema("close-brace-first", "}x")
    schema("braces-pair", "{braced}")
    schema("empty-braces", "{}")
    schema("lone-open-brace", "{")
    schema("lone-close-brace", "}")
    schema("brace-in-middle", "x{y}z")
    schema("cjk", "日本語のキー")
    schema("emoji", "emoji 😀")
    schema("combining-mark", "cafe\u0301")
    schema("precomposed", "caf\u00e9")
    schema("len-199", "a" * 199)
    schema("len-200-at-limit", "a" * 200)
    schema("len-201-hashed", "a" * 201)
    schema("len-1000-hashed", "k" * 1000)
    schema("two-byte-200-at-limit", "é" * 100)
    schema("two-byte-201-hashed", "é" * 100 + "a")
    schema("two-byte-150-chars-300-bytes-hashed", "é" * 150)
    schema("three-byte-200-at-limit", "€" * 66 + "é")
    schema("three-byte-201-hashed", "€" * 67)
    schema("four-byte-200-at-limit", "😀" * 50)
    schema("four-byte-201-hashed", "😀" * 50 + "a")
    schema("max16-at-limit", "k" * 16, max_len=16)
    schema("max16-one-over", "k" * 17, max_len=16)
    schema("max16-two-byte-at-limit", "é" * 8, max_len=16)
    schema("max16-two-byte-one-over", "é" * 8 + "a", max_len=16)
    schema("max16-four-byte-at-limit", "😀" * 4, max_len=16)
    schema("max16-four-byte-one-over", "😀" * 4 + "x", max_len=16)
    schema("max16-hashed-with-braces", "{user}:profile:x", max_len=16)
    schema("max1-at-limit", "a", max_len=1)
    schema("max1-one-over", "ab", max_len=1)
    schema("custom-prefix-namespace", "user:1", prefix="app", namespace="sessions")
    schema("prefix-with-colon", "k", prefix="my:app", namespace="v2")
    schema("unicode-namespace", "k", namespace="名前空間")
    schema("prefix-with-space", "k", prefix="my app", namespace="ns")
    schema("custom-prefix-long-key-hashed", "x" * 201, prefix="app", namespace="sessions")
    schema("error-empty-key", "")
    schema("error-empty-key-custom", "", prefix="app", namespace="ns")
    schema("error-empty-prefix", "k", prefix="")
    schema("error-empty-namespace", "k", namespace="")
    schema("error-prefix-open-brace", "k", prefix="a{b")
    schema("error-prefix-close-brace", "k", prefix="a}")
    schema("error-namespace-open-brace", "k", namespace="{")
    schema("error-namespace-close-brace", "k", namespace="ns}")

    raw_slot("slot-foo", "foo")
    raw_slot("slot-bar", "bar")
    raw_slot("slot-somekey", "somekey")
    raw_slot("slot-123456789", "123456789")
    raw_slot("slot-user1000-following", "{user1000}.following")
    raw_slot("slot-user1000-followers", "{user1000}.followers")
    raw_slot("slot-user1000-bare", "user1000")
    raw_slot("slot-foo-hash-tag", "foo{hash_tag}")
    raw_slot("slot-empty-tag-then-tag", "foo{}{bar}")
    raw_slot("slot-double-open", "foo{{bar}}zap")
    raw_slot("slot-first-tag-wins", "foo{bar}{zap}")
    raw_slot("slot-empty-braces", "{}")
    raw_slot("slot-reversed-braces", "}{")
    raw_slot("slot-open-only", "a{b")
    raw_slot("slot-close-only", "ab}")
    raw_slot("slot-nested-braces", "{{}}")
    raw_slot("slot-tag-at-end", "prefix{t}")
    raw_slot("slot-unicode-tag", "{日本}語")
    raw_slot("slot-unicode-whole", "😀")
    raw_slot("slot-empty-key", "")
    raw_slot("slot-polycache-key", "pc:default:{user:1}")
    raw_slot("slot-polycache-lock", "pc:default:{user:1}:lock")
    raw_slot("slot-tag-with-space", "x{a b}y")

    known = {
        "123456789": 12739,
        "foo": 12182,
        "bar": 5061,
        "somekey": 11058,
        "foo{hash_tag}": 2515,
    }
    for case in cases:
        expected = known.get(case.get("redisKey", "")) if case["kind"] == "slot" else None
        if expected is not None and case["slot"] != expected:
            raise AssertionError(f"slot of {case['redisKey']} is {case['slot']}, not {expected}")
    return cases


# ---------------------------------------------------------------------------
# Ketama ring
# ---------------------------------------------------------------------------

Node = tuple[str, int]


def continuum(nodes: list[Node]) -> list[tuple[int, bytes, int, str]]:
    n = len(nodes)
    total = sum(w for _, w in nodes)
    points: list[tuple[int, bytes, int, str]] = []
    for pos, (name, weight) in enumerate(nodes):
        groups = weight * 40 * n // total
        for j in range(groups):
            d = hashlib.md5(f"{name}-{j}".encode()).digest()
            for a in range(4):
                value = int.from_bytes(d[4 * a : 4 * a + 4], "little")
                points.append((value, name.encode("utf-8"), pos, name))
    points.sort()
    return points


class Ring:
    def __init__(self, nodes: list[Node]) -> None:
        self.points = continuum(nodes)
        self.values = [p[0] for p in self.points]

    def node_for(self, key: str) -> str:
        h = int.from_bytes(hashlib.md5(hash_tag(key.encode("utf-8"))).digest()[:4], "little")
        i = bisect_left(self.values, h)
        return self.points[i % len(self.points)][3]


PLACEMENT_KEYS = (
    [f"key:{i}" for i in range(8)]
    + ["user:alice", "session:0f3a", "日本語", "😀", "a b c", ""]
    + [f"pc:default:{{user:{i}}}" for i in range(1, 9)]
    + [
        "pc:default:{user:42}",
        "pc:default:{user:42}:lock",
        "{shared}.a",
        "{shared}.b",
        "shared",
    ]
)
TOGETHER = [
    ("pc:default:{user:42}", "pc:default:{user:42}:lock"),
    ("{shared}.a", "{shared}.b"),
    ("{shared}.a", "shared"),
]


def node_list(nodes: list[Node]) -> list[dict[str, Any]]:
    return [{"name": name, "weight": weight} for name, weight in nodes]


def ring_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def placement(name: str, nodes: list[Node]) -> None:
        ring = Ring(nodes)
        placed = {k: ring.node_for(k) for k in PLACEMENT_KEYS}
        for a, b in TOGETHER:
            if placed[a] != placed[b]:
                raise AssertionError(f"{name}: {a} and {b} split")
        cases.append(
            {
                "name": name,
                "kind": "placement",
                "nodes": node_list(nodes),
                "continuumSize": len(ring.points),
                "continuumHead": [[p[0], p[3]] for p in ring.points[:8]],
                "placements": [{"key": k, "node": placed[k]} for k in PLACEMENT_KEYS],
            }
        )

    ports = [f"127.0.0.1:{7000 + i}" for i in range(20)]
    placement("one-node", [("127.0.0.1:6379", 1)])
    placement("one-node-weight-5", [("127.0.0.1:6379", 5)])
    for n in [*range(2, 13), 16, 20]:
        placement(f"equal-{n}-nodes", [(p, 1) for p in ports[:n]])
    placement("three-nodes", [(f"redis-{c}:6379", 1) for c in "abc"])
    placement("three-nodes-reversed-order", [(f"redis-{c}:6379", 1) for c in "cba"])
    placement("five-nodes", [(f"10.0.0.{i}:6379", 1) for i in range(1, 6)])
    placement(
        "weighted-1-2-3",
        [("redis-a:6379", 1), ("redis-b:6379", 2), ("redis-c:6379", 3)],
    )
    placement("weighted-1-2-floor", [("redis-a:6379", 1), ("redis-b:6379", 2)])
    placement("weighted-3-7", [("cache-1:6379", 3), ("cache-2:6379", 7)])
    placement("weighted-1-1-2", [("n1:6379", 1), ("n2:6379", 1), ("n3:6379", 2)])
    placement("weighted-2-2-same-as-equal", [("n1:6379", 2), ("n2:6379", 2)])
    placement("weighted-5-1", [("big:6379", 5), ("small:6379", 1)])
    placement("weighted-1-to-5", [(f"w{w}:6379", w) for w in range(1, 6)])
    placement("weighted-10-1-1", [("a:1", 10), ("b:1", 1), ("c:1", 1)])
    placement("unicode-names", [("ノード-1:6379", 1), ("nœud-2:6379", 1), ("узел-3:6379", 1)])
    placement(
        "hostnames-no-port",
        [
            ("cache-east", 1),
            ("cache-west", 1),
            ("cache-central", 1),
            ("cache-backup", 1),
        ],
    )
    placement("ipv6-names", [("[::1]:6379", 1), ("[::1]:6380", 1), ("[2001:db8::7]:6379", 1)])

    count = 10_000
    keys = [f"key:{i}" for i in range(count)]

    def movement(name: str, before: list[Node], after: list[Node]) -> None:
        rb, ra = Ring(before), Ring(after)
        old = [rb.node_for(k) for k in keys]
        new = [ra.node_for(k) for k in keys]
        moved = sum(1 for o, n in zip(old, new, strict=True) if o != n)
        before_names = {n for n, _ in before}
        after_names = {n for n, _ in after}
        case: dict[str, Any] = {
            "name": name,
            "kind": "movement",
            "before": node_list(before),
            "after": node_list(after),
            "keyPattern": "key:{i}",
            "count": count,
            "moved": moved,
        }
        if len(after) > len(before):
            (added,) = after_names - before_names
            to_new = sum(1 for o, n in zip(old, new, strict=True) if o != n and n == added)
            case["movedToNew"] = to_new
            ideal = 1 / len(after)
            note = (
                f"added {added}: moved {moved}/{count} = {moved / count:.4f}, 1/(N+1) = {ideal:.4f}"
            )
            if to_new != moved:
                note += (
                    f"; only {to_new} went to the new node because the other "
                    "nodes' point counts changed"
                )
        else:
            (removed,) = before_names - after_names
            from_removed = sum(1 for o, n in zip(old, new, strict=True) if o != n and o == removed)
            if from_removed != old.count(removed):
                raise AssertionError(f"{name}: a key stayed on the removed node")
            case["movedFromRemoved"] = from_removed
            ideal = 1 / len(before)
            note = (
                f"removed {removed}: moved {moved}/{count} = {moved / count:.4f}, 1/N = {ideal:.4f}"
            )
            if from_removed != moved:
                note += (
                    f"; {moved - from_removed} moved between surviving nodes "
                    "because their point counts changed"
                )
        case["balance"] = {n: new.count(n) for n, _ in after}
        case["note"] = note
        cases.append(case)

    eq = [(p, 1) for p in ports]
    for n in range(1, 13):
        movement(f"add-node-{n}-to-{n + 1}", eq[:n], eq[: n + 1])
    for n in range(2, 11):
        movement(f"remove-last-{n}-to-{n - 1}", eq[:n], eq[: n - 1])
    for i in range(4):
        movement(f"remove-position-{i}-of-4", eq[:4], eq[:i] + eq[i + 1 : 4])
    movement("remove-middle-of-five", eq[:5], eq[:2] + eq[3:5])
    movement("remove-first-of-ten", eq[:10], eq[1:10])
    abc = [(f"redis-{c}:6379", 1) for c in "abc"]
    movement("add-node-named-hosts", abc, [*abc, ("redis-d:6379", 1)])
    uni = [("ノード-1:6379", 1), ("nœud-2:6379", 1)]
    movement("add-unicode-node", uni, [*uni, ("узел-3:6379", 1)])
    w123 = [("redis-a:6379", 1), ("redis-b:6379", 2), ("redis-c:6379", 3)]
    movement("weighted-add-mean-weight", w123, [*w123, ("redis-d:6379", 2)])
    movement("weighted-add-heavy-node", w123, [*w123, ("redis-d:6379", 4)])
    movement("weighted-remove-node", w123, w123[:2])
    return cases


# ---------------------------------------------------------------------------
# Hostile input (FORMAT.md section 1, "Limits")
# ---------------------------------------------------------------------------

MAX_PAYLOAD_BYTES = 64 * 1024 * 1024  # default maxPayloadBytes
MAX_VALUE_BYTES = 256 * 1024 * 1024  # default maxValueBytes
VALUE_SLOT = 32  # counted per value, map keys included
MAX_DEPTH = 256  # a value deeper than this is refused (top level = depth 0)
LZ4_MAX_EXPANSION = 255  # no LZ4 block expands more than this


class Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def require(self, n: int) -> None:
        if n > self.left:
            raise CodecError("decoded value exceeds maxValueBytes")

    def charge(self, n: int) -> None:
        self.require(n)
        self.left -= n


def limited_msgpack(raw: bytes, max_value: int) -> Any:
    """A second, hand-written MessagePack reader that applies the limits of FORMAT.md."""
    budget = Budget(max_value)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise CodecError("truncated")
        out = raw[pos : pos + n]
        pos += n
        return out

    def uint(n: int) -> int:
        return int.from_bytes(take(n), "big")

    def text(n: int) -> str:
        data = take(n)
        budget.charge(n)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError("invalid UTF-8") from exc

    def claim(n: int, min_bytes: int, min_cost: int) -> None:
        if n * min_bytes > len(raw) - pos:
            raise CodecError("truncated")
        budget.require(n * min_cost)

    def value(depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CodecError("nesting too deep")
        budget.charge(VALUE_SLOT)
        m = uint(1)
        if m <= 0x7F:
            return m
        if m >= 0xE0:
            return m - 0x100
        if 0x80 <= m <= 0x8F:
            return mapping(m & 0x0F, depth)
        if 0x90 <= m <= 0x9F:
            return seq(m & 0x0F, depth)
        if 0xA0 <= m <= 0xBF:
            return text(m & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if m in simple:
            return simple[m]
        if m in (0xC4, 0xC5, 0xC6):
            n = uint({0xC4: 1, 0xC5: 2, 0xC6: 4}[m])
            data = take(n)
            budget.charge(n)
            return data
        if m == 0xCA:
            return struct.unpack(">f", take(4))[0]
        if m == 0xCB:
            return struct.unpack(">d", take(8))[0]
        if 0xCC <= m <= 0xCF:
            return uint(1 << (m - 0xCC))
        if 0xD0 <= m <= 0xD3:
            return int.from_bytes(take(1 << (m - 0xD0)), "big", signed=True)
        if m in (0xD9, 0xDA, 0xDB):
            return text(uint({0xD9: 1, 0xDA: 2, 0xDB: 4}[m]))
        if m in (0xDC, 0xDD):
            return seq(uint(2 if m == 0xDC else 4), depth)
        if m in (0xDE, 0xDF):
            return mapping(uint(2 if m == 0xDE else 4), depth)
        raise CodecError(f"marker {m:#x} (ext or reserved)")

    def seq(n: int, depth: int) -> list[Any]:
        claim(n, 1, VALUE_SLOT)
        return [value(depth + 1) for _ in range(n)]

    def mapping(n: int, depth: int) -> dict[str, Any]:
        claim(n, 2, 2 * VALUE_SLOT)
        out: dict[str, Any] = {}
        for _ in range(n):
            if depth + 1 > MAX_DEPTH:
                raise CodecError("nesting too deep")
            budget.charge(VALUE_SLOT)
            m = uint(1)
            if 0xA0 <= m <= 0xBF:
                key = text(m & 0x1F)
            elif m in (0xD9, 0xDA, 0xDB):
                key = text(uint({0xD9: 1, 0xDA: 2, 0xDB: 4}[m]))
            else:
                raise CodecError("map key is not a string")
            out[key] = value(depth + 1)
        return out

    result = value(0)
    if pos != len(raw):
        raise CodecError("trailing bytes")
    return result


def counted_size(v: Any) -> int:
    """What a decoded value counts against maxValueBytes (FORMAT.md section 1)."""
    if isinstance(v, str):
        return VALUE_SLOT + len(v.encode("utf-8"))
    if isinstance(v, bytes):
        return VALUE_SLOT + len(v)
    if isinstance(v, list):
        return VALUE_SLOT + sum(counted_size(x) for x in v)
    if isinstance(v, dict):
        return VALUE_SLOT + sum(
            VALUE_SLOT + len(k.encode("utf-8")) + counted_size(x) for k, x in v.items()
        )
    return VALUE_SLOT


def json_depth(raw: bytes) -> int:
    """Deepest nesting of a JSON text's values (top level = 0), scanning past strings."""
    deepest = depth = 0
    in_str = escaped = False
    for b in raw:
        if in_str:
            if escaped:
                escaped = False
            elif b == 0x5C:
                escaped = True
            elif b == 0x22:
                in_str = False
            continue
        if b == 0x22:
            in_str = True
            deepest = max(deepest, depth)
        elif b in (0x5B, 0x7B):
            deepest = max(deepest, depth)
            depth += 1
        elif b in (0x5D, 0x7D):
            depth -= 1
        elif b not in b" \t\r\n,:":
            deepest = max(deepest, depth)
    return deepest


def limited_payload(raw: bytes, codec: str, max_value: int) -> Any:
    if codec == "msgpack":
        value = limited_msgpack(raw, max_value)
        if not same_typed(value, msgpack_decode(raw)):
            raise AssertionError("the two MessagePack readers disagree")
        return value
    if codec == "json":
        if json_depth(raw) > MAX_DEPTH:
            raise CodecError("nesting too deep")
        value = json_decode(raw)
        try:
            size = counted_size(value)
        except UnicodeEncodeError as exc:  # a lone surrogate from a \ud800 escape
            raise CodecError("string is not valid UTF-8") from exc
        if size > max_value:
            raise CodecError("decoded value exceeds maxValueBytes")
        return value
    if VALUE_SLOT + len(raw) > max_value:
        raise CodecError("decoded value exceeds maxValueBytes")
    return bytes(raw)


def limited_envelope(
    data: bytes, max_payload: int = MAX_PAYLOAD_BYTES, max_value: int = MAX_VALUE_BYTES
) -> Any:
    """decode_envelope with the limits: refuse a stated length before decompressing."""
    if len(data) >= 24 and data[:3] == MAGIC and data[5] == 1:
        end = 8 + struct.unpack_from(">H", data, 6)[0]
        payload = data[end:]
        if len(payload) >= 4 and end <= len(data):
            (stated,) = struct.unpack_from(">I", payload, 0)
            if stated > max_payload:
                raise CodecError("stated length above maxPayloadBytes")
            if stated > (len(payload) - 4) * LZ4_MAX_EXPANSION:
                raise CodecError("stated length beyond what the block can expand to")
    decoded = decode_envelope_raw(data)
    raw, codec = decoded
    if len(raw) > max_payload:
        raise CodecError("payload above maxPayloadBytes")
    return limited_payload(raw, codec, max_value)


def decode_envelope_raw(data: bytes) -> tuple[bytes, str]:
    """The envelope checks of decode_envelope, returning the payload undecoded."""
    if len(data) < 24 or data[:3] != MAGIC or data[3] != VERSION:
        raise CodecError("not a v1 envelope")
    if data[4] not in CODEC_NAMES or data[5] not in COMPRESSION_NAMES:
        raise CodecError("unknown id")
    (hlen,) = struct.unpack_from(">H", data, 6)
    end = 8 + hlen
    if hlen < 16 or end > len(data):
        raise CodecError("bad header length")
    pos = 24
    while pos < end:
        if pos + 3 > end:
            raise CodecError("extension entry overruns header")
        kind = data[pos]
        (length,) = struct.unpack_from(">H", data, pos + 1)
        pos += 3
        if pos + length > end:
            raise CodecError("extension value overruns header")
        if kind in (EXT_SCHEMA, EXT_TAG):
            try:
                data[pos : pos + length].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CodecError("extension is not UTF-8") from exc
        pos += length
    payload = data[end:]
    if data[5] == 1:
        if len(payload) < 4:
            raise CodecError("truncated compressed payload")
        (stated,) = struct.unpack_from(">I", payload, 0)
        try:
            raw = lz4.block.decompress(payload[4:], uncompressed_size=stated)
        except Exception as exc:
            raise CodecError(str(exc)) from exc
        if len(raw) != stated:
            raise CodecError("LZ4 block does not match the stated length")
        return raw, CODEC_NAMES[data[4]]
    return payload, CODEC_NAMES[data[4]]


def lz4_length(n: int) -> bytes:
    return b"\xff" * (n // 255) + bytes([n % 255])


def lz4_repeat(prefix: bytes, unit: bytes, count: int) -> bytes:
    """An LZ4 block of prefix + unit * count, written by hand (no compressor): the prefix
    and one unit as literals, one match at offset len(unit) for all but the last 5 bytes,
    then those 5 bytes as literals. About count * len(unit) / 255 bytes long."""
    # Checked against the lz4 package up to 16 MiB of output (larger ones share the code).
    body = unit * count if len(unit) * count <= 16 << 20 else None
    total = len(unit) * count
    literals = prefix + unit
    matched = total - len(unit) - 5
    if matched < 4:
        raise ValueError("too short for a match")
    tail_start = len(unit) + matched  # offset of the last 5 bytes inside the repetition
    tail = bytes(unit[(tail_start + i) % len(unit)] for i in range(5))
    token = (min(len(literals), 15) << 4) | min(matched - 4, 15)
    out = bytearray([token])
    if len(literals) >= 15:
        out += lz4_length(len(literals) - 15)
    out += literals + struct.pack("<H", len(unit))
    if matched - 4 >= 15:
        out += lz4_length(matched - 4 - 15)
    out += b"\x50" + tail
    if body is not None:
        got = lz4.block.decompress(bytes(out), uncompressed_size=len(prefix) + total)
        if got != prefix + body:
            raise AssertionError("hand-written LZ4 block is wrong")
    return bytes(out)


def lz4_env(codec: str, stated: int, block: bytes) -> bytes:
    return header(CODEC_IDS[codec], 1, T0, 0) + struct.pack(">I", stated) + block


def bomb(codec: str, prefix: bytes, unit: bytes, count: int) -> bytes:
    """An envelope whose LZ4 payload is prefix + unit * count."""
    return lz4_env(codec, len(prefix) + len(unit) * count, lz4_repeat(prefix, unit, count))


def segments(data: bytes) -> list[Any]:
    """Compact form of the bytes: hex strings, with runs of 64+ bytes that repeat a unit of
    1-8 bytes written as {"repeat": hex unit, "times": n}. Concatenated in order they give
    the bytes."""
    out: list[Any] = []
    start = i = 0
    while i < len(data):
        best_unit, best_times = 1, 1
        for p in range(1, 9):
            unit = data[i : i + p]
            if len(unit) < p:
                break
            j = i + p
            while data[j : j + p] == unit:
                j += p
            if j - i > best_unit * best_times:
                best_unit, best_times = p, (j - i) // p
        if best_unit * best_times >= 64:
            if start < i:
                out.append(data[start:i].hex())
            out.append({"repeat": data[i : i + best_unit].hex(), "times": best_times})
            i += best_unit * best_times
            start = i
        else:
            i += 1
    if start < len(data):
        out.append(data[start:].hex())
    return out


def expand(segs: list[Any]) -> bytes:
    return b"".join(
        bytes.fromhex(s) if isinstance(s, str) else bytes.fromhex(s["repeat"]) * s["times"]
        for s in segs
    )


def hostile_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def case(name: str, data: bytes, note: str, value: Any = CodecError) -> None:
        try:
            got = limited_envelope(data)
        except CodecError:
            got = CodecError
        if value is CodecError:
            if got is not CodecError:
                raise AssertionError(f"{name}: expected a decode error, got {got!r:.80}")
            outcome: dict[str, Any] = {"expect": "decode_error"}
        elif value is ...:
            if got is CodecError:
                raise AssertionError(f"{name}: expected a value")
            outcome = {"expect": "ok"}
        else:
            if got is CodecError or not same_typed(got, value):
                raise AssertionError(f"{name}: decoded {got!r:.80}")
            outcome = {"expect": "value", "value": to_typed(value)}
        segs = segments(data)
        if expand(segs) != data:
            raise AssertionError(f"{name}: segments do not expand to the bytes")
        cases.append({"name": name, "note": note, "bytes": segs, "size": len(data), **outcome})

    mp = "msgpack"
    # --- the issue's decode bomb and its relatives ----------------------------------
    case(
        "bomb-lz4-array32-128mi-zeros",
        bomb(mp, b"\xdd" + struct.pack(">I", 128 << 20), b"\x00", 128 << 20),
        "issue 9: LZ4 block of a MessagePack array32 of 128 Mi zeros; states a payload "
        "above maxPayloadBytes, refused before decompressing",
    )
    case(
        "bomb-lz4-array32-512mi-zeros",
        bomb(mp, b"\xdd" + struct.pack(">I", 512 << 20), b"\x00", (512 << 20) - 5),
        "about 2 MB stored, states 512 MiB: refused by maxPayloadBytes",
    )
    case(
        "bomb-lz4-array32-12mi-zeros-under-payload-cap",
        bomb(mp, b"\xdd" + struct.pack(">I", 12 << 20), b"\x00", 12 << 20),
        "12 MiB payload (under the cap): 12 Mi items would count 384 MiB, above "
        "maxValueBytes; refused from the claim, no slot per item allocated",
    )
    case(
        "bomb-lz4-map32-6mi-entries",
        bomb(mp, b"\xdf" + struct.pack(">I", 6 << 20), b"\xa0\x00", 6 << 20),
        "map32 of 6 Mi entries {'': 0}: 12 MiB payload, 384 MiB counted",
    )
    case(
        "bomb-lz4-array32-of-empty-maps",
        bomb(mp, b"\xdd" + struct.pack(">I", 9 << 20), b"\x80", 9 << 20),
        "array32 of 9 Mi empty maps: each a slot, 288 MiB counted",
    )
    case(
        "bomb-lz4-deep-nesting-1mi",
        bomb(mp, b"", b"\x91", 1 << 20) + b"",
        "1 Mi nested fixarrays (and no innermost value): refused by the nesting limit",
    )
    case(
        "bomb-lz4-json-deep-nesting-1mi",
        bomb("json", b"", b"[", 1 << 20),
        "JSON: 1 Mi '[': refused by the nesting limit",
    )
    case(
        "bomb-lz4-bytes-codec-over-payload-cap",
        bomb("bytes", b"", b"\x00", (64 << 20) + 1),
        "bytes codec, 64 MiB + 1 of zeros: above maxPayloadBytes",
    )
    # --- LZ4 size claims ---------------------------------------------------------------
    tiny = lz4.block.compress(b"\x01" * 1, store_size=False)
    case(
        "lz4-claim-cap-plus-1",
        lz4_env(mp, MAX_PAYLOAD_BYTES + 1, tiny),
        "stated length maxPayloadBytes + 1, tiny block",
    )
    case("lz4-claim-u32-max", lz4_env(mp, 0xFFFFFFFF, tiny), "stated length 2^32 - 1")
    case(
        "lz4-claim-at-cap-tiny-block",
        lz4_env(mp, MAX_PAYLOAD_BYTES, tiny),
        "stated 64 MiB (allowed) from a 2-byte block: more than 255x the block, refused "
        "before the 64 MiB buffer exists",
    )
    case(
        "lz4-claim-beyond-expansion",
        lz4_env(mp, 1 << 20, b"\x1f\x00\x01\x00" + b"\xff" * 6),
        "stated 1 MiB from a 10-byte block",
    )
    case(
        "lz4-claim-larger-than-output",
        lz4_env(mp, 1000, lz4_repeat(b"\xdc\x03\x00", b"\x00", 768)),
        "the block decompresses to 771 bytes, 1000 stated",
    )
    case(
        "lz4-claim-smaller-than-output",
        lz4_env(mp, 500, lz4_repeat(b"\xdc\x03\x00", b"\x00", 768)),
        "the block decompresses to 771 bytes, 500 stated",
    )
    case(
        "lz4-offset-before-start",
        lz4_env(mp, 100, b"\x0f\x10\x00" + b"\x40" + b"\x00" * 4 + b"\x50" + b"\x00" * 5),
        "a match offset pointing before the start of the output",
    )
    case("lz4-empty-block", lz4_env(mp, 1, b""), "stated 1 byte, empty block")
    case("lz4-length-field-cut", header(1, 1, T0, 0) + b"\x00\x00\x01", "3 of 4 length bytes")
    case(
        "lz4-valid-array16-of-zeros",
        lz4_env(mp, 3 + 768, lz4_repeat(b"\xdc\x03\x00", b"\x00", 768)),
        "a valid hand-written block: array16 of 768 zeros",
        [0] * 768,
    )
    # --- MessagePack length claims (uncompressed) ------------------------------------------
    claims = [
        ("array32-u32-max", "ddffffffff"),
        ("array32-u32-max-with-items", "ddffffffff" + "00" * 64),
        ("array16-u16-max-truncated", "dcffff0000"),
        ("map32-u32-max", "dfffffffff"),
        ("map32-u32-max-with-entries", "dfffffffff" + "a000" * 32),
        ("map16-u16-max-truncated", "deffffa000"),
        ("str32-u32-max", "dbffffffff61"),
        ("str32-4gib-minus-1-nothing", "dbffffffff"),
        ("str16-truncated", "da0100" + "61" * 10),
        ("bin32-u32-max", "c6ffffffff00"),
        ("bin16-truncated", "c50100" + "00" * 10),
        ("nested-array32-claims", "dd00000002ddffffffffddffffffff"),
        ("array-of-str32-claims", "92dbffffffffdbffffffff"),
    ]
    for label, payload in claims:
        case(
            f"msgpack-claim-{label}", mp_env(bytes.fromhex(payload)), "length claim past the input"
        )
    # Nested claims are each checked against the same remaining bytes, not charged: a
    # reader that reserves a claimed length per container reserves it 256 times over. One
    # string backs the claims, so a reader that does not holds about 1 MB.
    nested = 1_000_000

    def str32(n: int) -> bytes:
        return b"\xdb" + struct.pack(">I", n) + b"a" * n

    case(
        "msgpack-nested-array32-claims-1m-x256",
        mp_env((b"\xdd" + struct.pack(">I", nested)) * MAX_DEPTH + str32(nested - 5)),
        "256 nested array32s each claiming 1,000,000 items, backed by one str32 of "
        "999,995 'a's (the innermost's first item): every claim passes the input check; a "
        "reader reserving slots per claim reserves 256 x 1M (2 GB of pointers)",
    )
    case(
        "msgpack-nested-array32-claims-1m-x256-bytes",
        mp_env(
            (b"\xdd" + struct.pack(">I", nested)) * MAX_DEPTH
            + b"\xc6"
            + struct.pack(">I", nested - 5)
            + b"\x00" * (nested - 5)
        ),
        "the same claims backed by one bin32 of 999,995 zeros: bytes, which JSON cannot "
        "carry, so a JS reader builds these arrays itself rather than through JSON.parse",
    )
    case(
        "msgpack-nested-map32-claims-1m-x256",
        mp_env((b"\xdf" + struct.pack(">I", nested) + b"\xa0") * MAX_DEPTH + str32(2 * nested)),
        "256 nested map32s each claiming 1,000,000 entries, the first of each keyed '', "
        "backed by one str32 of 2,000,000 'a's (the innermost's first value)",
    )
    # --- nesting ----------------------------------------------------------------------------
    case(
        "msgpack-nesting-100k",
        mp_env(b"\x91" * 100_000 + b"\xc0"),
        "100k nested fixarrays",
    )
    case(
        "msgpack-nesting-map-100k",
        mp_env(b"\x81\xa0" * 100_000 + b"\xc0"),
        "100k nested single-entry maps",
    )
    case(
        "msgpack-nesting-at-limit",
        mp_env(b"\x91" * MAX_DEPTH + b"\xc0"),
        "nil at depth 256 inside 256 arrays: accepted",
        ...,
    )
    case(
        "msgpack-nesting-one-past-limit",
        mp_env(b"\x91" * (MAX_DEPTH + 1) + b"\xc0"),
        "nil at depth 257: refused",
    )
    case(
        "msgpack-nesting-map-one-past-limit",
        mp_env(b"\x81\xa0" * (MAX_DEPTH + 1) + b"\xc0"),
        "map value at depth 257: refused",
    )
    case("json-nesting-100k", json_env(b"[" * 100_000 + b"]" * 100_000), "100k nested arrays")
    case(
        "json-nesting-objects-100k",
        json_env(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        "100k nested objects",
    )
    case(
        "json-nesting-at-limit",
        json_env(b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH),
        "1 at depth 256 inside 256 arrays: accepted (not serde_json's own limit of 128)",
        ...,
    )
    case(
        "json-nesting-one-past-limit",
        json_env(b"[" * (MAX_DEPTH + 1) + b"1" + b"]" * (MAX_DEPTH + 1)),
        "1 at depth 257: refused",
    )
    case("json-unclosed-100k", json_env(b"[" * 100_000), "100k unclosed arrays")
    # --- bad UTF-8 ----------------------------------------------------------------------
    for label, raw in [
        ("lone-continuation", "a180"),
        ("overlong-nul", "a2c080"),
        ("surrogate", "a3eda080"),
        ("above-u10ffff", "a4f4908080"),
        ("truncated-sequence", "a2e282"),
        ("map-key", "81a1ff01"),
    ]:
        case(f"msgpack-utf8-{label}", mp_env(bytes.fromhex(raw)), "invalid UTF-8 in a string")
    case("json-utf8-surrogate", json_env(b'"\xed\xa0\x80"'), "a raw surrogate in JSON text")
    case("json-utf8-lone-escape-surrogate", json_env(b'"\\ud800"'), "a lone escaped surrogate")
    case("header-tag-bad-utf8", mp_env(b"\x01", ext=b"\x02\x00\x01\xff"), "tag not UTF-8")
    # --- ext types ----------------------------------------------------------------------
    for label, raw in [
        ("fixext1", "d40100"),
        ("fixext16", "d801" + "00" * 16),
        ("ext8", "c7010100"),
        ("ext16", "c800010100"),
        ("ext32-u32-max", "c9ffffffff01"),
        ("timestamp96", "c70cff" + "00" * 12),
        ("in-map-value", "81a161d40100"),
        ("as-map-key", "81d4010001"),
    ]:
        case(f"msgpack-ext-{label}", mp_env(bytes.fromhex(raw)), "ext types are not values")
    # --- truncated headers and unknown ids ----------------------------------------------------
    good = mp_env(b"\x01")
    for n in (1, 3, 7, 8, 23):
        case(f"truncated-header-{n}-bytes", good[:n], f"the first {n} bytes of an envelope")
    case("header-length-65535", good[:6] + b"\xff\xff" + good[8:], "header length past the end")
    case("header-extension-overruns", mp_env(b"\x01", ext=b"\x01\xff\xff"), "TLV past the header")
    case("unknown-version-ff", good[:3] + b"\xff" + good[4:], "version 255")
    case("unknown-codec-7f", good[:4] + b"\x7f" + good[5:], "codec 127")
    case("unknown-compression-ff", good[:5] + b"\xff" + good[6:], "compression 255")
    case("foreign-bytes", bytes(range(256)), "not an envelope")
    # --- trailing bytes -----------------------------------------------------------------------
    case("msgpack-trailing-byte", mp_env(b"\x01\x00"), "one byte after the value")
    case("msgpack-trailing-64k", mp_env(b"\xc0" + b"\x00" * 65536), "64 KiB after the value")
    case("json-trailing-value", json_env(b"[1] [2]"), "a second JSON value")
    case(
        "lz4-trailing-after-value",
        lz4_env(mp, 3 + 768 + 1, lz4_repeat(b"\xdc\x03\x00", b"\x00", 769)),
        "the decompressed payload has one byte after the array",
    )
    # --- big but allowed -----------------------------------------------------------------------
    case(
        "msgpack-array16-65535-nils",
        mp_env(b"\xdc\xff\xff" + b"\xc0" * 65535),
        "a 64 Ki-item array, well within the caps",
        ...,
    )
    case(
        "lz4-bin32-4mib-zeros",
        bomb(mp, b"\xc6" + struct.pack(">I", 4 << 20), b"\x00", 4 << 20),
        "4 MiB of zero bytes from 16 KiB stored: within both caps",
        ...,
    )
    return cases


# ---------------------------------------------------------------------------
# URL and options -> config (README.md, "Options"): written out by hand, not computed,
# so the expected configs are independent of every implementation.
# ---------------------------------------------------------------------------

CONFIG_DEFAULTS: dict[str, Any] = {
    "breakerCooldown": 1.0,
    "breakerFailures": 0,
    "codec": "msgpack",
    "commandTimeout": 1.0,
    "compressThreshold": 1024,
    "compression": "lz4",
    "connectTimeout": 1.0,
    "earlyRefreshBeta": 0.0,
    "failSafeBackoff": 30.0,
    "freshFor": None,
    "hardTimeout": None,
    "jitter": 0.0,
    "lockLease": 10.0,
    "lockTimeout": 10.0,
    "maxKeyLength": 200,
    "maxPayloadBytes": 64 << 20,
    "maxStale": 0.0,
    "maxValueBytes": 256 << 20,
    "memoryCapacity": 10000,
    "namespace": "default",
    "nearCache": 0,
    "nearCacheBytes": 64 << 20,
    "nearCacheTtl": 60.0,
    "negativeTtl": 0.0,
    "prefix": "pc",
    "raw": False,
    "stampedeLock": False,
    "softTimeout": None,
    "ttl": 300.0,
    "url": "memory://",
}


def snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def urls_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def ok(name: str, given: str, options: dict[str, Any], **changes: Any) -> None:
        config = dict(CONFIG_DEFAULTS, **changes)
        cases.append({"name": name, "url": given, "options": options, "config": config})

    def error(name: str, given: str, options: dict[str, Any]) -> None:
        cases.append({"name": name, "url": given, "options": options, "error": "config"})

    ok("defaults", "memory://", {})
    # Every option three ways: a URL query parameter (camelCase and snake_case) and an
    # override; each value differs from the default.
    given = [
        ("prefix", "app", "app"),
        ("namespace", "users", "users"),
        ("maxKeyLength", "64", 64),
        ("ttl", "60", 60.0),
        ("jitter", "0.25", 0.25),
        ("codec", "json", "json"),
        ("compression", "none", "none"),
        ("compressThreshold", "4096", 4096),
        ("raw", "true", True),
        ("connectTimeout", "2.5", 2.5),
        ("commandTimeout", "0.5", 0.5),
        ("memoryCapacity", "5", 5),
        ("maxPayloadBytes", "1024", 1024),
        ("maxValueBytes", "2048", 2048),
        ("nearCache", "100", 100),
        ("nearCacheBytes", "4096", 4096),
        ("nearCacheTtl", "2.5", 2.5),
        ("freshFor", "30", 30.0),
        ("maxStale", "600", 600.0),
        ("failSafeBackoff", "5", 5.0),
        ("stampedeLock", "true", True),
        ("lockLease", "2.5", 2.5),
        ("lockTimeout", "0.5", 0.5),
        ("softTimeout", "0.1", 0.1),
        ("hardTimeout", "2", 2.0),
        ("earlyRefreshBeta", "1.5", 1.5),
        ("breakerFailures", "5", 5),
        ("breakerCooldown", "2.5", 2.5),
        ("negativeTtl", "30", 30.0),
    ]
    for option, text, value in given:
        kebab = snake(option).replace("_", "-")
        ok(f"query-{kebab}", f"memory://?{option}={text}", {}, **{option: value})
        if snake(option) != option:
            ok(f"query-snake-{kebab}", f"memory://?{snake(option)}={text}", {}, **{option: value})
        ok(f"override-{kebab}", "memory://", {option: value}, **{option: value})
        ok(f"override-snake-{kebab}", "memory://", {snake(option): value}, **{option: value})

    # Overrides win over the URL's query; null and 0 are no expiry.
    ok("override-wins", "memory://?namespace=a&ttl=5", {"namespace": "b"}, namespace="b", ttl=5.0)
    ok("ttl-null", "memory://?ttl=5", {"ttl": None}, ttl=None)
    ok("ttl-zero-query", "memory://?ttl=0", {}, ttl=None)
    ok("ttl-zero-override", "memory://", {"ttl": 0}, ttl=None)
    ok("ttl-fraction", "memory://?ttl=0.25", {}, ttl=0.25)
    ok("codec-alias", "memory://?codec=messagepack", {}, codec="msgpack")
    ok("capacity-alias", "memory://?capacity=7", {}, memoryCapacity=7)
    ok("url-override", "memory://", {"url": "memory://?namespace=n"}, namespace="n")
    ok("whole-float", "memory://", {"maxKeyLength": 64.0}, maxKeyLength=64)

    # Query values are percent-decoded (and + is a space), as redis-rs reads them.
    ok("percent-decoded", "memory://?namespace=a%20b%2Fc", {}, namespace="a b/c")
    ok("plus-is-space", "memory://?namespace=a+b", {}, namespace="a b")
    ok("percent-name", "memory://?name%73pace=x", {}, namespace="x")
    ok("utf8-value", "memory://?namespace=%C3%BC", {}, namespace="\u00fc")

    # Redis URLs: options leave the URL, the store's own parameters stay, the credentials
    # are redacted.
    ok("redis", "redis://127.0.0.1:6379/0", {}, url="redis://127.0.0.1:6379/0")
    ok(
        "redis-options-leave-url",
        "redis://h:6379/2?namespace=n&ttl=1",
        {},
        url="redis://h:6379/2",
        namespace="n",
        ttl=1.0,
    )
    ok("redis-password-redacted", "redis://:s3cret@h:6379", {}, url="redis://***@h:6379")
    ok(
        "redis-user-password-encoded",
        "redis://u%40x:p%3Aw@h:6379?namespace=n",
        {},
        url="redis://***@h:6379",
        namespace="n",
    )
    ok("redis-protocol", "redis://h:6379?protocol=resp3", {}, url="redis://h:6379?protocol=resp3")
    ok(
        "redis-protocol-2",
        "redis://h:6379?protocol=2&ttl=9",
        {},
        url="redis://h:6379?protocol=2",
        ttl=9.0,
    )
    ok("rediss-insecure", "rediss://h:6380/#insecure", {}, url="rediss://h:6380/#insecure")
    ok(
        "rediss-query-and-fragment",
        "rediss://h:6380/?namespace=n#insecure",
        {},
        url="rediss://h:6380/#insecure",
        namespace="n",
    )
    ok(
        "shards-weights",
        "redis+shards://a:1,b:2?weights=1,3&namespace=n",
        {},
        url="redis+shards://a:1,b:2?weights=1,3",
        namespace="n",
    )
    ok(
        "shards-weights-encoded",
        "redis+shards://a:1,b:2?weights=1%2C3",
        {},
        url="redis+shards://a:1,b:2?weights=1%2C3",
    )
    ok(
        "cluster",
        "redis+cluster://a:1,b:2?protocol=resp3",
        {},
        url="redis+cluster://a:1,b:2?protocol=resp3",
    )
    ok(
        "sentinel-replica-reads",
        "redis+sentinel://a:1,b:2/mymaster?replicaReads=true&ttl=2",
        {},
        url="redis+sentinel://a:1,b:2/mymaster?replicaReads=true",
        ttl=2.0,
    )

    # Errors: all config errors.
    error("unknown-option-query", "redis://h?bogus=1", {})
    error("unknown-option-override", "memory://", {"bogus": 1})
    error("unknown-option-in-url-override", "memory://", {"url": "redis://h?bogus=1"})
    error("unknown-scheme", "mongodb://h", {})
    error("not-a-url", "localhost:6379", {})
    error("store-param-wrong-scheme", "redis://h?weights=1", {})
    error("replica-reads-not-sentinel", "redis://h?replicaReads=true", {})
    error("protocol-memory", "memory://?protocol=resp3", {})
    error("protocol-bad", "redis://h?protocol=resp9", {})
    error("weights-count", "redis+shards://a:1,b:2?weights=1", {})
    error("weights-zero", "redis+shards://a:1,b:2?weights=0,1", {})
    error("shards-no-hosts", "redis+shards://", {})
    error("sentinel-no-master", "redis+sentinel://a:1", {})
    error("ttl-text-override", "memory://", {"ttl": "60"})
    error("ttl-negative", "memory://?ttl=-1", {})
    error("ttl-nan", "memory://?ttl=NaN", {})
    error("ttl-inf", "memory://?ttl=inf", {})
    error("ttl-too-long", "memory://", {"ttl": 1e10})
    error("ttl-word", "memory://?ttl=nope", {})
    error("jitter-above-one", "memory://?jitter=1.5", {})
    error("codec-unknown", "memory://?codec=xml", {})
    error("compression-unknown", "memory://", {"compression": "zstd9"})
    error("max-key-length-fraction", "memory://", {"maxKeyLength": 1.5})
    error("max-key-length-negative", "memory://?maxKeyLength=-1", {})
    error("raw-not-bool", "memory://?raw=yes", {})
    error("raw-number-override", "memory://", {"raw": 1})
    error("timeout-zero", "memory://?commandTimeout=0", {})
    error("timeout-negative", "memory://", {"connectTimeout": -1})
    error("capacity-zero", "memory://?memoryCapacity=0", {})
    error("near-cache-ttl-zero", "redis://h:1?nearCache=10&nearCacheTtl=0", {})
    error("near-cache-bytes-zero", "redis://h:1?nearCache=10&nearCacheBytes=0", {})
    error("raw-fresh-for", "memory://?raw=true&freshFor=10", {})
    error("raw-max-stale", "memory://?raw=true", {"maxStale": 60})
    error("max-stale-negative", "memory://", {"maxStale": -1})
    ok("fresh-for-zero", "memory://?freshFor=0", {})
    ok("hard-timeout-zero", "memory://?hardTimeout=0", {})
    error("early-refresh-beta-negative", "memory://?earlyRefreshBeta=-1", {})
    error("negative-ttl-negative", "memory://?negativeTtl=-1", {})
    ok("fresh-for-null", "memory://?freshFor=30", {"freshFor": None})
    error("lock-lease-zero", "redis://h:1?stampedeLock=true&lockLease=0", {})
    ok("lock-timeout-zero", "memory://?lockTimeout=0", {}, lockTimeout=0.0)
    ok("breaker-cooldown-zero", "memory://?breakerCooldown=0", {}, breakerCooldown=0.0)
    error("breaker-failures-negative", "memory://?breakerFailures=-1", {})
    error("breaker-failures-fraction", "memory://", {"breakerFailures": 1.5})
    error("breaker-failures-text", "memory://", {"breakerFailures": "5"})
    error("namespace-empty", "memory://?namespace=", {})
    error("namespace-brace", "memory://", {"namespace": "a{b"})
    error("prefix-not-string", "memory://", {"prefix": 1})
    error("null-namespace", "memory://", {"namespace": None})
    error("url-not-string", "memory://", {"url": 1})
    return cases


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

DESCRIPTIONS = {
    "urls.json": (
        "polycache URL and options -> config (README.md, Options). resolve_config(url, "
        "options) with options as a JSON object gives config (every field; durations in "
        "seconds, ttl null for no expiry, the URL without the options it carried and with "
        "credentials redacted) or fails with error config. Compare numbers by value "
        "(60 equals 60.0)."
    ),
    "hostile.json": (
        "polycache hostile input (docs/FORMAT.md section 1, Limits), read with the default "
        "limits (maxPayloadBytes 64 MiB, maxValueBytes 256 MiB, nesting 256). bytes: "
        "segments to concatenate, a hex string or {repeat: hex byte, times: n}; size: the "
        "total length. expect decode_error: decoding is a codec error (a cache: a miss plus "
        "a counted decode error); expect value: decoding gives value; expect ok: decoding "
        "succeeds (value too deep or too big to write here). Every case must finish "
        "quickly and without peak memory proportional to a claimed length."
    ),
    "templates.json": (
        "polycache function keys (docs/FORMAT.md section 5). kind template: render "
        "template with positional args and named args to key, or fail with error "
        "config (bad template) / key (missing or unrenderable argument). kind "
        "default: call_key(function, args) gives key. Values use the typed notation."
    ),
    "envelope.json": (
        "polycache value envelope v1 (docs/FORMAT.md sections 1-2). op roundtrip: "
        "decode(hex) gives value and header fields; encode(value, settings) gives "
        "hex exactly when exact is true, otherwise the same header bytes and a "
        "payload that decodes to value. op decode: decode(hex) gives value or a "
        "codec error; notFound: true marks a cached not-found envelope (value nil), absent "
        "means false. op encode-error: encoding value with codec is a codec error. "
        "Values use the typed notation in README.md."
    ),
    "keys.json": (
        "polycache Redis keys, hash tags and cluster slots (docs/FORMAT.md section "
        "3). kind schema: derive the Redis key from prefix, namespace, maxKeyLength"
        " and key, or fail with error key/config. kind slot: the Redis Cluster hash"
        " tag and CRC16-XMODEM slot of a raw Redis key."
    ),
    "lock.json": (
        "polycache stampede lock (docs/FORMAT.md section 6). kind script: the exact text "
        "of a lock script and its SHA-1 (what EVALSHA names). kind lock-key: the lock key "
        "of the Redis key of key under prefix and namespace, and the cluster slot both "
        "share. kind token: whether token has the token format (32 lowercase hex "
        "digits). kind poll-delay: a waiter's pause in ms before poll number attempt."
    ),
    "xfetch.json": (
        "polycache early refresh, probabilistic (XFetch; docs/FORMAT.md section 7). "
        "should_refresh_early(now, fresh_until, delta, beta, random) is refresh: "
        "now, fresh_until and delta in ms (u64), beta and random floats. True when "
        "fresh_until > 0, beta > 0, 0 <= random < 1 and now - delta * beta * ln(1 - random)"
        " >= fresh_until, computed in binary64; false otherwise. Cases within 0.001 ms of "
        "the boundary are left out unless the gap is exactly 0 (random 0)."
    ),
    "ring.json": (
        "polycache ketama ring (docs/FORMAT.md section 4). kind placement: "
        "continuum size and first 8 points, and the node each Redis key lands on. "
        "kind movement: how many of count keys (keyPattern with {i} replaced by "
        "0..count-1) change node when one node is added or removed."
    ),
}


def check_names(cases: list[dict[str, Any]], file: str) -> None:
    names = [c["name"] for c in cases]
    if len(names) != len(set(names)):
        raise AssertionError(f"{file}: duplicate case names")
    for n in names:
        if not n or n != n.lower() or " " in n or "_" in n:
            raise AssertionError(f"{file}: name {n!r} is not kebab-case")


def write(file: str, cases: list[dict[str, Any]]) -> None:
    check_names(cases, file)
    if len(cases) < 60:
        raise AssertionError(f"{file}: only {len(cases)} cases")
    doc = {"description": DESCRIPTIONS[file], "cases": cases}
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    (HERE / file).write_text(text, encoding="utf-8")
    print(f"{file}: {len(cases)} cases, {len(text.encode('utf-8'))} bytes")


# ---------------------------------------------------------------------------
# Function keys (FORMAT.md §5)


class TemplateError(Exception):
    """Carries the contract's error kind ("config" or "key")."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def parse_template(template: str) -> list[tuple[str, Any]]:
    parts: list[tuple[str, Any]] = []
    text = ""
    i = 0
    while i < len(template):
        c = template[i]
        if c in "{}" and template[i + 1 : i + 2] == c:
            text += c
            i += 2
            continue
        if c == "}":
            raise TemplateError("config")
        if c == "{":
            end = template.find("}", i + 1)
            inner = template[i + 1 : end] if end >= 0 else ""
            if end < 0 or "{" in inner:
                raise TemplateError("config")
            name = inner.strip()
            if not name:
                raise TemplateError("config")
            if text:
                parts.append(("text", text))
                text = ""
            if name.isdigit() and name.isascii():
                parts.append(("index", int(name)))
            else:
                parts.append(("name", name))
            i = end + 1
            continue
        text += c
        i += 1
    if text:
        parts.append(("text", text))
    return parts


def render_arg(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    try:
        return json_text(sorted_maps(v))
    except CodecError as exc:
        raise TemplateError("key") from exc


def render_template(template: str, args: list[Any], named: dict[str, Any]) -> str:
    out = ""
    for kind, part in parse_template(template):
        if kind == "text":
            out += part
        elif kind == "index":
            if part >= len(args):
                raise TemplateError("key")
            out += render_arg(args[part])
        else:
            if part not in named:
                raise TemplateError("key")
            out += render_arg(named[part])
    return out


def call_key(function: str, args: list[Any], named: dict[str, Any] | None = None) -> str:
    hashed: Any = list(args) if not named else [list(args), named]
    packed = msgpack_encode(sorted_maps(hashed))
    return function + ":" + hashlib.sha256(packed).hexdigest()[:32]


def templates_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def render(
        name: str, template: str, args: list[Any], named: dict[str, Any] | None = None
    ) -> None:
        named = named or {}
        case: dict[str, Any] = {
            "name": name,
            "kind": "template",
            "template": template,
            "args": [to_typed(a) for a in args],
            "named": {k: to_typed(named[k]) for k in sorted(named, key=utf8_key)},
        }
        try:
            case["key"] = render_template(template, args, named)
        except TemplateError as exc:
            case["error"] = exc.kind
        cases.append(case)

    def default(
        name: str, function: str, args: list[Any], named: dict[str, Any] | None = None
    ) -> None:
        named = named or {}
        cases.append(
            {
                "name": name,
                "kind": "default",
                "function": function,
                "args": [to_typed(a) for a in args],
                "named": {k: to_typed(named[k]) for k in sorted(named, key=utf8_key)},
                "key": call_key(function, args, named),
            }
        )

    render("positional-int", "user:{0}", [42])
    render("positional-str", "user:{0}", ["ada"])
    render("two-positional", "{0}:{1}", ["a", "b"])
    render("reordered", "{1}-{0}", ["a", "b"])
    render("repeated", "{0}/{0}", [7])
    render("named", "user:{id}:{lang}", [], {"id": 42, "lang": "en"})
    render("named-and-positional", "{0}:{lang}", ["x"], {"lang": "fr"})
    render("spaces-in-placeholder", "user:{ 0 }", [5])
    render("literal-only", "constant", [1, 2])
    render("empty-template", "", [])
    render("escaped-braces", "{{literal}}:{0}", [1])
    render("escaped-close", "a}}b", [])
    render("negative-int", "n:{0}", [-17])
    render("big-uint", "n:{0}", [2**64 - 1])
    render("min-int", "n:{0}", [-(2**63)])
    render("float", "f:{0}", [1.5])
    render("float-integral", "f:{0}", [1.0])
    render("float-small", "f:{0}", [1e-7])
    render("float-large", "f:{0}", [1e21])
    render("float-nan", "f:{0}", [math.nan])
    render("float-inf", "f:{0}", [math.inf])
    render("bool-true", "b:{0}", [True])
    render("bool-false", "b:{0}", [False])
    render("nil", "n:{0}", [None])
    render("bytes", "b:{0}", [b"\x00\x01\xfe\xff"])
    render("empty-bytes", "b:{0}", [b""])
    render("empty-str", "s:{0}:", [""])
    render("unicode-str", "u:{0}", ["日本語 🦀"])
    render("str-with-braces", "s:{0}", ["{x}"])
    render("str-with-colon", "s:{0}", ["a:b:c"])
    render("array", "a:{0}", [[1, "two", None]])
    render("nested-array", "a:{0}", [[[1], [2, [3]]]])
    render("map-sorted", "m:{0}", [{"b": 1, "a": 2, "é": 3, "B": 4}])
    render("map-nested", "m:{0}", [{"x": {"y": [True, 1.5]}}])
    render("array-with-bytes", "a:{0}", [[b"\x01"]])
    render("array-with-nan", "a:{0}", [[math.nan]])
    render("missing-index", "user:{1}", [1])
    render("missing-name", "user:{id}", [1])
    render("no-args", "user:{0}", [])
    render("unclosed", "user:{0", [1])
    render("stray-close", "user:0}", [1])
    render("empty-placeholder", "user:{}", [1])
    render("nested-open", "user:{a{b}}", [1])
    render("index-leading-zero", "{00}", ["z"])
    render("long-template", "tenant:{0}:user:{1}:page:{2}:lang:{3}", ["acme", 9, 3, "de"])
    render("map-with-unicode-keys", "m:{0}", [{"ü": 1, "u": 2}])
    render("string-escapes-in-array", "a:{0}", [['q"uote', "back\\slash", "nl\n"]])
    render("int-zero", "{0}", [0])
    render("named-unicode", "{ключ}", [], {"ключ": "значение"})
    render("named-missing-with-positional", "{0}:{x}", [1], {"y": 2})
    default("default-no-args", "get_config", [])
    default("default-int", "get_user", [42])
    default("default-str", "get_user", ["ada"])
    default("default-two", "price", ["EUR", 19.99])
    default("default-nil", "f", [None])
    default("default-bytes", "f", [b"\x00\xff"])
    default("default-map", "search", [{"q": "rust", "page": 2}])
    default("default-map-order", "search", [{"page": 2, "q": "rust"}])
    default("default-nested", "f", [[1, [2, [3]]], {"a": {"b": None}}])
    default("default-unicode", "überprüfen", ["日本"])
    default("default-big", "f", [2**64 - 1, -(2**63)])
    default("default-bool", "f", [True, False])
    default("default-float-integral", "f", [1.0])
    # Named arguments (Python **kwargs): hashed as [positional, named], names in byte order.
    default("default-named", "export", [1], {"fmt": "pdf"})
    default("default-named-other", "export", [1], {"fmt": "csv"})
    default("default-named-order", "export", [1], {"z": 1, "a": 2})
    default("default-named-only", "export", [], {"fmt": "pdf"})
    default("default-named-unicode", "export", ["x"], {"ü": [1, {"b": None}], "a": b"\x01"})
    return cases


# ---------------------------------------------------------------------------
# The stampede lock (FORMAT.md §6)
# ---------------------------------------------------------------------------

LOCK_SCRIPTS = {
    "release": (
        "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
        "  redis.call('DEL', KEYS[1])\n"
        "  return 1\n"
        "end\n"
        "return 0\n"
    ),
    "write": (
        "if redis.call('GET', KEYS[2]) ~= ARGV[1] then\n"
        "  return 0\n"
        "end\n"
        "if ARGV[3] == '0' then\n"
        "  redis.call('SET', KEYS[1], ARGV[2])\n"
        "else\n"
        "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
        "end\n"
        "redis.call('DEL', KEYS[2])\n"
        "return 1\n"
    ),
}


def is_lock_token(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def lock_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for name, text in LOCK_SCRIPTS.items():
        cases.append(
            {
                "name": f"script-{name}",
                "kind": "script",
                "script": name,
                "text": text,
                "sha1": hashlib.sha1(text.encode("utf-8")).hexdigest(),
            }
        )
    keys = [
        "user:1",
        "a",
        "ü",
        "🦀",
        "{x}",
        "a{b}c",
        "}lead",
        "x" * 200,
        "x" * 201,
        "with space",
        "tab\t",
        "colon:colon",
        "{",
        "}",
        "{}",
        "k" * 1000,
    ]
    spaces = [("pc", "default"), ("app", "users"), ("p", "n")]
    for i, key in enumerate(keys):
        for prefix, namespace in spaces:
            rk = redis_key(prefix, namespace, key, 200)
            lk = rk + ":lock"
            assert slot(lk.encode("utf-8")) == slot(rk.encode("utf-8"))
            cases.append(
                {
                    "name": f"lock-key-{i}-{prefix}-{namespace}",
                    "kind": "lock-key",
                    "prefix": prefix,
                    "namespace": namespace,
                    "key": key,
                    "redisKey": rk,
                    "lockKey": lk,
                    "slot": slot(lk.encode("utf-8")),
                }
            )
    tokens = [
        ("0123456789abcdef0123456789abcdef", True),
        ("ffffffffffffffffffffffffffffffff", True),
        ("00000000000000000000000000000000", True),
        ("0123456789ABCDEF0123456789abcdef", False),
        ("0123456789abcdef0123456789abcde", False),
        ("0123456789abcdef0123456789abcdef0", False),
        ("0123456789abcdeg0123456789abcdef", False),
        ("", False),
        (" 123456789abcdef0123456789abcdef", False),
        ("0123456789abcdef-123456789abcdef", False),
    ]
    for i, (text, valid) in enumerate(tokens):
        assert is_lock_token(text) == valid
        cases.append({"name": f"token-{i}", "kind": "token", "token": text, "valid": valid})
    for attempt in [0, 1, 2, 3, 4, 5, 6, 7, 20, 4294967295]:
        cases.append(
            {
                "name": f"poll-delay-{attempt}",
                "kind": "poll-delay",
                "attempt": attempt,
                "ms": min(1 << min(attempt, 16), 32),
            }
        )
    return cases


# ---------------------------------------------------------------------------
# Early refresh (FORMAT.md §7)


def should_refresh_early(
    now: int, fresh_until: int, delta: int, beta: float, random: float
) -> bool:
    if fresh_until == 0 or not beta > 0 or not 0 <= random < 1:
        return False
    return now - delta * beta * math.log1p(-random) >= fresh_until


def xfetch_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def case(name: str, now: int, fresh_until: int, delta: int, beta: float, random: float) -> None:
        refresh = should_refresh_early(now, fresh_until, delta, beta, random)
        cases.append(
            {
                "name": name,
                "now": now,
                "freshUntil": fresh_until,
                "delta": delta,
                "beta": beta,
                "random": random,
                "refresh": refresh,
            }
        )

    base = 1_700_000_000_000
    case("no-fresh-window", base, 0, 100, 1.0, 0.99)
    case("beta-zero", base, base + 1, 100, 0.0, 0.99)
    case("beta-negative", base, base + 1, 100, -1.0, 0.99)
    case("random-one", base, base + 1, 100, 1.0, 1.0)
    case("random-negative", base, base + 1, 100, 1.0, -0.1)
    case("random-zero-before", base, base + 1, 100, 1.0, 0.0)
    case("random-zero-at", base + 1, base + 1, 100, 1.0, 0.0)
    case("already-stale", base + 5, base + 1, 0, 1.0, 0.5)
    case("delta-zero-before", base, base + 1, 0, 1.0, 0.999)
    # gap = delta * beta * -ln(1 - random); -ln(0.5) = 0.693...
    case("half-gap-short", base, base + 100, 100, 1.0, 0.5)
    case("half-gap-covers", base, base + 60, 100, 1.0, 0.5)
    case("beta-two-covers", base, base + 100, 100, 2.0, 0.5)
    case("tiny-random", base, base + 1, 10_000, 1.0, 1e-9)
    case("large-random", base, base + 50_000, 10_000, 1.0, 0.999999)
    # A fixed linear congruential sequence (no library randomness: same cases everywhere).
    state = 7

    def draw(n: int) -> int:
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return (state >> 33) % n

    n = 0
    while n < 80:
        fresh_until = base + 1 + draw(120_000)
        delta = [0, 1, 5, 50, 200, 1_000, 5_000, 30_000][draw(8)]
        beta = [0.5, 1.0, 1.5, 2.0, 3.0][draw(5)]
        now = fresh_until - draw(int(delta * beta * 2) + 2)
        r = draw(1_000_000) / 1_000_000
        gap = -delta * beta * math.log1p(-r)
        if abs(now + gap - fresh_until) < 1e-3 and gap != 0:
            continue
        case(f"random-{n}", now, fresh_until, delta, beta, r)
        n += 1
    return cases


def main() -> None:
    write("envelope.json", envelope_cases())
    write("keys.json", keys_cases())
    write("ring.json", ring_cases())
    write("templates.json", templates_cases())
    write("hostile.json", hostile_cases())
    write("urls.json", urls_cases())
    write("lock.json", lock_cases())
    write("xfetch.json", xfetch_cases())


if __name__ == "__main__":
    main()
