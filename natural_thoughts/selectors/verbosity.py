"""Verbosity: keep traces whose annotated verbosity lies in a band (NaturalThoughts' verbosity label)."""

from __future__ import annotations

import numbers

import numpy as np
from datasets import Dataset

from .base import Selection, Selector, column, register
from .random import filter_selection

VERBOSITY = "label.verbosity"
"""The `verbosity` annotator's column: 0 (every sentence needed) to 10 (almost all redundant)."""


@register
class VerbosityBand(Selector):
    """Keep traces whose verbosity label v satisfies `min <= v <= max`.

    The label comes from the `verbosity` annotator's 0-10 rubric (0: every sentence is needed;
    6: much of the text repeats earlier work; 10: almost all of it is redundant), so the default
    band 0-5 keeps traces where most of the text moves towards the answer. Rows without a label
    are dropped under their own reason ("unlabelled"), never guessed. Score: 1.0 in the band,
    0.0 outside it or unlabelled. With `k`, a seeded uniform subsample of the rows in the band.
    """

    def __init__(self, min: int = 0, max: int = 5, column: str = VERBOSITY, k: int | None = None,
                 seed: int = 0) -> None:
        self.min = min
        self.max = max
        self.column = column
        self.k = k
        self.seed = seed

    def _levels(self, ds: Dataset) -> list[float | None]:
        """Each row's verbosity (None when unlabelled); a clear error for a bad band or value."""
        if self.min > self.max:
            raise ValueError(f"VerbosityBand: min ({self.min}) is above max ({self.max}); no row could be kept")
        values = column(ds, self.column, "VerbosityBand (label it with the `verbosity` annotator)")
        for i, v in enumerate(values):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
                raise TypeError(f"VerbosityBand: column {self.column!r} row {i} is not a number: {v!r:.80}")
        return [None if v is None else float(v) for v in values]

    def score(self, ds: Dataset) -> np.ndarray:
        """1.0 for rows in the band, 0.0 otherwise."""
        return np.array([v is not None and self.min <= v <= self.max for v in self._levels(ds)], dtype=float)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """The rows in the band; each dropped row says which side it fell on, or that it has no label."""
        levels = self._levels(ds)
        reasons, summaries = [], []
        for v in levels:
            if v is None:
                reasons.append(f"no verbosity label ({self.column} is empty)")
                summaries.append("VerbosityBand: unlabelled")
            elif v < self.min:
                reasons.append(f"verbosity {v:g} < min {self.min}")
                summaries.append("VerbosityBand: below band")
            elif v > self.max:
                reasons.append(f"verbosity {v:g} > max {self.max}")
                summaries.append("VerbosityBand: above band")
            else:
                reasons.append(f"verbosity {v:g} in [{self.min}, {self.max}]")
                summaries.append("")
        keep = np.array([s == "" for s in summaries], dtype=bool)
        return filter_selection(self, ds, keep, keep.astype(float), reasons, summaries, k, seed)
