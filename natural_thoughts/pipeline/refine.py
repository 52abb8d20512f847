"""The `refine` stage: CoT refinement passes (`natural_thoughts.refine.refine`) over the traces of
the input stages, before any labelling. It replaces the rows (the last stage's, or every stage's),
so it is an input stage run after `traces`/`generate`, not a column stage."""

from __future__ import annotations

import shutil
from typing import Any, ClassVar

from datasets import load_from_disk
from pydantic import Field, field_validator

from ..llm.runner import BATCH_SIZE
from ..refine.passes import DEFAULT_PASSES, expand
from ..refine.runner import DEFAULT_KEEP, Keep
from ..registry import Spec
from ..schema import SamplingConfig
from ..llm.backends import DEFAULT_BACKEND
from .stage import Context, Kind, Stage, register_stage
from .stages import StageFolder, fingerprint


@register_stage("refine", order=35)
class RefineConfig(Stage):
    """`refine()`'s parameters: the `passes` in order (default: all three kinds), the `model` that rewrites (default: the engine
    passed to `run()`) on `backend`, its sampling, and which rows go on (`keep`: final | all).

    Stored under `<output_dir>/refine/`: each stage's resumable shards in `work/`, the rows that go
    on in `traces/` (reused while the upstream key and these fields hold), the per-stage report in
    the done-marker."""

    kind: ClassVar[Kind] = "input"

    passes: list[Spec] = DEFAULT_PASSES
    model: str | None = None
    backend: str = DEFAULT_BACKEND
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    keep: Keep = DEFAULT_KEEP
    batch_size: int = Field(BATCH_SIZE, ge=1)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    backend_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("passes")
    @classmethod
    def _known(cls, value: list[Spec]) -> list[Spec]:
        expand(value)  # unknown passes and bad parameters fail here, before any stage
        return value

    def settings(self) -> dict[str, Any]:
        """The fields and each stage's prompt hash (a replacement prompt file edited in place re-runs)."""
        return {**self.model_dump(), "prompts": [s.refine_pass.prompt_sha256 for s in expand(self.passes)]}

    def apply(self, ctx: Context) -> None:
        from ..refine.runner import refine

        assert ctx.traces is not None, "the refine stage needs traces"
        folder = StageFolder(ctx.out / self.section, fingerprint(self.section, ctx.key, self.settings()))
        saved = folder.folder / "traces"
        if folder.done():
            ctx.status[self.section] = "reused"
        else:
            ctx.status[self.section] = "ran"
            folder.begin(clear=False)  # the stages' shards in work/ are resumed
            model, backend = ctx.model_for(self.model, self.backend, self.section, "the model that rewrites")
            rows, report = refine(
                ctx.traces, self.passes, model=model, backend=backend, sampling=self.sampling,
                output_dir=folder.folder / "work", batch_size=self.batch_size, keep=self.keep,
                engine_kwargs=self.engine_kwargs, chat_template_kwargs=self.chat_template_kwargs,
                backend_kwargs=self.backend_kwargs, return_report=True)
            shutil.rmtree(saved, ignore_errors=True)
            rows.save_to_disk(str(saved))
            folder.finish(report=report.to_dict("records"))
        ctx.traces, ctx.key = load_from_disk(str(saved)), folder.key
