"""Known source layouts (presets): how a file's columns map onto ours, and the fixes each needs.

`load_problems(..., preset=NAME)` and `load_traces(..., preset=NAME)` read these; add one here to
support a new layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


def _skythought(out: dict[str, Any]) -> None:
    """SkyThought keeps one output and one verdict per list: take the first of each. The verdict is
    the benchmark evaluator's (`label.evaluator_correct`), kept apart from `verify`'s `label.correct`."""
    out["completion"], correct = _first(out["completion"]), _first(out[EVALUATOR_CORRECT])
    out[EVALUATOR_CORRECT] = None if correct is None else bool(correct)


@dataclass(frozen=True)
class Preset:
    """A known layout: `columns` maps our (or a `fix`-consumed) name to the source column;
    `drop` names source columns that repeat mapped ones, left out of `extra`."""

    columns: dict[str, str]
    fix: Callable[[dict[str, Any]], None] | None = None
    drop: tuple[str, ...] = ()


PROBLEM_PRESETS: dict[str, Preset] = {
    "natural_reasoning": Preset(
        {"problem": "question", "reference_answer": "reference_answer", "responses": "responses"},
        _natural_reasoning,
    ),
    "gsm8k": Preset({"problem": "question", "reference_answer": "answer"}, _gsm8k),
    "math500": Preset(
        {"problem": "problem", "reference_answer": "answer"}
        | {"problem_id": "unique_id", "domain": "subject"}
    ),
}
TRACE_PRESETS: dict[str, Preset] = {
    "skythought_eval": Preset(
        {"problem": "question", "reference_answer": "gt"}
        | {"completion": "code", EVALUATOR_CORRECT: "score"},
        _skythought,
        drop=("gt_cot", "solution", "answer", "pred", "report"),
    ),
}
