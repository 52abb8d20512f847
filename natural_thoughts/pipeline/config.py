"""The run configuration: `name`, `output_dir`, and one section per registered stage, read from YAML.

Each section is validated by its stage class (unknown keys refused, naming them); an unknown section,
selector, annotator or format name lists the known ones. A `traces:` section replaces `problems:` +
`generate:` to curate traces made elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .columns import AnnotateConfig, ScoreConfig, VerifyConfig
from .guide import GuideConfig  # noqa: F401  (registers the `guide:` stage)
from .inputs import GenerateConfig, ProblemsConfig, TracesConfig, WeakConfig
from .outputs import CardConfig, ExportConfig, MixConfig, SelectConfig
from .refine import RefineConfig  # noqa: F401  (registers the `refine:` stage)
from .stage import STAGES, Stage, registered

__all__ = ["RunConfig", "as_config", "ProblemsConfig", "TracesConfig", "WeakConfig", "GenerateConfig",
           "AnnotateConfig", "VerifyConfig", "ScoreConfig", "SelectConfig", "MixConfig", "ExportConfig",
           "CardConfig"]


class RunConfig(BaseModel):
    """A whole run, as written in YAML. `output_dir` holds every stage's output; every registered
    stage is an attribute (None when its section is absent, unless the stage is always present)."""

    model_config = ConfigDict(extra="allow")

    name: str = "run"
    output_dir: str = "runs/run"

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        """Each section validated by its stage class; errors keep their `section.field` location."""
        if not isinstance(data, dict):
            return data
        out = {k: v for k, v in data.items() if k in cls.model_fields}
        errors: list[InitErrorDetails] = []
        for key in (k for k in data if k not in cls.model_fields):
            try:
                STAGES.get(key)
            except ValueError as exc:
                errors.append(InitErrorDetails(type=PydanticCustomError("unknown_section", str(exc)),
                                               loc=(key,), input=data[key]))
        for stage in registered():
            value = data.get(stage.section)
            if value is None:
                out[stage.section] = stage() if stage.always else None
                continue
            try:
                out[stage.section] = stage.model_validate(value)
            except ValidationError as exc:
                errors += [InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"]),
                                            loc=(stage.section, *e["loc"]), input=e["input"]) for e in exc.errors()]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return out

    @model_validator(mode="after")
    def _one_input(self) -> RunConfig:
        generating = self.problems is not None or self.generate is not None
        if self.traces is not None and generating:
            raise ValueError("give either `traces:` (curate existing traces) or `problems:` + `generate:`, not both")
        if self.traces is None and (self.problems is None or self.generate is None):
            raise ValueError("a run needs `problems:` and `generate:` (or `traces:` to curate existing traces)")
        return self

    def stages(self) -> list[Stage]:
        """The stages this run holds, in run order."""
        return [s for cls in registered() if isinstance(s := getattr(self, cls.section, None), Stage)]

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML config; a relative source is found beside the file first."""
        return cls.model_validate(read_config_file(path, "a run config is a mapping of sections (name:, traces:, "
                                                         "select:, …)"))


def read_config_file(path: str | Path, shape: str) -> dict[str, Any]:
    """A YAML config file as a dict (`shape` says what it should be when it is not a mapping); a
    relative `source` of `problems`, `traces` or `traces.weak` is found beside the file first."""
    raw = Path(path).read_bytes()
    try:
        data = yaml.safe_load(raw.decode("utf-8")) or {}
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); save "
                         "the file as UTF-8") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {shape}, not a {type(data).__name__}")
    traces = data.get("traces") or {}
    for section in (data.get("problems"), traces, traces.get("weak") if isinstance(traces, dict) else None):
        source = section.get("source") if isinstance(section, dict) else None
        if isinstance(source, str) and (Path(path).parent / source).exists():
            section["source"] = str(Path(path).parent / source)
    return data


def as_config(config: RunConfig | dict[str, Any] | str | Path) -> RunConfig:
    """A `RunConfig` from itself, a dict of sections or a YAML path."""
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.model_validate(config)
    return RunConfig.from_yaml(config)
