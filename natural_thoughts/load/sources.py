"""Load problem pools and traces made elsewhere into the column contract of `schema`.

A source is a jsonl/json/parquet/csv path or glob, a folder saved with `save_to_disk`, a folder of
parquet shards (our generator's output), a hub name, a `datasets.Dataset` or a `pandas.DataFrame`.
Presets map known layouts onto our columns; `columns=` ({ours: theirs}) maps any other. Bad input
fails naming the file:line or row and the columns that exist; with `on_error="skip"` it is dropped
and reported (a logged warning and a `LoadReport`), never silently.
"""

from __future__ import annotations

import glob
import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset, load_from_disk
from datasets.table import InMemoryTable

from natural_thoughts import schema
from natural_thoughts.parse import FORMATS, parse_trace
from natural_thoughts.load.presets import PROBLEM_PRESETS, TRACE_PRESETS, BadRow, Preset
from natural_thoughts.llm.store import MANIFEST, SHARD_GLOB, latest_rows

log = logging.getLogger(__name__)

Source = str | Path | Dataset | DatasetDict | pd.DataFrame
OnError = Literal["raise", "skip"]
Duplicates = Literal["raise", "number"]
Columns = Mapping[str, str] | None
KEPT_COLUMNS = ("weak_answer", "weak_model")
"""Source columns kept as columns (like any `label.*` / `score.*`), not packed into `extra`."""
SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_TYPES = {f.name: f.type for f in schema.TRACE_SCHEMA}
"""Arrow type of every problem/trace column, so that all-null columns still get their real type."""
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


@dataclass
class _Part:
    """One piece of a source: its rows, its name (the `source` column), where each row came from."""

    ds: Dataset
    name: str
    stem: str | None = None
    lines: list[str] | None = None
    shards: bool = False

    def where(self, i: int) -> str:
        return self.lines[i] if self.lines else f"{self.name} row {i}"


def _bad(message: str, on_error: OnError, report: LoadReport) -> None:
    """Raise for `on_error="raise"`; record for `"skip"`."""
    if on_error == "raise":
        raise ValueError(message)
    report.skipped.append(message)


def _table(rows: list[dict[str, Any]], names: list[str], what: str) -> Dataset:
    """A Dataset from row dicts with our column types; an unconvertible column is named."""
    arrays = {}
    for name in names:
        try:
            arrays[name] = pa.array([r.get(name) for r in rows], type=_TYPES.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise ValueError(f"{what}: column {name!r} holds values of mixed types ({e})") from e
    return Dataset(InMemoryTable(pa.table(arrays)))


def _read_json(path: Path, on_error: OnError, report: LoadReport) -> _Part:
    """JSON lines (or one JSON array), parsed line by line so a bad line is named file:line."""
    try:
        text, docs = path.read_text(encoding="utf-8"), []
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                         "convert the file to UTF-8") from e
    if text.lstrip().startswith("["):
        try:
            docs = [(f"{path}[{i}]", doc) for i, doc in enumerate(json.loads(text))]
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from e
    for n, line in enumerate([] if docs else text.splitlines(), 1):
        try:
            docs += [(f"{path}:{n}", json.loads(line))] if line.strip() else []
        except json.JSONDecodeError as e:
            _bad(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})", on_error, report)
    rows, lines = [], []
    for where, doc in docs:
        if isinstance(doc, dict):
            rows.append(doc)
            lines.append(where)
        else:
            _bad(f"{where}: not a JSON object", on_error, report)
    names = list(dict.fromkeys(k for r in rows for k in r))
    return _Part(_table(rows, names, str(path)), path.name, path.stem, lines)


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
        return _Part(Dataset.from_parquet(shards), path.name, shards=True)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unknown file type; expected one of {sorted(SUFFIXES)}")
    if kind == "json":
        return _read_json(path, on_error, report)
    reader = Dataset.from_parquet if kind == "parquet" else Dataset.from_csv
    return _Part(reader(str(path)), path.name, path.stem)


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


def _is_kept(name: str) -> bool:
    return name in KEPT_COLUMNS or name.startswith((schema.LABEL_PREFIX, schema.SCORE_PREFIX))


def _mapping(
    present: list[str], own: tuple[str, ...], preset: Preset | None, columns: Columns
) -> dict[str, str]:
    """{our name: source column}: the preset's (or the same-named columns), then `columns=`."""
    needed = ("problem", "completion") if "completion" in own else ("problem",)
    base = dict(preset.columns) if preset else {c: c for c in own if c in present or c in needed}
    for ours in columns or {}:
        if ours not in own and not _is_kept(ours):
            known = [*own, *KEPT_COLUMNS, "label.*", "score.*"]
            raise ValueError(f"columns= maps to unknown column {ours!r}; known are {known}")
    return base | dict(columns or {})


