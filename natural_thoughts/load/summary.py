"""A quick look at a problems or traces file: counts, flags, lengths, answer extraction."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from datasets import Dataset

from .presets import TRACE_PRESETS


def summarize(source: Any, preset: str | None = None) -> dict[str, Any]:
    """Rows, flag counts, reasoning-length quantiles (characters) and answer-extraction rate."""
    ds = _load(source, preset)
    out: dict[str, Any] = {"rows": len(ds), "kind": "traces" if "completion" in ds.column_names else "problems"}
    if "problem_id" in ds.column_names:
        out["problems"] = len(set(ds["problem_id"]))
    if out["kind"] == "problems":
        if "reference_answer" in ds.column_names:
            out["with_reference_answer"] = sum(bool(a) for a in ds["reference_answer"])
        return out
    flags = Counter(f for row in ds["flags"] for f in (row or []))
    out["flags"] = dict(sorted(flags.items()))
    out["errors"] = sum(e is not None for e in ds["error"]) if "error" in ds.column_names else 0
    lengths = np.array([len(r or "") for r in ds["reasoning"]])
    if len(lengths):
        qs = np.quantile(lengths, [0.1, 0.5, 0.9, 1.0])
        out["reasoning_chars_quantiles"] = dict(zip(["p10", "p50", "p90", "max"], [int(q) for q in qs]))
    answers = ds["final_answer"]
    out["answer_extraction_rate"] = round(sum(a is not None for a in answers) / max(len(answers), 1), 4)
    return out


def _load(source: Any, preset: str | None) -> Dataset:
    from .sources import load_problems, load_traces

    if preset in TRACE_PRESETS:
        return load_traces(source, preset=preset)
    if preset is not None:
        return load_problems(source, preset=preset)
    try:
        return load_traces(source)
    except (KeyError, ValueError):
        return load_problems(source)
