"""Answers in the notations models write: each family's spellings are one value, look-alikes are
not, through `verify` and `ModelsDisagree` on small Datasets, and on real references."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from natural_thoughts.answers import equivalent, weak_final
from natural_thoughts.load.sources import load_traces
from natural_thoughts.load.weak import attach_weak
from natural_thoughts.notation import RELATIVE_TOLERANCE, number_form
from natural_thoughts.selectors import ModelsDisagree, WeakSolves
from natural_thoughts.verify import verify

from tests.conftest import DATA

FAMILIES: dict[str, tuple[str, list[str], list[str]]] = {
    # family: (reference, spellings of the same value, look-alikes of another value)
    "scientific": ("1.70 \\times 10^4",
                   ["1.70e4", "1.70E4", "1.7e+4", "1.70\\times10^{4}", "1.7 \\cdot 10^4", "1.7 × 10^{4}", "17000",
                    "17,000"],
                   ["1.70e-4", "1.70e5", "1.70 \\times 10^{3}", "1.80e4", "-1.70e4", "1.7"]),
    "scientific with a unit": ("3e8",
                               ["3.0 \\times 10^{8} \\mathrm{~m/s}", "3 \\times 10^8 \\text{ m/s}", "3.00e8 m/s",
                                "c = 3.0 \\times 10^{8}"],
                               ["3.0 \\times 10^{9} \\mathrm{~m/s}", "3.0 \\times 10^{-8}", "3e7", "8e3"]),
    "thousands": ("15000",
                  ["15,000", "15{,}000", "15\\,000", "15\u2009000", "15\u202f000", "15\u00a0000", "15 000"],
                  ["1500", "150,000", "15,001", "15.000", "1,5000", "15"]),
    "units": ("15,000 \\, kcal",
              ["15000 kcal", "15000 \\text{ kcal}", "15\\,000\\ \\mathrm{kcal}", "\\text{15000 kcal}", "15000"],
              ["150 kcal", "15000 cal", "1500 \\text{ kcal}", "15000 \\text{ J}"]),
    "words after a number": ("4 \\text{ ways}", ["4", "4 \\text{ arrangements}", "4 ways", "\\text{4 ways}"],
                             ["5 \\text{ ways}", "40 ways", "4.1 \\text{ ways}"]),
    "percent": ("50\\%", ["50%", "50 \\%", "50"], ["5%", "500\\%", "51"]),
    "degrees": ("30^\\circ", ["30°", "30^{\\circ}", "30 \\text{ degrees}", "30"], ["60^\\circ", "3°", "300"]),
    "currency": ("\\$36", ["$36", "36", "36 \\text{ dollars}", "\\$36.00"], ["\\$37", "\\$3.6", "€36"]),
    "x = v": ("x = 5", ["5", "x=5", "x = 5.0"], ["x = 6", "-5", "50"]),
    "decimals": ("\\frac{600}{7}", ["85.7143", "85.714", "85.71"], ["85.7", "86", "85.6"]),
    "tuple for a bare list": ("-2,-2", ["(-2, -2)", "(-2,-2)"], ["(-2, 2)", "(2, -2)", "(-2, -3)"]),
}


def _rows(family: str) -> tuple[list[str], list[str], list[bool]]:
    reference, same, other = FAMILIES[family]
    answers = same + other
    return answers, [reference] * len(answers), [True] * len(same) + [False] * len(other)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_verify_reads_every_spelling_of_a_family(family: str) -> None:
    answers, references, expected = _rows(family)
    ds = Dataset.from_dict({"final_answer": answers, "reference_answer": references,
                            "problem_id": [f"p{i}" for i in range(len(answers))]})
    got = verify(ds)["label.correct"]
    wrong = [(a, g) for a, g, e in zip(answers, got, expected) if g is not e]
    assert wrong == [], f"{family} against {references[0]!r}: {wrong}"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_models_disagree_calls_a_notation_no_disagreement(family: str) -> None:
    """The teacher writes the family's reference spelling; the weak model another spelling (agree,
    so dropped) or another value (disagree, so kept), each with and without a reference column."""
    answers, references, expected = _rows(family)
    teacher = [references[0]] * len(answers)
    ds = Dataset.from_dict({"final_answer": teacher, "weak_answer": answers})
    kept = set(ModelsDisagree().select(ds).indices.tolist())
    assert [i for i, same in enumerate(expected) if (i in kept) == same] == [], family
    with_reference = ds.add_column("reference_answer", references)
    assert set(ModelsDisagree().select(with_reference).indices.tolist()) == kept


def test_a_list_a_tuple_or_a_decimal_comma_is_no_thousands_number() -> None:
    for text in ["1,2,3", "(1,000, 2)", "1,5", "0,5", "12345,678", "[1,3)"]:
        assert number_form(text) == (text, None), text
    assert equivalent("1,2,3", "123") is False
    assert equivalent("1,234", "1.234") is False


@pytest.mark.parametrize(("text", "form"), [
    ("1.70e4", ("1.70\\times10^{4}", None)),
    ("3.0 \\times 10^{8} \\mathrm{~m/s}", ("3.0\\times10^{8}", "m/s")),
    ("15,000 \\, kcal", ("15000", "kcal")),
    ("2.5 \\text{ kg}\\cdot\\text{m}^2", ("2.5", "kgm^2")),
    ("\\$1,000", ("1000", "$")),
    ("75^\\circ", ("75", "°")),
    ("x = 1.5E-3", ("x = 1.5\\times10^{-3}", None)),
    ("12\\%", ("12\\%", None)),
    ("2e-1", ("2e-1", None)),           # may be 2e - 1
    ("5 m", ("5 m", None)),             # may be 5·m
    ("2n", ("2n", None)),
    ("3 \\sqrt{2}", ("3 \\sqrt{2}", None)),
    ("5 \\text{ and } 7", ("5 \\text{ and } 7", None)),
    ("11th \\text{ grade}", ("11th \\text{ grade}", None)),  # letters before the wrapper
])
def test_number_form(text: str, form: tuple[str, str | None]) -> None:
    assert number_form(text) == form


def test_decimals_are_close_within_the_tolerance_and_whole_numbers_exact() -> None:
    assert equivalent("3.14159", "3.1416") is True
    assert equivalent(str(1 + RELATIVE_TOLERANCE * 2), "1") is False
    assert equivalent("84.66666666666667", "84") is False
    assert equivalent("100001", "100000") is False  # whole numbers: no tolerance


def test_unit_symbols_differ_and_words_are_not_compared() -> None:
    assert equivalent("5 cm", "5 \\text{ m}") is False
    assert equivalent("2.0 \\text{ km/h}", "2 \\mathrm{~m/s}") is False
    assert equivalent("5 \\text{ meters}", "5 \\text{ m}") is True
    assert equivalent("28 different pizzas", "28") is True


def test_an_option_letter_agrees_with_its_spelt_out_choice() -> None:
    """By the reference's method, as `verify` compares: `(C) Plane` and `C` name one option."""
    ds = Dataset.from_dict({"final_answer": ["(C) Plane", "(C) Plane", "\\text{(B)}"],
                            "weak_answer": ["C", "D", "B"], "reference_answer": ["(C)", "(C)", "D"]})
    assert ModelsDisagree().verdicts(ds) == [True, False, True]
    assert verify(ds)["label.correct"] == [True, True, False]
    weak = ds.remove_columns("final_answer").add_column("problem_id", ["a", "b", "c"])
    assert WeakSolves().select(weak).indices.tolist() == [1, 2]  # the weak model solves a only


