"""Difficulty selectors: teacher and weak model disagree, pass-rate bands, drop what a weak model solves."""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import Dataset

from .. import verify
from .base import Selection, Selector, column, register
from .random import filter_selection

JUDGES: tuple[str, ...] = (*verify.METHODS, "llm")
RAW_TEXT_CHARS = 200
"""A weak-model cell longer than this (or holding `\\boxed`/a newline) is a full response, not an answer."""


def weak_final(text: str | None) -> str | None:
    """The final answer in a weak-model cell: the cell itself, or extracted from a full response."""
    if text is None:
        return None
    if "\\boxed" in text or "\n" in text or len(text) > RAW_TEXT_CHARS:
        from ..parse import extract_final_answer

        return extract_final_answer(text)
    return text


def judge_pairs(pairs: list[tuple[str | None, str | None]], judge: str, llm_judge: Any = None,
                what: str = "selector") -> list[bool | None]:
    """Equivalence of each (a, b) pair by `judge`; None where a side is missing or undecided."""
    if judge not in JUDGES:
        raise ValueError(f"{what}: unknown judge {judge!r}; choose one of {JUDGES}")
    if judge != "llm":
        return [verify.equivalent(a, b, judge) for a, b in pairs]  # type: ignore[arg-type]
    if llm_judge is None:
        raise ValueError(f"{what}: judge='llm' needs llm_judge=<an object with "
                         ".equivalent(pairs) -> list[bool | None]>, e.g. the annotation LLM judge")
    asked = [i for i, (a, b) in enumerate(pairs) if a is not None and b is not None]
    answers = list(llm_judge.equivalent([(pairs[i][0], pairs[i][1]) for i in asked]))
    if len(answers) != len(asked):
        raise ValueError(f"{what}: llm_judge returned {len(answers)} verdicts for {len(asked)} pairs")
    out: list[bool | None] = [None] * len(pairs)
    for i, verdict in zip(asked, answers):
        out[i] = verdict
    return out


@register
class ModelsDisagree(Selector):
    """Keep traces whose final answer differs from a weaker model's answer to the same problem.

    Where a strong teacher and a weak model disagree the problem is likely hard, so its trace
    teaches more (NaturalThoughts' "models disagree"). Rows where either answer is missing are
    dropped as "undecided". With `k`, a seeded uniform subsample of the disagreeing rows.
    """

    def __init__(self, judge: str = "math", teacher_column: str = "final_answer",
                 weak_column: str = "weak_answer", k: int | None = None, seed: int = 0,
                 llm_judge: Any = None) -> None:
        self.judge = judge
        self.teacher_column = teacher_column
        self.weak_column = weak_column
        self.k = k
        self.seed = seed
        self.llm_judge = llm_judge

    def verdicts(self, ds: Dataset) -> list[bool | None]:
        """Per row: True when the answers agree, False when they differ, None when undecided."""
        teacher = column(ds, self.teacher_column, "ModelsDisagree (teacher_column)")
        weak = column(ds, self.weak_column, "ModelsDisagree (weak_column)")
        pairs = [(t, weak_final(w)) for t, w in zip(teacher, weak)]
        return judge_pairs(pairs, self.judge, self.llm_judge, "ModelsDisagree")

    def score(self, ds: Dataset) -> np.ndarray:
        """1.0 where the models disagree, 0.0 where they agree or it is undecided."""
        return np.asarray([v is False for v in self.verdicts(ds)], dtype=float)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """The disagreeing rows (cut to `k` if given)."""
        verdicts = self.verdicts(ds)
        keep = np.asarray([v is False for v in verdicts], dtype=bool)
        words = {False: "models disagree", True: "models agree", None: "undecided"}
        reasons = [f"{words[v]} ({self.judge})" for v in verdicts]
        summaries = [f"ModelsDisagree: {words[v]}" for v in verdicts]
        return filter_selection(self, ds, keep, keep.astype(float), reasons, summaries, k, seed)


