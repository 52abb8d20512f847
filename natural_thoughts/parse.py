"""Split a completion into reasoning and answer, extract its final answer, flag what went wrong.

Real traces are messy (only some Sky-T1 rows carry their opening marker, R1-style chat templates
open `<think>` themselves, reasoning models often write a whole chain of thought with no marker at
all, generations get cut off), so the parser never guesses silently: it splits on the markers it
finds, infers the split of a marker-less chain of thought (flag `split_inferred`), reads a final
answer stated in a sentence as such (flag `prose_answer`), flags a text that evidently stops
mid-thought as `truncated` even without a finish reason, and reports all of it as flags
(`schema.FLAGS`). It never raises on any text; only an unknown `format` name is an error.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from dataclasses import dataclass

from natural_thoughts.schema import FLAGS

FORMATS: tuple[str, ...] = ("auto", "think", "sky", "chain", "plain", "separate")
"""Accepted `format` values; `auto` picks one of the others from the markers present, and reads a
marker-less text as `chain` when it reads like a reasoning model's chain of thought (`is_chain`)."""

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

_BOXED, _FBOX = "\\boxed", "\\fbox"
_BRACE_TOKEN = re.compile(r"\\[\\{}]|[{}]")
"""A brace, or a backslash escaping a brace or a backslash (other escapes skip a harmless char)."""
_FINAL_IS = re.compile(r"final answer is\b[ \t:]*([^\n]*)", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"\banswer[ \t]*(?:\*\*[ \t]*)?:[ \t]*([^\n]*)", re.IGNORECASE)
_BARE = re.compile(r"[^\s$]*")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
"""A word of two or more letters that is not a LaTeX command's name (`\\frac`)."""
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
    """think | sky | chain | plain | separate."""


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


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each `{` that closes → index of its `}`, in one pass (nesting and `\\{` escapes
    honoured), so that many unclosed groups in a truncated text cost no more than one scan."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for match in _BRACE_TOKEN.finditer(text):  # the regex engine skips every other character
        i = match.start()
        char = text[i]
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def _closing_brace(text: str, i: int) -> int | None:
    """`_brace_pairs(text).get(i)` for the `{` at `i`, scanning from `i` on only: a `{` escaped by an
    odd run of backslashes is no group, and the group closes where the depth counted from `i`
    returns to zero (the stack of `_brace_pairs` pops `i` exactly there)."""
    j = i
    while j and text[j - 1] == "\\":
        j -= 1
    if (i - j) % 2:
        return None
    close = text.find("}", i)
    if close < 0:
        return None
    if text.find("{", i + 1, close) < 0 and text.find("\\", i + 1, close) < 0:
        return close  # a flat group, e.g. a number: nothing between opens, closes or escapes
    depth = 0
    for match in _BRACE_TOKEN.finditer(text, i):
        char = text[match.start()]
        depth += (char == "{") - (char == "}")
        if not depth:
            return match.start()
    return None


def _boxes_from_last(text: str, start: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) of each `\\boxed` / `\\fbox` in `text[start:]`, last first, found by `rfind` from
    the end (most texts need only their last box). No two commands overlap (each holds a backslash
    only as its first character), so these are all the occurrences a left-to-right scan finds."""
    boxed, fbox = text.rfind(_BOXED, start), text.rfind(_FBOX, start)
    while boxed >= 0 or fbox >= 0:
        if boxed > fbox:
            yield boxed, boxed + len(_BOXED)
            boxed = text.rfind(_BOXED, start, boxed)
        else:
            yield fbox, fbox + len(_FBOX)
            fbox = text.rfind(_FBOX, start, fbox)


def _last_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{…}` / `\\fbox{…}` (or `\\boxed 5`) in `text`;
    unclosed ones (a cut-off text) are passed over, an empty last box gives None.

    The last box's group is closed by a scan from it (usually a few characters); only when that
    finds it unclosed are all groups paired in one pass, so any text costs at most two scans."""
    pairs: dict[int, int] | None = None
    for _, command_end in _boxes_from_last(text):
        i = command_end
        if i < len(text) and text[i].isalpha():
            continue  # another macro, e.g. \boxedsymbol
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            close = _closing_brace(text, i) if pairs is None else pairs.get(i)
            if close is None and pairs is None:
                pairs = _brace_pairs(text)
            if close is not None:
                return text[i + 1 : close].strip() or None
        elif i > command_end and (bare := _BARE.match(text, i)) and bare.group().rstrip("."):
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


