"""The `guide:` stage: ThinkTuning teacher feedback spliced into a share of the rollouts (`guide()`).

It runs after `verify` (the student's own `label.correct` stays the student's) and before `score`;
the replies are resumable shards under `<output_dir>/guide/work`. Export the guided rows with the
`guided_messages` or `guided_mask` format. See docs/thinktuning.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from datasets import Dataset
from pydantic import Field

from ..guide.feedback import BOXED_INSTRUCTION, FEEDBACK_REGEX, PROMPT_TEXT
from ..guide.runner import DEFAULT_FRACTION, DEFAULT_MAX_TOKENS
from ..llm.runner import BATCH_SIZE
from ..llm.backends import DEFAULT_BACKEND
from .stage import ColumnStage, Context, register_stage


@register_stage("guide", order=55)
class GuideConfig(ColumnStage):
    """Which rollouts the teacher guides (`fraction`, or a `schedule` from it, seeded per problem),
    the teacher (`model` on `backend`; default: the run's engine, the student itself as in the
    paper) and how it is asked (`instruction`, `prompt_file`: a jinja prompt with role sections,
    default the packaged one; `regex`: guided decoding, null for none; `max_tokens`)."""

    model: str | None = None
    backend: str = DEFAULT_BACKEND
    fraction: float = Field(DEFAULT_FRACTION, ge=0, le=1)
    schedule: dict[str, Any] | None = None
    seed: int = Field(0, ge=0)
    instruction: str = BOXED_INSTRUCTION
    prompt_file: str | None = None
    regex: str | None = FEEDBACK_REGEX
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(BATCH_SIZE, ge=1)

    def settings(self) -> dict[str, Any]:
        """The fields and the prompt's hash (a prompt file edited in place re-runs the stage)."""
        return {**self.model_dump(), "prompt_sha256": hashlib.sha256(self.prompt().encode()).hexdigest()}

    def prompt(self) -> str:
        """The teacher prompt: `prompt_file`'s text, else the packaged one."""
        return Path(self.prompt_file).read_text(encoding="utf-8") if self.prompt_file else PROMPT_TEXT

    def add(self, ds: Dataset, ctx: Context) -> Dataset:
        """The guidance columns, asked of `model`, else of the run's engine."""
        from ..guide.runner import guide

        model, backend = ctx.model_for(self.model, self.backend, self.section, "the teacher")
        prompt = self.prompt()
        return guide(ds, model=model, backend=backend, fraction=self.fraction, schedule=self.schedule, seed=self.seed,
                     instruction=self.instruction, prompt=prompt, regex=self.regex, max_tokens=self.max_tokens,
                     output_dir=ctx.out / self.section / "work", batch_size=self.batch_size,
                     engine_kwargs=self.engine_kwargs, chat_template_kwargs=self.chat_template_kwargs)
