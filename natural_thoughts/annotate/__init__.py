"""Annotation: LLM judges (prompts as versioned files) and a model-free strategy tagger.

`annotate(traces, ["strategies", "domain", ...], model=...)` adds `label.*` columns through the same
backends and resumable shards as `generate`; `tag_strategies` fills `label.strategies` without a
model; `LLMJudge` (built from a config value by `build_judge`) decides answer equivalence for
`ModelsDisagree(judge="llm")` and `verify`; `ReasoningJudge` finds a trace's first wrong step and
`judge_agreement` measures it (or the model-free `steps.flag_reasoning`) against step-labelled data.
"""

from __future__ import annotations

from .agreement import LABELLED_SETS, judge_agreement, read_labelled
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
from .reasoning import ReasoningJudge
from .runner import DEFAULT_SAMPLING, annotate
from .tagger import MARKERS, tag_strategies, tag_text, tagger_agreement
from .taxonomy import DOMAINS, STRATEGIES

__all__ = [
    "ANNOTATORS",
    "DEFAULT_SAMPLING",
    "DOMAINS",
    "LABELLED_SETS",
    "MARKERS",
    "STRATEGIES",
    "Annotator",
    "AnswerJudge",
    "Difficulty",
    "Domain",
    "LLMJudge",
    "ReasoningJudge",
    "ReplyError",
    "ResponseJudge",
    "Strategies",
    "Verbosity",
    "annotate",
    "build_judge",
    "get_annotator",
    "judge_agreement",
    "read_labelled",
    "shorten",
    "tag_strategies",
    "tag_text",
    "tagger_agreement",
]
