"""The vectorised paths give what the row-by-row definitions give: StrategyCount's Arrow path vs
`strategy_counts` cell by cell, `column()` on numbers vs Python values, and reasons formatted once
per distinct value vs once per row."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset
from datasets.table import InMemoryTable

from natural_thoughts.schema import REASONING_TOKENS
from natural_thoughts.selectors import Long, Selection, StrategyCount
from natural_thoughts.selectors.base import column, stored_column, texts_by_key
from natural_thoughts.selectors.diversity import _arrow_strategy_counts, strategy_counts

STRATEGIES = pa.list_(pa.struct([("name", pa.string()), ("count", pa.int64()), ("evidence", pa.string())]))


def arrow_dataset(**columns: pa.Array) -> Dataset:
    """A Dataset over exactly these Arrow arrays (`from_dict` would infer its own types)."""
    return Dataset(InMemoryTable(pa.table(columns)))


def strategy_cells(n: int, seed: int = 0) -> list[list[dict[str, Any]] | None]:
    """Annotator-shaped cells with what the rule must get right: None cells, empty lists, counts
    of 0, negative and null counts, and a name repeated within a cell."""
    rng = np.random.default_rng(seed)
    cells: list[list[dict[str, Any]] | None] = []
    for _ in range(n):
        if rng.random() < 0.05:
            cells.append(None)
            continue
        cells.append([{"name": f"s{rng.integers(0, 9 if rng.random() < 0.8 else 3)}",
                       "count": None if rng.random() < 0.05 else int(rng.integers(-1, 6)), "evidence": "e"}
                      for _ in range(int(rng.integers(0, 11)))])
    return cells


def same_selection(a: Selection, b: Selection) -> None:
    assert a.indices.tolist() == b.indices.tolist() and a.scores.tolist() == b.scores.tolist()
    assert a.reasons == b.reasons and list(a.dropped.items()) == list(b.dropped.items())
    assert [s.__dict__ for s in a.steps] == [s.__dict__ for s in b.steps]


@pytest.mark.parametrize("view", ["stored", "shuffled", "repeated rows"])
def test_strategy_count_arrow_path_matches_cells(view: str) -> None:
    n = 400
    cells = strategy_cells(n)
    tokens = pa.array(np.random.default_rng(1).integers(0, 4000, n))
    structs = arrow_dataset(**{"label.strategies": pa.array(cells, STRATEGIES), REASONING_TOKENS: tokens})
    texts = arrow_dataset(**{"label.strategies": pa.array([None if c is None else json.dumps(c) for c in cells]),
                             REASONING_TOKENS: tokens})  # the same cells as JSON text: read cell by cell
    rows = {"stored": np.arange(n), "shuffled": np.random.default_rng(2).permutation(n)[:300],
            "repeated rows": np.r_[np.arange(50), np.arange(50), 7, 7]}[view]
    if view != "stored":
        structs, texts = structs.select(rows), texts.select(rows)
    assert _arrow_strategy_counts(*stored_column(structs, "label.strategies")) is not None
    assert _arrow_strategy_counts(*stored_column(texts, "label.strategies")) is None

    counts = [strategy_counts(cells[i], i, "label.strategies") for i in rows]
    distinct, occurrences = StrategyCount()._counts(structs)
    assert distinct.tolist() == [len(c) for c in counts]
    assert occurrences.tolist() == [sum(c.values()) for c in counts]
    for sc in (StrategyCount(), StrategyCount(min=1, max=3, k=20), StrategyCount(min=0, max=9, min_density=2.0)):
        same_selection(sc.select(structs, seed=1), sc.select(texts, seed=1))


@pytest.mark.parametrize("bad", [None, {"name": None, "count": 1}, {"name": "", "count": 1}])
def test_strategy_count_refuses_a_bad_cell_only_when_it_is_selected(bad: dict[str, Any] | None) -> None:
    cells = [[{"name": "a", "count": 1, "evidence": "e"}] for _ in range(5)]
    cells[2] = cells[2] + [bad]
    ds = arrow_dataset(**{"label.strategies": pa.array(cells, STRATEGIES), REASONING_TOKENS: pa.array([100] * 5)})
    assert len(StrategyCount(min=0).select(ds.select([0, 1, 3, 4]))) == 4
    with pytest.raises(TypeError, match="row 1 has an item that is neither a name nor a dict"):
        StrategyCount(min=0).select(ds.select([0, 2]))


def test_column_reads_numbers_as_python_values_would() -> None:
    ds = arrow_dataset(int32=pa.array([1, 2, 3, 4], pa.int32()), uint8=pa.array([1, 2, 3, 4], pa.uint8()),
                       float32=pa.array([0.1, 0.2, 0.3, 0.4], pa.float32()), flag=pa.array([True, False, True, True]),
                       nulls=pa.array([1, None, 3, 4]))
    for view in (ds, ds.select([3, 1, 1])):
        for name in ds.column_names:
            python = view.with_format("arrow")[name].to_pylist()
            expected = np.asarray(python, dtype=object if None in python else None)
            got = column(view, name)
            assert got.dtype == expected.dtype and got.tolist() == expected.tolist() and got.flags.writeable


def test_texts_by_key_formats_each_distinct_key_once() -> None:
    x = np.array([0.5, -0.0, 0.0, 0.5, np.nan, 0.0])
    flag = np.array([0, 1, 1, 0, 0, 0])
    calls: list[int] = []
    texts, marks = texts_by_key([x.view(np.int64), flag], lambda i: calls.append(i) or f"{x[i]:g}",
                                lambda i: f"{x[i]:g}/{flag[i]}")
    assert texts.tolist() == ["0.5", "-0", "0", "0.5", "nan", "0"]  # -0.0 and 0.0 print apart
    assert marks.tolist() == [f"{v:g}/{f}" for v, f in zip(x, flag)]
    assert len(calls) == 5
    assert texts_by_key([np.zeros(0, dtype=np.int64)], str)[0].tolist() == []


def test_long_reasons_are_the_per_row_texts() -> None:
    lengths = np.random.default_rng(0).integers(0, 6000, 3000)
    ds = Dataset.from_dict({REASONING_TOKENS: lengths})
    verdict = Long(C=3000).verdict(ds, seed=3)
    p = np.minimum(1.0, (lengths / 3000.0) ** 2.5)
    expected = [f"kept with p={pi:.2f} (l={li:g})" if kept else f"dropped by Long sampling (p={pi:.2f})"
                for pi, li, kept in zip(p, lengths.astype(float), verdict.keep)]
    assert list(verdict.reasons) == expected
