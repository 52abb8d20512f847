"""Problems → teacher backend → parsed traces, written as resumable shards when `output_dir` is set."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from datasets import Dataset
from tqdm.auto import tqdm

from .backends import Backend, Request, Response, get_backend
from .parse import parse_trace
from .schema import PROBLEM_COLUMNS, SamplingConfig, as_dict, require_columns, trace_id
from .shards import ShardStore

log = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATE = "{problem}"
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


def request_seed(seed: int, pid: str, first_sample: int) -> int:
    """A per-request seed: reproducible, different across problems and sample blocks."""
    digest = hashlib.sha256(f"{seed}:{pid}:{first_sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def build_messages(problem: str, prompt_template: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat messages for one problem."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": prompt_template.format(problem=problem)})
    return messages


def generate(
    problems: Any,
    model: Any = None,
    backend: str | Backend = "vllm",
    n: int = 1,
    sampling: SamplingConfig | dict[str, Any] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    system_prompt: str | None = None,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    trace_format: str = "auto",
    output_dir: str | Path | None = None,
    batch_size: int = 512,
    extend: bool = False,
    engine_kwargs: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> Dataset:
    """Generate `n` traces per problem with a teacher model and parse them into trace columns.

    `problems` is anything `load_problems` reads. `model` is a hub name, a local path or a ready
    `vllm.LLM`; `backend` a name or a ready `Backend`. Seeds are derived per request from
    `sampling.seed` and recorded in the `sampling` column. With `output_dir`, every batch of
    `batch_size` problems is written as a shard at once; calling again with the same arguments
    generates only the (problem_id, sample_index) pairs not yet written.
    """
    from .io import load_problems, load_traces

    ds = problems if isinstance(problems, Dataset) and "problem_id" in problems.column_names else load_problems(problems)
    require_columns(ds.column_names, ["problem_id", "problem"], "the problems")
    sampling_dict = {**SamplingConfig().model_dump(), **as_dict(sampling)}
    engine = get_backend(backend, model, **_backend_kwargs(backend, engine_kwargs, chat_template_kwargs))
    fingerprint = {
        "model": engine.model_name,
        "sampling": sampling_dict,
        "prompt_template": prompt_template,
        "system_prompt": system_prompt,
        "chat_template_kwargs": chat_template_kwargs or {},
        "trace_format": trace_format,
        "n": n,
        "problem_set": hashlib.sha256("\n".join(sorted(ds["problem_id"])).encode()).hexdigest()[:16],
    }
    store = ShardStore(output_dir) if output_dir is not None else None
    done: set[tuple[str, int]] = set()
    if store is not None:
        store.check_manifest(fingerprint, extend_keys=("n",) if extend else ())
        keys = store.read_keys().to_pydict()
        done = set(zip(keys["problem_id"], keys["sample_index"]))

    problem_schema = ds.features.arrow_schema
    schema = pa.schema([*problem_schema, *(pa.field(k, v) for k, v in TRACE_FIELDS.items())])
    tables: list[pa.Table] = []
    counts = {"rows": 0, "errors": 0, "tokens": 0}
    started = time.perf_counter()
    todo = _pending(ds, n, done)
    bar = tqdm(total=sum(len(b[2]) for b in todo), unit="problem", disable=not show_progress, desc="generate")
    for batch in _batches(todo, batch_size):
        requests = [
            Request(
                messages=build_messages(row["problem"], prompt_template, system_prompt),
                n=len(samples),
                sampling={**sampling_dict, "seed": request_seed(sampling_dict["seed"], row["problem_id"], samples[0])},
            )
            for row, _, samples in batch
        ]
        responses = engine.generate(requests)
        rows = [
            trace
            for (row, _, samples), req, resp in zip(batch, requests, responses)
            for trace in _trace_rows(row, samples, req, resp, engine.model_name, trace_format)
        ]
        table = pa.Table.from_pylist(rows, schema=schema)
        if store is not None:
            store.write(table)
        else:
            tables.append(table)
        counts["rows"] += len(rows)
        counts["errors"] += sum(r["error"] is not None for r in rows)
        counts["tokens"] += sum((r["reasoning_tokens"] or 0) + (r["answer_tokens"] or 0) for r in rows)
        bar.update(len(batch))
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(tok_s=f"{counts['tokens'] / elapsed:.0f}", errors=counts["errors"])
    bar.close()
    log.info("generated %d traces (%d errors) with %s", counts["rows"], counts["errors"], engine.model_name)
    if store is not None:
        return load_traces(store.root)
    empty = schema.empty_table()
    return Dataset(pa.concat_tables([empty, *tables])) if tables else Dataset(empty)


def _backend_kwargs(backend: Any, engine_kwargs: dict[str, Any] | None,
                    chat_template_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    if backend == "vllm":
        return {"engine_kwargs": engine_kwargs, "chat_template_kwargs": chat_template_kwargs}
    return dict(engine_kwargs or {})


def _pending(ds: Dataset, n: int, done: set[tuple[str, int]]) -> list[tuple[dict[str, Any], int, list[int]]]:
    """(problem row, row index, sample indices still to generate) for every unfinished problem."""
    todo = []
    for i, row in enumerate(ds):
        missing = [s for s in range(n) if (row["problem_id"], s) not in done]
        if missing:
            todo.append((row, i, missing))
    return todo


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _trace_rows(row: dict[str, Any], samples: list[int], request: Request, response: Response,
                model_name: str, trace_format: str) -> list[dict[str, Any]]:
    """One trace row per requested sample, an error row for each when the request failed."""
    now = datetime.now(timezone.utc).isoformat()
    problem_part = {c: row[c] for c in row}
    sampling = json.dumps({**request.sampling, "n": request.n}, sort_keys=True)
    rows = []
    for j, sample_index in enumerate(samples):
        base = {
            **problem_part,
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
        parsed = parse_trace(c.text, format=trace_format, finish_reason=c.finish_reason, reasoning=c.reasoning)
        reasoning_tokens = _reasoning_tokens(c.reasoning_tokens, c.completion_tokens, parsed.reasoning, parsed.flags)
        answer_tokens = (c.completion_tokens - reasoning_tokens
                         if c.completion_tokens is not None and reasoning_tokens is not None else None)
        rows.append({**base, "completion": c.text if c.reasoning is None else f"<think>{c.reasoning}</think>{c.text}",
                     "reasoning": parsed.reasoning, "answer": parsed.answer, "final_answer": parsed.final_answer,
                     "reasoning_tokens": reasoning_tokens, "answer_tokens": answer_tokens,
                     "finish_reason": c.finish_reason, "flags": list(parsed.flags), "error": None})
    return rows


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


__all__ = ["generate", "build_messages", "request_seed", "PROBLEM_COLUMNS"]
