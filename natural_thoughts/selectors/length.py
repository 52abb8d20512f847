"""Length-based selectors: NaturalThoughts' Long sampling, ranges, top-k, and s1's rank decay."""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from ..schema import REASONING_TOKENS
from .base import Selection, Selector, column, register, resolve_k, resolve_seed, selection_from_picks
from .random import filter_selection


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
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise ValueError(f"{what}: column {name!r} is empty in {len(missing)} row(s), "
                         f"first rows {missing[:5]}")
    return np.asarray(values, dtype=float)


@register
class Long(Selector):
    """NaturalThoughts' Long sampling: keep each trace with probability min(1, (l / C) ** tau).

    Long traces are kept almost surely, short ones rarely, so the sample leans towards long
    reasoning without discarding every short trace. With `k`, a seeded uniform subsample of `k`
    of the survivors.
    """

    def __init__(self, C: float = 5000, tau: float = 2.5, k: int | None = None, seed: int = 0,
                 column: str = REASONING_TOKENS) -> None:
        self.C = C
        self.tau = tau
        self.k = k
        self.seed = seed
        self.column = column

    def score(self, ds: Dataset) -> np.ndarray:
        """The keep probability of each row."""
        if self.C <= 0:
            raise ValueError(f"Long: C must be > 0, got {self.C}")
        lens = np.clip(lengths(ds, self.column, "Long"), 0, None)
        return np.minimum(1.0, (lens / self.C) ** self.tau)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Draw each row with its keep probability, then cut the survivors to `k` if needed."""
        p = self.score(ds)
        lens = lengths(ds, self.column, "Long")
        rng = np.random.default_rng(resolve_seed(self, seed))
        keep = rng.random(len(ds)) < p
        reasons = [f"kept with p={pi:.2f} (l={li:g})" if kept else f"dropped by Long sampling (p={pi:.2f})"
                   for pi, li, kept in zip(p, lens, keep)]
        return filter_selection(self, ds, keep, p, reasons, ["Long: not sampled"] * len(ds), k, seed)


@register
class LengthRange(Selector):
    """Keep rows whose length lies in [min_tokens, max_tokens] (either bound may be None)."""

    def __init__(self, min_tokens: float | None = None, max_tokens: float | None = None,
                 column: str = REASONING_TOKENS) -> None:
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens
        self.column = column

    def score(self, ds: Dataset) -> np.ndarray:
        """1.0 for rows inside the range, 0.0 outside."""
        lens = lengths(ds, self.column, "LengthRange")
        low = -np.inf if self.min_tokens is None else self.min_tokens
        high = np.inf if self.max_tokens is None else self.max_tokens
        return ((lens >= low) & (lens <= high)).astype(float)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """The rows in range, with a reason naming the bound each dropped row missed."""
        lens = lengths(ds, self.column, "LengthRange")
        keep = self.score(ds).astype(bool)
        reasons, summaries = [], []
        for length, kept in zip(lens, keep):
            if kept:
                reasons.append(f"length {length:g} in range")
                summaries.append("")
            elif self.min_tokens is not None and length < self.min_tokens:
                reasons.append(f"length {length:g} < min_tokens {self.min_tokens}")
                summaries.append("LengthRange: too short")
            else:
                reasons.append(f"length {length:g} > max_tokens {self.max_tokens}")
                summaries.append("LengthRange: too long")
        return filter_selection(self, ds, keep, lens, reasons, summaries, k, seed)


@register
class TopLength(Selector):
    """The `k` longest rows (ties broken by seed)."""

    def __init__(self, k: int | None, column: str = REASONING_TOKENS) -> None:
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
        sel = selection_from_picks(self, ds, picks, np.exp2(-ranks[picks].astype(float)), reasons,
                                   drop_reason=lambda i: f"not drawn by RankDecay ({where[i]})")
        sel.steps[0].dropped = {"RankDecay: not drawn": len(sel.dropped)} if sel.dropped else {}
        return sel
