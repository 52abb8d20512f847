"""`RunConfig` (pydantic, YAML) and `run()`: load → generate → score → select → export."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .schema import SamplingConfig

log = logging.getLogger(__name__)


class ProblemsConfig(BaseModel):
    """Where the question pool comes from."""

    model_config = ConfigDict(extra="forbid")
    source: str
    preset: str | None = None
    columns: dict[str, str] | None = None
    split: str | None = None
    limit: int | None = None


class GenerateConfig(BaseModel):
    """The teacher and how it samples. `model: tiny` builds the local smoke model."""

    model_config = ConfigDict(extra="forbid")
    model: str
    backend: str = "vllm"
    n: int = 1
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    system_prompt: str | None = None
    prompt_template: str = "{problem}"
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = 512


class ScoreConfig(BaseModel):
    """How reasoning length is counted when the engine did not count it."""

    model_config = ConfigDict(extra="forbid")
    tokenizer: str | None = None
    approximate: bool = False


class SelectConfig(BaseModel):
    """A selector spec (a name or {name: params}, resolved through the registry) and its budget."""

    model_config = ConfigDict(extra="forbid")
    selector: str | dict[str, Any] = "Random"
    k: int | None = None
    seed: int = 0

    @field_validator("selector")
    @classmethod
    def _known(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        from .selectors import get_selector

        get_selector(value)  # unknown names fail here, listing the known ones
        return value


class ExportConfig(BaseModel):
    """The training format and file layout of the subset."""

    model_config = ConfigDict(extra="forbid")
    format: str = "messages"
    file_format: str = "parquet"
    system_prompt: str | None = None


class RunConfig(BaseModel):
    """A whole run, as written in YAML. `output_dir` holds every stage's output."""

    model_config = ConfigDict(extra="forbid")
    name: str = "run"
    output_dir: str = "runs/run"
    problems: ProblemsConfig
    generate: GenerateConfig
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML config; a relative problem source is found beside the file first."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        source = (data.get("problems") or {}).get("source")
        if isinstance(source, str) and (Path(path).parent / source).exists():
            data["problems"]["source"] = str(Path(path).parent / source)
        return cls.model_validate(data)


def run(config: RunConfig | dict[str, Any] | str | Path) -> dict[str, Any]:
    """Run every stage from a config; returns a summary (paths and counts) also written as JSON.

    Generation resumes from its shards, so an interrupted run picks up where it stopped.
    """
    from .export import export
    from .generate import generate
    from .io import load_problems
    from .scores import add_reasoning_tokens
    from .selectors import select

    cfg = _as_config(config)
    out = Path(cfg.output_dir)
    problems = load_problems(cfg.problems.source, preset=cfg.problems.preset,
                             columns=cfg.problems.columns, split=cfg.problems.split)
    if cfg.problems.limit is not None:
        problems = problems.select(range(min(cfg.problems.limit, len(problems))))
    g = cfg.generate
    model: Any = g.model
    if g.model == "tiny":
        from .tinymodel import SMOKE_MODEL_NOTE, build_tiny_model

        model = str(build_tiny_model(out / "model"))
        log.warning("using the %s", SMOKE_MODEL_NOTE)
    traces = generate(problems, model=model, backend=g.backend, n=g.n, sampling=g.sampling,
                      chat_template_kwargs=g.chat_template_kwargs, system_prompt=g.system_prompt,
                      prompt_template=g.prompt_template, output_dir=out / "traces",
                      batch_size=g.batch_size, engine_kwargs=g.engine_kwargs)
    traces = add_reasoning_tokens(traces, tokenizer=cfg.score.tokenizer or _local_tokenizer(model),
                                  approximate=cfg.score.approximate)
    selection = select(traces, cfg.select.selector, k=cfg.select.k, seed=cfg.select.seed)
    export_dir = out / "export"
    export(selection, export_dir, format=cfg.export.format, file_format=cfg.export.file_format,
           system_prompt=cfg.export.system_prompt)
    summary = {
        "config": json.loads(cfg.model_dump_json()),
        "problems": len(problems),
        "traces": len(traces),
        "errors": sum(e is not None for e in traces["error"]),
        "selected": len(selection),
        "selection": selection.provenance(),
        "export_dir": str(export_dir),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _local_tokenizer(model: Any) -> str | None:
    """The model folder, when it is local, so token counts never need the network."""
    return str(model) if isinstance(model, str) and Path(model).exists() else None


def _as_config(config: RunConfig | dict[str, Any] | str | Path) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.model_validate(config)
    return RunConfig.from_yaml(config)