def _gsm8k(text: str) -> str | None:
    """GSM8K's closing answer line (`#### 18`): the value after the last `####` of the text's last
    line, when it reads like one. A markdown heading (`#### Step 3: Solve for x`, `#### Final
    Answer`) holds words or ends in a colon: earlier in a text it is a section title, and a text
    that ends on one was cut off. (Read from the last line, not by a regex anchored at the end,
    which would retry at every `#` of a long line.)"""
    line = text.rstrip().rpartition("\n")[2]
    at = line.rfind("####")
    if at < 0:
        return None
    value = line[at + 4 :].strip()
    return None if value.endswith(":") or _WORD.search(value) else _clean(value)


_STATEMENTS: tuple[tuple[Callable[[str], str | None], str], ...] = (
    (partial(_last, _FINAL_IS), "final answer is"), (partial(_last, _ANSWER_LINE), "answer"), (_gsm8k, "####"),
    (partial(_last, _CHOICE), "answer is"))
"""The readers of a stated answer by priority, each with a lowercase literal that all it reads
holds: an ASCII text whose lowered copy lacks it needs no reading (there, IGNORECASE matches only
the ASCII case variants; elsewhere "ſ" matches "s", "ı" and "İ" match "i")."""


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in `text`, by priority: the last `\\boxed{}`/`\\fbox{}`, then
    "final answer is …", then "Answer: …" / "**Answer:** …", then GSM8K's closing `#### N`, then a
    multiple-choice letter ("answer is (C)"); None when nothing matches."""
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    lowered = text.lower() if text.isascii() else None
    for read, literal in _STATEMENTS:
        value = read(text) if lowered is None or literal in lowered else None
        if value is not None:
            return value
    return None


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
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
CONCLUDING_PARAGRAPHS = 2
"""How many closing paragraphs may hold a marker-less chain's answer (e.g. a conclusion and a box)."""
_CONCLUSION = re.compile(r"\b(?:therefore|thus|hence|so|in conclusion|in summary|finally|overall|answer)\b",
                         re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"[.!?]\s+(?=[A-Z\\$(])")
"""A sentence's closing punctuation and the spaces after it, before the next sentence's start."""
_STATED = re.compile(r"(?:\b(?:is|are|equals|equal to|be)\b|=)\s*")
_VALUE_START = re.compile(r"[-+\d\\({\[|.\u221a\u03c0]")
"""A stated value starts like a number or an expression; otherwise only a name (1-2 capitalised
words, e.g. "Evelyn") counts, so "is the right answer" or "is grouped in 14 ways" is no answer."""
MAX_PROSE_WORDS = 4
_TERMINAL = tuple(".!?)]}>$*`\"|\u3002")
_NUMBER_THEN_WORDS = re.compile(r"^([-+]?\d[\d,]*(?:\.\d+)?)\s+[A-Za-z][A-Za-z ]*$")
_FILLER = re.compile(r"^(?:indeed|exactly|just|simply|still|also|actually|now|then)\b\s*", re.IGNORECASE)
MIN_CUT_CHARS = 400
"""A text shorter than this is never called cut off for lack of a closing sentence (e.g. "42")."""
LOOP_WINDOW, LOOP_RATIO = 2000, 0.1
"""A text whose last `LOOP_WINDOW` characters compress (zlib) below `LOOP_RATIO` of their size is
stuck in a repetition loop. On the shared files loops compress to 0.01–0.09, prose and LaTeX to 0.11+."""
_ASCII_CHAIN_CUES = re.compile(CHAIN_CUES.pattern, CHAIN_CUES.flags & ~re.IGNORECASE)
"""`CHAIN_CUES` for lowercased ASCII text: the same matches, several times faster than IGNORECASE."""


def _paragraph_starts(text: str, end: int, count: int) -> list[int]:
    """The last `count` paragraph starts up to `end` (0 and the end of each `_PARAGRAPH_BREAK`), as a
    scan of the whole text finds them, where `end` cuts no break (the text's end, or just before a
    character other than a space, tab or newline). Only a window before `end` is scanned, widened
    until it holds enough: it opens after a character that no break holds, so no break of the whole
    text straddles its start and from there both scans find the same breaks."""
    size = 512  # 9 in 10 closing pairs of paragraphs are shorter
    while True:
        start = max(end - size, 0)
        while start and text[start - 1] in " \t\n":
            start -= 1
        starts = [m.end() for m in _PARAGRAPH_BREAK.finditer(text, start, end)]
        if not start:
            return ([0] + starts)[-count:]
        if len(starts) >= count:
            return starts[-count:]
        size *= 4


def is_chain(text: str) -> bool:
    """Whether a marker-less text is a chain of thought: a reasoning model's (`MIN_CHAIN_CUES`) or
    a step-by-step solution of several paragraphs (`MIN_CHAIN_BREAKS`), not a bare answer."""
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


