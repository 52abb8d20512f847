"""Load problem pools and traces made elsewhere into the column contract of `schema`.

A source is a jsonl/json/parquet/csv path or glob, a folder saved with `save_to_disk`, a folder of
parquet shards (our generator's output), a hub name, a `datasets.Dataset` or a `pandas.DataFrame`.
JSON lines and parquet are read a batch at a time (a file holding one JSON array is read whole).
Presets map known layouts onto our columns; `columns=` ({ours: theirs}) maps any other. Bad input
fails naming the file:line or row and the columns that exist; with `on_error="skip"` it is dropped
and reported (a logged warning and a `LoadReport`), never silently.
"""

from __future__ import annotations

import codecs
import glob
import json
import logging
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset, load_from_disk
from datasets.table import InMemoryTable

from natural_thoughts import schema
from natural_thoughts.cache import files_fingerprint
from natural_thoughts.parallel import check_executor, processes
from natural_thoughts.parse import FORMATS
from natural_thoughts.load.importer import BATCH_ROWS, KEPT_COLUMNS, Duplicates, Job, Reading, import_rows, is_kept
from natural_thoughts.load.importer import rows_table
from natural_thoughts.load.importer import Source as Imported
from natural_thoughts.load.presets import PROBLEM_PRESETS, TRACE_PRESETS, Preset
from natural_thoughts.llm.store import MANIFEST, REQUEST_HASH, SHARD_GLOB, latest_rows

log = logging.getLogger(__name__)

Source = str | Path | Dataset | DatasetDict | pd.DataFrame
OnError = Literal["raise", "skip"]
Columns = Mapping[str, str] | None
SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_PROBLEM_OWN = ("problem", "reference_answer", "problem_id", "source", "domain", "extra")
_TRACE_OWN = (*_PROBLEM_OWN, "sample_index", "model", "prompt", "completion", "reasoning_tokens")
_TRACE_OWN += ("answer_tokens", "finish_reason", "error", "sampling", "generated_at")
"""Columns taken from a source by their own name (parser outputs are always recomputed)."""


@dataclass
class LoadReport:
    """What one load did: the source, the rows returned, and every skipped input ('where: why')."""

    source: str
    rows: int = 0
    skipped: list[str] = field(default_factory=list)


TOO_DEEP = "JSON nested too deeply to read (past Python's recursion limit); no trace is shaped like that"


@dataclass
class _JsonLines:
    """A JSON-lines file read in two passes: `scan` checks every line (a bad one is named file:line)
    and learns the columns, keeping only each row's line number; `batches` parses the rows again,
    a batch at a time. Memory holds one batch, never the file (a 1M-trace file is gigabytes).
    Column types are inferred per batch, as Arrow reads each batch's values."""

    path: Path
    names: list[str]
    numbers: array
    """The line number (from 1) of each row."""
    identity: str
    """The file's fingerprint when it was scanned: a file changed since is refused, not half read."""

    @classmethod
    def scan(cls, path: Path, on_error: OnError, report: LoadReport) -> _JsonLines:
        identity, names, numbers, offset = str(files_fingerprint([path])), {}, array("q"), 0
        with path.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    doc = cls._parse(raw, n)
                except UnicodeDecodeError as e:
                    raise ValueError(f"{path}:{n}: not UTF-8 text (byte {raw[e.start]:#04x} at offset "
                                     f"{start + e.start}); convert the file to UTF-8") from e
                except json.JSONDecodeError as e:
                    _bad(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})", on_error, report)
                    continue
                except RecursionError:
                    _bad(f"{path}:{n}: {TOO_DEEP}", on_error, report)
                    continue
                if not isinstance(doc, dict):
                    _bad(f"{path}:{n}: not a JSON object", on_error, report)
                    continue
                names.update(dict.fromkeys(doc))
                numbers.append(n)
        return cls(path, list(names), numbers, identity)

    def batches(self, size: int) -> Iterator[pa.Table]:
        """The rows as Arrow tables of `size` rows (every column of the file in each), in order."""
        wanted, rows = iter(self.numbers), []
        line = next(wanted, None)
        with self.path.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                if line is None:
                    break
                if n == line:
                    rows.append(self._row(raw, n))
                    line = next(wanted, None)
                if rows and (len(rows) == size or line is None):
                    yield rows_table(rows, self.names, str(self.path))
                    rows = []
        if line is not None or str(files_fingerprint([self.path])) != self.identity:
            raise self._changed(line)

    @staticmethod
    def _parse(raw: bytes, n: int) -> Any:
        """Line `n` as JSON (a UTF-8 byte-order mark before the first is read past)."""
        return json.loads(raw.decode("utf-8-sig" if n == 1 else "utf-8"))

    def _row(self, raw: bytes, n: int) -> dict[str, Any]:
        """Line `n`, which the scan found to be a JSON object."""
        try:
            doc = self._parse(raw, n)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            doc = None
        if not isinstance(doc, dict):
            raise self._changed(n)
        return doc

    def _changed(self, line: int | None) -> ValueError:
        at = "" if line is None else f" (line {line})"
        return ValueError(f"{self.path} changed while it was read{at}; load it again")


