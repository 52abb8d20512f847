"""`guide()`: ask a teacher about chosen student rollouts and splice its feedback in (ThinkTuning).

The choice follows the paper: per problem, a share of the complete rollouts (ended by the model,
not cut off, no error), at least one (`choose_rollouts`). The teacher is one model pass on the
model-call layer (`TeacherFeedback`, keyed by `trace_id`, resumable with `output_dir`): greedy,
its reply constrained by `FEEDBACK_REGEX` where the backend decodes by regex, and always gated by
`parse_feedback`. A valid reply is spliced after the student's completion; anything else is "no
feedback" and the rollout stays unguided. See docs/thinktuning.md.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from datasets import Dataset, Features, Value, concatenate_datasets

from ..answers import METHODS, equivalent, reference_method
from ..llm.backends import DEFAULT_BACKEND, Backend, Request, Response, build_backend, close
from ..llm.passes import BACKEND_ERROR, ModelPass, Work
from ..llm.requests import GREEDY
from ..llm.runner import BATCH_SIZE, run_pass
from ..parse import extract_final_answer
from ..registry import Spec
from ..schema import GUIDANCE_PREFIX, GUIDED_COMPLETION, require_columns
from .feedback import (BOXED_INSTRUCTION, FEEDBACK_REGEX, PROMPT_TEXT, PROMPT_VERSION, Feedback, parse_feedback,
                       teacher_messages)
from .schedule import choose_rollouts, guided_fraction
from .splice import splice

log = logging.getLogger(__name__)

DEFAULT_FRACTION = 0.1
"""The share of a problem's complete rollouts the teacher guides (their schedule's start)."""
DEFAULT_MAX_TOKENS = 1024
"""The token cap of one teacher reply."""
INCOMPLETE_FLAGS = frozenset({"truncated", "unterminated_reasoning", "empty"})
"""Parser flags that mark a rollout as not ended by the model: never guided."""
NO_FEEDBACK_ERROR = "no feedback: the reply does not match the tag format"

_TEXT = ("opinion", "reason", "phrase", "raw", "error")
COLUMNS: dict[str, str] = {
    f"{GUIDANCE_PREFIX}chosen": "bool", **{f"{GUIDANCE_PREFIX}{c}": "string" for c in _TEXT}, f"{GUIDANCE_PREFIX}valid": "bool",
    GUIDED_COMPLETION: "string", f"{GUIDANCE_PREFIX}char_start": "int64", f"{GUIDANCE_PREFIX}char_end": "int64",
    f"{GUIDANCE_PREFIX}final_answer": "string", f"{GUIDANCE_PREFIX}correct": "bool",
}
"""The columns `guide` adds, and their types (fixed, so an all-null column keeps its type)."""
PASS_SCHEMA = pa.schema([("trace_id", pa.string()), *((f"{GUIDANCE_PREFIX}{c}", pa.string()) for c in _TEXT),
                         (f"{GUIDANCE_PREFIX}valid", pa.bool_())])
"""What the teacher pass stores per asked rollout: its reply read by the gate, and the raw reply."""


def prompt_sha256(prompt: str) -> str:
    """sha256 of a teacher prompt text (the packaged one's is `PROMPT_SHA256`)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TeacherFeedback(ModelPass):
    """One greedy teacher reply per chosen rollout, read by `parse_feedback` (the regex gate)."""

    instruction: str = BOXED_INSTRUCTION
    prompt: str = PROMPT_TEXT
    max_tokens: int = DEFAULT_MAX_TOKENS
    regex: str | None = FEEDBACK_REGEX

    schema: ClassVar[pa.Schema] = PASS_SCHEMA
    key: ClassVar[tuple[str, ...]] = ("trace_id",)
    unit: ClassVar[str] = "rollout"
    columns: ClassVar[tuple[str, ...]] = ("trace_id", "problem", "completion")
    error_column: ClassVar[str] = f"{GUIDANCE_PREFIX}error"

    def fingerprint(self, engine: Backend) -> dict[str, Any]:
        version = PROMPT_VERSION if self.prompt == PROMPT_TEXT else "custom"
        return {"pass": type(self).__name__, "model": engine.model_name, "prompt_version": version,
                "prompt_sha256": prompt_sha256(self.prompt), "instruction": self.instruction,
                "sampling": self.sampling, "regex": self.regex}

    @property
    def sampling(self) -> dict[str, Any]:
        return {**GREEDY, "max_tokens": self.max_tokens}

    def requests(self, work: list[Work]) -> list[Request | None]:
        return [Request(messages=teacher_messages(row["problem"], row["completion"] or "", self.instruction,
                                                  self.prompt), sampling=self.sampling, regex=self.regex)
                for row, _ in work]

    def rows(self, work: list[Work], requests: list[Request | None], responses: list[Response | None],
             model_name: str) -> list[dict[str, Any]]:
        return [{"trace_id": keys[0][0], **_read(response)} for (_, keys), response in zip(work, responses)]


def _read(response: Response | None) -> dict[str, Any]:
    """The stored columns of one reply: the gate's reading, the raw text and why it is no feedback."""
    if response is None or response.error is not None or not response.completions:
        why = "no completion returned" if response is None or response.error is None else response.error
        return {f"{GUIDANCE_PREFIX}error": f"{BACKEND_ERROR}{why}", f"{GUIDANCE_PREFIX}valid": False}
    completion = response.completions[0]
    feedback = parse_feedback(completion.text)
    error = None if feedback.valid else f"{NO_FEEDBACK_ERROR} (finish_reason={completion.finish_reason})"
    return {f"{GUIDANCE_PREFIX}opinion": feedback.opinion, f"{GUIDANCE_PREFIX}reason": feedback.reason or None,
            f"{GUIDANCE_PREFIX}phrase": feedback.phrase or None, f"{GUIDANCE_PREFIX}raw": completion.text,
            f"{GUIDANCE_PREFIX}error": error, f"{GUIDANCE_PREFIX}valid": feedback.valid}


def complete_mask(ds: Dataset) -> np.ndarray:
    """Which rollouts the model ended itself: no error, finish_reason not "length", not flagged
    truncated / unterminated / empty, a non-blank completion."""
    cols = ds.select_columns([c for c in ("completion", "error", "finish_reason", "flags") if c in ds.column_names])
    n = len(ds)
    errors = cols["error"] if "error" in cols.column_names else [None] * n
    reasons = cols["finish_reason"] if "finish_reason" in cols.column_names else [None] * n
    flags = cols["flags"] if "flags" in cols.column_names else [None] * n
    return np.array([bool((text or "").strip()) and e is None and r != "length" and not INCOMPLETE_FLAGS & set(f or ())
                     for text, e, r, f in zip(cols["completion"], errors, reasons, flags)], dtype=bool)


def guide(
    traces: Any,
    model: Any = None,
    backend: Spec | Backend = DEFAULT_BACKEND,
    fraction: float = DEFAULT_FRACTION,
    schedule: dict[str, Any] | None = None,
    seed: int = 0,
    instruction: str = BOXED_INSTRUCTION,
    prompt: str = PROMPT_TEXT,
    regex: str | None = FEEDBACK_REGEX,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    output_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    engine_kwargs: dict[str, Any] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> Dataset:
    """`traces` with teacher guidance on a seeded share of each problem's complete rollouts.

    `model` is a hub name, a local path or a ready `vllm.LLM`; `backend` a name or spec from
    `BACKENDS` or a ready `Backend` (so the student's own engine can be the teacher, as in the
    paper). `fraction` of each problem's complete rollouts is chosen (at least one), or, with
    `schedule` (`guided_fraction`'s `step`, `total_steps`, `end`, `kind`, `decay_steps`), the
    scheduled fraction starting from `fraction`. The teacher sees the problem, `instruction` and
    the student's completion through `prompt` (a jinja text with role sections), decodes greedily
    within `max_tokens`, constrained by `regex` (None: unconstrained; the reply is gated by
    `parse_feedback` either way). With `output_dir` the replies are resumable shards whose manifest
    holds the prompt version and sha256.

    Adds `guidance.chosen`, `guidance.valid` (null where not asked), `guidance.opinion|reason|phrase|
    raw|error`, `guided_completion` (the student's completion + "\\n\\n" + reason + "\\n\\n" +
    phrase; null unless the feedback is valid), `guidance.char_start`/`char_end` (the teacher's
    part of it), `guidance.final_answer` (read from the teacher's part) and `guidance.correct`
    (checked against `reference_answer`; null when undecidable).
    """
    from ..load.sources import load_traces

    ds = traces if isinstance(traces, Dataset) else load_traces(traces)
    require_columns(ds.column_names, ["trace_id", "problem_id", "problem", "completion"], "the traces to guide")
    share = guided_fraction(**{"start": fraction, **schedule}) if schedule else fraction
    chosen = choose_rollouts(ds["problem_id"], complete_mask(ds), share, seed)
    model_pass = TeacherFeedback(instruction=instruction, prompt=prompt, max_tokens=max_tokens, regex=regex)
    table = PASS_SCHEMA.empty_table()
    if chosen.any():
        engine = build_backend(backend, model, engine_kwargs, chat_template_kwargs)
        try:
            out = run_pass(model_pass, ds.select(np.flatnonzero(chosen).tolist()), engine, output_dir,
                           batch_size=batch_size, show_progress=show_progress)
        finally:
            if isinstance(backend, (str, dict)):
                close(engine)  # built here: its processes and shared memory go with this call
        table = out.rows
        log.info("guide: %d of %d rollouts chosen (fraction %.3f), %d asked, %d errors",
                 int(chosen.sum()), len(ds), share, out.pending, out.errors)
    return _attach(ds, chosen, table)


def _attach(ds: Dataset, chosen: np.ndarray, table: pa.Table) -> Dataset:
    """`ds` with the guidance columns: the stored replies of the chosen rows, spliced where valid."""
    replies = {r["trace_id"]: r for r in table.to_pylist()}  # a later reply of a key wins
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    refs = ds["reference_answer"] if "reference_answer" in ds.column_names else [None] * len(ds)
    for tid, pick, text, ref in zip(ds["trace_id"], chosen, ds["completion"], refs):
        row: dict[str, Any] = {**dict.fromkeys(COLUMNS), f"{GUIDANCE_PREFIX}chosen": bool(pick)}
        if pick and (reply := replies.get(tid)) is not None:
            row.update({k: v for k, v in reply.items() if k != "trace_id"})
        if row[f"{GUIDANCE_PREFIX}valid"]:
            spliced = splice(text, Feedback(opinion=row[f"{GUIDANCE_PREFIX}opinion"], reason=row[f"{GUIDANCE_PREFIX}reason"],
                                            phrase=row[f"{GUIDANCE_PREFIX}phrase"], valid=True))
            answer = extract_final_answer(spliced.teacher)
            row.update({GUIDED_COMPLETION: spliced.text, f"{GUIDANCE_PREFIX}char_start": spliced.start, f"{GUIDANCE_PREFIX}char_end": spliced.end,
                        f"{GUIDANCE_PREFIX}final_answer": answer, f"{GUIDANCE_PREFIX}correct": _check(answer, ref)})
        for name in COLUMNS:
            columns[name].append(row[name])
    added = Dataset.from_dict(columns, features=Features({c: Value(t) for c, t in COLUMNS.items()}))
    return concatenate_datasets([ds.remove_columns([c for c in COLUMNS if c in ds.column_names]), added], axis=1)


def _check(answer: str | None, reference: str | None) -> bool | None:
    """Whether the guided answer matches the reference (None: no answer, no reference, or free-form)."""
    method = reference_method(reference)
    return equivalent(answer, reference, method) if method in METHODS else None  # type: ignore[arg-type]
