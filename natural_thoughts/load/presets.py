"""Known source layouts (presets): how a file's columns map onto ours, and the fixes each needs.

`load_problems(..., preset=NAME)` and `load_traces(..., preset=NAME)` read these registries; add a
layout with `PROBLEM_PRESETS.register(Preset(...), name=...)`, or from another package through the
entry-point groups `natural_thoughts.problem_presets` / `natural_thoughts.trace_presets`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from datasets import Dataset

from ..code.formats import assertion, dump_tests, livecodebench
from ..code.runner import TestCase
from ..registry import Registry
from ..schema import trace_id

EVALUATOR_CORRECT = "label.evaluator_correct"
"""An imported file's own verdict on each trace (e.g. a benchmark evaluator's), kept beside ours."""


class BadRow(ValueError):
    """One row that cannot become a problem/trace; raised or skipped according to `on_error`."""


def _first(value: Any) -> Any:
    """The first item of a list (SkyThought and natural_reasoning keep outputs in lists)."""
    return (value[0] if value else None) if isinstance(value, list) else value


def _gsm8k(out: dict[str, Any]) -> None:
    """Reference answer = the text after the last '####'; the full solution goes to `extra`."""
    full = out["reference_answer"]
    if not isinstance(full, str) or "####" not in full:
        raise BadRow("gsm8k answer has no '#### <final answer>' line")
    out["reference_answer"] = full.rsplit("####", 1)[1].strip()
    out["extra"]["solution"] = full


def _natural_reasoning(out: dict[str, Any]) -> None:
    """The first listed response (another model's) becomes `weak_answer` / `weak_model`."""
    first = _first(out.pop("responses")) or {}
    out["weak_answer"], out["weak_model"] = first.get("response"), first.get("response_model")


def _stripped_from(gt: Any, answer: Any) -> bool:
    """Whether SkyThought's `gt` is the benchmark's one-line `answer` with characters deleted (spaces,
    LaTeX spacing), at least half of them kept: its stripped copy, which sometimes loses content
    ("(a + 5)(b + 2)" → "(+5)(b+2)", "\\text{east}" → ""). A `gt` taken out of a worked solution
    (GSM8K's "… #### 72" → "72") or from another field (an option index) is not one."""
    if not isinstance(gt, str) or not isinstance(answer, str) or "\n" in answer.strip() or "####" in answer:
        return False
    squeezed = "".join(answer.split())
    rest = iter(squeezed)
    return not gt or (all(char in rest for char in gt) and 2 * len(gt) >= len(squeezed))


def _skythought(out: dict[str, Any]) -> None:
    """SkyThought keeps one output and one verdict per list: take the first of each. The verdict is
    the benchmark evaluator's (`label.evaluator_correct`), kept apart from `verify`'s `label.correct`.
    The reference is `gt`, or the benchmark's own `answer` where `gt` is its stripped copy."""
    out["completion"], correct = _first(out["completion"]), _first(out[EVALUATOR_CORRECT])
    out[EVALUATOR_CORRECT] = None if correct is None else bool(correct)
    answer = out.pop("answer", None)
    if _stripped_from(out["reference_answer"], answer):
        out["reference_answer"] = answer


def _hidden_test(logged: dict[str, Any] | None, fn_name: str | None) -> TestCase | None:
    """The hidden test LiveCodeBench's grader logged for a failed program, where it is whole: a
    stdin input, or a LeetCode Python-literal list of arguments (a `...(truncated)` one is unusable)."""
    if not logged or logged.get("input") is None or logged.get("expected") is None:
        return None
    given, expected = str(logged["input"]), str(logged["expected"])
    if "(truncated)" in given or "(truncated)" in expected:
        return None
    if not fn_name:
        return TestCase("stdin", given, expected)
    try:
        arguments = ast.literal_eval(given)
        value = json.loads(expected)
    except (ValueError, SyntaxError):
        return None
    return TestCase("call", json.dumps(arguments), json.dumps(value), fn_name) if isinstance(arguments, list) else None


def _livecodebench(out: dict[str, Any]) -> None:
    """LiveCodeBench submissions: the statement's sample tests plus the hidden test the grader logged
    for a failed program become `tests`; a starter code (LeetCode's signature) is appended to the
    problem; the grader's verdict is `label.evaluator_correct`."""
    fn_name = out.get("fn_name") or None
    tests = livecodebench(out.pop("tests") or [], fn_name)
    hidden = _hidden_test(out.pop("hidden_failing_test", None), fn_name)
    out["tests"] = dump_tests(tests + ([hidden] if hidden else []))
    starter = (out.pop("starter_code", None) or "").strip()
    if starter:
        out["problem"] = f"{out['problem']}\n\nStarter code:\n```python\n{starter}\n```"
    if out.get(EVALUATOR_CORRECT) is not None:
        out[EVALUATOR_CORRECT] = bool(out[EVALUATOR_CORRECT])


def _reflexion(out: dict[str, Any]) -> None:
    """Reflexion's HumanEval/MBPP runs: the id is `task_id` (HumanEval) or `name` (MBPP); the
    solution becomes a fenced answer; the test code with its entry point becomes `tests`."""
    out["problem_id"] = out["problem_id"] or out.pop("name", None)
    out["completion"] = f"```python\n{out['completion']}\n```"
    out["tests"] = dump_tests(assertion(out.pop("test"), out["fn_name"]))
    out[EVALUATOR_CORRECT] = bool(out[EVALUATOR_CORRECT])


HUMAN_STAGE = re.compile(r"human_stage(\d+)")
"""A Nemotron-Math-HumanReasoning human-written solution type; its number orders the revisions."""


def _human_stage(solution_type: str) -> int | None:
    """n for `human_stage<n>`, None for a model's solution."""
    human = HUMAN_STAGE.fullmatch(solution_type)
    return int(human.group(1)) if human else None


def _nemotron_stages(traces: Dataset) -> Dataset:
    """Nemotron-Math-HumanReasoning's solution types (the `model` column) as refinement stages.

    Each trace's sample index follows its type (the human stages by number, then the others by
    name), so ids do not depend on the file's row order; the lineage columns chain each human stage
    to the same problem's nearest earlier one (`refine.nemotron` documents them). Two solutions of
    one type for one problem are an error naming the row.
    """
    from ..refine import lineage

    rows = traces.to_list()
    human_first = sorted({r["model"] for r in rows}, key=lambda t: (_human_stage(t) is None, _human_stage(t) or 0, t))
    order = {name: i for i, name in enumerate(human_first)}
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        if (key := (row["problem_id"], row["model"])) in seen:
            raise ValueError(f"row {i}: trace key (problem_id={key[0]!r}, solution_type={key[1]!r}) appears twice "
                             f"(first in row {seen[key]}); each problem has one solution of each type")
        seen[key] = i
        row.update(sample_index=order[row["model"]], trace_id=trace_id(row["problem_id"], order[row["model"]]))
    by_stage = {(r["problem_id"], n): r for r in rows if (n := _human_stage(r["model"])) is not None}
    for row in rows:
        stage = _human_stage(row["model"])
        earlier = [] if stage is None else sorted(n for pid, n in by_stage if pid == row["problem_id"] and n < stage)
        parent = by_stage[(row["problem_id"], earlier[-1])] if earlier else None
        row.update({
            lineage.PARENT: parent["trace_id"] if parent else None,
            lineage.STAGE: row["model"],
            lineage.STEP: 0 if stage is None else stage - 1,
            lineage.PROMPT_VERSION: None,
            lineage.PROMPT_SHA256: None,
            lineage.ANSWER_KEPT: lineage.same_answer(row["final_answer"], parent["final_answer"]) if parent else None,
            lineage.CORRECT: lineage.answer_correct(row),
        })
    fields = [*traces.features.arrow_schema, *lineage.LINEAGE_FIELDS]
    return Dataset(pa.Table.from_pylist(rows, schema=pa.schema(fields)))


@dataclass(frozen=True)
class Preset:
    """A known layout: `columns` maps our (or a `fix`-consumed) name to the source column;
    `optional` names source columns handed to `fix` under their own name when the source has them;
    `drop` names source columns that repeat mapped ones, left out of `extra`; `finish`, applied to
    the loaded rows as a whole, completes a layout whose rows depend on each other."""

    columns: dict[str, str]
    fix: Callable[[dict[str, Any]], None] | None = None
    drop: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    finish: Callable[[Dataset], Dataset] | None = None


PROBLEM_PRESETS: Registry[Preset] = Registry("problem_preset")
TRACE_PRESETS: Registry[Preset] = Registry("trace_preset")

PROBLEM_PRESETS.register(Preset(
    {"problem": "question", "reference_answer": "reference_answer", "responses": "responses"},
    _natural_reasoning,
), name="natural_reasoning")
PROBLEM_PRESETS.register(Preset({"problem": "question", "reference_answer": "answer"}, _gsm8k), name="gsm8k")
PROBLEM_PRESETS.register(Preset(
    {"problem": "problem", "reference_answer": "answer"} | {"problem_id": "unique_id", "domain": "subject"},
), name="math500")
LIVECODEBENCH_COLUMNS = {"problem": "question_content", "problem_id": "question_id",
                         "tests": "public_tests_from_statement", "fn_name": "fn_name"}
"""LiveCodeBench's problem columns; its submissions add the program, model and verdict."""
TRACE_PRESETS.register(Preset(
    {"problem": "question", "reference_answer": "gt"} | {"completion": "code", EVALUATOR_CORRECT: "score"},
    _skythought,
    drop=("gt_cot", "solution", "pred", "report"),
    optional=("answer",),
), name="skythought_eval")
TRACE_PRESETS.register(Preset(
    LIVECODEBENCH_COLUMNS | {"completion": "output", "model": "model", "sample_index": "sample_index",
                             EVALUATOR_CORRECT: "graded"},
    _livecodebench,
    drop=("code", "pass@1"),
    optional=("hidden_failing_test", "starter_code"),
), name="livecodebench")
TRACE_PRESETS.register(Preset(
    {"problem": "prompt", "problem_id": "task_id", "completion": "solution", "model": "run", "test": "test",
     "fn_name": "entry_point", EVALUATOR_CORRECT: "is_solved"},
    _reflexion,
    optional=("name",),
), name="reflexion")
TRACE_PRESETS.register(Preset(
    {"problem": "problem", "completion": "solution", "reference_answer": "expected_answer", "model": "solution_type"},
    finish=_nemotron_stages,
), name="nemotron_human_reasoning")
PROBLEM_PRESETS.register(Preset(
    LIVECODEBENCH_COLUMNS, _livecodebench, drop=("output", "code", "graded", "pass@1", "model", "sample_index"),
    optional=("hidden_failing_test", "starter_code"),
), name="livecodebench")
