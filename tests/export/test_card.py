"""The card tells the truth about the subset: pool vs selected, warnings, grouped drop reasons, figures by verdict."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from natural_thoughts import load_traces, select
from natural_thoughts.export.card import CUT_OFF_FLAGS, render_card, write_card
from natural_thoughts.export.formats import prepare_export
from natural_thoughts.export.plots import CORRECT_COLUMNS, length_histogram
from natural_thoughts.schema import FLAGS
from natural_thoughts.scores import add_reasoning_tokens
from natural_thoughts.selectors import Random
from natural_thoughts.selectors.base import Selection, selection_from_picks
from natural_thoughts.selectors.testing import default_dataset

from tests.conftest import DATA, needs_data


@pytest.fixture(scope="module")
def sky() -> Dataset:
    """MATH-500 answered by Sky-T1, with the file's own evaluator verdicts."""
    ds = load_traces(str(DATA / "skythought_math500_sky-t1-27b.jsonl"), preset="skythought_eval")
    return add_reasoning_tokens(ds, approximate=True)


def verdict_column(ds: Dataset) -> str:
    return next(c for c in CORRECT_COLUMNS if c in ds.column_names)


def card_for(selection: Selection, pool: Dataset | None = None) -> str:
    return render_card("subset", selection, prepare_export(selection)[1], pool=pool)


def warnings_of(card: str) -> list[str]:
    """The warning lines, all of which must come before the first section."""
    head, _ = card.split("\n## ", 1)
    assert card.count("> **Warning:**") == head.count("> **Warning:**")
    return [line for line in head.splitlines() if line.startswith("> **Warning:**")]


def row(card: str, label: str) -> list[str]:
    """The cells of the table row whose first cell starts with `label`."""
    line = next(x for x in card.splitlines() if x.startswith(f"| {label}"))
    return [c.strip() for c in line.strip("|").split("|")]


def by_hand(ds: Dataset, keep: np.ndarray) -> Selection:
    picks = np.flatnonzero(keep)
    return selection_from_picks(Random(), ds, picks, np.ones(len(picks)), ["picked by the test"] * len(picks),
                                drop_reason="left out by the test")


