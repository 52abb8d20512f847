"""Attach a weak model's responses from a second source: `attach_weak(traces, source)`.

A Models-Disagree selection needs, beside each teacher trace, a weaker model's response to the same
problem. When those live in another file (an evaluation output of the weak model, say), this joins
them into `weak_answer` (the weak model's full completion) and `weak_model` by problem id or by
normalized problem text. Rows that find no weak response are kept with `weak_answer` None and
reported (a logged warning and a `WeakReport`), never dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset

from .sources import Columns, Source, load_traces
from ..schema import normalize_text, require_columns

log = logging.getLogger(__name__)

JoinKey = Literal["problem_id", "problem"]
JOIN_KEYS: tuple[str, ...] = ("problem_id", "problem")
DEFAULT_JOIN: JoinKey = "problem_id"
WEAK_COLUMNS: tuple[str, str] = ("weak_answer", "weak_model")
EXAMPLES = 5
"""Unjoined rows named in the warning and the report."""


@dataclass
class WeakReport:
    """What one `attach_weak` did: rows joined, rows left without a weak response (with examples),
    and weak rows that were not used (a second sample of a problem, or a problem not in `traces`)."""

    source: str
    on: str
    rows: int = 0
    joined: int = 0
    unjoined: int = 0
    unjoined_examples: list[str] = field(default_factory=list)
    weak_rows: int = 0
    weak_unused: int = 0


def _key(on: str, pid: Any, problem: Any) -> Any:
    """The join key of one row: its problem id, or its normalized problem text."""
    if on == "problem_id":
        return pid
    return normalize_text(problem) if isinstance(problem, str) else None


def attach_weak(traces: Dataset, source: Source, preset: str | None = None, columns: Columns = None,
                on: JoinKey = DEFAULT_JOIN, split: str | None = None, model: str | None = None,
                return_report: bool = False) -> Dataset | tuple[Dataset, WeakReport]:
    """`traces` with `weak_answer` / `weak_model` from a weak model's outputs in `source`.

    `source`, `preset`, `columns`, `split` and `model` are read as `load_traces` reads them (e.g.
    `preset="skythought_eval"` for a SkyThought evaluation file); each weak row's `completion`
    becomes `weak_answer` and its `model` (`model=`, else the file's model column, else its stem)
    `weak_model`. `on="problem_id"` joins by id (the hash of the text unless the sources give ids);
    `on="problem"` by `schema.normalize_text` of the problem, for sources whose ids differ. A
    problem answered several times in `source` takes its first row. Existing `weak_*` columns are
    replaced. Unjoined rows keep None and are reported; with `return_report`, the `WeakReport` too.
    """
    if on not in JOIN_KEYS:
        raise ValueError(f"attach_weak: on must be one of {JOIN_KEYS} (join by problem id or by problem text), "
                         f"not {on!r}")
    require_columns(traces.column_names, [on], "attach_weak (the traces)")
    weak = load_traces(source, preset=preset, columns=columns, split=split, model=model)
    report = WeakReport(source=str(source) if isinstance(source, (str, Path)) else type(source).__name__, on=on,
                        rows=len(traces), weak_rows=len(weak))
    found: dict[Any, tuple[str | None, str | None]] = {}
    for pid, problem, completion, name in zip(weak["problem_id"], weak["problem"], weak["completion"], weak["model"]):
        found.setdefault(_key(on, pid, problem), (completion, name))
    ids = traces["problem_id"] if "problem_id" in traces.column_names else [None] * len(traces)
    problems = traces["problem"] if "problem" in traces.column_names else [None] * len(traces)
    keys = [_key(on, pid, problem) for pid, problem in zip(ids, problems)]
    pairs = [found.get(k, (None, None)) for k in keys]
    missing = [i for i, k in enumerate(keys) if k not in found]
    report.joined, report.unjoined = len(traces) - len(missing), len(missing)
    report.unjoined_examples = [f"row {i}: {str(problems[i] if on == 'problem' else ids[i])[:80]!r}"
                                for i in missing[:EXAMPLES]]
    report.weak_unused = len(weak) - len(set(found) & set(keys))
    if missing:
        log.warning("attach_weak: %d of %d rows found no weak response in %s by %s (kept, weak_answer None); "
                    "e.g. %s", report.unjoined, report.rows, report.source, on, "; ".join(report.unjoined_examples))
    log.info("attach_weak: %d of %d rows joined from %s by %s", report.joined, report.rows, report.source, on)
    replaced = [c for c in WEAK_COLUMNS if c in traces.column_names]
    if replaced:
        log.info("attach_weak: replacing the existing columns %s", replaced)
    out = traces.remove_columns(replaced)
    out = out.add_column("weak_answer", [p[0] for p in pairs]).add_column("weak_model", [p[1] for p in pairs])
    return (out, report) if return_report else out
