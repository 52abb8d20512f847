"""Answers: normalisation, equivalence, choice letters, majority vote, weak responses, the Judge protocol.

The bottom of the package: `verify`, the selectors and the LLM annotators all compare answers
through this module, and it imports none of them. `equivalent(a, b)` answers True/False, or None
when it cannot decide (a side is missing), so that a caller can tell "the answers differ" from "we
do not know". A `Judge` is any object that decides equivalence for a batch of pairs (the LLM judge
in `natural_thoughts.annotate` is one); `ask_judge` asks one about the pairs it can decide.
"""

from __future__ import annotations

import inspect
import math
import re
import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from .notation import RELATIVE_TOLERANCE, number_form, units_differ
from .parse import extract_final_answer, parse_trace

Method = Literal["math", "exact", "choice"]
METHODS: tuple[str, ...] = ("math", "exact", "choice")

MATH_TIMEOUT_S = 5
"""math-verify's per-call timeout; it relies on SIGALRM, so it is only used in the main thread."""
RESPONSE_CHARS = 200
"""A cell longer than this (or holding `\\boxed`/a newline) is a full response, not a bare answer."""
CLOSING_CHARS = 600
"""How much of a response's end a judge is shown when no final answer can be extracted from it."""
FREEFORM_WORDS = 5
"""A reference with more prose words than this (outside math markup) is free-form text."""

_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
    ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""), ("\\ ", ""), ("\\displaystyle", ""),
    ("^{\\circ}", ""), ("^\\circ", ""), ("\\%", ""), ("%", ""), ("\\$", ""), ("$", ""),
)
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox)\{([^{}]*)\}")
_BOXED_OPEN = re.compile(r"^\\(?:boxed|fbox)\{")
_CHOICE_WHOLE = re.compile(r"^\(?([A-Ja-j])\)?[.:)]?$")
_CHOICE_PHRASE = re.compile(r"\b(?:answer|option|choice)(?: is)?[ :]*\(?([A-J])\)?(?![A-Za-z0-9])",
                            re.IGNORECASE)
