"""Composition: run selectors one after another, take the union of several, or blend their scores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from datasets import Dataset

from .base import (
    Selection,
    Selector,
    StepReport,
    get_selector,
    register,
    resolve_k,
    resolve_seed,
    selection_from_picks,
)

WeightSpec = Mapping[str, float] | Sequence[tuple[Any, float]]


def _check_steps(steps: Sequence[Selector], what: str) -> None:
    """Steps must be a non-empty list of selectors, each with valid parameters."""
    if not steps:
        raise ValueError(f"{what} needs at least one step")
    bad = [i for i, s in enumerate(steps) if not isinstance(s, Selector)]
    if bad:
        raise TypeError(f"{what}: steps {bad} are not Selector objects (use get_selector for names)")
    for step in steps:
        step.check_params()


class _Steps(Selector):
    """A selector made of `steps`: checking it checks them."""

    steps: Sequence[Selector]

    def check_params(self) -> Selector:
        _check_steps(self.steps, type(self).__name__)
        return super().check_params()


@register
class Sequential(_Steps):
    """Run each step on the survivors of the previous one; the budget `k` applies to the last step.

    Each step is fitted on the rows it receives. `seed` (here or in `select`) is passed to every
    step; None leaves each step its own seed. Dropped rows keep the reason of the step that
    dropped them, and the Selection carries every step's report.
    """

    def __init__(self, steps: Sequence[Selector], k: int | None = None, seed: int | None = None) -> None:
        self.steps = steps
        self.k = k
        self.seed = seed

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Chain the steps, mapping each step's row numbers back to `ds`."""
        _check_steps(self.steps, "Sequential")
        k = self.k if k is None else k
        seed = self.seed if seed is None else seed
        current = np.arange(len(ds), dtype=np.int64)
        reports: list[StepReport] = []
        dropped: dict[int, str] = {}
        sel: Selection | None = None
        for i, step in enumerate(self.steps):
            sub = ds if i == 0 else ds.select(current)  # an array: `datasets` hashes a list item by item
            last = i == len(self.steps) - 1
            sel = step.fit(sub).select(sub, k=k if last else None, seed=seed)
            reports.extend(sel.steps)
            rows = current[np.fromiter(sel.dropped, dtype=np.int64, count=len(sel.dropped))]
            dropped.update(zip(rows.tolist(), sel.dropped.values()))
            current = current[np.asarray(sel.indices, dtype=np.int64)]
        assert sel is not None
        return Selection(ds, current, sel.scores, list(sel.reasons), reports, dropped)


@register
class Union(_Steps):
    """Rows selected by any step, in order of first occurrence (the first step's reason wins).

    With `k`, the first `k` rows of that order, so earlier steps take precedence.
    """

    def __init__(self, steps: Sequence[Selector], k: int | None = None, seed: int | None = None) -> None:
        self.steps = steps
        self.k = k
        self.seed = seed

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Run every step on all rows and merge their picks."""
        _check_steps(self.steps, "Union")
        seed = self.seed if seed is None else seed
        picked: dict[int, tuple[float, str]] = {}
        reports: list[StepReport] = []
        for step in self.steps:
            sel = step.fit(ds).select(ds, seed=seed)
            reports.extend(sel.steps)
            for i, s, r in zip(sel.indices, sel.scores, sel.reasons):
                picked.setdefault(int(i), (float(s), f"{type(step).__name__}: {r}"))
        order = list(picked)
        budget = resolve_k(self, k, len(order))
        names = ", ".join(type(s).__name__ for s in self.steps)
        dropped = {i: f"selected by no step ({names})" for i in range(len(ds)) if i not in picked}
        dropped.update({i: f"Union: over budget k={budget}" for i in order[budget:]})
        reports.append(StepReport("Union", self.get_params(), len(ds), budget,
                                  dict(Counter(dropped.values()))))
        kept = order[:budget]
        return Selection(ds, np.asarray(kept, dtype=np.int64),
                         np.asarray([picked[i][0] for i in kept], dtype=float),
                         [picked[i][1] for i in kept], reports, dropped)


@register
class WeightedSum(Selector):
    """Top `k` rows by a weighted sum of several selectors' z-scored `score()`s.

    `weights` is `{"Long": 1.0, "ModelsDisagree": 2.0}` (names with default parameters) or a list of
    `(selector_or_spec, weight)` pairs. Standardising puts probabilities, lengths and 0/1 flags on
    one scale; a constant score contributes nothing.
    """

    def __init__(self, weights: WeightSpec, k: int | None = None, seed: int = 0) -> None:
        self.weights = weights
        self.k = k
        self.seed = seed

    def check_params(self) -> Selector:
        for _, sel, _ in self.components():
            sel.check_params()
        return super().check_params()

    def components(self) -> list[tuple[str, Selector, float]]:
        """(label, selector, weight) for each term."""
        items = self.weights.items() if isinstance(self.weights, Mapping) else self.weights
        out = []
        for spec, weight in items:
            sel = get_selector(spec)
            out.append((spec if isinstance(spec, str) else type(sel).__name__, sel, float(weight)))
        if not out:
            raise ValueError("WeightedSum needs at least one weighted selector")
        return out

    def parts(self, ds: Dataset) -> tuple[list[str], np.ndarray]:
        """Term labels and an (n_rows, n_terms) matrix of weighted z-scores."""
        labels, columns = [], []
        for label, sel, weight in self.components():
            raw = np.asarray(sel.fit(ds).score(ds), dtype=float)
            if raw.shape != (len(ds),) or not np.all(np.isfinite(raw)):
                raise ValueError(f"WeightedSum: {label} must give one finite score per row "
                                 f"({len(ds)} rows), got shape {raw.shape}")
            std = raw.std() if len(raw) else 0.0
            z = (raw - raw.mean()) / std if std > 0 else np.zeros_like(raw)
            labels.append(label)
            columns.append(weight * z)
        return labels, np.stack(columns, axis=1) if columns else np.zeros((len(ds), 0))

    def score(self, ds: Dataset) -> np.ndarray:
        """The weighted sum of z-scores."""
        return self.parts(ds)[1].sum(axis=1)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Top-`k` by the sum; each reason shows the terms."""
        labels, parts = self.parts(ds)
        scores = parts.sum(axis=1)
        k = resolve_k(self, k, len(ds))
        tiebreak = np.random.default_rng(resolve_seed(self, seed)).permutation(len(ds))
        order = np.lexsort((tiebreak, -scores))[:k]
        reasons = [f"weighted z-sum {scores[i]:.2f} ("
                   + ", ".join(f"{name} {v:+.2f}" for name, v in zip(labels, parts[i])) + ")"
                   for i in order]
        return selection_from_picks(self, ds, order, scores[order], reasons,
                                    drop_reason=f"outside top-{k} by weighted sum",
                                    kind="WeightedSum: outside top-k by weighted sum")
