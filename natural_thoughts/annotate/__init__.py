"""Annotation: LLM judges (prompts as versioned files) and a model-free strategy tagger.

`annotate(traces, ["strategies", "domain", ...], model=...)` adds `label.*` columns through the same
backends and resumable shards as `generate`; `tag_strategies` fills `label.strategies` without a
model; `LLMJudge` (built from a config value by `build_judge`) decides answer equivalence for
`ModelsDisagree(judge="llm")` and `verify`.
"""

from __future__ import annotations

from .annotators import (
    ANNOTATORS,
    AnswerJudge,
    Difficulty,
    Domain,
    ResponseJudge,
    Strategies,
    Verbosity,
    get_annotator,
)
from .base import Annotator, ReplyError, shorten
from .judge import LLMJudge, build_judge
from .runner import DEFAULT_SAMPLING, annotate
from .tagger import MARKERS, tag_strategies, tag_text, tagger_agreement
from .taxonomy import DOMAINS, STRATEGIES

__all__ = [
    "ANNOTATORS",
    "DEFAULT_SAMPLING",
    "DOMAINS",
    "MARKERS",
    "STRATEGIES",
    "Annotator",
    "AnswerJudge",
    "Difficulty",
    "Domain",
    "LLMJudge",
    "ReplyError",
    "ResponseJudge",
    "Strategies",
    "Verbosity",
    "annotate",
    "build_judge",
    "get_annotator",
    "shorten",
    "tag_strategies",
    "tag_text",
    "tagger_agreement",
]
