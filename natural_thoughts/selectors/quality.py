"""Quality filters: parser flags and errors, correctness, repetition, mixed languages."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .. import verify
from ..schema import FLAGS, PROBLEM_FLAGS
from .base import Selector, column, register
from .filter import Filter, Verdict


@register
class DropFlags(Filter):
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

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the unflagged, error-free rows; a dropped row names its error or flags."""
        flags = column(ds, "flags", "DropFlags")
        errors = column(ds, "error", "DropFlags (drop_errors=True)") if self.drop_errors else None
        wanted = self.wanted()
        rows: list[tuple[str, str | None]] = []
        for i, row_flags in enumerate(flags):
            hit = [f for f in (row_flags or []) if f in wanted]
            if errors is not None and errors[i]:
                rows.append((f"error: {str(errors[i])[:120]}", "DropFlags: error"))
            elif hit:
                rows.append((f"flagged {', '.join(hit)}", f"DropFlags: {hit[0]}"))
            else:
                rows.append(("no flags", None))
        return Verdict.from_rows(rows)


@register
class Correct(Filter):
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
        if self.column in ds.column_names:
            return [None if v is None else bool(v) for v in column(ds, self.column)]
        answers = column(ds, self.answer_column, "Correct (answer_column)")
        refs = column(ds, self.reference_column, "Correct (reference_column)")
        return [verify.equivalent(a, r, self.judge) for a, r in zip(answers, refs)]  # type: ignore[arg-type]

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the rows of the wanted kind; each reason says what decided it."""
        verdicts = self.verdicts(ds)
        wanted = self.keep == "correct"
        keep = [v is wanted or (v is None and self.undecided == "keep") for v in verdicts]
        by = self.column if self.column in ds.column_names else self.judge
        words = {True: "correct", False: "incorrect", None: "undecided"}
        return Verdict(keep, [f"{words[v]} ({by})" for v in verdicts], [f"Correct: {words[v]}" for v in verdicts])


def repetition_ratio(text: str | None, n: int = 4) -> float:
    """The fraction of word n-grams that repeat an earlier one (0.0 for texts shorter than n words)."""
    words = (text or "").split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


@register
class Repetition(Filter):
    """Drop traces that loop: more than `max_ratio` of their word n-grams are repeats."""

    def __init__(self, max_ratio: float = 0.3, n: int = 4, column: str = "reasoning") -> None:
        self.max_ratio = max_ratio
        self.n = n
        self.column = column

    def ratios(self, ds: Dataset) -> np.ndarray:
        """Each row's repetition ratio."""
        texts = column(ds, self.column, "Repetition")
        return np.asarray([repetition_ratio(t, self.n) for t in texts], dtype=float)

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep rows at or under the repetition limit; score 1 - repetition ratio."""
        ratios = self.ratios(ds)
        keep = ratios <= self.max_ratio
        reasons = [f"repeated {self.n}-grams {r:.2f} {'<=' if ok else '>'} {self.max_ratio}"
                   for r, ok in zip(ratios, keep)]
        return Verdict(keep, reasons, "Repetition: too repetitive", 1.0 - ratios)


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
class LanguageMix(Filter):
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

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep rows at or under the mixing limit; score 1 - the share outside the main script."""
        shares = self.shares(ds)
        keep = shares <= self.max_ratio
        reasons = [f"letters outside the main script {s:.3f} {'<=' if ok else '>'} {self.max_ratio}"
                   for s, ok in zip(shares, keep)]
        return Verdict(keep, reasons, "LanguageMix: mixed languages", 1.0 - shares)
