"""Refinement passes: what each pass is, the stages a list of passes expands to, and one model call's
request builder (`request_messages`) and row maker (`make_row`).

The three kinds are the three ways "The Challenge of Teaching Reasoning to LLMs Without RL or
Distillation" (arXiv 2507.09850) improves non-reasoning and human chains of thought: rewrite a short
solution as long exploratory reasoning (`rewrite_long`, prompt engineering), edit it again and again
(`edit`, multi-pass editing), recast it into a structure template (`structure`, structural guidance).
Each renders a versioned jinja prompt (`prompts/<kind>.<version>.jinja`) in the annotators' sandbox.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from jinja2 import Template
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..llm.requests import PROMPT_SANDBOX
from ..parse import parse_trace
from ..registry import Spec, parse_spec
from ..schema import PROBLEM_COLUMNS
from . import lineage

Kind = Literal["rewrite_long", "edit", "structure"]
KINDS: tuple[str, ...] = get_args(Kind)
DEFAULT_PASSES: list[Spec] = ["rewrite_long", {"edit": {"times": 2}}, "structure"]
"""The paper's three improvements in order: rewrite as long reasoning, edit twice more, impose a structure."""
PROMPTS = "natural_thoughts.refine.prompts"
DEFAULT_VERSION = "v1"
DEFAULT_STRUCTURE = """\
## Understanding the problem
What is asked, what is given, and what a correct answer must satisfy.

## Exploring approaches
The ideas tried, in the order they came up, and why each is kept or dropped.

## Working it out
The chosen approach carried through, with every step checked as it is made.

## Checking the result
The answer tested against the conditions of the problem, another method or special cases.

## Final answer
The answer, as \\boxed{...}."""
"""The structure template a `structure` pass imposes unless it is given one (our own sections)."""


@lru_cache(maxsize=16)
def _packaged(file: str) -> str:
    """The text of a packaged prompt file, or an error listing the ones there are."""
    folder = resources.files(PROMPTS)
    if not folder.joinpath(file).is_file():
        known = sorted(p.name for p in folder.iterdir() if p.name.endswith(".jinja"))
        raise ValueError(f"no packaged refine prompt {file!r}; packaged prompts are {known}")
    return folder.joinpath(file).read_text(encoding="utf-8")


@lru_cache(maxsize=16)
def _template(text: str) -> Template:
    """A prompt compiled once in the annotators' sandbox (a run renders it for every trace)."""
    return PROMPT_SANDBOX.from_string(text)


class RefinePass(BaseModel):
    """One pass of a refinement run: its kind, how many times it runs (`edit` only), the version of
    its packaged prompt (or `prompt`, a jinja file replacing it), whether the reference answer is
    shown to the model, and the structure template (`structure` only; `DEFAULT_STRUCTURE` unless given).

    The reference is hidden by default: the passes are to keep the solution's own answer, and the
    answer checks (`refine.answer_kept`, `refine.correct`) then say whether they did.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    times: int = Field(1, ge=1)
    version: str = DEFAULT_VERSION
    prompt: str | None = None
    show_reference: bool = False
    template: str | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> RefinePass:
        if self.times != 1 and self.kind != "edit":
            raise ValueError(f"`times` repeats an edit pass only; a {self.kind} pass runs once")
        if self.template is not None and self.kind != "structure":
            raise ValueError(f"`template` belongs to a structure pass, not to {self.kind}")
        return self

    @classmethod
    def from_spec(cls, spec: Spec | RefinePass) -> RefinePass:
        """A pass from `"rewrite_long"` or `{"edit": {"times": 2}}` (a pass is returned as it is)."""
        if isinstance(spec, RefinePass):
            return spec
        kind, params = parse_spec(spec, "refine pass")
        if kind not in KINDS:
            raise ValueError(f"unknown refine pass {kind!r}; known passes are {list(KINDS)}")
        return cls(kind=kind, **params)

    @property
    def prompt_version(self) -> str:
        """`<kind>.<version>` for a packaged prompt, the file's stem for a replacement."""
        return Path(self.prompt).stem if self.prompt else f"{self.kind}.{self.version}"

    @property
    def prompt_text(self) -> str:
        """The jinja source this pass renders."""
        if self.prompt:
            return Path(self.prompt).read_text(encoding="utf-8")
        return _packaged(f"{self.prompt_version}.jinja")

    @property
    def prompt_sha256(self) -> str:
        """sha256 of the prompt text: a changed prompt is a new run."""
        return hashlib.sha256(self.prompt_text.encode("utf-8")).hexdigest()

    @property
    def structure(self) -> str | None:
        """The structure template shown to the model (`structure` passes only)."""
        return (self.template or DEFAULT_STRUCTURE) if self.kind == "structure" else None


@dataclass(frozen=True)
class RefineStage:
    """One model call per trace: the `step`-th (1-based) of a run, named after its pass's kind
    (`edit.2` for the second of several edits), made with `refine_pass`."""

    step: int
    name: str
    refine_pass: RefinePass


