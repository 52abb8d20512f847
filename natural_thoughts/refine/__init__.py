"""CoT refinement passes (arXiv 2507.09850): rewrite a short chain of thought as long exploratory
reasoning, edit it again n times, impose a structure template; every stage keeps its lineage and
checks that the final answer survived.

`refine()` runs the passes over any backend, one `Refine` model pass per stage, resumable. Its
parts: the passes and the stages they expand to, one call's request builder (`request_messages`)
and row maker (`make_row`), the per-stage report, and the Nemotron-Math-HumanReasoning layout read
with the same lineage. See docs/refine.md.
"""

from __future__ import annotations

from .lineage import LINEAGE_FIELDS, ORIGINAL, answer_correct, same_answer
from .nemotron import nemotron_human_reasoning
from .passes import (
    DEFAULT_PASSES,
    DEFAULT_STRUCTURE,
    KINDS,
    RefinePass,
    RefineStage,
    child_id,
    expand,
    make_row,
    request_messages,
    skip_reason,
    solution_text,
)
from .report import stage_report
from .runner import DEFAULT_KEEP, KEEP, Refine, refine

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_PASSES",
    "DEFAULT_STRUCTURE",
    "KEEP",
    "KINDS",
    "LINEAGE_FIELDS",
    "ORIGINAL",
    "Refine",
    "RefinePass",
    "RefineStage",
    "answer_correct",
    "child_id",
    "expand",
    "make_row",
    "nemotron_human_reasoning",
    "refine",
    "request_messages",
    "same_answer",
    "skip_reason",
    "solution_text",
    "stage_report",
]
