"""verify.equivalent / normalize_answer: unit behaviour, threads, and agreement with a real evaluator."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from natural_thoughts.parse import extract_final_answer
from natural_thoughts.verify import choice_letter, equivalent, normalize_answer

DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.mark.parametrize(("raw", "norm"), [
    ("$\\frac{1}{2}$", "\\frac{1}{2}"),
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("\\text{Evelyn}.", "evelyn"),
    ("\\boxed{42}", "42"),
    ("\\boxed{a}+\\boxed{b}", "\\boxed{a}+\\boxed{b}"),
    ("90^\\circ", "90"),
    ("10\\%", "10"),
    ("  7 . ", "7"),
    ("", None),
    (None, None),
])
def test_normalize_answer(raw: str | None, norm: str | None) -> None:
    assert normalize_answer(raw) == norm


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("0.5", "\\frac{1}{2}", True),
    ("\\dfrac{3}{4}", "0.75", True),
    ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("$2\\sqrt{2}$", "\\sqrt{8}", True),
    ("1,000", "1000", True),
    ("3", "4", False),
    ("(1,2)", "(2,1)", False),
    ("\\text{Evelyn}", "Evelyn", True),
    ("\\text{Bob}", "Evelyn", False),
])
def test_math_equivalence(a: str, b: str, expected: bool) -> None:
    assert equivalent(a, b, "math") is expected


def test_exact_is_string_level() -> None:
    assert equivalent("\\text{ Evelyn }.", "evelyn", "exact") is True
    assert equivalent("0.5", "\\frac{1}{2}", "exact") is False


@pytest.mark.parametrize(("text", "letter"), [
    ("B", "B"), ("(c)", "C"), ("The answer is (D).", "D"), ("\\text{A}", "A"), ("42", None),
])
def test_choice_letter(text: str, letter: str | None) -> None:
    assert choice_letter(text) == letter


def test_choice_equivalence() -> None:
    assert equivalent("The answer is (C)", "C", "choice") is True
    assert equivalent("(A)", "C", "choice") is False
    assert equivalent("42", "C", "choice") is None


@pytest.mark.parametrize("method", ["math", "exact", "choice"])
def test_missing_side_is_undecided(method: str) -> None:
    assert equivalent(None, "1", method) is None  # type: ignore[arg-type]
    assert equivalent("1", "  ", method) is None  # type: ignore[arg-type]


def test_unknown_method_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown equivalence method 'fuzzy'"):
        equivalent("1", "1", "fuzzy")  # type: ignore[arg-type]


def test_math_works_outside_the_main_thread() -> None:
    """math-verify's signal-based timeout only works in the main thread; workers must not fail."""
    pairs = [("0.5", "\\frac{1}{2}"), ("3", "4"), ("\\sqrt{8}", "2\\sqrt{2}")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda p: equivalent(*p), pairs))
    assert got == [True, False, True]


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data absent")
def test_agrees_with_skythought_evaluator() -> None:
    """On real Sky-T1 MATH-500 traces, our verdict matches the file's own score on >= 90% of rows."""
    rows = [json.loads(line) for line in (DATA / "skythought_math500_sky-t1-27b.jsonl").open()]
    both = agree = 0
    for row in rows:
        verdict = equivalent(extract_final_answer(row["code"][0]), row["gt"], "math")
        if verdict is None:
            continue
        both += 1
        agree += verdict == bool(row["score"][0])
    assert both >= 100, f"only {both} rows decided: final-answer extraction or verify is failing"
    assert agree / both >= 0.9, f"agreement {agree}/{both}"
