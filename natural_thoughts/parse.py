"""Split a completion into reasoning and answer, extract its final answer, flag what went wrong.

Real traces are messy (only some Sky-T1 rows carry their opening marker, R1-style chat templates
open `<think>` themselves, generations get cut off), so the parser never guesses silently: it splits
on the markers it finds and reports what it could not settle as flags (`schema.FLAGS`). It never
raises on any text; only an unknown `format` name is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from natural_thoughts.schema import FLAGS

FORMATS: tuple[str, ...] = ("auto", "think", "sky", "plain", "separate")
"""Accepted `format` values; `auto` picks one of the others from the markers present."""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SKY_OPEN, SKY_CLOSE = "<|begin_of_thought|>", "<|end_of_thought|>"
SOL_OPEN, SOL_CLOSE = "<|begin_of_solution|>", "<|end_of_solution|>"
THINK_MARKERS = (THINK_OPEN, THINK_CLOSE)
SKY_MARKERS = (SKY_OPEN, SKY_CLOSE, SOL_OPEN, SOL_CLOSE)

_BOX_CMD = re.compile(r"\\(?:boxed|fbox)")
_FINAL_IS = re.compile(r"final answer is\b[ \t:]*([^\n]*)", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"\banswer[ \t]*(?:\*\*[ \t]*)?:[ \t]*([^\n]*)", re.IGNORECASE)
_BARE = re.compile(r"[^\s$]*")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_CHOICE = re.compile(r"\b(?i:answer is)[ \t]*(?::[ \t]*)?\(?([A-J])\)?(?![A-Za-z0-9])")
_SENTENCE_END = re.compile(r"\.\s")
_LETTER = re.compile(r"\(?([A-J])\)?")


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
    """think | sky | plain | separate."""


def _drop_markers(text: str, markers: tuple[str, ...]) -> str:
    """`text` without any of `markers`, stripped of surrounding whitespace."""
    while any(marker in text for marker in markers):  # removing one may join another
        for marker in markers:
            text = text.replace(marker, "")
    return text.strip()


def _split_think(text: str) -> tuple[str, str, bool]:
    """(reasoning, answer, unterminated) for `<think>…</think>`; everything before the first
    `</think>` is reasoning, since R1/QwQ/Qwen3 templates open `<think>` in the prompt. A text with
    no marker at all is read the same way (a template-opened reasoning that never closed)."""
    end = text.find(THINK_CLOSE)
    if end < 0:
        reasoning = _drop_markers(text, THINK_MARKERS)
        return reasoning, "", bool(reasoning)
    reasoning = _drop_markers(text[:end], THINK_MARKERS)
    return reasoning, _drop_markers(text[end + len(THINK_CLOSE) :], THINK_MARKERS), False


def _split_sky(text: str) -> tuple[str, str, bool] | None:
    """(reasoning, answer, unterminated) for Sky-T1 markers, or None when the text has none of the
    reasoning markers (ordinary CoT: Sky-T1 is only prompted to use them, so that is `plain`).
    The reasoning ends at the first `end_of_thought` or, failing that, `begin_of_solution`; the
    answer runs to `end_of_solution` or, when that is missing, to the end of the text."""
    ends = [(i, m) for m in (SKY_CLOSE, SOL_OPEN) if (i := text.find(m)) >= 0]
    if not ends:
        if SKY_OPEN not in text:
            return None
        return _drop_markers(text, SKY_MARKERS), "", True
    end, marker = min(ends)
    rest = text[end + len(marker) :]
    stop = rest.find(SOL_CLOSE)
    answer = rest if stop < 0 else rest[:stop]
    return _drop_markers(text[:end], SKY_MARKERS), _drop_markers(answer, SKY_MARKERS), False


def _detect(text: str) -> str:
    """The format `auto` resolves to: by the markers present, think before sky, else plain."""
    if any(m in text for m in THINK_MARKERS):
        return "think"
    if any(m in text for m in SKY_MARKERS):
        return "sky"
    return "plain"


def format_for_prompt(format: str, prompt: str | None) -> str:
    """`auto` becomes `think`/`sky` when the rendered prompt already opened the reasoning.

    R1, QwQ and Qwen3 chat templates end the prompt with `<think>`: a completion cut before its
    `</think>` holds no marker at all, yet it is unterminated reasoning, not plain text.
    """
    tail = (prompt or "").rstrip()
    if format == "auto" and tail.endswith(THINK_OPEN):
        return "think"
    if format == "auto" and tail.endswith(SKY_OPEN):
        return "sky"
    return format


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each `{` that closes → index of its `}`, in one pass (nesting and `\\{` escapes
    honoured), so that many unclosed groups in a truncated text cost no more than one scan."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 1
        elif char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _last_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{…}` / `\\fbox{…}` (or `\\boxed 5`) in `text`;
    unclosed ones (a cut-off text) are passed over, an empty last box gives None."""
    matches = list(_BOX_CMD.finditer(text))
    pairs = _brace_pairs(text) if matches else {}
    for match in reversed(matches):
        i = match.end()
        if i < len(text) and text[i].isalpha():
            continue  # another macro, e.g. \boxedsymbol
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            if i in pairs:
                return text[i + 1 : pairs[i]].strip() or None
        elif i > match.end() and (bare := _BARE.match(text, i)) and bare.group().rstrip("."):
            return bare.group().rstrip(".")
    return None