@dataclass
class _Part:
    """One piece of a source: a Dataset, parquet files or a JSON-lines file read batch by batch,
    its name (the `source` column), where each row came from, and what identifies its content (for
    the import cache)."""

    ds: Dataset | None
    name: str
    stem: str | None = None
    lines: list[str] | None = None
    shards: bool = False
    files: list[str] = field(default_factory=list)
    identity: str = ""
    json_lines: _JsonLines | None = None

    def where(self, i: int) -> str:
        if self.json_lines is not None:
            return f"{self.json_lines.path}:{self.json_lines.numbers[i]}"
        return self.lines[i] if self.lines else f"{self.name} row {i}"

    @cached_property
    def column_names(self) -> list[str]:
        if self.json_lines is not None:
            return self.json_lines.names
        if self.ds is not None:
            return self.ds.column_names
        return [c for c in pq.read_schema(self.files[0]).names if not (self.shards and c == REQUEST_HASH)]

    @cached_property
    def rows(self) -> int:
        if self.json_lines is not None:
            return len(self.json_lines.numbers)
        return len(self.ds) if self.ds is not None else sum(pq.read_metadata(f).num_rows for f in self.files)

    def dataset(self) -> Dataset:
        """The whole part as a Dataset (parquet files through `Dataset.from_parquet`; JSON lines in memory)."""
        if self.json_lines is not None:
            tables = list(self.batches(BATCH_ROWS)) or [rows_table([], self.column_names, self.name)]
            try:
                return Dataset(InMemoryTable(pa.concat_tables(tables, promote_options="permissive")))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise ValueError(f"{self.json_lines.path}: a column holds values of mixed types ({e})") from e
        if self.ds is not None:
            return self.ds
        return Dataset.from_parquet(self.files, **({"columns": self.column_names} if self.shards else {}))

    def batches(self, size: int) -> Iterator[pa.Table]:
        """The part's rows as Arrow tables of `size` rows, in order, each holding only its own rows
        (a slice of a table would take the whole table's buffers along when pickled to a worker)."""
        if self.json_lines is not None:
            yield from self.json_lines.batches(size)
            return
        if self.ds is not None:
            for batch in self.ds.with_format("arrow").iter(batch_size=size):
                yield batch.take(np.arange(len(batch)))
        for f in self.files:  # pre_buffer would keep every row group read so far (apache/arrow#39808)
            wanted = self.column_names if self.shards else None
            for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=size, columns=wanted):
                yield pa.Table.from_batches([batch])

    def key(self) -> str:
        """What identifies the part's content: its files' paths, sizes and times, or its fingerprint."""
        files = [Path(f) for f in self.files]
        return self.identity or (str(files_fingerprint(files)) if files else self.ds._fingerprint)


def _bad(message: str, on_error: OnError, report: LoadReport) -> None:
    """Raise for `on_error="raise"`; record for `"skip"`."""
    if on_error == "raise":
        raise ValueError(message)
    report.skipped.append(message)


def _read_json(path: Path, on_error: OnError, report: LoadReport) -> _Part:
    """JSON lines, streamed (`_JsonLines`), or one JSON array, read whole; a bad line or item is
    named file:line or file[index]."""
    with path.open("rb") as fh:
        if not fh.read(1 << 16).removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"["):
            lines = _JsonLines.scan(path, on_error, report)
            return _Part(None, path.name, path.stem, json_lines=lines, identity=lines.identity)
    identity = str(files_fingerprint([path]))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                         "convert the file to UTF-8") from e
    try:
        docs = list(enumerate(json.loads(text)))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from e
    except RecursionError:
        raise ValueError(f"{path}: {TOO_DEEP}") from None
    rows, lines = [], []
    for i, doc in docs:
        if isinstance(doc, dict):
            rows.append(doc)
            lines.append(f"{path}[{i}]")
        else:
            _bad(f"{path}[{i}]: not a JSON object", on_error, report)
    names = list(dict.fromkeys(k for r in rows for k in r))
    table = InMemoryTable(rows_table(rows, names, str(path)))
    return _Part(Dataset(table), path.name, path.stem, lines, identity=identity)


def _one_split(data: Dataset | DatasetDict, split: str | None, name: str) -> Dataset:
    """The Dataset itself, the only split, or the named one."""
    if isinstance(data, Dataset):
        return data
    if split in data or (split is None and len(data) == 1):
        return data[split] if split else next(iter(data.values()))
    raise ValueError(f"{name} has splits {sorted(data)}; pass split= one of them")


