"""Whole runs from a YAML config: `run`, `ablate`, and the offline `demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from .core import app

DEMO_CONFIG = Path(__file__).parent.parent / "data" / "demo.yaml"
DEMO_REAL_CONFIG = DEMO_CONFIG.with_name("demo_real.yaml")
"""The demo's second half: the repository's real sample traces (examples/data), curated."""


@app.command()
def run(config: Path = typer.Argument(..., exists=True, dir_okay=False, help="A RunConfig YAML file.")) -> None:
    """Run every stage of CONFIG (resumable: re-running continues where it stopped).

    Writes under the config's output_dir: one folder per stage (its work, reused on a re-run) and
    export/ (the dataset and its card, README.md with figures); prints where both are."""
    from ..pipeline.runner import run as run_pipeline

    summary = run_pipeline(config)
    _print_summary(summary)


@app.command()
def ablate(config: Path = typer.Argument(..., exists=True, dir_okay=False, help="An AblateConfig YAML file.")) -> None:
    """One exported subset per selection × budget of CONFIG, and a side-by-side report (resumable:
    re-running reuses finished cells; a changed cell spec re-runs only that cell).

    Writes under the config's output_dir: pool/ (the prepared traces), cells/<selection>-<budget>/
    (each exported subset) and report.md (the comparison; its figures in figures/)."""
    from ..ablate import ablate as run_ablate, summary_lines

    for line in summary_lines(run_ablate(config)):
        typer.echo(line)


@app.command()
def demo(output_dir: Path = typer.Option(Path("runs/demo"), help="Where the demo writes.")) -> None:
    """Run offline: a generation smoke test (shipped questions, a tiny random teacher, real vLLM),
    then real Sky-T1 traces from the repository's samples curated NaturalThoughts-style (verified,
    hard, diverse, long).

    Writes under --output-dir: the smoke run's stages and export/, and real/ (the curated real
    traces: real/export with its card README.md); prints where both exports are."""
    from ..pipeline.runner import RunConfig, run as run_pipeline

    cfg = RunConfig.from_yaml(DEMO_CONFIG).model_copy(update={"output_dir": str(output_dir)})
    typer.echo(f"1. generation smoke test ({DEMO_CONFIG.name}): the teacher is a tiny random model, its text is noise")
    _print_summary(run_pipeline(cfg))
    real = RunConfig.from_yaml(DEMO_REAL_CONFIG)
    if not Path(real.traces.source).is_file():
        typer.echo(f"2. real traces: skipped, {real.traces.source} is absent (it ships in the repository's "
                   "examples/data; run the demo from a clone)")
        return
    typer.echo(f"2. real Sky-T1 traces curated ({DEMO_REAL_CONFIG.name}): verified, hard, diverse, long")
    _print_summary(run_pipeline(real.model_copy(update={"output_dir": str(output_dir / "real")})))
    typer.echo("For a run at scale see examples/natural_thoughts.yaml.")


def _print_summary(summary: dict) -> None:
    """What a run did, in at most four lines: counts, the exported dataset, its card, each stage's state."""
    typer.echo(
        f"problems: {summary['problems']}  traces: {summary['traces']}  errors: {summary['errors']}  "
        f"selected: {summary['selected']}"
    )
    typer.echo(f"exported dataset: {summary['export_dir']}")
    if summary.get("card"):
        typer.echo(f"dataset card (with figures): {summary['card']}")
    if summary.get("stages"):
        typer.echo("stages: " + ", ".join(f"{k} {v}{_model_calls(summary, k)}" for k, v in summary["stages"].items()))


def _model_calls(summary: dict, stage: str) -> str:
    """What a stage's model passes did, e.g. " (model: 3 asked, 47 reused)"; "" without any."""
    calls = summary.get("model_calls", {}).get(stage, {}).values()
    if not calls:
        return ""
    asked, reused = (sum(c[k] for c in calls) for k in ("asked", "reused"))
    return f" (model: {asked} asked, {reused} reused)"