def prose_answer(text: str) -> str | None:
    """A final answer stated in a closing sentence of a complete text ("Therefore, the distance is
    100 parsecs." → "100"; a unit after a number is dropped): the value after the last
    "is/are/equals/=" of the last sentence of one of the closing paragraphs, when that sentence
    concludes (therefore, thus, so, … or it ends the text) and the value is short and reads like an
    answer; else None. A text that stops mid-sentence states nothing."""
    text = text.strip()
    if not _ends_complete(text):
        return None
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    for n, paragraph in enumerate(reversed(paragraphs[-CONCLUDING_PARAGRAPHS:])):
        sentence = paragraph[_last_sentence_start(paragraph) :].strip()
        if not sentence.endswith(_TERMINAL) or not (n == 0 or _CONCLUSION.search(sentence)):
            continue
        stated = list(_STATED.finditer(sentence))
        if not stated:
            continue
        value = sentence[stated[-1].end():]
        for wrapper in ("\\(", "\\)", "\\[", "\\]", "**", "$"):
            value = value.replace(wrapper, "")
        value = _FILLER.sub("", value.strip().rstrip(".!").strip())
        value = _NUMBER_THEN_WORDS.sub(r"\1", value)  # "2000 calories" → "2000": the unit is context
        words = value.split()
        if value.count("{") == value.count("}") and 0 < len(words) <= MAX_PROSE_WORDS and (
                _VALUE_START.match(value) or (len(words) <= 2 and value[0].isupper())):
            return value
    return None


def _last_sentence_start(paragraph: str) -> int:
    """Where the last sentence of `paragraph` starts (0 when it is one sentence)."""
    start = 0
    for match in _SENTENCE_BREAK.finditer(paragraph):
        start = match.end()
    return start


def _ends_complete(text: str) -> bool:
    """Whether a text ends like a finished sentence or formula: a closing character, and its last
    paragraph's parentheses and braces balanced (a text cut inside "(1." is not finished)."""
    text = text.rstrip()
    last = text[_paragraph_starts(text, len(text), 1)[0] :]
    balanced = last.count("(") == last.count(")") and last.count("{") == last.count("}")
    return text.endswith(_TERMINAL) and balanced


def _stated_answer(text: str) -> tuple[str | None, bool]:
    """(final answer, read from prose): `extract_final_answer`, else `prose_answer`."""
    final = extract_final_answer(text)
    if final is not None:
        return final, False
    prose = prose_answer(text)
    return prose, prose is not None


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


def _split_chain(text: str) -> tuple[tuple[str, str, bool], tuple[str | None, bool] | None]:
    """((reasoning, answer, False), stated) for a chain of thought without markers. The answer is
    the last "Final Answer"/"Answer:" section in the second half of the text, else the closing
    paragraphs when they state a final answer, else the paragraph of the last box in the second
    half; when none can be told apart, the whole text is reasoning. `stated` is the answer's
    `_stated_answer` when finding the answer read it already (leading whitespace, which the answer
    drops, changes nothing it reads), else None.

    Of the closing paragraphs, only the text from the first on is read: where that states nothing,
    so does the text from a later one, since its boxes and answer lines (none spans a paragraph
    break) are the first text's too, and `prose_answer` reads the same last paragraph first."""
    body = text.strip()
    headers = _answer_headers(body, len(body) // 2)
    if headers:
        found, stated = headers[-1], None
    else:
        found = _paragraph_starts(body, len(body), CONCLUDING_PARAGRAPHS)[0]
        stated = _stated_answer(body[found:])
        if stated[0] is None:
            found, stated = None, None
    if found is None and (box := next(_boxes_from_last(body, len(body) // 2), None)):
        found = _paragraph_starts(body, box[0], 1)[0]  # the last box's, when the closing ones state nothing
    reasoning = "" if found is None else body[:found].strip()
    if not reasoning:
        return (body, "", False), None
    return (reasoning, body[found:].strip(), False), stated


def cut_off(text: str, final_answer: str | None, unterminated: bool) -> bool:
    """Whether a text evidently stops mid-thought: it has no final answer, and its reasoning never
    closed, or it ends in a repetition loop, or it ends mid-sentence."""
    if final_answer is not None:
        return False
    if unterminated or (len(text.strip()) >= MIN_CUT_CHARS and not _ends_complete(text)):
        return True  # decided without compressing the tail
    tail = text[-LOOP_WINDOW:].encode("utf-8")
    return len(tail) >= MIN_CUT_CHARS and len(zlib.compress(tail)) / len(tail) < LOOP_RATIO


def _without_partial_marker(text: str) -> tuple[str, bool]:
    """`text` without a marker cut off at its very end ("…\\boxed{32}.<|end_of_"), and whether
    there was one: such a text ran out of tokens while closing a section."""
    tail = text.rstrip()
    start = tail.rfind("<", max(len(tail) - _LONGEST_MARKER, 0))  # a marker's only "<" is its first
    if start >= 0 and tail[start:] in _PARTIAL_MARKERS:
        return tail[:start], True
    return text, False


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