def _read_path(path: Path, split: str | None, on_error: OnError, report: LoadReport) -> _Part:
    """One file, a saved dataset folder, or a folder of parquet shards (`*.tmp` ignored; in a
    generator's folder, one with a manifest, only its `part-*.parquet` shards)."""
    if path.is_dir():
        if any((path / m).exists() for m in SAVED_MARKERS):
            return _Part(_one_split(load_from_disk(str(path)), split, str(path)), path.name)
        found = path.glob(SHARD_GLOB) if (path / MANIFEST).exists() else path.rglob("*.parquet")
        shards = sorted(str(p) for p in found if ".tmp" not in str(p.relative_to(path)))
        if not shards:
            raise FileNotFoundError(f"{path} holds neither a saved dataset nor *.parquet files")
        return _Part(None, path.name, shards=True, files=shards)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unknown file type; expected one of {sorted(SUFFIXES)}")
    if kind == "json":
        return _read_json(path, on_error, report)
    if kind == "parquet":
        try:
            pq.read_schema(path)  # the footer: a file cut short has none
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{path}: not a readable parquet file ({e}); it may have been cut short while "
                             "written or copied: write or copy it again") from e
        return _Part(None, path.name, path.stem, files=[str(path)])
    return _Part(Dataset.from_csv(str(path)), path.name, path.stem)


def _read(source: Source, split: str | None, on_error: OnError, report: LoadReport) -> list[_Part]:
    """Every piece of `source`, in a deterministic order (globs sorted)."""
    if isinstance(source, (Dataset, DatasetDict)):
        return [_Part(_one_split(source, split, "dataset"), "dataset")]
    if isinstance(source, pd.DataFrame):
        return [_Part(Dataset.from_pandas(source, preserve_index=False), "dataframe")]
    text = str(source)
    if any(ch in text for ch in "*?["):
        found = sorted(glob.glob(text, recursive=True))
        if not found:
            raise FileNotFoundError(f"no file matches the pattern {text!r}")
        return [_read_path(Path(p), split, on_error, report) for p in found]
    path = Path(text).expanduser()
    if path.exists():
        return [_read_path(path, split, on_error, report)]
    if isinstance(source, Path) or path.suffix.lower() in SUFFIXES or text.startswith((".", "/")):
        raise FileNotFoundError(f"no such file or folder: {text!r}")
    return [_Part(_one_split(load_dataset(text, split=split), split, text), text)]  # a hub name


def _mapping(
    present: list[str], own: tuple[str, ...], preset: Preset | None, columns: Columns
) -> dict[str, str]:
    """{our name: source column}: the preset's (or the same-named columns), then `columns=`."""
    needed = ("problem", "completion") if "completion" in own else ("problem",)
    if preset:
        base = preset.columns | {name: name for name in preset.optional if name in present}
    else:
        base = {c: c for c in own if c in present or c in needed}
    for ours in columns or {}:
        if ours not in own and not is_kept(ours):
            known = [*own, *KEPT_COLUMNS, "label.*", "score.*"]
            raise ValueError(f"columns= maps to unknown column {ours!r}; known are {known}")
    return base | dict(columns or {})


def _latest(ds: Dataset) -> Dataset:
    """Generator shards as one row per (problem_id, sample_index), sorted by it: a retried
    error row is superseded by its new row (`llm.store.latest_rows`)."""
    names = [c for c in ("problem_id", "sample_index", "error", "generated_at") if c in ds.column_names]
    return ds.select(latest_rows(ds.select_columns(names).with_format("arrow")[:]))


