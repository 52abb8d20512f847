"""The code verifier: a trace's program run against its row's tests, as `label.*` / `score.*` columns.

`verify_code(traces)` takes the program from each trace's answer (`extract_program`), reads the
row's `tests` (any format of `formats.read_tests`), runs them through a `Sandbox` and writes
`label.correct` (every test passed), `score.pass_rate`, `label.tests_run`, `label.tests_passed`,
`label.failure_kind` and `label.failure` (JSON: input, expected, actual, message; each cut short).
With a `weak_answer` column the weak model's program runs on the same tests too: `label.weak_correct`
and `label.disagree` (the verdicts differ), which `ModelsDisagree` reads. Outcomes are cached per
program + tests + limits, so an interrupted or repeated run only executes what it has not seen.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from datasets import Dataset

from .. import cache
from .formats import TestFormatError, prelude_for, read_tests
from .runner import HARNESS, Failure, Limits, LocalSandbox, Outcome, Program, Sandbox

FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
"""A fenced block: its language tag and body (an unclosed last fence runs to the end)."""
CODE_COLUMNS: tuple[str, ...] = ("label.correct", "label.correct_method", "score.pass_rate", "label.tests_run",
                                 "label.tests_passed", "label.failure_kind", "label.failure")
WEAK_COLUMNS: tuple[str, ...] = ("label.weak_correct", "label.disagree")
CHUNK = 64
"""Programs run between two writes of the outcome cache (what an interruption can lose)."""


def last_fence(text: str | None) -> str | None:
    """The body of the last fenced block in `text` that is not tagged as another language's output."""
    bodies = [body for tag, body in FENCE.findall(text or "") if tag.lower() not in ("text", "output", "plaintext")]
    return bodies[-1].strip("\n") if bodies else None


