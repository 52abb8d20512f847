"""`LLMJudge`: answer/response equivalence decided by an LLM through any backend; `build_judge` from config.

An `LLMJudge` is an `answers.Judge`: `ModelsDisagree(judge="llm", llm_judge=...)` and
`verify(..., judge=...)` take one. It is built here, beside the LLM annotators whose prompt it asks,
so that `verify` and `answers` never import the model-call machinery.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..answers import Judge, Pairs, Texts
from ..llm.backends import DEFAULT_BACKEND, Backend, backend_name, build_backend
from ..llm.runner import BATCH_SIZE, run_pass
from ..registry import Spec
from ..schema import as_dict
from .annotators import AnswerJudge, ResponseJudge, get_annotator
from .runner import DEFAULT_SAMPLING, Judging, Outcome


@dataclass(frozen=True)
class PairJudging(Judging):
    """The annotator's pass over prepared pairs: rows `{"pair": key, "messages": [...]}`."""

    @property
    def key(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("pair",)

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("pair", "messages")

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        return row["messages"]


class LLMJudge:
    """An LLM equivalence judge: `.equivalent(pairs, questions=None, references=None) -> list[bool | None]`.

    It asks `annotator`'s prompt (default: `ResponseJudge(report="equivalent")`, the free-form
    NaturalThoughts judge that also reads the question and the reference) through any backend,
    built on first use from `backend` ("vllm" or "openai"), `model`, `base_url` (openai only) and
    `engine_kwargs` (`vllm.LLM` arguments for vllm, `OpenAIBackend` arguments for openai), asking
    `batch_size` pairs per engine call. A pair with a missing side, or whose reply never
    validates, is None (undecided), never a guess.
    """

    def __init__(self, model: Any = None, backend: Spec | Backend = DEFAULT_BACKEND, sampling: dict[str, Any] | None = None,
                 annotator: AnswerJudge | str | dict[str, Any] | None = None,
                 engine_kwargs: dict[str, Any] | None = None, chat_template_kwargs: dict[str, Any] | None = None,
                 batch_size: int = BATCH_SIZE, base_url: str | None = None) -> None:
        if base_url is not None and backend_name(backend) != "openai":
            raise ValueError(f"LLMJudge: base_url is for backend='openai' (an OpenAI-compatible server), "
                             f"not {backend!r}; set backend: openai or drop base_url")
        resolved = ResponseJudge(report="equivalent") if annotator is None else get_annotator(annotator)
        if not isinstance(resolved, AnswerJudge):
            raise TypeError(f"LLMJudge: annotator must be an answer_judge or response_judge, got {resolved!r}")
        self.model = model
        self.backend = backend
        self.sampling = sampling
        self.annotator = resolved
        self.engine_kwargs = engine_kwargs
        self.chat_template_kwargs = chat_template_kwargs
        self.batch_size = batch_size
        self.base_url = base_url
        self._engine: Backend | None = None

    @property
    def engine(self) -> Backend:
        """The backend, resolved on first use."""
        if self._engine is None:
            own = {"base_url": self.base_url} if self.base_url else None
            self._engine = build_backend(self.backend, self.model, as_dict(self.engine_kwargs),
                                         self.chat_template_kwargs, own)
        return self._engine

    def judge(self, pairs: Pairs, questions: Texts | None = None,
              references: Texts | None = None) -> list[Outcome | None]:
        """The judge's outcome for each pair (None where a side is missing and nothing was asked)."""
        questions = list(questions) if questions is not None else [None] * len(pairs)
        references = list(references) if references is not None else [None] * len(pairs)
        if not len(questions) == len(references) == len(pairs):
            raise ValueError(f"LLMJudge: {len(questions)} questions and {len(references)} references "
                             f"for {len(pairs)} pairs; give one of each per pair")
        asked = [i for i, (a, b) in enumerate(pairs) if (a or "").strip() and (b or "").strip()]
        rows = []
        for i in asked:
            a, b = pairs[i]
            key = hashlib.sha256(f"{a}\x00{b}\x00{questions[i] or ''}\x00{references[i] or ''}".encode()).hexdigest()
            context = self.annotator.pair_context(a or "", b or "", questions[i], references[i])
            rows.append({"pair": key[:16], "messages": self.annotator.render(context)})
        sampling = {**DEFAULT_SAMPLING, **as_dict(self.sampling)}
        table = run_pass(PairJudging(self.annotator, sampling), rows, self.engine, batch_size=self.batch_size,
                         show_progress=False).rows.to_pydict()
        name = self.annotator.name
        replies = dict(zip(table["pair"], zip(table[f"label.{name}.raw"], table[f"label.{name}.error"])))
        out: list[Outcome | None] = [None] * len(pairs)
        for i, row in zip(asked, rows):
            raw, error = replies[row["pair"]]
            out[i] = Outcome(self.annotator.parse(raw) if error is None else None, raw, error)
        return out

    def equivalent(self, pairs: Pairs, questions: Texts | None = None,
                   references: Texts | None = None) -> list[bool | None]:
        """True/False per pair by the judge; None when undecided (missing side or no valid reply)."""
        return [o.answer.equivalent if o is not None and o.answer is not None else None  # type: ignore[attr-defined]
                for o in self.judge(pairs, questions, references)]


def build_judge(spec: Judge | str | dict[str, Any] | None) -> Judge | None:
    """A judge from a config value: None; a ready `Judge` (returned as it is); a model name (an
    `LLMJudge` on the vllm backend); or a dict of `LLMJudge` arguments, e.g.
    `{model: PATH_OR_NAME, backend: openai, base_url: http://host:8000/v1, sampling: {max_tokens: 512}}`."""
    if spec is None or isinstance(spec, Judge):
        return spec
    if isinstance(spec, str):
        return LLMJudge(model=spec)
    if isinstance(spec, dict):
        if spec.get("model") is None and isinstance(spec.get("backend", DEFAULT_BACKEND), (str, dict)):
            raise ValueError(f"an LLM judge needs `model` (a hub name, local path or served model name); got {spec}")
        try:
            return LLMJudge(**spec)
        except TypeError as exc:
            raise ValueError(f"cannot build an LLM judge from {spec}: {exc}; its keys are the arguments of "
                             "natural_thoughts.annotate.LLMJudge (model, backend, base_url, sampling, annotator, "
                             "engine_kwargs, chat_template_kwargs, batch_size)") from exc
    raise TypeError(f"a judge must be None, a model name, a dict of LLMJudge arguments or an object with "
                    f".equivalent(pairs, questions=None, references=None); got {type(spec).__name__}")
