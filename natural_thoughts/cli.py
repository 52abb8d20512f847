"""The `natural-thoughts` command."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Curate reasoning-trace data for SFT: generate, label, score, select, export.",
                  no_args_is_help=True, add_completion=False)

DEMO_CONFIG = Path(__file__).parent / "data" / "demo.yaml"


@app.command()
def run(config: Path = typer.Argument(..., exists=True, dir_okay=False, help="A RunConfig YAML file.")) -> None:
    """Run every stage of CONFIG (resumable: re-running continues where it stopped)."""
    from .pipeline import run as run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = run_pipeline(config)
    _print_summary(summary)


@app.command()
def demo(output_dir: Path = typer.Option(Path("runs/demo"), help="Where the demo writes.")) -> None:
    """Run the embedded default offline: shipped questions, a tiny random teacher, real vLLM."""
    from .pipeline import RunConfig, run as run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = RunConfig.from_yaml(DEMO_CONFIG).model_copy(update={"output_dir": str(output_dir)})
    typer.echo(f"demo config: {DEMO_CONFIG}")
    _print_summary(run_pipeline(cfg))
    typer.echo("note: the teacher is a tiny random smoke model; its text is noise. "
               "For a real run see examples/natural_thoughts.yaml.")


@app.command()
def inspect(
    path: str = typer.Argument(..., help="A problems or traces file, folder or glob."),
    preset: Optional[str] = typer.Option(None, help="A loader preset, e.g. skythought_eval, gsm8k."),
) -> None:
    """Print rows, flag counts, reasoning-length quantiles and the answer-extraction rate."""
    from .summary import summarize

    typer.echo(json.dumps(summarize(path, preset=preset), indent=2))


def _print_summary(summary: dict) -> None:
    typer.echo(
        f"problems: {summary['problems']}  traces: {summary['traces']}  errors: {summary['errors']}  "
        f"selected: {summary['selected']}"
    )
    typer.echo(f"exported dataset: {summary['export_dir']}")


if __name__ == "__main__":
    app()
