"""`judge_agreement`: how well a reasoning judge finds wrong reasoning, measured on step-labelled data.

A labelled set is read through a preset of `LABELLED_SETS`: MR-Ben (`Model_Solution_Steps`, the
annotators' `Model_Solution_Correctness` and 1-based `Model_Solution_First_Error_Step`; in its coding
file a program, one step a line, and the first wrong line quoted) or
ProcessBench-style rows (`problem`, `steps`, `label`: the 0-based first wrong step, -1 for none).
The judge is the model-free `rule` (`steps.signal_steps`) or `llm`, the `ReasoningJudge` annotator
on any model and backend (resumable shards under `output_dir`). The report counts "the reasoning
has an error" calls against the labels (precision, recall, F1) and, where both name a step, how
often the judge's first wrong step is the labelled one: a user with a GPU learns in minutes whether
their judge model is good enough.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset

from ..llm.backends import DEFAULT_BACKEND
from ..steps import numbered_steps, signal_steps
from .reasoning import FIRST_ERROR_STEP, REASONING_OK, ReasoningJudge


def _mrben(row: dict[str, Any]) -> dict[str, Any]:
    """One MR-Ben row: the question with its options; the steps by their "Step N:" headers, or, for a
    coding row (a program, its first wrong line quoted), the program's non-empty lines."""
    options = (row.get("Options") or "").strip()
    wrong = row["Model_Solution_Correctness"] == "incorrect"
    solution, first = row["Model_Solution_Steps"], row["Model_Solution_First_Error_Step"]
    if isinstance(solution, str):
        steps = [line for line in solution.splitlines() if line.strip()]
        quoted = [n for n, line in enumerate(steps, 1) if line.strip() == str(first).strip()] if wrong else []
        step = quoted[0] if quoted else None  # a quoted line the program does not hold names no step
    else:
        steps, step = numbered_steps(solution), int(first) if wrong else None
    return {"trace_id": f"{row['Question_UUID']}/{row['Sampled_Model']}",
            "problem": f"{row['Question']}\n\nOptions:\n{options}" if options else row["Question"],
            "steps": steps, "has_error": wrong, "first_error_step": step}


def _processbench(row: dict[str, Any]) -> dict[str, Any]:
    """One ProcessBench-style row: `label` is the 0-based first wrong step, -1 when none."""
    label = int(row["label"])
    return {"trace_id": str(row["id"]), "problem": row["problem"], "steps": [str(s) for s in row["steps"]],
            "has_error": label >= 0, "first_error_step": label + 1 if label >= 0 else None}


LABELLED_SETS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"mrben": _mrben, "processbench": _processbench}
"""Presets: a labelled row → {trace_id, problem, steps, has_error, first_error_step (1-based or None)}."""


def read_labelled(path: str | Path, preset: str = "mrben", limit: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` rows (all when None) of a JSON-lines labelled set, read through `preset`.
    A ProcessBench row without `id` is named by its line number."""
    if preset not in LABELLED_SETS:
        raise ValueError(f"unknown labelled-set preset {preset!r}; known: {sorted(LABELLED_SETS)}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            raw = json.loads(line)
            if preset == "processbench":
                raw.setdefault("id", f"line-{number}")
            try:
                rows.append(LABELLED_SETS[preset](raw))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}, line {number}: not a {preset} row ({type(exc).__name__}: {exc}); "
                                 f"pick the preset that matches the file") from exc
    if not rows:
        raise ValueError(f"{path} holds no labelled rows")
    return rows


def _rule(rows: list[dict[str, Any]]) -> list[tuple[bool | None, int | None, list[str]]]:
    """The model-free signal on each row: (error called, its step, the flags)."""
    out = []
    for row in rows:
        flags, step = signal_steps(row["steps"])
        out.append((bool(flags), step, flags))
    return out


def _llm(rows: list[dict[str, Any]], annotator: ReasoningJudge,
         **options: Any) -> list[tuple[bool | None, int | None, list[str]]]:
    """`annotator` on each row through `annotate` (undecided: None, where the judge gave no valid reply)."""
    from .runner import annotate

    ds = Dataset.from_list([{k: row[k] for k in ("trace_id", "problem", "steps")} for row in rows])
    labelled = annotate(ds, [annotator], **options).to_dict()
    ok, steps = labelled[f"label.{REASONING_OK}"], labelled[f"label.{FIRST_ERROR_STEP}"]
    if all(v is None for v in ok):
        errors = [e for e in labelled[f"label.{annotator.name}.error"] if e]
        first = errors[0] if errors else None
        raise RuntimeError(f"the judge decided none of {len(rows)} rows (first error: {first}); "
                           "check the model and its backend")
    return [(None if v is None else not v, s, []) for v, s in zip(ok, steps)]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def judge_agreement(path: str | Path, preset: str = "mrben", judge: Literal["rule", "llm"] = "rule",
                    model: Any = None, backend: Any = DEFAULT_BACKEND, limit: int | None = None,
                    annotator: ReasoningJudge | None = None, **annotate_options: Any) -> dict[str, Any]:
    """Measure `judge` on the labelled set at `path` (read with `preset`, its first `limit` rows).

    `judge="llm"` asks `annotator` (default `ReasoningJudge()`) of `model` on `backend`; `annotate_options` go to
    `annotate` (output_dir, sampling, engine_kwargs, batch_size, ...). Returns counts (tp, fp,
    fn, tn, undecided), precision / recall / F1 of "the reasoning has an error", the first-error
    step agreement where both name one, and for the rule the count and precision of each flag.
    """
    rows = read_labelled(path, preset, limit)
    if judge == "rule":
        calls = _rule(rows)
    elif judge == "llm":
        if model is None and isinstance(backend, (str, dict)):
            raise ValueError("judge='llm' needs a model (a hub name, a local folder or a served model name)")
        calls = _llm(rows, annotator or ReasoningJudge(), model=model, backend=backend, **annotate_options)
    else:
        raise ValueError(f"judge must be 'rule' or 'llm', got {judge!r}")
    counts = dict.fromkeys(("tp", "fp", "fn", "tn", "undecided"), 0)
    named = same = 0
    by_flag: dict[str, dict[str, int]] = {}
    for row, (called, step, flags) in zip(rows, calls):
        gold = row["has_error"]
        if called is None:
            counts["undecided"] += 1
            continue
        counts[("t" if called == gold else "f") + ("p" if called else "n")] += 1
        if called and gold and step is not None:
            named += 1
            same += step == row["first_error_step"]
        for flag in flags:
            by_flag.setdefault(flag, {"flagged": 0, "with_error": 0})
            by_flag[flag]["flagged"] += 1
            by_flag[flag]["with_error"] += gold
    precision = _share(counts["tp"], counts["tp"] + counts["fp"])
    recall = _share(counts["tp"], counts["tp"] + counts["fn"])
    f1 = round(2 * precision * recall / (precision + recall), 4) if precision and recall else None
    judge_model = getattr(backend, "model_name", model) if model is None else model
    report: dict[str, Any] = {
        "labelled_set": str(path), "preset": preset, "judge": judge if judge == "rule" else f"llm ({judge_model})",
        "rows": len(rows), "with_error": sum(r["has_error"] for r in rows), **counts,
        "precision": precision, "recall": recall, "f1": f1,
        "first_error_step": {"both_named": named, "same": same, "share": _share(same, named)},
    }
    if judge == "rule":
        report["flags"] = {f: {**c, "precision": _share(c["with_error"], c["flagged"])}
                           for f, c in sorted(by_flag.items())}
    return report
