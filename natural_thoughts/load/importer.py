"""Import rows of another layout into our columns, batch by batch, onto disk.

Each batch of source rows becomes an Arrow table of our columns in a worker (`convert`: the preset's
mapping and fixes, the parser), in this process, in one process per core, or as Ray tasks; this
process numbers the samples (a row's sample index may depend on every earlier row) and streams the
batches into one Arrow file of the cache, which is returned memory-mapped. No Python object per row
outlives its batch, so a pool of millions of traces needs the memory of a few batches.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from datasets import Dataset
from datasets.fingerprint import Hasher
from tqdm.auto import tqdm

from .. import cache, parse, schema
from ..llm.store import fingerprint_hash
from ..parallel import PARALLEL_ROWS, map_batches
from ..parse import parse_trace
from . import presets
from .presets import BadRow, Preset

Duplicates = Literal["raise", "number"]
BATCH_ROWS = 2_000
"""Source rows per conversion batch (and per record batch of the imported file)."""
KEPT_COLUMNS = ("weak_answer", "weak_model", "tests", "fn_name")
"""Source columns kept as columns (like any `label.*` / `score.*`), not packed into `extra`: a weak
model's response, a program's tests and the function they call."""
_TYPES = {f.name: f.type for f in schema.TRACE_SCHEMA}
"""Arrow type of every problem/trace column, so that all-null columns still get their real type."""
_ROW = "__row"
"""The source row number of each converted row, while a batch travels to this process."""


def is_kept(name: str) -> bool:
    """Whether a source column is kept as its own column rather than packed into `extra`."""
    return name in KEPT_COLUMNS or name.startswith((schema.LABEL_PREFIX, schema.SCORE_PREFIX))


def rows_table(rows: list[dict[str, Any]], names: list[str], what: str) -> pa.Table:
    """An Arrow table of row dicts with our column types; an unconvertible column is named."""
    arrays = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if _TYPES.get(name) == pa.string() and any(isinstance(v, (dict, list)) for v in values):
            # a structured value under one of our text columns' names (LiveCodeBench's `source` object)
            values = [json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for v in values]
        try:
            arrays[name] = pa.array(values, type=_TYPES.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise ValueError(f"{what}: column {name!r} holds values of mixed types ({e})") from e
    return pa.table(arrays)


@dataclass(frozen=True)
class Reading:
    """How rows are read: completions' format and the token budget they were made under (traces),
    what to do with repeated problem ids (problems)."""

    trace_format: str = "auto"
    max_tokens: int | None = None
    tokenizer: Any = None
    duplicates: Duplicates = "raise"

    def tokens(self, out: dict[str, Any], text: str) -> int | None:
        """The completion's token count, when a budget needs it: the source's own counts, else the
        tokenizer's."""
        if self.max_tokens is None:
            return None
        counts = [out.get("reasoning_tokens"), out.get("answer_tokens")]
        if any(c is not None for c in counts):
            return sum(int(c or 0) for c in counts)
        if self.tokenizer is None:
            raise ValueError("max_tokens needs each trace's token count; this source has none: pass "
                             "tokenizer=<the teacher's tokenizer name> to count them")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def identity(self) -> str:
        """What of the reading changes the rows (the tokenizer by name)."""
        name = getattr(self.tokenizer, "name_or_path", None) if self.tokenizer is not None else None
        return f"{self.trace_format}/{self.max_tokens}/{name}/{self.duplicates}"


@dataclass(frozen=True)
class Job:
    """Everything `convert` needs to turn one part's rows into ours (picklable, for workers)."""

    kind: str
    mapping: dict[str, str]
    used: frozenset[str]
    spec: Preset | None
    name: str
    stem: str | None
    model: str | None
    reading: Reading
    fixed: tuple[str, ...] = ()


def _unused(job: Job, names: list[str]) -> tuple[list[str], list[str]]:
    """The source columns `job` does not map, as (kept as columns, packed into `extra`)."""
    unused = [name for name in names if name not in job.used]
    return [n for n in unused if is_kept(n)], [n for n in unused if not is_kept(n)]


