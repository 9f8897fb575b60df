"""`polycache.contract` against tests/vectors/contract.json: every described function (and
the ring) exists with those parameter names, order, kinds and types, in the module and in
its stub, nothing else is exported, and each example call gives its result."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import polycache
from polycache import contract

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = json.loads((ROOT / "tests/vectors/contract.json").read_text())
STUB = ast.parse((ROOT / "bindings-python/python/polycache/_native.pyi").read_text())
FUNCTIONS: list[dict[str, Any]] = DOC["functions"]
CLASSES: list[dict[str, Any]] = DOC["classes"]


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def spelling(type_name: str) -> str:
    return str(DOC["types"][type_name]["python"])


def expected_params(described: list[dict[str, Any]]) -> list[tuple[str, str, str, Any]]:
    """(name, kind, annotation, default) per Python parameter; `inspect._empty` = none."""
    out: list[tuple[str, str, str, Any]] = []
    empty = inspect.Parameter.empty
    for p in described:
        if spelling(p["type"]) == "keywords":
            # A record of options: one keyword-only argument per field, with its default.
            for field in DOC["records"][p["type"]]:
                annotation = DOC["field_types"][field["type"]]["python"]
                out.append((field["name"], "KEYWORD_ONLY", annotation, field["default"]))
        elif p.get("optional"):
            out.append((p["name"], "POSITIONAL_OR_KEYWORD", f"{spelling(p['type'])} | None", None))
        else:
            out.append((p["name"], "POSITIONAL_OR_KEYWORD", spelling(p["type"]), empty))
    return out


def runtime_params(fn: Any) -> list[tuple[str, str, Any]]:
    params = inspect.signature(fn).parameters.values()
    return [(p.name, p.kind.name, p.default) for p in params if p.name not in ("self", "cls")]


def stub_function(name: str, body: list[ast.stmt] = STUB.body) -> ast.FunctionDef:
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"{name} is not in _native.pyi")


def stub_class(name: str) -> ast.ClassDef:
    for node in STUB.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"class {name} is not in _native.pyi")


def stub_params(fn: ast.FunctionDef) -> list[tuple[str, str, str]]:
    """(name, kind, annotation) of a stub's parameters, without self and cls."""
    args = [(a, "POSITIONAL_OR_KEYWORD") for a in fn.args.posonlyargs + fn.args.args]
    args += [(a, "KEYWORD_ONLY") for a in fn.args.kwonlyargs]
    return [
        (a.arg, kind, ast.unparse(a.annotation) if a.annotation else "")
        for a, kind in args
        if a.arg not in ("self", "cls")
    ]


def check_params(
    what: str, fn: Any, stub: ast.FunctionDef, described: list[dict[str, Any]]
) -> None:
    want = expected_params(described)
    got_runtime = runtime_params(fn)
    assert [(n, k) for n, k, _ in got_runtime] == [(n, k) for n, k, _, _ in want], what
    for (name, _, default), (_, _, _, want_default) in zip(got_runtime, want, strict=True):
        # PyO3 writes a Vec default as `...`; every other default is spelled out.
        if default is not Ellipsis:
            assert default == want_default, f"{what}: default of {name}"
    got_stub = stub_params(stub)
    assert got_stub == [(n, k, a) for n, k, a, _ in want], f"{what} in _native.pyi"


def check_result(what: str, stub: ast.FunctionDef, result: str) -> None:
    assert stub.returns is not None, what
    assert ast.unparse(stub.returns) == spelling(result), f"{what}: result in _native.pyi"


def test_the_module_exports_exactly_the_contract() -> None:
    names = {f["name"] for f in FUNCTIONS} | {class_name(c["name"]) for c in CLASSES}
    assert set(contract.__all__) == names
    for name in names:
        assert getattr(contract, name) is getattr(polycache._native, name)


@pytest.mark.parametrize("described", FUNCTIONS, ids=lambda f: f["name"])
def test_function_signature(described: dict[str, Any]) -> None:
    name = described["name"]
    assert hasattr(contract, name), f"polycache.contract.{name} is missing"
    stub = stub_function(name)
    check_params(name, getattr(contract, name), stub, described["params"])
    check_result(name, stub, described["result"])


@pytest.mark.parametrize("described", CLASSES, ids=lambda c: c["name"])
def test_class_signature(described: dict[str, Any]) -> None:
    name = class_name(described["name"])
    cls = getattr(contract, name)
    stub = stub_class(name)
    for m in described["methods"]:
        kind = m["kind"]
        if kind == "constructor":
            check_params(f"{name}()", cls, stub_function("__new__", stub.body), m["params"])
        elif kind == "length":
            length = stub_function("__len__", stub.body)
            assert callable(cls.__len__)
            assert length.returns is not None
            assert ast.unparse(length.returns) == spelling(m["result"]), f"len({name})"
        else:
            what = f"{name}.{m['name']}"
            assert hasattr(cls, m["name"]), f"{what} is missing"
            method = stub_function(m["name"], stub.body)
            check_params(what, getattr(cls, m["name"]), method, m["params"])
            check_result(what, method, m["result"])


def argument(type_name: str, v: Any) -> Any:
    """A described example argument as Python passes it."""
    if type_name == "bytes":
        return bytes.fromhex(v["hex"])
    if type_name == "nodes":
        return [(n["name"], n["weight"]) for n in v]
    return v


def plain(type_name: str, v: Any) -> Any:
    """A result in the description's JSON form, after checking its Python type."""
    origin = spelling(type_name).split("[")[0]
    classes = {
        "str": str,
        "bytes": bytes,
        "int": int,
        "dict": dict,
        "list": list,
        "bool": bool,
        "float": float,
    }
    if origin != "Any":
        assert isinstance(v, classes[origin]), f"{type_name}: {v!r}"
    if type_name == "bytes":
        return {"hex": v.hex()}
    if type_name == "points":
        return [list(p) for p in v]
    return v


def call(fn: Any, params: list[dict[str, Any]], args: list[Any]) -> Any:
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for p, v in zip(params, args, strict=True):
        if spelling(p["type"]) == "keywords":
            keywords.update(v)
        else:
            positional.append(argument(p["type"], v))
    return fn(*positional, **keywords)


@pytest.mark.parametrize("described", FUNCTIONS, ids=lambda f: f["name"])
def test_function_example(described: dict[str, Any]) -> None:
    example = described["example"]
    got = call(getattr(contract, described["name"]), described["params"], example["args"])
    assert plain(described["result"], got) == example["result"]


@pytest.mark.parametrize("described", CLASSES, ids=lambda c: c["name"])
def test_class_example(described: dict[str, Any]) -> None:
    methods = {m["kind"] if m["kind"] != "method" else m["name"]: m for m in described["methods"]}
    cls = getattr(contract, class_name(described["name"]))
    instance = call(cls, methods["constructor"]["params"], described["example_args"])
    for m in described["methods"]:
        if m["kind"] == "constructor":
            continue
        if m["kind"] == "length":
            got = len(instance)
        else:
            got = call(getattr(instance, m["name"]), m["params"], m["example"]["args"])
        assert plain(m["result"], got) == m["example"]["result"], m["name"]