def _problem(
    row: dict[str, Any], mapping: dict[str, str], used: set[str], spec: Preset | None, part: _Part
) -> dict[str, Any]:
    """One source row as our problem columns (+ kept columns); the rest goes into `extra`."""
    out = {ours: row[src] for ours, src in mapping.items()}
    extra = out.get("extra") or {}  # a source's own `extra` (JSON text) is kept and added to
    try:
        extra = dict(json.loads(extra) if isinstance(extra, str) else extra)
    except (ValueError, TypeError) as e:
        raise BadRow(f"extra is not a JSON object ({e})") from e
    for key, value in row.items():
        if key not in used:
            (out if _is_kept(key) else extra).setdefault(key, value)
    out["extra"] = extra
    if spec and spec.fix:
        spec.fix(out)
    problem, pid, ref = out.get("problem"), out.get("problem_id"), out.get("reference_answer")
    if not isinstance(problem, str) or not problem.strip():
        raise BadRow(f"problem is empty or not text: {problem!r:.60}")
    out.update(
        problem_id=schema.problem_id(problem) if pid is None or pid == "" else str(pid),
        reference_answer=None if ref is None else str(ref),
        source=out.get("source") or part.name,
        domain=None if out.get("domain") is None else str(out["domain"]),
        extra=json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str),
    )
    return out


@dataclass(frozen=True)
class _Reading:
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


def _trace(out: dict[str, Any], part: _Part, model: str | None, seen: Counter, reading: _Reading) -> dict[str, Any]:
    """Complete a problem row into a trace: parse the completion, number the sample."""
    text = "" if out.get("completion") is None else str(out["completion"])
    parsed = parse_trace(text, format=reading.trace_format, finish_reason=out.get("finish_reason"),
                         tokens=reading.tokens(out, text), max_tokens=reading.max_tokens)
    pid, index = out["problem_id"], out.get("sample_index")
    index = seen[pid] if index is None else int(index)
    if index < 0:
        raise BadRow(f"sample_index {index} is negative")
    if (pid, index) in seen:
        raise BadRow(f"trace key (problem_id={pid!r}, sample_index={index}) appears twice; each sample "
                      "of a problem needs its own sample_index")
    seen[(pid, index)] = seen[pid] = seen[pid] + 1
    name = model or out.get("model") or part.stem
    if not name:
        raise ValueError(f"{part.name} has no model column and no file name: pass model=")
    out.update(trace_id=schema.trace_id(pid, index), sample_index=index, model=str(name))
    out.update(prompt=out.get("prompt") or "", completion=text, final_answer=parsed.final_answer)
    out.update(reasoning=parsed.reasoning, answer=parsed.answer, flags=parsed.flags)
    out["sampling"] = out.get("sampling") or "{}"
    return out


def _check_ids(rows: list[dict[str, Any]], duplicates: Duplicates, what: str) -> None:
    """Refuse repeated problem ids, naming them (their traces would merge on load); with
    `duplicates="number"` keep every repeat as its own problem, id suffixed `#2`, `#3`, …"""
    if duplicates not in ("raise", "number"):
        raise ValueError(f"duplicates must be 'raise' or 'number', not {duplicates!r}")
    if duplicates == "raise":
        schema.require_unique_ids([r["problem_id"] for r in rows], what)
        return
    seen: Counter = Counter()
    for row in rows:
        seen[row["problem_id"]] += 1
        if seen[row["problem_id"]] > 1:
            row["problem_id"] = f"{row['problem_id']}#{seen[row['problem_id']]}"


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
    reading: _Reading = _Reading(),
) -> tuple[Dataset, LoadReport]:
    """Read `source`, map every row to our columns, and report what was skipped."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
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
    ours = all({"completion", "trace_id"} <= set(p.ds.column_names) for p in parts)
    if kind == "traces" and preset is None and columns is None and ours:
        # already our traces: pass through; generator shards get a deterministic order
        ds = concatenate_datasets([p.ds for p in parts]) if len(parts) > 1 else parts[0].ds
        ds = _latest(ds) if any(p.shards for p in parts) else ds
    else:
        rows: list[dict[str, Any]] = []
        seen: Counter = Counter()
        for part in parts:
            mapping = _mapping(part.ds.column_names, own, spec, columns)
            what = f"{kind} source {part.name!r}" + (f" (preset {preset!r})" if preset else "")
            schema.require_columns(part.ds.column_names, list(mapping.values()), what)
            used = set(mapping.values()) | set(spec.drop if spec else ())
            for i, row in enumerate(part.ds):
                try:
                    out = _problem(row, mapping, used, spec, part)
                    rows.append(_trace(out, part, model, seen, reading) if kind == "traces" else out)
                except BadRow as e:
                    _bad(f"{part.where(i)}: {e}", on_error, report)
        if kind == "problems":
            _check_ids(rows, reading.duplicates, report.source)
        kept = dict.fromkeys(k for r in rows for k in r if k not in fixed and _is_kept(k))
        ds = _table(rows, [*fixed, *kept], report.source)
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
) -> Dataset | tuple[Dataset, LoadReport]:
    """A problem pool with exactly `schema.PROBLEM_COLUMNS` (+ kept `weak_*`/`label.*`/`score.*`).

    `preset`: natural_reasoning | gsm8k | math500. `columns` maps our name to the source column.
    Other source columns go, as sorted-key JSON, into `extra`. `problem_id` is the source's id or
    the hash of the text; `source` is the file/hub name ("dataframe" for a DataFrame). A problem id
    that appears twice is an error naming it, unless `duplicates="number"` keeps the repeats apart.
    """
    ds, report = _load(source, "problems", preset, columns, split, on_error, None, _Reading(duplicates=duplicates))
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
    """
    if trace_format not in FORMATS:
        raise ValueError(f"unknown trace_format {trace_format!r}; valid formats are {list(FORMATS)}")
    if isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    reading = _Reading(trace_format, max_tokens, tokenizer)
    ds, report = _load(source, "traces", preset, columns, split, on_error, model, reading)
    return (ds, report) if return_report else ds