def _defines(code: str, name: str) -> bool:
    """Whether `code` defines `name` (a function or a `Solution` method) at any depth."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
               for node in ast.walk(tree))


def extract_program(answer: str | None, prompt: str | None = None, name: str | None = None) -> str | None:
    """The program in a trace's answer: its last fenced block. When the tests call `name` and the
    block does not define it, the block is a body completing the signature in `prompt` (HumanEval
    style), and the prompt goes first. None when the answer holds no fenced block."""
    code = last_fence(answer)
    if code is None:
        return None
    if name and prompt and not _defines(code, name) and f"def {name}(" in prompt:
        return prompt.rstrip("\n") + "\n" + code
    return code


class _OutcomeCache:
    """Outcomes by key in one SQLite file of the cache folder (`cache.folder("code")`)."""

    def __init__(self, enabled: bool) -> None:
        self.db = sqlite3.connect(cache.folder("code") / "outcomes.sqlite") if enabled else None
        if self.db is not None:
            self.db.execute("CREATE TABLE IF NOT EXISTS outcome (key TEXT PRIMARY KEY, value TEXT)")

    def get(self, keys: Sequence[str]) -> dict[str, Outcome]:
        if self.db is None or not keys:
            return {}
        found: dict[str, Outcome] = {}
        for start in range(0, len(keys), 500):
            part = list(keys[start:start + 500])
            rows = self.db.execute(f"SELECT key, value FROM outcome WHERE key IN ({','.join('?' * len(part))})", part)
            for key, value in rows:
                data = json.loads(value)
                failure = data.pop("failure")
                found[key] = Outcome(**data, failure=Failure(**failure) if failure else None)
        return found

    def put(self, items: dict[str, Outcome]) -> None:
        if self.db is not None and items:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO outcome VALUES (?, ?)",
                                    [(k, json.dumps(asdict(o))) for k, o in items.items()])


def _key(program: Program, limits: Limits, sandbox: Sandbox, version: str) -> str:
    """What decides an outcome: the program, its tests, the limits, the sandbox and the harness."""
    text = json.dumps([program.code, program.prelude, [asdict(t) for t in program.tests], asdict(limits),
                       type(sandbox).__qualname__, version])
    return hashlib.sha256(text.encode()).hexdigest()


def run_cached(programs: Sequence[Program], limits: Limits, sandbox: Sandbox, use_cache: bool = True) -> list[Outcome]:
    """Each program's outcome: from the cache where known, else run (in chunks, each written to the
    cache as it finishes, so an interrupted run resumes)."""
    store = _OutcomeCache(use_cache)
    version = cache.code_version(str(HARNESS), str(HARNESS.with_name("runner.py")))
    keys = [_key(p, limits, sandbox, version) for p in programs]
    known = store.get(sorted(set(keys)))
    todo = list({k: p for k, p in zip(keys, programs) if k not in known}.items())
    for start in range(0, len(todo), CHUNK):
        part = todo[start:start + CHUNK]
        done = dict(zip((k for k, _ in part), sandbox.run([p for _, p in part], limits)))
        store.put(done)
        known.update(done)
    return [known[k] for k in keys]


def build_program(answer: str | None, prompt: str | None, tests: Any, fn_name: str | None = None,
                  completion: str | None = None) -> Program | str:
    """A trace's `Program` (its answer's program, its row's tests), or why there is none: "no_program",
    "bad_tests: ...". An answer without a fenced block gives way to the whole `completion` (the
    parser may read a bare program as a chain of thought and leave the answer part empty)."""
    try:
        cases = read_tests(tests, fn_name)
    except (TestFormatError, KeyError, TypeError, ValueError) as exc:
        return f"bad_tests: {exc}"
    if not cases:
        return "bad_tests: no tests"
    name = next((t.name for t in cases if t.name), None)
    text = answer if last_fence(answer) is not None or completion is None else completion
    code = extract_program(text, prompt, name)
    return Program(code, tuple(cases), prelude_for(cases)) if code is not None else "no_program"


def _failure_json(failure: Failure | None) -> str | None:
    if failure is None:
        return None
    return json.dumps({k: v for k, v in asdict(failure).items() if k != "kind"}, ensure_ascii=False)


def verify_code(traces: Dataset, limits: Limits | dict[str, Any] | None = None, sandbox: Sandbox | None = None,
                answer_column: str = "answer", tests_column: str = "tests", prompt_column: str = "problem",
                weak_column: str = "weak_answer", use_cache: bool = True) -> Dataset:
    """`traces` with the code verdict columns (`CODE_COLUMNS`, and `WEAK_COLUMNS` with a weak column).

    A row without a program in its answer is undecided (`label.correct_method` "no_program"), a row
    whose tests cannot be read says why ("bad_tests: ..."); both keep `label.correct` None and the
    run goes on. A row whose answer part holds no fenced block is read from its whole `completion`.
    `limits` may be a `Limits` or its fields as a dict (YAML: `verify: {options: {limits: {timeout: 2}}}`).
    """
    limits = Limits(**limits) if isinstance(limits, dict) else limits or Limits()
    sandbox = sandbox or LocalSandbox()
    n = len(traces)
    columns = traces.column_names
    answers = traces[answer_column] if answer_column in columns else [None] * n
    completions = traces["completion"] if "completion" in columns else [None] * n
    prompts = traces[prompt_column] if prompt_column in columns else [None] * n
    tests = traces[tests_column]
    names = traces["fn_name"] if "fn_name" in columns else [None] * n
    built = [build_program(a, p, t, f, c) for a, p, t, f, c in zip(answers, prompts, tests, names, completions)]
    weak = None
    if weak_column in columns:
        weak = [None if isinstance(b, str) else build_program(w, p, t, f)
                for b, w, p, t, f in zip(built, traces[weak_column], prompts, tests, names)]
    runnable = [b for b in built if isinstance(b, Program)] + [w for w in weak or [] if isinstance(w, Program)]
    outcomes = iter(run_cached(runnable, limits, sandbox, use_cache))
    mine = [next(outcomes) if isinstance(b, Program) else None for b in built]
    values: dict[str, list[Any]] = {c: [] for c in CODE_COLUMNS}
    for b, o in zip(built, mine):
        row = (o.correct, "code", o.pass_rate, o.run, o.passed, o.failure and o.failure.kind,
               _failure_json(o.failure)) if o else (None, b, None, None, None, None, None)
        for column, value in zip(CODE_COLUMNS, row):
            values[column].append(value)
    if weak is not None:
        theirs = [next(outcomes) if isinstance(w, Program) else None for w in weak]
        weak_correct, disagree = WEAK_COLUMNS
        values[weak_correct] = [o.correct if o else None for o in theirs]
        values[disagree] = [None if m is None or o is None else m.correct != o.correct for m, o in zip(mine, theirs)]
    traces = traces.remove_columns([c for c in values if c in columns])
    for column, value in values.items():
        traces = traces.add_column(column, value)
    return traces
