"""Chains of thought without markers: tell one from a bare answer, and find where its answer starts.

A reasoning model may write its whole chain of thought with no marker (Sky-T1 often does), and a
short CoT model writes numbered steps and a box. The split is inferred, so it keeps the parts apart
by rule: the answer part starts where a step starts (never after a "we get:" or a step's heading,
never at a paragraph that continues the one before), and it holds no self-correction ("Wait",
"Hmm", "maybe I need", "Let me re-check", …): a chain that reconsiders after the point where an
answer seemed to start is still reasoning there, so the answer starts after its last doubt.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import islice, pairwise

from .final import (_PARAGRAPH_BREAK, CONCLUDING_PARAGRAPHS, _boxes_from_last, _paragraph_starts,
                    extract_final_answer, prose_answer)

CHAIN_CUES = re.compile(
    r"\b(?:wait|hmm+|alternatively|actually|let me|i need to|i think|i should|i'll|maybe|double-check"
    r"|so i|okay|oh)\b", re.IGNORECASE)
MIN_CHAIN_CUES = 3
"""Distinct first-person / hesitation cues that make a marker-less text a reasoning model's chain of
thought. On the shared files, Sky-T1 chains without markers carry 4 or more in 90% of rows (median
9); the short CoT of Qwen2.5-Math, Qwen2.5-Instruct and the short Sky-T1 variant carry 0 or 1."""
MIN_CHAIN_CHARS = 500
MIN_CHAIN_BREAKS = 2
_ANSWER_HEADER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*)?[ \t]*(?:final answer\b|answer[ \t]*(?:\*\*)?[ \t]*:)",
    re.IGNORECASE | re.MULTILINE)
_HEADER_AFTER_NEWLINE = re.compile("\n" + _ANSWER_HEADER.pattern.removeprefix("^"), re.IGNORECASE)
"""`_ANSWER_HEADER` with its line start spelt as the newline before it: the same matches (one
character later), found several times faster (the engine jumps from newline to newline)."""
_ASCII_CHAIN_CUES = re.compile(CHAIN_CUES.pattern, CHAIN_CUES.flags & ~re.IGNORECASE)
"""`CHAIN_CUES` for lowercased ASCII text: the same matches, several times faster than IGNORECASE."""

SELF_CORRECTION = re.compile(
    r"\b(?:wait|hmm+|oops|no,? wait|but actually|actually,? no"
    r"|(?:maybe|perhaps) (?:i|we) (?:need|should|made|miscalculated|misread|missed|have to)"
    r"|let me (?:re-?check|double-?check|verify|re-?examine|reconsider|re-?evaluate|re-?think|re-?do"
    r"|check (?:again|that|this)|think again|see again|try again)"
    r"|(?:i|we) (?:think i |must have |may have |might have )?(?:made|make) (?:a|an) (?:mistake|error)"
    r"|that (?:doesn't|does not|can't|cannot) (?:be right|seem right|be correct))\b", re.IGNORECASE)
"""A chain reconsidering what it wrote: what a settled answer part never holds."""
_ASCII_SELF_CORRECTION = re.compile(SELF_CORRECTION.pattern, SELF_CORRECTION.flags & ~re.IGNORECASE)
_DOUBT_WORDS = ("wait", "hmm", "oops", "actually", "maybe", "perhaps", "let me", "mistake", "error", "be right",
                "seem right", "be correct")
"""Every `SELF_CORRECTION` match holds one of these (lowercase)."""
_STEP_HEADING = re.compile(
    r"(?:#{1,6}[ \t].*|(?:\d+[.)][ \t]*)?\*\*[^*\n]+\*\*[ \t]*:?|(?:step|case|part)[ \t]*\d+\b[^\n.!?=]{0,60})",
    re.IGNORECASE)
"""A line that titles the step after it: a markdown heading, a bold title ("7. **Conclusion:**"),
"Step 3: Solve for x" (short, no sentence or formula in it)."""
_INTRODUCES = (":", ",", ";", "=")
"""How a paragraph ends that leads into the next one."""
_CODE_FENCE, _CODE_OUTPUT = "```", "```output"
_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.S)
"""A fenced block (an unclosed one runs to the end)."""
MAX_PROGRAM_PROSE = 250
"""Characters of prose outside fenced blocks below which a text is a program given as the answer."""


def is_chain(text: str) -> bool:
    """Whether a marker-less text is a chain of thought: a reasoning model's (`MIN_CHAIN_CUES`) or
    a step-by-step solution of several paragraphs (`MIN_CHAIN_BREAKS`), not a bare answer. A fenced
    program with little prose around it (under `MAX_PROGRAM_PROSE` characters) is an answer, whatever
    its blank lines and words."""
    if _CODE_FENCE in text and len(_FENCED_CODE.sub("", text).strip()) < MAX_PROGRAM_PROSE:
        return False
    if len(text) < MIN_CHAIN_CHARS:
        return False
    if next(islice(_PARAGRAPH_BREAK.finditer(text.strip()), MIN_CHAIN_BREAKS - 1, None), None) is not None:
        return True  # the cheap test first: nearly every chain of thought has paragraphs
    cues: set[str] = set()
    cue_pattern, haystack = (_ASCII_CHAIN_CUES, text.lower()) if text.isascii() else (CHAIN_CUES, text)
    for match in cue_pattern.finditer(haystack):  # stops at the cue that decides
        cues.add(match.group().lower())
        if len(cues) >= MIN_CHAIN_CUES:
            return True
    return False


def _answer_headers(body: str, start: int) -> list[int]:
    """Where `_ANSWER_HEADER` matches in `body` from `start` on. A header spans no newline, so an
    earlier one never hides a later one; in an ASCII text (where IGNORECASE matches only ASCII case
    variants) none starts before the line of the first "answer" after `start`, so the scan starts
    there, and a text without one has none."""
    if body.isascii():
        first = body[start:].lower().find("answer")
        if first < 0:
            return []
        start = max(start, body.rfind("\n", start, start + first) + 1)
    if start < 1:
        return [m.start() for m in _ANSWER_HEADER.finditer(body, start)]
    return [m.start() + 1 for m in _HEADER_AFTER_NEWLINE.finditer(body, start - 1)]


def _answer_start(body: str) -> tuple[int | None, tuple[str | None, bool] | None]:
    """(where the answer seems to start, its `_stated_answer` when read on the way) by priority:
    the last "Final Answer"/"Answer:" header in the second half; the closing paragraphs when they
    state an answer (a box or an answer line); the paragraph of the last box in the second half (a
    box outranks a prose reading of what follows it, e.g. a list restating the roots); the closing
    paragraphs when they state one in prose. (None, None) when none of these is found.

    Of the closing paragraphs, only the text from the first on is read: where that states nothing,
    so does the text from a later one, since its boxes and answer lines (none spans a paragraph
    break) are the first text's too, and `prose_answer` reads the same last paragraph first."""
    headers = _answer_headers(body, len(body) // 2)
    if headers:
        return headers[-1], None
    closing = _paragraph_starts(body, len(body), CONCLUDING_PARAGRAPHS)[0]
    final = extract_final_answer(body[closing:])
    if final is not None:
        return closing, (final, False)
    box = next(_boxes_from_last(body, len(body) // 2), None)
    if box is not None:
        return _paragraph_starts(body, box[0], 1)[0], None
    prose = prose_answer(body[closing:])
    return (closing, (prose, True)) if prose is not None else (None, None)


def _cuts_a_step(body: str, before: int, at: int, fences: list[int]) -> bool:
    """Whether an answer starting at `at` (a paragraph or header start; `before` is the start of
    the paragraph before it) cuts a step: it is inside a code block (an odd number of the
    `fences` before it), the paragraph before introduces it ("we get:", "x =", "the area is"; a
    formula ending in a unit, "v = 3 m/s", introduces nothing) or is a step's heading, or the text
    at `at` continues a sentence (a lowercase word) or shows the output of the code before it."""
    previous = body[before:at].rstrip()
    last_line = previous.rpartition("\n")[2].strip()
    return (bisect_right(fences, at) % 2 == 1 or body.startswith(_CODE_OUTPUT, at) or previous.endswith(_INTRODUCES)
            or (previous[-1:].isalpha() and "=" not in last_line) or bool(_STEP_HEADING.fullmatch(last_line))
            or body[at].islower())


def _next_line(body: str, at: int) -> int:
    """The first character after the line holding `at` that is not a space, tab or newline."""
    end = body.find("\n", at)
    if end < 0:
        return len(body)
    return len(body) - len(body[end:].lstrip())


def _settled_start(body: str, found: int) -> int | None:
    """Where the answer starts once it cuts no step and holds no self-correction: from `found`, back
    to the nearest start that cuts no step (forward when none before, unless that would leave the
    text's last box behind: the answer part keeps the answer it states), then on past the last
    paragraph that reconsiders, to a start that cuts no step; None when no such start is left.
    Starts are paragraph starts and the lines after code blocks (code and its output often come
    without a blank line). Only the starts near `found` and after it are scanned (the answer part
    is short; the reasoning before it may be long)."""
    fences = [m.start() for m in re.finditer(_CODE_FENCE, body)] if _CODE_FENCE in body else []
    after_code = [_next_line(body, fence) for fence in fences[1::2]]

    def starts_from(at: int) -> list[int]:
        later = {m.end() for m in _PARAGRAPH_BREAK.finditer(body, at)}.union(i for i in after_code if i > at)
        return [at, *sorted(later - {len(body)})]

    def first_clean(starts: list[int]) -> int | None:
        return next((at for before, at in pairwise(starts) if not _cuts_a_step(body, before, at, fences)), None)

    chosen: int | None = found
    while chosen and _cuts_a_step(body, before := _start_before(body, chosen, after_code), chosen, fences):
        chosen = before
    if not chosen:  # no clean start before `found`: on to the first after it, but never past the last box
        forward = first_clean(starts_from(found))
        last_box = next(_boxes_from_last(body, found), None)
        chosen = found if last_box is not None and (forward is None or forward > last_box[0]) else forward
    doubt = None if chosen is None else _last_doubt(body, chosen)
    if chosen is None or doubt is None:
        return chosen
    starts = starts_from(chosen)
    return first_clean(starts[bisect_right(starts, doubt) - 1 :])


def _start_before(body: str, at: int, after_code: list[int]) -> int:
    """The nearest start before `at` (> 0): a paragraph start or a line after a code block."""
    starts = _paragraph_starts(body, at, 2)
    before = starts[-1] if starts[-1] < at else starts[-2]
    return max([before, *(i for i in after_code if i < at)])


def _last_doubt(body: str, start: int) -> int | None:
    """Where the last `SELF_CORRECTION` in `body[start:]` starts, or None. An ASCII text is read
    lowercased with `_ASCII_SELF_CORRECTION` (the same matches, faster), and only when it holds
    one of `_DOUBT_WORDS` (found by `in`, many times faster than any regex scan)."""
    tail = body[start:]
    if tail.isascii():
        tail = tail.lower()
        found = list(_ASCII_SELF_CORRECTION.finditer(tail)) if any(w in tail for w in _DOUBT_WORDS) else []
    else:
        found = list(SELF_CORRECTION.finditer(tail))
    return start + found[-1].start() if found else None


def _split_chain(text: str) -> tuple[tuple[str, str, bool], tuple[str | None, bool] | None]:
    """((reasoning, answer, False), stated) for a chain of thought without markers: the answer
    starts where `_answer_start` finds it, moved by `_settled_start`; when no answer can be told
    apart, the whole text is reasoning. `stated` is the answer's `_stated_answer` when finding the
    answer read it already (leading whitespace, which the answer drops, changes nothing it reads),
    else None."""
    body = text.strip()
    found, stated = _answer_start(body)
    if found:  # an answer found at 0 is the whole text: nothing to tell apart
        settled = _settled_start(body, found)
        found, stated = settled, (stated if settled == found else None)
    reasoning = "" if found is None else body[:found].strip()
    if not reasoning:
        return (body, "", False), None
    return (reasoning, body[found:].strip(), False), stated
