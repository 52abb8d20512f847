"""The generation pass: problems in, one parsed trace row per sample out.

A request builder and a row maker on the model-call layer (`llm.runner.run_pass`), so every
executor, resume and shard write is the layer's; the row layout (one row per sample, an error row
for each sample of a failed request) lives here in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from ..llm.backends import Backend, Request, Response
from ..llm.passes import Key, ModelPass, Work
from ..llm.requests import build_messages, request_seed
from ..llm.store import ShardStore
from ..parse import format_for_prompt, parse_trace
from ..schema import SAMPLE_FIELDS, trace_id


def trace_schema(problem_schema: pa.Schema) -> pa.Schema:
    """The Arrow schema of trace shards: the problem columns, then `schema.SAMPLE_FIELDS`."""
    return pa.schema([*problem_schema, *SAMPLE_FIELDS])


@dataclass(frozen=True)
class TracePass(ModelPass):
    """`n` samples per problem, keyed by (problem_id, sample_index); small and picklable.

    Its fields but `schema` and `retry_failed` are the run's fingerprint (with the engine's model and
    reasoning parser), so a folder holding another configuration is refused. With `retry_failed`,
    error rows are not done: they are generated again.
    """

    schema: pa.Schema = field(compare=False)
    sampling: dict[str, Any]
    prompt_template: str
    system_prompt: str | None
    trace_format: str
    n: int
    chat_template_kwargs: dict[str, Any]
    problem_set: str
    """A hash of the whole problem set's ids."""
    retry_failed: bool = False
    key = ("problem_id", "sample_index")
    name = "generate"
    unit = "problem"
    error_column = "error"

    def fingerprint(self, engine: Backend) -> dict[str, Any]:
        return {
            "model": engine.model_name,
            "sampling": self.sampling,
            "prompt_template": self.prompt_template,
            "system_prompt": self.system_prompt,
            "chat_template_kwargs": self.chat_template_kwargs,
            "reasoning_parser": getattr(engine, "reasoning_parser", None),
            "trace_format": self.trace_format,
            "n": self.n,
            "problem_set": self.problem_set,
        }

    def keys(self, unit: Any) -> list[Key]:
        return [(unit, s) for s in range(self.n)]

    def is_done(self, error: str | None) -> bool:
        return error is None or not self.retry_failed

    def requests(self, work: list[Work]) -> list[Request | None]:
        """One request per problem for its missing samples, seeded from the first of them."""
        return [
            Request(
                messages=build_messages(row["problem"], self.prompt_template, self.system_prompt),
                n=len(keys),
                sampling={**self.sampling, "seed": request_seed(self.sampling["seed"], row["problem_id"], keys[0][1])},
            )
            for row, keys in work
        ]

    def rows(self, work: list[Work], requests: list[Request | None], responses: list[Response | None],
             model_name: str) -> list[dict[str, Any]]:
        return [trace for (row, keys), req, resp in zip(work, requests, responses)  # every unit is asked
                for trace in trace_rows(row, [s for _, s in keys], req, resp, model_name,  # type: ignore[arg-type]
                                        self.trace_format)]

    def read(self, store: ShardStore) -> Any:
        """The folder's traces, one row per key (a retried error row superseded by its new row)."""
        from ..load.sources import load_traces

        return load_traces(store.root)


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
