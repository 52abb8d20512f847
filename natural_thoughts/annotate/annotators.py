"""The built-in LLM annotators: strategies, domain, verbosity, difficulty, answer/response equivalence.

Each declares the pydantic model of its answer (the JSON schema that constrains decoding) and the
`label.*` columns it fills. Field order puts a short rationale before a score, so a judge writes its
reason first. String and list lengths are bounded so that constrained decoding always can close.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from ..answers import answer_or_closing, weak_final
from ..registry import Registry, Spec
from .base import Annotator, reasoning_text
from .taxonomy import DOMAINS, STRATEGIES

StrategyName = Literal[tuple(STRATEGIES)]  # type: ignore[valid-type]
DomainName = Literal[DOMAINS]  # type: ignore[valid-type]
STRATEGY_TYPE = pa.list_(pa.struct([("name", pa.string()), ("count", pa.int64()), ("evidence", pa.string())]))
"""Arrow type of a `label.strategies` cell: [{name, count, evidence}, …] (what `StrategyCount` reads)."""
ANNOTATORS: Registry[type[Annotator]] = Registry("annotator")
"""Names usable in `annotate(annotators=[...])`, configs and the command line; third parties add
theirs through the entry-point group `natural_thoughts.annotators`."""


class StrategyUse(BaseModel):
    """One strategy a reasoning uses: how often, and a quote where."""

    name: StrategyName
    count: int = Field(ge=1, le=500, description="separate times or steps the strategy occurs")
    evidence: str = Field(max_length=200, description="a short quote where it occurs")


class StrategiesAnswer(BaseModel):
    """The strategies used (each listed once)."""

    strategies: list[StrategyUse] = Field(max_length=len(STRATEGIES))


class DomainAnswer(BaseModel):
    """One of the 13 domains and a free-text topic."""

    domain: DomainName
    topic: str = Field(min_length=1, max_length=80)


class VerbosityAnswer(BaseModel):
    """A rationale, then the 0–10 verbosity score."""

    rationale: str = Field(max_length=400)
    verbosity: int = Field(ge=0, le=10)


class DifficultyAnswer(BaseModel):
    """A rationale, then the 1–10 difficulty score."""

    rationale: str = Field(max_length=400)
    difficulty: int = Field(ge=1, le=10)


class EquivalenceAnswer(BaseModel):
    """A reason, then whether the two answers are equivalent."""

    reason: str = Field(max_length=300)
    equivalent: bool


class _ReasoningAnnotator(Annotator):
    """An annotator of a trace's reasoning: traces with none are not sent (their label stays null)."""

    needs = ("problem", "reasoning")

    def skip_reason(self, row: dict[str, Any]) -> str | None:
        return None if reasoning_text(row).strip() else "no reasoning to judge"


@ANNOTATORS.register(name="strategies")
class Strategies(_ReasoningAnnotator):
    """Which strategies of `taxonomy.STRATEGIES` a trace's reasoning uses, with count and evidence.

    `label.<name>` holds [{name, count, evidence}], each strategy once (a judge listing one twice
    has its counts summed, the first evidence kept), ready for `selectors.StrategyCount`.
    """

    name = "strategies"
    prompt_file = "strategies.v1.jinja"
    Answer = StrategiesAnswer

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"problem": self.shown(row["problem"]), "reasoning": self.shown(reasoning_text(row)),
                "taxonomy": list(STRATEGIES.items())}

    def label_types(self) -> dict[str, pa.DataType]:
        return {self.name: STRATEGY_TYPE}

    def labels(self, answer: StrategiesAnswer) -> dict[str, Any]:  # type: ignore[override]
        merged: dict[str, dict[str, Any]] = {}
        for use in answer.strategies:
            if use.name in merged:
                merged[use.name]["count"] += use.count
            else:
                merged[use.name] = use.model_dump()
        order = list(STRATEGIES)
        return {self.name: sorted(merged.values(), key=lambda u: order.index(u["name"]))}


@ANNOTATORS.register(name="domain")
class Domain(Annotator):
    """The problem's domain (`label.<name>`, one of `taxonomy.DOMAINS`) and topic (`label.topic`)."""

    name = "domain"
    prompt_file = "domain.v1.jinja"
    Answer = DomainAnswer
    scope = "problem"
    needs = ("problem",)

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"problem": self.shown(row["problem"]), "domains": list(DOMAINS)}

    def label_types(self) -> dict[str, pa.DataType]:
        return {self.name: pa.string(), "topic": pa.string()}

    def labels(self, answer: DomainAnswer) -> dict[str, Any]:  # type: ignore[override]
        return {self.name: answer.domain, "topic": answer.topic}


@ANNOTATORS.register(name="verbosity")
class Verbosity(_ReasoningAnnotator):
    """How much of a trace's reasoning is unnecessary, 0 (none) to 10 (almost all), by rubric."""

    name = "verbosity"
    prompt_file = "verbosity.v1.jinja"
    Answer = VerbosityAnswer

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"problem": self.shown(row["problem"]), "reasoning": self.shown(reasoning_text(row))}

    def label_types(self) -> dict[str, pa.DataType]:
        return {self.name: pa.int64()}

    def labels(self, answer: VerbosityAnswer) -> dict[str, Any]:  # type: ignore[override]
        return {self.name: answer.verbosity}


