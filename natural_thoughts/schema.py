"""The column contract between stages, stable ids, and the pydantic models used at the edges.

Every stage takes and returns a `datasets.Dataset`; these names are what one stage promises the
next. Labels and scores are added as prefixed columns (`label.*`, `score.*`) so nothing collides.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

PROBLEM_SCHEMA = pa.schema([
    ("problem_id", pa.string()),
    ("problem", pa.string()),
    ("reference_answer", pa.string()),
    ("source", pa.string()),
    ("domain", pa.string()),
    ("extra", pa.string()),
])
"""A problem pool (`load_problems`). `extra` is a JSON string of passthrough fields."""

TRACE_SCHEMA = pa.schema([
    *PROBLEM_SCHEMA,
    ("trace_id", pa.string()),
    ("sample_index", pa.int64()),
    ("model", pa.string()),
    ("prompt", pa.string()),
    ("completion", pa.string()),
    ("reasoning", pa.string()),
    ("answer", pa.string()),
    ("final_answer", pa.string()),
    ("reasoning_tokens", pa.int64()),
    ("answer_tokens", pa.int64()),
    ("finish_reason", pa.string()),
    ("flags", pa.list_(pa.string())),
    ("error", pa.string()),
    ("sampling", pa.string()),
    ("generated_at", pa.string()),
])
"""A trace set (`generate`, `load_traces`): the problem columns, then one sample's columns. Loaders,
shard writers and validation all read this one declaration."""

PROBLEM_COLUMNS: tuple[str, ...] = tuple(PROBLEM_SCHEMA.names)
TRACE_COLUMNS: tuple[str, ...] = tuple(TRACE_SCHEMA.names)
SAMPLE_FIELDS: tuple[pa.Field, ...] = tuple(f for f in TRACE_SCHEMA if f.name not in PROBLEM_COLUMNS)
"""The columns one generated sample adds to its problem's columns."""

PROBLEM_FLAGS: tuple[str, ...] = ("unterminated_reasoning", "truncated", "no_final_answer", "empty")
"""Flags that mark a trace unfit for training as it is (`DropFlags` drops these by default)."""
NOTE_FLAGS: tuple[str, ...] = ("split_inferred", "prose_answer")
"""Flags that say how a trace was read: its reasoning/answer split was inferred from a chain of
thought without markers; its final answer was read from a sentence, not a box or answer line."""
FLAGS: tuple[str, ...] = (*PROBLEM_FLAGS, *NOTE_FLAGS)
"""Every flag the parser may set on a trace, in the order it lists them."""

SCORE_PREFIX = "score."
LABEL_PREFIX = "label."
GUIDANCE_PREFIX = "guidance."
GUIDED_COMPLETION = "guided_completion"
STAGE_COLUMNS = (LABEL_PREFIX, SCORE_PREFIX, GUIDANCE_PREFIX, GUIDED_COMPLETION)
"""Column prefixes a stage may rewrite in place: what it writes there is stored even when the
input already held such a column."""
REASONING_TOKENS = "score.reasoning_tokens"
REASONING_TOKENS_SOURCE = "score.reasoning_tokens_source"


def normalize_text(text: str) -> str:
    """Unicode-NFKC, collapse whitespace, lowercase: the text identity used for ids and dedup."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


@lru_cache(maxsize=4096)
def problem_id(text: str) -> str:
    """A stable 16-hex-digit id for a problem: sha256 of its normalized text (the last 4,096
    cached: an import meets each problem once per sample, the samples usually close together)."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]


def trace_id(pid: str, sample_index: int) -> str:
    """The id of one sample of one problem."""
    return f"{pid}-{sample_index}"


SAMPLING_KEYS = frozenset({
    "temperature", "top_p", "top_k", "min_p", "max_tokens", "min_tokens", "seed", "stop", "stop_token_ids",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "allowed_token_ids",
    "bad_words", "ignore_eos", "include_stop_str_in_output", "skip_special_tokens",
    "spaces_between_special_tokens", "logprobs", "prompt_logprobs", "thinking_token_budget", "extra_args",
    "max_completion_tokens", "top_logprobs", "user", "reasoning_effort",
})
"""Sampling keys a backend takes: vLLM's `SamplingParams` and the OpenAI chat API (`n` is generate's)."""


class SamplingConfig(BaseModel):
    """Sampling parameters for the teacher, passed to the backend as they are; an unknown key or a
    value out of range is refused (naming it) before any engine starts."""

    model_config = ConfigDict(extra="allow")

    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(4096, ge=1)
    seed: int = Field(0, ge=0)
    """Each request's seed derives from it (`llm.requests.request_seed`); negative seeds are refused."""

    @model_validator(mode="after")
    def _known_keys(self) -> SamplingConfig:
        import difflib

        for key in sorted(set(self.model_extra or {}) - SAMPLING_KEYS):
            close = difflib.get_close_matches(key, sorted(SAMPLING_KEYS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {sorted(SAMPLING_KEYS)}"
            raise ValueError(f"unknown sampling key {key!r}; {hint}")
        return self


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


def require_unique_ids(ids: Sequence[str], what: str) -> None:
    """Raise naming the problem ids that appear more than once (their traces would merge)."""
    counts = Counter(ids)
    repeated = sorted(pid for pid, n in counts.items() if n > 1)
    if repeated:
        shown = ", ".join(repeated[:10]) + (f", ... {len(repeated) - 10} more" if len(repeated) > 10 else "")
        raise ValueError(f"{what}: {len(repeated)} problem id(s) appear more than once: {shown}. Remove the "
                         "repeats, give each row its own problem_id, or load with duplicates='number' to keep them apart")


def as_dict(value: Any) -> dict[str, Any]:
    """A pydantic model or mapping as a plain dict (None → {})."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump()
    return dict(value)
