"""Grouped drop reasons over every built-in selector, budgets (`requested_k`, the warning), `Long(C="auto")`,
and the validation of `k` and `seed`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from natural_thoughts.schema import REASONING_TOKENS
from natural_thoughts.selectors import (
    DropFlags,
    LengthRange,
    Long,
    Random,
    Selector,
    Sequential,
    TopLength,
    Union,
    WeightedSum,
    available_selectors,
    select,
)
from natural_thoughts.selectors.base import resolve_k, resolve_seed
from natural_thoughts.selectors.testing import default_dataset
from natural_thoughts.pipeline.stages import load_selection, save_selection


def lengths_ds(lengths: list[int]) -> Dataset:
    return Dataset.from_dict({REASONING_TOKENS: lengths})


def every_builtin_selector(tmp_path: Path, ds: Dataset) -> list[Selector]:
    """One instance of each built-in selector, with the arguments it needs on `default_dataset`."""
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"problem": p}) + "\n" for p in sorted(set(ds["problem"]))[:3]))
    needs_args: dict[str, Selector] = {
        "TopLength": TopLength(10), "Sequential": Sequential([DropFlags(), Long(C="auto")]),
        "Union": Union([TopLength(5), Random(k=5)]), "WeightedSum": WeightedSum({"Long": 1.0}, k=20),
        "Decontaminate": available_selectors()["Decontaminate"](benchmarks=[str(bench)]),
        "ClusterUniform": available_selectors()["ClusterUniform"](n_clusters=5, k=20),
        "Stratified": available_selectors()["Stratified"](k=20),
    }
    import natural_thoughts.selectors as builtin

    names = [n for n in builtin.__all__ if n in available_selectors()]
    return [needs_args[n] if n in needs_args else available_selectors()[n]() for n in names]


@pytest.mark.parametrize("n_problems", [25, 100])
def test_step_reports_count_drop_reasons_by_kind(n_problems: int, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATURAL_THOUGHTS_CACHE", str(tmp_path / "cache"))
    ds = default_dataset(n_problems=n_problems, samples=4)  # 100 and 400 rows
    selectors = every_builtin_selector(tmp_path, ds)
    assert {type(s).__name__ for s in selectors} >= {"VerbosityBand", "ClusterUniform", "RankDecay", "Random"}
    for selector in selectors:
        sel = selector.fit(ds).select(ds)
        for step in sel.steps:
            assert len(step.dropped) <= 10, (selector, step.dropped)
            assert sum(step.dropped.values()) == step.n_in - step.n_kept, (selector, step)
        kinds = {k for reasons in sel.report()["dropped_by_reason"] for k in reasons}
        assert len(kinds) <= 10 + len(sel.steps), (selector, kinds)
        assert len(sel.dropped) == len(ds) - len(sel)  # the per-row detail stays on the Selection


def test_k_and_seed_must_be_whole_non_negative_numbers() -> None:
    ds = lengths_ds(list(range(20)))
    with pytest.raises(ValueError, match="k must be a whole number, got 2.7"):
        Random(k=2.7).select(ds)
    with pytest.raises(ValueError, match="k must be a whole number"):
        resolve_k(Random(), "5", 20)
    with pytest.raises(ValueError, match="k must be >= 0, got -1"):
        Random().select(ds, k=-1)
    assert resolve_k(Random(), 5.0, 20) == 5 and resolve_k(Random(), np.int64(30), 20) == 20
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        Random(seed=-1).select(ds)
    with pytest.raises(ValueError, match="seed must be a whole number, got 1.5"):
        Long(C=5).select(ds, seed=1.5)
    with pytest.raises(ValueError, match="seed must be a whole number"):
        resolve_seed(Random(), True)
    assert resolve_seed(Random(seed=3), None) == 3 and resolve_seed(Sequential([Random()]), None) == 0


def test_long_auto_chooses_C_from_the_data_and_reaches_the_budget(caplog: pytest.LogCaptureFixture) -> None:
    lens = np.random.default_rng(0).integers(200, 3000, 600)  # a teacher shorter than C=5000
    ds = lengths_ds(lens.tolist())
    auto = Long(C="auto", C_quantile=0.9).fit(ds)
    assert auto.C_ == pytest.approx(np.quantile(lens, 0.9))
    assert Long(C="auto").get_params()["C"] == "auto" and not hasattr(Long(C="auto"), "C_")
    p = auto.score(ds)
    assert np.allclose(p, np.minimum(1.0, (lens / auto.C_) ** 2.5))
    unfitted = Long(C="auto").select(ds)  # without fit, C comes from the rows given
    assert unfitted.steps[0].fitted == {"C_": auto.C_}
    assert "C_" in unfitted.report()["params"][0]

    with caplog.at_level(logging.WARNING, logger="natural_thoughts.selectors.base"):
        fixed = select(ds, Long(C=5000), k=100)
    assert len(fixed) < 100 and fixed.requested_k == 100
    warning = fixed.budget_warning()
    assert warning is not None and warning in caplog.text
    assert f"k=100 was requested but only {len(fixed)} of 600" in warning and "Long kept" in warning
    assert "'Long: not sampled'" in warning and "relax Long (C=5000" in warning
    reached = select(ds, {"Long": {"C": "auto"}}, k=100)
    assert len(reached) == 100 and reached.budget_warning() is None
    assert fixed.steps[0].fitted == {}  # a numeric C is used as given

    with pytest.raises(ValueError, match="C must be a number > 0 or 'auto'"):
        Long(C="long").select(ds)
    with pytest.raises(ValueError, match=r"C_quantile must be in \(0, 1\]"):
        Long(C="auto", C_quantile=1.5).fit(ds)


def test_budget_is_recorded_in_provenance_and_survives_a_save(tmp_path: Path) -> None:
    ds = default_dataset()
    pipe = Sequential([DropFlags(), LengthRange(min_tokens=3000), Random()])
    short = select(ds, pipe, k=len(ds))
    prov = short.provenance()
    assert prov["requested_k"] == len(ds) and prov["n_selected"] == len(short) < len(ds)
    limiting = short.limiting_step()
    assert limiting is not None and f"{limiting.name} kept {limiting.n_kept} of {limiting.n_in}" in prov["budget_warning"]
    json.dumps(prov, default=str)
    save_selection(short, tmp_path)
    loaded = load_selection(ds, tmp_path)
    assert loaded.requested_k == len(ds) and loaded.budget_warning() == short.budget_warning()
    met = select(ds, Random(k=5))
    assert met.requested_k == 5 and met.provenance()["budget_warning"] is None
    assert select(ds, DropFlags()).requested_k is None


def test_a_budget_above_the_pool_says_so() -> None:
    ds = lengths_ds(list(range(10)))
    sel = select(ds, Random(), k=25)
    assert len(sel) == 10 and sel.budget_warning() == (
        "k=25 was requested but only 10 of 10 rows were selected (no step dropped any: the pool is smaller than k).")


def test_the_warning_names_the_step_that_limited_the_output_not_the_one_that_dropped_most() -> None:
    """The first filter drops 900 rows and leaves 100, enough for k=80; the second drops 40 and
    leaves 60: the second limited the output, and relaxing it is what reaches k."""
    ds = lengths_ds(list(range(1000)))
    sel = select(ds, Sequential([LengthRange(min_tokens=900), LengthRange(max_tokens=959), Random()]), k=80)
    assert [(s.n_in, s.n_kept) for s in sel.steps] == [(1000, 100), (100, 60), (60, 60)]
    warning = sel.budget_warning()
    assert warning is not None and sel.limiting_step() is sel.steps[1]
    assert "LengthRange kept 60 of 100" in warning and "relax LengthRange (max_tokens=959)" in warning
    assert "kept 100 of 1000" not in warning