@ANNOTATORS.register(name="difficulty")
class Difficulty(Annotator):
    """An LLM rating of the problem, 1 (one recall step) to 10 (frontier), by rubric; asked once
    per problem (OpenThoughts found such ratings the best question filter)."""

    name = "difficulty"
    prompt_file = "difficulty.v1.jinja"
    Answer = DifficultyAnswer
    scope = "problem"
    needs = ("problem",)

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"problem": self.shown(row["problem"])}

    def label_types(self) -> dict[str, pa.DataType]:
        return {self.name: pa.int64()}

    def labels(self, answer: DifficultyAnswer) -> dict[str, Any]:  # type: ignore[override]
        return {self.name: answer.difficulty}


@ANNOTATORS.register(name="answer_judge")
class AnswerJudge(Annotator):
    """Whether two final answers to a question are equivalent, judged by an LLM.

    Compares `answer_column` with `other_column` (a weak model's full response there is reduced to
    its final answer first). `report="disagree"` fills `label.disagree` (True when they differ, for
    `ModelsDisagree`); `report="equivalent"` fills `label.equivalent`; `name` renames the column.
    Rows with either answer missing are not sent; their label stays null (undecided).
    """

    name = "disagree"
    prompt_file = "answer_judge.v1.jinja"
    Answer = EquivalenceAnswer

    def __init__(self, answer_column: str = "final_answer", other_column: str = "weak_answer",
                 question_column: str | None = "problem", report: Literal["disagree", "equivalent"] = "disagree",
                 max_chars: int = 4000, prompt: str | None = None, name: str | None = None) -> None:
        if report not in ("disagree", "equivalent"):
            raise ValueError(f"AnswerJudge: report must be 'disagree' or 'equivalent', got {report!r}")
        super().__init__(max_chars=max_chars, prompt=prompt, name=name or report)
        self.answer_column = answer_column
        self.other_column = other_column
        self.question_column = question_column
        self.report = report

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        cols = (self.answer_column, self.other_column)
        return (*cols, self.question_column) if self.question_column else cols

    def _pair(self, row: dict[str, Any]) -> tuple[str | None, str | None]:
        other = row[self.other_column]
        return row[self.answer_column], weak_final(other) if self.other_column == "weak_answer" else other

    def skip_reason(self, row: dict[str, Any]) -> str | None:
        a, b = self._pair(row)
        missing = [c for c, v in ((self.answer_column, a), (self.other_column, b)) if not (v or "").strip()]
        return f"no answer in {missing}" if missing else None

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        a, b = self._pair(row)
        question = row[self.question_column] if self.question_column else None
        return self.pair_context(a or "", b or "", question, self._reference(row))

    def _reference(self, row: dict[str, Any]) -> str | None:
        """The row's reference answer, for prompts that show one (this one does not)."""
        return None

    def pair_context(self, a: str, b: str, question: str | None = None,
                     reference: str | None = None) -> dict[str, Any]:
        """Template variables for one pair (and optionally the question and a reference answer)."""
        return {"question": self.shown(question), "reference": self.shown(reference),
                "answer": self.shown(a), "other": self.shown(b)}

    def label_types(self) -> dict[str, pa.DataType]:
        return {self.name: pa.bool_()}

    def labels(self, answer: EquivalenceAnswer) -> dict[str, Any]:  # type: ignore[override]
        return {self.name: (not answer.equivalent) if self.report == "disagree" else answer.equivalent}


@ANNOTATORS.register(name="response_judge")
class ResponseJudge(AnswerJudge):
    """Whether two responses to a question reach the same result, judged by an LLM (NaturalThoughts'
    "Models Disagree" judge, for free-form answers and weak responses that are whole paragraphs).

    Each side is shown as its final answer where one is extracted, else as its closing part
    (`answers.CLOSING_CHARS` characters): the teacher's `answer_column`, else the end of its
    `response_column`; the weak side `answers.answer_or_closing(other_column)`. The question and,
    when the row has one, the reference answer are shown too. Labels as `AnswerJudge` does
    (`report="disagree"`: `label.disagree`, True when the responses differ).
    """

    prompt_file = "response_judge.v1.jinja"

    def __init__(self, answer_column: str = "final_answer", other_column: str = "weak_answer",
                 question_column: str | None = "problem", report: Literal["disagree", "equivalent"] = "disagree",
                 max_chars: int = 4000, prompt: str | None = None, name: str | None = None,
                 reference_column: str | None = "reference_answer", response_column: str | None = "completion") -> None:
        super().__init__(answer_column, other_column, question_column, report, max_chars, prompt, name)
        self.reference_column = reference_column
        self.response_column = response_column

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        extra = (c for c in (self.reference_column, self.response_column) if c)
        return tuple(dict.fromkeys((*super().needs, *extra)))

    def _pair(self, row: dict[str, Any]) -> tuple[str | None, str | None]:
        final = row[self.answer_column]
        if not (final or "").strip() and self.response_column:
            final = answer_or_closing(row[self.response_column])
        return final, answer_or_closing(row[self.other_column])

    def _reference(self, row: dict[str, Any]) -> str | None:
        return row[self.reference_column] if self.reference_column else None


def get_annotator(spec: Spec | Annotator) -> Annotator:
    """An annotator from an instance, a name in `ANNOTATORS` (default settings),
    `{"answer_judge": {"report": "equivalent"}}`, or `{"annotator": "answer_judge", "report": ...}`
    (the flat form `annotate()` callers use)."""
    if isinstance(spec, dict) and "annotator" in spec:
        spec = {spec["annotator"]: {k: v for k, v in spec.items() if k != "annotator"}}
    return ANNOTATORS.build(spec)