def _problem(row: dict[str, Any], job: Job, unused: tuple[list[str], list[str]]) -> dict[str, Any]:
    """One source row as our problem columns (+ the kept columns of `unused`); the others go into
    `extra`."""
    out = {ours: row[src] for ours, src in job.mapping.items()}
    extra = out.get("extra") or {}  # a source's own `extra` (JSON text) is kept and added to
    try:
        extra = dict(json.loads(extra) if isinstance(extra, str) else extra)
    except (ValueError, TypeError) as e:
        raise BadRow(f"extra is not a JSON object ({e})") from e
    kept, packed = unused
    for key in kept:
        out.setdefault(key, row[key])
    for key in packed:
        extra.setdefault(key, row[key])
    out["extra"] = extra
    if job.spec and job.spec.fix:
        job.spec.fix(out)
    problem, pid, ref = out.get("problem"), out.get("problem_id"), out.get("reference_answer")
    if not isinstance(problem, str) or not problem.strip():
        raise BadRow(f"problem is empty or not text: {problem!r:.60}")
    out.update(
        problem_id=schema.problem_id(problem) if pid is None or pid == "" else str(pid),
        reference_answer=None if ref is None else str(ref),
        source=out.get("source") or job.name,
        domain=None if out.get("domain") is None else str(out["domain"]),
        extra=json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str),
    )
    return out


def _trace(out: dict[str, Any], job: Job) -> dict[str, Any]:
    """Complete a problem row into a trace: parse the completion, check a given sample index (the
    numbering is `Numbering`'s)."""
    text = "" if out.get("completion") is None else str(out["completion"])
    parsed = parse_trace(text, format=job.reading.trace_format, finish_reason=out.get("finish_reason"),
                         tokens=job.reading.tokens(out, text), max_tokens=job.reading.max_tokens)
    index = out.get("sample_index")
    index = None if index is None else int(index)
    if index is not None and index < 0:
        raise BadRow(f"sample_index {index} is negative")
    name = job.model or out.get("model") or job.stem
    if not name:
        raise ValueError(f"{job.name} has no model column and no file name: pass model=")
    out.update(sample_index=index, model=str(name), prompt=out.get("prompt") or "", completion=text)
    out.update(final_answer=parsed.final_answer, reasoning=parsed.reasoning, answer=parsed.answer, flags=parsed.flags)
    out["sampling"] = out.get("sampling") or "{}"
    return out


def convert(job: Job, batch: tuple[int, pa.Table]) -> tuple[pa.Table, list[tuple[int, str]]]:
    """One batch of source rows (numbered from `start`) as our columns, with a `__row` column, and
    the rows that cannot be converted as (row number, why)."""
    start, table = batch
    rows, bad, unused = [], [], _unused(job, table.column_names)
    for i, row in enumerate(table.to_pylist(), start):
        try:
            out = _problem(row, job, unused)
            rows.append(_trace(out, job) if job.kind == "traces" else out)
            out[_ROW] = i
        except BadRow as e:
            bad.append((i, str(e)))
    kept = dict.fromkeys(k for r in rows for k in r if k not in job.fixed and is_kept(k))
    return rows_table(rows, [*job.fixed, *kept, _ROW], f"{job.kind} source {job.name!r}"), bad


def convert_to_file(job: Job, folder: Path, batch: tuple[int, pa.Table]) -> tuple[Path, list[tuple[int, str]]]:
    """`convert`, the table written to an Arrow file in `folder` (named by its first row): a local
    worker hands back the file's name rather than pickling the rows through a pipe."""
    table, bad = convert(job, batch)
    return cache.write(folder / f"{batch[0]}.arrow", [table], table.schema), bad


