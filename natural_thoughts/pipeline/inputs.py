"""The input stages: `problems` + `generate` (new traces from a teacher), or `traces` (made elsewhere)."""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..generate.runner import DEFAULT_BATCH_SIZE, DEFAULT_PROMPT_TEMPLATE
from ..load.weak import DEFAULT_JOIN, JoinKey
from ..parse import FORMATS as TRACE_FORMATS
from ..registry import yaml_keys
from ..schema import SamplingConfig
from ..llm.backends import DEFAULT_BACKEND
from .stage import Context, Kind, Stage, Workers, one_of, register_stage
from ..cache import files_fingerprint
from .stages import fingerprint

log = logging.getLogger(__name__)


class SourceFields(BaseModel):
    """Where rows come from: a path, glob, saved dataset or hub name; a preset or a column map; a split."""

    model_config = ConfigDict(extra="forbid")

    source: str
    preset: str | None = None
    columns: dict[str, str] | None = None
    split: str | None = None


@register_stage("problems", order=10)
class ProblemsConfig(Stage, SourceFields, Workers):
    """Where the question pool comes from, and its licence (for the card)."""

    kind: ClassVar[Kind] = "input"

    limit: int | None = Field(None, ge=0)
    license: str | None = None

    def apply(self, ctx: Context) -> None:
        from ..load.sources import load_problems

        problems = load_problems(self.source, preset=self.preset, columns=self.columns, split=self.split,
                                 executor=self.executor, num_proc=self.num_proc)
        if self.limit is not None:
            problems = problems.select(range(min(self.limit, len(problems))))
        ctx.problems = problems


@register_stage("generate", order=20)
class GenerateConfig(Stage):
    """The teacher and how it samples. `model: tiny` builds the local smoke model."""

    kind: ClassVar[Kind] = "input"

    model: str
    backend: str = DEFAULT_BACKEND
    n: int = Field(1, ge=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    system_prompt: str | None = None
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    """`{problem}`, or a jinja template with `{{ problem }}` (rendered in a sandbox)."""
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)

    @field_validator("prompt_template")
    @classmethod
    def _renders(cls, value: str) -> str:
        from ..llm.requests import check_prompt_template

        check_prompt_template(value)
        return value

    def apply(self, ctx: Context) -> None:
        """Generate into `<output_dir>/traces` (resumable shards); the key is the manifest + shards."""
        from ..generate.runner import generate

        if ctx.problems is None:
            raise ValueError("generate needs a `problems:` section")
        model, backend = self.teacher(ctx)
        root = ctx.out / "traces"
        ctx.traces, generated = generate(
            ctx.problems, model=model, backend=backend, n=self.n, sampling=self.sampling,
            chat_template_kwargs=self.chat_template_kwargs, system_prompt=self.system_prompt,
            prompt_template=self.prompt_template, output_dir=root, batch_size=self.batch_size,
            engine_kwargs=self.engine_kwargs, return_summary=True)
        ctx.status[self.section] = generated.outcome  # ran / reused / resumed, as it happened
        shards = [Path(f) for f in glob.glob(str(root / "**" / "*.parquet"), recursive=True)]
        ctx.key = fingerprint("generate", (root / "manifest.json").read_text(), files_fingerprint(shards, root))

    def teacher(self, ctx: Context) -> tuple[Any, Any]:
        """(model, backend): the engine passed to `run()`, the tiny smoke model, or `model`."""
        if ctx.engine is not None:
            return (None, ctx.engine) if hasattr(ctx.engine, "model_name") else (ctx.engine, self.backend)
        if self.model == "tiny":
            from ..tinymodel import SMOKE_MODEL_NOTE, build_tiny_model

            log.warning("using the %s", SMOKE_MODEL_NOTE)
            return str(build_tiny_model(ctx.out / "model")), self.backend
        return self.model, self.backend


class WeakConfig(SourceFields):
    """A weak model's responses in a second source, joined into `weak_answer` / `weak_model` by
    `problem_id` or by normalized `problem` text (see `natural_thoughts.attach_weak`)."""

    model: str | None = None
    on: JoinKey = DEFAULT_JOIN
    license: str | None = None
    """The file's licence, for the card's sources (its answers decide the selection, none is exported)."""

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        """YAML 1.1 reads a bare `on:` key as True: take it as `on`."""
        return yaml_keys(data)


@register_stage("traces", order=30)
class TracesConfig(Stage, SourceFields, Workers):
    """Traces made elsewhere (instead of `problems` + `generate`): any source `load_traces` reads."""

    kind: ClassVar[Kind] = "input"

    limit: int | None = Field(None, ge=0)
    model: str | None = None
    weak: WeakConfig | None = None
    license: str | None = None
    trace_format: Annotated[str, one_of(TRACE_FORMATS, "trace_format")] = "auto"
    max_tokens: int | None = Field(None, gt=0)

    def apply(self, ctx: Context) -> None:
        """Load (and join the weak responses); the key is these settings + the files' sizes and times."""
        from ..load.sources import load_traces
        from ..load.weak import attach_weak

        traces = load_traces(self.source, preset=self.preset, columns=self.columns, split=self.split,
                             model=self.model, trace_format=self.trace_format, max_tokens=self.max_tokens,
                             executor=self.executor, num_proc=self.num_proc)
        if self.weak is not None:
            traces = attach_weak(traces, **self.weak.model_dump(exclude={"license"}))
        if self.limit is not None:
            traces = traces.select(range(min(self.limit, len(traces))))
        ctx.traces = traces
        ctx.status[self.section] = "loaded"
        files = local_files(self.source) + (local_files(self.weak.source) if self.weak is not None else [])
        ctx.key = fingerprint("traces", self.settings(), files_fingerprint(files))


def local_files(source: str) -> list[Path]:
    """The local files behind a source (none for a hub name)."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [Path(f) for f in glob.glob(source, recursive=True) if Path(f).is_file()]
