"""The `natural-thoughts` command.

Quiet by default: warnings only, one progress bar per long stage, an error as one line (its
traceback with `--debug`); `--verbose` shows the INFO logs of the library and of vLLM. Ctrl-C
stops with exit code 130 and says how to resume.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

import click
import typer
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

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or exc.title}: {e['msg']}" for e in exc.errors())
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split())


app = typer.Typer(cls=_Commands, help="Curate reasoning-trace data for SFT: generate, label, score, select, export.",
                  no_args_is_help=True, add_completion=False)

DEMO_CONFIG = Path(__file__).parent / "data" / "demo.yaml"


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


@app.command()
def run(config: Path = typer.Argument(..., exists=True, dir_okay=False, help="A RunConfig YAML file.")) -> None:
    """Run every stage of CONFIG (resumable: re-running continues where it stopped)."""
    from .pipeline import run as run_pipeline

    summary = run_pipeline(config)
    _print_summary(summary)


@app.command()
def demo(output_dir: Path = typer.Option(Path("runs/demo"), help="Where the demo writes.")) -> None:
    """Run the embedded default offline: shipped questions, a tiny random teacher, real vLLM."""
    from .pipeline import RunConfig, run as run_pipeline

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


@app.command("annotate")
def annotate_command(
    path: str = typer.Argument(..., help="A traces file, folder or glob."),
    annotator: list[str] = typer.Option(..., "--annotator", "-a", help="strategies, domain, verbosity, "
                                        "difficulty, answer_judge, or tagger (model-free); repeat for several."),
    model: Optional[str] = typer.Option(None, help="The judge model: a hub name or a local folder."),
    backend: str = typer.Option("vllm", help="vllm or openai."),
    preset: Optional[str] = typer.Option(None, help="A loader preset, e.g. skythought_eval."),
    output_dir: Path = typer.Option(Path("runs/annotate"), help="Shards and manifests (re-running resumes)."),
    out: Optional[Path] = typer.Option(None, help="The labelled traces (parquet); "
                                       "default OUTPUT_DIR/annotated.parquet."),
    max_tokens: int = typer.Option(1024, help="Token cap of each judge reply."),
) -> None:
    """Add label.* columns to the traces at PATH with LLM judges and/or the heuristic tagger."""
    from .annotate import annotate, tag_strategies
    from .io import load_traces

    if "tagger" in annotator and "strategies" in annotator:
        raise typer.BadParameter("'tagger' and 'strategies' both write label.strategies; pick one "
                                 "(compare them with `natural-thoughts tagger-agreement`)")
    judges = [a for a in annotator if a != "tagger"]
    if judges and model is None:
        raise typer.BadParameter(f"the LLM annotators {judges} need --model")
    ds = load_traces(path, preset=preset)
    if judges:
        ds = annotate(ds, judges, model=model, backend=backend, output_dir=output_dir,
                      sampling={"max_tokens": max_tokens})
    if "tagger" in annotator:
        ds = tag_strategies(ds)
    target = out or output_dir / "annotated.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(target))
    errors = {c: sum(v is not None for v in ds[c]) for c in ds.column_names
              if c.startswith("label.") and c.endswith(".error")}
    typer.echo(json.dumps({"rows": len(ds), "errors": errors, "output": str(target)}, indent=2))


@app.command("tagger-agreement")
def tagger_agreement_command(
    path: str = typer.Argument(..., help="Traces with an LLM annotator's strategy labels."),
    column: str = typer.Option("label.strategies", help="The column of the LLM strategy labels."),
    preset: Optional[str] = typer.Option(None, help="A loader preset."),
) -> None:
    """Report how well the model-free tagger matches an LLM annotator's strategy labels."""
    from .annotate import tagger_agreement
    from .io import load_traces

    typer.echo(json.dumps(tagger_agreement(load_traces(path, preset=preset), column=column), indent=2))


