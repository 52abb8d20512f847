"""Few-shot set selection: a small (k≈20) set of correct, complete, hard, long and diverse traces.

Twenty long chain-of-thought examples fine-tuned into a base model can unlock reasoning, and their
difficulty, diversity and length matter ("The Challenge of Teaching Reasoning to LLMs Without RL or
Distillation", arXiv:2507.09850). The paper filtered and hand-picked its examples; `FewShot`
approximates that with one scored objective maximised greedily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from datasets import Dataset

from ..embed import DEFAULT_MODEL, embed
from ..schema import PROBLEM_FLAGS, REASONING_TOKENS
from .base import Selection, Selector, column, register, resolve_k, resolve_seed, selection_from_picks
from .difficulty import ModelsDisagree
from .diversity import group_codes, reasoning_lengths
from .length import lengths
from .quality import Correct, DropFlags

DIFFICULTY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("label.disagree", "higher"), ("score.pass_rate", "lower"), ("pass_rate", "lower"), ("label.difficulty", "higher"))
"""What `difficulty="auto"` tries, in order, and which end is hard. `label.disagree` counts as present
when the rows carry a `weak_answer` too: unlabelled rows are then judged as `ModelsDisagree` does."""
MAX_CLIENTS = 2048
"""Coverage is measured over at most this many distinct texts (a seeded sample beyond it)."""
BATCH = 256
"""Rows whose coverage gain the lazy greedy re-evaluates at once."""
DIVERSITY_WEIGHT = 2.0
"""The default weight of coverage. Measured on the shared Models-Disagree pools (MATH-500 and
OlympiadBench, k=20, benchmarks/fewshot_coverage.py): with centred embeddings, 2 covers more
k-means clusters (13.6, 13.6) and spreads the questions further (mean cosine distance 0.860, 0.870)
than Random's 20 (12.6, 12.0; 0.847, 0.860) while every pick stays a disagreement, 1.65x Random's
length; 1 covers fewer on OlympiadBench (12.8), 4 gives up disagreements and length. Table:
docs/selectors/fewshot.md."""


def _unit(values: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1]; NaN (unknown) stays NaN, a constant column gives the neutral 0.5."""
    known = ~np.isnan(values)
    span = np.ptp(values[known]) if known.any() else 0.0
    scaled = (values - np.nanmin(values)) / span if span > 0 else np.full(len(values), 0.5)
    return np.where(known, scaled, np.nan)


