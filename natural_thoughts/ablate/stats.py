"""What the report compares: per-row measures of the pool, computed once, and each cell's summary
of them (length, strategies, domains, correctness, disagreement, cluster entropy), plus the
Jaccard overlap of the cells' picked traces."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset

from ..pipeline.stages import StageFolder, fingerprint
from ..export.plots import STRATEGIES, correctness, reasoning_lengths, strategy_counts
from ..selectors.base import column
from ..selectors.diversity import domain_column
from ..selectors.diversity import strategy_counts as strategy_names
from .config import ReportConfig


@dataclass
class Measures:
    """One value per pool row for each statistic the pool allows (None: the pool lacks the column)."""

    lengths: np.ndarray
    length_unit: str
    strategies: np.ndarray | None
    strategy_sets: list[frozenset[str]] | None
    domains: np.ndarray | None
    domain_column: str | None
    correct: list[bool | None] | None
    correct_column: str | None
    disagree: list[bool | None] | None
    """True where teacher and weak model disagree, as `ModelsDisagree` judges it."""
    clusters: np.ndarray | None
    n_clusters: int

    def save(self, folder: Path) -> None:
        """The per-row measures as `measures.parquet` (absent ones left out), the rest as JSON."""
        values = asdict(self)
        rows = {k: [sorted(x) for x in v] if k == "strategy_sets" else list(v)
                for k, v in values.items() if k in _ROW_FIELDS and v is not None}
        pq.write_table(pa.table(rows), folder / "measures.parquet")
        (folder / "measures.json").write_text(json.dumps({k: v for k, v in values.items() if k not in _ROW_FIELDS}))

    @classmethod
    def load(cls, folder: Path) -> Measures:
        """The measures written by `save`."""
        rows = pq.read_table(folder / "measures.parquet").to_pydict()
        arrays = {k: np.asarray(rows[k], dtype=object if k == "domains" else None) if k in rows else None
                  for k in ("lengths", "strategies", "domains", "clusters")}
        sets = [frozenset(x) for x in rows["strategy_sets"]] if "strategy_sets" in rows else None
        return cls(**arrays, strategy_sets=sets, correct=rows.get("correct"), disagree=rows.get("disagree"),
                   **json.loads((folder / "measures.json").read_text()))


_ROW_FIELDS = ("lengths", "strategies", "strategy_sets", "domains", "correct", "disagree", "clusters")
"""`Measures` fields holding one value per pool row (the others describe them)."""


def measures(pool: Dataset, pool_key: str, report: ReportConfig, folder: Path) -> tuple[Measures, str]:
    """The pool's measures, computed once per pool and report settings and kept in `folder`
    (math-verify and embeddings over a large pool take minutes); also "ran" / "reused"."""
    stage = StageFolder(folder, fingerprint("measures", pool_key, report.model_dump(exclude={"figures"})))
    if stage.done():
        return Measures.load(folder), "reused"
    stage.begin()
    m = measure(pool, report)
    m.save(folder)
    stage.finish(rows=len(pool))
    return m, "ran"


def measure(pool: Dataset, report: ReportConfig) -> Measures:
    """Every per-row measure of `pool`; clusters are k-means (seeded) over its embedded problems."""
    from ..selectors import ClusterUniform, ModelsDisagree

    lengths, unit = reasoning_lengths(pool)
    strategies = sets = None
    if STRATEGIES in pool.column_names:
        strategies = strategy_counts(pool)
        sets = [frozenset(strategy_names(v, i, STRATEGIES)) for i, v in enumerate(column(pool, STRATEGIES))]
    domain = domain_column(pool)
    verdicts = correctness(pool)
    disagree = None
    if "weak_answer" in pool.column_names:  # judged as ModelsDisagree does (its label column first)
        disagree = [None if v is None else not v for v in ModelsDisagree().verdicts(pool)]
    elif "label.disagree" in pool.column_names:
        disagree = [None if v is None else bool(v) for v in column(pool, "label.disagree")]
    clusters = None
    if len(pool) and "problem" in pool.column_names:
        clusters = ClusterUniform(model=report.model, n_clusters=report.n_clusters, seed=report.seed).fit(pool).labels_
    return Measures(lengths, unit, strategies, sets, column(pool, domain) if domain else None, domain,
                    verdicts[0] if verdicts else None, verdicts[1] if verdicts else None, disagree, clusters,
                    min(report.n_clusters, len(set(pool["problem"]))) if clusters is not None else 0)


def entropy(labels: list[Any]) -> float:
    """Shannon entropy (bits) of the labels' distribution; 0 for none."""
    if not labels:
        return 0.0
    p = np.array(list(Counter(labels).values()), dtype=float) / len(labels)
    return float(-(p * np.log2(p)).sum())


def _shares(values: list[bool | None]) -> dict[str, float | None]:
    """Share True among decided values, and share undecided; None for no rows."""
    decided = [v for v in values if v is not None]
    n = len(values)
    return {"true": sum(decided) / len(decided) if decided else None,
            "undecided": (n - len(decided)) / n if n else None}


def statistics(m: Measures, rows: np.ndarray, problem_ids: list[str]) -> dict[str, Any]:
    """A cell's (or the pool's) statistics over pool `rows`; a measure the pool lacks is None."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = m.lengths[rows]
    out: dict[str, Any] = {
        "rows": len(rows), "problems": len({problem_ids[i] for i in rows}),
        "length_mean": float(lengths.mean()) if len(rows) else None,
        "length_median": float(np.median(lengths)) if len(rows) else None,
        "strategies_mean": None, "strategies_covered": None, "domains": None, "domain_entropy": None,
        "correct": None, "undecided": None, "disagree": None, "clusters_covered": None, "cluster_entropy": None,
    }
    if m.strategies is not None and m.strategy_sets is not None and len(rows):
        out["strategies_mean"] = float(m.strategies[rows].mean())
        out["strategies_covered"] = len(frozenset().union(*(m.strategy_sets[i] for i in rows)))
    if m.domains is not None:
        names = [m.domains[i] or "(none)" for i in rows]
        out["domains"], out["domain_entropy"] = len(set(names)), entropy(names)
    if m.correct is not None:
        shares = _shares([m.correct[i] for i in rows])
        out["correct"], out["undecided"] = shares["true"], shares["undecided"]
    if m.disagree is not None:
        out["disagree"] = _shares([m.disagree[i] for i in rows])["true"]
    if m.clusters is not None:
        labels = m.clusters[rows].tolist()
        out["clusters_covered"] = len(set(labels))
        # Normalised by log2 of the cluster count: 1.0 = spread evenly over every cluster.
        out["cluster_entropy"] = entropy(labels) / np.log2(m.n_clusters) if m.n_clusters > 1 else 0.0
    return out


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets are identical (1.0)."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def overlap(picked: dict[str, set[str]]) -> list[list[float]]:
    """The Jaccard matrix of the cells' picked trace ids, in the dict's order (symmetric, diagonal 1)."""
    names = list(picked)
    return [[jaccard(picked[a], picked[b]) for b in names] for a in names]
