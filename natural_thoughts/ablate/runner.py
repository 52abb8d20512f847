"""`ablate(config)`: one pool, every selection × budget as its own exported subset, one report.

Each cell is a resumable stage folder (`output_dir/cells/<selection>-<budget>/`) keyed by the pool,
the prefilter, its selection spec, budget, seed and the export settings: a re-run reuses every
finished cell and re-runs only cells whose spec changed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..pipeline.stages import SUMMARY_FILE, StageFolder, fingerprint, load_selection, own_output_dir, save_selection
from ..selectors.base import Selection
from .config import AblateConfig, as_config, cell_selector
from .pool import prepare_pool

log = logging.getLogger(__name__)

CELLS = "cells"


def ablate(config: AblateConfig | dict[str, Any] | str | Path) -> dict[str, Any]:
    """Prepare the pool, write every cell, then the report; returns a summary (also written to
    `output_dir/summary.json`): per cell its size, budget warning and folder, the overlap matrix,
    and `stages` ("ran" / "reused" for the pool, each `cells/<name>` and the report's `measures`).
    `output_dir` is held as `run` holds it (`pipeline.stages.own_output_dir`): a second `ablate` or
    `run` on it is refused while this one runs."""
    cfg = as_config(config)
    with own_output_dir(cfg.output_dir) as out:
        return _ablate(cfg, out)


def _ablate(cfg: AblateConfig, out: Path) -> dict[str, Any]:
    """The pool, every cell and the report into `out` (held by this call)."""
    pool, pool_key, pool_state = prepare_pool(cfg, out)
    stages = {"pool": pool_state}
    selections: dict[str, Selection] = {}
    cells: dict[str, dict[str, Any]] = {}
    for cell, name, budget in cfg.cells():
        selection, info, state = run_cell(cfg, pool, pool_key, cell, name, budget, out)
        stages[f"{CELLS}/{cell}"] = state
        selections[cell] = selection
        cells[cell] = {"selection": name, "budget": budget, "selected": len(selection),
                       "budget_warning": selection.budget_warning(), "exported": info["exported"],
                       "dir": str(out / CELLS / cell)}
    from .report import write_report  # matplotlib: imported only when a report is written

    report = write_report(cfg, pool, pool_key, selections, out)
    stages["measures"] = report["measures"]
    summary = {"name": cfg.name, "pool": len(pool), "cells": cells, "overlap": report["overlap"],
               "report": str(report["path"]), "figures": [str(p) for p in report["figures"]], "stages": stages}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def run_cell(cfg: AblateConfig, pool: Dataset, pool_key: str, cell: str, name: str, budget: int,
             out: Path) -> tuple[Selection, dict[str, Any], str]:
    """(selection, the cell's recorded info, "ran" / "reused"): select `budget` rows and export them."""
    from ..export.formats import write_splits
    from ..selectors import select

    e = cfg.export
    spec = cfg.selections[name]
    folder = StageFolder(out / CELLS / cell, fingerprint("cell", pool_key, cfg.prefilter, spec, budget, cfg.seed,
                                                          e.model_dump()))
    if folder.done():
        selection = load_selection(pool, folder.folder)
        if selection.budget_warning():
            log.warning("%s: %s", cell, selection.budget_warning())
        return selection, folder.info(), "reused"
    selection = select(pool, cell_selector(cfg.prefilter, spec), k=budget, seed=cfg.seed)
    splits, stats = e.prepare(selection)
    folder.begin()  # an earlier output of this cell goes only once the new one is ready to write
    save_selection(selection, folder.folder)
    stats.files = [p.name for p in write_splits(splits, folder.folder, e.file_format)]
    info = {"selection": name, "budget": budget, "selected": len(selection), "exported": stats.rows_out,
            "budget_warning": selection.budget_warning(), "export": stats.to_dict()}
    folder.finish(**info)
    return selection, info, "ran"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What the CLI prints: each cell's size and whether it ran, its budget warning, then the report."""
    lines = []
    for name, cell in summary["cells"].items():
        line = f"{name}: {cell['selected']}/{cell['budget']} rows ({summary['stages'][f'{CELLS}/{name}']})"
        lines.append(line + (f"; {cell['budget_warning']}" if cell["budget_warning"] else ""))
    return lines + [f"report: {summary['report']}"]
