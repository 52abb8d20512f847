"""The core of the command: the typer `app` every command module registers on, its global options
(`--verbose`, `--debug`), and what the commands share.

Quiet by default: warnings only, one progress bar per long stage, an error as one line (its
traceback with `--debug`); what other processes and C libraries print (vLLM's engine, Triton, NUMA
and weight-loading notices) goes to a log that is named only when the command fails. `--verbose`
shows all of it, and the INFO logs of the library and of vLLM. Ctrl-C stops with exit code 130 and
says how to resume.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
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
        quiet = not (ctx.params.get("verbose") or ctx.params.get("debug"))
        try:
            with _others_output_to_a_log() if quiet else nullcontext():
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


@contextmanager
def _others_output_to_a_log() -> Iterator[None]:
    """Point file descriptors 1 and 2 at a log while the command runs: child processes (vLLM's
    engine) and C libraries write there, this process's Python streams (its messages, logs, progress
    bars) keep the terminal through duplicates. The log is removed when the command succeeds and
    named when it fails. Streams that are not the process's own (a test runner's capture) are left."""
    if sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        yield
        return
    log = Path(tempfile.gettempdir()) / f"natural-thoughts-{os.getpid()}.log"
    streams = {1: sys.stdout, 2: sys.stderr}
    terminals = {}
    with open(log, "wb") as fh:
        for fd, stream in streams.items():
            stream.flush()
            terminals[fd] = os.dup(fd)  # kept open: a logging handler may hold its stream to the end
            os.dup2(fh.fileno(), fd)
    sys.stdout, sys.stderr = (open(terminals[fd], "w", buffering=1, encoding=streams[fd].encoding,
                                   errors="backslashreplace", closefd=False) for fd in (1, 2))
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        for fd, stream in streams.items():
            (sys.stdout if fd == 1 else sys.stderr).flush()
            os.dup2(terminals[fd], fd)
        sys.stdout, sys.stderr = streams[1], streams[2]
        if succeeded or not log.stat().st_size:
            log.unlink(missing_ok=True)
        else:
            typer.echo(f"(what vLLM and other libraries printed: {log}; --verbose shows it as it comes)", err=True)


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
                  no_args_is_help=True, add_completion=False,
                  rich_markup_mode=None)  # plain help: rich mode labels every flag `<bool>`


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
