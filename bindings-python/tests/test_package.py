"""The installed package: abi3 module, typed, and the README's Python examples run."""

from __future__ import annotations

import re
from pathlib import Path

import polycache

README = Path(__file__).resolve().parents[2] / "README.md"


def test_native_module_is_abi3_and_typed() -> None:
    native = Path(polycache._native.__file__)
    assert native.name.endswith(".abi3.so"), native.name
    assert (native.parent / "py.typed").exists()
    assert (native.parent / "_native.pyi").exists()


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.S)
    assert blocks, "the README has Python examples"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
