"""Teacher passes, each resumable from its shards: `generate` traces, `guide` rollouts, `refine` chains of thought."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer

from ..pipeline import GenerateConfig
from ..pipeline.guide import GuideConfig
from ..pipeline.refine import RefineConfig
from ..schema import SamplingConfig
from .core import INTERRUPTED, app, default

SAMPLING = SamplingConfig()
"""The teacher's default sampling, as `generate:` sections and `generate()` use it."""


@app.command("generate")
def generate_command(
    problems: str = typer.Argument(..., help="A problems file, folder, glob or hub name."),
    model: str = typer.Option(..., help="The teacher: a hub name or local folder (the served name for openai)."),
    output_dir: Path = typer.Option(..., help="Shards + manifest; re-running the same command resumes."),
    backend: str = typer.Option(default(GenerateConfig, "backend"),
                                help="vllm (offline engine) or openai (an OpenAI-compatible server)."),
    n: int = typer.Option(default(GenerateConfig, "n"), help="Samples per problem."),
    preset: Optional[str] = typer.Option(None, help="A problems preset: natural_reasoning, gsm8k, math500."),
    limit: Optional[int] = typer.Option(None, help="Only the first LIMIT problems."),
    shard: Optional[str] = typer.Option(None, help="'i/N': this job's share of the problems (0-based)."),
    retry_failed: bool = typer.Option(False, help="Generate the error rows again."),
    extend: bool = typer.Option(False, help="Accept a raised --n: only the new samples are generated."),
    new_run: bool = typer.Option(False, help="OUTPUT_DIR holds another run: write to OUTPUT_DIR-<hash> instead."),
    batch_size: int = typer.Option(default(GenerateConfig, "batch_size"),
                                   help="Problems per engine call and per shard."),
    temperature: float = typer.Option(SAMPLING.temperature),
    top_p: float = typer.Option(SAMPLING.top_p),
    max_tokens: int = typer.Option(SAMPLING.max_tokens),
    seed: int = typer.Option(SAMPLING.seed),
    system_prompt: Optional[str] = typer.Option(default(GenerateConfig, "system_prompt")),
    prompt_template: str = typer.Option(default(GenerateConfig, "prompt_template"),
                                        help="The user message; {problem} is replaced."),
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

    Writes parquet shards and manifest.json under OUTPUT_DIR (`merge` joins them into one file).
    Exits 1 when the engine cannot start or keeps dying, or when every trace is an error; 130 on Ctrl-C.
    """
    from ..generate.runner import generate
    from ..llm.backends import EngineDiedError
    from ..load.sources import load_problems

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


@app.command("guide")
def guide_command(
    path: str = typer.Argument(..., help="A traces file, folder or glob (the student's rollouts)."),
    model: str = typer.Option(..., help="The teacher: a hub name or local folder (the served name for openai)."),
    backend: str = typer.Option(default(GuideConfig, "backend"), help="vllm or openai."),
    fraction: float = typer.Option(default(GuideConfig, "fraction"),
                                   help="Share of each problem's complete rollouts to guide (at least one)."),
    seed: int = typer.Option(default(GuideConfig, "seed"), help="Seeds the choice of rollouts."),
    max_tokens: int = typer.Option(default(GuideConfig, "max_tokens"), help="Token cap of each teacher reply."),
    preset: Optional[str] = typer.Option(None, help="A loader preset, e.g. skythought_eval."),
    output_dir: Path = typer.Option(Path("runs/guide"), help="Teacher replies: shards, manifest (re-run resumes)."),
    out: Optional[Path] = typer.Option(None, help="The guided traces (parquet); default OUTPUT_DIR/guided.parquet."),
    engine_kwargs: Optional[str] = typer.Option(None, help='vllm: JSON engine args, e.g. \'{"max_model_len": 8192}\'.'),
) -> None:
    """Splice a teacher's ThinkTuning feedback into a share of the complete rollouts at PATH.

    Writes the teacher's replies as shards under OUTPUT_DIR and the guided traces to --out
    (OUTPUT_DIR/guided.parquet)."""
    from ..guide import guide
    from ..load.sources import load_traces

    ds = guide(load_traces(path, preset=preset), model=model, backend=backend, fraction=fraction, seed=seed,
               max_tokens=max_tokens, output_dir=output_dir,
               engine_kwargs=_json_option(engine_kwargs, "--engine-kwargs"))
    target = out or output_dir / "guided.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(target))
    count = {c: sum(bool(v) for v in ds[f"guidance.{c}"]) for c in ("chosen", "valid", "correct")}
    typer.echo(json.dumps({"rows": len(ds), **count, "output": str(target)}, indent=2))


@app.command("refine")
def refine_command(
    path: str = typer.Argument(..., help="A traces file, folder or glob (the chains of thought to refine)."),
    model: str = typer.Option(..., help="The model that rewrites: a hub name or local folder (the served name for openai)."),
    refine_pass: list[str] = typer.Option(..., "--pass", "-p", help="rewrite_long, edit[:TIMES] or structure, in "
                                          "order; repeat for several (e.g. --pass rewrite_long --pass edit:2)."),
    backend: str = typer.Option(default(RefineConfig, "backend"), help="vllm or openai."),
    base_url: Optional[str] = typer.Option(None, help="openai: the server, e.g. http://host:8000/v1."),
    keep: str = typer.Option(default(RefineConfig, "keep"), help="final (the last stage's rows) or all (every stage's)."),
    batch_size: int = typer.Option(default(RefineConfig, "batch_size"), help="Traces per engine call and per shard."),
    temperature: float = typer.Option(SAMPLING.temperature),
    top_p: float = typer.Option(SAMPLING.top_p),
    max_tokens: int = typer.Option(SAMPLING.max_tokens),
    seed: int = typer.Option(SAMPLING.seed),
    preset: Optional[str] = typer.Option(None, help="A loader preset, e.g. skythought_eval."),
    output_dir: Path = typer.Option(Path("runs/refine"), help="One shard folder per stage (re-running resumes)."),
    out: Optional[Path] = typer.Option(None, help="The refined traces (parquet); default OUTPUT_DIR/refined.parquet."),
    engine_kwargs: Optional[str] = typer.Option(None, help='vllm: JSON engine args, e.g. \'{"max_model_len": 32768}\'.'),
) -> None:
    """Refine the chains of thought at PATH pass by pass (arXiv 2507.09850), keeping each row's lineage;
    prints the per-stage length and answer report.

    Writes one shard folder per stage under OUTPUT_DIR and the refined traces to --out
    (OUTPUT_DIR/refined.parquet)."""
    from ..load.sources import load_traces
    from ..refine import refine

    passes = [{kind: {"times": int(times)}} if times else kind
              for kind, _, times in (spec.partition(":") for spec in refine_pass)]
    ds, report = refine(
        load_traces(path, preset=preset), passes, model=model, backend=backend, output_dir=output_dir,
        sampling={"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed},
        batch_size=batch_size, keep=keep, engine_kwargs=_json_option(engine_kwargs, "--engine-kwargs"),  # type: ignore[arg-type]
        backend_kwargs={"base_url": base_url} if base_url else None, return_report=True)
    target = out or output_dir / "refined.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(target))
    typer.echo(report.to_string(index=False))
    typer.echo(f"refined traces ({len(ds)} rows): {target}")


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
    from ..llm.status import run_status

    try:
        status = run_status(output_dir)
        got = f"{status.done} of {status.expected} traces are written in {output_dir}"
    except FileNotFoundError:
        got = f"nothing was written to {output_dir}"
    typer.echo(f"{reason}: {got} (every finished shard is kept)", err=True)
    typer.echo(f"resume with: {shlex.join(['natural-thoughts', *sys.argv[1:]])}", err=True)
    raise typer.Exit(code)
