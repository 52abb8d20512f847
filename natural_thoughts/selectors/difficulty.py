"""Difficulty selectors: teacher and weak model disagree, pass-rate bands, drop what a weak model solves."""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import Dataset

from ..answers import (
    METHODS,
    Judge,
    Method,
    Pairs,
    Texts,
    answer_or_closing,
    ask_judge,
    equivalent,
    reference_method,
    weak_final,
)
from .base import Selector, column, register
from .filter import Filter, Verdict

JUDGES: tuple[str, ...] = (*METHODS, "llm")
_VERDICT_WORDS = {False: "models disagree", True: "models agree", None: "undecided"}


def judge_pairs(pairs: Pairs, judge: str, llm_judge: Judge | None = None, what: str = "selector",
                questions: Texts | None = None, references: Texts | None = None) -> list[bool | None]:
    """Equivalence of each (a, b) pair by `judge`; None where a side is missing or undecided.

    With `judge="math"` and `references`, a pair is compared as `verify` compares an answer to its
    reference (`answers.reference_method`: choice letters for an option letter, so that `(C) Plane`
    and `C` agree; normalized strings for a plain word), and two answers that both equal the
    reference agree (`-2` "for both" and `(-2, -2)` against `-2,-2`). `questions` go to the LLM
    judge only (`answers.ask_judge`), with the references."""
    if judge not in JUDGES:
        raise ValueError(f"{what}: unknown judge {judge!r}; choose one of {JUDGES}")
    if judge != "llm":
        refs = [None] * len(pairs) if references is None else references
        return [_same(a, b, judge, r) for (a, b), r in zip(pairs, refs)]
    if llm_judge is None:
        raise ValueError(f"{what}: judge='llm' needs llm_judge=<a Judge object, a model name, or a dict such as "
                         "{model: NAME_OR_PATH, backend: vllm|openai, base_url: ..., sampling: {...}}>")
    return ask_judge(llm_judge, pairs, questions, references, what)


def _same(a: str | None, b: str | None, judge: str, reference: str | None) -> bool | None:
    """Whether `a` and `b` agree by `judge` (see `judge_pairs` for what "math" does with a reference)."""
    by_reference = reference_method(reference) if judge == "math" else None
    method: Method = by_reference if by_reference in ("choice", "exact") else judge  # type: ignore[assignment]
    direct = equivalent(a, b, method)
    if direct is not False or by_reference is None:
        return direct
    return equivalent(a, reference, method) is True and equivalent(b, reference, method) is True


