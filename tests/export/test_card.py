"""The card tells the truth about the subset: pool vs selected, warnings, grouped drop reasons, figures by verdict."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from natural_thoughts import attach_weak, export, load_traces, run, select, verify
from natural_thoughts.export.card import CUT_OFF_FLAGS, EVALUATOR, SELECTION_ONLY, render_card, write_card
from natural_thoughts.export.formats import prepare_export
from natural_thoughts.export.plots import CORRECT_COLUMNS, length_histogram
from natural_thoughts.schema import FLAGS
from natural_thoughts.scores import add_reasoning_tokens
from natural_thoughts.selectors import DropFlags, ModelsDisagree, Random, Sequential
from natural_thoughts.selectors.base import Selection, selection_from_picks
from natural_thoughts.selectors.testing import default_dataset

from tests.conftest import DATA

TEACHER, WEAK = "skythought_math500_sky-t1-27b.jsonl", "skythought_math500_qwen2.5-math-7b.jsonl"
"""The shared Models-Disagree pair: Sky-T1 on MATH-500, and Qwen2.5-Math-7B's answers to the same questions."""


@pytest.fixture(scope="module")
def sky() -> Dataset:
    """MATH-500 answered by Sky-T1, with the file's own evaluator verdicts."""
    ds = load_traces(str(DATA / "skythought_math500_sky-t1-27b.jsonl"), preset="skythought_eval")
    return add_reasoning_tokens(ds, approximate=True)


def verdict_column(ds: Dataset) -> str:
    return next(c for c in CORRECT_COLUMNS if c in ds.column_names)


def correct_row(column: str) -> str:
    """The label of the card's "correct" row: "verified" only for our own verdict."""
    return "correct by the file's evaluator" if column == EVALUATOR else "verified correct"


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


