"""`ReasoningJudge`: the first wrong step of a trace, found by an LLM (ProcessBench / PRM-judge style).

The answer check (`verify`) reads only the final answer; a right answer can rest on a wrong or
hand-waved argument. This annotator shows a judge the trace as numbered steps (its own `steps`
column where it has one, else the paragraphs of its reasoning and answer, `steps.split_steps`) and
asks for the earliest wrong step, or none. The cheap cases need no model: `steps.flag_reasoning`.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from ..steps import MAX_STEPS, split_steps
from .annotators import ANNOTATORS
from .base import DEFAULT_MAX_CHARS, Annotator, shorten

MAX_LABELLED_STEPS = 1000
"""The bound on a reply's step number: a labelled set's own steps (a program's lines) are shown
unmerged, so a judge may name a step beyond `steps.MAX_STEPS`."""
REASONING_OK = "reasoning_ok"
FIRST_ERROR_STEP = "first_error_step"


class StepCheckAnswer(BaseModel):
    """A reason, then the earliest wrong step (1-based; 0: every step holds)."""

    reason: str = Field(max_length=400)
    first_error_step: int = Field(ge=0, le=MAX_LABELLED_STEPS)


def trace_steps(row: dict[str, Any], max_steps: int = MAX_STEPS) -> list[str]:
    """A row's steps: its `steps` list where it has one, else the paragraphs of its reasoning (or
    completion) followed by its answer part, merged into at most `max_steps`."""
    if row.get("steps"):
        return [str(s) for s in row["steps"]]
    reasoning = row.get("reasoning") or ""
    body = f"{reasoning}\n\n{row.get('answer') or ''}" if reasoning else row.get("completion") or row.get("answer")
    return split_steps(body, max_steps)


@ANNOTATORS.register(name="reasoning")
class ReasoningJudge(Annotator):
    """Whether a trace's reasoning holds, and where it first goes wrong.

    Fills `label.reasoning_ok` (True: no wrong step), `label.first_error_step` (1-based, null when
    none) and `label.<name>.reason` (the judge's reason). The steps shown are cut to `max_chars`
    characters in all (each step keeps its head and tail). A row with no step is not sent.
    """

    name = "reasoning"
    prompt_file = "reasoning.v1.jinja"
    Answer = StepCheckAnswer
    needs = ("problem",)
    optional = ("steps", "reasoning", "answer", "completion")

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, max_steps: int = MAX_STEPS, prompt: str | None = None,
                 name: str | None = None) -> None:
        if not 1 <= max_steps <= MAX_LABELLED_STEPS:
            raise ValueError(f"ReasoningJudge: max_steps must be 1 to {MAX_LABELLED_STEPS} (the reply's bound), "
                             f"got {max_steps}")
        super().__init__(max_chars=max_chars, prompt=prompt, name=name)
        self.max_steps = max_steps

    def skip_reason(self, row: dict[str, Any]) -> str | None:
        return None if trace_steps(row, self.max_steps) else "no reasoning to judge"

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        steps = trace_steps(row, self.max_steps)
        per_step = max(1, self.max_chars // len(steps))
        shown = [shorten(step, per_step)[0] for step in steps]
        return {"problem": self.shown(row["problem"]), "steps": shown,
                "cut": any(a != b for a, b in zip(shown, steps))}

    def label_types(self) -> dict[str, pa.DataType]:
        return {REASONING_OK: pa.bool_(), FIRST_ERROR_STEP: pa.int64(), f"{self.name}.reason": pa.string()}

    def labels(self, answer: StepCheckAnswer) -> dict[str, Any]:  # type: ignore[override]
        step = answer.first_error_step
        return {REASONING_OK: step == 0, FIRST_ERROR_STEP: step or None, f"{self.name}.reason": answer.reason}
