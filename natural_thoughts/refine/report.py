"""Length and correctness per refinement stage: did the passes make the reasoning longer, and did the
answers survive?"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import mean, median
from typing import Any

import pandas as pd
from datasets import Dataset

from ..annotate.base import reasoning_text
from ..schema import REASONING_TOKENS
from ..scores import CHARS_PER_TOKEN
from . import lineage

REPORT_COLUMNS: tuple[str, ...] = (
    "step", "stage", "count", "mean_length", "median_length", "length_unit", "correct_rate", "answer_kept_rate")


def reasoning_length(row: dict[str, Any]) -> tuple[int, str]:
    """A row's reasoning length and its unit: `score.reasoning_tokens`, else the engine's count
    (`reasoning_tokens`; `answer_tokens` for a row with no separate reasoning, whose whole text is
    what it reasoned in, as `scores` counts it), else characters/`CHARS_PER_TOKEN` (rounded up) of
    its reasoning, or its whole text when it has no separate reasoning (`annotate.base.reasoning_text`)."""
    engine = "reasoning_tokens" if row.get("reasoning") or not row.get("answer") else "answer_tokens"
    for column in (REASONING_TOKENS, engine):
        if row.get(column) is not None:
            return int(row[column]), "tokens"
    return -(-len(reasoning_text(row)) // CHARS_PER_TOKEN), f"chars/{CHARS_PER_TOKEN}"


def _rate(values: Iterable[bool | None]) -> float | None:
    """The share of True among the decided values (None when none is decided)."""
    decided = [v for v in values if v is not None]
    return sum(decided) / len(decided) if decided else None


def stage_report(rows: Dataset | pd.DataFrame | Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One line per stage, in chain order (`REPORT_COLUMNS`): how many rows, their mean and median
    reasoning length (`reasoning_length`; `length_unit` "mixed" when a stage has both units), the
    share correct against the reference and the share that kept the previous stage's answer, each
    among the rows where it is decided.

    Correctness is checked here for every row (`lineage.answer_correct`), so originals count too:
    rows without lineage columns are step 0, stage `lineage.ORIGINAL`. Error rows (a failed
    request) count in `count` only.
    """
    if isinstance(rows, Dataset):
        rows = rows.to_list()
    elif isinstance(rows, pd.DataFrame):
        rows = rows.astype(object).where(rows.notna(), None).to_dict("records")
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (int(row.get(lineage.STEP) or 0), row.get(lineage.STAGE) or lineage.ORIGINAL)
        groups.setdefault(key, []).append(row)
    lines = []
    for (step, stage), members in sorted(groups.items()):
        made = [r for r in members if not r.get("error")]
        measured = [reasoning_length(r) for r in made]
        lengths, units = [n for n, _ in measured], {u for _, u in measured}
        lines.append({
            "step": step, "stage": stage, "count": len(members),
            "mean_length": mean(lengths) if lengths else None,
            "median_length": median(lengths) if lengths else None,
            "length_unit": units.pop() if len(units) == 1 else ("mixed" if units else None),
            "correct_rate": _rate(lineage.answer_correct(r) for r in made),
            "answer_kept_rate": _rate(r.get(lineage.ANSWER_KEPT) for r in made),
        })
    return pd.DataFrame(lines, columns=list(REPORT_COLUMNS))