@register
class FewShot(Selector):
    """A small set of verified-correct, uncut traces, at most one per problem, trading off
    difficulty, reasoning length and coverage of the pool (greedy facility location).

    Each greedy step adds the row with the largest gain
    `difficulty_weight * d + length_weight * l + diversity_weight * k * Δcoverage`: `d`, `l` in
    [0, 1]; coverage is the mean, over the pool's distinct `on` texts, of their best similarity
    (cosine floored at 0) to a picked text, and the factor `k` puts it on the scale of the k per-pick
    terms. With `topic` (default `label.domain`) holding values, two texts are similar exactly when
    their topics match (topic coverage); else they are embedded with `model` and centred on the
    pool's mean (see `_vectors`). `difficulty="auto"`
    reads the first of `DIFFICULTY_COLUMNS` present; with none, a neutral 0.5 (the report says so).
    """

    def __init__(self, k: int | None = 20, seed: int = 0, difficulty: str = "auto", harder: str | None = None,
                 difficulty_weight: float = 1.0, length_weight: float = 1.0, diversity_weight: float = DIVERSITY_WEIGHT,
                 on: str = "problem", model: Any = DEFAULT_MODEL, topic: str | None = "label.domain",
                 correct_column: str = "label.correct", flags: Sequence[str] | str = PROBLEM_FLAGS,
                 length_column: str = REASONING_TOKENS) -> None:
        self.k = k
        self.seed = seed
        self.difficulty = difficulty
        self.harder = harder
        self.difficulty_weight = difficulty_weight
        self.length_weight = length_weight
        self.diversity_weight = diversity_weight
        self.on = on
        self.model = model
        self.topic = topic
        self.correct_column = correct_column
        self.flags = flags
        self.length_column = length_column

    def check_params(self) -> Selector:
        for name in ("difficulty_weight", "length_weight", "diversity_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"FewShot: {name} must be a number >= 0, got {value!r}")
        if self.harder not in (None, "higher", "lower"):
            raise ValueError(f"FewShot: harder must be None, 'higher' or 'lower', got {self.harder!r}")
        DropFlags(self.flags).check_params()
        return super().check_params()

    def eligible(self, ds: Dataset) -> tuple[np.ndarray, dict[int, str], dict[int, str]]:
        """Which rows are verified correct (`Correct` on `correct_column`) and unflagged (`DropFlags`
        with `flags`; `flags=()` skips it); for the others their reason and its kind."""
        detail: dict[int, str] = {}
        kind: dict[int, str] = {}
        checks = [(Correct(column=self.correct_column), "FewShot: not verified correct")]
        checks += [(DropFlags(self.flags), "FewShot: flagged or failed")] if self.flags else []
        for check, what in checks:
            for i, reason in check.select(ds).dropped.items():
                detail.setdefault(i, f"FewShot: {reason}")
                kind.setdefault(i, what)
        keep = np.ones(len(ds), dtype=bool)
        keep[list(detail)] = False
        return keep, detail, kind

    def difficulties(self, pool: Dataset) -> tuple[np.ndarray, str]:
        """Difficulty per row in [0, 1] (1 = hardest; unknown cells 0.5) and what it was read from."""
        names = [c for c, _ in DIFFICULTY_COLUMNS] if self.difficulty == "auto" else [self.difficulty]
        for name in names:
            values, how = self._hardness(pool, name)
            if values is not None and (self.difficulty != "auto" or not np.isnan(values).all()):
                return np.nan_to_num(values, nan=0.5), how
        return np.full(len(pool), 0.5), f"neutral 0.5: none of {names} present"

    def _hardness(self, pool: Dataset, name: str) -> tuple[np.ndarray | None, str]:
        """Column `name` read as hardness in [0, 1] (NaN: unknown); None when absent and auto."""
        if name == "label.disagree" and "weak_answer" in pool.column_names:
            label = name if name in pool.column_names else None
            verdicts = ModelsDisagree(label_column=label).verdicts(pool)  # True: the models agree
            how = f"{name}, else the math judge on weak_answer" if label else "weak_answer vs final_answer (math judge)"
            return np.array([np.nan if v is None else float(not v) for v in verdicts]), how
        if name not in pool.column_names and self.difficulty == "auto":
            return None, name
        raw = column(pool, name, f"FewShot (difficulty={name!r})")
        harder = self.harder or dict(DIFFICULTY_COLUMNS).get(name, "higher")
        if any(isinstance(v, (bool, np.bool_)) for v in raw):
            return np.array([np.nan if v is None else float(bool(v) == (harder == "higher")) for v in raw]), name
        values = _unit(np.array([np.nan if v is None else float(v) for v in raw]))
        return (values if harder == "higher" else 1.0 - values), f"{name} ({harder} is harder)"

    def lengths(self, pool: Dataset) -> tuple[np.ndarray, str]:
        """Reasoning length per row as log(1 + length) scaled to [0, 1] over `pool`, and its unit:
        `score.reasoning_tokens` (words of `reasoning` where absent, as `reasoning_lengths`) or
        the named `length_column`."""
        if self.length_column == REASONING_TOKENS:
            raw, unit = reasoning_lengths(pool)
            unit = REASONING_TOKENS if unit == "tokens" else "words of reasoning"
        else:
            raw, unit = lengths(pool, self.length_column, "FewShot"), self.length_column
        return _unit(np.log1p(np.clip(raw, 0, None))), unit

    def _vectors(self, pool: Dataset) -> tuple[np.ndarray, np.ndarray, str]:
        """One unit vector per distinct `on` text (a topic one-hot, or its embedding centred on the
        pool's mean), each row's index into them, and what coverage is measured on.

        Centring removes what every question of a pool shares (a sentence embedding places all of
        them in one cone), so a text covers its neighbours, not the whole pool: uncentred, the
        facility-location optimum favours central questions and more coverage weight brought the
        picks closer together (measured in benchmarks/fewshot_coverage.py)."""
        inverse, distinct = group_codes(column(pool, self.on, "FewShot (on)"))
        if not self.diversity_weight:
            return np.zeros((len(distinct), 1), dtype=np.float32), inverse, "off (diversity_weight=0)"
        topics = column(pool, self.topic) if self.topic and self.topic in pool.column_names else None
        if topics is not None and any(v not in (None, "") for v in topics):
            codes, names = group_codes(topics[np.unique(inverse, return_index=True)[1]])
            return np.eye(len(names), dtype=np.float32)[codes], inverse, f"topics of {self.topic} ({len(names)})"
        model = self.model if isinstance(self.model, str) else type(self.model).__name__
        vectors = embed(list(distinct), model=self.model)
        vectors = vectors - vectors.mean(axis=0)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32), inverse, f"centred embeddings of {self.on} ({model})"

    def score(self, ds: Dataset) -> np.ndarray:
        """A row's own value `difficulty_weight * d + length_weight * l` (no set term); 0 if ineligible."""
        self.check_params()
        keep = self.eligible(ds)[0]
        out = np.zeros(len(ds))
        if keep.any():
            pool = ds.select(np.flatnonzero(keep).tolist())
            out[keep] = self.difficulty_weight * self.difficulties(pool)[0] + self.length_weight * self.lengths(pool)[0]
        return out

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Greedy picks in pick order; each reason gives the pick's gain and its parts."""
        self.check_params()
        k = resolve_k(self, k, len(ds))
        rng = np.random.default_rng(resolve_seed(self, seed))
        keep, detail, kind = self.eligible(ds)
        rows = np.flatnonzero(keep)
        fitted: dict[str, Any] = {"n_eligible_": len(rows)}
        chosen: list[int] = []
        reasons: list[str] = []
        gains: list[float] = []
        d = l = np.zeros(len(rows))
        problems = np.arange(len(rows))
        if len(rows) and k:
            pool = ds.select(rows.tolist())
            (d, difficulty_from), (l, unit) = self.difficulties(pool), self.lengths(pool)
            vectors, inverse, measured = self._vectors(pool)
            fitted.update(difficulty_=difficulty_from, length_=unit, coverage_=measured)
            pid = "problem_id" if "problem_id" in pool.column_names else "problem"
            problems = group_codes(column(pool, pid, "FewShot (one pick per problem)"))[0]
            quality = self.difficulty_weight * d + self.length_weight * l
            clients = vectors
            if len(vectors) > MAX_CLIENTS:
                clients = vectors[np.sort(rng.choice(len(vectors), MAX_CLIENTS, replace=False))]
            scale = self.diversity_weight * min(k, problems.max() + 1) / len(clients)  # k: the picks possible
            chosen, cover = _greedy(quality, vectors, inverse, clients, problems, k, scale, rng.permutation(len(rows)))
            for n, (j, c) in enumerate(zip(chosen, cover), 1):
                gains.append(float(quality[j] + c))
                reasons.append(f"FewShot: pick {n}/{k}, gain {gains[-1]:.2f} (difficulty {d[j]:.2f}, "
                               f"length {l[j]:.2f}, coverage +{c:.2f})")
        picked = {problems[j]: int(rows[j]) for j in chosen}
        for j in sorted(set(range(len(rows))) - set(chosen)):
            i = int(rows[j])
            if problems[j] in picked:
                kind[i] = "FewShot: problem already picked"
                detail[i] = f"{kind[i]} (row {picked[problems[j]]})"
            else:
                kind[i] = "FewShot: not picked"
                values = f" (difficulty {d[j]:.2f}, length {l[j]:.2f})" if k else ""
                detail[i] = f"FewShot: not among the {k} picks{values}"
        sel = selection_from_picks(self, ds, rows[chosen], np.asarray(gains), reasons,
                                   drop_reason=lambda i: detail[i], kind=lambda i: kind[i])
        sel.steps[0].fitted = fitted
        return sel


