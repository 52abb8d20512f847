"""Every registered selector passes every conformance check, each (selector, check) its own test:
`pytest --co` lists ids such as `test_conformance[Long-check_deterministic]`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

import natural_thoughts.selectors as builtin
from natural_thoughts.selectors import (
    ClusterUniform,
    Decontaminate,
    DropFlags,
    Long,
    Random,
    Selector,
    Sequential,
    TopLength,
    Union,
    WeightedSum,
    available_selectors,
)
from natural_thoughts.selectors.testing import check_selector, parametrize_with_checks, selector_checks

BENCHMARK = Path(__file__).with_name("benchmark.jsonl")
NEEDS_ARGS: dict[str, Selector] = {
    "TopLength": TopLength(10), "Sequential": Sequential([DropFlags(), Long(C="auto")]),
    "Union": Union([TopLength(5), Random(k=5)]), "WeightedSum": WeightedSum({"Long": 1.0}, k=20),
    "Decontaminate": Decontaminate({"bench": str(BENCHMARK)}), "ClusterUniform": ClusterUniform(n_clusters=5),
}
"""The selectors whose constructor needs an argument, or whose default is too slow for a 32-row test."""
BUILTIN: list[Selector] = [NEEDS_ARGS.get(name) or cls() for name, cls in sorted(available_selectors().items())]


@pytest.fixture(autouse=True, scope="module")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One embedding cache for these tests, never ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NATURAL_THOUGHTS_CACHE", str(tmp_path_factory.getbasetemp() / "nt-cache"))
        yield


@parametrize_with_checks(BUILTIN)
def test_conformance(selector: Selector, check: Callable[[], None]) -> None:
    check()


def test_every_builtin_selector_is_checked_under_a_readable_id(request: pytest.FixtureRequest) -> None:
    exported = {n for n in builtin.__all__ if n in available_selectors()}  # registered when imported
    assert {type(s).__name__ for s in BUILTIN} >= exported
    names = [name for name, _ in selector_checks(Random())]
    assert len(names) == len(set(names)) >= 12 and all(n.startswith("check_") for n in names)
    ids = {item.name for item in request.session.items}
    if any(i.startswith("test_conformance[") for i in ids):  # collected together with the checks
        assert "test_conformance[Long-check_deterministic]" in ids
        assert "test_conformance[TopLength(k=10)-check_empty_input]" in ids


class Chatty(Random):
    """Breaks two rules: work in __init__, and a pick without a reason."""

    def __init__(self, k: int | None = None, seed: int = 0) -> None:
        super().__init__(k, seed)
        self.cache_: dict[str, int] = {}

    def select(self, ds, k=None, seed=None):  # type: ignore[no-untyped-def]
        sel = super().select(ds, k, seed)
        sel.reasons = [""] * len(sel)
        return sel


def test_each_check_fails_on_its_own_and_check_selector_lists_every_failure() -> None:
    failed = set()
    for name, check in selector_checks(Chatty()):
        try:
            check()
        except AssertionError:
            failed.add(name)
    assert failed == {"check_no_work_in_init", "check_selection", "check_k_override"}
    with pytest.raises(AssertionError, match=r"(?s)no work in __init__.*reasons are text"):
        check_selector(Chatty())


class LaxBudget(Random):
    """Takes any budget: check_params does not refuse k=-1."""

    def check_params(self) -> Selector:
        return self


def test_check_params_must_refuse_a_bad_budget() -> None:
    checks = dict(selector_checks(LaxBudget()))
    with pytest.raises(AssertionError, match="k=-1 was not refused"):
        checks["check_params_refused"]()
