"""Requests in, trace rows out: the per-batch work of `generate`, shared by every executor.

Kept apart from the orchestration in `generate.py` so a Ray actor can import it without the rest,
and so the row layout (one row per sample, an error row for each sample of a failed request) lives
in one place. `GenerationSummary` counts what one `generate` call did and what its problems hold.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from .backends import Backend, Request, Response
from .parse import format_for_prompt, parse_trace
from .schema import trace_id

TRACE_FIELDS: dict[str, pa.DataType] = {
    "trace_id": pa.string(),
    "sample_index": pa.int64(),
    "model": pa.string(),
    "prompt": pa.string(),
    "completion": pa.string(),
    "reasoning": pa.string(),
    "answer": pa.string(),
    "final_answer": pa.string(),
    "reasoning_tokens": pa.int64(),
    "answer_tokens": pa.int64(),
    "finish_reason": pa.string(),
    "flags": pa.list_(pa.string()),
    "error": pa.string(),
    "sampling": pa.string(),
    "generated_at": pa.string(),
}
Work = tuple[dict[str, Any], list[int]]
"""One unit of work: a problem row and the sample indices still to generate for it."""


def trace_schema(problem_schema: pa.Schema) -> pa.Schema:
    """The Arrow schema of trace shards: the problem columns, then `TRACE_FIELDS`."""
    return pa.schema([*problem_schema, *(pa.field(k, v) for k, v in TRACE_FIELDS.items())])


def request_seed(seed: int, pid: str, first_sample: int) -> int:
    """A per-request seed: reproducible, different across problems and sample blocks."""
    digest = hashlib.sha256(f"{seed}:{pid}:{first_sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def build_messages(problem: str, prompt_template: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat messages for one problem."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": render_prompt(prompt_template, problem)})
    return messages


def render_prompt(template: str, problem: str) -> str:
    """The user message. A template with `{{` or `{%` is jinja, rendered in a sandbox (`{{ problem }}`);
    otherwise `{problem}` is replaced as text, so any other brace stays as it is."""
    if "{{" in template or "{%" in template:
        return _jinja(template).render(problem=problem)
    return template.replace("{problem}", problem)


def check_prompt_template(template: str) -> None:
    """Refuse a template that cannot render, or that leaves the problem out, before anything runs."""
    try:
        probe = render_prompt(template, "\x00problem\x00")
    except Exception as exc:  # jinja's syntax, undefined-name and sandbox errors
        raise ValueError(f"prompt_template cannot be rendered ({type(exc).__name__}: {exc}); write "
                         "{problem} or {{ problem }} where the problem goes") from exc
    if "\x00problem\x00" not in probe:
        raise ValueError(f"prompt_template {template!r} never places the problem: write {{problem}} or "
                         "{{ problem }} where it goes")


@functools.lru_cache(maxsize=32)
def _jinja(template: str) -> Any:
    """A compiled sandboxed template; an unknown name is an error, not an empty string."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True).from_string(template)


@dataclass(frozen=True)
class RowMaker:
    """Everything needed to turn a batch of work into trace rows; small and picklable (Ray ships it)."""

    sampling: dict[str, Any]
    prompt_template: str
    system_prompt: str | None
    trace_format: str

    def requests(self, batch: list[Work]) -> list[Request]:
        """One request per problem for its missing samples, seeded from the first of them."""
        return [
            Request(
                messages=build_messages(row["problem"], self.prompt_template, self.system_prompt),
                n=len(samples),
                sampling={**self.sampling, "seed": request_seed(self.sampling["seed"], row["problem_id"], samples[0])},
            )
            for row, samples in batch
        ]

    def run(self, engine: Backend, batch: list[Work], schema: pa.Schema) -> tuple[pa.Table, int]:
        """Generate one batch in one backend call; the rows as a table and the completion tokens."""
        requests = self.requests(batch)
        responses = engine.generate(requests)
        rows = [
            trace
            for (row, samples), req, resp in zip(batch, requests, responses)
            for trace in trace_rows(row, samples, req, resp, engine.model_name, self.trace_format)
        ]
        tokens = sum(c.completion_tokens or 0 for resp in responses for c in resp.completions)
        return pa.Table.from_pylist(rows, schema=schema), tokens


