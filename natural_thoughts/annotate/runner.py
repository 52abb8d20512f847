"""`annotate()`: LLM annotators run through the generation backends, resumable, one error per row.

Every judge reply is constrained by the annotator's JSON schema (vLLM structured outputs, an
OpenAI server's `response_format`), then validated by its pydantic model. A reply that still fails
is asked once more (a fresh seed, temperature raised to at least `RETRY_TEMPERATURE`), then kept as
an error row with the raw reply: labels are never guessed. Backend errors (the engine failed, not
the judge) are kept as error rows too, but re-asked when a run resumes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, concatenate_datasets
from pydantic import BaseModel
from tqdm.auto import tqdm

from ..backends import Backend, Request, Response, get_backend
from ..schema import as_dict, require_columns
from ..shards import ShardStore
from ..trace_rows import request_seed
from .annotators import get_annotator
from .base import Annotator, ReplyError

log = logging.getLogger(__name__)

DEFAULT_SAMPLING: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "seed": 0}
"""Judges decode greedily by default; `sampling=` overrides any key."""
ATTEMPTS = 2
RETRY_TEMPERATURE = 0.7
BACKEND_ERROR = "backend error: "
"""Prefix of errors the engine raised (not the judge's reply): re-asked when a run resumes."""


@dataclass(frozen=True)
class Outcome:
    """One judgement: the validated answer, or the error; the raw reply either way."""

    answer: BaseModel | None
    raw: str | None
    error: str | None


def _sampling(base: dict[str, Any], key: str, attempt: int) -> dict[str, Any]:
    """Per-request sampling: a seed derived from the row key and attempt; retries are not greedy."""
    out = {**base, "seed": request_seed(int(base.get("seed", 0)), key, attempt)}
    if attempt > 0:
        out["temperature"] = max(float(base.get("temperature", 0.0)), RETRY_TEMPERATURE)
    return out


def _outcome(annotator: Annotator, response: Response, attempt: int) -> tuple[Outcome, bool]:
    """The outcome of one response and whether asking again may help (invalid replies only)."""
    if response.error is not None or not response.completions:
        return Outcome(None, None, f"{BACKEND_ERROR}{response.error or 'no completion returned'}"), False
    completion = response.completions[0]
    try:
        return Outcome(annotator.parse(completion.text), completion.text, None), False
    except ReplyError as exc:
        error = f"{exc} (finish_reason={completion.finish_reason}; attempt {attempt + 1} of {ATTEMPTS})"
        return Outcome(None, completion.text, error), True


def ask(annotator: Annotator, asks: list[tuple[str, list[dict[str, str]]]], engine: Backend,
        sampling: dict[str, Any]) -> list[Outcome]:
    """Ask the judge every (seed key, messages) pair; invalid replies are asked once more."""
    schema = annotator.json_schema()
    outcomes: list[Outcome] = [Outcome(None, None, "not asked")] * len(asks)
    todo = list(range(len(asks)))
    for attempt in range(ATTEMPTS):
        if not todo:
            break
        requests = [Request(messages=asks[i][1], sampling=_sampling(sampling, asks[i][0], attempt),
                            json_schema=schema) for i in todo]
        retry = []
        for i, response in zip(todo, engine.generate(requests)):
            outcomes[i], again = _outcome(annotator, response, attempt)
            if again:
                retry.append(i)
        todo = retry
        if attempt == 0:
            _check_alive(outcomes)
    return outcomes


def _check_alive(outcomes: list[Outcome]) -> None:
    """Stop when every request of a batch failed with one and the same backend error: the engine or
    server is down, and writing that error for every remaining row would only bury the cause."""
    errors = {o.error for o in outcomes}
    if len(outcomes) > 1 and len(errors) == 1 and (error := errors.pop()) and error.startswith(BACKEND_ERROR):
        raise RuntimeError(f"every request of a batch failed with the same {error!r}; fix the engine or "
                           "server and call again (a run with output_dir resumes where it stopped)")


def engine_for(backend: str | Backend, model: Any, engine_kwargs: dict[str, Any] | None,
               chat_template_kwargs: dict[str, Any] | None) -> Backend:
    """The judge's backend: a ready instance as it is, or one built from a name and a model."""
    if backend == "vllm":
        return get_backend(backend, model, engine_kwargs=engine_kwargs,
                           chat_template_kwargs=chat_template_kwargs, use_tqdm=False)
    return get_backend(backend, model, **dict(engine_kwargs or {}))


def annotate(
    traces: Any,
    annotators: list[str | Annotator],
    model: Any = None,
    backend: str | Backend = "vllm",
    sampling: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    batch_size: int = 256,
    engine_kwargs: dict[str, Any] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> Dataset:
    """Label `traces` with LLM `annotators` (names from `ANNOTATORS` or instances).

    `model` is a hub name, a local path or a ready `vllm.LLM`; `backend` a name or a ready
    `Backend`. Adds each annotator's `label.*` columns plus `label.<name>.raw` (the judge's reply)
    and `label.<name>.error` (null, or why the row has no label). With `output_dir`, every batch is
    a shard under `<output_dir>/<name>-<prompt sha256[:12]>/`, whose manifest holds the prompt text
    and hash, model and sampling; calling again judges only the keys not yet written.
    """
    from ..io import load_traces

    ds = traces if isinstance(traces, Dataset) else load_traces(traces)
    anns = [get_annotator(a) for a in annotators]
    if not anns:
        raise ValueError("annotate needs at least one annotator")
    seen: dict[str, str] = {}
    for a in anns:
        require_columns(ds.column_names, [a.key, *a.needs], f"the traces (for annotator {a.name!r})")
        for col in a.label_columns():
            if col in seen:
                raise ValueError(f"annotators {seen[col]!r} and {a.name!r} both write {col!r}; rename one (name=...)")
            seen[col] = a.name
    engine = engine_for(backend, model, engine_kwargs, chat_template_kwargs)
    sampling_dict = {**DEFAULT_SAMPLING, **as_dict(sampling)}
    for a in anns:
        ds = _attach(ds, a, _run(ds, a, engine, sampling_dict, output_dir, batch_size, show_progress))
    return ds


def _run(ds: Dataset, a: Annotator, engine: Backend, sampling: dict[str, Any],
         output_dir: str | Path | None, batch_size: int, show_progress: bool) -> pa.Table:
    """Judge every key of `ds` not judged yet; return all judgements as a table (key + columns)."""
    schema = pa.schema([pa.field(a.key, pa.string()), *(pa.field(c, t) for c, t in a.label_columns().items())])
    store, done = None, set()
    if output_dir is not None:
        store = ShardStore(Path(output_dir) / f"{a.name}-{a.prompt_sha256[:12]}")
        store.check_manifest({**a.fingerprint(), "model": engine.model_name, "sampling": sampling})
        written = store.read_keys(columns=(a.key, f"label.{a.name}.error")).to_pydict()
        done = {k for k, e in zip(*written.values()) if not (e or "").startswith(BACKEND_ERROR)}
    keys = ds[a.key]
    for i, k in enumerate(keys):
        if k is None:
            raise ValueError(f"row {i} has no {a.key!r}; annotator {a.name!r} keys its labels by it")
    pending = len(set(keys) - done)
    tables: list[pa.Table] = []
    errors = 0
    bar = tqdm(total=pending, unit=a.scope, desc=f"annotate {a.name}", disable=not show_progress)
    with store.lock() if store is not None else contextlib.nullcontext():
        for rows in _pending_batches(ds, a, done, batch_size):
            table = pa.Table.from_pylist(_judge(a, rows, engine, sampling), schema=schema)
            if store is not None:
                store.write(table)
            else:
                tables.append(table)
            errors += sum(e is not None for e in table.column(f"label.{a.name}.error").to_pylist())
            bar.update(len(rows))
            bar.set_postfix(errors=errors)
    bar.close()
    log.info("annotator %s: %d judged, %d errors", a.name, pending, errors)
    if store is not None:
        tables = [pq.read_table(f, schema=schema) for f in store.shard_files()]
    return pa.concat_tables([schema.empty_table(), *tables])


def _pending_batches(ds: Dataset, a: Annotator, done: set[str], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Batches of rows whose key is not judged yet, one row per key (the first), streaming `ds`."""
    columns = [c for c in dict.fromkeys([a.key, *a.needs, "reasoning", "completion"]) if c in ds.column_names]
    view = ds.select_columns(columns)
    seen = set(done)
    batch: list[dict[str, Any]] = []
    for start in range(0, len(view), batch_size):
        chunk = view[start : start + batch_size]
        for j in range(len(chunk[a.key])):
            row = {c: chunk[c][j] for c in columns}
            if row[a.key] not in seen:
                seen.add(row[a.key])
                batch.append(row)
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _judge(a: Annotator, rows: list[dict[str, Any]], engine: Backend, sampling: dict[str, Any]) -> list[dict[str, Any]]:
    """One output row per input row: labels from the judge, or null labels and the reason."""
    empty = dict.fromkeys(a.label_columns())
    skips = [a.skip_reason(r) for r in rows]
    asked = [i for i, s in enumerate(skips) if s is None]
    outcomes = ask(a, [(rows[i][a.key], a.messages(rows[i])) for i in asked], engine, sampling)
    out = [{a.key: r[a.key], **empty} for r in rows]
    for i, o in zip(asked, outcomes):
        out[i][f"label.{a.name}.raw"] = o.raw
        out[i][f"label.{a.name}.error"] = o.error
        if o.answer is not None:
            out[i].update({f"label.{k}": v for k, v in a.labels(o.answer).items()})
    return out


def _attach(ds: Dataset, a: Annotator, table: pa.Table) -> Dataset:
    """`ds` with the annotator's columns, aligned by key (a later judgement of a key wins)."""
    index = {k: i for i, k in enumerate(table.column(a.key).to_pylist())}
    take = pa.array([index.get(k) for k in ds[a.key]], pa.int64())
    labels = table.take(take).drop_columns([a.key])
    ds = ds.remove_columns([c for c in labels.column_names if c in ds.column_names])
    return concatenate_datasets([ds, Dataset(labels)], axis=1)

