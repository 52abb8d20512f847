"""Commands over a traces file: `inspect` it, label it (`annotate`), check the tagger (`tagger-agreement`)
and a reasoning judge against step-labelled data (`judge-agreement`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..annotate import ANNOTATORS, DEFAULT_SAMPLING
from ..annotate.base import DEFAULT_MAX_CHARS
from ..pipeline import AnnotateConfig
from .core import app, default


@app.command()
def inspect(
    path: str = typer.Argument(..., help="A problems or traces file, folder or glob."),
    preset: Optional[str] = typer.Option(None, help="A loader preset, e.g. skythought_eval, gsm8k."),
) -> None:
    """Print rows, flag counts, reasoning-length quantiles and the answer-extraction rate (as JSON).

    Writes nothing."""
    from ..load.summary import summarize

    typer.echo(json.dumps(summarize(path, preset=preset), indent=2))


@app.command("annotate")
def annotate_command(
    path: str = typer.Argument(..., help="A traces file, folder or glob."),
    annotator: list[str] = typer.Option(..., "--annotator", "-a", help=f"{', '.join(ANNOTATORS.names())}, "
                                        "or tagger / reasoning_flags (model-free); repeat for several."),
    model: Optional[str] = typer.Option(None, help="The judge model: a hub name or a local folder."),
    backend: str = typer.Option(default(AnnotateConfig, "backend"), help="vllm or openai."),
    preset: Optional[str] = typer.Option(None, help="A loader preset, e.g. skythought_eval."),
    output_dir: Path = typer.Option(Path("runs/annotate"), help="Shards and manifests (re-running resumes)."),
    out: Optional[Path] = typer.Option(None, help="The labelled traces (parquet); "
                                       "default OUTPUT_DIR/annotated.parquet."),
    max_tokens: int = typer.Option(DEFAULT_SAMPLING["max_tokens"], help="Token cap of each judge reply."),
) -> None:
    """Add label.* columns to the traces at PATH with LLM judges and/or the heuristic tagger.

    Writes the judges' shards under OUTPUT_DIR and the labelled traces to --out
    (OUTPUT_DIR/annotated.parquet); prints the row and error counts."""
    from ..annotate import annotate, tag_strategies
    from ..load.sources import load_traces
    from ..steps import flag_reasoning

    if "tagger" in annotator and "strategies" in annotator:
        raise typer.BadParameter("'tagger' and 'strategies' both write label.strategies; pick one "
                                 "(compare them with `natural-thoughts tagger-agreement`)")
    model_free = ("tagger", "reasoning_flags")
    judges = [a for a in annotator if a not in model_free]
    if judges and model is None:
        raise typer.BadParameter(f"the LLM annotators {judges} need --model")
    ds = load_traces(path, preset=preset)
    if judges:
        ds = annotate(ds, judges, model=model, backend=backend, output_dir=output_dir,
                      sampling={"max_tokens": max_tokens})
    if "tagger" in annotator:
        ds = tag_strategies(ds)
    if "reasoning_flags" in annotator:
        ds = flag_reasoning(ds)
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
    """Report how well the model-free tagger matches an LLM annotator's strategy labels.

    Prints the report as JSON; writes nothing."""
    from ..annotate import tagger_agreement
    from ..load.sources import load_traces

    typer.echo(json.dumps(tagger_agreement(load_traces(path, preset=preset), column=column), indent=2))


@app.command("judge-agreement")
def judge_agreement_command(
    path: str = typer.Argument(..., help="A step-labelled JSON-lines file (MR-Ben, or ProcessBench-style rows)."),
    preset: str = typer.Option("mrben", help="How to read it: mrben or processbench."),
    judge: str = typer.Option("rule", help="rule (model-free flags) or llm (the `reasoning` annotator; "
                              "needs --model)."),
    model: Optional[str] = typer.Option(None, help="The judge model for --judge llm: a hub name or a local folder."),
    backend: str = typer.Option(default(AnnotateConfig, "backend"), help="vllm or openai."),
    output_dir: Path = typer.Option(Path("runs/judge-agreement"), help="The LLM judge's shards (re-running resumes)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N labelled rows."),
    max_tokens: int = typer.Option(DEFAULT_SAMPLING["max_tokens"], help="Token cap of each judge reply."),
    max_chars: int = typer.Option(DEFAULT_MAX_CHARS, help="Characters of question and steps shown to the judge."),
) -> None:
    """Report a reasoning judge's precision and recall for "the reasoning has an error" on labelled data.

    Prints the report as JSON; writes only the LLM judge's shards, under OUTPUT_DIR (--judge llm)."""
    from ..annotate import ReasoningJudge, judge_agreement

    if judge not in ("rule", "llm"):
        raise typer.BadParameter(f"--judge is rule or llm, not {judge!r}")
    if judge == "llm" and model is None:
        raise typer.BadParameter("--judge llm needs --model")
    options = {"output_dir": output_dir, "sampling": {"max_tokens": max_tokens},
               "annotator": ReasoningJudge(max_chars=max_chars)} if judge == "llm" else {}
    report = judge_agreement(path, preset=preset, judge=judge, model=model, backend=backend,  # type: ignore[arg-type]
                             limit=limit, **options)
    typer.echo(json.dumps(report, indent=2))