def _clean(value: str) -> str | None:
    """A matched answer up to its sentence's end, without markdown bold, `$`, a trailing period or
    a choice's parentheses."""
    value = _SENTENCE_END.split(value, maxsplit=1)[0].strip().strip("*").strip()
    value = value.rstrip(".").strip().strip("$").strip().rstrip(".").strip()
    letter = _LETTER.fullmatch(value)
    value = letter.group(1) if letter else value
    return value or None


def _last(pattern: re.Pattern[str], text: str) -> str | None:
    """The cleaned first group of the last match of `pattern` that is not empty once cleaned."""
    for match in reversed(list(pattern.finditer(text))):
        value = _clean(match.group(1))
        if value:
            return value
    return None


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in `text`, by priority: the last `\\boxed{}`/`\\fbox{}`, then
    "final answer is …", then "Answer: …" / "**Answer:** …", then GSM8K `#### N`, then a
    multiple-choice letter ("answer is (C)"); None when nothing matches."""
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    for pattern in (_FINAL_IS, _ANSWER_LINE, _GSM8K, _CHOICE):
        value = _last(pattern, text)
        if value is not None:
            return value
    return None


def parse_trace(
    text: str | None,
    format: str = "auto",
    finish_reason: str | None = None,
    reasoning: str | None = None,
) -> ParsedTrace:
    """Split `text` into reasoning and answer, extract the final answer from the answer part, flag.

    `reasoning`, when given, is the reasoning a backend's reasoning parser already separated: the
    text then holds only the answer and the format is `separate` whatever `format` says (the markers
    are gone). A non-empty separate reasoning with an empty answer is flagged unterminated, because
    vLLM's parsers put a reasoning that never closed wholly in the reasoning field. With
    `format="think"` a text with no `</think>` is unterminated reasoning (the template opened it);
    with `format="sky"` a text with no reasoning marker falls back to `plain`.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown trace format {format!r}; valid formats are {list(FORMATS)}")
    text = text or ""
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
    if split is None:
        used, split = "plain", ("", text.strip(), False)
    thought, answer, unterminated = split
    final = extract_final_answer(answer)
    raised = {
        "unterminated_reasoning": unterminated,
        "truncated": finish_reason == "length",
        "no_final_answer": final is None,
        "empty": not text.strip() and not (reasoning or "").strip(),
    }
    flags = [flag for flag in FLAGS if raised[flag]]
    return ParsedTrace(
        reasoning=thought, answer=answer, final_answer=final, flags=flags, format=used
    )
