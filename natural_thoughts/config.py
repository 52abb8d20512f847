"""The run configuration: pydantic models read from YAML, with clear errors.

Unknown keys are refused in every section; an unknown selector name lists the known ones.
A `traces:` section replaces `problems:` + `generate:` to curate traces made elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .schema import SamplingConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemsConfig(_Strict):
    """Where the question pool comes from, and its licence (for the card)."""

    source: str
    preset: str | None = None
    columns: dict[str, str] | None = None
    split: str | None = None
    limit: int | None = None
    license: str | None = None


class TracesConfig(_Strict):
    """Traces made elsewhere (instead of `problems` + `generate`): any source `load_traces` reads."""

    source: str
    preset: str | None = None
    columns: dict[str, str] | None = None
    split: str | None = None
    limit: int | None = None
    model: str | None = None
    license: str | None = None


class GenerateConfig(_Strict):
    """The teacher and how it samples. `model: tiny` builds the local smoke model."""

    model: str
    backend: str = "vllm"
    n: int = 1
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    system_prompt: str | None = None
    prompt_template: str = "{problem}"
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = 512


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
    k: int | None = None
    seed: int = 0

    @field_validator("selector")
    @classmethod
    def _known(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        from .selectors import get_selector

        get_selector(value)  # unknown names fail here, listing the known ones
        return value


class MixConfig(_Strict):
    """System-1 / System-2 mixing (see `mixing.mix`)."""

    mode: str = "random"
    p: float = 0.4
    column: str = "label.disagree"
    threshold: float | None = None
    harder: str = "higher"
    seed: int = 0
    instructions: str | dict[str, str] | None = None


class ExportConfig(_Strict):
    """The training format, file layout, split and token cap of the subset (see `export.export`)."""

    format: str = "messages"
    file_format: str = "parquet"
    system_prompt: str | None = None
    think_tags: tuple[str, str] = ("<think>", "</think>")
    validation_fraction: float = 0.0
    seed: int = 0
    max_tokens: int | None = None
    on_overlong: str = "drop"
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
        for section in ("problems", "traces"):
            source = (data.get(section) or {}).get("source")
            if isinstance(source, str) and (Path(path).parent / source).exists():
                data[section]["source"] = str(Path(path).parent / source)
        return cls.model_validate(data)


def as_config(config: RunConfig | dict[str, Any] | str | Path) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.model_validate(config)
    return RunConfig.from_yaml(config)
