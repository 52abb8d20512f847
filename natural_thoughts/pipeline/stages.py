"""Resumable stage folders: each stage writes under `output_dir/<stage>/` and marks itself done
with a fingerprint file, so a re-run with the same inputs and settings reuses the output.

A stage that adds columns (annotate, verify, score) stores only those columns, row-aligned with its
input by `trace_id`; the select stage stores the picks, the drops and the step reports.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, concatenate_datasets, load_from_disk

from ..schema import STAGE_COLUMNS
from ..selectors.base import Selection, StepReport
from ..llm.store import fingerprint_hash, folder_lock, write_atomic

STAGE_FILE = ".stage.json"
OWNER_FILE = ".natural-thoughts"
"""Written into every output folder `run` and `ablate` make: stages delete and rewrite only inside
folders that hold it, so a folder of the user's own is never emptied."""
RUN_LOCK = ".run.lock"
"""The lock a `run` or `ablate` command holds on its output folder for its whole life."""
SUMMARY_FILE = "summary.json"
"""What a finished `run` or `ablate` writes last: with a stage marker, the sign of a run folder made
before `OWNER_FILE` existed."""


@contextlib.contextmanager
def own_output_dir(folder: str | Path) -> Iterator[Path]:
    """Hold `folder` as this command's run folder: made (and marked ours) when new or empty, accepted
    when it holds `OWNER_FILE` (or is a run folder of an earlier version), refused in one line when
    it holds anything else, or while another `run` / `ablate` holds it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output_dir {folder} is a file; give a folder")
    if folder.is_dir() and not (folder / OWNER_FILE).exists() and any(folder.iterdir()) and not _old_run(folder):
        raise ValueError(f"output_dir {folder} holds files that natural-thoughts did not make (no {OWNER_FILE}); "
                         "nothing was written or deleted there: give a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder, blocking=False, name=RUN_LOCK) as held:
        if not held:
            raise RuntimeError(f"another natural-thoughts command is running in {folder} (its lock is held); "
                               "wait for it to finish, or give another output_dir")
        if not (folder / OWNER_FILE).exists():
            write_atomic(folder / OWNER_FILE, b"made by natural-thoughts: its stages may rewrite this folder\n")
        yield folder


def _old_run(folder: Path) -> bool:
    """A run folder an earlier version made (a summary or a stage marker, no `OWNER_FILE`)."""
    return (folder / SUMMARY_FILE).is_file() or any(folder.glob(f"*/{STAGE_FILE}"))


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-ready parts."""
    return fingerprint_hash(list(parts))


class StageFolder:
    """One stage's folder and done-marker. `key` is the fingerprint of everything it depends on."""

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key

    @property
    def marker(self) -> Path:
        return self.folder / STAGE_FILE

    def done(self) -> bool:
        """Whether the folder holds a finished output made with the same fingerprint."""
        if not self.marker.exists():
            return False
        return json.loads(self.marker.read_text()).get("fingerprint") == self.key

    def begin(self, clear: bool = True) -> None:
        """Drop the done-marker first (a crash never leaves a stale one), then clear the folder."""
        self.marker.unlink(missing_ok=True)
        if clear and self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def finish(self, **info: Any) -> None:
        """Mark the stage done with its fingerprint (and any JSON-ready info)."""
        blob = json.dumps({"fingerprint": self.key, **info}, indent=2, sort_keys=True, default=str)
        write_atomic(self.marker, blob.encode("utf-8"))

    def info(self) -> dict[str, Any]:
        return json.loads(self.marker.read_text())


def added_columns(before: Dataset, after: Dataset) -> list[str]:
    """Columns a stage added or may have rewritten: new names, and every `label.*` / `score.*` /
    `guidance.*` one (`schema.STAGE_COLUMNS`)."""
    return [c for c in after.column_names if c not in before.column_names or c.startswith(STAGE_COLUMNS)]


def save_columns(before: Dataset, after: Dataset, folder: Path, stage: str) -> list[str]:
    """Store the columns `after` adds to `before` (same rows, same order), keyed by `trace_id`."""
    if len(after) != len(before):
        raise ValueError(f"the {stage} stage returned {len(after)} rows for {len(before)}; "
                         "stages before select must keep every row")
    cols = added_columns(before, after)
    keyed = after.select_columns(["trace_id", *cols]) if "trace_id" in after.column_names else after.select_columns(cols)
    shutil.rmtree(folder / "columns", ignore_errors=True)
    keyed.save_to_disk(str(folder / "columns"))
    return cols


def attach_columns(before: Dataset, folder: Path, stage: str) -> Dataset:
    """`before` with a stage's stored columns joined on (checked row by row against `trace_id`)."""
    cols = load_from_disk(str(folder / "columns"))
    if len(cols) != len(before) or ("trace_id" in cols.column_names and cols["trace_id"] != before["trace_id"]):
        raise ValueError(f"the stored {stage} columns under {folder} do not match the traces; delete that folder")
    cols = cols.remove_columns([c for c in ("trace_id",) if c in cols.column_names])
    base = before.remove_columns([c for c in cols.column_names if c in before.column_names])
    return concatenate_datasets([base, cols], axis=1)


def save_selection(selection: Selection, folder: Path) -> None:
    """Picks (row, score, reason), drops (row, reason), step reports and the requested budget, as
    parquet and JSON."""
    pq.write_table(pa.table({"row": pa.array(selection.indices, pa.int64()),
                             "score": pa.array(selection.scores, pa.float64()),
                             "reason": pa.array(selection.reasons, pa.string())}), folder / "picks.parquet")
    rows = sorted(selection.dropped)
    pq.write_table(pa.table({"row": pa.array(rows, pa.int64()),
                             "reason": pa.array([selection.dropped[r] for r in rows], pa.string())}),
                   folder / "dropped.parquet")
    steps = [{**s.__dict__, "params": json.loads(json.dumps(s.params, default=str))} for s in selection.steps]
    (folder / "steps.json").write_text(json.dumps(steps, indent=2, sort_keys=True))
    (folder / "budget.json").write_text(json.dumps({"requested_k": selection.requested_k}))


def load_selection(ds: Dataset, folder: Path) -> Selection:
    """The `Selection` stored by `save_selection`, over the same dataset `ds`."""
    picks = pq.read_table(folder / "picks.parquet").to_pydict()
    dropped = pq.read_table(folder / "dropped.parquet").to_pydict()
    steps = [StepReport(**s) for s in json.loads((folder / "steps.json").read_text())]
    budget = folder / "budget.json"
    requested_k = json.loads(budget.read_text())["requested_k"] if budget.exists() else None
    return Selection(ds, np.asarray(picks["row"], dtype=np.int64), np.asarray(picks["score"], dtype=float),
                     list(picks["reason"]), steps, dict(zip(dropped["row"], dropped["reason"])), requested_k)
