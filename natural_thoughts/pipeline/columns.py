"""The column stages: `annotate` (label.* from the tagger and LLM judges), `verify` (label.correct),
`score` (reasoning token counts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from datasets import Dataset
from pydantic import Field, field_validator, model_validator

from ..llm.runner import BATCH_SIZE
from ..llm.backends import DEFAULT_BACKEND
from .stage import ColumnStage, Context, Workers, register_stage

AnnotatorSpec = str | dict[str, dict[str, Any]]


@register_stage("annotate", order=40)
class AnnotateConfig(ColumnStage, Workers):
    """Labels as `label.*` columns: the model-free strategy `tagger`, the model-free
    `reasoning_flags` (`steps.flag_reasoning`: no derivation, an announced guess) and/or LLM
    `annotators` (names from `annotate.ANNOTATORS`, or {name: params}, e.g. `reasoning`, the first
    wrong step) asked of `model` (default: the run's engine).
    `executor: ray` tags as Ray tasks and judges on Ray actors (`executor_kwargs`: concurrency,
    num_gpus, ...)."""

    tagger: bool = False
    reasoning_flags: bool = False
    annotators: list[AnnotatorSpec] = Field(default_factory=list)
    model: str | None = None
    backend: str = DEFAULT_BACKEND
    sampling: dict[str, Any] | None = None
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(BATCH_SIZE, ge=1)
    executor_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("annotators")
    @classmethod
    def _known(cls, value: list[AnnotatorSpec]) -> list[AnnotatorSpec]:
        from ..annotate import get_annotator

        for spec in value:  # unknown names and bad parameters fail here, before any stage
            get_annotator(spec)
        return value

    @model_validator(mode="after")
    def _something(self) -> AnnotateConfig:
        if not self.tagger and not self.reasoning_flags and not self.annotators:
            raise ValueError("annotate needs `tagger: true`, `reasoning_flags: true` and/or a list of `annotators`")
        return self

    def add(self, ds: Dataset, ctx: Context) -> Dataset:
        """The strategy tagger and reasoning flags, then the LLM annotators (on `model`, else the run's engine)."""
        from ..annotate import annotate, get_annotator, tag_strategies
        from ..steps import flag_reasoning

        if self.tagger:
            ds = tag_strategies(ds, executor=self.executor, num_proc=self.num_proc)
        if self.reasoning_flags:
            ds = flag_reasoning(ds)
        if not self.annotators:
            return ds
        model, backend = ctx.model_for(self.model, self.backend, self.section, "the judge model")
        return annotate(ds, [get_annotator(spec) for spec in self.annotators], model=model, backend=backend,
                        sampling=self.sampling, output_dir=ctx.out / self.section / "work",
                        batch_size=self.batch_size, engine_kwargs=self.engine_kwargs,
                        chat_template_kwargs=self.chat_template_kwargs, executor=self.executor,
                        executor_kwargs=self.executor_kwargs)


@register_stage("verify", order=50)
class VerifyConfig(ColumnStage):
    """Answer checking into `label.correct` (`judge` None: math-verify / normalized strings). Rows
    with tests (every row with `method: code`) have their programs run (`limits`: `code.Limits`
    fields, e.g. `{timeout: 6}`)."""

    judge: str | dict[str, Any] | None = None
    method: Literal["code"] | None = None
    limits: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    def add(self, ds: Dataset, ctx: Context) -> Dataset:
        from ..annotate import build_judge
        from ..verify import verify

        code = {"limits": self.limits} if self.limits else {}
        return verify(ds, judge=build_judge(self.judge), method=self.method, **code, **self.options)


@register_stage("score", order=60)
class ScoreConfig(ColumnStage, Workers):
    """How reasoning length is counted when the engine did not count it (default: the teacher's
    tokenizer when it is a local folder); `executor: ray` counts with the tokenizer as Ray tasks."""

    always = True

    tokenizer: str | None = None
    approximate: bool = False

    def add(self, ds: Dataset, ctx: Context) -> Dataset:
        from ..scores import add_reasoning_tokens

        tokenizer = self.tokenizer
        if tokenizer is None and "model" in ds.column_names and len(ds):
            local = [m for m in sorted(set(ds["model"])) if m and Path(m).is_dir()]
            tokenizer = local[0] if local else None
        return add_reasoning_tokens(ds, tokenizer=tokenizer, approximate=self.approximate,
                                    executor=self.executor, num_proc=self.num_proc)
