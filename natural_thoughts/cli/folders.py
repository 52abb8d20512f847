"""Commands over a `generate` output folder: its `status` per shard, and `merge` of its shards."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .core import app


@app.command("status")
def status_command(
    output_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A generate output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show a generation run's progress per shard and what is still missing.

    Prints only; writes nothing."""
    from ..llm.status import run_status

    status = run_status(output_dir)
    typer.echo(json.dumps(status.to_dict(), indent=2) if as_json else str(status))


@app.command("merge")
def merge_command(
    output_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A generate output folder."),
    dest: Path = typer.Argument(..., help="OUT.parquet, OUT.jsonl, or a folder (datasets save_to_disk)."),
    allow_incomplete: bool = typer.Option(False, help="Merge even when traces are still missing."),
) -> None:
    """Write a run's shards as one dataset (one row per problem and sample); the shards are kept.

    Writes DEST: a parquet or JSON-lines file, or a folder (datasets save_to_disk)."""
    from ..llm.status import merge

    try:
        path = merge(output_dir, dest, allow_incomplete=allow_incomplete)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"merged {output_dir} into {path}")
