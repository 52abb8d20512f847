"""Answer checking: math-verify for math, normalized strings, multiple-choice letters, an LLM judge.

`equivalent(a, b)` answers True/False, or None when it cannot decide (a side is missing), so that a
selector can tell "the answers differ" from "we do not know". `verify(traces)` labels each trace's
correctness against its reference, picking the method per row from what the reference looks like,
or by majority vote over a problem's samples when there is no reference.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Literal

from datasets import Dataset

from .schema import require_columns

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


FREEFORM_WORDS = 5
"""A reference with more prose words than this (outside math markup) is free-form text."""
UNDECIDED_METHODS: tuple[str, ...] = ("no_answer", "no_judge", "no_majority")
"""`label.correct_method` values of rows left undecided (`label.correct` null), saying why."""
_CHOICE_REFERENCE = re.compile(r"^\(?([A-J])\)?\.?$")
_MATH_SEGMENT = re.compile(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+")
_PROSE_WORD = re.compile(r"\b[A-Za-z]{2,}\b")
_MATHY = re.compile(r"[\d\\^_=+\-*/<>()\[\]{}|]")


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


def resolve_judge(judge: Any) -> Any:
    """An LLM judge from `verify(judge=...)`: None, an object with `.equivalent(pairs)`, a model
    name (an `LLMJudge` on the vllm backend) or a dict of `LLMJudge` arguments."""
    if judge is None or hasattr(judge, "equivalent"):
        return judge
    from .annotate.judge import LLMJudge

    if isinstance(judge, str):
        return LLMJudge(model=judge)
    if isinstance(judge, dict):
        return LLMJudge(**judge)
    raise TypeError(f"judge must be None, a model name, a dict of LLMJudge arguments or an object with "
                    f".equivalent(pairs); got {type(judge).__name__}")


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


def verify(traces: Any, judge: Any = None, answer_column: str = "final_answer",
           reference_column: str = "reference_answer", group_column: str = "problem_id",
           question_column: str = "problem") -> Dataset:
    """`traces` with `label.correct` (True / False / None) and `label.correct_method`.

    Each row with a reference is checked by the method its reference calls for
    (`reference_method`); free-form references go to the LLM `judge` (see `resolve_judge`), or
    stay undecided ("no_judge") without one. Rows without a reference are judged by majority vote
    over the samples of their `group_column` ("majority", or "no_majority" when there is no clear
    majority). A row without a final answer is undecided ("no_answer"), never guessed.
    """
    from .io import load_traces

    ds = traces if isinstance(traces, Dataset) else load_traces(traces)
    require_columns(ds.column_names, [answer_column], "verify")
    answers = ds[answer_column]
    refs = ds[reference_column] if reference_column in ds.column_names else [None] * len(ds)
    methods = [reference_method(r) for r in refs]
    correct: list[bool | None] = [None] * len(ds)
    used: list[str] = [""] * len(ds)
    for i, (a, r, m) in enumerate(zip(answers, refs, methods)):
        if m is None or m == "llm":
            continue
        if normalize_answer(a) is None:
            used[i] = "no_answer"
        else:
            correct[i], used[i] = equivalent(a, r, m), m  # type: ignore[arg-type]
    _judge_freeform(ds, judge, answers, refs, methods, correct, used, question_column)
    _vote(ds, answers, methods, correct, used, group_column)
    for col in ("label.correct", "label.correct_method"):
        if col in ds.column_names:
            ds = ds.remove_columns(col)
    return ds.add_column("label.correct", correct).add_column("label.correct_method", used)


def _judge_freeform(ds: Dataset, judge: Any, answers: list[str | None], refs: list[str | None],
                    methods: list[str | None], correct: list[bool | None], used: list[str],
                    question_column: str) -> None:
    """Rows with a free-form reference: asked of the LLM judge in one batch, or left undecided."""
    rows = [i for i, m in enumerate(methods) if m == "llm"]
    answered = [i for i in rows if normalize_answer(answers[i]) is not None]
    for i in set(rows) - set(answered):
        used[i] = "no_answer"
    llm = resolve_judge(judge)
    if llm is None:
        for i in answered:
            used[i] = "no_judge"
        return
    from .annotate.judge import LLMJudge

    pairs = [(answers[i], refs[i]) for i in answered]
    if isinstance(llm, LLMJudge) and question_column in ds.column_names:
        questions = ds[question_column]
        verdicts = llm.equivalent(pairs, questions=[questions[i] for i in answered])
    else:
        verdicts = list(llm.equivalent(pairs))
    if len(verdicts) != len(pairs):
        raise ValueError(f"verify: the judge returned {len(verdicts)} verdicts for {len(pairs)} pairs")
    for i, v in zip(answered, verdicts):
        correct[i], used[i] = v, "llm"


def _vote(ds: Dataset, answers: list[str | None], methods: list[str | None], correct: list[bool | None],
          used: list[str], group_column: str) -> None:
    """Rows without a reference: majority vote within their group (self-consistency)."""
    rows = [i for i, m in enumerate(methods) if m is None]
    if not rows:
        return
    require_columns(ds.column_names, [group_column], "verify (rows without a reference are voted per group, so)")
    keys = ds[group_column]
    groups: dict[Any, list[int]] = {}
    for i in rows:
        groups.setdefault(keys[i], []).append(i)
    for members in groups.values():
        for i, v in zip(members, majority_vote([answers[i] for i in members])):
            correct[i] = v
            answered = normalize_answer(answers[i]) is not None
            used[i] = "no_answer" if not answered else "majority" if v is not None else "no_majority"