class Numbering:
    """Sample indices in row order across the whole pool: a missing one is the count of the
    problem's earlier samples; a repeated (problem_id, sample_index) is a bad row. Problems: a
    repeated id is refused, or numbered `#2`, `#3`, … with `duplicates="number"`. What it
    remembers is per problem (its count, or its set of sample indices), not per row."""

    def __init__(self, kind: str, duplicates: Duplicates) -> None:
        if duplicates not in ("raise", "number"):
            raise ValueError(f"duplicates must be 'raise' or 'number', not {duplicates!r}")
        self.kind, self.duplicates = kind, duplicates
        self.seen: Counter[str] = Counter()
        self.samples: dict[str, set[int]] = {}

    def apply(self, table: pa.Table, bad: Callable[[int, str], None]) -> pa.Table:
        """`table` with its ids set, without the rows that repeat a key (each reported to `bad`)."""
        pids = table.column("problem_id").to_pylist()
        if self.kind == "problems":
            for j, pid in enumerate(pids):
                self.seen[pid] += 1
                if self.duplicates == "number" and self.seen[pid] > 1:
                    pids[j] = f"{pid}#{self.seen[pid]}"
            return table.set_column(table.schema.get_field_index("problem_id"), "problem_id",
                                    pa.array(pids, pa.string())).drop_columns([_ROW])
        keep, indices, ids = [], [], []
        rows, given = table.column(_ROW).to_pylist(), table.column("sample_index").to_pylist()
        for j, (pid, index, row) in enumerate(zip(pids, given, rows)):
            taken = self.samples.setdefault(pid, set())
            index = len(taken) if index is None else index
            if index in taken:
                bad(row, f"trace key (problem_id={pid!r}, sample_index={index}) appears twice; each sample "
                         "of a problem needs its own sample_index")
                continue
            taken.add(index)
            keep.append(j)
            indices.append(index)
            ids.append(schema.trace_id(pid, index))
        table = table.take(pa.array(keep, pa.int64())) if len(keep) < len(table) else table
        table = table.set_column(table.schema.get_field_index("sample_index"), "sample_index", pa.array(indices, pa.int64()))
        table = table.set_column(table.schema.get_field_index("trace_id"), "trace_id", pa.array(ids, pa.string()))
        return table.drop_columns([_ROW])

    def check(self, what: str) -> None:
        """Refuse repeated problem ids (problems, `duplicates="raise"`), naming them."""
        if self.kind == "problems" and self.duplicates == "raise":
            schema.require_unique_ids(list(self.seen.elements()), what)


@dataclass
class Source:
    """One part of a source as the importer reads it: its batches, where each row came from."""

    job: Job
    rows: int
    batches: Callable[[int], Iterator[pa.Table]]
    where: Callable[[int], str]
    identity: str


