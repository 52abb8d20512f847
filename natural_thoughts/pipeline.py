"""`run(config)`: load → generate → annotate → verify → score → select → export (+ mix + card).

Each stage writes under `output_dir/<stage>/` and is skipped when its output exists with the same
fingerprint (`stages.Stage`); generation resumes through its own shard manifest, and a change
upstream re-runs everything after it. Same config and seed → the same exported bytes.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset

from .config import (
    AnnotateConfig,
    CardConfig,
    ExportConfig,
    GenerateConfig,
    MixConfig,
    ProblemsConfig,
    RunConfig,
    ScoreConfig,
    SelectConfig,
    TracesConfig,
    VerifyConfig,
    as_config,
)
from .selectors.base import Selection
from .stages import (
    Stage,
    attach_columns,
    files_fingerprint,
    fingerprint,
    load_selection,
    save_columns,
    save_selection,
)

log = logging.getLogger(__name__)


def run(config: RunConfig | dict[str, Any] | str | Path, engine: Any = None) -> dict[str, Any]:
    """Run every stage of a config (a `RunConfig`, a dict or a YAML path); returns a summary
    (counts, paths, which stages ran or were reused), also written to `output_dir/summary.json`.

    `engine` is a ready `vllm.LLM` or `Backend` used for generation instead of loading
    `generate.model`, so a notebook or a test session loads the model once.
    """
    from .export import prepare_export, upload, write_splits
    from .mixing import mix

    cfg = as_config(config)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, str] = {}
    traces, key, n_problems = _input_stage(cfg, out, engine, stages)
    if cfg.annotate is not None:
        traces, key = _column_stage("annotate", cfg.annotate.model_dump(), traces, key, out, stages,
                                    lambda ds: _annotate(ds, cfg.annotate, out, engine))
    if cfg.verify is not None:
        traces, key = _column_stage("verify", cfg.verify.model_dump(), traces, key, out, stages,
                                    lambda ds: _verify(ds, cfg.verify))
    traces, key = _column_stage("score", cfg.score.model_dump(), traces, key, out, stages,
                                lambda ds: _score(ds, cfg.score))
    selection, key = _select_stage(cfg.select, traces, key, out, stages)

    folder = out / "export"
    card_config = _card_config(cfg)
    stage = Stage(folder, fingerprint("export", key, card_config, _library_version()))
    budget = selection.budget_warning()
    if budget and stages["select"] == "reused":  # a fresh selection already said so
        log.warning("%s", budget)
    if stage.done():
        stages["export"] = "reused"
        stats_info = stage.info()["stats"]
    else:
        stages["export"] = "ran"
        _require_rows(len(selection), selection, folder)
        subset = selection.subset()
        if cfg.mix is not None:
            subset = mix(subset, **cfg.mix.model_dump())
        e = cfg.export
        splits, stats = prepare_export(subset, e.format, e.system_prompt, e.think_tags, e.validation_fraction,
                                       e.seed, e.max_tokens, e.on_overlong, e.tokenizer)
        _require_rows(stats.rows_out, selection, folder, f"all {stats.rows_in} selected rows are over "
                      f"export.max_tokens={e.max_tokens}")
        stage.begin()  # only now is an earlier export removed
        stats.files = [p.name for p in write_splits(splits, folder, e.file_format)]
        if cfg.card.enabled:
            _write_card(cfg, folder, selection, stats, traces, card_config, out)
        if e.push_to_hub:
            upload(folder, e.push_to_hub, e.private)
        stats_info = stats.to_dict()
        stage.finish(stats=stats_info)
    summary = {
        "name": cfg.name,
        "problems": n_problems,
        "traces": len(traces),
        "errors": sum(e is not None for e in traces["error"]) if "error" in traces.column_names else 0,
        "selected": len(selection),
        "requested": selection.requested_k,
        "budget_warning": budget,
        "exported": stats_info["rows_out"],
        "splits": stats_info["splits"],
        "modes": stats_info["modes"],
        "selection": json.loads(json.dumps(selection.provenance(), default=str)),
        "export_dir": str(folder),
        "card": str(folder / "README.md") if (folder / "README.md").exists() else None,
        "stages": stages,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _require_rows(n: int, selection: Selection, folder: Path, why: str | None = None) -> None:
    """Stop, before an earlier export in `folder` is touched, when there is nothing to export."""
    if n:
        return
    steps = "; ".join(f"{s.name} kept {s.n_kept} of {s.n_in}" for s in selection.steps) or "no steps"
    raise ValueError(f"nothing to export: {why or 'the selection is empty'} ({steps}). Loosen the selector "
                     f"or check the pool; {folder} was left as it was.")


def _input_stage(cfg: RunConfig, out: Path, engine: Any, stages: dict[str, str]) -> tuple[Dataset, str, int]:
    """The trace set: generated from `problems` (resumable shards), or loaded from `traces`."""
    from .generate import generate
    from .io import load_problems, load_traces
    from .weak import attach_weak

    if cfg.traces is not None:
        t = cfg.traces
        traces = load_traces(t.source, preset=t.preset, columns=t.columns, split=t.split, model=t.model,
                             trace_format=t.trace_format, max_tokens=t.max_tokens)
        if t.weak is not None:
            traces = attach_weak(traces, **t.weak.model_dump())
        if t.limit is not None:
            traces = traces.select(range(min(t.limit, len(traces))))
        stages["traces"] = "loaded"
        files = _local_files(t.source) + (_local_files(t.weak.source) if t.weak is not None else [])
        key = fingerprint("traces", t.model_dump(), files_fingerprint(files))
        return traces, key, len(set(traces["problem_id"]))
    assert cfg.problems is not None and cfg.generate is not None
    p, g = cfg.problems, cfg.generate
    problems = load_problems(p.source, preset=p.preset, columns=p.columns, split=p.split)
    if p.limit is not None:
        problems = problems.select(range(min(p.limit, len(problems))))
    model, backend = _teacher(g, out, engine)
    traces, generated = generate(problems, model=model, backend=backend, n=g.n, sampling=g.sampling,
                                 chat_template_kwargs=g.chat_template_kwargs, system_prompt=g.system_prompt,
                                 prompt_template=g.prompt_template, output_dir=out / "traces",
                                 batch_size=g.batch_size, engine_kwargs=g.engine_kwargs, return_summary=True)
    stages["generate"] = generated.outcome  # ran / reused / resumed, as it happened
    root = out / "traces"
    shards = [Path(f) for f in glob.glob(str(root / "**" / "*.parquet"), recursive=True)]
    key = fingerprint("generate", (root / "manifest.json").read_text(), files_fingerprint(shards, root))
    return traces, key, len(problems)


def _teacher(g: GenerateConfig, out: Path, engine: Any) -> tuple[Any, Any]:
    """(model, backend) for `generate`: a passed engine, the tiny smoke model, or the configured name."""
    if engine is not None:
        return (None, engine) if hasattr(engine, "model_name") else (engine, g.backend)
    if g.model == "tiny":
        from .tinymodel import SMOKE_MODEL_NOTE, build_tiny_model

        log.warning("using the %s", SMOKE_MODEL_NOTE)
        return str(build_tiny_model(out / "model")), g.backend
    return g.model, g.backend


def _column_stage(name: str, settings: dict[str, Any], ds: Dataset, upstream: str, out: Path,
                  stages: dict[str, str], fn: Callable[[Dataset], Dataset]) -> tuple[Dataset, str]:
    """Run a column-adding stage, or join its stored columns when its fingerprint matches."""
    stage = Stage(out / name, fingerprint(name, upstream, settings))
    if stage.done():
        stages[name] = "reused"
        return attach_columns(ds, stage.folder, name), stage.key
    stages[name] = "ran"
    stage.begin(clear=False)
    after = fn(ds)
    cols = save_columns(ds, after, stage.folder, name)
    stage.finish(columns=cols)
    return attach_columns(ds, stage.folder, name), stage.key


def _select_stage(sel: SelectConfig, ds: Dataset, upstream: str, out: Path,
                  stages: dict[str, str]) -> tuple[Selection, str]:
    from .selectors import select

    stage = Stage(out / "select", fingerprint("select", upstream, sel.model_dump()))
    if stage.done():
        stages["select"] = "reused"
        return load_selection(ds, stage.folder), stage.key
    stages["select"] = "ran"
    stage.begin()
    selection = select(ds, sel.selector, k=sel.k, seed=sel.seed)
    save_selection(selection, stage.folder)
    stage.finish(selected=len(selection), pool=len(ds))
    return load_selection(ds, stage.folder), stage.key


def _annotate(ds: Dataset, a: AnnotateConfig, out: Path, engine: Any) -> Dataset:
    """The strategy tagger, then the LLM annotators (on `a.model`, else the run's engine)."""
    from .annotate import ANNOTATORS, annotate, tag_strategies

    if a.tagger:
        ds = tag_strategies(ds)
    if not a.annotators:
        return ds
    model: Any = a.model if a.model is not None else engine
    if model is None:
        raise ValueError("annotate.annotators need annotate.model (the judge model), or run(config, engine=...)")
    backend: Any = a.backend
    if a.model is None and hasattr(engine, "model_name"):
        model, backend = None, engine
    annotators: list[Any] = []
    for spec in a.annotators:
        if isinstance(spec, str):
            annotators.append(spec)
        else:
            annotators += [ANNOTATORS[name](**(params or {})) for name, params in spec.items()]
    return annotate(ds, annotators, model=model, backend=backend, sampling=a.sampling,
                    output_dir=out / "annotate" / "work", batch_size=a.batch_size,
                    engine_kwargs=a.engine_kwargs, chat_template_kwargs=a.chat_template_kwargs)


def _verify(ds: Dataset, v: VerifyConfig) -> Dataset:
    from .annotate import build_judge
    from .verify import verify

    return verify(ds, judge=build_judge(v.judge), **v.options)


def _score(ds: Dataset, s: ScoreConfig) -> Dataset:
    from .scores import add_reasoning_tokens

    tokenizer = s.tokenizer
    if tokenizer is None and "model" in ds.column_names and len(ds):
        local = [m for m in sorted(set(ds["model"])) if m and Path(m).is_dir()]
        tokenizer = local[0] if local else None
    return add_reasoning_tokens(ds, tokenizer=tokenizer, approximate=s.approximate)


def _local_files(source: str) -> list[Path]:
    """The local files behind a source (none for a hub name)."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [Path(f) for f in glob.glob(source, recursive=True) if Path(f).is_file()]


def _display(source: str) -> str:
    """A local path shown by its name (cards must not depend on where the run happened)."""
    return Path(source).name if Path(source).exists() else source


def _card_config(cfg: RunConfig) -> dict[str, Any]:
    """The config as the card shows it: no output folder, local sources by name."""
    data = cfg.model_dump(mode="json", exclude={"output_dir"}, exclude_none=True)
    for section in ("problems", "traces"):
        if section in data:
            data[section]["source"] = _display(data[section]["source"])
    return data


def _write_card(cfg: RunConfig, folder: Path, selection: Selection, stats: Any, pool: Dataset,
                card_config: dict[str, Any], out: Path) -> None:
    from .card import write_card

    inputs: list[tuple[str, ProblemsConfig | TracesConfig | None]] = [("problems", cfg.problems), ("traces", cfg.traces)]
    sources = [{"kind": kind, "source": _display(c.source), "preset": c.preset, "split": c.split, "license": c.license}
               for kind, c in inputs if c is not None]
    models: dict[str, Any] = {}
    notes: list[str] = []
    if cfg.generate is not None:
        models["teacher"] = cfg.generate.model
        models["teacher sampling"] = cfg.generate.sampling.model_dump()
        if cfg.generate.model == "tiny":
            from .tinymodel import SMOKE_MODEL_NOTE

            notes.append(f"the teacher is a {SMOKE_MODEL_NOTE}. This dataset only proves the pipeline runs.")
    elif "model" in pool.column_names:
        models["teacher"] = ", ".join(sorted({m for m in pool["model"] if m}))
    if cfg.annotate is not None:
        if cfg.annotate.tagger:
            models["strategy labels"] = "heuristic tagger (lexical markers, no model)"
        if cfg.annotate.annotators:
            models["LLM annotators"] = cfg.annotate.annotators
            models["annotation model"] = cfg.annotate.model or "(the run's engine)"
    if cfg.verify is not None:
        models["answer judge"] = cfg.verify.judge or "math-verify / normalized strings"
    manifests = {"generate": out / "traces" / "manifest.json"}
    for path in sorted((out / "annotate").glob("**/manifest*.json")):
        manifests[f"annotate/{path.relative_to(out / 'annotate').as_posix()}"] = path
    write_card(folder, cfg.name, selection, stats, pool=pool, make_figures=cfg.card.figures, config=card_config,
               sources=sources, models=models, manifests=manifests, notes=notes)


def _library_version() -> str:
    from .card import library_version

    return library_version()


__all__ = ["run", "RunConfig", "ProblemsConfig", "TracesConfig", "GenerateConfig", "AnnotateConfig",
           "VerifyConfig", "ScoreConfig", "SelectConfig", "MixConfig", "ExportConfig", "CardConfig"]
