"""Test formats users write, read into `TestCase`s: `read_tests(value)` recognises each by its shape.

- LiveCodeBench: a list of `{input, output, testtype: "stdin" | "functional"}`; functional inputs
  are one JSON value per line, called as `fn_name` (a `class Solution` method or a function).
- TACO / APPS: `input_output = {inputs, outputs, fn_name?}` (no `fn_name`: stdin).
- open-r1: `verification_info = {language, test_cases: [{input, output, type}]}`.
- HumanEval / MBPP: `{test, entry_point}`, test code defining `check(candidate)` (called on the entry
  point unless the test calls something itself, as MBPP's do).
- Ours: a list of `{kind, input, expected, name?, wrapped?}` (`dump_tests` writes it).

A value may be the JSON text of any of these. Stdin and call tests run after `LCB_PRELUDE`, the
imports LiveCodeBench's grader puts before every program.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .runner import TestCase

LCB_PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)
"""LiveCodeBench's `import_string`: what its grader runs before each program (so `List`, `deque`,
`gcd` ... need no import)."""


class TestFormatError(ValueError):
    """A tests value in no known format, or a test that cannot be read."""

    __test__ = False  # not a pytest class, whatever its name


def prelude_for(tests: Sequence[TestCase]) -> str:
    """`LCB_PRELUDE` for stdin/call tests (the competitive-programming graders' convention), none
    for assert tests (HumanEval's harness adds nothing)."""
    return LCB_PRELUDE if any(t.kind != "assert" for t in tests) else ""


def _json_lines(text: str) -> str:
    """LiveCodeBench's functional input (one JSON value per line) as a JSON list of arguments."""
    return json.dumps([json.loads(line) for line in text.split("\n") if line.strip()])


def livecodebench(tests: Sequence[dict[str, Any]], fn_name: str | None = None) -> list[TestCase]:
    """LiveCodeBench `{input, output, testtype}` tests; functional ones call `fn_name`."""
    out = []
    for test in tests:
        if test.get("testtype") == "functional":
            if not fn_name:
                raise TestFormatError("a LiveCodeBench functional test needs fn_name (the method to call)")
            out.append(TestCase("call", _json_lines(test["input"]), test["output"], fn_name))
        else:
            out.append(TestCase("stdin", test["input"], test["output"]))
    return out


def taco(input_output: dict[str, Any]) -> list[TestCase]:
    """TACO / APPS `{inputs, outputs, fn_name?}`: calls of `fn_name` (inputs are argument lists), else
    stdin (an input or output given as a list of lines is joined)."""
    name = input_output.get("fn_name")
    pairs = zip(input_output["inputs"], input_output["outputs"], strict=True)
    if name:
        return [TestCase("call", json.dumps(i), json.dumps(o), name, wrapped=True) for i, o in pairs]
    lines = lambda v: "\n".join(map(str, v)) if isinstance(v, list) else str(v)  # noqa: E731
    return [TestCase("stdin", lines(i), lines(o)) for i, o in pairs]


def open_r1(verification_info: dict[str, Any]) -> list[TestCase]:
    """open-r1 `{language, test_cases: [{input, output, type: "stdin_stdout"}]}` (Python only here)."""
    language = str(verification_info.get("language", "python")).lower()
    if language not in ("python", "py", "python3"):
        raise TestFormatError(f"tests in {language!r}: the local runner runs Python only; plug a Sandbox for other "
                              "languages")
    cases = verification_info["test_cases"]
    if any(c.get("type", "stdin_stdout") != "stdin_stdout" for c in cases):
        raise TestFormatError("open-r1 test_cases of a type other than stdin_stdout are not supported")
    return [TestCase("stdin", c["input"], c["output"]) for c in cases]


def _calls_itself(test: str) -> bool:
    """Whether test code makes a top-level call (MBPP's `test_check()`), so nothing is appended."""
    try:
        body = ast.parse(test).body
    except SyntaxError:
        return False
    return any(isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) for node in body)


def assertion(test: str, entry_point: str | None = None) -> list[TestCase]:
    """HumanEval / MBPP test code, with `check(entry_point)` appended where the test defines `check`
    and calls nothing itself."""
    if entry_point and not _calls_itself(test) and "def check(" in test:
        test = f"{test}\ncheck({entry_point})\n"
    return [TestCase("assert", test, name=entry_point)]


def read_tests(value: Any, fn_name: str | None = None) -> list[TestCase]:
    """Tests in any format above (or its JSON text); `fn_name` for LiveCodeBench functional tests.
    Raises `TestFormatError` naming what it saw."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TestFormatError(f"tests text is not JSON ({exc})") from exc
    if isinstance(value, dict):
        for key in ("input_output", "verification_info"):
            if key in value:
                return read_tests(value[key], fn_name)
        if "test_cases" in value:
            return open_r1(value)
        if "inputs" in value and "outputs" in value:
            return taco(value)
        if "test" in value:
            return assertion(value["test"], value.get("entry_point"))
    if isinstance(value, list) and all(isinstance(t, dict) for t in value):
        if all("kind" in t for t in value):
            return [TestCase(**t) for t in value]
        if all("input" in t and "output" in t for t in value):
            return livecodebench(value, fn_name)
    raise TestFormatError(f"tests in no known format (LiveCodeBench, TACO/APPS, open-r1, HumanEval/MBPP): "
                          f"{json.dumps(value, default=str)[:120]}")


def dump_tests(tests: Sequence[TestCase]) -> str:
    """`tests` as JSON text in our own format (what presets store in the `tests` column)."""
    return json.dumps([{k: v for k, v in asdict(t).items() if v not in (None, False)} for t in tests])
