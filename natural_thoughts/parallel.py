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
from functools import partial
from typing import Any, Literal, TypeVar, get_args

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


def map_batches(fn: Callable[..., Out], batches: Iterable[In], executor: str = "local",
                num_proc: int = 1, shared: Any = None) -> Iterator[Out]:
    """`fn(batch)` for every batch, in order. `executor="local"` runs `fn` here (`num_proc=1`) or in
    `num_proc` forked processes; `"ray"` runs each batch as a Ray task on the running cluster (or on
    a local one started here; `RAY_ADDRESS` joins an existing one). `fn` must be picklable (a
    module-level function or a `functools.partial` of one) for processes and Ray.

    With `shared` (local only), `fn(shared, batch)` is called instead: forked processes inherit
    `shared` once, e.g. a memory-mapped dataset whose rows each batch names, rather than receive
    it, or the rows, with every batch."""
    check_executor(executor, "map_batches")
    if executor == "ray":
        if shared is not None:
            raise ValueError("map_batches: `shared` is inherited by forked processes; Ray tasks need "
                             "their inputs in the batches")
        yield from _ray(fn, batches)
    elif num_proc > 1:
        fork = multiprocessing.get_context("fork")
        pool_init = {} if shared is None else {"initializer": _set_inherited, "initargs": (shared,)}
        task = fn if shared is None else partial(_with_inherited, fn)
        with ProcessPoolExecutor(num_proc, mp_context=fork, **pool_init) as pool:  # a fork pickles no initargs
            yield from _windowed(pool.submit, lambda future: future.result(), task, batches, IN_FLIGHT * num_proc)
    else:
        yield from (fn(batch) if shared is None else fn(shared, batch) for batch in batches)


_inherited: Any = None
"""In a process forked by `map_batches`, the `shared` object it was given."""


def _set_inherited(shared: Any) -> None:
    """Each forked worker's initializer: keep `shared`."""
    global _inherited
    _inherited = shared


def _with_inherited(fn: Callable[..., Out], batch: Any) -> Out:
    """`fn` of the inherited `shared` object and `batch`, in a worker."""
    return fn(_inherited, batch)


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
