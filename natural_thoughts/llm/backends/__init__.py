"""Generation backends: a spec (`"vllm"`, `{"openai": {"base_url": ...}}`) or a ready `Backend`.

`BACKENDS` is a `Registry`: a third party adds one through the entry-point group
`natural_thoughts.backends`, as a factory `factory(model, engine_kwargs=None,
chat_template_kwargs=None, **params) -> Backend`. `build_backend` is the one place a backend's
constructor arguments are assembled (for `generate`, `annotate`, the LLM judge and Ray actors).
"""

from __future__ import annotations

from typing import Any

from ...registry import Registry, Spec, parse_spec
from .base import Backend, Completion, EngineDiedError, EngineStartError, Request, Response, close, restart, start

BACKENDS: Registry = Registry("backend")
DEFAULT_BACKEND = "vllm"
"""The backend every model pass uses unless told otherwise: the offline vLLM engine."""


@BACKENDS.register(name="vllm")
def _vllm(model: Any, engine_kwargs: dict[str, Any] | None = None,
          chat_template_kwargs: dict[str, Any] | None = None, **params: Any) -> Backend:
    """`VLLMBackend`; vLLM's own progress bar is off (the model-call loop shows one bar per pass)."""
    from .vllm import VLLMBackend

    return VLLMBackend(model, engine_kwargs=engine_kwargs, chat_template_kwargs=chat_template_kwargs,
                       **{"use_tqdm": False, **params})


@BACKENDS.register(name="openai")
def _openai(model: Any, engine_kwargs: dict[str, Any] | None = None,
            chat_template_kwargs: dict[str, Any] | None = None, **params: Any) -> Backend:
    """`OpenAIBackend`; `engine_kwargs` are its constructor arguments too (there is no local engine)."""
    from .openai import OpenAIBackend

    own = {"chat_template_kwargs": chat_template_kwargs} if chat_template_kwargs else {}
    return OpenAIBackend(model, **{**own, **(engine_kwargs or {}), **params})


def build_backend(backend: Spec | Backend, model: Any = None, engine_kwargs: dict[str, Any] | None = None,
                  chat_template_kwargs: dict[str, Any] | None = None,
                  backend_kwargs: dict[str, Any] | None = None) -> Backend:
    """A backend from a spec and a model (a hub name, a local path, or a ready `vllm.LLM` for
    vllm), or a ready `Backend` returned unchanged. The spec's parameters and `backend_kwargs`
    (which win) are the backend's own options (e.g. `base_url`, `reasoning_parser`)."""
    if not isinstance(backend, (str, dict)):
        return backend
    name, params = parse_spec(backend, "backend")
    factory = BACKENDS.get(name)
    if model is None:
        raise ValueError(f"the {name!r} backend needs a model (a hub name, a local path or an engine)")
    return factory(model, engine_kwargs=engine_kwargs, chat_template_kwargs=chat_template_kwargs,
                   **{**params, **(backend_kwargs or {})})


def backend_name(backend: Spec | Backend) -> str | None:
    """The registered name a spec refers to (None for a ready instance)."""
    return parse_spec(backend, "backend")[0] if isinstance(backend, (str, dict)) else None


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "Completion", "EngineDiedError", "EngineStartError", "Request", "Response",
           "backend_name", "build_backend", "close", "restart", "start"]
