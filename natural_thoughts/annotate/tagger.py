"""A model-free strategy tagger: lexical markers → the same `label.strategies` shape as the judge.

Fast enough for a million traces and needs no model, so strategy selection works without a judge.
It is a heuristic: `tagger_agreement` measures how far it matches an LLM annotator's labels
(per-strategy precision / recall / Jaccard over traces), which is reported, never assumed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
from datasets import Dataset, concatenate_datasets

from ..schema import require_columns
from .annotators import STRATEGY_TYPE
from .base import reasoning_text
from .taxonomy import STRATEGIES

MARKERS: dict[str, tuple[str, ...]] = {
    "self_verification": (
        r"let(?: me|'s| us) (?:verify|check|double[- ]check|confirm)", r"double[- ]check", r"verify(?:ing)?\b",
        r"plug(?:ging)? (?:\w+ )?back\b", r"check(?:ing)? (?:my|the|this|that|our) (?:answer|result|work|calculation)",
    ),
    "backtracking": (
        r"wait\b", r"go(?:ing)? back\b", r"that(?:'s| is) (?:not right|wrong|incorrect)", r"mistake\b",
        r"let me (?:re-?think|reconsider|correct)", r"scratch that", r"actually,",
    ),
    "exploring_alternatives": (
        r"alternatively\b", r"(?:another|a different|an alternative) (?:way|approach|method)\b",
        r"or maybe\b", r"what if (?:i|we)\b",
    ),
    "subgoal_decomposition": (
        r"first(?:ly)?,", r"step \d+", r"next,", r"break (?:it|this|the problem) (?:down|into)\b",
        r"sub-?(?:problem|goal|task)s?\b",
    ),
    "working_backwards": (
        r"work(?:ing)? backwards?\b", r"backwards? from\b", r"start(?:ing)? from the (?:answer|end|goal|result)\b",
    ),
    "analogy": (r"similar to\b", r"analog(?:ous|y)\b", r"reminds me of\b", r"just like\b"),
    "case_analysis": (
        r"case (?:\d+|one|two|three)\b", r"suppose\b", r"in the case (?:of|where|that)\b",
        r"consider (?:the )?(?:two |both |all )?cases\b",
    ),
    "estimation_sanity_check": (
        r"roughly\b", r"approximately\b", r"sanity check", r"makes sense\b", r"plausible\b",
        r"ballpark\b", r"order of magnitude\b", r"seems reasonable\b",
    ),
    "restating_problem": (
        r"the problem (?:says|states|asks|is asking)\b", r"the question (?:says|asks|is asking)\b",
        r"(?:we|i) need to (?:find|determine|compute|calculate|figure out)\b", r"in other words\b",
        r"let me (?:restate|rephrase)\b", r"so i have this problem\b",
    ),
    "summarizing_progress": (
        r"in summary\b", r"to summarize\b", r"so far\b", r"to recap\b",
        r"putting (?:it|this|everything) (?:all )?together\b", r"in conclusion\b",
    ),
}
"""Strategy → regular expressions of its lexical markers, in lowercase. They are matched on the
lowercased text and only where they start a word (checked after matching: a leading `\\b` would
make Python's regex engine several times slower)."""

_PATTERNS = {name: re.compile("|".join(f"(?:{p})" for p in pats)) for name, pats in MARKERS.items()}
EVIDENCE_CHARS = 40
"""Characters of context kept on each side of the first marker, as evidence."""


def tag_text(text: str | None) -> list[dict[str, Any]]:
    """The strategies whose markers occur in `text`: [{name, count, evidence}] in taxonomy order.

    `count` is the number of (non-overlapping) marker occurrences; `evidence` the first one with
    a little context."""
    text = text or ""
    lower = text.lower()  # same length as `text` for all but a few exotic characters
    if len(lower) != len(text):
        lower = "".join(ch.lower()[:1] or ch for ch in text)
    found = []
    for name, pattern in _PATTERNS.items():
        matches = [m for m in pattern.finditer(lower) if m.start() == 0 or not lower[m.start() - 1].isalnum()]
        if matches:
            m = matches[0]
            snippet = " ".join(text[max(m.start() - EVIDENCE_CHARS, 0) : m.end() + EVIDENCE_CHARS].split())
            found.append({"name": name, "count": len(matches), "evidence": snippet})
    return found


def tag_strategies(traces: Dataset, column: str = "label.strategies", batch_size: int = 1000) -> Dataset:
    """`traces` with the tagger's labels in `column` (the reasoning, or the whole completion when
    a trace has no separate reasoning, is what is tagged)."""
    sources = [c for c in ("reasoning", "completion") if c in traces.column_names]
    if not sources:
        require_columns(traces.column_names, ["reasoning"], "tag_strategies")
    view = traces.select_columns(sources)
    cells: list[list[dict[str, Any]]] = []
    for start in range(0, len(view), batch_size):
        chunk = view[start : start + batch_size]
        n = len(chunk[sources[0]])
        cells += [tag_text(reasoning_text({c: chunk[c][j] for c in sources})) for j in range(n)]
    labels = pa.table({column: pa.array(cells, STRATEGY_TYPE)})
    base = traces.remove_columns([column]) if column in traces.column_names else traces
    return concatenate_datasets([base, Dataset(labels)], axis=1)


def present_strategies(value: Any, row: int, column: str) -> set[str]:
    """The strategies a label cell marks present: a list of names, or of {name|strategy, count}
    dicts (present when count is absent or above zero), or a JSON string of either."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise TypeError(f"column {column!r} row {row}: expected a list of strategies, got {value!r:.80}")
    names = set()
    for item in value:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict) and (item.get("name") or item.get("strategy")):
            if item.get("count") is None or item["count"] > 0:
                names.add(str(item.get("name") or item.get("strategy")))
        else:
            raise TypeError(f"column {column!r} row {row}: a strategy is neither a name nor a dict with "
                            f"'name': {item!r:.80}")
    return names


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def tagger_agreement(traces: Dataset, column: str = "label.strategies") -> dict[str, Any]:
    """How well the tagger reproduces the strategy labels in `column` (an LLM annotator's).

    A strategy counts as present in a trace when its count is above zero. Per strategy, over the
    traces that have a label: `precision` (of the tagger's detections, the share the judge also
    made), `recall` (of the judge's, the share the tagger found) and `jaccard`; `macro` averages
    them over strategies where defined; `row_jaccard` is the mean per-trace set overlap (1 when
    both are empty). Rows whose label is null (judge errors) are left out and counted.
    """
    require_columns(traces.column_names, [column], "tagger_agreement")
    judged = [(i, v) for i, v in enumerate(traces[column]) if v is not None]
    tagged = tag_strategies(traces.select([i for i, _ in judged]), column="label._tagger")["label._tagger"]
    totals = {name: {"judge": 0, "tagger": 0, "both": 0} for name in STRATEGIES}
    overlaps = []
    for (row, value), mine in zip(judged, tagged):
        theirs = present_strategies(value, row, column)
        ours = {u["name"] for u in mine}
        overlaps.append(len(theirs & ours) / len(theirs | ours) if theirs | ours else 1.0)
        for name in theirs | ours:
            t = totals.setdefault(name, {"judge": 0, "tagger": 0, "both": 0})
            t["judge"] += name in theirs
            t["tagger"] += name in ours
            t["both"] += name in theirs and name in ours
    per = {name: {**t, "precision": _ratio(t["both"], t["tagger"]), "recall": _ratio(t["both"], t["judge"]),
                  "jaccard": _ratio(t["both"], t["judge"] + t["tagger"] - t["both"])}
           for name, t in totals.items()}
    macro = {}
    for metric in ("precision", "recall", "jaccard"):
        vals = [p[metric] for p in per.values() if p[metric] is not None]
        macro[metric] = sum(vals) / len(vals) if vals else None
    return {"column": column, "rows": len(judged), "unlabelled_rows": len(traces) - len(judged),
            "row_jaccard": sum(overlaps) / len(overlaps) if overlaps else None,
            "macro": macro, "per_strategy": per}
