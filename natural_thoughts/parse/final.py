"""Final answers: read from a box, a stated line ("final answer is", "Answer:", GSM8K's `#### N`, a
choice letter) or, failing those, the concluding sentence of a complete text.

Each reader is written to cost at most a scan or two of its text (boxes found from the end, groups
paired in one pass only when needed), since every imported trace goes through them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial

_BOXED, _FBOX = "\\boxed", "\\fbox"
_BRACE_TOKEN = re.compile(r"\\[\\{}]|[{}]")
"""A brace, or a backslash escaping a brace or a backslash (other escapes skip a harmless char)."""
_FINAL_IS = re.compile(r"final answer is\b[ \t:]*(?:\n\s*)?(?:\$\$(.+?)\$\$|\\\[(.+?)\\\]|(\S[^\n]*))",
                       re.IGNORECASE | re.DOTALL)
""""final answer is" and its value: the rest of its line, or the line or display formula (`$$…$$`,
`\\[…\\]`) that follows it ("The final answer is:\\n\\n$$x(t) = …$$")."""
_ANSWER_LINE = re.compile(r"\banswer[ \t]*(?:\*\*[ \t]*)?:[ \t]*([^\n]*)", re.IGNORECASE)
_BARE = re.compile(r"[^\s$]*")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
"""A word of two or more letters that is not a LaTeX command's name (`\\frac`)."""
_CHOICE = re.compile(r"\b(?i:answer is)[ \t]*(?::[ \t]*)?\(?([A-J])\)?(?![A-Za-z0-9])")
_SENTENCE_END = re.compile(r"\.\s")
_LETTER = re.compile(r"\(?([A-J])\)?")


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
    value = _SENTENCE_END.split(value.strip(), maxsplit=1)[0].strip().strip("*").strip()
    value = value.rstrip(".").strip().strip("$").strip().rstrip(".").strip()
    letter = _LETTER.fullmatch(value)
    value = letter.group(1) if letter else value
    return value or None


def _last(pattern: re.Pattern[str], text: str) -> str | None:
    """The cleaned value of the last match of `pattern` that is not empty once cleaned: its first
    group that took part in the match (a pattern may read a value in one of several shapes)."""
    for match in reversed(list(pattern.finditer(text))):
        value = _clean(next(group for group in match.groups() if group is not None))
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


