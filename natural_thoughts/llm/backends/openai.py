"""Generation through any OpenAI-compatible chat server (`vllm serve`, SGLang, a hosted API).

Requests run concurrently (an `asyncio.Semaphore` bounds how many are open), each retried with
exponential backoff on timeouts, connection errors, 429 and 5xx until `max_retries` or
`retry_budget_s` runs out, so a server restart in the middle of a run costs time, not rows. A request
that still fails, or that the server refuses (400: e.g. a prompt longer than the context), becomes
that request's error. Authentication and unknown-model errors stop the run: every row would fail.

The API key is read from the environment variable named by `api_key_env` when a client is made;
it is never stored on the backend, so it cannot reach a manifest, a repr, a pickle or a log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import time
from typing import Any, Coroutine, TypeVar

from .base import Completion, Request, Response

log = logging.getLogger(__name__)

INSTALL_HINT = "the openai backend needs the openai client: `pip install 'natural-thoughts[openai]'`"
OPENAI_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "reasoning_effort",
})
"""Sampling keys the OpenAI API takes as arguments; any other key (top_k, min_p, ...) goes in the body."""
RETRY_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = frozenset({401, 403, 404})
T = TypeVar("T")


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server.

    `model` is the served model name; `base_url` the server (None: api.openai.com). Reasoning is
    taken from the message's separate `reasoning` / `reasoning_content` field (a server started
    with a reasoning parser) or left inline in the content. Token counts: with n=1 the response's
    `usage.completion_tokens`; with n>1 the API gives only the total, so per-sample counts come
    from each choice's `token_ids` when the server returns them (vLLM with `return_token_ids=True`)
    and are None otherwise. `extra_body` is sent with every request (server-specific options). A
    request's `regex` goes in the body as `structured_outputs` (vLLM's guided decoding).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 64,
        timeout: float = 1800.0,
        max_retries: int = 12,
        retry_budget_s: float = 900.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        chat_template_kwargs: dict[str, Any] | None = None,
        return_token_ids: bool = False,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = str(model)
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_budget_s = retry_budget_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.return_token_ids = return_token_ids
        self.extra_body = dict(extra_body or {})

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model={self.model_name!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})")

    def generate(self, requests: list[Request]) -> list[Response]:
        """Run every request concurrently; one `Response` per request, in order, errors included."""
        if not requests:
            return []
        return _run_sync(self._generate_all(requests))

    def _client(self) -> Any:
        try:
            from openai import AsyncOpenAI
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(INSTALL_HINT) from exc
        key = os.environ.get(self.api_key_env)
        if key is None and self.base_url is None:
            raise ValueError(f"the openai backend reads its API key from ${self.api_key_env}, which is not set")
        return AsyncOpenAI(base_url=self.base_url, api_key=key or "EMPTY", timeout=self.timeout, max_retries=0)

    async def _generate_all(self, requests: list[Request]) -> list[Response]:
        client = self._client()
        gate = asyncio.Semaphore(self.max_concurrency)
        try:
            return list(await asyncio.gather(*(self._one(client, gate, r) for r in requests)))
        finally:
            await client.close()

    async def _one(self, client: Any, gate: asyncio.Semaphore, request: Request) -> Response:
        """One request with retries; its error (not an exception) when it cannot succeed."""
        import openai

        first_failure: float | None = None
        attempt = 0
        async with gate:
            while True:
                try:
                    reply = await client.chat.completions.create(**self._arguments(request))
                    return self._response(request, reply)
                except openai.APIStatusError as exc:
                    if exc.status_code in FATAL_STATUS:
                        raise
                    if exc.status_code not in RETRY_STATUS and exc.status_code < 500:
                        return _error(request, exc)
                    failure: Exception = exc
                except (openai.APIConnectionError, openai.APIResponseValidationError) as exc:
                    failure = exc
                first_failure = time.monotonic() if first_failure is None else first_failure
                delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)
                attempt += 1
                if attempt > self.max_retries or time.monotonic() - first_failure + delay > self.retry_budget_s:
                    return _error(request, failure, f" (gave up after {attempt} attempts)")
                log.warning("%s from %s; retry %d in %.1fs", type(failure).__name__, self.base_url, attempt, delay)
                await asyncio.sleep(delay)

    def _arguments(self, request: Request) -> dict[str, Any]:
        """The `chat.completions.create` arguments of one request."""
        args: dict[str, Any] = {"model": self.model_name, "messages": request.messages, "n": request.n}
        body = dict(self.extra_body)
        for key, value in request.sampling.items():
            (args if key in OPENAI_PARAMS else body)[key] = value
        if request.json_schema is not None:
            args["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": request.json_schema}}
        if request.regex is not None:  # a vLLM server's guided decoding (the OpenAI API has none)
            body["structured_outputs"] = {"regex": request.regex}
        if self.chat_template_kwargs:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        if self.return_token_ids:
            body["return_token_ids"] = True
        if body:
            args["extra_body"] = body
        return args

    @staticmethod
    def _response(request: Request, reply: Any) -> Response:
        usage = getattr(reply, "usage", None)
        choices = sorted(reply.choices, key=lambda c: c.index)
        details = getattr(usage, "completion_tokens_details", None)
        completions = []
        for choice in choices:
            message = choice.message
            extra = getattr(message, "model_extra", None) or {}
            reasoning = getattr(message, "reasoning_content", None) or extra.get("reasoning_content")
            reasoning = reasoning or getattr(message, "reasoning", None) or extra.get("reasoning")
            token_ids = getattr(choice, "token_ids", None) or (getattr(choice, "model_extra", None) or {}).get("token_ids")
            if token_ids is not None:
                tokens = len(token_ids)
            else:
                tokens = usage.completion_tokens if usage is not None and len(choices) == 1 else None
            reasoning_tokens = getattr(details, "reasoning_tokens", None) if len(choices) == 1 else None
            completions.append(Completion(
                text=message.content or "",
                completion_tokens=tokens,
                finish_reason=choice.finish_reason,
                reasoning=reasoning,
                reasoning_tokens=reasoning_tokens or None,
            ))
        return Response(
            completions=completions,
            prompt_text=json.dumps(request.messages, ensure_ascii=False),
            prompt_tokens=getattr(usage, "prompt_tokens", None),
        )


def _error(request: Request, exc: Exception, note: str = "") -> Response:
    """A failed request as a `Response` whose error names the exception kind."""
    message = getattr(exc, "message", None) or str(exc)
    return Response(completions=[], prompt_text=json.dumps(request.messages, ensure_ascii=False),
                    error=f"{type(exc).__name__}: {message}{note}")


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from code that already runs an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
