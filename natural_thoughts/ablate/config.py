"""The ablation configuration: one pool (the run config's `traces`/`annotate`/`verify`/`score`
sections), named selections × budgets, and how each cell is exported and compared."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..embed import DEFAULT_MODEL
from ..pipeline import AnnotateConfig, ExportConfig, ScoreConfig, TracesConfig, VerifyConfig
from ..pipeline.config import read_config_file
from ..registry import Spec, yaml_keys

DEFAULT_CLUSTERS = 20
"""Question-embedding clusters the report's cluster entropy is measured over."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+]*$")


class ReportConfig(BaseModel):
    """How cells are compared: k-means `n_clusters` over the problems embedded by `model`, seeded."""

    model_config = ConfigDict(extra="forbid")

    n_clusters: int = Field(DEFAULT_CLUSTERS, ge=1)
    model: str = DEFAULT_MODEL
    seed: int = Field(0, ge=0)
    figures: bool = True


class AblateConfig(BaseModel):
    """Selections × budgets on one pool. Each cell is `prefilter` steps then the selection (a
    `Sequential` when there are prefilter steps; the budget `k` goes to the last step), written to
    `output_dir/cells/<selection>-<budget>/`."""

    model_config = ConfigDict(extra="forbid")

    name: str = "ablate"
    output_dir: str = "runs/ablate"
    traces: TracesConfig
    annotate: AnnotateConfig | None = None
    verify: VerifyConfig | None = None
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    prefilter: list[Spec] = Field(default_factory=list)
    """Steps every selection runs first (e.g. DropFlags, Correct), so all cells draw from one filtered pool."""
    selections: dict[str, Spec]
    """Cell name → selector spec (`Random`, `{Long: {C: auto}}`), in report order."""
    budgets: list[int] = Field(min_length=1)
    seed: int = Field(0, ge=0)
    export: ExportConfig = Field(default_factory=ExportConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("prefilter", mode="before")
    @classmethod
    def _prefilter_keys(cls, value: Any) -> Any:
        return yaml_keys(value)

    @field_validator("selections", mode="before")
    @classmethod
    def _selection_keys(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare `on:` key as True: take it back as `on`, inside every spec."""
        if isinstance(value, dict):
            return {name: yaml_keys(spec) for name, spec in value.items()}
        return value

    @field_validator("selections")
    @classmethod
    def _known(cls, value: dict[str, Spec]) -> dict[str, Spec]:
        if not value:
            raise ValueError("selections needs at least one {name: selector spec}")
        for name, spec in value.items():
            if not _SAFE_NAME.match(name):
                raise ValueError(f"selection name {name!r} becomes a folder name: use letters, digits, _ . +")
            cell_selector([], spec)
        return value

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value: list[int]) -> list[int]:
        if any(b < 1 for b in value) or len(set(value)) != len(value):
            raise ValueError(f"budgets must be distinct positive sizes, got {value}")
        return value

    @model_validator(mode="after")
    def _local_pool(self) -> AblateConfig:
        for spec in self.prefilter:
            cell_selector([spec], "Random")
        if self.annotate is not None and self.annotate.annotators:
            raise ValueError("ablate prepares its pool with the strategy tagger only (`annotate: {tagger: true}`); "
                             "for LLM annotators, annotate with `natural-thoughts annotate` first and point "
                             "`traces.source` at its output")
        if self.export.push_to_hub:
            raise ValueError("ablate writes its cells locally; export.push_to_hub is not supported here")
        return self

    def cells(self) -> list[tuple[str, str, int]]:
        """(cell name, selection name, budget) of every cell, selections outer, budgets inner."""
        return [(f"{name}-{budget}", name, budget) for name in self.selections for budget in self.budgets]

    @classmethod
    def from_yaml(cls, path: str | Path) -> AblateConfig:
        """Read and validate a YAML file; a relative source is found beside the file first."""
        return cls.model_validate(read_config_file(path, "an ablate config is a mapping (traces:, selections:, "
                                                         "budgets:, …)"))


def cell_selector(prefilter: list[Spec], spec: Spec) -> Any:
    """The selector of a cell: `spec` alone, or `Sequential(prefilter + [spec])`; checked without data."""
    from ..selectors import Sequential, get_selector

    steps = [get_selector(s).check_params() for s in [*prefilter, spec]]
    return steps[0] if len(steps) == 1 else Sequential(steps=steps)


def as_config(config: AblateConfig | dict[str, Any] | str | Path) -> AblateConfig:
    """An `AblateConfig` from itself, a dict or a YAML path."""
    return AblateConfig.from_yaml(config) if isinstance(config, (str, Path)) else AblateConfig.model_validate(config)
