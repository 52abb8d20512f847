"""Request building shared by every model pass: chat messages from a template, per-request seeds.

A seed is derived from the run's seed and the request's key, so a resumed or re-sharded run asks
each request with the same seed and gets the same text.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

GREEDY: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "seed": 0}
"""Greedy decoding, for passes that judge or answer rather than sample (judges, the ThinkTuning teacher)."""
PROMPT_SANDBOX = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
"""Renders every versioned prompt file (annotators, teacher feedback, refinement): a template cannot
reach Python internals, and an unknown name is an error, not an empty string."""


def request_seed(seed: int, pid: str, first_sample: int) -> int:
    """A per-request seed: reproducible, different across problems and sample blocks."""
    digest = hashlib.sha256(f"{seed}:{pid}:{first_sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def build_messages(problem: str, prompt_template: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat messages for one problem."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": render_prompt(prompt_template, problem)})
    return messages


def render_prompt(template: str, problem: str) -> str:
    """The user message. A template with `{{` or `{%` is jinja, rendered in a sandbox (`{{ problem }}`);
    otherwise `{problem}` is replaced as text, so any other brace stays as it is."""
    if "{{" in template or "{%" in template:
        return _jinja(template).render(problem=problem)
    return template.replace("{problem}", problem)


def check_prompt_template(template: str) -> None:
    """Refuse a template that cannot render, or that leaves the problem out, before anything runs."""
    try:
        probe = render_prompt(template, "\x00problem\x00")
    except Exception as exc:  # jinja's syntax, undefined-name and sandbox errors
        raise ValueError(f"prompt_template cannot be rendered ({type(exc).__name__}: {exc}); write "
                         "{problem} or {{ problem }} where the problem goes") from exc
    if "\x00problem\x00" not in probe:
        raise ValueError(f"prompt_template {template!r} never places the problem: write {{problem}} or "
                         "{{ problem }} where it goes")


@functools.lru_cache(maxsize=32)
def _jinja(template: str) -> Any:
    """A compiled user prompt template (the sandbox, keeping the template's trailing newline)."""
    return PROMPT_SANDBOX.overlay(keep_trailing_newline=True).from_string(template)