@needs_data
def test_long_on_a_short_teacher_is_flagged_wrong_cut_off_and_short_of_budget(sky: Dataset) -> None:
    sel = select(sky, {"Sequential": {"steps": [{"Long": {"C": 5000}}]}}, k=len(sky) // 5)
    card = card_for(sel, pool=sky)
    picked, col = sel.subset(), verdict_column(sky)
    wrong = sum(v is False for v in picked[col])
    cut = sum(any(f in fl for f in CUT_OFF_FLAGS) for fl in picked["flags"])
    assert row(card, "traces")[1:] == [str(len(sky)), str(len(sel))]
    assert row(card, "wrong")[2].startswith(f"{wrong} (")
    assert row(card, "verified correct")[1].startswith(f"{sum(v is True for v in sky[col])} (")
    assert row(card, "cut off")[2].startswith(f"{cut} (")
    for flag in FLAGS:
        assert row(card, f"flag `{flag}`")[2].startswith(f"{sum(flag in fl for fl in picked['flags'])} (")
    mean = np.mean(picked["score.reasoning_tokens"])
    assert row(card, "reasoning length, mean (tokens")[2] == f"{mean:,.0f}"
    warnings = warnings_of(card)
    expected = [sel.budget_warning() is not None, wrong > len(sel) / 2, cut > len(sel) / 2]
    assert expected == [any(f"k={sel.requested_k}" in w for w in warnings), any("are wrong" in w for w in warnings),
                        any("cut off" in w for w in warnings)]
    assert any(expected)  # on this teacher, Long(C=5000) shows at least one of the problems
    # Drop reasons are counted by kind: no row's own reason reaches the card.
    assert not [r for r in set(sel.dropped.values()) if r in card]
    assert "Long: not sampled" in card


@needs_data
def test_a_clean_correct_selection_draws_no_warning(sky: Dataset) -> None:
    col = verdict_column(sky)
    clean = np.array([v is True and not any(f in fl for f in CUT_OFF_FLAGS)
                      for v, fl in zip(sky[col], sky["flags"])])
    card = card_for(by_hand(sky, clean))
    assert warnings_of(card) == []
    assert row(card, "verified correct")[2] == f"{clean.sum()} (100%)"


def test_unverified_and_undecided_selections_are_warned() -> None:
    ds = default_dataset()
    no_verdicts = card_for(by_hand(ds.remove_columns("label.correct"), np.ones(len(ds), bool)))
    assert any("no selected trace is verified" in w for w in warnings_of(no_verdicts))
    assert row(no_verdicts, "correctness")[1:] == ["no verdict column", "no verdict column"]
    undecided = np.array([v is None for v in ds["label.correct"]])
    undecided[np.flatnonzero(~undecided)[0]] = True  # one decided row among them
    card = card_for(by_hand(ds, undecided), pool=ds)
    share = f"{(undecided.sum() - 1) / undecided.sum():.0%}"
    assert any(w.endswith(f"{share} of the selected traces are unverified (`label.correct` undecided) "
                          f"(pool: {sum(v is None for v in ds['label.correct']) / len(ds):.0%}).") for w in warnings_of(card))


def test_strategies_by_name_and_domains_pool_vs_selected() -> None:
    ds = default_dataset()
    keep = np.arange(len(ds)) % 2 == 0
    card = card_for(by_hand(ds, keep), pool=ds)
    assert "Strategies (traces using each), from `label.strategies`" in card
    for name in {s for cell in ds["label.strategies"] for s in cell}:
        pool_n = sum(name in cell for cell in ds["label.strategies"])
        picked_n = sum(name in cell for cell, k in zip(ds["label.strategies"], keep) if k)
        assert row(card, name)[1].startswith(f"{pool_n} (") and row(card, name)[2].startswith(f"{picked_n} (")
    assert "Domains, from `domain`" in card
    annotated = ds.add_column("label.domain", ["Science"] * len(ds))
    card = card_for(by_hand(annotated, keep), pool=annotated)
    assert "Domains, from `label.domain`" in card and row(card, "Science")[1:] == [f"{len(ds)} (100%)",
                                                                                   f"{keep.sum()} (100%)"]


def test_figures_split_the_selection_by_verdict(tmp_path: Path) -> None:
    ds = default_dataset()
    sel = select(ds, Random(k=20))
    fig = length_histogram(ds, sel.subset())
    labels = fig.axes[0].get_legend_handles_labels()[1]
    counts = Counter(sel.subset()["label.correct"])
    assert labels[0] == f"pool ({len(ds)})"
    assert labels[1:] == [f"selected, verified correct ({counts[True]})", f"selected, wrong ({counts[False]})",
                          f"selected, undecided ({counts[None]})"]
    _, stats = prepare_export(sel)
    card = write_card(tmp_path, "subset", sel, stats, pool=ds).read_text()
    assert re.search(r"!\[Reasoning length, selected \(by verdict\) vs pool\]\(figures/lengths\.png\)", card)
    assert (tmp_path / "figures" / "lengths.png").exists() and (tmp_path / "figures" / "strategies.png").exists()


def test_programs_pass_rates_and_failure_kinds_pool_vs_selected() -> None:
    """Code traces (the verifier's `score.pass_rate`, `label.failure_kind`): the card counts each
    first-failure kind and the mean pass rate, in the pool and in the selection."""
    ds = default_dataset(2, 3)
    ds = ds.add_column("score.pass_rate", [1.0, 1.0, 0.5, 0.0, 0.25, None])
    ds = ds.add_column("label.failure_kind", [None, None, "wrong_answer", "timeout", "wrong_answer", None])
    card = card_for(by_hand(ds, np.array([True, False, True, False, False, False])), pool=ds)
    assert row(card, "programs: mean test pass rate (`score.pass_rate`)")[1:] == ["55.0%", "75.0%"]
    assert row(card, "wrong_answer")[1:] == ["2 (33%)", "1 (50%)"] and row(card, "timeout")[1:] == ["1 (17%)", "0 (0%)"]
