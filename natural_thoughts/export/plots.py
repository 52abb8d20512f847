"""Matplotlib figures for notebooks and dataset cards.

Each function takes Datasets and returns a `matplotlib.figure.Figure` made without pyplot, so
nothing depends on a display or a global backend (Jupyter shows a returned figure inline);
`card_figures` saves the ones the data allows as PNG files. Lengths are reasoning tokens when
counted, else characters (the axis says which). Where the traces carry a correctness verdict,
the selection is drawn split by it: verified correct / wrong / undecided for `verify`'s verdicts,
correct / wrong by the file's evaluator for a source's own.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
from datasets import Dataset
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..schema import REASONING_TOKENS, REASONING_TOKENS_SOURCE
from ..selectors.diversity import domain_column

STRATEGIES = "label.strategies"
CORRECT_COLUMNS = ("label.correct", "label.evaluator_correct")
"""Where a trace's verdict lives: `verify`'s (or the source's own) `label.correct`, else the
source evaluator's `label.evaluator_correct`."""
VERDICTS = {True: "verified correct", False: "wrong", None: "undecided"}
"""Words for `verify`'s verdicts (`label.correct`)."""
EVALUATOR_VERDICTS = {True: "correct by the file's evaluator", False: "wrong by the file's evaluator",
                      None: "no verdict from the file's evaluator"}
"""Words for a source's own verdicts (`label.evaluator_correct`): the file's, not verified here."""
VERDICT_COLOURS = {True: "tab:green", False: "tab:red", None: "tab:orange"}
CLUSTER_COLUMN = "label.cluster"
_CLUSTER_REASON = re.compile(r"\bcluster (\d+)\b")
PNG_METADATA = {"Software": None}
"""No matplotlib version stamp in the PNGs, so that the same data gives the same bytes."""


def reasoning_lengths(ds: Dataset) -> tuple[np.ndarray, str]:
    """Reasoning length per row and its unit: `score.reasoning_tokens`, else the engine's
    `reasoning_tokens`, else characters of `reasoning`."""
    for name in (REASONING_TOKENS, "reasoning_tokens"):
        if name in ds.column_names:
            values = ds[name]
            if all(v is not None for v in values):
                sources = set(ds[REASONING_TOKENS_SOURCE]) if REASONING_TOKENS_SOURCE in ds.column_names else set()
                approx = any(str(s).startswith("approx") for s in sources)
                return np.asarray(values, dtype=float), "tokens, approx." if approx else "tokens"
    return np.array([len(r or "") for r in ds["reasoning"]], dtype=float), "characters"


def correctness(ds: Dataset) -> tuple[list[bool | None], str] | None:
    """Each row's verdict (True / False / None = undecided) and the column it came from, read
    from the first of `CORRECT_COLUMNS` present; None when the traces carry no verdict at all."""
    for name in CORRECT_COLUMNS:
        if name in ds.column_names:
            return [None if v is None else bool(v) for v in ds[name]], name
    return None


def verdict_words(column: str) -> dict[bool | None, str]:
    """How to name the verdicts read from `column`: "verified" only for `verify`'s own."""
    return VERDICTS if column == "label.correct" else EVALUATOR_VERDICTS


def _selected_hist(ax: Axes, values: np.ndarray, selected: Dataset, edges: np.ndarray) -> None:
    """The selection's histogram of `values`: stacked by verdict when the rows carry one."""
    verdicts = correctness(selected)
    if verdicts is None:
        ax.hist(values, bins=edges, color="tab:blue", alpha=0.8, label=f"selected ({len(selected)})")
        return
    words = verdict_words(verdicts[1])
    parts = [(v, values[np.array([x is v for x in verdicts[0]], dtype=bool)]) for v in words]
    ax.hist([part for _, part in parts], bins=edges, stacked=True, alpha=0.85,
            color=[VERDICT_COLOURS[v] for v, _ in parts],
            label=[f"selected, {words[v]} ({len(part)})" for v, part in parts])


def length_histogram(pool: Dataset, selected: Dataset | None = None, bins: int = 30) -> Figure:
    """Reasoning-length histogram of the pool, with the selection drawn over it, stacked by
    verdict (named after whose it is, `verdict_words`) when the traces carry one."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    lengths, unit = reasoning_lengths(pool)
    edges = np.histogram_bin_edges(lengths if len(lengths) else [0, 1], bins=bins)
    ax.hist(lengths, bins=edges, color="0.75", label=f"pool ({len(pool)})")
    if selected is not None:
        _selected_hist(ax, reasoning_lengths(selected)[0], selected, edges)
    ax.set(xlabel=f"reasoning length ({unit})", ylabel="traces", title="Reasoning length")
    ax.legend()
    fig.tight_layout()
    return fig


def domain_bars(pool: Dataset, selected: Dataset | None = None, top: int = 20) -> Figure:
    """Traces per domain (the `top` largest), pool next to selection."""
    name = domain_column(pool) or "domain"
    pool_counts = Counter(v or "(none)" for v in pool[name])
    sel_counts = Counter(v or "(none)" for v in selected[name]) if selected is not None else Counter()
    labels = [d for d, _ in sorted(pool_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    y = np.arange(len(labels))
    fig = Figure(figsize=(6, 0.3 * len(labels) + 1.2))
    ax = fig.subplots()
    ax.barh(y - 0.2, [pool_counts[d] for d in labels], height=0.4, color="0.75", label="pool")
    if selected is not None:
        ax.barh(y + 0.2, [sel_counts[d] for d in labels], height=0.4, color="tab:blue", label="selected")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set(xlabel="traces", title=f"Domains ({name})")
    ax.legend()
    fig.tight_layout()
    return fig


def strategy_counts(ds: Dataset, column: str = STRATEGIES) -> np.ndarray:
    """Distinct strategies per trace, from a strategy label column (what `StrategyCount` scores)."""
    from ..selectors import StrategyCount

    return StrategyCount(column=column).score(ds).astype(int)


def strategy_histogram(pool: Dataset, selected: Dataset | None = None, column: str = STRATEGIES) -> Figure:
    """How many distinct reasoning strategies each trace uses, pool and selection (by verdict)."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    counts = strategy_counts(pool, column)
    top = int(counts.max()) if len(counts) else 0
    edges = np.arange(-0.5, top + 1.5)
    ax.hist(counts, bins=edges, color="0.75", label="pool")
    if selected is not None:
        _selected_hist(ax, strategy_counts(selected, column), selected, edges)
    ax.set_xticks(range(0, top + 1, max(1, (top + 1) // 15)))
    ax.set(xlabel="distinct strategies per trace", ylabel="traces", title="Reasoning strategies")
    ax.legend()
    fig.tight_layout()
    return fig


def cluster_labels(ds: Dataset) -> list[int] | None:
    """Each row's cluster: a `label.cluster` column, else the "cluster N" of `selection.reason`."""
    if CLUSTER_COLUMN in ds.column_names:
        return [int(c) for c in ds[CLUSTER_COLUMN] if c is not None]
    if "selection.reason" in ds.column_names:
        found = [_CLUSTER_REASON.search(r or "") for r in ds["selection.reason"]]
        if found and all(found):
            return [int(m.group(1)) for m in found if m]
    return None


def cluster_sizes(labels: list[int]) -> Figure:
    """Rows per cluster, largest first."""
    sizes = sorted(Counter(labels).values(), reverse=True)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.bar(np.arange(len(sizes)), sizes, color="tab:blue")
    ax.set(xlabel="cluster (by size)", ylabel="rows", title=f"Cluster sizes ({len(sizes)} clusters)")
    fig.tight_layout()
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Save a figure as PNG without time or version stamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    return path


def card_figures(pool: Dataset, selected: Dataset, folder: str | Path) -> dict[str, Path]:
    """Save every figure the columns allow under `folder`; returns {title: path}."""
    folder = Path(folder)
    split = " (by verdict)" if correctness(selected) else ""
    out = {f"Reasoning length, selected{split} vs pool": save(length_histogram(pool, selected), folder / "lengths.png")}
    if domain_column(pool):
        out["Domains"] = save(domain_bars(pool, selected), folder / "domains.png")
    if STRATEGIES in pool.column_names and STRATEGIES in selected.column_names:
        out["Distinct strategies per trace"] = save(strategy_histogram(pool, selected), folder / "strategies.png")
    labels = cluster_labels(selected)
    if labels:
        out["Cluster sizes in the selection"] = save(cluster_sizes(labels), folder / "clusters.png")
    return out
