"""The guided-fraction schedule and the per-problem choice of rollouts to guide."""

from __future__ import annotations

import numpy as np
import pytest

from natural_thoughts.guide import choose_rollouts, guided_fraction

DECAYING = ["linear", "exponential", "cosine"]


@pytest.mark.parametrize("kind", DECAYING)
def test_schedule_runs_from_start_to_end_and_holds(kind: str) -> None:
    assert guided_fraction(0, 60, kind=kind) == pytest.approx(0.1)
    assert guided_fraction(20, 60, kind=kind) == pytest.approx(0.01)  # decays over the first third
    assert guided_fraction(59, 60, kind=kind) == pytest.approx(0.01)
    assert guided_fraction(60, 60, kind=kind, decay_steps=60) == pytest.approx(0.01)


@pytest.mark.parametrize("kind", DECAYING)
def test_schedule_decays_monotonically(kind: str) -> None:
    values = [guided_fraction(s, 90, start=0.5, end=0.02, kind=kind, decay_steps=90) for s in range(91)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert all(0.02 - 1e-12 <= v <= 0.5 for v in values)


def test_schedule_shapes() -> None:
    assert guided_fraction(5, 10, start=0.3, end=0.1, kind="linear", decay_steps=10) == pytest.approx(0.2)
    assert guided_fraction(5, 10, start=0.4, end=0.1, kind="exponential", decay_steps=10) == pytest.approx(0.2)
    assert guided_fraction(5, 10, start=0.3, end=0.1, kind="cosine", decay_steps=10) == pytest.approx(0.2)
    assert guided_fraction(3, 10, start=0.3, end=0.1, kind="cosine", decay_steps=10) > 0.2  # slow, then fast
    assert {guided_fraction(s, 10, kind="constant") for s in range(12)} == {0.1}


def test_schedule_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="end > 0"):
        guided_fraction(1, 10, end=0.0, kind="exponential")
    with pytest.raises(ValueError, match="unknown schedule kind"):
        guided_fraction(1, 10, kind="step")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="end <= start"):
        guided_fraction(1, 10, start=0.01, end=0.1)
    with pytest.raises(ValueError, match="step"):
        guided_fraction(-1, 10)


def rollouts(n_problems: int = 40, per_problem: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Problem ids (each repeated `per_problem` times) and a random complete mask, some problems with none."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{i:03d}" for i in range(n_problems)], per_problem)
    complete = rng.random(len(ids)) < 0.7
    complete[ids == "p000"] = False
    return ids, complete


def test_at_least_one_per_problem_and_never_an_incomplete_rollout() -> None:
    ids, complete = rollouts()
    chosen = choose_rollouts(ids, complete, fraction=0.01, seed=3)
    assert not (chosen & ~complete).any()
    for pid in np.unique(ids):
        rows = ids == pid
        assert chosen[rows].sum() == (1 if complete[rows].any() else 0)


@pytest.mark.parametrize(("fraction", "n_complete", "expected"), [(0.3, 10, 3), (0.5, 5, 3), (0.1, 5, 1),
                                                                  (1.0, 7, 7), (0.25, 8, 2), (0.0, 8, 0)])
def test_fraction_is_respected(fraction: float, n_complete: int, expected: int) -> None:
    ids = ["a"] * (n_complete + 3)
    complete = [True] * n_complete + [False] * 3
    assert choose_rollouts(ids, complete, fraction, seed=1).sum() == expected


def test_choice_is_deterministic_and_keyed_on_seed_and_problem() -> None:
    ids, complete = rollouts()
    first = choose_rollouts(ids, complete, 0.5, seed=7)
    assert np.array_equal(first, choose_rollouts(list(ids), list(complete), 0.5, seed=7))
    assert not np.array_equal(first, choose_rollouts(ids, complete, 0.5, seed=8))
    # A problem's choice does not depend on the other problems in the batch, nor on their order.
    order = np.concatenate([np.flatnonzero(ids == pid) for pid in np.unique(ids)[::-1]])  # problems reversed
    assert np.array_equal(choose_rollouts(ids[order], complete[order], 0.5, seed=7), first[order])
    some = np.isin(ids, ["p003", "p017"])
    assert np.array_equal(choose_rollouts(ids[some], complete[some], 0.5, seed=7), first[some])


def test_integer_ids_empty_input_and_bad_arguments() -> None:
    assert choose_rollouts([1, 1, 2], [True, True, True], 0.5).sum() == 2
    assert choose_rollouts([], [], 0.5).shape == (0,)
    with pytest.raises(ValueError, match="one length"):
        choose_rollouts(["a", "b"], [True], 0.5)
    with pytest.raises(ValueError, match="fraction"):
        choose_rollouts(["a"], [True], 1.5)
