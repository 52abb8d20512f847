"""The batched importer: processes, batch sizes and the cache change nothing about the rows; a
column whose type or presence changes between batches survives; bad rows keep their order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import config as datasets_config

from natural_thoughts.load import importer
from natural_thoughts.load.sources import load_problems, load_traces

from tests.conftest import DATA

SKY = sorted(DATA.glob("skythought_*sky-t1*.jsonl"))


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty datasets cache: nothing is reused from another test."""
    folder = tmp_path / "hf"
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", str(folder))
    return folder


def _rows(ds) -> list[dict]:
    return ds.with_format("arrow")[:].to_pylist()


def test_processes_and_batch_sizes_give_the_same_rows_as_one_batch(fresh_cache: Path, monkeypatch) -> None:
    files = [str(f) for f in SKY]
    monkeypatch.setattr(importer, "BATCH_ROWS", 10**9)
    whole = load_traces(files[0], preset="skythought_eval", num_proc=1)
    for cached in fresh_cache.rglob("*.arrow"):
        cached.unlink()
    monkeypatch.setattr(importer, "BATCH_ROWS", 37)
    split = load_traces(files[0], preset="skythought_eval", num_proc=2)
    assert _rows(split) == _rows(whole) and split.features == whole.features
    assert not list(fresh_cache.rglob("*-batches")), "the workers' batch files outlived the import"
    assert whole.cache_files and len(whole) == sum(1 for line in open(files[0]) if line.strip())


def test_parquet_is_read_in_batches_without_a_datasets_copy(fresh_cache: Path, tmp_path: Path, monkeypatch) -> None:
    rows = [json.loads(line) for line in SKY[0].read_text().splitlines()][:120]
    jsonl = tmp_path / "sky.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parquet = tmp_path / "sky.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet, row_group_size=50)
    monkeypatch.setattr(importer, "BATCH_ROWS", 16)
    from_parquet = load_traces(parquet, preset="skythought_eval", model="sky")
    from_json = load_traces(jsonl, preset="skythought_eval", model="sky")
    columns = [c for c in from_json.column_names if c != "source"]
    assert _rows(from_parquet.select_columns(columns)) == _rows(from_json.select_columns(columns))
    assert not list(fresh_cache.glob("parquet")), "the importer streams parquet; datasets made a copy"


def test_an_identical_call_reuses_the_import_and_an_edited_file_does_not(fresh_cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"problem": "What is 1 + 1?"}) + "\n")
    first = load_problems(path)
    again = load_problems(path)
    assert again.cache_files == first.cache_files and again["problem"] == ["What is 1 + 1?"]
    path.write_text(json.dumps({"problem": "What is 2 + 2?"}) + "\n")
    os.utime(path, ns=(1, 1))  # a new time as well as new content
    assert load_problems(path)["problem"] == ["What is 2 + 2?"]


def test_a_column_that_appears_or_changes_type_between_batches_is_kept(fresh_cache: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.setattr(importer, "BATCH_ROWS", 2)
    rows = [{"problem": f"Question {i}?", "label.grade": None if i < 3 else f"g{i}"} for i in range(6)]
    rows[5]["score.late"] = 1.5
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_problems(path)
    assert ds["label.grade"] == [None, None, None, "g3", "g4", "g5"]
    assert ds["score.late"] == [None] * 5 + [1.5]
    assert [p.name for p in (fresh_cache / "natural_thoughts" / "imports").glob("*-*.arrow")] == []


def test_bad_rows_are_reported_in_row_order_across_batches(fresh_cache: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(importer, "BATCH_ROWS", 2)
    rows = [{"problem": "Q?", "completion": "a", "sample_index": 0}, {"problem": "", "completion": "b"},
            {"problem": "Q?", "completion": "c", "sample_index": 0}, {"problem": "R?", "completion": "d"},
            {"problem": "R?", "completion": "e", "sample_index": -1}]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds, report = load_traces(path, on_error="skip", model="m", return_report=True)
    assert [w.split(": ")[0] for w in report.skipped] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert "appears twice" in report.skipped[1] and "negative" in report.skipped[2]
    assert ds["completion"] == ["a", "d"]
    with pytest.raises(ValueError, match=rf"{path}:2: problem is empty"):
        load_traces(path, model="m")
    _, cached = load_traces(path, on_error="skip", model="m", return_report=True)
    assert cached.skipped == report.skipped


def test_an_unknown_executor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"problem": "Q?"}) + "\n")
    with pytest.raises(ValueError, match=r"executor must be one of \['local', 'ray'\], got 'dask'"):
        load_problems(path, executor="dask")
