"""The column contract between stages, stable ids, and the pydantic models used at the edges.

Every stage takes and returns a `datasets.Dataset`; these names are what one stage promises the
next. Labels and scores are added as prefixed columns (`label.*`, `score.*`) so nothing collides.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_COLUMNS: tuple[str, ...] = (
    "problem_id",
    "problem",
    "reference_answer",
    "source",
    "domain",
    "extra",
)
"""Columns of a problem pool (`load_problems`). `extra` is a JSON string of passthrough fields."""

TRACE_COLUMNS: tuple[str, ...] = (
    *PROBLEM_COLUMNS,
    "trace_id",
    "sample_index",
    "model",
    "prompt",
    "completion",
    "reasoning",
    "answer",
    "final_answer",
    "reasoning_tokens",
    "answer_tokens",
    "finish_reason",
    "flags",
    "error",
    "sampling",
    "generated_at",
)
"""Columns of a trace set (`generate`, `load_traces`)."""

FLAGS: tuple[str, ...] = ("unterminated_reasoning", "truncated", "no_final_answer", "empty")
"""Every flag the parser may set on a trace."""

SCORE_PREFIX = "score."
LABEL_PREFIX = "label."
REASONING_TOKENS = "score.reasoning_tokens"
REASONING_TOKENS_SOURCE = "score.reasoning_tokens_source"


def normalize_text(text: str) -> str:
    """Unicode-NFKC, collapse whitespace, lowercase: the text identity used for ids and dedup."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


def problem_id(text: str) -> str:
    """A stable 16-hex-digit id for a problem: sha256 of its normalized text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]


def trace_id(pid: str, sample_index: int) -> str:
    """The id of one sample of one problem."""
    return f"{pid}-{sample_index}"


class SamplingConfig(BaseModel):
    """Sampling parameters for the teacher; passed to the backend as they are."""

    model_config = ConfigDict(extra="allow")

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 4096
    seed: int = 0


class TraceRecord(BaseModel):
    """One trace row, for validation and documentation; bulk data stays in Arrow."""

    model_config = ConfigDict(extra="allow")

    problem_id: str
    problem: str
    reference_answer: str | None = None
    source: str | None = None
    domain: str | None = None
    extra: str | None = None
    trace_id: str
    sample_index: int
    model: str
    prompt: str
    completion: str
    reasoning: str
    answer: str
    final_answer: str | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    finish_reason: str | None = None
    flags: list[Literal["unterminated_reasoning", "truncated", "no_final_answer", "empty"]] = Field(
        default_factory=list
    )
    error: str | None = None
    sampling: str = "{}"
    generated_at: str | None = None


def missing_columns_error(missing: list[str], present: list[str], what: str) -> KeyError:
    """The error raised everywhere a needed column is absent: it names both sides."""
    return KeyError(
        f"{what} is missing column(s) {missing}; the columns present are {sorted(present)}"
    )


def require_columns(columns: list[str], needed: list[str] | tuple[str, ...], what: str) -> None:
    """Raise a clear `KeyError` when any of `needed` is not among `columns`."""
    missing = [c for c in needed if c not in columns]
    if missing:
        raise missing_columns_error(missing, list(columns), what)


def as_dict(value: Any) -> dict[str, Any]:
    """A pydantic model or mapping as a plain dict (None → {})."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump()
    return dict(value)