def test_olympiad_tuples_intervals_and_expressions_keep_working() -> None:
    """Every OlympiadBench reference equals itself spaced out, and a copy with one digit changed
    does not (a tuple, an interval or a list never collapses into one number)."""
    rows = [json.loads(line) for line in (DATA / "skythought_olympiadbench_sky-t1-32b-short.jsonl").open()]
    checked = 0
    for row in rows:
        ref = row["gt"]
        digits = [i for i, ch in enumerate(ref) if ch.isdigit() and ch != "9"]
        if row["answer_type"] == "Numerical" or not digits or ref.startswith("="):
            continue  # `=2,=-6-4\\sqrt{2}`: a `gt` stripped of its names, read as nothing
        spaced = ref.replace(",", ", ")
        changed = ref[:digits[-1]] + str(int(ref[digits[-1]]) + 1) + ref[digits[-1] + 1:]
        assert equivalent(spaced, ref) is True, ref
        assert equivalent(changed, ref) is False, (changed, ref)
        checked += 1
    assert checked, "no non-numerical reference with a digit in the file"


def test_models_that_verify_both_accepts_never_disagree() -> None:
    """On the real MATH-500 pair, no row is kept as a disagreement while the teacher's and the weak
    model's final answers are both verified correct against the reference."""
    teacher = load_traces(DATA / "skythought_math500_sky-t1-27b.jsonl", preset="skythought_eval")
    pair = attach_weak(verify(teacher), DATA / "skythought_math500_qwen2.5-math-7b.jsonl",
                       preset="skythought_eval", on="problem")
    weak = verify(Dataset.from_dict({"final_answer": [weak_final(w) for w in pair["weak_answer"]],
                                     "reference_answer": pair["reference_answer"], "problem_id": pair["problem_id"]}))
    verdicts = ModelsDisagree().verdicts(pair)
    assert False in verdicts, "no disagreement in the pair"
    both_right = [i for i, (v, t, w) in enumerate(zip(verdicts, pair["label.correct"], weak["label.correct"]))
                  if v is False and t and w]
    assert both_right == []
