"""Generation backends: a name ("vllm", "openai") or a ready instance that speaks `Backend`."""

from __future__ import annotations

from typing import Any, Callable

from .base import Backend, Completion, EngineDiedError, EngineStartError, Request, Response, close, restart, start


def _vllm(model: Any, **kwargs: Any) -> Backend:
    from .vllm import VLLMBackend

    return VLLMBackend(model, **kwargs)


def _openai(model: Any, **kwargs: Any) -> Backend:
    from .openai import OpenAIBackend

    return OpenAIBackend(model, **kwargs)


BACKENDS: dict[str, Callable[..., Backend]] = {"vllm": _vllm, "openai": _openai}


def get_backend(backend: str | Backend, model: Any = None, **kwargs: Any) -> Backend:
    """Resolve a backend name to an instance (or return a ready instance unchanged).

    A ready `vllm.LLM` passed as `model` is wrapped by the vllm backend.
    """
    if not isinstance(backend, str):
        return backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known backends: {sorted(BACKENDS)}")
    if model is None:
        raise ValueError(f"the {backend!r} backend needs a model (a hub name, a local path or an engine)")
    return BACKENDS[backend](model, **kwargs)


__all__ = ["Backend", "Completion", "Request", "Response", "get_backend", "BACKENDS", "EngineStartError",
           "EngineDiedError", "start", "restart", "close"]
