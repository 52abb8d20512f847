"""`run_pass`: the one resumable, sharded model-call loop every model pass runs through.

With an output folder, the run's manifest (the pass's fingerprint) is checked or written, the
share's lock is held, the keys already written are read (those the pass counts as done are
skipped), and every batch of units is written as one shard at once, so a killed or interrupted
call is simply made again. The engine starts before any request is taken (a start failure raises
`EngineStartError`); a call that fails before its first shard, on any executor and for any cause,
undoes the run folder it created, so the corrected call is not refused as another configuration. A
dead engine is rebuilt (see `executors.local_batches`). One progress bar counts the units of work.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from datasets import Dataset
from tqdm.auto import tqdm

from ..registry import Spec, parse_spec
from .backends import Backend, EngineStartError
from .executors import EXECUTORS, Batch
from .passes import Key, ModelPass, Work
from .store import REQUEST_HASH, ShardStore

log = logging.getLogger(__name__)

BATCH_SIZE = 256
"""Units of work per backend call (and per shard) unless the caller says otherwise."""
Inputs = Dataset | Sequence[dict[str, Any]]


@dataclass
class PassResult:
    """What `run_pass` returns: the rows, and what this call did."""

    rows: Any = None
    """With an output folder, everything it holds (the pass's `read`); else this call's rows (a table)."""
    pending: int = 0
    """Units of work asked by this call: output keys not written yet, or written for another request."""
    reused: int = 0
    """Output keys already written for the very request the model would read now: not asked again."""
    stale: int = 0
    """Output keys written before for another request (the input text changed, or a shard written
    before requests were hashed): asked again, counted in `pending`'s units."""
    written: int = 0
    """Rows this call wrote."""
    errors: int = 0
    """Of them, rows with an error (in the pass's `error_column`)."""
    tokens: int = 0
    """Completion tokens this call generated."""
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def add(self, table: pa.Table, tokens: int, error_column: str | None) -> None:
        """Count one finished batch."""
        self.written += table.num_rows
        self.tokens += tokens
        if error_column is not None:
            self.errors += table.num_rows - table.column(error_column).null_count


_TALLY: ContextVar[dict[str, dict[str, int]] | None] = ContextVar("model_calls", default=None)


@contextlib.contextmanager
def tally_model_calls() -> Iterator[dict[str, dict[str, int]]]:
    """Count what every `run_pass` inside asks and reuses: pass name -> {"asked", "reused",
    "asked_again"} (keys asked again because what the model reads changed), for a run's summary."""
    calls: dict[str, dict[str, int]] = {}
    token = _TALLY.set(calls)
    try:
        yield calls
    finally:
        _TALLY.reset(token)


def run_pass(model_pass: ModelPass, inputs: Inputs, engine: Backend, output_dir: str | Path | ShardStore | None = None,
             *, batch_size: int = BATCH_SIZE, executor: Spec = "local", executor_kwargs: dict[str, Any] | None = None,
             show_progress: bool = True, on_batch: Callable[[pa.Table, int], None] | None = None) -> PassResult:
    """Run `model_pass` over `inputs` (a Dataset or a list of rows) with `engine`.

    `output_dir` makes the run resumable: a folder (its manifest is the pass's fingerprint), or a
    `ShardStore` its caller opened already. Only the keys not written yet are asked, `batch_size`
    units per backend call, on `executor` (a name or spec from `EXECUTORS`, options in
    `executor_kwargs`). `on_batch(table, tokens)` sees every finished batch. The engine is not
    closed here: whoever built it closes it.
    """
    name, options = parse_spec(executor, "executor")
    run = EXECUTORS.get(name)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    store = output_dir if isinstance(output_dir, ShardStore) or output_dir is None else ShardStore(output_dir)
    if isinstance(output_dir, (str, Path)):
        store.open_run(model_pass.fingerprint(engine))  # type: ignore[union-attr]
    out, tables = PassResult(), []
    with store.lock() if store is not None else contextlib.nullcontext():
        done, out.stale = _done(model_pass, inputs, engine.model_name, store, batch_size)
        work, out.reused = _pending(model_pass, inputs, done)
        out.pending = sum(len(keys) for _, keys in work)
        log.info("%s: %d to ask (%d of them written before for another request), %d reused", model_pass.name,
                 out.pending, out.stale, out.reused)
        if (calls := _TALLY.get()) is not None:
            counts = calls.setdefault(model_pass.name, {"asked": 0, "reused": 0, "asked_again": 0})
            for name, n in (("asked", out.pending), ("reused", out.reused), ("asked_again", out.stale)):
                counts[name] += n
        try:  # a Ray actor starts its engine on its first batch: a start failure may come from the loop
            finished: Iterator[Batch] = iter(())
            if work:
                finished = run(engine, model_pass, _batches(model_pass, inputs, work, batch_size),
                               **{**options, **(executor_kwargs or {})})
            started = time.perf_counter()
            with tqdm(total=len(work), unit=model_pass.unit, desc=model_pass.name,
                      disable=not show_progress or not work) as bar:
                for shard, tokens, units in finished:
                    if store is not None:
                        store.write(shard)
                    table = shard.drop_columns([REQUEST_HASH])
                    if store is None:
                        tables.append(table)
                    if on_batch is not None:
                        on_batch(table, tokens)
                    out.add(table, tokens, model_pass.error_column)
                    out.seconds = time.perf_counter() - started
                    bar.update(units)
                    bar.set_postfix(rows=out.written, tok_s=f"{out.tokens_per_s:.0f}", errors=out.errors)
        except BaseException:  # an engine that never started, a bad executor option, Ctrl-C during the start
            if store is not None and store.created:
                store.discard_empty_run()  # only a run that holds no shard yet: the corrected call is accepted
            raise
    out.rows = model_pass.read(store) if store is not None else pa.concat_tables([model_pass.schema.empty_table(), *tables])
    return out


def _done(model_pass: ModelPass, inputs: Inputs, model_name: str, store: ShardStore | None,
          batch_size: int) -> tuple[set[Key], int]:
    """The keys already written for the very request the model would read now, whose row the pass
    counts as done; and how many written keys were made for another request (asked again)."""
    if store is None:
        return set(), 0
    error = model_pass.error_column
    written = store.read_keys(columns=(*model_pass.key, *([error] if error else []), REQUEST_HASH)).to_pydict()
    keys = list(zip(*(written[c] for c in model_pass.key)))
    if not keys:
        return set(), 0
    hashes = written[REQUEST_HASH]
    if unhashed := sum(h is None for h in hashes):
        log.warning("%s: %d rows in %s were written without the hash of their request (an older version), so "
                    "nothing proves what they answered: they are asked again", model_pass.name, unhashed, store.root)
    now = _request_hashes(model_pass, inputs, model_name, set(keys), batch_size)
    ok = [model_pass.is_done(e) for e in written[error]] if error else [True] * len(keys)
    done = {k for k, h, good in zip(keys, hashes, ok) if good and h is not None and h == now.get(k)}
    stale = {k for k, h in zip(keys, hashes) if k in now and h != now[k]} - done
    return done, len(stale)


def _request_hashes(model_pass: ModelPass, inputs: Inputs, model_name: str, written: set[Key],
                    batch_size: int) -> dict[Key, str]:
    """Output key -> the hash of the request its unit renders now, for the units with a key in `written`."""
    units = inputs[model_pass.key[0]] if isinstance(inputs, Dataset) else [row[model_pass.key[0]] for row in inputs]
    chosen, seen = [], set()
    for i, unit in enumerate(units):
        if unit is not None and unit not in seen:
            seen.add(unit)
            keys = model_pass.keys(unit)
            if any(k in written for k in keys):
                chosen.append((i, keys))
    now: dict[Key, str] = {}
    for work in _batches(model_pass, inputs, chosen, batch_size):
        for (_, keys), digest in zip(work, model_pass.request_hashes(work, model_name)):
            now.update(dict.fromkeys(keys, digest))
    return now


def _pending(model_pass: ModelPass, inputs: Inputs, done: set[Key]) -> tuple[list[tuple[int, list[Key]]], int]:
    """(input position, keys still to make) for each unit with something left, in input order (a
    unit repeated in the inputs is asked once: its first row); and how many keys are reused."""
    column = model_pass.key[0]
    units = inputs[column] if isinstance(inputs, Dataset) else [row[column] for row in inputs]
    seen, reused = set(done), set()
    work = []
    for i, unit in enumerate(units):
        if unit is None:
            raise ValueError(f"row {i} has no {column!r}; {model_pass.name} keys its rows by it")
        keys = model_pass.keys(unit)
        reused.update(k for k in keys if k in done)
        if missing := [k for k in keys if k not in seen]:
            seen.update(missing)
            work.append((i, missing))
    return work, len(reused)


def _batches(model_pass: ModelPass, inputs: Inputs, work: list[tuple[int, list[Key]]],
             batch_size: int) -> Iterator[list[Work]]:
    """The units of work in batches, their rows read (only the pass's columns) one batch at a time."""
    read = _reader(inputs, model_pass.columns)
    for start in range(0, len(work), batch_size):
        chunk = work[start : start + batch_size]
        yield list(zip(read([i for i, _ in chunk]), [keys for _, keys in chunk]))


def _reader(inputs: Inputs, wanted: tuple[str, ...] | None) -> Callable[[list[int]], list[dict[str, Any]]]:
    """A function from input positions to their rows, holding only the `wanted` columns present."""
    if not isinstance(inputs, Dataset):
        return lambda positions: [{c: v for c, v in inputs[i].items() if wanted is None or c in wanted}
                                  for i in positions]
    view = inputs.select_columns([c for c in wanted if c in inputs.column_names]) if wanted else inputs
    view = view.with_format(None)

    def read(positions: list[int]) -> list[dict[str, Any]]:
        columns = view[positions]
        return [dict(zip(columns, values)) for values in zip(*columns.values())]

    return read
