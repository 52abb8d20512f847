"""The one small protocol every generation backend speaks.

A backend takes a list of chat requests (messages + sampling + n) and returns, for each, its n
completions with text, token counts and finish reason, or an error for that request alone.
An engine that cannot start or that dies is not a request's error: it raises `EngineStartError` /
`EngineDiedError`, so no row ever records an infrastructure failure. A backend that owns an engine
may also have `start()` (build it now), `restart()` (rebuild a dead one) and `close()` (shut it down).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Request:
    """One chat request: `n` samples of the assistant's reply to `messages`."""

    messages: Messages
    n: int = 1
    sampling: dict[str, Any] = field(default_factory=dict)
    json_schema: dict[str, Any] | None = None
    """When set, decoding is constrained to this JSON schema (structured output)."""
    regex: str | None = None
    """When set, decoding is constrained to this regular expression (guided decoding)."""

    def __post_init__(self) -> None:
        if self.json_schema is not None and self.regex is not None:
            raise ValueError("a Request constrains its reply by json_schema or by regex, not both")


@dataclass(frozen=True)
class Completion:
    """One sampled reply. `reasoning` is set when the backend separated it (a reasoning parser)."""

    text: str
    completion_tokens: int | None
    finish_reason: str | None
    reasoning: str | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class Response:
    """The outcome of one `Request`: its completions, or the error that stopped it."""

    completions: list[Completion]
    prompt_text: str = ""
    prompt_tokens: int | None = None
    error: str | None = None


@runtime_checkable
class Backend(Protocol):
    """What a model pass needs from an inference engine."""

    model_name: str

    def generate(self, requests: list[Request]) -> list[Response]:
        """Run every request; one `Response` per request, in order, errors included."""
        ...


class EngineStartError(RuntimeError):
    """The engine could not start; the message names the cause and what to do. Nothing was generated."""


class EngineDiedError(RuntimeError):
    """The engine died while generating: not a request's fault, so it is rebuilt or the run stops."""


def start(backend: Backend) -> None:
    """Build the backend's engine now, when it has one to build (a start failure raises here)."""
    if hasattr(backend, "start"):
        backend.start()


def restart(backend: Backend) -> bool:
    """Rebuild a dead engine; False when the backend cannot (e.g. a ready engine it did not build)."""
    return bool(backend.restart()) if hasattr(backend, "restart") else False


def close(backend: Backend) -> None:
    """Shut the backend's engine down (its processes and shared memory), when it has one."""
    if hasattr(backend, "close"):
        backend.close()
