"""FewShot vs Random(k=20) on the shared Models-Disagree pools, side by side, for a grid of weights.

Each pool is a teacher file with its weak model's answers joined, verified, with approximate
reasoning tokens; both selectors draw from FewShot's eligible rows (verified correct, unflagged).
Per weighting: mean disagreement (hardness), mean reasoning tokens (length), k-means clusters of 20
covered (mean over five k-means seeds) and mean pairwise cosine distance of the picked problems;
Random is the mean over 10 seeds. The weights FewShot ships with are the first row.

    .venv/bin/python benchmarks/fewshot_coverage.py [--weights 1,1,1 1,1,4 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from datasets import Dataset  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

import natural_thoughts as nt  # noqa: E402
from natural_thoughts.embed import embed  # noqa: E402
from natural_thoughts.schema import REASONING_TOKENS  # noqa: E402
from natural_thoughts.selectors import FewShot, Random  # noqa: E402

POOLS = {"MATH-500 (Sky-T1 27B / Qwen2.5-Math-7B)": ("skythought_math500_sky-t1-27b.jsonl",
                                                     "skythought_math500_qwen2.5-math-7b.jsonl"),
         "OlympiadBench (Sky-T1 32B short / Qwen2.5-14B)": ("skythought_olympiadbench_sky-t1-32b-short.jsonl",
                                                           "skythought_olympiadbench_qwen2.5-14b-instruct.jsonl")}
K = 20
RANDOM_SEEDS = range(10)
KMEANS_SEEDS = range(5)


def load_pool(teacher: str, weak: str, data: Path = DATA) -> Dataset:
    """The recipe's pair: teacher traces, the weak model's answers joined by question, verified,
    approximate reasoning tokens."""
    traces = nt.load_traces(data / teacher, preset="skythought_eval")
    pair = nt.attach_weak(traces, data / weak, preset="skythought_eval", on="problem")
    return nt.add_reasoning_tokens(nt.verify(pair), approximate=True)


class Yardstick:
    """Measures a set of picks from one eligible pool: hardness, length, clusters, distance."""

    def __init__(self, ds: Dataset, selector: FewShot) -> None:
        self.rows = np.flatnonzero(selector.eligible(ds)[0])
        self.pool = ds.select(self.rows.tolist())
        self.position = {int(r): i for i, r in enumerate(self.rows)}
        self.disagree = selector.difficulties(self.pool)[0]
        self.tokens = np.asarray(self.pool[REASONING_TOKENS], dtype=float)
        self.vectors = embed(self.pool["problem"])
        self.k = selector.k or K  # the set size compared (and the clusters counted)
        self.clusters = [KMeans(self.k, random_state=s, n_init="auto").fit_predict(self.vectors) for s in KMEANS_SEEDS]

    def measure(self, pool_positions: np.ndarray) -> dict[str, float]:
        idx = np.asarray(pool_positions)
        sims = self.vectors[idx] @ self.vectors[idx].T
        return {"disagree": float(self.disagree[idx].mean()), "tokens": float(self.tokens[idx].mean()),
                "clusters": float(np.mean([len(set(c[idx].tolist())) for c in self.clusters])),
                "distance": float(1 - (sims.sum() - len(idx)) / (len(idx) * (len(idx) - 1)))}

    def fewshot(self, ds: Dataset, selector: FewShot) -> dict[str, float]:
        picks = selector.select(ds).indices
        return self.measure(np.array([self.position[int(i)] for i in picks]))

    def random(self) -> dict[str, float]:
        runs = [self.measure(Random(k=self.k, seed=s).select(self.pool).indices) for s in RANDOM_SEEDS]
        return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}


def weights(text: str) -> dict[str, Any]:
    d, l, v = (float(x) for x in text.split(","))
    return {"difficulty_weight": d, "length_weight": l, "diversity_weight": v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="*", default=["1,1,1", "1,1,4"],
                        help="difficulty,length,diversity weights to compare with the defaults")
    args = parser.parse_args()
    defaults = FewShot()
    grid = [{"difficulty_weight": defaults.difficulty_weight, "length_weight": defaults.length_weight,
             "diversity_weight": defaults.diversity_weight}] + [weights(w) for w in args.weights]
    for title, (teacher, weak) in POOLS.items():
        ds = load_pool(teacher, weak)
        stick = Yardstick(ds, defaults)
        base = stick.random()
        print(f"\n{title}: {len(stick.pool)} eligible of {len(ds)}; k={K}")
        print(f"  {'weights (d, l, v)':24s} {'disagree':>9s} {'tokens':>8s} {'clusters':>9s} {'distance':>9s}")
        print(f"  {'Random (10 seeds)':24s} {base['disagree']:9.3f} {base['tokens']:8.0f} {base['clusters']:9.2f} "
              f"{base['distance']:9.4f}")
        for n, w in enumerate(grid):
            mine = stick.fewshot(ds, FewShot(k=K, **w))
            beats = all(mine[key] >= base[key] for key in base)
            label = ("default " if n == 0 else "") + ",".join(f"{x:g}" for x in w.values())
            print(f"  {label:24s} {mine['disagree']:9.3f} {mine['tokens']:8.0f} {mine['clusters']:9.2f} "
                  f"{mine['distance']:9.4f}  {'>= Random on all four' if beats else ''}")


if __name__ == "__main__":
    main()
