"""`run(config)`: the registered stages of one config, applied in order, each resumable under `output_dir`.

A stage is one class (`Stage`, or `ColumnStage` for one that adds columns) whose fields are its YAML
section, registered with `register_stage(section, order)`.
"""

from .config import (AnnotateConfig, CardConfig, ExportConfig, GenerateConfig, MixConfig, ProblemsConfig, RunConfig,
                     ScoreConfig, SelectConfig, TracesConfig, VerifyConfig)
from .runner import run
from .stage import STAGES, ColumnStage, Context, Stage, register_stage

__all__ = ["run", "RunConfig", "ProblemsConfig", "TracesConfig", "GenerateConfig", "AnnotateConfig",
           "VerifyConfig", "ScoreConfig", "SelectConfig", "MixConfig", "ExportConfig", "CardConfig",
           "Stage", "ColumnStage", "Context", "STAGES", "register_stage"]