@register
class PassRate(Selector):
    """Keep every trace of problems whose pass rate over their samples lies in [low, high].

    The pass rate is the mean of `correct_column` over a problem's rows (None cells ignored); when
    that column is absent it is computed with `verify.equivalent(final_answer, reference_answer)`.
    Counts read the same way: `PassRate(low=1/32, high=3/32)` keeps problems solved 1–3 times in 32.
    """

    def __init__(self, low: float = 0.1, high: float = 0.9, correct_column: str = "label.correct") -> None:
        self.low = low
        self.high = high
        self.correct_column = correct_column

    def correctness(self, ds: Dataset) -> list[bool | None]:
        """Each row's correctness: the column when present, else checked against the reference."""
        if self.correct_column in ds.column_names:
            return [None if v is None else bool(v) for v in column(ds, self.correct_column)]
        answers = column(ds, "final_answer", f"PassRate (no {self.correct_column!r} column, so)")
        refs = column(ds, "reference_answer", f"PassRate (no {self.correct_column!r} column, so)")
        return [verify.equivalent(a, r, "math") for a, r in zip(answers, refs)]

    def rates(self, ds: Dataset) -> tuple[np.ndarray, list[str]]:
        """Each row's problem pass rate (NaN when undecided) and a 'c/n' count string."""
        pids = column(ds, "problem_id", "PassRate")
        correct = self.correctness(ds)
        tally: dict[Any, list[int]] = {}
        for pid, c in zip(pids, correct):
            counts = tally.setdefault(pid, [0, 0])
            if c is not None:
                counts[0] += int(c)
                counts[1] += 1
        rate = {p: (c / n if n else np.nan) for p, (c, n) in tally.items()}
        return (np.asarray([rate[p] for p in pids], dtype=float),
                [f"{tally[p][0]}/{tally[p][1]}" for p in pids])

    def score(self, ds: Dataset) -> np.ndarray:
        """1 - pass rate (harder problems score higher); 0.0 where the rate is undecided."""
        rates, _ = self.rates(ds)
        return np.nan_to_num(1.0 - rates, nan=0.0)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """All rows of the problems inside the band."""
        rates, counts = self.rates(ds)
        eps = 1e-9
        reasons, summaries, keep = [], [], np.zeros(len(ds), dtype=bool)
        for i, (r, c) in enumerate(zip(rates, counts)):
            if np.isnan(r):
                reasons.append("pass rate undecided (no sample judged)")
                summaries.append("PassRate: undecided")
            elif r < self.low - eps:
                reasons.append(f"pass rate {r:.3f} ({c}) < low {self.low:.3g}")
                summaries.append("PassRate: too hard")
            elif r > self.high + eps:
                reasons.append(f"pass rate {r:.3f} ({c}) > high {self.high:.3g}")
                summaries.append("PassRate: too easy")
            else:
                keep[i] = True
                reasons.append(f"pass rate {r:.3f} ({c}) in [{self.low:.3g}, {self.high:.3g}]")
                summaries.append("")
        return filter_selection(self, ds, keep, np.nan_to_num(1.0 - rates, nan=0.0), reasons,
                                summaries, k, seed)


@register
class WeakSolves(Selector):
    """Drop problems a weaker model already answers correctly (s1's first filter).

    A problem is dropped when the weak answer on any of its rows matches the reference. Rows whose
    weak answer or reference is missing are kept: an unknown answer is not a solved problem.
    """

    def __init__(self, weak_column: str = "weak_answer", reference_column: str = "reference_answer",
                 judge: str = "math") -> None:
        self.weak_column = weak_column
        self.reference_column = reference_column
        self.judge = judge

    def solved(self, ds: Dataset) -> tuple[np.ndarray, list[bool | None]]:
        """Per row: whether its problem is solved by the weak model, and the row's own verdict."""
        weak = column(ds, self.weak_column, "WeakSolves (weak_column)")
        refs = column(ds, self.reference_column, "WeakSolves (reference_column)")
        verdicts = judge_pairs([(weak_final(w), r) for w, r in zip(weak, refs)], self.judge,
                               what="WeakSolves")
        pids = (column(ds, "problem_id") if "problem_id" in ds.column_names
                else np.arange(len(ds)))
        solved_pids = {p for p, v in zip(pids, verdicts) if v}
        return np.asarray([p in solved_pids for p in pids], dtype=bool), verdicts

    def score(self, ds: Dataset) -> np.ndarray:
        """1.0 for problems the weak model does not solve, 0.0 for solved ones."""
        return (~self.solved(ds)[0]).astype(float)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """The rows of problems the weak model does not solve."""
        solved, verdicts = self.solved(ds)
        reasons = [
            "weak model solves this problem" if s
            else "weak answer undecided; kept" if v is None
            else "weak model fails this problem"
            for s, v in zip(solved, verdicts)
        ]
        summaries = ["WeakSolves: solved by weak model"] * len(ds)
        return filter_selection(self, ds, ~solved, (~solved).astype(float), reasons, summaries, k, seed)
