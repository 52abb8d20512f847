"""Uniform random sampling: the baseline every other selector should beat."""

from __future__ import annotations

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

