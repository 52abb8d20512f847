"""Length-based selectors: NaturalThoughts' Long sampling, ranges, top-k, and s1's rank decay."""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from ..schema import REASONING_TOKENS
from .base import (Selection, Selector, column, register, resolve_k, resolve_seed, selection_from_picks,
                   texts_by_key)
from .filter import Filter, Verdict


def lengths(ds: Dataset, name: str, what: str) -> np.ndarray:
    """The length column as floats; a clear error when it is absent or has empty cells."""
    if name not in ds.column_names:
        hint = ""
        if name == REASONING_TOKENS:
            hint = (" Add it with natural_thoughts.scores.add_reasoning_tokens(ds, tokenizer=...)"
                    " (the reasoning length in tokens).")
        raise KeyError(f"{what} needs column {name!r}, which the dataset lacks.{hint}"
                       f" Columns present: {sorted(ds.column_names)}")
    values = column(ds, name, what)
    missing = [i for i, v in enumerate(values) if v is None] if values.dtype == object else []
    if missing:
        raise ValueError(f"{what}: column {name!r} is empty in {len(missing)} row(s), "
                         f"first rows {missing[:5]}")
    return np.asarray(values, dtype=float)


@register
class Long(Filter):
    """NaturalThoughts' Long sampling: keep each trace with probability min(1, (l / C) ** tau).

    Long traces are kept almost surely, short ones rarely, so the sample leans towards long
    reasoning without discarding every short trace. With `k`, a seeded uniform subsample of `k`
    of the survivors.

    `C="auto"` chooses C from the data: the `C_quantile` quantile of the reasoning lengths (at
    least 1), so a teacher whose traces are shorter than a fixed C still yields a sample. `fit`
    stores the chosen value as `C_` (without `fit`, `select` computes it from the rows it is
    given); the step report records it. A numeric C is used as given, exactly as in the paper.
    """

    def __init__(self, C: float | str = 5000, tau: float = 2.5, k: int | None = None, seed: int = 0,
                 column: str = REASONING_TOKENS, C_quantile: float = 0.9) -> None:
        self.C = C
        self.tau = tau
        self.k = k
        self.seed = seed
        self.column = column
        self.C_quantile = C_quantile

    def check_params(self) -> Selector:
        if self.C != "auto" and (isinstance(self.C, str) or self.C <= 0):
            raise ValueError(f"Long: C must be a number > 0 or 'auto', got {self.C!r}")
        if self.C == "auto" and not 0 < self.C_quantile <= 1:
            raise ValueError(f"Long: C_quantile must be in (0, 1], got {self.C_quantile}")
        return super().check_params()

    def _choose_C(self, lens: np.ndarray) -> float:
        """C as given, or with `C="auto"` the `C_quantile` quantile of `lens` (at least 1 token)."""
        if self.C == "auto":
            return max(float(np.quantile(lens, self.C_quantile)) if len(lens) else 1.0, 1.0)
        return float(self.C)

    def fit(self, ds: Dataset) -> Long:
        """Choose C (see the class doc); sets `C_`."""
        self.check_params()
        self.C_ = self._choose_C(lengths(ds, self.column, "Long"))
        return self

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Draw each row with its keep probability min(1, (l / C) ** tau), which is also its score."""
        lens = lengths(ds, self.column, "Long")
        C = self.C_ if hasattr(self, "C_") else self._choose_C(lens)
        p = np.minimum(1.0, (np.clip(lens, 0, None) / C) ** self.tau)
        keep = np.random.default_rng(seed).random(len(ds)) < p
        kept_text, dropped_text = texts_by_key([lens.view(np.int64)],  # p is a function of l
                                               lambda i: f"kept with p={p[i]:.2f} (l={lens[i]:g})",
                                               lambda i: f"dropped by Long sampling (p={p[i]:.2f})")
        return Verdict(keep, np.where(keep, kept_text, dropped_text), "Long: not sampled", p,
                       {"C_": C} if self.C == "auto" else {})


@register
class LengthRange(Filter):
    """Keep rows whose length lies in [min_tokens, max_tokens] (either bound may be None)."""

    def __init__(self, min_tokens: float | None = None, max_tokens: float | None = None,
                 column: str = REASONING_TOKENS) -> None:
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens
        self.column = column

    def check_params(self) -> Selector:
        if self.min_tokens is not None and self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(f"LengthRange: min_tokens ({self.min_tokens}) is above max_tokens ({self.max_tokens}); "
                             "no row could be kept")
        return super().check_params()

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the rows in range; a dropped row names the bound it missed."""
        lens = lengths(ds, self.column, "LengthRange")
        rows: list[tuple[str, str | None]] = []
        for length in lens:
            if self.min_tokens is not None and length < self.min_tokens:
                rows.append((f"length {length:g} < min_tokens {self.min_tokens}", "LengthRange: too short"))
            elif self.max_tokens is not None and length > self.max_tokens:
                rows.append((f"length {length:g} > max_tokens {self.max_tokens}", "LengthRange: too long"))
            else:
                rows.append((f"length {length:g} in range", None))
        return Verdict.from_rows(rows)


