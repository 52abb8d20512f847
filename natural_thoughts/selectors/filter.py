"""The `Filter` base: a selector that says once, per row, whether it keeps the row and why.

A filter writes one method, `verdict(ds, seed) -> Verdict`; the base turns it into `score`
(the verdict's scores, by default 1.0 kept / 0.0 dropped) and `select` (the kept rows, cut to
`k` by a seeded uniform subsample, each dropped row recorded with its reason and counted under
its reason kind in the step report).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import Dataset

from .base import Selection, Selector, resolve_k, resolve_seed, selection_from_picks


@dataclass
class Verdict:
    """A filter's decision on each row.

    - `keep`: one bool per row.
    - `reasons`: one text per row, why it is kept or (in detail, numbers and all) why dropped.
    - `kinds`: what a dropped row is counted under in the step report, one phrase for every
      dropped row or one per row (a few fixed phrases such as "LengthRange: too long", never
      per-row text; entries of kept rows are ignored). None: "<Filter>: dropped".
    - `scores`: one float per row, higher = more wanted (None: 1.0 kept, 0.0 dropped).
    - `fitted`: values chosen from the data, shown in the step report (e.g. Long's `C_`).
    """

    keep: np.ndarray | Sequence[bool]
    reasons: Sequence[str]
    kinds: str | Sequence[str] | None = None
    scores: np.ndarray | Sequence[float] | None = None
    fitted: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, str | None]], scores: np.ndarray | Sequence[float] | None = None,
                  fitted: dict[str, Any] | None = None) -> Verdict:
        """A verdict from one `(reason, kind)` per row, kind None for a kept row: for filters that
        sort each row into one of a few cases."""
        return cls([kind is None for _, kind in rows], [reason for reason, _ in rows],
                   [kind or "" for _, kind in rows], scores, fitted or {})


class Filter(Selector):
    """Keep the rows that pass a test; subclasses implement `verdict` and nothing else of select.

    `check_params()` runs before every verdict, so a filter checks its parameters there once.
    """

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep or drop each row of `ds`, and why; `seed` is for filters that draw at random."""
        raise NotImplementedError(f"{type(self).__name__} must implement verdict(ds, seed)")

    def _judge(self, ds: Dataset, seed: int | None) -> tuple[Verdict, np.ndarray, np.ndarray]:
        """The checked verdict, its keep mask and its scores."""
        self.check_params()
        verdict = self.verdict(ds, resolve_seed(self, seed))
        keep = np.asarray(verdict.keep, dtype=bool)
        scores = keep.astype(float) if verdict.scores is None else np.asarray(verdict.scores, dtype=float)
        if keep.shape != (len(ds),) or scores.shape != (len(ds),) or len(verdict.reasons) != len(ds):
            raise ValueError(f"{type(self).__name__}.verdict must give one keep, score and reason per row "
                             f"({len(ds)} rows), got {keep.shape}, {scores.shape}, {len(verdict.reasons)}")
        return verdict, keep, scores

    def score(self, ds: Dataset) -> np.ndarray:
        """The verdict's scores: 1.0 for kept rows and 0.0 for dropped ones unless it says otherwise."""
        return self._judge(ds, None)[2]

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """The kept rows in dataset order, cut to `k` by a seeded uniform subsample (the rows cut
        are dropped as "<Filter>: over budget k=…")."""
        verdict, keep, scores = self._judge(ds, seed)
        name = type(self).__name__
        detail = np.fromiter((str(r) for r in verdict.reasons), dtype=object, count=len(ds))
        kinds = verdict.kinds if verdict.kinds is not None else f"{name}: dropped"
        kinds = np.fromiter([kinds] * len(ds) if isinstance(kinds, str) else kinds, dtype=object, count=len(ds))
        kept = np.flatnonzero(keep)
        budget = resolve_k(self, k, len(kept))
        if budget < len(kept):
            rng = np.random.default_rng(resolve_seed(self, seed))
            chosen = np.sort(rng.choice(kept, size=budget, replace=False))
            over = np.setdiff1d(kept, chosen)
            detail[over] = kinds[over] = f"{name}: over budget k={budget}"
            kept = chosen
        sel = selection_from_picks(self, ds, kept, scores[kept], detail[kept].tolist(),
                                   drop_reason=detail, kind=kinds)
        sel.steps[0].fitted = dict(verdict.fitted)
        return sel
