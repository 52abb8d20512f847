"""Problems → teacher backend → parsed traces, written as resumable shards when `output_dir` is set.

A run is identified by its fingerprint (model, sampling, prompt, n, problem set); its rows are
keyed by (problem_id, sample_index). Calling `generate` again with the same arguments generates
only the keys not yet written, so a killed or interrupted job is simply started again. The engine
starts before any request is taken (a start failure writes nothing), a dead engine is rebuilt a
few times, and an engine built here is shut down on every way out. See docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset
from tqdm.auto import tqdm

from .backends import Backend, EngineStartError, close, get_backend, start
from .executors import EXECUTORS, local_batches, ray_batches
from .schema import PROBLEM_COLUMNS, SamplingConfig, as_dict, require_columns, require_unique_ids
from .shards import ShardStore, parse_shard, run_folder, shard_name, shard_of
from .trace_rows import (GenerationSummary, RowMaker, Work, build_messages, check_prompt_template, request_seed,
                         trace_schema)

log = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATE = "{problem}"
DEFAULT_BATCH_SIZE = 1024
"""Problems per backend call (and per shard): large, so the engine always has work queued."""


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
    batch_size: int = DEFAULT_BATCH_SIZE,
    extend: bool = False,
    engine_kwargs: dict[str, Any] | None = None,
    show_progress: bool = True,
    *,
    backend_kwargs: dict[str, Any] | None = None,
    shard: str | tuple[int, int] | None = None,
    retry_failed: bool = False,
    new_run: bool = False,
    executor: str = "local",
    executor_kwargs: dict[str, Any] | None = None,
    return_summary: bool = False,
) -> Dataset | tuple[Dataset, GenerationSummary]:
    """Generate `n` traces per problem with a teacher model and parse them into trace columns.

    `problems` is anything `load_problems` reads. `model` is a hub name, a local path or a ready
    `vllm.LLM`; `backend` a name ("vllm", "openai") or a ready `Backend`, built with
    `backend_kwargs` (e.g. `base_url`, `reasoning_parser`, `max_concurrency`); `engine_kwargs` go to
    `vllm.LLM`. Seeds are derived per request from `sampling.seed` (recorded in `sampling`).

    With `output_dir`, every batch of `batch_size` problems is written as a shard at once and a
    call with the same arguments generates only the (problem_id, sample_index) pairs not yet
    written. A folder holding another configuration is refused (the changed keys are named) unless
    `extend=True` (only `n` changed: the new samples are generated) or `new_run=True` (the run
    goes to the sibling folder `<output_dir>-<fingerprint hash>`; nothing is moved or deleted).
    `shard=(i, N)` / "i/N" keeps the problems whose id hashes to share i, written under
    `shard-i-of-N/`, so N jobs can fill one folder. `retry_failed=True` generates the error rows
    again; the new rows supersede them when read. `executor="ray"` runs batches on Ray Data actors
    (`executor_kwargs`: concurrency, num_gpus, num_cpus, ray_init). With `return_summary`, a
    `GenerationSummary` (counts, errors by kind, tokens/s, errors among the rows returned) is
    returned too; it is always logged.

    `sampling`, `n`, `batch_size` and `prompt_template` (`{problem}`, or jinja `{{ problem }}` rendered
    in a sandbox) are checked before anything is written. The engine starts before any request is
    taken: a start failure raises `EngineStartError` and writes nothing; a dead engine is rebuilt
    (see `executors.local_batches`) or `EngineDiedError` stops the run, whose written shards are kept.
    An engine built here is shut down when the call ends, however it ends (Ctrl-C included).
    """
    from .io import load_problems, load_traces

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known executors: {list(EXECUTORS)}")
    for name, value in (("n", n), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    sampling_dict = SamplingConfig.model_validate(as_dict(sampling)).model_dump()  # before any engine starts
    check_prompt_template(prompt_template)
    ds = problems if isinstance(problems, Dataset) and "problem_id" in problems.column_names else load_problems(problems)
    require_columns(ds.column_names, ["problem_id", "problem"], "the problems")
    require_unique_ids(ds.with_format("arrow")["problem_id"].to_pylist(), "the problems")
    kwargs = _backend_kwargs(backend, engine_kwargs, chat_template_kwargs, backend_kwargs)
    engine = get_backend(backend, model, **kwargs)
    fingerprint = {
        "model": engine.model_name,
        "sampling": sampling_dict,
        "prompt_template": prompt_template,
        "system_prompt": system_prompt,
        "chat_template_kwargs": chat_template_kwargs or {},
        "reasoning_parser": getattr(engine, "reasoning_parser", None),
        "trace_format": trace_format,
        "n": n,
        "problem_set": hashlib.sha256("\n".join(sorted(ds["problem_id"])).encode()).hexdigest()[:16],
    }
    index, count = parse_shard(shard)
    mine = ds if count == 1 else ds.select([i for i, pid in enumerate(ds["problem_id"]) if shard_of(pid, count) == index])
    summary = GenerationSummary(problems=len(mine), requested=len(mine) * n, shard=f"{index}/{count}" if count > 1 else None)
    store = None
    if output_dir is not None:
        root = run_folder(output_dir, fingerprint) if new_run else Path(output_dir)
        if root != Path(output_dir):
            log.warning("%s holds another run; new_run=True writes this one to %s", output_dir, root)
        store = ShardStore(root, shard_name(index, count))
        summary.output_dir = str(root)

    schema = trace_schema(ds.features.arrow_schema)
    maker = RowMaker(sampling_dict, prompt_template, system_prompt, trace_format)
    tables: list[pa.Table] = []
    created = False
    if store is not None:  # checked (and written) under the run folder's lock, before any engine starts
        info = {"source": str(problems)} if isinstance(problems, (str, Path)) else None
        created = store.open_run(fingerprint, ds["problem_id"], extend_keys=("n",) if extend else (), info=info)
    try:
        with store.lock() if store is not None else contextlib.nullcontext():
            work = _pending(mine, n, _done_keys(store, retry_failed))
            summary.skipped = summary.requested - sum(len(s) for _, s in work)
            if executor == "ray" and work:
                batches = ray_batches(backend, model, kwargs, maker, work, ds.features.arrow_schema, schema,
                                      batch_size, **(executor_kwargs or {}))
            else:
                if work:
                    _start(engine, store if created else None)
                batches = local_batches(engine, maker, work, schema, batch_size)
            started = time.perf_counter()
            bar = tqdm(total=len(work), unit="problem", disable=not show_progress or not work, desc="generate")
            for table, tokens, done_problems in batches:
                if store is not None:
                    store.write(table)
                else:
                    tables.append(table)
                summary.add(table, tokens)
                summary.seconds = time.perf_counter() - started
                bar.update(done_problems)
                bar.set_postfix(samples=summary.generated, tok_s=f"{summary.tokens_per_s:.0f}",
                                errors=summary.error_count)
            bar.close()
            summary.seconds = time.perf_counter() - started
    finally:
        if isinstance(backend, str):
            close(engine)  # built here: its processes and shared memory go with this call
    if store is None:
        result = Dataset(pa.concat_tables([schema.empty_table(), *tables]))
    else:
        result = _own_rows(load_traces(store.root), mine, n)
    summary.count_result(result["error"])
    log.info("%s (model %s)", summary, engine.model_name)
    return (result, summary) if return_summary else result


def _start(engine: Backend, new_run: ShardStore | None) -> None:
    """Start the engine before any request is taken; on failure, undo a run folder this call created."""
    try:
        start(engine)
    except EngineStartError:
        if new_run is not None:
            new_run.discard_empty_run()
        raise


def _backend_kwargs(backend: Any, engine_kwargs: dict[str, Any] | None, chat_template_kwargs: dict[str, Any] | None,
                    backend_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Constructor arguments of a named backend (a ready instance takes none). vLLM's own progress
    bar is off: `generate` shows one bar for the whole stage."""
    if not isinstance(backend, str):
        return {}
    if backend == "vllm":
        return {"engine_kwargs": engine_kwargs, "chat_template_kwargs": chat_template_kwargs,
                "use_tqdm": False, **(backend_kwargs or {})}
    own = {"chat_template_kwargs": chat_template_kwargs} if chat_template_kwargs else {}
    return {**own, **(engine_kwargs or {}), **(backend_kwargs or {})}


