"""`ReasoningOk`: drop traces whose reasoning does not hold, beside `Correct`, which reads only the answer.

Picking problems a weak model fails selects right answers behind invalid arguments too ("right by
luck"). Two checks, either may be absent: the model-free signal (`steps.flag_reasoning`: no
derivation, an announced guess, a pick when no option matched), computed here when the traces do
not carry `label.reasoning_flags`; and the LLM `reasoning` annotator's `label.reasoning_ok`, used
where the traces carry it. A recipe can therefore keep `ReasoningOk` without running any model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from ..steps import FLAGS, REASONING_FLAGS, trace_flags
from .base import Selector, column, register
from .filter import Filter, Verdict


@register
class ReasoningOk(Filter):
    """Keep traces with no flag of `flags` (default: every `steps.FLAGS`) and, where `column`
    (`label.reasoning_ok`) is present, the judge's True; a row the judge left undecided (null) is
    kept unless `undecided="drop"`. A dropped row names the flag or the judge's first wrong step."""

    def __init__(self, flags: Sequence[str] | str = FLAGS, column: str = "label.reasoning_ok",
                 undecided: str = "keep") -> None:
        self.flags = flags
        self.column = column
        self.undecided = undecided

    def check_params(self) -> Selector:
        unknown = [f for f in self.wanted() if f not in FLAGS]
        if unknown:
            raise ValueError(f"ReasoningOk: unknown flag(s) {unknown}; known flags: {list(FLAGS)}")
        if self.undecided not in ("keep", "drop"):
            raise ValueError(f"ReasoningOk: undecided must be 'keep' or 'drop', got {self.undecided!r}")
        return super().check_params()

    def wanted(self) -> list[str]:
        """The flag names that drop a row."""
        return [self.flags] if isinstance(self.flags, str) else list(self.flags)

    def row_flags(self, ds: Dataset) -> list[list[str]]:
        """Each row's reasoning flags: `label.reasoning_flags` where present, else computed."""
        if REASONING_FLAGS in ds.column_names:
            return [list(f or []) for f in column(ds, REASONING_FLAGS)]
        present = [c for c in ("reasoning", "answer", "completion", "final_answer") if c in ds.column_names]
        if not present and len(ds):
            raise KeyError(f"ReasoningOk needs {REASONING_FLAGS} or the trace text (reasoning, answer, completion); "
                           f"the traces have {ds.column_names}")
        texts = {c: column(ds, c) for c in present}
        return [trace_flags({c: texts[c][i] for c in present}) for i in range(len(ds))]

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Drop flagged rows, then rows the judge found a wrong step in."""
        wanted = set(self.wanted())
        judged = self.column in ds.column_names
        ok = column(ds, self.column) if judged else np.full(len(ds), None, dtype=object)
        step = column(ds, "label.first_error_step") if "label.first_error_step" in ds.column_names else None
        rows: list[tuple[str, str | None]] = []
        for i, flags in enumerate(self.row_flags(ds)):
            hit = [f for f in flags if f in wanted]
            if hit:
                rows.append((f"flagged {', '.join(hit)}", f"ReasoningOk: {hit[0]}"))
            elif ok[i] is not None and not ok[i]:
                where = f" at step {step[i]}" if step is not None and step[i] is not None else ""
                rows.append((f"{self.column} is false (first wrong step{where})", "ReasoningOk: wrong step (judge)"))
            elif ok[i] is None and judged and self.undecided == "drop":
                rows.append((f"{self.column} undecided", "ReasoningOk: undecided"))
            else:
                rows.append(("no flag" + (f", {self.column} true" if ok[i] is not None else ""), None))
        return Verdict.from_rows(rows)
