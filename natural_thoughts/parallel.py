"""Per-row work over Arrow batches: in this process, in a pool of processes, or as Ray tasks.

`map_batches(fn, batches)` yields `fn(batch)` for every batch, in order, with a few batches in
flight at most, so neither the inputs nor the results of a large pool are ever all in memory. The
executor changes where `fn` runs, never what it returns: every way gives the same results.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import pyarrow as pa
from datasets import Dataset
from datasets.table import ConcatenationTable, MemoryMappedTable

In = TypeVar("In")
Out = TypeVar("Out")
Executor = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = get_args(Executor)
PARALLEL_ROWS = 20_000
"""From this many rows on, `processes(None, rows)` uses one process per CPU."""
IN_FLIGHT = 2
"""Batches submitted per worker before the first result is awaited (keeps every worker busy)."""


def check_executor(executor: str, what: str) -> None:
    """Refuse an unknown executor name, naming the known ones."""
    if executor not in EXECUTORS:
        raise ValueError(f"{what}: executor must be one of {list(EXECUTORS)}, got {executor!r}")


def processes(num_proc: int | None, rows: int) -> int:
    """How many local processes work on `rows` rows: `num_proc`, or one per CPU from `PARALLEL_ROWS`."""
    if num_proc is not None and num_proc < 1:
        raise ValueError(f"num_proc must be at least 1, got {num_proc}")
    return num_proc or ((os.cpu_count() or 1) if rows >= PARALLEL_ROWS else 1)


def map_batches(fn: Callable[[In], Out], batches: Iterable[In], executor: str = "local",
                num_proc: int = 1) -> Iterator[Out]:
    """`fn(batch)` for every batch, in order. `executor="local"` runs `fn` here (`num_proc=1`) or in
    `num_proc` forked processes; `"ray"` runs each batch as a Ray task on the running cluster (or on
    a local one started here; `RAY_ADDRESS` joins an existing one). `fn` must be picklable (a
    module-level function or a `functools.partial` of one) for processes and Ray."""
    check_executor(executor, "map_batches")
    if executor == "ray":
        yield from _ray(fn, batches)
    elif num_proc > 1:
        with ProcessPoolExecutor(num_proc, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from _windowed(pool.submit, lambda future: future.result(), fn, batches, IN_FLIGHT * num_proc)
    else:
        yield from map(fn, batches)


def _windowed(submit: Callable[..., Any], result: Callable[[Any], Out], fn: Callable[[In], Out],
              batches: Iterable[In], window: int) -> Iterator[Out]:
    """Submit batches with at most `window` pending, yielding results in submission order."""
    pending: deque[Any] = deque()
    for batch in batches:
        pending.append(submit(fn, batch))
        if len(pending) >= window:
            yield result(pending.popleft())
    while pending:
        yield result(pending.popleft())


def _ray(fn: Callable[[In], Out], batches: Iterable[In]) -> Iterator[Out]:
    """`fn` of every batch as Ray tasks, two per cluster CPU in flight, in order."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("executor='ray' needs Ray: `pip install 'natural-thoughts[ray]'`") from exc
    if not ray.is_initialized():
        ray.init()
    task = ray.remote(lambda f, batch: f(batch))
    cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
    yield from _windowed(lambda f, batch: task.remote(f, batch), ray.get, fn, batches, IN_FLIGHT * cpus)


@dataclass(frozen=True)
class Rows:
    """Rows [start, stop) of a dataset whose tables are all memory-mapped files: pickled, it is the
    files' names (a few KB), and a worker reads the rows itself instead of receiving their values."""

    ds: Dataset
    start: int
    stop: int


def in_files(ds: Dataset) -> bool:
    """Whether every table of `ds` (and its indices mapping) is a memory-mapped file."""
    table = ds.data
    blocks = [b for row in table.blocks for b in row] if isinstance(table, ConcatenationTable) else [table]
    indices = getattr(ds, "_indices", None)
    return all(isinstance(b, MemoryMappedTable) for b in blocks) and (indices is None or isinstance(indices, MemoryMappedTable))


def row_batches(ds: Dataset, size: int, executor: str, num_proc: int) -> Iterator[pa.Table | Rows]:
    """`ds` in batches of `size` rows for `map_batches`: as `Rows` when they go to local processes
    and `ds` lives in files (no values are copied to the workers), else as Arrow tables (a Ray
    worker may run on a machine without the files)."""
    view = ds.with_format("arrow")
    by_name = executor == "local" and num_proc > 1 and in_files(ds)
    for start in range(0, len(view), size):
        stop = min(start + size, len(view))
        yield Rows(view, start, stop) if by_name else view[start:stop]


def rows_table(batch: pa.Table | Rows) -> pa.Table:
    """The rows of a `row_batches` batch, read here if it came as `Rows`."""
    return batch.ds[batch.start : batch.stop] if isinstance(batch, Rows) else batch
