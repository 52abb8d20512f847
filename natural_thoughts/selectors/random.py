"""Uniform random sampling, and the keep-mask → `Selection` helper every filter here shares."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .base import Selection, Selector, register, resolve_k, resolve_seed, selection_from_picks


@register
class Random(Selector):
    """`k` rows uniformly at random without replacement (all rows, shuffled, when k is None).

    The baseline every other selector should beat; `score()` is a seeded uniform draw, so Random
    can also serve as a noise term inside `WeightedSum`.
    """

    def __init__(self, k: int | None = None, seed: int = 0) -> None:
        self.k = k
        self.seed = seed

    def score(self, ds: Dataset) -> np.ndarray:
        """One seeded uniform draw in [0, 1) per row."""
        return np.random.default_rng(resolve_seed(self, None)).random(len(ds))

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """A seeded uniform sample of `k` rows, returned in dataset order."""
        seed = resolve_seed(self, seed)
        k = resolve_k(self, k, len(ds))
        picks = np.sort(np.random.default_rng(seed).permutation(len(ds))[:k])
        return selection_from_picks(self, ds, picks, np.ones(len(picks)),
                                    [f"random pick (seed={seed})"] * len(picks),
                                    drop_reason=f"not drawn by Random (k={k}, seed={seed})",
                                    kind="Random: not drawn")


def filter_selection(
    selector: Selector,
    ds: Dataset,
    keep: np.ndarray,
    scores: np.ndarray,
    reasons: Sequence[str],
    summaries: Sequence[str],
    k: int | None = None,
    seed: int | None = None,
) -> Selection:
    """A `Selection` of the rows where `keep` is True, cut to `k` by a seeded uniform subsample.

    `reasons[i]` is row i's reason (why kept, or in detail why dropped); `summaries[i]` is the
    reason kind a dropped row is counted under in the step report (e.g. "Long: not sampled"):
    a few fixed phrases, never per-row text.
    """
    name = type(selector).__name__
    kept = np.flatnonzero(np.asarray(keep, dtype=bool))
    budget = resolve_k(selector, k, len(kept))
    detail, summary = list(reasons), list(summaries)
    if budget < len(kept):
        rng = np.random.default_rng(resolve_seed(selector, seed))
        chosen = np.sort(rng.choice(kept, size=budget, replace=False))
        for i in np.setdiff1d(kept, chosen):
            detail[i] = summary[i] = f"{name}: over budget k={budget}"
        kept = chosen
    scores = np.asarray(scores, dtype=float)
    return selection_from_picks(selector, ds, kept, scores[kept], [detail[i] for i in kept],
                                drop_reason=lambda i: detail[i], kind=lambda i: summary[i])