@register
class TopLength(Selector):
    """The `k` longest rows (ties broken by seed): its own `k`, else the budget it is given
    (`select.k`, or a `Sequential`'s when it is the last step)."""

    def __init__(self, k: int | None = None, column: str = REASONING_TOKENS) -> None:
        self.k = k
        self.column = column

    def score(self, ds: Dataset) -> np.ndarray:
        """The length itself."""
        return lengths(ds, self.column, "TopLength")

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Top-`k` by length, each reason giving the row's length."""
        sel = super().select(ds, k=k, seed=seed)
        sel.reasons = [f"among the {len(sel)} longest (l={s:g})" for s in sel.scores]
        return sel


@register
class RankDecay(Selector):
    """s1's length rule: within each group rank rows by length (longest = rank 0), weight 2**-rank,
    and draw `k` rows without replacement with those weights across all rows (seeded).

    Drawing uses Gumbel top-k on log-weights, which equals sequential weighted sampling without
    replacement and stays exact where 2**-rank underflows. `group_by=None` ranks all rows together.
    """

    def __init__(self, group_by: str | None = "domain", column: str = REASONING_TOKENS,
                 k: int | None = None, seed: int = 0) -> None:
        self.group_by = group_by
        self.column = column
        self.k = k
        self.seed = seed

    def groups(self, ds: Dataset) -> np.ndarray:
        """Each row's group key as text (one group for all rows when `group_by` is None)."""
        if self.group_by is None:
            return np.full(len(ds), "all", dtype=object)
        values = column(ds, self.group_by, "RankDecay (group_by)")
        return np.asarray([str(v) for v in values], dtype=object)

    def ranks(self, ds: Dataset) -> np.ndarray:
        """Each row's length rank within its group (0 = longest; ties by row order)."""
        lens = lengths(ds, self.column, "RankDecay")
        keys = self.groups(ds)
        ranks = np.zeros(len(ds), dtype=np.int64)
        for key in dict.fromkeys(keys):
            rows = np.flatnonzero(keys == key)
            order = rows[np.argsort(-lens[rows], kind="stable")]
            ranks[order] = np.arange(len(order))
        return ranks

    def score(self, ds: Dataset) -> np.ndarray:
        """The sampling weight 2**-rank."""
        return np.exp2(-self.ranks(ds).astype(float))

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Weighted draw of `k` rows without replacement, in draw order."""
        ranks = self.ranks(ds)
        k = resolve_k(self, k, len(ds))
        gumbel = np.random.default_rng(resolve_seed(self, seed)).gumbel(size=len(ds))
        picks = np.argsort(-(gumbel - ranks * np.log(2.0)), kind="stable")[:k]
        where = [f"length rank {r}" if self.group_by is None else f"length rank {r} of {self.group_by}={g}"
                 for r, g in zip(ranks, self.groups(ds))]
        reasons = [f"drawn with weight 2^-{ranks[i]} ({where[i]})" for i in picks]
        return selection_from_picks(self, ds, picks, np.exp2(-ranks[picks].astype(float)), reasons,
                                    drop_reason=lambda i: f"not drawn by RankDecay ({where[i]})",
                                    kind="RankDecay: not drawn")
