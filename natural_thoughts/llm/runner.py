"""`run_pass`: the one resumable, sharded model-call loop every model pass runs through.

With an output folder, the run's manifest (the pass's fingerprint) is checked or written, the
share's lock is held, the keys already written are read (those the pass counts as done are
skipped), and every batch of units is written as one shard at once, so a killed or interrupted
call is simply made again. The engine starts before any request is taken (a start failure raises
`EngineStartError` and undoes a run folder this call created); a dead engine is rebuilt (see
`executors.local_batches`). One progress bar counts the units of work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
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
from .store import ShardStore

BATCH_SIZE = 256
"""Units of work per backend call (and per shard) unless the caller says otherwise."""
Inputs = Dataset | Sequence[dict[str, Any]]


@dataclass
class PassResult:
    """What `run_pass` returns: the rows, and what this call did."""

    rows: Any = None
    """With an output folder, everything it holds (the pass's `read`); else this call's rows (a table)."""
    pending: int = 0
    """Output keys that were not written yet when the call began (the others are reused)."""
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
        work = _pending(model_pass, inputs, _done(model_pass, store))
        out.pending = sum(len(keys) for _, keys in work)
        try:  # a Ray actor starts its engine on its first batch: a start failure may come from the loop
            finished: Iterator[Batch] = iter(())
            if work:
                finished = run(engine, model_pass, _batches(model_pass, inputs, work, batch_size),
                               **{**options, **(executor_kwargs or {})})
            started = time.perf_counter()
            with tqdm(total=len(work), unit=model_pass.unit, desc=model_pass.name,
                      disable=not show_progress or not work) as bar:
                for table, tokens, units in finished:
                    if store is not None:
                        store.write(table)
                    else:
                        tables.append(table)
                    if on_batch is not None:
                        on_batch(table, tokens)
                    out.add(table, tokens, model_pass.error_column)
                    out.seconds = time.perf_counter() - started
                    bar.update(units)
                    bar.set_postfix(rows=out.written, tok_s=f"{out.tokens_per_s:.0f}", errors=out.errors)
        except EngineStartError:
            if store is not None and store.created:
                store.discard_empty_run()  # only a run that holds no shard yet
            raise
    out.rows = model_pass.read(store) if store is not None else pa.concat_tables([model_pass.schema.empty_table(), *tables])
    return out


def _done(model_pass: ModelPass, store: ShardStore | None) -> set[Key]:
    """The keys already written whose row the pass counts as done."""
    if store is None:
        return set()
    error = model_pass.error_column
    written = store.read_keys(columns=(*model_pass.key, *([error] if error else []))).to_pydict()
    keys = zip(*(written[c] for c in model_pass.key))
    if error is None:
        return set(keys)
    return {k for k, e in zip(keys, written[error]) if model_pass.is_done(e)}


def _pending(model_pass: ModelPass, inputs: Inputs, done: set[Key]) -> list[tuple[int, list[Key]]]:
    """(input position, keys still to make) for each unit with something left, in input order; a
    unit repeated in the inputs is asked once (its first row)."""
    column = model_pass.key[0]
    units = inputs[column] if isinstance(inputs, Dataset) else [row[column] for row in inputs]
    seen = set(done)
    work = []
    for i, unit in enumerate(units):
        if unit is None:
            raise ValueError(f"row {i} has no {column!r}; {model_pass.name} keys its rows by it")
        missing = [k for k in model_pass.keys(unit) if k not in seen]
        if missing:
            seen.update(missing)
            work.append((i, missing))
    return work


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
