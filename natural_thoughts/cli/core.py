"""The core of the command: the typer `app` every command module registers on, its global options
(`--verbose`, `--debug`), and what the commands share.

Quiet by default: warnings only, one progress bar per long stage, an error as one line (its
traceback with `--debug`); `--verbose` shows the INFO logs of the library and of vLLM. Ctrl-C
stops with exit code 130 and says how to resume.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
import typer
from pydantic import BaseModel
from typer.core import TyperGroup

INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it."""


class _Commands(TyperGroup):
    """Runs a command; any failure becomes one short message (exit 1), Ctrl-C exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted; run the same command again to resume", err=True)
            raise typer.Exit(INTERRUPTED) from None
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            typer.echo(f"error: {_one_line(exc)} (--debug shows the traceback)", err=True)
            raise typer.Exit(1) from None


def _one_line(exc: Exception) -> str:
    """An error as one line: a validation error as `field: problem` per field."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):  # pydantic's "Value error, " before a message of ours says nothing
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or exc.title}: {e['msg'].removeprefix('Value error, ')}"
                         for e in exc.errors())
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split())


def default(model: type[BaseModel], field: str) -> Any:
    """A config field's default: an option and its YAML key share one value."""
    return model.model_fields[field].get_default(call_default_factory=True)


app = typer.Typer(cls=_Commands, help="Curate reasoning-trace data for SFT: generate, label, score, select, export.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show INFO logs of the library and of vLLM."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
) -> None:
    """Options before the command apply to every command."""
    level = logging.INFO if verbose or debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    # vLLM's engine runs in child processes: environment variables reach them, logging settings do not.
    os.environ["VLLM_LOGGING_LEVEL"] = "INFO" if verbose else os.environ.get("VLLM_LOGGING_LEVEL", "ERROR")
    if not verbose:
        logging.getLogger("vllm").setLevel(logging.ERROR)  # its import-time warnings in this process
        # Other libraries' progress bars off (datasets' maps and saves, model writes); the stages'
        # own bars pass `disable` explicitly, so each long stage keeps its one bar.
        for name in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(name, "1")  # for child processes; this one may have read them already:
        import datasets
        import huggingface_hub.utils

        datasets.disable_progress_bars()
        huggingface_hub.utils.disable_progress_bars()  # transformers reads it when imported
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning,"
                              "ignore::UserWarning:multiprocessing.resource_tracker")
