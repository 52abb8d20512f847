"""Reasoning markers: split a text on `<think>` or Sky-T1's markers, and read past cut-off ones.

Chat templates may open the reasoning themselves (R1, QwQ, Qwen3 end the prompt with `<think>`),
Sky-T1 is only prompted to use its markers, and a text that ran out of tokens may end inside one:
each reader here says what it found so that `parse_trace` can flag it.
"""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SKY_OPEN, SKY_CLOSE = "<|begin_of_thought|>", "<|end_of_thought|>"
SOL_OPEN, SOL_CLOSE = "<|begin_of_solution|>", "<|end_of_solution|>"
THINK_MARKERS = (THINK_OPEN, THINK_CLOSE)
SKY_MARKERS = (SKY_OPEN, SKY_CLOSE, SOL_OPEN, SOL_CLOSE)
_LONGEST_MARKER = max(len(m) for m in (*THINK_MARKERS, *SKY_MARKERS))
_PARTIAL_MARKERS = frozenset(m[:size] for m in (*THINK_MARKERS, *SKY_MARKERS) for size in range(2, len(m)))
"""What a marker cut off by the end of a text leaves: its first characters, two or more, not all."""
_THINK_MARKER, _SKY_MARKER = (re.compile("|".join(map(re.escape, m))) for m in (THINK_MARKERS, SKY_MARKERS))
"""Any of the markers: one regex scan tells whether a text holds one, where `in` takes a scan each."""


def _drop_markers(text: str, markers: re.Pattern[str]) -> str:
    """`text` without any of `markers` (`_THINK_MARKER` or `_SKY_MARKER`), stripped of surrounding
    whitespace. Removing one may join another, so passes repeat until none is left; no two markers
    overlap (each holds its only `<` first and its only `>` last), so the order of removal never
    changes the result."""
    removed = 1
    while removed and "<" in text:  # every marker starts with "<": most texts hold none once rid of them
        text, removed = markers.subn("", text)
    return text.strip()


def _split_think(text: str) -> tuple[str, str, bool]:
    """(reasoning, answer, unterminated) for `<think>…</think>`; everything before the first
    `</think>` is reasoning, since R1/QwQ/Qwen3 templates open `<think>` in the prompt. A text with
    no marker at all is read the same way (a template-opened reasoning that never closed)."""
    end = text.find(THINK_CLOSE)
    if end < 0:
        reasoning = _drop_markers(text, _THINK_MARKER)
        return reasoning, "", bool(reasoning)
    reasoning = _drop_markers(text[:end], _THINK_MARKER)
    return reasoning, _drop_markers(text[end + len(THINK_CLOSE) :], _THINK_MARKER), False


def _split_sky(text: str) -> tuple[str, str, bool] | None:
    """(reasoning, answer, unterminated) for Sky-T1 markers, or None when the text has none of the
    reasoning markers (ordinary CoT: Sky-T1 is only prompted to use them, so that is `plain`).
    The reasoning ends at the first `end_of_thought` or, failing that, `begin_of_solution`; the
    answer runs to `end_of_solution` or, when that is missing, to the end of the text."""
    ends = [(i, m) for m in (SKY_CLOSE, SOL_OPEN) if (i := text.find(m)) >= 0]
    if not ends:
        if SKY_OPEN not in text:
            return None
        return _drop_markers(text, _SKY_MARKER), "", True
    end, marker = min(ends)
    rest = text[end + len(marker) :]
    stop = rest.find(SOL_CLOSE)
    answer = rest if stop < 0 else rest[:stop]
    return _drop_markers(text[:end], _SKY_MARKER), _drop_markers(answer, _SKY_MARKER), False


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


def _without_partial_marker(text: str) -> tuple[str, bool]:
    """`text` without a marker cut off at its very end ("…\\boxed{32}.<|end_of_"), and whether
    there was one: such a text ran out of tokens while closing a section."""
    tail = text.rstrip()
    start = tail.rfind("<", max(len(tail) - _LONGEST_MARKER, 0))  # a marker's only "<" is its first
    if start >= 0 and tail[start:] in _PARTIAL_MARKERS:
        return tail[:start], True
    return text, False
