"""Splice teacher guidance into a student response, and mark which characters and tokens are the teacher's.

ThinkTuning (3rdAT/ThinkTuning, `guidance_sequences_recompute`) appends the guidance after the whole
student response with its end token removed: response + "\\n\\n" + reason + "\\n\\n" + phrase. The
opinion is dropped. The teacher part (both separators included) is marked, so that training can
treat student and teacher tokens differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .feedback import Feedback

END_TOKENS: tuple[str, ...] = ("<|eot_id|>", "</s>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>",
                               "<｜end▁of▁sentence｜>")
"""End-of-turn tokens removed from the end of a student response (Llama 3, Llama 2/Mistral, Qwen,
GPT-style, Llama 3 base, DeepSeek)."""

SEPARATOR = "\n\n"
"""What goes before the reason and before the phrase."""


def strip_end_tokens(text: str, end_tokens: tuple[str, ...] = END_TOKENS) -> str:
    """`text` without the end tokens at its very end (several in a row are all removed)."""
    while (token := next((t for t in end_tokens if t and text.endswith(t)), None)) is not None:
        text = text[: -len(token)]
    return text


@dataclass(frozen=True)
class Spliced:
    """A guided completion: `text`, and `[start, end)`, the characters the teacher wrote.

    `text[:start]` is the student response without its end token; `text[start:end]` is
    "\\n\\n" + reason + "\\n\\n" + phrase, and `end == len(text)`.
    """

    text: str
    start: int
    end: int

    @property
    def student(self) -> str:
        """The student's part."""
        return self.text[: self.start]

    @property
    def teacher(self) -> str:
        """The teacher's part, separators included."""
        return self.text[self.start : self.end]


def splice(student_completion: str, feedback: Feedback, end_tokens: tuple[str, ...] = END_TOKENS) -> Spliced:
    """The student completion continued by the teacher's reason and phrase (the opinion is dropped).

    Raises `ValueError` for invalid feedback: "no feedback" leaves the rollout unguided.
    """
    if not feedback.valid:
        raise ValueError("cannot splice invalid feedback (no feedback): keep the student rollout unguided")
    student = strip_end_tokens(student_completion, end_tokens)
    teacher = f"{SEPARATOR}{feedback.reason}{SEPARATOR}{feedback.phrase}"
    return Spliced(text=student + teacher, start=len(student), end=len(student) + len(teacher))


@dataclass(frozen=True)
class TeacherTokens:
    """`text` tokenized: its token ids, a 0/1 mask (1 = the token holds teacher characters), and
    `[start, end)`, the indices of the masked tokens (`start == end` when none is)."""

    input_ids: list[int]
    mask: list[int]
    start: int
    end: int


def token_spans(tokenizer: Any, text: str, char_span: tuple[int, int]) -> TeacherTokens:
    """Which tokens of `text` cover the characters `char_span = (start, end)`, by a fast Hugging Face
    tokenizer's offset mapping; special tokens are not added.

    A token that straddles the boundary counts as teacher. To mark tokens in a longer text (a chat
    template around the completion), pass that text and the span shifted by the prefix's length.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"token_spans needs a fast tokenizer (offset mappings); got {type(tokenizer).__name__}")
    start, end = char_span
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"char_span {char_span} is not within the {len(text)} characters of text")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ends = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)[:, 1]
    # Each token covers from where the previous one ended, so offsets trimmed of spaces still tile the text.
    cover_end = np.maximum.accumulate(ends)
    cover_start = np.concatenate([[0], cover_end])[:-1]
    mask = (cover_start < end) & (cover_end > start) & (cover_end > cover_start)
    hits = np.flatnonzero(mask)
    first, last = (int(hits[0]), int(hits[-1]) + 1) if len(hits) else (0, 0)
    return TeacherTokens(input_ids=list(enc["input_ids"]), mask=mask.astype(int).tolist(), start=first, end=last)
