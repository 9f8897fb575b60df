"""The installed package: abi3 module, typed. (The README's examples: test_readme.py.)"""

from __future__ import annotations

from pathlib import Path

import polycache


def test_native_module_is_abi3_and_typed() -> None:
    native = Path(polycache._native.__file__)
    assert native.name.endswith(".abi3.so"), native.name
    assert (native.parent / "py.typed").exists()
    assert (native.parent / "_native.pyi").exists()
