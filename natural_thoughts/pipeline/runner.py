"""`run(config)`: every stage of a config applied in order (see `pipeline.stage`), each resumable
under `output_dir`.

Each stage writes under `output_dir/<stage>/` and is skipped when its output exists with the same
fingerprint (`stages.StageFolder`); generation resumes through its own shard manifest, and a change
upstream re-runs everything after it. The output stages (export, card) write one folder, `export/`,
made and marked done together. Same config and seed → the same exported bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..llm.runner import tally_model_calls
from .config import RunConfig, as_config
from .outputs import card_config
from .stage import Context, Stage
from .stages import SUMMARY_FILE, StageFolder, fingerprint, own_output_dir

__all__ = ["RunConfig", "run"]

OUTPUT_FOLDER = "export"


def run(config: RunConfig | dict[str, Any] | str | Path, engine: Any = None) -> dict[str, Any]:
    """Run every stage of a config (a `RunConfig`, a dict or a YAML path); returns a summary
    (counts, paths, which stages ran or were reused, and per stage what each model pass asked and
    reused, `model_calls`), also written to `output_dir/summary.json`.

    `engine` is a ready `vllm.LLM` or `Backend` used for generation (and LLM annotation without
    `annotate.model`) instead of loading `generate.model`, so a notebook or a test loads it once.
    `output_dir` is held for the whole run (`stages.own_output_dir`): a folder of other files, or one
    another `run` / `ablate` is writing, is refused.
    """
    cfg = as_config(config)
    with own_output_dir(cfg.output_dir) as out:
        return _run(Context(config=cfg, out=out, engine=engine))


def _run(ctx: Context) -> dict[str, Any]:
    """Every stage of `ctx.config` in order, then the summary (the output folder is held)."""
    cfg = ctx.config
    stages = cfg.stages()
    model_calls: dict[str, dict[str, dict[str, int]]] = {}
    for stage in stages:
        if stage.kind != "output":
            with tally_model_calls() as calls:
                stage.apply(ctx)
            if calls:
                model_calls[stage.section] = calls
    _outputs(ctx, [s for s in stages if s.kind == "output"])
    assert ctx.traces is not None and ctx.selection is not None
    traces, selection, folder = ctx.traces, ctx.selection, ctx.out / OUTPUT_FOLDER
    summary = {
        "name": cfg.name,
        "problems": len(ctx.problems) if ctx.problems is not None else len(set(traces["problem_id"])),
        "traces": len(traces),
        "errors": sum(e is not None for e in traces["error"]) if "error" in traces.column_names else 0,
        "selected": len(selection),
        "requested": selection.requested_k,
        "budget_warning": selection.budget_warning(),
        "exported": ctx.stats["rows_out"],
        "splits": ctx.stats["splits"],
        "modes": ctx.stats["modes"],
        "selection": json.loads(json.dumps(selection.provenance(), default=str)),
        "export_dir": str(folder),
        "card": str(folder / "README.md") if (folder / "README.md").exists() else None,
        "stages": ctx.status,
        "model_calls": model_calls,
    }
    (ctx.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _outputs(ctx: Context, outputs: list[Stage]) -> None:
    """The output stages into `output_dir/export`, or its stored stats when the whole config, the
    upstream key and the library version are unchanged."""
    from ..export.card import library_version

    folder = StageFolder(ctx.out / OUTPUT_FOLDER, fingerprint(OUTPUT_FOLDER, ctx.key, card_config(ctx.config),
                                                              library_version()))
    if folder.done():
        ctx.status[OUTPUT_FOLDER] = "reused"
        ctx.stats = folder.info()["stats"]
        return
    ctx.status[OUTPUT_FOLDER] = "ran"
    ctx.output = folder
    for stage in outputs:
        stage.apply(ctx)
    for stage in outputs:
        stage.publish(ctx)
    folder.finish(stats=ctx.stats)