@app.command("generate")
def generate_command(
    problems: str = typer.Argument(..., help="A problems file, folder, glob or hub name."),
    model: str = typer.Option(..., help="The teacher: a hub name or local folder (the served name for openai)."),
    output_dir: Path = typer.Option(..., help="Shards + manifest; re-running the same command resumes."),
    backend: str = typer.Option("vllm", help="vllm (offline engine) or openai (an OpenAI-compatible server)."),
    n: int = typer.Option(1, help="Samples per problem."),
    preset: Optional[str] = typer.Option(None, help="A problems preset: natural_reasoning, gsm8k, math500."),
    limit: Optional[int] = typer.Option(None, help="Only the first LIMIT problems."),
    shard: Optional[str] = typer.Option(None, help="'i/N': this job's share of the problems (0-based)."),
    retry_failed: bool = typer.Option(False, help="Generate the error rows again."),
    extend: bool = typer.Option(False, help="Accept a raised --n: only the new samples are generated."),
    new_run: bool = typer.Option(False, help="OUTPUT_DIR holds another run: write to OUTPUT_DIR-<hash> instead."),
    batch_size: int = typer.Option(1024, help="Problems per engine call and per shard."),
    temperature: float = typer.Option(0.6),
    top_p: float = typer.Option(0.95),
    max_tokens: int = typer.Option(4096),
    seed: int = typer.Option(0),
    system_prompt: Optional[str] = typer.Option(None),
    prompt_template: str = typer.Option("{problem}", help="The user message; {problem} is replaced."),
    base_url: Optional[str] = typer.Option(None, help="openai: the server, e.g. http://host:8000/v1."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="openai: the environment variable holding the key."),
    max_concurrency: int = typer.Option(64, help="openai: requests open at once."),
    reasoning_parser: Optional[str] = typer.Option(None, help="vllm: a vLLM reasoning parser, e.g. deepseek_r1."),
    executor: str = typer.Option("local", help="local, or ray (one engine per Ray actor)."),
    chat_template_kwargs: Optional[str] = typer.Option(None, help='JSON, e.g. \'{"enable_thinking": true}\'.'),
    engine_kwargs: Optional[str] = typer.Option(None, help='vllm: JSON engine args, e.g. \'{"tensor_parallel_size": 4}\'.'),
    executor_kwargs: Optional[str] = typer.Option(None, help='ray: JSON, e.g. \'{"concurrency": 8, "num_gpus": 1}\'.'),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Generate traces for PROBLEMS into OUTPUT_DIR (resumable, shardable, errors kept as rows).

    Exits 1 when the engine cannot start or keeps dying, or when every trace is an error; 130 on Ctrl-C.
    """
    from .backends import EngineDiedError
    from .generate import generate
    from .io import load_problems

    ds = load_problems(problems, preset=preset)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    if backend == "openai":
        extra = {"base_url": base_url, "api_key_env": api_key_env, "max_concurrency": max_concurrency}
    else:
        extra = {"reasoning_parser": reasoning_parser} if reasoning_parser else {}
    try:
        _, summary = generate(
            ds, model=model, backend=backend, n=n, output_dir=output_dir, batch_size=batch_size,
            sampling={"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed},
            system_prompt=system_prompt, prompt_template=prompt_template, extend=extend, new_run=new_run,
            chat_template_kwargs=_json_option(chat_template_kwargs, "--chat-template-kwargs"),
            engine_kwargs=_json_option(engine_kwargs, "--engine-kwargs"), backend_kwargs=extra, shard=shard,
            retry_failed=retry_failed, executor=executor,
            executor_kwargs=_json_option(executor_kwargs, "--executor-kwargs"), return_summary=True,
        )
    except KeyboardInterrupt:
        _stop("interrupted", output_dir, INTERRUPTED)
    except EngineDiedError as exc:
        _stop(str(exc), output_dir, 1)
    typer.echo(json.dumps(summary.to_dict(), indent=2) if as_json else str(summary))
    if summary.all_failed:
        typer.echo("error: every trace is an error (see the kinds above); nothing usable was generated", err=True)
        raise typer.Exit(1)


@app.command("status")
def status_command(
    output_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A generate output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show a generation run's progress per shard and what is still missing."""
    from .runs import run_status

    status = run_status(output_dir)
    typer.echo(json.dumps(status.to_dict(), indent=2) if as_json else str(status))


@app.command("merge")
def merge_command(
    output_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A generate output folder."),
    dest: Path = typer.Argument(..., help="OUT.parquet, OUT.jsonl, or a folder (datasets save_to_disk)."),
    allow_incomplete: bool = typer.Option(False, help="Merge even when traces are still missing."),
) -> None:
    """Write a run's shards as one dataset (one row per problem and sample); the shards are kept."""
    from .runs import merge

    try:
        path = merge(output_dir, dest, allow_incomplete=allow_incomplete)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"merged {output_dir} into {path}")


def _json_option(text: Optional[str], name: str) -> Optional[dict]:
    """A JSON-object option, or a clear error naming the option."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{name} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{name} must be a JSON object, got {text!r}")
    return value


def _stop(reason: str, output_dir: Path, code: int) -> NoReturn:
    """Say why generation stopped, how far it got and the command that resumes it; exit with `code`."""
    from .runs import run_status

    try:
        status = run_status(output_dir)
        got = f"{status.done} of {status.expected} traces are written in {output_dir}"
    except FileNotFoundError:
        got = f"nothing was written to {output_dir}"
    typer.echo(f"{reason}: {got} (every finished shard is kept)", err=True)
    typer.echo(f"resume with: {shlex.join(['natural-thoughts', *sys.argv[1:]])}", err=True)
    raise typer.Exit(code)


def _print_summary(summary: dict) -> None:
    typer.echo(
        f"problems: {summary['problems']}  traces: {summary['traces']}  errors: {summary['errors']}  "
        f"selected: {summary['selected']}"
    )
    typer.echo(f"exported dataset: {summary['export_dir']}")
    if summary.get("card"):
        typer.echo(f"dataset card (with figures): {summary['card']}")
    if summary.get("stages"):
        typer.echo("stages: " + ", ".join(f"{k} {v}" for k, v in summary["stages"].items()))


if __name__ == "__main__":
    app()
