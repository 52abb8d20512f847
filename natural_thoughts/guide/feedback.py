"""The ThinkTuning teacher: its versioned prompt, the tag format of its reply, and the reply parser.

A teacher reads a question and a student's complete response and replies in three tagged parts
(ThinkTuning, arXiv 2508.07616; format from 3rdAT/ThinkTuning):

    <opinion>correct|incorrect</opinion>
    <reason>first-person reflection on the student's reasoning</reason>
    <phrase>the thought carried on, ending with the final answer</phrase>

A reply that does not match this format exactly is no feedback (`valid=False`), never repaired.
`FEEDBACK_REGEX` is that format as one regular expression without look-arounds, so the same string
gates replies here (`re.fullmatch`) and constrains decoding (vLLM structured outputs, `regex=`).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib import resources
from typing import Literal

from jinja2 import Template
from pydantic import BaseModel, ConfigDict, model_validator

from ..llm.requests import PROMPT_SANDBOX
from .splice import strip_end_tokens

PROMPT_VERSION = "thinktuning_teacher.v1"
PROMPT_FILE = f"{PROMPT_VERSION}.jinja"
PROMPT_TEXT = resources.files(__package__).joinpath("prompts", PROMPT_FILE).read_text(encoding="utf-8")
PROMPT_SHA256 = hashlib.sha256(PROMPT_TEXT.encode("utf-8")).hexdigest()
"""sha256 of the packaged prompt text: a changed prompt is a new run."""

BOXED_INSTRUCTION = "Let's think step by step and put the final answer in \\boxed{}."
"""The step-by-step, boxed-answer instruction the few-shot questions carry (the default one)."""

_ROLE = re.compile(r"^\{#- role: (system|user|assistant) -#\}$", re.MULTILINE)


def _body(tag: str) -> str:
    """A regex for a non-blank text that never contains `</tag>`, without look-arounds.

    Each atom is a character other than `<`, or a `<` that starts something other than the closing
    tag (a proper prefix of it followed by a different character). The first atom is not
    whitespace, so the text holds at least one visible character.
    """
    close = f"</{tag}>"
    partial = [f"{close[:i]}[^{close[i]}]" for i in range(1, len(close))]
    return rf"\s*(?:[^\s<]|{'|'.join(partial)})(?:[^<]|{'|'.join(partial)})*"


FEEDBACK_REGEX = (
    r"\s*<opinion>\s*(correct|incorrect)\s*</opinion>"
    rf"\s*<reason>({_body('reason')})</reason>"
    rf"\s*<phrase>({_body('phrase')})</phrase>\s*"
)
"""The whole teacher reply: the three tags in order, whitespace around and between them, nothing else.
Lower-case opinion; reason and phrase non-blank and free of their own closing tag."""

_FEEDBACK = re.compile(FEEDBACK_REGEX)


class Feedback(BaseModel):
    """One teacher reply read: the opinion, reason and phrase, and whether the reply was valid.

    Only a valid feedback (`valid=True`) is spliced into a student response; an invalid one is the
    paper's "no feedback" and leaves the rollout unguided.
    """

    model_config = ConfigDict(frozen=True)

    opinion: Literal["correct", "incorrect"] | None = None
    reason: str = ""
    phrase: str = ""
    valid: bool = False

    @model_validator(mode="after")
    def _complete_when_valid(self) -> Feedback:
        if self.valid and (self.opinion is None or not self.reason.strip() or not self.phrase.strip()):
            raise ValueError("a valid Feedback needs an opinion and a non-blank reason and phrase")
        return self


NO_FEEDBACK = Feedback()
"""What a reply that breaks the tag format reads as."""


def parse_feedback(text: str | None) -> Feedback:
    """The feedback in a teacher reply: its three parts (stripped) when the whole reply matches
    `FEEDBACK_REGEX`, else `NO_FEEDBACK`."""
    match = _FEEDBACK.fullmatch(text or "")
    if match is None:
        return NO_FEEDBACK
    opinion, reason, phrase = match.groups()
    return Feedback(opinion=opinion, reason=reason.strip(), phrase=phrase.strip(), valid=True)


def teacher_messages(question: str, student_response: str, instruction: str = BOXED_INSTRUCTION,
                     prompt: str = PROMPT_TEXT) -> list[dict[str, str]]:
    """The chat messages asking the teacher about one student response: the system part, the four
    few-shot exchanges, then "Question: <question> <instruction>" and "Response: <response>".

    The response is shown without a trailing end token. Pass `instruction=""` when the question
    already carries it. `prompt` may be another jinja text with the same role sections.
    """
    context = {"question": question, "instruction": instruction, "response": strip_end_tokens(student_response)}
    return [{"role": role, "content": template.render(**context).strip()} for role, template in _sections(prompt)]


@lru_cache(maxsize=8)
def _sections(prompt: str) -> tuple[tuple[str, Template], ...]:
    """The prompt's role sections, each compiled once (text before the first role line is its header)."""
    parts = _ROLE.split(prompt)[1:]
    if not parts or parts[-2] != "user":
        raise ValueError("the teacher prompt needs role sections ({#- role: ... -#} lines) ending with a user one")
    return tuple((role, PROMPT_SANDBOX.from_string(body)) for role, body in zip(parts[::2], parts[1::2]))
