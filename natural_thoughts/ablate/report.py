"""The side-by-side report: `output_dir/report.md` (statistics per cell, budget warnings, the overlap
matrix) and figures under `output_dir/figures/`, drawn without pyplot like `export.plots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from matplotlib.figure import Figure

from ..export.plots import VERDICT_COLOURS, VERDICTS, save
from ..selectors.base import Selection
from .config import AblateConfig
from .stats import Measures, measures, overlap, statistics

REPORT = "report.md"
FIGURES = "figures"
MEASURES = "measures"
POOL_ROW = "(pool)"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("rows", "rows"), ("problems", "problems"), ("length_mean", "length mean"), ("length_median", "length median"),
    ("strategies_mean", "strategies / trace"), ("strategies_covered", "strategies covered"),
    ("domains", "domains"), ("domain_entropy", "domain entropy (bits)"), ("correct", "correct"),
    ("undecided", "undecided"), ("disagree", "models disagree"), ("clusters_covered", "clusters covered"),
    ("cluster_entropy", "cluster entropy"),
)
"""(statistic, column header) of the report's table, in order."""


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def write_report(cfg: AblateConfig, pool: Dataset, pool_key: str, selections: dict[str, Selection],
                 out: Path) -> dict[str, Any]:
    """Write the report and figures; returns {"path", "figures", "overlap", "statistics", "measures"}
    ("measures": whether the pool's per-row measures were computed or reused)."""
    m, state = measures(pool, pool_key, cfg.report, out / MEASURES)
    problem_ids = list(pool["problem_id"])
    stats = {POOL_ROW: statistics(m, np.arange(len(pool)), problem_ids)}
    stats |= {cell: statistics(m, sel.indices, problem_ids) for cell, sel in selections.items()}
    trace_ids = list(pool["trace_id"])
    matrix = overlap({cell: {trace_ids[i] for i in sel.indices} for cell, sel in selections.items()})
    figures = _figures(m, selections, stats, matrix, out / FIGURES) if cfg.report.figures else {}
    path = out / REPORT
    path.write_text(_markdown(cfg, m, stats, selections, matrix, figures, out))
    return {"path": path, "figures": list(figures.values()), "overlap": matrix, "statistics": stats,
            "measures": state}


def _markdown(cfg: AblateConfig, m: Measures, stats: dict[str, dict[str, Any]], selections: dict[str, Selection],
              matrix: list[list[float]], figures: dict[str, Path], out: Path) -> str:
    r = cfg.report
    pool = stats[POOL_ROW]
    lines = [f"# Ablation: {cfg.name}", "",
             f"Pool: {pool['rows']} traces over {pool['problems']} problems. Each cell runs "
             + (f"the prefilter {cfg.prefilter} then " if cfg.prefilter else "")
             + f"its selection with k = budget, seed {cfg.seed}. Lengths are reasoning {m.length_unit}; "
             f"correct / undecided are shares of the rows ({m.correct_column or 'no verdict column'}; correct among "
             "decided rows); models disagree is the share of decided rows whose teacher and weak answers differ; "
             f"cluster entropy is the entropy of the cell's rows over {m.n_clusters} k-means clusters of the "
             f"embedded problems ({r.model}, seed {r.seed}), divided by log2 of the cluster count (1 = even over "
             "every cluster).", "", "## Cells", ""]
    cells = {cell: (name, budget) for cell, name, budget in cfg.cells()}
    rows = [[cell, *cells.get(cell, ("—", "—")), *(values[key] for key, _ in COLUMNS)]
            for cell, values in stats.items()]
    lines += _table(["cell", "selection", "budget", *(title for _, title in COLUMNS)], rows)
    lines += ["", "## Budgets", ""]
    warnings = [(cell, sel.budget_warning()) for cell, sel in selections.items()]
    lines += [f"- `{cell}`: {w or 'reached its size'}" for cell, w in warnings]
    short = [cell for cell, w in warnings if w]
    lines += ["", f"{len(short)} of {len(warnings)} cells did not reach their size"
              + (f": {', '.join(short)}." if short else "."), "",
              "## Overlap", "", "Jaccard index of the picked trace ids (1 = the same traces).", ""]
    names = list(selections)
    lines += _table(["", *names], [[a, *row] for a, row in zip(names, matrix)])
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{title}]({path.relative_to(out).as_posix()})" for title, path in figures.items()]
    return "\n".join(lines) + "\n"


def _bars(names: list[str], values: list[float | None], title: str, ylabel: str) -> Figure:
    """One bar per cell (a missing value draws none)."""
    fig = Figure(figsize=(max(6, 0.5 * len(names) + 2), 3.5))
    ax = fig.subplots()
    ax.bar(np.arange(len(names)), [v if v is not None else 0.0 for v in values], color="tab:blue")
    ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right")
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig


def _figures(m: Measures, selections: dict[str, Selection], stats: dict[str, dict[str, Any]],
             matrix: list[list[float]], folder: Path) -> dict[str, Path]:
    """Reasoning lengths, strategies, verdicts, cluster entropy and overlap across cells, as PNG files."""
    names = list(selections)
    rows = [sel.indices for sel in selections.values()]
    width = max(6, 0.5 * len(names) + 2)
    out: dict[str, Path] = {}
    fig = Figure(figsize=(width, 3.5))
    ax = fig.subplots()
    ax.boxplot([m.lengths[r] if len(r) else [np.nan] for r in rows])
    ax.set_xticks(np.arange(1, len(names) + 1), names, rotation=60, ha="right")
    ax.set(ylabel=f"reasoning length ({m.length_unit})", title="Reasoning length per cell")
    fig.tight_layout()
    out["Reasoning length per cell"] = save(fig, folder / "lengths.png")
    if m.strategies is not None:
        means = [stats[cell]["strategies_mean"] for cell in names]
        out["Distinct strategies per trace"] = save(_bars(names, means, "Distinct strategies per trace (mean)",
                                                          "strategies"), folder / "strategies.png")
    if m.correct is not None:
        fig = Figure(figsize=(width, 3.5))
        ax = fig.subplots()
        bottom = np.zeros(len(names))
        for verdict, label in VERDICTS.items():
            counts = np.array([sum(m.correct[i] is verdict for i in r) for r in rows], dtype=float)
            ax.bar(np.arange(len(names)), counts, bottom=bottom, color=VERDICT_COLOURS[verdict], label=label)
            bottom += counts
        ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right")
        ax.set(ylabel="rows", title="Verdicts per cell")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        out["Verdicts per cell"] = save(fig, folder / "correctness.png")
    if m.clusters is not None and m.n_clusters > 1:
        ent = [stats[cell]["cluster_entropy"] for cell in names]
        out["Cluster entropy per cell"] = save(_bars(names, ent, "Question-cluster entropy (normalised)",
                                                     "entropy / log2(clusters)"), folder / "clusters.png")
    fig = Figure(figsize=(0.45 * len(names) + 3, 0.45 * len(names) + 2.5))
    ax = fig.subplots()
    image = ax.imshow(np.asarray(matrix), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(np.arange(len(names)), names)
    ax.set_title("Overlap (Jaccard of trace ids)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    out["Overlap between cells"] = save(fig, folder / "overlap.png")
    return out
