"""Where batches run: in this process (`local`) or on a Ray cluster (`ray`, one engine per actor).

Both yield finished batches as (trace table, completion tokens, problems) to `generate`, which
writes every table as one shard of the same layout, so resume, `status` and `merge` do not care
which executor made a shard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from .backends import Backend, EngineDiedError, get_backend, restart
from .trace_rows import RowMaker, Work

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
ENGINE_RESTARTS = 2
"""How many times a dead engine is rebuilt for one batch before the run stops."""
SAMPLES = "__samples"
TOKENS = "__completion_tokens"
Batch = tuple[pa.Table, int, int]
"""A finished batch: its trace rows, its completion tokens, its number of problems."""


def local_batches(engine: Backend, maker: RowMaker, work: list[Work], schema: pa.Schema,
                  batch_size: int) -> Iterator[Batch]:
    """Run `work` in batches of `batch_size` problems, one backend call per batch.

    An engine that dies is rebuilt and its batch run again, up to `ENGINE_RESTARTS` times per
    batch; then `EngineDiedError` stops the run (every batch written so far is kept).
    """
    for start in range(0, len(work), batch_size):
        batch = work[start : start + batch_size]
        for attempt in range(ENGINE_RESTARTS + 1):
            try:
                table, tokens = maker.run(engine, batch, schema)
                break
            except EngineDiedError as exc:
                if attempt == ENGINE_RESTARTS:
                    raise EngineDiedError(f"{exc}. It died {attempt + 1} times on the same batch, so the run "
                                          "stops") from exc
                log.warning("%s; rebuilding it (restart %d of %d)", exc, attempt + 1, ENGINE_RESTARTS)
                if not restart(engine):
                    raise EngineDiedError(f"{exc}. It was passed in ready-made, so it cannot be rebuilt "
                                          "here: start a new one") from exc
        yield table, tokens, len(batch)


class EngineActor:
    """A Ray Data actor holding one backend (one vLLM engine) for its whole life."""

    def __init__(self, backend: str, model: Any, backend_kwargs: dict[str, Any], maker: RowMaker,
                 schema: pa.Schema) -> None:
        self.engine = get_backend(backend, model, **backend_kwargs)
        self.maker = maker
        self.schema = schema

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Problems (+ their missing sample indices) in, trace rows (+ token count) out."""
        rows = batch.to_pylist()
        work = [(row, list(row.pop(SAMPLES))) for row in rows]
        table, tokens = self.maker.run(self.engine, work, self.schema)
        counts = [tokens] + [0] * (table.num_rows - 1)
        return table.append_column(TOKENS, pa.array(counts, pa.int64()))


def ray_batches(backend: str | Backend, model: Any, backend_kwargs: dict[str, Any], maker: RowMaker,
                work: list[Work], problem_schema: pa.Schema, schema: pa.Schema, batch_size: int,
                concurrency: int = 1, num_gpus: float = 1, num_cpus: float | None = None,
                ray_init: dict[str, Any] | None = None, **ray_remote_args: Any) -> Iterator[Batch]:
    """Run `work` under Ray Data: `map_batches` over a pool of `concurrency` engine actors.

    Each actor asks for `num_gpus` GPUs (0 runs on CPU) and builds its own backend from the
    backend name, `model` (a hub name or path: a ready engine cannot travel) and `backend_kwargs`.
    Ray is started with `ray_init` when not running yet (`RAY_ADDRESS` joins an existing cluster).
    Finished batches stream back here, where they are written, so one writer owns the shard folder.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("executor='ray' needs Ray Data: `pip install 'natural-thoughts[ray]'`") from exc
    if not isinstance(backend, str) or not isinstance(model, str):
        raise ValueError("executor='ray' needs a backend name and a model name or path (each Ray actor "
                         "builds its own engine); a ready engine or backend instance cannot be shipped")
    if not ray.is_initialized():
        ray.init(**(ray_init or {}))
    kwargs = {**backend_kwargs, "use_tqdm": False} if backend == "vllm" else dict(backend_kwargs)
    problems = pa.Table.from_pylist([row for row, _ in work], schema=problem_schema)
    problems = problems.append_column(SAMPLES, pa.array([s for _, s in work], pa.list_(pa.int64())))
    blocks = [problems.slice(start, batch_size) for start in range(0, problems.num_rows, batch_size)]
    ds = ray.data.from_arrow(blocks).map_batches(  # one block per batch: results stream back per batch
        EngineActor,
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        fn_constructor_kwargs={"backend": backend, "model": model, "backend_kwargs": kwargs,
                               "maker": maker, "schema": schema},
        num_gpus=num_gpus,
        num_cpus=num_cpus,
        **ray_remote_args,
    )
    for out in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        if out.num_rows == 0:
            continue
        tokens = sum(out.column(TOKENS).to_pylist())
        table = out.drop_columns([TOKENS]).cast(schema)
        yield table, tokens, len(set(table.column("problem_id").to_pylist()))
