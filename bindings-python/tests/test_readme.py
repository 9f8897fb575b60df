"""The README's Python examples run as written and print what their comments say.

An example is a fenced ```python block right after an `<!-- example: NAME -->` comment;
`<!-- example: NAME, redis -->` also runs it on the harness's standalone Redis (its
"memory://" replaced by the server's URL, its namespace made unique). A `print(...)` line
with a trailing comment (`print(x)  # 1 1 1`) must print that comment's text. Each example
runs as its own script, as a reader would run it. The Node examples are checked by
bindings-node/__test__/readme.test.js the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = re.compile(
    r"^<!-- example: ([\w-]+)(, redis)? -->\n```(\w+)\n(.*?)^```$", flags=re.S | re.M
)
# `print(...)  # expected output` at the start of a line.
PRINT = re.compile(r"^print\(.*\)\s+# (.*)$")
# The examples this suite must find: a lost marker fails here, not silently.
EXPECTED = {"quickstart", "async", "freshness"}


@dataclass
class Example:
    name: str
    code: str
    on_redis: bool


def examples(language: str, text: str) -> dict[str, Example]:
    found: dict[str, Example] = {}
    for name, redis, lang, code in EXAMPLE.findall(text):
        if lang != language:
            continue
        assert name not in found, f"two {language} examples named {name!r}"
        found[name] = Example(name, code, bool(redis))
    return found


def expected_output(code: str) -> list[str | None]:
    """Per top-level print, the line it must print (None: not stated)."""
    lines = []
    for line in code.splitlines():
        if line.startswith("print("):
            match = PRINT.match(line)
            lines.append(match.group(1).strip() if match else None)
    return lines


def run(example: Example, tmp_path: Path, code: str) -> None:
    script = tmp_path / f"readme_{example.name}.py"
    script.write_text(code, "utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, f"README example {example.name!r} failed:\n{done.stderr}"
    printed = done.stdout.splitlines()
    want = expected_output(code)
    assert len(printed) == len(want), (
        f"README example {example.name!r}: {len(want)} print lines, printed {printed!r}"
    )
    for got, line in zip(printed, want):
        if line is not None:
            assert got == line, f"README example {example.name!r} printed {got!r}, says {line!r}"


def on_redis(code: str, url: str) -> str:
    """The example pointed at `url`, in a namespace of its own."""
    assert code.count('"memory://"') == 1, "a Redis example names memory:// once"
    code = code.replace('"memory://"', repr(url).replace("'", '"'))
    suffix = uuid.uuid4().hex[:8]
    code, renamed = re.subn(r'namespace="([\w-]+)"', rf'namespace="\1-{suffix}"', code)
    assert renamed == 1, "a Redis example sets its namespace once"
    return code


FOUND = examples("python", README.read_text("utf-8"))


def test_the_readme_marks_its_examples() -> None:
    assert EXPECTED <= FOUND.keys(), f"marked Python examples: {sorted(FOUND)}"


@pytest.mark.parametrize("name", sorted(FOUND))
def test_example_runs_on_memory(name: str, tmp_path: Path) -> None:
    example = FOUND[name]
    run(example, tmp_path, example.code)


@pytest.mark.parametrize("name", sorted(n for n, e in FOUND.items() if e.on_redis))
def test_example_runs_on_redis(name: str, tmp_path: Path, endpoints: dict[str, Any]) -> None:
    example = FOUND[name]
    run(example, tmp_path, on_redis(example.code, str(endpoints["standalone"])))