def _greedy(quality: np.ndarray, vectors: np.ndarray, inverse: np.ndarray, clients: np.ndarray,
            problems: np.ndarray, k: int, scale: float, tiebreak: np.ndarray) -> tuple[list[int], list[float]]:
    """Greedy maximisation of `sum(quality[picks]) + scale * sum over clients of their best
    similarity to a picked text` (row i's text is `vectors[inverse[i]]`), one pick per problem.

    Lazy: coverage gains only shrink as picks are added (submodular), so earlier gains bound later
    ones; only the best rows' texts are re-evaluated, `BATCH` rows at a time, until the best fresh
    value beats every stale bound. Returns the picks and each one's coverage gain."""
    best = np.zeros(len(clients), dtype=np.float32)

    def coverage(texts: np.ndarray) -> np.ndarray:
        sims = np.maximum(vectors[texts] @ clients.T, 0.0)
        return scale * np.maximum(sims - best, 0.0).sum(axis=1)

    bound = np.concatenate([coverage(t) for t in np.array_split(np.arange(len(vectors)), 1 + len(vectors) // 4096)])
    alive = np.ones(len(quality), dtype=bool)
    picks: list[int] = []
    cover: list[float] = []
    while len(picks) < k and alive.any():
        rows = np.flatnonzero(alive)
        stale = quality[rows] + bound[inverse[rows]]
        order = np.lexsort((tiebreak[rows], -stale))
        rows, stale = rows[order], stale[order]
        fresh = np.zeros(len(vectors), dtype=bool)
        for end in range(BATCH, len(rows) + BATCH, BATCH):
            texts = np.unique(inverse[rows[end - BATCH: end]])
            texts = texts[~fresh[texts]]
            bound[texts], fresh[texts] = coverage(texts), True
            seen = rows[:end]
            top = seen[np.lexsort((tiebreak[seen], -(quality[seen] + bound[inverse[seen]])))[0]]
            if end >= len(rows) or quality[top] + bound[inverse[top]] >= stale[end]:
                break
        picks.append(int(top))
        cover.append(float(bound[inverse[top]]))
        best = np.maximum(best, np.maximum(vectors[inverse[top]] @ clients.T, 0.0))
        alive &= problems != problems[top]
    return picks, cover