def import_rows(sources: list[Source], what: str, bad: Callable[[str], None], *, executor: str = "local",
                num_proc: int = 1) -> Dataset:
    """All rows of `sources` in our columns, as one memory-mapped Arrow file of the cache (reused
    by an identical call: the same source files, unchanged, and the same settings). Each row left
    out is reported to `bad` ('where: why'), which raises for `on_error="raise"`."""
    jobs = [s.job for s in sources]
    key = fingerprint_hash(["import", [s.identity for s in sources], Hasher.hash([j.spec for j in jobs]),
                            [j.mapping for j in jobs], jobs[0].reading.identity(), [j.model for j in jobs],
                            cache.code_version(__file__, presets.__file__, *parse.SOURCE_FILES)])
    folder = cache.folder("imports")
    path, log = folder / f"{key}.arrow", folder / f"{key}.json"
    if path.exists() and log.exists():
        skipped = json.loads(log.read_text())
        for message in skipped:
            bad(message)
        return cache.read(path, key)
    numbering, skipped = Numbering(jobs[0].kind, jobs[0].reading.duplicates), []

    def record(message: str) -> None:
        bad(message)
        skipped.append(message)

    tables = _converted(sources, numbering, record, executor, num_proc, folder / f"{key}-batches")
    pending = next(tables, None)
    layout = pending.schema if pending is not None else pa.schema([(n, _TYPES[n]) for n in jobs[0].fixed])
    segments: list[Path] = []
    while True:  # a batch with a new kept column or type starts a new segment
        segments.append(folder / f"{key}-{len(segments)}.arrow")
        pending = _write_segment(segments[-1], layout, pending, tables)
        if pending is None:
            break
        try:
            layout = pa.unify_schemas([layout, pending.schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise ValueError(f"{what}: a column holds values of mixed types ({e})") from e
    numbering.check(what)
    _join(segments, path)
    log.write_text(json.dumps(skipped))
    return cache.read(path, key)


class _Faults:
    """A batch's unconvertible rows, reported in row order among the rows `Numbering` refuses."""

    def __init__(self, rows: list[tuple[int, str]], where: Callable[[int], str], record: Callable[[str], None]) -> None:
        self.rows, self.where, self.record = sorted(rows, reverse=True), where, record

    def upto(self, row: float) -> None:
        while self.rows and self.rows[-1][0] < row:
            at, why = self.rows.pop()
            self.record(f"{self.where(at)}: {why}")

    def __call__(self, row: int, why: str) -> None:
        self.upto(row)
        self.record(f"{self.where(row)}: {why}")


def _converted(sources: list[Source], numbering: Numbering, record: Callable[[str], None], executor: str,
               num_proc: int, scratch: Path) -> Iterator[pa.Table]:
    """Every part's converted batches, numbered, in row order, with a progress bar. Local workers
    pass their batches through files of `scratch` (each deleted once read: memory-mapped, it is
    not copied until it is written out)."""
    total = sum(s.rows for s in sources)
    by_file = executor == "local" and num_proc > 1
    with tqdm(total=total, unit="rows", desc=f"importing {sources[0].job.kind}",
              disable=total < PARALLEL_ROWS) as bar:
        try:
            for part, source in enumerate(sources):
                numbered = _numbered(source.batches(BATCH_ROWS))
                folder = scratch / str(part)
                if by_file:
                    folder.mkdir(parents=True, exist_ok=True)
                work = partial(convert_to_file, source.job, folder) if by_file else partial(convert, source.job)
                for converted, bad_rows in map_batches(work, numbered, executor, num_proc):
                    table = cache.read_table(converted).table if by_file else converted
                    faults = _Faults(bad_rows, source.where, record)
                    out = numbering.apply(table, faults)
                    faults.upto(float("inf"))
                    bar.update(len(table) + len(bad_rows))
                    yield out
                    if by_file:
                        converted.unlink()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _numbered(batches: Iterator[pa.Table]) -> Iterator[tuple[int, pa.Table]]:
    """Each batch with the number of its first row."""
    start = 0
    for batch in batches:
        yield start, batch
        start += len(batch)


def _write_segment(path: Path, layout: pa.Schema, first: pa.Table | None, rest: Iterator[pa.Table]) -> pa.Table | None:
    """Write `first` and the following tables that fit `layout` to `path`; return the first that
    does not (it has a column or a type the layout lacks), or None when all were written."""
    misfit: list[pa.Table] = []

    def fitting() -> Iterator[pa.Table]:
        if first is not None:
            yield _fit(first, layout)
        for table in rest:
            fitted = _fit(table, layout)
            if fitted is None:
                misfit.append(table)
                return
            yield fitted

    cache.write(path, fitting(), layout)
    return misfit[0] if misfit else None


def _fit(table: pa.Table, schema_: pa.Schema) -> pa.Table | None:
    """`table` in `schema_` (missing columns as nulls), or None when it holds more than the schema can."""
    if not set(table.column_names) <= set(schema_.names):
        return None
    columns = [table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type) for f in schema_]
    try:
        return pa.table(columns, names=schema_.names).cast(schema_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _join(segments: list[Path], path: Path) -> None:
    """The segments as one Arrow file at `path`, each cast to their unified schema."""
    if len(segments) == 1:
        segments[0].replace(path)
        return
    tables = [cache.read_table(s).table for s in segments]
    unified = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
    cache.write(path, (_fit(t, unified) for t in tables), unified)  # the unified schema fits every segment
    for s in segments:
        s.unlink()
