"""Correctness labels: `verify(traces)` checks each trace's final answer against its reference.

The method is picked per row from what the reference looks like (`answers.reference_method`):
math-verify, normalized strings, multiple-choice letters, or a `Judge` object for free-form
references; rows without a reference are judged by majority vote over a problem's samples. Rows
that carry tests (a `tests` column) are programs: `natural_thoughts.code.verify_code` runs them. The
answer logic itself lives in `answers` (its names are re-exported here); an LLM judge is built in
`natural_thoughts.annotate` (`build_judge`, `LLMJudge`) and passed in, so this module stays low.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from .answers import (
    FREEFORM_WORDS,
    METHODS,
    Judge,
    Method,
    ask_judge,
    choice_letter,
    equivalent,
    majority_vote,
    normalize_answer,
    reference_method,
)
from .schema import require_columns

__all__ = [
    "FREEFORM_WORDS", "METHODS", "UNDECIDED_METHODS", "Method", "choice_letter", "equivalent",
    "majority_vote", "normalize_answer", "reference_method", "verify",
]

UNDECIDED_METHODS: tuple[str, ...] = ("no_answer", "no_judge", "no_majority")
"""`label.correct_method` values of rows left undecided (`label.correct` null), saying why."""


def verify(traces: Any, judge: Judge | None = None, answer_column: str = "final_answer",
           reference_column: str = "reference_answer", group_column: str = "problem_id",
           question_column: str = "problem", method: str | None = None, tests_column: str = "tests",
           **code_options: Any) -> Dataset:
    """`traces` with `label.correct` (True / False / None) and `label.correct_method`.

    Each row with a reference is checked by the method its reference calls for
    (`reference_method`); free-form references go to `judge` (a `Judge`, e.g.
    `natural_thoughts.annotate.build_judge("meta-llama/Llama-3.1-8B-Instruct")`) with their question,
    or stay undecided ("no_judge") without one. Rows without a reference are judged by majority vote
    over the samples of their `group_column` ("majority", or "no_majority" when there is no clear
    majority). A row without a final answer is undecided ("no_answer"), never guessed.

    Rows with a `tests_column` value (every row with `method="code"`) are programs run against their
    tests (`natural_thoughts.code.verify_code`, given `code_options`: limits, sandbox, ...), with
    `label.correct_method` "code"; their other columns (`score.pass_rate`, `label.failure_kind`, ...)
    stay None on the other rows.
    """
    if judge is not None and not isinstance(judge, Judge):
        raise TypeError(f"verify: judge must be None or a Judge (an object with .equivalent(pairs, questions=None, "
                        f"references=None)), got {type(judge).__name__} {judge!r:.80}; build an LLM judge from a "
                        "model name or settings with natural_thoughts.annotate.build_judge(...)")
    from .load.sources import load_traces

    ds = traces if isinstance(traces, Dataset) else load_traces(traces)
    if method not in (None, "code"):
        raise ValueError(f"verify: method must be None (chosen per row) or 'code', got {method!r}")
    if method == "code":
        require_columns(ds.column_names, [tests_column], "verify (method: code)")
    tests = ds[tests_column] if tests_column in ds.column_names else [None] * len(ds)
    code_rows = [i for i, t in enumerate(tests) if t is not None or method == "code"]
    if code_rows:
        return _with_code(ds, code_rows, judge, answer_column, reference_column, group_column, question_column,
                          tests_column, code_options)
    require_columns(ds.column_names, [answer_column], "verify")
    answers = ds[answer_column]
    refs = ds[reference_column] if reference_column in ds.column_names else [None] * len(ds)
    methods = [reference_method(r) for r in refs]
    correct: list[bool | None] = [None] * len(ds)
    used: list[str] = [""] * len(ds)
    for i, (a, r, m) in enumerate(zip(answers, refs, methods)):
        if m is None or m == "llm":
            continue
        if normalize_answer(a) is None:
            used[i] = "no_answer"
        else:
            correct[i], used[i] = equivalent(a, r, m), m  # type: ignore[arg-type]
    _judge_freeform(ds, judge, answers, refs, methods, correct, used, question_column)
    _vote(ds, answers, methods, correct, used, group_column)
    for col in ("label.correct", "label.correct_method"):
        if col in ds.column_names:
            ds = ds.remove_columns(col)
    return ds.add_column("label.correct", correct).add_column("label.correct_method", used)


def _with_code(ds: Dataset, code_rows: list[int], judge: Judge | None, answer_column: str, reference_column: str,
               group_column: str, question_column: str, tests_column: str, code_options: dict[str, Any]) -> Dataset:
    """The code rows' verdicts from running their programs; the other rows' from their answers."""
    from .code import verify_code

    if len(code_rows) == len(ds):
        return verify_code(ds, tests_column=tests_column, **code_options)
    checked = verify_code(ds.select(code_rows), tests_column=tests_column, **code_options)
    code_set = set(code_rows)
    rest = [i for i in range(len(ds)) if i not in code_set]
    answered = verify(ds.select(rest), judge, answer_column, reference_column, group_column, question_column)
    position = {row: ("code", k) for k, row in enumerate(code_rows)} | {row: ("rest", k) for k, row in enumerate(rest)}
    columns = [c for c in checked.column_names if c not in ds.column_names or c.startswith(("label.", "score."))]
    merged = {}
    for name in columns:
        code_values = checked[name]
        rest_values = answered[name] if name in answered.column_names else [None] * len(rest)
        merged[name] = [code_values[k] if side == "code" else rest_values[k]
                        for side, k in (position[i] for i in range(len(ds)))]
    ds = ds.remove_columns([c for c in merged if c in ds.column_names])
    for name, values in merged.items():
        ds = ds.add_column(name, values)
    return ds


def _judge_freeform(ds: Dataset, judge: Judge | None, answers: list[str | None], refs: list[str | None],
                    methods: list[str | None], correct: list[bool | None], used: list[str],
                    question_column: str) -> None:
    """Rows with a free-form reference: asked of the judge in one batch, or left undecided."""
    rows = [i for i, m in enumerate(methods) if m == "llm"]
    answered = [i for i in rows if normalize_answer(answers[i]) is not None]
    for i in set(rows) - set(answered):
        used[i] = "no_answer"
    if judge is None:
        for i in answered:
            used[i] = "no_judge"
        return
    questions = ds[question_column] if question_column in ds.column_names else None
    verdicts = ask_judge(judge, [(answers[i], refs[i]) for i in answered],
                         questions=None if questions is None else [questions[i] for i in answered], what="verify")
    for i, v in zip(answered, verdicts):
        correct[i], used[i] = v, "llm"


def _vote(ds: Dataset, answers: list[str | None], methods: list[str | None], correct: list[bool | None],
          used: list[str], group_column: str) -> None:
    """Rows without a reference: majority vote within their group (self-consistency)."""
    rows = [i for i, m in enumerate(methods) if m is None]
    if not rows:
        return
    require_columns(ds.column_names, [group_column], "verify (rows without a reference are voted per group, so)")
    keys = ds[group_column]
    groups: dict[Any, list[int]] = {}
    for i in rows:
        groups.setdefault(keys[i], []).append(i)
    for members in groups.values():
        for i, v in zip(members, majority_vote([answers[i] for i in members])):
            correct[i] = v
            answered = normalize_answer(answers[i]) is not None
            used[i] = "no_answer" if not answered else "majority" if v is not None else "no_majority"
