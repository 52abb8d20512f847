"""Verbosity: keep traces whose annotated verbosity lies in a band (NaturalThoughts' verbosity label)."""

from __future__ import annotations

import numbers

import numpy as np
from datasets import Dataset

from .base import Selector, column, register
from .filter import Filter, Verdict

VERBOSITY = "label.verbosity"
"""The `verbosity` annotator's column: 0 (every sentence needed) to 10 (almost all redundant)."""


@register
class VerbosityBand(Filter):
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

    def check_params(self) -> Selector:
        if self.min > self.max:
            raise ValueError(f"VerbosityBand: min ({self.min}) is above max ({self.max}); no row could be kept")
        return super().check_params()

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the rows in the band; each dropped row says which side it fell on, or that it has no label."""
        values = column(ds, self.column, "VerbosityBand (label it with the `verbosity` annotator)")
        rows: list[tuple[str, str | None]] = []
        for i, v in enumerate(values):
            if v is None:
                rows.append((f"no verbosity label ({self.column} is empty)", "VerbosityBand: unlabelled"))
            elif isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"VerbosityBand: column {self.column!r} row {i} is not a number: {v!r:.80}")
            elif v < self.min:
                rows.append((f"verbosity {float(v):g} < min {self.min}", "VerbosityBand: below band"))
            elif v > self.max:
                rows.append((f"verbosity {float(v):g} > max {self.max}", "VerbosityBand: above band"))
            else:
                rows.append((f"verbosity {float(v):g} in [{self.min}, {self.max}]", None))
        return Verdict.from_rows(rows)