def expand(passes: Sequence[Spec | RefinePass]) -> list[RefineStage]:
    """The stages a list of passes runs, in order: an edit pass with `times=n` is n stages. A kind
    that occurs once is named as it is; several stages of one kind are numbered (`edit.1`, `edit.2`)."""
    parsed = [RefinePass.from_spec(spec) for spec in passes]
    if not parsed:
        raise ValueError(f"a refine run needs at least one pass; passes are {list(KINDS)}")
    kinds = [p for p in parsed for _ in range(p.times)]
    totals, seen = Counter(p.kind for p in kinds), Counter()
    stages = []
    for step, p in enumerate(kinds, start=1):
        seen[p.kind] += 1
        name = p.kind if totals[p.kind] == 1 else f"{p.kind}.{seen[p.kind]}"
        stages.append(RefineStage(step=step, name=name, refine_pass=p))
    return stages


def child_id(parent_id: str, step: int) -> str:
    """The id of the trace stage `step` makes from trace `parent_id`: a chain reads `p-0-r1-r2`."""
    return f"{parent_id}-r{step}"


def solution_text(row: dict[str, Any]) -> str:
    """The solution a pass works on: the row's parsed reasoning and answer (markers removed), or its
    raw completion when the parser found neither."""
    parts = [(row.get(k) or "").strip() for k in ("reasoning", "answer")]
    return "\n\n".join(p for p in parts if p) or (row.get("completion") or "").strip()


def skip_reason(row: dict[str, Any]) -> str | None:
    """Why a row cannot be refined (it had no reply, or its text is blank), or None."""
    if row.get("error"):
        return f"the parent trace has an error: {row['error']}"
    if not solution_text(row):
        return "the parent trace has no text"
    return None


def request_messages(stage: RefineStage, row: dict[str, Any]) -> list[dict[str, str]]:
    """The request builder: the chat messages asking for one stage's rewrite of a trace row (its
    problem and current solution, the reference answer when the pass shows it, the structure)."""
    p = stage.refine_pass
    context = {
        "problem": row["problem"],
        "solution": solution_text(row),
        "reference_answer": row.get("reference_answer") if p.show_reference else None,
        "template": p.structure,
    }
    return [{"role": "user", "content": _template(p.prompt_text).render(**context).strip()}]


def make_row(stage: RefineStage, parent_row: dict[str, Any], reply_text: str | None, model_name: str,
             finish_reason: str | None = None, error: str | None = None) -> dict[str, Any]:
    """The row maker: the trace a stage made from `parent_row` (the previous stage's row, or an
    original trace for step 1), with its lineage and both answer checks.

    The problem columns are the parent's; label and score columns are not carried over, since they
    described the parent's text. `trace_id` is `<parent trace_id>-r<step>`. Step 1 takes any trace
    (an original, or a human revision); a later step only the previous step's rows. The reply is parsed
    like every trace (`parse.parse_trace`); token counts stay None (the wiring may fill them). A
    failed request (`error`) gives an error row with no answer checks.
    """
    parent_step = parent_row.get(lineage.STEP) or 0
    if stage.step > 1 and parent_step != stage.step - 1:
        raise ValueError(f"stage {stage.name!r} (step {stage.step}) refines the rows of step {stage.step - 1}, "
                         f"not trace {parent_row.get('trace_id')!r} of step {parent_step}")
    p = stage.refine_pass
    sample: dict[str, Any] = {"completion": "", "reasoning": "", "answer": "", "final_answer": None, "flags": []}
    checks: dict[str, bool | None] = {lineage.ANSWER_KEPT: None, lineage.CORRECT: None}
    if error is None:
        parsed = parse_trace(reply_text or "", finish_reason=finish_reason)
        sample = {"completion": reply_text or "", "reasoning": parsed.reasoning, "answer": parsed.answer,
                  "final_answer": parsed.final_answer, "flags": list(parsed.flags)}
        checks = {lineage.ANSWER_KEPT: lineage.same_answer(parsed.final_answer, parent_row.get("final_answer")),
                  lineage.CORRECT: lineage.same_answer(parsed.final_answer, parent_row.get("reference_answer"))}
    return {
        **{c: parent_row.get(c) for c in PROBLEM_COLUMNS},
        "trace_id": child_id(parent_row["trace_id"], stage.step),
        "sample_index": parent_row.get("sample_index"),
        "model": model_name,
        "prompt": "",
        **sample,
        "reasoning_tokens": None,
        "answer_tokens": None,
        "finish_reason": finish_reason,
        "error": error,
        "sampling": "{}",
        "generated_at": datetime.now(timezone.utc).isoformat(),
        lineage.PARENT: parent_row["trace_id"],
        lineage.STAGE: stage.name,
        lineage.STEP: stage.step,
        lineage.PROMPT_VERSION: p.prompt_version,
        lineage.PROMPT_SHA256: p.prompt_sha256,
        **checks,
    }
