"""Answer equivalence: math-verify for math, normalized strings, multiple-choice letters.

`equivalent(a, b)` answers True/False, or None when it cannot decide (a side is missing), so that a
selector can tell "the answers differ" from "we do not know".
"""

from __future__ import annotations

import re
import threading
from typing import Literal

Method = Literal["math", "exact", "choice"]
METHODS: tuple[str, ...] = ("math", "exact", "choice")

MATH_TIMEOUT_S = 5
"""math-verify's per-call timeout; it relies on SIGALRM, so it is only used in the main thread."""

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
    """math-verify on both answers (each wrapped in \\boxed{}), falling back to normalized strings."""
    from math_verify import parse, verify

    in_main = threading.current_thread() is threading.main_thread()
    timeout = MATH_TIMEOUT_S if in_main else None
    gold = parse(_boxed(b), parsing_timeout=timeout)
    pred = parse(_boxed(a), parsing_timeout=timeout)
    same_string = normalize_answer(a) == normalize_answer(b)
    if not gold or not pred:
        return same_string
    return bool(verify(gold, pred, timeout_seconds=timeout)) or same_string


def _boxed(answer: str) -> str:
    """Wrap a bare answer so that math-verify's LaTeX extraction finds it whole."""
    text = answer.strip()
    if "\\boxed" in text:
        return text
    if len(text) > 1 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$")
    return f"\\boxed{{{text}}}"


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
