"""Where batches run: in this process (`local`) or on a Ray cluster (`ray`, one engine per actor).

An executor is `executor(engine, model_pass, batches, **options) -> Iterator[Batch]`: it does its
setup when called (the local one starts the engine, so a start failure raises before any request)
and yields each finished batch to the loop, which writes it as one shard, so resume, `status` and
`merge` do not care which executor made a shard. `EXECUTORS` is a `Registry`: third parties add
one through the entry-point group `natural_thoughts.executors`.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from ..registry import Registry
from .backends import Backend, EngineDiedError, EngineStartError, restart, start
from .backends.watchdog import start_watchdog
from .passes import ModelPass, Work, call, shard_schema

log = logging.getLogger(__name__)

EXECUTORS: Registry = Registry("executor")
ENGINE_RESTARTS = 2
"""How many times a dead engine is rebuilt for one batch before the run stops."""
WORK = "__work"
TOKENS = "__completion_tokens"
UNITS = "__units"
Batch = tuple[pa.Table, int, int]
"""A finished batch: its output rows, its completion tokens, its number of units of work."""


@EXECUTORS.register(name="local")
def local_batches(engine: Backend, model_pass: ModelPass, batches: Iterable[list[Work]]) -> Iterator[Batch]:
    """Start the engine now, then run each batch in one backend call.

    An engine that dies is rebuilt and its batch run again, up to `ENGINE_RESTARTS` times per
    batch; then `EngineDiedError` stops the run (every batch written so far is kept).
    """
    start(engine)
    return _local(engine, model_pass, batches)


def _local(engine: Backend, model_pass: ModelPass, batches: Iterable[list[Work]]) -> Iterator[Batch]:
    for work in batches:
        for attempt in range(ENGINE_RESTARTS + 1):
            try:
                table, tokens = call(engine, model_pass, work)
                break
            except EngineDiedError as exc:
                if attempt == ENGINE_RESTARTS:
                    raise EngineDiedError(f"{exc}. It died {attempt + 1} times on the same batch, so the run "
                                          "stops") from exc
                log.warning("%s; rebuilding it (restart %d of %d)", exc, attempt + 1, ENGINE_RESTARTS)
                if not restart(engine):
                    raise EngineDiedError(f"{exc}. It was passed in ready-made, so it cannot be rebuilt "
                                          "here: start a new one") from exc
        yield table, tokens, len(work)


class EngineActor:
    """A Ray Data actor holding its own copy of the backend (one engine) and the pass for its life."""

    def __init__(self, payload: bytes) -> None:
        self.engine, self.model_pass = pickle.loads(payload)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Pickled batches of work in, their output rows out (+ token and unit counts on the first row)."""
        tables = []
        for blob in batch.column(WORK).to_pylist():
            work = pickle.loads(blob)
            table, tokens = call(self.engine, self.model_pass, work)
            first = ([1] + [0] * table.num_rows)[: table.num_rows]  # counts ride on the first row (if any)
            table = table.append_column(TOKENS, pa.array([tokens * f for f in first], pa.int64()))
            tables.append(table.append_column(UNITS, pa.array([len(work) * f for f in first], pa.int64())))
        return pa.concat_tables(tables)


@EXECUTORS.register(name="ray")
def ray_batches(engine: Backend, model_pass: ModelPass, batches: Iterable[list[Work]], concurrency: int = 1,
                num_gpus: float = 1, num_cpus: float | None = None, ray_init: dict[str, Any] | None = None,
                **ray_remote_args: Any) -> Iterator[Batch]:
    """Run the batches under Ray Data: `map_batches` over a pool of `concurrency` engine actors.

    Each actor asks for `num_gpus` GPUs (0 runs on CPU) and gets a pickled copy of the backend,
    which builds its own engine: a backend built from a model name or path travels, a ready
    engine does not. Ray is started with `ray_init` when not running yet (`RAY_ADDRESS` joins an
    existing cluster). Finished batches stream back here, so one writer owns the shard folder.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("executor='ray' needs Ray Data: `pip install 'natural-thoughts[ray]'`") from exc
    try:
        payload = pickle.dumps((engine, model_pass))
    except (TypeError, AttributeError, pickle.PicklingError) as exc:
        raise ValueError(f"executor='ray' needs a backend name and a model name or path (each Ray actor "
                         f"builds its own engine); this backend cannot be shipped ({exc})") from exc
    if not ray.is_initialized():
        start_watchdog()  # a local Ray cluster started here dies with this process, even by kill -9
        ray.init(**(ray_init or {}))
    items = [{WORK: pickle.dumps(work)} for work in batches]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(  # results stream back per batch
        EngineActor,
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        fn_constructor_kwargs={"payload": payload},
        num_gpus=num_gpus,
        num_cpus=num_cpus,
        **ray_remote_args,
    )
    return _ray_results(ds, model_pass)


def _ray_results(ds: Any, model_pass: ModelPass) -> Iterator[Batch]:
    """The finished batches as they stream back; an engine that cannot start in an actor is one
    `EngineStartError` with its own message, not Ray's wrapped traceback."""
    try:
        for out in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            if out.num_rows:
                counts = [sum(out.column(c).to_pylist()) for c in (TOKENS, UNITS)]
                yield out.drop_columns([TOKENS, UNITS]).cast(shard_schema(model_pass)), counts[0], counts[1]
    except Exception as exc:
        if (cause := start_failure(exc)) is not None:
            raise EngineStartError(f"in a Ray actor: {cause}") from None
        raise


def start_failure(exc: BaseException) -> str | None:
    """The message of the `EngineStartError` behind an error a Ray actor raised (Ray wraps it,
    sometimes only as text), or None when the engine did start."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, EngineStartError):
            return str(e)
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    match = re.search(rf"{EngineStartError.__name__}: (.+)", str(exc))
    return match.group(1).strip() if match else None
