"""Problems → teacher backend → parsed traces, written as resumable shards when `output_dir` is set.

A run is identified by its fingerprint (model, sampling, prompt, n, problem set); its rows are
keyed by (problem_id, sample_index). Calling `generate` again with the same arguments generates
only the keys not yet written, so a killed or interrupted job is simply started again. The engine
starts before any request is taken (a start failure writes nothing), a dead engine is rebuilt a
few times, and an engine built here is shut down on every way out: the model-call layer's loop
(`llm.runner.run_pass`) running the generation pass (`rows.TracePass`). See docs/scaling.md.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from ..llm.backends import DEFAULT_BACKEND, Backend, build_backend, close
from ..llm.executors import EXECUTORS
from ..llm.requests import check_prompt_template
from ..llm.runner import run_pass
from ..llm.store import ShardStore, parse_shard, run_folder, shard_name, shard_of
from ..registry import Spec, parse_spec
from ..schema import SamplingConfig, as_dict, require_columns, require_unique_ids
from .rows import TracePass, trace_schema
from .summary import GenerationSummary

log = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATE = "{problem}"
DEFAULT_BATCH_SIZE = 1024
"""Problems per backend call (and per shard): large, so the engine always has work queued."""


def generate(
    problems: Any,
    model: Any = None,
    backend: Spec | Backend = DEFAULT_BACKEND,
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
    executor: Spec = "local",
    executor_kwargs: dict[str, Any] | None = None,
    return_summary: bool = False,
) -> Dataset | tuple[Dataset, GenerationSummary]:
    """Generate `n` traces per problem with a teacher model and parse them into trace columns.

    `problems` is anything `load_problems` reads. `model` is a hub name, a local path or a ready
    `vllm.LLM`; `backend` a name or spec from `BACKENDS` ("vllm", `{"openai": {"base_url": ...}}`) or a
    ready `Backend`, built with `backend_kwargs` (e.g. `base_url`, `reasoning_parser`,
    `max_concurrency`); `engine_kwargs` go to `vllm.LLM`. Seeds are derived per request from `sampling.seed` (recorded in `sampling`).

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
    (see `llm.executors.local_batches`) or `EngineDiedError` stops the run, whose written shards are kept.
    An engine built here is shut down when the call ends, however it ends (Ctrl-C included).
    """
    from ..load.sources import load_problems

    EXECUTORS.get(parse_spec(executor, "executor")[0])  # an unknown name is refused before anything runs
    for name, value in (("n", n), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    sampling_dict = SamplingConfig.model_validate(as_dict(sampling)).model_dump()  # before any engine starts
    check_prompt_template(prompt_template)
    ds = problems if isinstance(problems, Dataset) and "problem_id" in problems.column_names else load_problems(problems)
    require_columns(ds.column_names, ["problem_id", "problem"], "the problems")
    require_unique_ids(ds.with_format("arrow")["problem_id"].to_pylist(), "the problems")
    engine = build_backend(backend, model, engine_kwargs, chat_template_kwargs, backend_kwargs)
    model_pass = TracePass(
        schema=trace_schema(ds.features.arrow_schema), sampling=sampling_dict, prompt_template=prompt_template,
        system_prompt=system_prompt, trace_format=trace_format, n=n, chat_template_kwargs=chat_template_kwargs or {},
        problem_set=hashlib.sha256("\n".join(sorted(ds["problem_id"])).encode()).hexdigest()[:16],
        retry_failed=retry_failed)
    index, count = parse_shard(shard)
    mine = ds if count == 1 else ds.select([i for i, pid in enumerate(ds["problem_id"]) if shard_of(pid, count) == index])
    summary = GenerationSummary(problems=len(mine), requested=len(mine) * n, shard=f"{index}/{count}" if count > 1 else None)
    store = None
    if output_dir is not None:  # checked (and written) under the run folder's lock, before any engine starts
        fingerprint = model_pass.fingerprint(engine)
        root = run_folder(output_dir, fingerprint) if new_run else Path(output_dir)
        if root != Path(output_dir):
            log.warning("%s holds another run; new_run=True writes this one to %s", output_dir, root)
        store = ShardStore(root, shard_name(index, count))
        summary.output_dir = str(root)
        info = {"source": str(problems)} if isinstance(problems, (str, Path)) else None
        store.open_run(fingerprint, ds["problem_id"], extend_keys=("n",) if extend else (), info=info)
    try:
        out = run_pass(model_pass, mine, engine, store, batch_size=batch_size, executor=executor,
                       executor_kwargs=executor_kwargs, show_progress=show_progress, on_batch=summary.add)
    finally:
        if isinstance(backend, (str, dict)):
            close(engine)  # built here: its processes and shared memory go with this call
    summary.skipped = summary.requested - out.pending
    summary.seconds = out.seconds
    result = Dataset(out.rows) if store is None else _own_rows(out.rows, mine, n)
    summary.count_result(result["error"])
    log.info("%s (model %s)", summary, engine.model_name)
    return (result, summary) if return_summary else result


def _own_rows(traces: Dataset, mine: Dataset, n: int) -> Dataset:
    """The rows of this call (its share of problems, samples < n) out of a whole output folder."""
    table = traces.select_columns(["problem_id", "sample_index"]).with_format("arrow")[:]
    keep = pc.and_(pc.is_in(table.column("problem_id"), pa.array(mine["problem_id"], pa.string())),
                   pc.less(table.column("sample_index"), n))
    if pc.all(keep).as_py():
        return traces
    return traces.select(pc.indices_nonzero(keep).to_pylist())