def trace_rows(row: dict[str, Any], samples: list[int], request: Request, response: Response,
               model_name: str, trace_format: str) -> list[dict[str, Any]]:
    """One trace row per requested sample, an error row for each when the request failed."""
    now = datetime.now(timezone.utc).isoformat()
    sampling = json.dumps({**request.sampling, "n": request.n}, sort_keys=True)
    rows = []
    for j, sample_index in enumerate(samples):
        base = {
            **row,
            "trace_id": trace_id(row["problem_id"], sample_index),
            "sample_index": sample_index,
            "model": model_name,
            "prompt": response.prompt_text,
            "sampling": sampling,
            "generated_at": now,
        }
        if response.error is not None or j >= len(response.completions):
            error = response.error or f"backend returned {len(response.completions)} of {request.n} samples"
            rows.append({**base, "completion": "", "reasoning": "", "answer": "", "final_answer": None,
                         "reasoning_tokens": None, "answer_tokens": None, "finish_reason": None,
                         "flags": [], "error": error})
            continue
        c = response.completions[j]
        parsed = parse_trace(c.text, format=format_for_prompt(trace_format, response.prompt_text),
                             finish_reason=c.finish_reason, reasoning=c.reasoning)
        reasoning_tokens = _reasoning_tokens(c.reasoning_tokens, c.completion_tokens, parsed.reasoning, parsed.flags)
        answer_tokens = (c.completion_tokens - reasoning_tokens
                         if c.completion_tokens is not None and reasoning_tokens is not None else None)
        rows.append({**base, "completion": _completion_text(c.text, c.reasoning, parsed.flags),
                     "reasoning": parsed.reasoning, "answer": parsed.answer, "final_answer": parsed.final_answer,
                     "reasoning_tokens": reasoning_tokens, "answer_tokens": answer_tokens,
                     "finish_reason": c.finish_reason, "flags": list(parsed.flags), "error": None})
    return rows


def _completion_text(text: str, reasoning: str | None, flags: list[str]) -> str:
    """The raw completion; a reasoning the backend split off is put back in `<think>` markers.

    A reasoning that never closed gets no `</think>`, so re-parsing the text keeps the flag.
    """
    if reasoning is None:
        return text
    if "unterminated_reasoning" in flags:
        return f"<think>{reasoning}"
    return f"<think>{reasoning}</think>{text}"


def _reasoning_tokens(from_backend: int | None, completion_tokens: int | None, reasoning: str,
                      flags: list[str]) -> int | None:
    """Reasoning length from the engine's own ids; whole completion when reasoning never closed."""
    if from_backend is not None:
        return from_backend
    if not reasoning:
        return 0
    if "unterminated_reasoning" in flags:
        return completion_tokens
    return None


def error_kind(error: str) -> str:
    """The kind of an error message: its leading exception name ("BadRequestError: …"), else "other"."""
    match = re.match(r"([A-Za-z_][\w.]*)(?::|$)", error)
    return match.group(1).rsplit(".", 1)[-1] if match else "other"


@dataclass
class GenerationSummary:
    """What one `generate` call did (the rows it wrote), and what its problems hold now (new and reused)."""

    problems: int = 0
    """Problems in this call's share."""
    requested: int = 0
    """(problem, sample) pairs asked for: problems × n."""
    skipped: int = 0
    """Pairs already written by an earlier run (reused), not generated again."""
    generated: int = 0
    """Rows written by this call, error rows included."""
    errors: dict[str, int] = field(default_factory=dict)
    """Error rows written by this call, by kind (the exception name at the start of the message)."""
    truncated: int = 0
    """Traces cut at max_tokens (kept, flagged `truncated`)."""
    completion_tokens: int = 0
    seconds: float = 0.0
    output_dir: str | None = None
    shard: str | None = None
    traces: int = 0
    """Rows of this call's problems after it: this call's and those reused from the folder."""
    failed: int = 0
    """Of `traces`, the rows that are errors (reused error rows included: `retry_failed` redoes them)."""

    def add(self, table: pa.Table, tokens: int) -> None:
        """Count one written batch."""
        self.generated += table.num_rows
        self.completion_tokens += tokens
        kinds = Counter(error_kind(e) for e in table.column("error").to_pylist() if e is not None)
        self.errors = dict(Counter(self.errors) + kinds)
        self.truncated += sum("truncated" in (f or []) for f in table.column("flags").to_pylist())

    def count_result(self, errors: list[str | None]) -> None:
        """Count the rows returned for this call's problems (the `error` column of the result)."""
        self.traces = len(errors)
        self.failed = sum(e is not None for e in errors)

    @property
    def error_count(self) -> int:
        """All error rows written by this call."""
        return sum(self.errors.values())

    @property
    def all_failed(self) -> bool:
        """Nothing usable: every row this call wrote, or every row it returns, is an error."""
        return (self.generated > 0 and self.error_count == self.generated) or (self.traces > 0 and self.failed == self.traces)

    @property
    def outcome(self) -> str:
        """"ran" (all new), "reused" (nothing new), or "resumed" (some of each)."""
        return "reused" if self.generated == 0 and self.skipped else "resumed" if self.skipped else "ran"

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the counts, plus the rates)."""
        return {**asdict(self), "error_count": self.error_count, "tokens_per_s": round(self.tokens_per_s, 1),
                "outcome": self.outcome}

    def __str__(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"
        where = f" into {self.output_dir}" + (f" (shard {self.shard})" if self.shard else "") if self.output_dir else ""
        held = f"; {self.traces} traces, {self.failed} of them errors" if self.failed else f"; {self.traces} traces"
        retry = " (--retry-failed / retry_failed=True generates them again)" if self.failed else ""
        return (f"generate {self.outcome}: {self.generated} new traces for {self.problems} problems{where}, "
                f"{self.skipped} reused; new errors: {errors}; truncated: {self.truncated}; "
                f"{self.completion_tokens} tokens in {self.seconds:.1f}s ({self.tokens_per_s:.0f} tok/s){held}{retry}")
