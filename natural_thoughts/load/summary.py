"""A quick look at a problems or traces file: counts, flags, lengths, answer extraction."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from ..scores import non_empty
from .presets import TRACE_PRESETS


SUMMARY_BATCH = 10_000
"""Rows read at a time: the summary holds a few numbers per row, never the texts."""


def summarize(source: Any, preset: str | None = None) -> dict[str, Any]:
    """Rows, flag counts, reasoning-length quantiles (characters) and answer-extraction rate, read
    as Arrow columns a batch at a time, so a million traces fit in little memory."""
    ds = _load(source, preset)
    names = ds.column_names
    out: dict[str, Any] = {"rows": len(ds), "kind": "traces" if "completion" in names else "problems"}
    read = ("problem_id", "reference_answer", "flags", "error", "reasoning", "final_answer")
    wanted = [c for c in read if c in names]
    ids, lengths, flags = [], [], Counter()
    counts = Counter()  # per column: rows with a value (a non-empty one for the reference answer)
    for batch in ds.select_columns(wanted).with_format("arrow").iter(batch_size=SUMMARY_BATCH):
        columns = dict(zip(batch.column_names, batch.columns))
        if "problem_id" in columns:
            ids += columns["problem_id"].chunks
        if "reference_answer" in columns:
            counts["reference_answer"] += pc.sum(non_empty(columns["reference_answer"])).as_py() or 0
        for name in ("error", "final_answer"):
            counts[name] += len(batch) - columns[name].null_count if name in columns else 0
        if "flags" in columns:
            values = pc.value_counts(pc.list_flatten(columns["flags"]))
            flags.update(dict(zip(values.field("values").to_pylist(), values.field("counts").to_pylist())))
        if "reasoning" in columns:
            lengths.append(pc.fill_null(pc.utf8_length(columns["reasoning"]), 0).to_numpy())
    if ids:
        out["problems"] = pc.count_distinct(pa.chunked_array(ids), mode="all").as_py()
    if out["kind"] == "problems":
        if "reference_answer" in names:
            out["with_reference_answer"] = counts["reference_answer"]
        return out
    out["flags"] = dict(sorted(flags.items()))
    out["errors"] = counts["error"]
    if lengths:
        qs = np.quantile(np.concatenate(lengths), [0.1, 0.5, 0.9, 1.0])
        out["reasoning_chars_quantiles"] = dict(zip(["p10", "p50", "p90", "max"], [int(q) for q in qs]))
    out["answer_extraction_rate"] = round(counts["final_answer"] / max(len(ds), 1), 4)
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