def test_long_on_a_short_teacher_is_flagged_wrong_cut_off_and_short_of_budget(sky: Dataset) -> None:
    sel = select(sky, {"Sequential": {"steps": [{"Long": {"C": 5000}}]}}, k=len(sky) // 5)
    card = card_for(sel, pool=sky)
    picked, col = sel.subset(), verdict_column(sky)
    wrong = sum(v is False for v in picked[col])
    cut = sum(any(f in fl for f in CUT_OFF_FLAGS) for fl in picked["flags"])
    assert row(card, "traces")[1:] == [str(len(sky)), str(len(sel))]
    assert row(card, "wrong")[2].startswith(f"{wrong} (")
    assert row(card, correct_row(col))[1].startswith(f"{sum(v is True for v in sky[col])} (")
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


def test_a_clean_correct_selection_draws_no_warning(sky: Dataset) -> None:
    col = verdict_column(sky)
    clean = np.array([v is True and not any(f in fl for f in CUT_OFF_FLAGS)
                      for v, fl in zip(sky[col], sky["flags"])])
    card = card_for(by_hand(sky, clean))
    assert warnings_of(card) == []
    assert row(card, correct_row(col))[2] == f"{clean.sum()} (100%)"


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


def section(card: str, title: str) -> str:
    """The text of the card's `## title` section (up to the next section)."""
    return card.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def exported_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


@pytest.fixture(scope="module")
def pair() -> Dataset:
    """The teacher's traces with the weak model's answers joined by question text."""
    pool = load_traces(str(DATA / TEACHER), preset="skythought_eval")
    return attach_weak(pool, str(DATA / WEAK), preset="skythought_eval", on="problem")


def test_system2_is_counted_from_what_each_exported_row_holds(tmp_path: Path) -> None:
    """Qwen2.5-Math-7B writes short CoT: rows read as a chain carry a reasoning part, plain ones do
    not. The card's mix matches the exported files: System-2 rows are those with think tags."""
    ds = load_traces(str(DATA / WEAK), preset="skythought_eval")
    export(ds, tmp_path, file_format="jsonl", figures=False)
    card, rows = (tmp_path / "README.md").read_text(), exported_rows(tmp_path)
    thinking = sum("<think>" in r["messages"][-1]["content"] for r in rows)
    bare = sum(not r for r in ds["reasoning"])
    assert thinking == len(ds) - bare
    mix = section(card, "System-1 / System-2 mix")
    assert (f"system2: {thinking} (" in mix) == bool(thinking) and (f"system1: {bare} (" in mix) == bool(bare)
    assert (f"{bare} rows meant for System-2 hold no reasoning part" in mix) == bool(bare)


def test_an_export_without_think_blocks_is_not_called_system2(tmp_path: Path) -> None:
    """The same answers read as plain text (no reasoning part in any row): all System-1, and a warning."""
    ds = load_traces(str(DATA / WEAK), preset="skythought_eval", trace_format="plain")
    export(ds, tmp_path, file_format="jsonl", figures=False)
    card, rows = (tmp_path / "README.md").read_text(), exported_rows(tmp_path)
    assert not any("<think>" in r["messages"][-1]["content"] for r in rows)
    assert f"Mix: system1: {len(ds)} (100%)." in section(card, "System-1 / System-2 mix")
    assert any("100% of the exported rows hold no reasoning part" in w for w in warnings_of(card))


def test_the_budget_warning_names_the_step_that_limited_the_output(pair: Dataset) -> None:
    """k is what DropFlags leaves, so DropFlags is never what stops k: ModelsDisagree is, and it is
    named with its own counts, whichever step dropped more rows."""
    k = len(select(pair, DropFlags()))
    sel = select(pair, Sequential([DropFlags(), ModelsDisagree(), Random()]), k=k)
    card = card_for(sel, pool=pair)
    warning = sel.budget_warning()
    assert (warning is None) == (len(sel) == k)
    if warning is not None:
        assert sel.limiting_step() is sel.steps[1]
        assert f"ModelsDisagree kept {len(sel)} of {k}" in warning and "relax ModelsDisagree (judge=" in warning
        assert "DropFlags kept" not in warning and any(warning in w for w in warnings_of(card))


def test_the_file_evaluator_is_shown_beside_our_verdict(pair: Dataset) -> None:
    pool = verify(pair)
    keep = np.array([ours is True for ours in pool["label.correct"]])
    card = card_for(by_hand(pool, keep), pool=pool)
    ours, theirs = pool["label.correct"], pool[EVALUATOR]
    for label, value in (("correct by the file's evaluator", True), ("wrong by the file's evaluator", False)):
        picked = sum(t is value for t, k in zip(theirs, keep) if k)
        assert row(card, label)[1:3] == [f"{sum(t is value for t in theirs)} (" + row(card, label)[1].split(" (")[1],
                                         f"{picked} (" + row(card, label)[2].split(" (")[1]]
    decided = [(o, t) for o, t in zip(ours, theirs) if o is not None and t is not None]
    agree = sum(o == t for o, t in decided)
    assert row(card, "ours and the file's evaluator agree")[1].startswith(f"{agree} (")
    assert row(card, "ours and the file's evaluator disagree")[1].startswith(f"{len(decided) - agree} (")
    picked = [(o, t) for (o, t), k in zip(zip(ours, theirs), keep) if k and t is not None]
    assert row(card, "ours and the file's evaluator disagree")[2].startswith(f"{sum(t is False for _, t in picked)} (")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small Models-Disagree-style run from a config (the CLI's path): teacher file, weak file."""
    out = tmp_path_factory.mktemp("run")
    config = {"name": "pair", "output_dir": str(out),
              "traces": {"source": str(DATA / TEACHER), "preset": "skythought_eval", "license": "apache-2.0",
                         "limit": 60, "weak": {"source": str(DATA / WEAK), "preset": "skythought_eval",
                                               "on": "problem", "license": "apache-2.0"}},
              "score": {"approximate": True},
              "select": {"selector": {"Sequential": {"steps": ["DropFlags", "Random"]}}, "k": 20, "seed": 0},
              "export": {"format": "messages", "file_format": "jsonl"}, "card": {"figures": False}}
    run(config)
    return {"config": config, "card": (out / "export" / "README.md").read_text()}


def test_every_input_file_is_in_the_sources(recipe: dict) -> None:
    sources = section(recipe["card"], "Sources")
    assert row(sources, "traces |")[1] == TEACHER and row(sources, "traces.weak")[1] == WEAK
    assert row(sources, "traces.weak")[4] == SELECTION_ONLY
    assert "license: apache-2.0" in recipe["card"].split("---")[1]
    assert row(section(recipe["card"], "Models"), "weak model")[1] == WEAK.removesuffix(".jsonl")
    assert str(DATA) not in recipe["card"]  # local files by name: the card does not depend on where it ran


def test_nt_export_writes_the_card_run_writes(recipe: dict, tmp_path: Path) -> None:
    """The same selection exported from Python: every section a run's card holds about the data is
    the same; sources and models come from the rows."""
    traces = recipe["config"]["traces"]
    pool = load_traces(traces["source"], preset="skythought_eval")
    pool = pool.select(range(min(traces["limit"], len(pool))))  # as the run's `limit` does
    pool = attach_weak(pool, traces["weak"]["source"], preset="skythought_eval", on="problem")
    pool = add_reasoning_tokens(pool, approximate=True)
    sel = select(pool, recipe["config"]["select"]["selector"], k=20, seed=0)
    export(sel, tmp_path / "pair", file_format="jsonl", figures=False)
    card = (tmp_path / "pair" / "README.md").read_text()
    head = recipe["card"].split("\n## ", 1)[0]
    assert card.split("\n## ", 1)[0] == head.replace("license: apache-2.0", "license: other")
    for title in ("What the subset holds", "Selection", "Export", "System-1 / System-2 mix"):
        assert section(card, title) == section(recipe["card"], title), title
    assert row(section(card, "Sources"), "rows' `source`")[1] == TEACHER
    assert row(section(card, "Models"), "weak model")[1] == WEAK.removesuffix(".jsonl")
