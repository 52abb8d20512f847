"""The lineage columns every refined trace carries, and the two answer checks made at each stage.

A refined trace points at the trace it was made from (`parent_trace_id`), says which stage made it
(`refine.stage`, its name; `refine.step`, its place in the chain, 0 for an original) and with which
prompt (`refine.prompt_version`, `refine.prompt_sha256`; null for human edits). Each stage checks
that the final answer survived: against the previous stage (`refine.answer_kept`) and against the
reference (`refine.correct`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..answers import equivalent, reference_method

PARENT = "parent_trace_id"
STAGE = "refine.stage"
STEP = "refine.step"
PROMPT_VERSION = "refine.prompt_version"
PROMPT_SHA256 = "refine.prompt_sha256"
ANSWER_KEPT = "refine.answer_kept"
CORRECT = "refine.correct"

LINEAGE_FIELDS: tuple[pa.Field, ...] = (
    pa.field(PARENT, pa.string()),
    pa.field(STAGE, pa.string()),
    pa.field(STEP, pa.int64()),
    pa.field(PROMPT_VERSION, pa.string()),
    pa.field(PROMPT_SHA256, pa.string()),
    pa.field(ANSWER_KEPT, pa.bool_()),
    pa.field(CORRECT, pa.bool_()),
)
"""The columns a refined trace adds to `schema.TRACE_SCHEMA` (shard writers append these)."""

ORIGINAL = "original"
"""The stage name of a trace that no pass made (a row without lineage columns reads as this)."""


def same_answer(answer: str | None, target: str | None) -> bool | None:
    """Whether `answer` states what `target` states: None when there is no target to check
    against (or only a free-form one, which needs a judge); False when the target has an answer
    and `answer` has none, since a stage that drops the final answer did not keep it.

    The method is the one `verify` picks for a reference of `target`'s shape (math-verify, a
    choice letter or normalized strings).
    """
    method = reference_method(target)
    if method is None or method == "llm":
        return None
    return bool(equivalent(answer, target, method)) if (answer or "").strip() else False


def answer_correct(row: dict[str, Any]) -> bool | None:
    """The row's final answer checked against its reference answer (`same_answer`)."""
    return same_answer(row.get("final_answer"), row.get("reference_answer"))
