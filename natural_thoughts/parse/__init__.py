"""Split a completion into reasoning and answer, extract its final answer, flag what went wrong.

Real traces are messy (only some Sky-T1 rows carry their opening marker, R1-style chat templates
open `<think>` themselves, reasoning models often write a whole chain of thought with no marker at
all, generations get cut off), so the parser never guesses silently: it splits on the markers it
finds, infers the split of a marker-less chain of thought (flag `split_inferred`), reads a final
answer stated in a sentence as such (flag `prose_answer`), flags a text that evidently stops
mid-thought as `truncated` even without a finish reason, and reports all of it as flags
(`schema.FLAGS`). It never raises on any text; only an unknown `format` name is an error.

Parts: `markers` (think / Sky-T1 markers), `chain` (marker-less chains of thought and where their
answer starts), `final` (final answers from boxes, answer lines and prose).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from natural_thoughts.schema import FLAGS

from .chain import CHAIN_CUES, MIN_CHAIN_BREAKS, MIN_CHAIN_CHARS, MIN_CHAIN_CUES, SELF_CORRECTION, is_chain
from .chain import _split_chain
from .final import _ends_complete, _stated_answer, extract_final_answer, prose_answer
from .markers import _SKY_MARKER, _THINK_MARKER, SKY_MARKERS, THINK_MARKERS, format_for_prompt
from .markers import _split_sky, _split_think, _without_partial_marker

__all__ = ["CHAIN_CUES", "FORMATS", "MIN_CHAIN_BREAKS", "MIN_CHAIN_CHARS", "MIN_CHAIN_CUES", "SELF_CORRECTION",
           "SKY_MARKERS", "SOURCE_FILES", "THINK_MARKERS", "ParsedTrace", "cut_off", "extract_final_answer",
           "format_for_prompt", "is_chain", "parse_trace", "prose_answer"]

SOURCE_FILES: tuple[str, ...] = tuple(sorted(str(p) for p in Path(__file__).parent.glob("*.py")))
"""The parser's source files: a cache of parsed traces is keyed on all of them."""

FORMATS: tuple[str, ...] = ("auto", "think", "sky", "chain", "plain", "separate")
"""Accepted `format` values; `auto` picks one of the others from the markers present, and reads a
marker-less text as `chain` when it reads like a reasoning model's chain of thought (`is_chain`)."""


@dataclass(frozen=True)
class ParsedTrace:
    """One completion, split: `format` is the format actually used (never `auto`)."""

    reasoning: str
    """The thinking part ("" when none)."""
    answer: str
    """The condensed answer/solution part shown to the user."""
    final_answer: str | None
    """The extracted final answer (e.g. the content of the last `\\boxed{}`), or None."""
    flags: list[str]
    """A subset of `schema.FLAGS`, in that order."""
    format: str
    """think | sky | chain | plain | separate."""


MIN_CUT_CHARS = 400
"""A text shorter than this is never called cut off for lack of a closing sentence (e.g. "42")."""
LOOP_WINDOW, LOOP_RATIO = 2000, 0.1
"""A text whose last `LOOP_WINDOW` characters compress (zlib) below `LOOP_RATIO` of their size is
stuck in a repetition loop. On the shared files loops compress to 0.01–0.09, prose and LaTeX to 0.11+."""


def cut_off(text: str, final_answer: str | None, unterminated: bool) -> bool:
    """Whether a text evidently stops mid-thought: it has no final answer, and its reasoning never
    closed, or it ends in a repetition loop, or it ends mid-sentence."""
    if final_answer is not None:
        return False
    if unterminated or (len(text.strip()) >= MIN_CUT_CHARS and not _ends_complete(text)):
        return True  # decided without compressing the tail
    tail = text[-LOOP_WINDOW:].encode("utf-8")
    return len(tail) >= MIN_CUT_CHARS and len(zlib.compress(tail)) / len(tail) < LOOP_RATIO


def _detect(text: str) -> str:
    """The format `auto` resolves to: by the markers present, think before sky, else a chain of
    thought (`is_chain`) or plain."""
    if "<" not in text:  # every marker starts with "<": most texts stop here
        return _marker_less(text)
    if _THINK_MARKER.search(text):
        return "think"
    if _SKY_MARKER.search(text):
        return "sky"
    return _marker_less(text)


def _marker_less(text: str) -> str:
    """The format of a text without reasoning markers: `chain` or `plain` (`is_chain`)."""
    return "chain" if is_chain(text) else "plain"


def parse_trace(
    text: str | None,
    format: str = "auto",
    finish_reason: str | None = None,
    reasoning: str | None = None,
    tokens: int | None = None,
    max_tokens: int | None = None,
) -> ParsedTrace:
    """Split `text` into reasoning and answer, extract the final answer from the answer part, flag.

    `reasoning`, when given, is the reasoning a backend's reasoning parser already separated: the
    text then holds only the answer and the format is `separate` whatever `format` says (the markers
    are gone). A non-empty separate reasoning with an empty answer is flagged unterminated, because
    vLLM's parsers put a reasoning that never closed wholly in the reasoning field. With
    `format="think"` a text with no `</think>` is unterminated reasoning (the template opened it);
    with `format="sky"` a text with no reasoning marker is read as `auto` reads a marker-less text.

    `truncated`: the finish reason is "length", or `tokens` (the completion's token count) reached
    `max_tokens`, or, when the finish reason is unknown (imported traces), the text evidently stops
    mid-thought (`cut_off`).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown trace format {format!r}; valid formats are {list(FORMATS)}")
    text, cut_in_marker = _without_partial_marker(text or "")
    used = "separate" if reasoning is not None or format == "separate" else format
    if used == "auto":
        used = _detect(text)
    split: tuple[str, str, bool] | None = None
    if used == "separate":
        thought, answer = (reasoning or "").strip(), text.strip()
        split = thought, answer, bool(thought) and not answer
    elif used == "think":
        split = _split_think(text)
    elif used == "sky":
        split = _split_sky(text)
        used = "sky" if split is not None else _marker_less(text)
    stated: tuple[str | None, bool] | None = None
    if used == "chain":
        split, stated = _split_chain(text)
    if split is None:
        used, split = "plain", ("", text.strip(), False)
    thought, answer, unterminated = split
    final, prose = _stated_answer(answer) if stated is None else stated
    stated_limit = tokens is not None and max_tokens is not None and tokens >= max_tokens
    guessed = finish_reason is None and (cut_in_marker or cut_off(text, final, unterminated))
    raised = {
        "unterminated_reasoning": unterminated,
        "truncated": finish_reason == "length" or stated_limit or guessed,
        "no_final_answer": final is None,
        "empty": not text.strip() and not (reasoning or "").strip(),
        "split_inferred": used == "chain" and bool(text.strip()),
        "prose_answer": prose,
    }
    flags = [flag for flag in FLAGS if raised[flag]]
    return ParsedTrace(
        reasoning=thought, answer=answer, final_answer=final, flags=flags, format=used
    )