def _done_keys(store: ShardStore | None, retry_failed: bool) -> set[tuple[str, int]]:
    """Keys already written; with `retry_failed`, only those with a row that has no error."""
    if store is None:
        return set()
    keys = store.read_keys()
    if retry_failed:
        keys = keys.filter(pc.is_null(keys.column("error")))
    return set(zip(keys.column("problem_id").to_pylist(), keys.column("sample_index").to_pylist()))


def _pending(ds: Dataset, n: int, done: set[tuple[str, int]]) -> list[Work]:
    """(problem row, sample indices still to generate) for every unfinished problem, in order."""
    work = []
    for row in ds:
        missing = [s for s in range(n) if (row["problem_id"], s) not in done]
        if missing:
            work.append((row, missing))
    return work


def _own_rows(traces: Dataset, mine: Dataset, n: int) -> Dataset:
    """The rows of this call (its share of problems, samples < n) out of a whole output folder."""
    table = traces.select_columns(["problem_id", "sample_index"]).with_format("arrow")[:]
    keep = pc.and_(pc.is_in(table.column("problem_id"), pa.array(mine["problem_id"], pa.string())),
                   pc.less(table.column("sample_index"), n))
    if pc.all(keep).as_py():
        return traces
    return traces.select(pc.indices_nonzero(keep).to_pylist())


__all__ = ["generate", "build_messages", "request_seed", "GenerationSummary", "PROBLEM_COLUMNS"]
