"""Quality filters: parser flags and errors, correctness, repetition, mixed languages."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .. import verify
from ..schema import FLAGS, PROBLEM_FLAGS
from .base import Selection, Selector, column, register
from .random import filter_selection


@register
class DropFlags(Selector):
    """Drop traces the parser flagged (cut off, no answer, …) and, by default, rows with an error.

    `flags` defaults to `schema.PROBLEM_FLAGS`; the informational flags (`split_inferred`,
    `prose_answer`) can be named too. A single name may be given as a string; an unknown name is
    an error listing the known ones.
    """

    def __init__(self, flags: Sequence[str] | str = PROBLEM_FLAGS, drop_errors: bool = True) -> None:
        self.flags = flags
        self.drop_errors = drop_errors

    def check_params(self) -> Selector:
        self.wanted()
        return super().check_params()

    def wanted(self) -> set[str]:
        """The flag names to drop, checked against `schema.FLAGS`."""
        names = [self.flags] if isinstance(self.flags, str) else list(self.flags)
        unknown = [f for f in names if f not in FLAGS]
        if unknown:
            raise ValueError(f"DropFlags: unknown flag(s) {unknown}; known flags: {list(FLAGS)}")
        return set(names)

    def score(self, ds: Dataset) -> np.ndarray:
        """1.0 for clean rows, 0.0 for flagged or failed ones."""
        return np.asarray([r is None for r in self._problems(ds)], dtype=float)

    def _problems(self, ds: Dataset) -> list[tuple[str, str] | None]:
        """Per row: None when clean, else (detailed reason, summary)."""
        flags = column(ds, "flags", "DropFlags")
        errors = column(ds, "error", "DropFlags (drop_errors=True)") if self.drop_errors else None
        wanted = self.wanted()
        out: list[tuple[str, str] | None] = []
        for i, row_flags in enumerate(flags):
            hit = [f for f in (row_flags or []) if f in wanted]
            if errors is not None and errors[i]:
                out.append((f"error: {str(errors[i])[:120]}", "DropFlags: error"))
            elif hit:
                out.append((f"flagged {', '.join(hit)}", f"DropFlags: {hit[0]}"))
            else:
                out.append(None)
        return out

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """The unflagged, error-free rows."""
        problems = self._problems(ds)
        keep = np.asarray([p is None for p in problems], dtype=bool)
        reasons = ["no flags" if p is None else p[0] for p in problems]
        summaries = ["" if p is None else p[1] for p in problems]
        return filter_selection(self, ds, keep, keep.astype(float), reasons, summaries, k, seed)


@register
class Correct(Selector):
    """Keep traces whose answer is correct (`keep="correct"`) or incorrect (`keep="incorrect"`).

    The verdict is `column` (`verify`'s `label.correct`) when the traces carry it, else the final
    answer checked against the reference with `judge`. Undecided rows (no reference, no final
    answer, no verdict) are dropped unless `undecided="keep"`.
    """

    def __init__(self, judge: str = "math", keep: str = "correct", answer_column: str = "final_answer",
                 reference_column: str = "reference_answer", column: str = "label.correct",
                 undecided: str = "drop") -> None:
        self.judge = judge
        self.keep = keep
        self.answer_column = answer_column
        self.reference_column = reference_column
        self.column = column
        self.undecided = undecided

    def check_params(self) -> Selector:
        if self.keep not in ("correct", "incorrect"):
            raise ValueError(f"Correct: keep must be 'correct' or 'incorrect', got {self.keep!r}")
        if self.undecided not in ("drop", "keep"):
            raise ValueError(f"Correct: undecided must be 'drop' or 'keep', got {self.undecided!r}")
        if self.judge not in verify.METHODS:
            raise ValueError(f"Correct: unknown judge {self.judge!r}; choose one of {verify.METHODS}")
        return super().check_params()

    def verdicts(self, ds: Dataset) -> list[bool | None]:
        """Per row: True correct, False incorrect, None undecided."""
        self.check_params()
        if self.column in ds.column_names:
            return [None if v is None else bool(v) for v in column(ds, self.column)]
        answers = column(ds, self.answer_column, "Correct (answer_column)")
        refs = column(ds, self.reference_column, "Correct (reference_column)")
        return [verify.equivalent(a, r, self.judge) for a, r in zip(answers, refs)]  # type: ignore[arg-type]

    def _keep(self, verdicts: list[bool | None]) -> np.ndarray:
        wanted = self.keep == "correct"
        return np.asarray([v is wanted or (v is None and self.undecided == "keep") for v in verdicts], dtype=bool)

    def score(self, ds: Dataset) -> np.ndarray:
        """1.0 for rows of the wanted kind, else 0.0."""
        return self._keep(self.verdicts(ds)).astype(float)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """The rows of the wanted kind."""
        verdicts = self.verdicts(ds)
        keep = self._keep(verdicts)
        by = self.column if self.column in ds.column_names else self.judge
        words = {True: "correct", False: "incorrect", None: "undecided"}
        reasons = [f"{words[v]} ({by})" for v in verdicts]
        summaries = [f"Correct: {words[v]}" for v in verdicts]
        return filter_selection(self, ds, keep, keep.astype(float), reasons, summaries, k, seed)


def repetition_ratio(text: str | None, n: int = 4) -> float:
    """The fraction of word n-grams that repeat an earlier one (0.0 for texts shorter than n words)."""
    words = (text or "").split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


@register
class Repetition(Selector):
    """Drop traces that loop: more than `max_ratio` of their word n-grams are repeats."""

    def __init__(self, max_ratio: float = 0.3, n: int = 4, column: str = "reasoning") -> None:
        self.max_ratio = max_ratio
        self.n = n
        self.column = column

    def ratios(self, ds: Dataset) -> np.ndarray:
        """Each row's repetition ratio."""
        texts = column(ds, self.column, "Repetition")
        return np.asarray([repetition_ratio(t, self.n) for t in texts], dtype=float)

    def score(self, ds: Dataset) -> np.ndarray:
        """1 - repetition ratio."""
        return 1.0 - self.ratios(ds)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Rows at or under the repetition limit."""
        ratios = self.ratios(ds)
        keep = ratios <= self.max_ratio
        reasons = [f"repeated {self.n}-grams {r:.2f} {'<=' if ok else '>'} {self.max_ratio}"
                   for r, ok in zip(ratios, keep)]
        return filter_selection(self, ds, keep, 1.0 - ratios, reasons,
                                ["Repetition: too repetitive"] * len(ds), k, seed)


def script_of(ch: str) -> str:
    """The script of a letter, read from its Unicode name ('LATIN', 'CJK', 'CYRILLIC', …)."""
    if ch.isascii():
        return "LATIN"
    return unicodedata.name(ch, "UNKNOWN").split(" ")[0]


def mixed_share(text: str | None, ignore: Sequence[str] = ()) -> float:
    """The share of letters outside the text's dominant script (0.0 for a text without letters)."""
    counts = Counter(script_of(ch) for ch in (text or "") if ch.isalpha())
    for name in ignore:
        counts.pop(name, None)
    total = sum(counts.values())
    return 1.0 - max(counts.values()) / total if total else 0.0


@register
class LanguageMix(Selector):
    """Drop traces that switch language: more than `max_ratio` of letters outside the main script.

    Greek and mathematical-alphanumeric letters are ignored by default: in math text they are symbols.
    """

    def __init__(self, max_ratio: float = 0.05, column: str = "reasoning",
                 ignore_scripts: Sequence[str] = ("GREEK", "MATHEMATICAL")) -> None:
        self.max_ratio = max_ratio
        self.column = column
        self.ignore_scripts = ignore_scripts

    def shares(self, ds: Dataset) -> np.ndarray:
        """Each row's share of letters outside its dominant script."""
        texts = column(ds, self.column, "LanguageMix")
        return np.asarray([mixed_share(t, self.ignore_scripts) for t in texts], dtype=float)

    def score(self, ds: Dataset) -> np.ndarray:
        """1 - the share of letters outside the dominant script."""
        return 1.0 - self.shares(ds)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Rows at or under the mixing limit."""
        shares = self.shares(ds)
        keep = shares <= self.max_ratio
        reasons = [f"letters outside the main script {s:.3f} {'<=' if ok else '>'} {self.max_ratio}"
                   for s, ok in zip(shares, keep)]
        return filter_selection(self, ds, keep, 1.0 - shares, reasons,
                                ["LanguageMix: mixed languages"] * len(ds), k, seed)
