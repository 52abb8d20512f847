"""The run configuration: pydantic models read from YAML, with clear errors.

Unknown keys are refused in every section; an unknown selector name lists the known ones.
A `traces:` section replaces `problems:` + `generate:` to curate traces made elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .export import FILE_FORMATS, ON_OVERLONG, THINK_TAGS
from .export import FORMATS as EXPORT_FORMATS
from .mixing import HARDER, MIX_MODES
from .parse import FORMATS as TRACE_FORMATS
from .schema import SamplingConfig
from .weak import DEFAULT_JOIN, JoinKey


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemsConfig(_Strict):
    """Where the question pool comes from, and its licence (for the card)."""

    source: str
    preset: str | None = None
    columns: dict[str, str] | None = None
    split: str | None = None
    limit: int | None = Field(None, ge=0)
    license: str | None = None


class WeakConfig(_Strict):
    """A weak model's responses in a second source, joined into `weak_answer` / `weak_model` by
    `problem_id` or by normalized `problem` text (see `natural_thoughts.attach_weak`)."""

    source: str
    preset: str | None = None
    columns: dict[str, str] | None = None
    split: str | None = None
    model: str | None = None
    on: JoinKey = DEFAULT_JOIN

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        """YAML 1.1 reads a bare `on:` key as True: take it as `on`."""
        from .selectors.base import normalize_spec

        return normalize_spec(data) if isinstance(data, dict) else data


class TracesConfig(_Strict):
    """Traces made elsewhere (instead of `problems` + `generate`): any source `load_traces` reads."""

    source: str
    preset: str | None = None
    columns: dict[str, str] | None = None
    split: str | None = None
    limit: int | None = Field(None, ge=0)
    model: str | None = None
    weak: WeakConfig | None = None
    license: str | None = None
    trace_format: Annotated[str, _one_of(TRACE_FORMATS, "trace_format")] = "auto"
    max_tokens: int | None = Field(None, gt=0)


class GenerateConfig(_Strict):
    """The teacher and how it samples. `model: tiny` builds the local smoke model."""

    model: str
    backend: str = "vllm"
    n: int = Field(1, ge=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    system_prompt: str | None = None
    prompt_template: str = "{problem}"
    """`{problem}`, or a jinja template with `{{ problem }}` (rendered in a sandbox)."""
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(512, ge=1)

    @field_validator("prompt_template")
    @classmethod
    def _renders(cls, value: str) -> str:
        from .trace_rows import check_prompt_template

        check_prompt_template(value)
        return value


class AnnotateConfig(_Strict):
    """Labels as `label.*` columns: the model-free strategy `tagger` and/or LLM `annotators` (names
    from `annotate.ANNOTATORS`, or {name: params}) asked of `model` (default: the run's engine)."""

    tagger: bool = False
    annotators: list[str | dict[str, dict[str, Any]]] = Field(default_factory=list)
    model: str | None = None
    backend: str = "vllm"
    sampling: dict[str, Any] | None = None
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = 256

    @field_validator("annotators")
    @classmethod
    def _known(cls, value: list[str | dict[str, dict[str, Any]]]) -> list[str | dict[str, dict[str, Any]]]:
        from .annotate import ANNOTATORS

        for spec in value:
            names = [spec] if isinstance(spec, str) else list(spec)
            for name in names:
                if name not in ANNOTATORS:
                    raise ValueError(f"unknown annotator {name!r}; known annotators: {sorted(ANNOTATORS)}")
        return value

    @model_validator(mode="after")
    def _something(self) -> AnnotateConfig:
        if not self.tagger and not self.annotators:
            raise ValueError("annotate needs `tagger: true` and/or a list of `annotators`")
        return self


class VerifyConfig(_Strict):
    """Answer checking into `label.correct` (`judge` None: math-verify / normalized strings)."""

    judge: str | dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class ScoreConfig(_Strict):
    """How reasoning length is counted when the engine did not count it."""

    tokenizer: str | None = None
    approximate: bool = False


class SelectConfig(_Strict):
    """A selector spec (a name or {name: params}, resolved through the registry) and its budget."""

    selector: str | dict[str, Any] = "Random"
    k: int | None = Field(None, ge=0)
    seed: int = Field(0, ge=0)

    @field_validator("selector")
    @classmethod
    def _known(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        from .selectors.base import get_selector, normalize_spec

        get_selector(value).check_params()  # unknown names and bad parameters fail here, before any stage
        return normalize_spec(value)  # YAML 1.1 reads a bare `on:` key as True


def _one_of(allowed: tuple[str, ...], what: str) -> AfterValidator:
    """A field check: the value is one of `allowed`, else an error listing them."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; choose one of {list(allowed)}")
        return value

    return AfterValidator(check)


class MixConfig(_Strict):
    """System-1 / System-2 mixing (see `mixing.mix`)."""

    mode: Annotated[str, _one_of(MIX_MODES, "mix mode")] = "random"
    p: float = Field(0.4, ge=0, le=1)
    column: str = "label.disagree"
    threshold: float | None = None
    harder: Annotated[str, _one_of(HARDER, "harder")] = "higher"
    seed: int = Field(0, ge=0)
    instructions: str | dict[str, str] | None = None


class ExportConfig(_Strict):
    """The training format, file layout, split and token cap of the subset (see `export.export`)."""

    format: Annotated[str, _one_of(EXPORT_FORMATS, "export format")] = "messages"
    file_format: Annotated[str, _one_of(FILE_FORMATS, "file format")] = "parquet"
    system_prompt: str | None = None
    think_tags: tuple[str, str] = THINK_TAGS
    validation_fraction: float = Field(0.0, ge=0, lt=1)
    seed: int = Field(0, ge=0)
    max_tokens: int | None = Field(None, gt=0)
    on_overlong: Annotated[str, _one_of(ON_OVERLONG, "on_overlong")] = "drop"
    tokenizer: str | None = None
    push_to_hub: str | None = None
    private: bool = True


class CardConfig(_Strict):
    """The dataset card written beside the export."""

    enabled: bool = True
    figures: bool = True


class RunConfig(_Strict):
    """A whole run, as written in YAML. `output_dir` holds every stage's output."""

    name: str = "run"
    output_dir: str = "runs/run"
    problems: ProblemsConfig | None = None
    generate: GenerateConfig | None = None
    traces: TracesConfig | None = None
    annotate: AnnotateConfig | None = None
    verify: VerifyConfig | None = None
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    mix: MixConfig | None = None
    export: ExportConfig = Field(default_factory=ExportConfig)
    card: CardConfig = Field(default_factory=CardConfig)

    @model_validator(mode="after")
    def _one_input(self) -> RunConfig:
        generating = self.problems is not None or self.generate is not None
        if self.traces is not None and generating:
            raise ValueError("give either `traces:` (curate existing traces) or `problems:` + `generate:`, not both")
        if self.traces is None and (self.problems is None or self.generate is None):
            raise ValueError("a run needs `problems:` and `generate:` (or `traces:` to curate existing traces)")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML config; a relative source is found beside the file first."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a run config is a mapping of sections (name:, traces:, select:, …), "
                             f"not a {type(data).__name__}")
        traces = data.get("traces") or {}
        for section in (data.get("problems"), traces, traces.get("weak") if isinstance(traces, dict) else None):
            source = section.get("source") if isinstance(section, dict) else None
            if isinstance(source, str) and (Path(path).parent / source).exists():
                section["source"] = str(Path(path).parent / source)
        return cls.model_validate(data)


def as_config(config: RunConfig | dict[str, Any] | str | Path) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.model_validate(config)
    return RunConfig.from_yaml(config)
