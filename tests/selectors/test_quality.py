"""Quality filters on what the parser says: DropFlags' flag names, Correct's verdict column."""

from __future__ import annotations

import pytest
from datasets import Dataset

from natural_thoughts.schema import NOTE_FLAGS, PROBLEM_FLAGS
from natural_thoughts.selectors import Correct, DropFlags


def _pool() -> Dataset:
    return Dataset.from_dict({
        "flags": [[], ["truncated"], ["split_inferred", "prose_answer"], ["no_final_answer"]],
        "error": [None, None, None, None],
        "final_answer": ["4", "5", "6", None],
        "reference_answer": ["4", "4", "6", "7"],
        "label.correct": [True, False, None, None],
    })


def test_drop_flags_defaults_to_the_problem_flags_only() -> None:
    assert DropFlags().select(_pool()).indices.tolist() == [0, 2]  # notes are not problems
    assert set(PROBLEM_FLAGS).isdisjoint(NOTE_FLAGS)
    assert DropFlags(flags=list(NOTE_FLAGS)).select(_pool()).indices.tolist() == [0, 1, 3]


def test_drop_flags_takes_one_name_and_refuses_unknown_ones() -> None:
    assert DropFlags(flags="truncated").select(_pool()).indices.tolist() == [0, 2, 3]
    with pytest.raises(ValueError, match="truncatd.*known flags"):
        DropFlags(flags=["truncatd"]).select(_pool())


def test_correct_reads_the_verdict_column_and_says_how_undecided_rows_go() -> None:
    assert Correct().select(_pool()).indices.tolist() == [0]
    assert Correct(undecided="keep").select(_pool()).indices.tolist() == [0, 2, 3]
    assert Correct(keep="incorrect").select(_pool()).indices.tolist() == [1]
    without = _pool().remove_columns("label.correct")  # no verdicts: checked against the reference
    assert Correct().select(without).indices.tolist() == [0, 2]
    with pytest.raises(ValueError, match="undecided"):
        Correct(undecided="maybe").select(_pool())