def _load(
    source: Source,
    kind: str,
    preset: str | None,
    columns: Columns,
    split: str | None,
    on_error: OnError,
    model: str | None,
    reading: Reading = Reading(),
    executor: str = "local",
    num_proc: int | None = None,
) -> tuple[Dataset, LoadReport]:
    """Read `source`, map every row to our columns, and report what was skipped."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    check_executor(executor, f"load_{kind}")
    presets = PROBLEM_PRESETS if kind == "problems" else TRACE_PRESETS
    if preset is not None and preset not in presets:
        raise ValueError(f"unknown {kind} preset {preset!r}; known presets are {sorted(presets)}")
    spec = presets.get(preset) if preset else None
    own, fixed = _PROBLEM_OWN, schema.PROBLEM_COLUMNS
    if kind == "traces":
        own, fixed = _TRACE_OWN, schema.TRACE_COLUMNS
    named = isinstance(source, (str, Path))
    report = LoadReport(source=str(source) if named else type(source).__name__)
    parts = _read(source, split, on_error, report)
    ours = all({"completion", "trace_id"} <= set(p.column_names) for p in parts)
    if kind == "traces" and preset is None and columns is None and ours:
        # already our traces: pass through; generator shards get a deterministic order
        datasets = [p.dataset() for p in parts]
        ds = concatenate_datasets(datasets) if len(parts) > 1 else datasets[0]
        ds = _latest(ds) if any(p.shards for p in parts) else ds
    else:
        sources = []
        for part in parts:
            mapping = _mapping(part.column_names, own, spec, columns)
            what = f"{kind} source {part.name!r}" + (f" (preset {preset!r})" if preset else "")
            schema.require_columns(part.column_names, list(mapping.values()), what)
            used = frozenset(mapping.values()) | set(spec.drop if spec else ())
            job = Job(kind, mapping, used, spec, part.name, part.stem, model, reading, tuple(fixed))
            sources.append(Imported(job, part.rows, part.batches, part.where, part.key()))
        procs = processes(num_proc, sum(s.rows for s in sources))
        ds = import_rows(sources, report.source, lambda message: _bad(message, on_error, report),
                         executor=executor, num_proc=procs)
        ds = spec.finish(ds) if spec is not None and spec.finish is not None else ds
    report.rows = len(ds)
    if report.skipped:
        more = f", ... {len(report.skipped) - 10} more" if len(report.skipped) > 10 else ""
        shown = ", ".join(report.skipped[:10]) + more
        count = len(report.skipped)
        log.warning("skipped %d malformed lines/rows in %s: %s", count, report.source, shown)
    return ds, report


def load_problems(
    source: Source,
    preset: str | None = None,
    columns: Columns = None,
    split: str | None = None,
    on_error: OnError = "raise",
    return_report: bool = False,
    duplicates: Duplicates = "raise",
    num_proc: int | None = None,
    executor: str = "local",
) -> Dataset | tuple[Dataset, LoadReport]:
    """A problem pool with exactly `schema.PROBLEM_COLUMNS` (+ kept `weak_*`/`label.*`/`score.*`).

    `preset`: natural_reasoning | gsm8k | math500. `columns` maps our name to the source column.
    Other source columns go, as sorted-key JSON, into `extra`. `problem_id` is the source's id or
    the hash of the text; `source` is the file/hub name ("dataframe" for a DataFrame). A problem id
    that appears twice is an error naming it, unless `duplicates="number"` keeps the repeats apart.
    Rows are imported as `load_traces` imports them (batches, `num_proc`, `executor`, the cache).
    """
    ds, report = _load(source, "problems", preset, columns, split, on_error, None, Reading(duplicates=duplicates),
                       executor, num_proc)
    return (ds, report) if return_report else ds


def load_traces(
    source: Source,
    preset: str | None = None,
    columns: Columns = None,
    on_error: OnError = "raise",
    model: str | None = None,
    split: str | None = None,
    return_report: bool = False,
    trace_format: str = "auto",
    max_tokens: int | None = None,
    tokenizer: Any = None,
    num_proc: int | None = None,
    executor: str = "local",
) -> Dataset | tuple[Dataset, LoadReport]:
    """Traces with `schema.TRACE_COLUMNS` (+ kept columns such as `label.evaluator_correct`).

    Our own traces (a folder of generator shards, a saved dataset, any source with `completion`
    and `trace_id`) pass through; shard folders are sorted by (problem_id, sample_index), one
    row per key (a retried error row is superseded by its new row). Others are imported
    (`preset="skythought_eval"`, or `columns=`): each completion is parsed as `trace_format`
    (`parse.FORMATS`; `auto` tells a marker-less chain of thought from plain text), `model` is
    `model=`, else a `model` column, else the file stem; token counts stay None. Imported traces
    have no finish reason, so a cut-off one is recognised from its text (`parse.cut_off`); with
    `max_tokens`, the budget they were generated under, one whose token count (the source's
    counts, else `tokenizer`'s, a name or instance) reaches it is flagged `truncated` too.
    A repeated (problem_id, sample_index) or a negative sample index is an error naming the row.

    Imported rows are converted in batches, in `num_proc` processes (None: one per CPU from
    `parallel.PARALLEL_ROWS` rows) or with `executor="ray"` as Ray tasks, and written batch by batch
    to an Arrow file of the datasets cache, returned memory-mapped; an identical call (the same
    unchanged files, the same settings) reuses it. Every way gives the same rows.
    """
    if trace_format not in FORMATS:
        raise ValueError(f"unknown trace_format {trace_format!r}; valid formats are {list(FORMATS)}")
    if isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    reading = Reading(trace_format, max_tokens, tokenizer)
    ds, report = _load(source, "traces", preset, columns, split, on_error, model, reading, executor, num_proc)
    return (ds, report) if return_report else ds
