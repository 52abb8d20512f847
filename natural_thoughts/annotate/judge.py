"""`LLMJudge`: answer equivalence decided by an LLM through any backend, for selectors and `verify`."""

from __future__ import annotations

import hashlib
from typing import Any

from ..backends import Backend
from ..schema import as_dict
from .annotators import AnswerJudge
from .runner import DEFAULT_SAMPLING, Outcome, ask, engine_for


class LLMJudge:
    """An LLM answer-equivalence judge: `.equivalent(pairs) -> list[bool | None]`.

    Usable as `ModelsDisagree(judge="llm", llm_judge=...)` and as `verify(..., judge=...)`. It asks
    the `AnswerJudge` prompt through any backend (built on first use), `batch_size` pairs per engine
    call; a pair with a missing side, or whose reply never validates, is None (undecided), never a
    guess.
    """

    def __init__(self, model: Any = None, backend: str | Backend = "vllm", sampling: dict[str, Any] | None = None,
                 annotator: AnswerJudge | None = None, engine_kwargs: dict[str, Any] | None = None,
                 chat_template_kwargs: dict[str, Any] | None = None, batch_size: int = 256) -> None:
        self.model = model
        self.backend = backend
        self.sampling = sampling
        self.annotator = annotator or AnswerJudge(report="equivalent")
        self.engine_kwargs = engine_kwargs
        self.chat_template_kwargs = chat_template_kwargs
        self.batch_size = batch_size
        self._engine: Backend | None = None

    @property
    def engine(self) -> Backend:
        """The backend, resolved on first use."""
        if self._engine is None:
            self._engine = engine_for(self.backend, self.model, self.engine_kwargs, self.chat_template_kwargs)
        return self._engine

    def judge(self, pairs: list[tuple[str | None, str | None]],
              questions: list[str | None] | None = None) -> list[Outcome | None]:
        """The judge's outcome for each pair (None where a side is missing and nothing was asked)."""
        questions = questions or [None] * len(pairs)
        if len(questions) != len(pairs):
            raise ValueError(f"LLMJudge: {len(questions)} questions for {len(pairs)} pairs")
        asked = [i for i, (a, b) in enumerate(pairs) if (a or "").strip() and (b or "").strip()]
        asks = []
        for i in asked:
            a, b = pairs[i]
            key = hashlib.sha256(f"{a}\x00{b}\x00{questions[i] or ''}".encode()).hexdigest()[:16]
            context = self.annotator.pair_context(a or "", b or "", questions[i])
            asks.append((key, self.annotator.render(context)))
        sampling = {**DEFAULT_SAMPLING, **as_dict(self.sampling)}
        outcomes: list[Outcome] = []
        for start in range(0, len(asks), self.batch_size):
            outcomes += ask(self.annotator, asks[start : start + self.batch_size], self.engine, sampling)
        out: list[Outcome | None] = [None] * len(pairs)
        for i, outcome in zip(asked, outcomes):
            out[i] = outcome
        return out

    def equivalent(self, pairs: list[tuple[str | None, str | None]],
                   questions: list[str | None] | None = None) -> list[bool | None]:
        """True/False per pair by the judge; None when undecided (missing side or no valid reply)."""
        return [o.answer.equivalent if o is not None and o.answer is not None else None  # type: ignore[attr-defined]
                for o in self.judge(pairs, questions)]