_CHOICE_PAREN = re.compile(r"\(([A-J])\)")
_CHOICE_REFERENCE = re.compile(r"^\(?([A-J])\)?\.?$")
_MATH_SEGMENT = re.compile(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+")
_PROSE_WORD = re.compile(r"\b[A-Za-z]{2,}\b")
_MATHY = re.compile(r"[\d\\^_=+\-*/<>()\[\]{}|]")


def normalize_answer(s: str | None) -> str | None:
    """A canonical string form of an answer (None for missing or blank answers).

    Strips `$`, `\\boxed{}`, `\\text{}`-style wrappers, `\\left`/`\\right`, spacing commands, degree
    and percent signs, whitespace and a trailing period; `\\dfrac`/`\\tfrac` become `\\frac`;
    lowercases, so that `\\text{Evelyn}.` and `evelyn` compare equal.
    """
    if s is None:
        return None
    out = str(s).strip()
    out = _unwrap_boxed(out)
    for old, new in _REPLACEMENTS:
        out = out.replace(old, new)
    previous = None
    while previous != out:  # nested wrappers: \text{\textbf{x}}
        previous, out = out, _TEXT_CMD.sub(r"\1", out)
    out = "".join(out.split()).rstrip(".").lower()
    return out or None


def _unwrap_boxed(text: str) -> str:
    """The inside of `\\boxed{...}` when the box spans the whole text, else the text unchanged."""
    opening = _BOXED_OPEN.match(text)
    if not opening or not text.endswith("}"):
        return text
    depth = 0
    for i, ch in enumerate(text[opening.end() - 1:], start=opening.end() - 1):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            return text[opening.end():i] if i == len(text) - 1 else text
    return text


def choice_letter(s: str | None) -> str | None:
    """The multiple-choice letter (A–J, uppercase) an answer names, or None if it names none."""
    norm = normalize_answer(s)
    if norm is None:
        return None
    whole = _CHOICE_WHOLE.match(norm)
    if whole:
        return whole.group(1).upper()
    text = str(s)
    found = _CHOICE_PHRASE.findall(text) or _CHOICE_PAREN.findall(text)
    return found[-1].upper() if found else None


def _math_equal(a: str, b: str) -> bool:
    """Normalized strings, else math-verify on both answers in their `notation.number_form` (sci
    notation spelt `\\times10^{n}`, thousands separators and units gone: math-verify reads `3e8`
    and `8e3` as the same product 3·e·8), then as numbers within `RELATIVE_TOLERANCE` where a side
    is a decimal. Numbers with different unit symbols differ (`notation.units_differ`)."""
    a, b = _bare(a), _bare(b)
    (form_a, unit_a), (form_b, unit_b) = number_form(a), number_form(b)
    if units_differ(unit_a, unit_b):
        return False
    if normalize_answer(a) == normalize_answer(b):
        return True
    gold, pred = _parse(form_b), _parse(form_a)
    return _verified(gold, pred) or _close_decimals(gold, pred) or _same_items(a, b)


def _same_items(a: str, b: str) -> bool:
    """Whether one side is a tuple `(x, y)` and the other the bare list `x,y` of the same items in
    order: math-verify reads a bare list as a set, so `-2,-2` (a = -2, b = -2) loses an item."""
    for tuple_side, list_side in ((a, b), (b, a)):
        items, listed = _tuple_items(tuple_side), _top_level_items(list_side)
        if items is not None and len(listed) > 1 and list_side[:1] not in "([{" and len(items) == len(listed):
            return all(_math_equal(x.strip(), y.strip()) for x, y in zip(items, listed))
    return False


def _tuple_items(text: str) -> list[str] | None:
    """The items of a tuple `(x, y, ...)` whose parentheses span the whole text, else None."""
    if not (text.startswith("(") and text.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and i < len(text) - 1:
            return None  # `(1, 2), (3, 4)`: the first parenthesis closes early
    return _top_level_items(text[1:-1])


def _top_level_items(text: str) -> list[str]:
    """`text` split at its commas outside brackets and braces (`15{,}000` is one item)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return [*items, text[start:]]


def _timeout() -> int | None:
    """math-verify's timeout where it can use one (SIGALRM works in the main thread only)."""
    return MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _parse(answer: str) -> list[Any]:
    """math-verify's reading of one answer (empty when it reads none); a bare answer is boxed first,
    so that its LaTeX extraction takes it whole."""
    from math_verify import parse

    return parse(answer if "\\boxed" in answer else f"\\boxed{{{answer}}}", parsing_timeout=_timeout())


def _verified(gold: list[Any], pred: list[Any]) -> bool:
    """math-verify's verdict on two readings; False when either side was not read."""
    from math_verify import verify

    return bool(gold and pred and verify(gold, pred, timeout_seconds=_timeout()))


def _close_decimals(gold: list[Any], pred: list[Any]) -> bool:
    """Whether both readings are real numbers within `RELATIVE_TOLERANCE`, one written as a decimal
    (a sympy Float in it); whole numbers and fractions are left to math-verify's exact comparison."""
    from sympy import Expr, Float

    values = [r[0] for r in (gold, pred) if r]
    if len(values) != 2 or not all(isinstance(v, Expr) and v.is_number for v in values):
        return False
    if not any(v.atoms(Float) for v in values):
        return False
    try:
        x, y = (float(v) for v in values)
    except (TypeError, ValueError, OverflowError):  # complex or not finite: no decimal to round
        return False
    return math.isclose(x, y, rel_tol=RELATIVE_TOLERANCE)


def _bare(answer: str) -> str:
    """An answer without a `\\boxed{}` or `$...$` around the whole of it."""
    text = _unwrap_boxed(answer.strip())
    if len(text) > 1 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$").strip()
    return text


def equivalent(a: str | None, b: str | None, method: Method = "math") -> bool | None:
    """Whether answers `a` and `b` mean the same; None when either is missing or blank.

    `b` is taken as the reference (math-verify treats the gold side slightly differently, e.g. for
    `x = 5` against `5`). `method`: "math" (math-verify, then normalized strings), "exact"
    (normalized strings), "choice" (same multiple-choice letter).
    """
    if method not in METHODS:
        raise ValueError(f"unknown equivalence method {method!r}; choose one of {METHODS}")
    if normalize_answer(a) is None or normalize_answer(b) is None:
        return None
    assert a is not None and b is not None
    if method == "exact":
        return normalize_answer(a) == normalize_answer(b)
    if method == "choice":
        la, lb = choice_letter(a), choice_letter(b)
        return None if la is None or lb is None else la == lb
    return _math_equal(a, b)


def reference_method(reference: str | None) -> str | None:
    """How a reference answer is best checked, from what it looks like (None when it is blank).

    "choice" for a lone option letter (A–J); "llm" for free-form prose (more than
    `FREEFORM_WORDS` words outside math markup and no `\\boxed`); "math" for anything with digits,
    LaTeX or operators; "exact" (normalized strings) for a short plain word or phrase.
    """
    text = (reference or "").strip()
    if normalize_answer(text) is None:
        return None
    bare = _TEXT_CMD.sub(r"\1", _unwrap_boxed(text)).strip().strip("$").strip()
    if _CHOICE_REFERENCE.match(bare):
        return "choice"
    prose = _PROSE_WORD.findall(_MATH_SEGMENT.sub(" ", text))
    if len(prose) > FREEFORM_WORDS and "\\boxed" not in text:
        return "llm"
    return "math" if _MATHY.search(bare) else "exact"


def majority_vote(answers: list[str | None]) -> list[bool | None]:
    """Self-consistency: whether each answer agrees with the majority answer of its group.

    Answers are grouped by normalized string, then groups are merged by math equivalence. The
    largest group wins when it has at least two votes and more than any other; otherwise (and for
    missing answers) the verdict is None.
    """
    by_string: dict[str, list[int]] = {}
    for i, a in enumerate(answers):
        norm = normalize_answer(a)
        if norm is not None:
            by_string.setdefault(norm, []).append(i)
    clusters: list[tuple[str, list[int]]] = []
    for members in by_string.values():
        first = answers[members[0]]
        for rep, group in clusters:
            if equivalent(first, rep, "math"):
                group.extend(members)
                break
        else:
            clusters.append((first, list(members)))  # type: ignore[arg-type]
    sizes = sorted((len(g) for _, g in clusters), reverse=True)
    if not sizes or sizes[0] < 2 or (len(sizes) > 1 and sizes[1] == sizes[0]):
        return [None] * len(answers)
    winner = set(max(clusters, key=lambda c: len(c[1]))[1])
    return [None if normalize_answer(a) is None else i in winner for i, a in enumerate(answers)]


def weak_final(text: str | None) -> str | None:
    """The final answer in a weak-model cell: the one it states, read as a teacher's trace is read
    (`parse.parse_trace`: from its answer part, a concluding sentence included); else, for a full
    response (holding `\\boxed` or a newline, or longer than `RESPONSE_CHARS`), any it states
    anywhere (`extract_final_answer`: a box that opens the response, say); else the cell itself,
    a bare answer. Reading the answer part first keeps a prose answer, and a statement from the
    working ("... simplify: $$19x - 4x + 1 - 81 = 15x - 80.$$") is not taken for the answer."""
    if text is None:
        return None
    stated = parse_trace(text).final_answer
    if stated is not None:
        return stated
    if "\\boxed" in text or "\n" in text or len(text) > RESPONSE_CHARS:
        return extract_final_answer(text)
    return text


def closing_part(text: str, chars: int = CLOSING_CHARS) -> str:
    """The last `chars` characters of `text` (whole when shorter), starting at a word boundary."""
    text = text.strip()
    if len(text) <= chars:
        return text
    tail = text[-chars:]
    space = tail.find(" ")
    return tail[space + 1:] if 0 <= space < chars // 4 else tail


def answer_or_closing(text: str | None) -> str | None:
    """What a judge is shown of a response: its final answer where one can be extracted, else its
    closing part (`closing_part`); None for a missing or blank cell."""
    if text is None or not text.strip():
        return None
    final = weak_final(text)
    return final if final is not None and final.strip() else closing_part(text)


Pairs = Sequence[tuple[str | None, str | None]]
Texts = Sequence[str | None]


@runtime_checkable
class Judge(Protocol):
    """Decides, for a batch of (a, b) pairs, whether each pair says the same (None: undecided).

    `questions` and `references` (one per pair, optional) give a judge the context of each pair:
    the problem, and its reference answer where there is one. A judge that takes only `pairs` (the
    earlier form of this protocol) is still accepted by `ask_judge`, which then sends pairs only.
    """

    def equivalent(self, pairs: Pairs, questions: Texts | None = None,
                   references: Texts | None = None) -> list[bool | None]:
        """True (same), False (different) or None (undecided) per pair."""
        ...


def ask_judge(judge: Judge, pairs: Pairs, questions: Texts | None = None, references: Texts | None = None,
              what: str = "judge") -> list[bool | None]:
    """`judge`'s verdict on every pair whose both sides are present; None for the others (not asked).

    `what` names the caller in error messages.
    """
    if not hasattr(judge, "equivalent"):
        raise TypeError(f"{what}: a judge must have .equivalent(pairs, questions=None, references=None) -> "
                        f"list[bool | None]; got {type(judge).__name__}")
    asked = [i for i, (a, b) in enumerate(pairs) if (a or "").strip() and (b or "").strip()]
    context: dict[str, list[str | None]] = {}
    accepted = inspect.signature(judge.equivalent).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for name, values in (("questions", questions), ("references", references)):
        if values is None:
            continue
        if len(values) != len(pairs):
            raise ValueError(f"{what}: {len(values)} {name} for {len(pairs)} pairs")
        if name in accepted or takes_any:
            context[name] = [values[i] for i in asked]
    verdicts = list(judge.equivalent([(pairs[i][0], pairs[i][1]) for i in asked], **context))
    if len(verdicts) != len(asked):
        raise ValueError(f"{what}: the judge returned {len(verdicts)} verdicts for {len(asked)} pairs")
    out: list[bool | None] = [None] * len(pairs)
    for i, verdict in zip(asked, verdicts):
        out[i] = None if verdict is None else bool(verdict)
    return out