@register
class ModelsDisagree(Filter):
    """Keep traces whose final answer differs from a weaker model's answer to the same problem.

    Where a strong teacher and a weak model disagree the problem is likely hard, so its trace
    teaches more (NaturalThoughts' "models disagree"). A precomputed `label_column` (True = the
    models disagree, as the `answer_judge`/`response_judge` annotators write `label.disagree`) is
    used where it is set; other rows are compared by `judge`. With `judge="llm"` the `llm_judge`
    (a `Judge`, a model name, or a dict of `annotate.LLMJudge` arguments, built on first use) reads
    the question (`problem`), the reference (`reference_answer`) and both responses: final answers
    where extracted, else the closing part of each (`answers.answer_or_closing`). Rows left
    undecided are dropped. With `k`, a seeded uniform subsample of the disagreeing rows.
    """

    def __init__(self, judge: str = "math", teacher_column: str = "final_answer",
                 weak_column: str = "weak_answer", k: int | None = None, seed: int = 0,
                 llm_judge: Any = None, label_column: str | None = "label.disagree") -> None:
        self.judge = judge
        self.teacher_column = teacher_column
        self.weak_column = weak_column
        self.k = k
        self.seed = seed
        self.llm_judge = llm_judge
        self.label_column = label_column

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without a judge built from a spec (it holds an engine); it is built again on use."""
        return {k: v for k, v in self.__dict__.items() if k != "_built_judge"}

    def verdicts(self, ds: Dataset) -> list[bool | None]:
        """Per row: True when the answers agree, False when they differ, None when undecided."""
        return self.decide(ds)[0]

    def check_params(self) -> Selector:
        if self.judge not in JUDGES:
            raise ValueError(f"ModelsDisagree: unknown judge {self.judge!r}; choose one of {JUDGES}")
        return super().check_params()

    def decide(self, ds: Dataset) -> tuple[list[bool | None], list[str]]:
        """Per row: the verdict (as `verdicts`) and what decided it (`label_column` or the judge)."""
        self.check_params()
        verdicts: list[bool | None] = [None] * len(ds)
        if self.label_column and self.label_column in ds.column_names:
            verdicts = [None if v is None else not bool(v) for v in column(ds, self.label_column)]
        how = [self.judge if v is None else str(self.label_column) for v in verdicts]
        rows = [i for i, v in enumerate(verdicts) if v is None]
        if rows:
            for i, v in zip(rows, self._judge_rows(ds, rows)):
                verdicts[i] = v
        return verdicts, how

    def _judge_rows(self, ds: Dataset, rows: list[int]) -> list[bool | None]:
        """`judge`'s verdicts on `rows`: bare final answers, or responses shown to the LLM judge."""
        teacher = column(ds, self.teacher_column, "ModelsDisagree (teacher_column)")
        weak = column(ds, self.weak_column, "ModelsDisagree (weak_column)")

        def cells(name: str) -> list[Any]:
            values = column(ds, name) if name in ds.column_names else [None] * len(ds)
            return [values[i] for i in rows]

        if self.judge != "llm":
            return judge_pairs([(teacher[i], weak_final(weak[i])) for i in rows], self.judge, what="ModelsDisagree",
                               references=cells("reference_answer"))
        judge = self._llm_judge()

        responses = cells("completion")
        pairs = [(t if (t or "").strip() else answer_or_closing(r), answer_or_closing(w))
                 for t, r, w in zip((teacher[i] for i in rows), responses, (weak[i] for i in rows))]
        return judge_pairs(pairs, "llm", judge, "ModelsDisagree", cells("problem"), cells("reference_answer"))

    def _llm_judge(self) -> Judge:
        """`llm_judge` itself when it is a Judge, else the judge built from it (once per spec)."""
        if self.llm_judge is None or isinstance(self.llm_judge, Judge):
            return self.llm_judge  # type: ignore[return-value]  # None: judge_pairs says what to set
        built = self.__dict__.get("_built_judge")
        if built is None or built[0] != self.llm_judge:
            from ..annotate.judge import build_judge  # the model-call layer, only when an LLM is asked

            built = self._built_judge = (self.llm_judge, build_judge(self.llm_judge))
        return built[1]

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the rows where the models disagree; each reason names what decided it."""
        verdicts, how = self.decide(ds)
        return Verdict([v is False for v in verdicts], [f"{_VERDICT_WORDS[v]} ({h})" for v, h in zip(verdicts, how)],
                       [f"ModelsDisagree: {_VERDICT_WORDS[v]}" for v in verdicts])


@register
class PassRate(Filter):
    """Keep every trace of problems whose pass rate over their samples lies in [low, high].

    The pass rate is the mean of `correct_column` over a problem's rows (None cells ignored); when
    that column is absent it is computed with `answers.equivalent(final_answer, reference_answer)`.
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
        return [equivalent(a, r, "math") for a, r in zip(answers, refs)]

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

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep every row of the problems inside the band; score 1 - pass rate (harder problems
        score higher), 0.0 where the rate is undecided."""
        rates, counts = self.rates(ds)
        eps = 1e-9
        rows: list[tuple[str, str | None]] = []
        for r, c in zip(rates, counts):
            if np.isnan(r):
                rows.append(("pass rate undecided (no sample judged)", "PassRate: undecided"))
            elif r < self.low - eps:
                rows.append((f"pass rate {r:.3f} ({c}) < low {self.low:.3g}", "PassRate: too hard"))
            elif r > self.high + eps:
                rows.append((f"pass rate {r:.3f} ({c}) > high {self.high:.3g}", "PassRate: too easy"))
            else:
                rows.append((f"pass rate {r:.3f} ({c}) in [{self.low:.3g}, {self.high:.3g}]", None))
        return Verdict.from_rows(rows, np.nan_to_num(1.0 - rates, nan=0.0))


@register
class WeakSolves(Filter):
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
                               what="WeakSolves", references=refs)
        pids = (column(ds, "problem_id") if "problem_id" in ds.column_names
                else np.arange(len(ds)))
        solved_pids = {p for p, v in zip(pids, verdicts) if v}
        return np.asarray([p in solved_pids for p in pids], dtype=bool), verdicts

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the rows of problems the weak model does not solve."""
        solved, verdicts = self.solved(ds)
        reasons = [
            "weak model solves this problem" if s
            else "weak answer undecided; kept" if v is None
            else "weak model fails this problem"
            for s, v in zip(solved, verdicts)
        ]
        return Verdict(~solved, reasons, "WeakSolves: solved by weak model")
