"""Core selectors: the conformance suite over each, behaviour on small tables, and real Sky-T1 data."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from datasets import Dataset

from natural_thoughts.parse import extract_final_answer
from natural_thoughts.schema import REASONING_TOKENS, problem_id
from natural_thoughts.selectors import (
    Correct,
    DropFlags,
    LanguageMix,
    LengthRange,
    Long,
    ModelsDisagree,
    PassRate,
    Random,
    RankDecay,
    Repetition,
    Selector,
    Sequential,
    TopLength,
    Union,
    VerbosityBand,
    WeakSolves,
    WeightedSum,
    get_selector,
)
from natural_thoughts.selectors.quality import mixed_share, repetition_ratio
from natural_thoughts.selectors.testing import check_selector, default_dataset, parametrize_with_checks

from tests.conftest import DATA


SELECTORS: list[Selector] = [
    Random(), Random(k=5, seed=3), Long(), Long(C=800, tau=1.0, k=6), LengthRange(min_tokens=300),
    LengthRange(100, 1500), TopLength(5), RankDecay(k=8), RankDecay(group_by=None, seed=2),
    ModelsDisagree(), ModelsDisagree(judge="exact", k=4), PassRate(), PassRate(low=0.25, high=0.5),
    WeakSolves(), DropFlags(), DropFlags(flags=["truncated"], drop_errors=False), Correct(),
    Correct(keep="incorrect"), Repetition(), LanguageMix(),
    Sequential([DropFlags(), Long(C=1000), Random(k=6)]),
    Sequential([Repetition(), TopLength(4)], k=3, seed=1),
    Union([TopLength(3), Random(k=3)]), Union([Correct(), ModelsDisagree()], k=5),
    WeightedSum({"Long": 1.0, "ModelsDisagree": 2.0}, k=5),
    WeightedSum([(TopLength(None), 1.0), (Random(), 0.1)]),
    Long(C="auto"), Long(C="auto", C_quantile=0.5, k=5), VerbosityBand(), VerbosityBand(min=2, max=8, k=4),
]


@parametrize_with_checks(SELECTORS)
def test_conformance(selector: Selector, check: Callable[[], None]) -> None:
    check()


def test_conformance_catches_a_broken_selector() -> None:
    class Eager(Random):
        def __init__(self, k: int | None = None, seed: int = 0) -> None:
            super().__init__(k, seed)
            self.cache_ = {}

    with pytest.raises(AssertionError, match="no work in __init__"):
        check_selector(Eager())


def lengths_ds(lengths: list[int], **extra: list[Any]) -> Dataset:
    return Dataset.from_dict({REASONING_TOKENS: lengths, **extra})


def test_long_probability_and_rate() -> None:
    ds = lengths_ds([2500] * 4000 + [6000] * 100)
    sel = Long(C=5000, tau=2.5).select(ds)
    p = Long(C=5000, tau=2.5).score(ds)
    assert p[0] == pytest.approx(0.5 ** 2.5) and p[-1] == 1.0
    kept = set(sel.indices.tolist())
    assert set(range(4000, 4100)) <= kept  # p = 1: always kept
    assert len(kept & set(range(4000))) / 4000 == pytest.approx(0.5 ** 2.5, abs=0.03)
    assert sel.steps[0].dropped == {"Long: not sampled": 4100 - len(kept)}
    assert all(r.startswith("dropped by Long sampling (p=0.18)") for r in sel.dropped.values())
    assert sel.reasons[-1] == "kept with p=1.00 (l=6000)"


def test_long_budget_subsamples_survivors() -> None:
    ds = lengths_ds(list(range(100, 10100, 100)))
    survivors = set(Long(seed=4).select(ds).indices.tolist())
    sel = Long(k=10, seed=4).select(ds)
    assert len(sel) == 10 and set(sel.indices.tolist()) <= survivors
    assert Long(k=10, seed=4).select(ds).indices.tolist() == sel.indices.tolist()
    assert "Long: over budget k=10" in sel.steps[0].dropped


def test_long_missing_column_says_how_to_make_it() -> None:
    with pytest.raises(KeyError, match="add_reasoning_tokens"):
        Long().select(Dataset.from_dict({"reasoning": ["a"]}))


def test_random_is_uniform_and_seeded() -> None:
    ds = lengths_ds(list(range(50)))
    a, b = Random(k=10, seed=1).select(ds), Random(k=10, seed=2).select(ds)
    assert len(a) == 10 and a.indices.tolist() != b.indices.tolist()
    assert Random(k=10, seed=1).select(ds).indices.tolist() == a.indices.tolist()
    counts = np.bincount(np.concatenate([Random(k=5, seed=s).select(ds).indices for s in range(400)]),
                         minlength=50)
    assert counts.min() > 15 and counts.max() < 70  # expected 40 per row


def test_length_range_and_top_length() -> None:
    ds = lengths_ds([50, 500, 5000, 1500, 20])
    sel = LengthRange(min_tokens=100, max_tokens=2000).select(ds)
    assert sel.indices.tolist() == [1, 3]
    assert sel.dropped[0] == "length 50 < min_tokens 100"
    assert sel.dropped[2] == "length 5000 > max_tokens 2000"
    assert sel.steps[0].dropped == {"LengthRange: too short": 2, "LengthRange: too long": 1}
    assert TopLength(2).select(ds).indices.tolist() == [2, 3]


def test_the_run_budget_reaches_a_budgeted_last_step() -> None:
    """`select.k` (here `select(..., k=)`) is the budget of `TopLength` inside `Sequential`."""
    from natural_thoughts import select

    ds = lengths_ds([50, 500, 5000, 1500, 20])
    assert select(ds, {"Sequential": {"steps": ["TopLength"]}}, k=2).indices.tolist() == [2, 3]
    assert select(ds, {"Sequential": {"steps": [{"LengthRange": {"min_tokens": 30}}, "TopLength"]}},
                  k=3).indices.tolist() == [2, 3, 1]
    assert len(select(ds, "TopLength", k=1)) == 1 and len(TopLength().select(ds)) == len(ds)


def test_rank_decay_ranks_within_groups_and_prefers_long() -> None:
    ds = lengths_ds([10, 40, 30, 20, 5, 7], domain=["a", "a", "a", "a", "b", "b"])
    assert RankDecay().ranks(ds).tolist() == [3, 0, 1, 2, 1, 0]
    picks = [RankDecay(group_by=None, k=1, seed=s).select(ds).indices[0] for s in range(600)]
    freq = np.bincount(picks, minlength=6) / 600
    weights = 2.0 ** -np.array([3, 0, 1, 2, 5, 4])
    assert np.allclose(freq, weights / weights.sum(), atol=0.06)


def test_rank_decay_survives_huge_groups() -> None:
    ds = lengths_ds(list(range(3000)), domain=["x"] * 3000)
    sel = RankDecay(k=2500).select(ds)
    assert len(set(sel.indices.tolist())) == 2500
    assert sel.indices[0] in range(2990, 3000)


class ExactJudge:
    """A real (if simple) judge object with the `.equivalent(pairs)` protocol."""

    def equivalent(self, pairs: list[tuple[str, str]]) -> list[bool | None]:
        return [a.strip() == b.strip() for a, b in pairs]


def test_models_disagree_reads_full_weak_responses_and_judges() -> None:
    ds = Dataset.from_dict({
        "final_answer": ["4", "\\frac{1}{2}", None, "7"],
        "weak_answer": ["Adding them...\nso the answer is $\\boxed{5}$.", "0.5", "3",
                        "Let me think about this.\nFirst we add the numbers, then I am not sure."],
    })
    sel = ModelsDisagree().select(ds)
    assert sel.indices.tolist() == [0]
    assert sel.dropped == {1: "models agree (math)", 2: "undecided (math)", 3: "undecided (math)"}
    # the LLM judge reads whole responses: row 3's weak response has no final answer, so its closing
    # part is compared (NaturalThoughts' free-form judge), where math/exact leave the row undecided
    assert ModelsDisagree(judge="llm", llm_judge=ExactJudge()).select(ds).indices.tolist() == [0, 1, 3]
    with pytest.raises(ValueError, match="needs llm_judge"):
        ModelsDisagree(judge="llm").select(ds)
    with pytest.raises(KeyError, match="weak_answer"):
        ModelsDisagree().select(ds.remove_columns("weak_answer"))


def pass_rate_ds(correct_counts: list[int], n: int) -> Dataset:
    rows = [{"problem_id": f"p{p}", "label.correct": s < c}
            for p, c in enumerate(correct_counts) for s in range(n)]
    return Dataset.from_list(rows)


def test_pass_rate_band_with_counts() -> None:
    ds = pass_rate_ds([0, 1, 3, 4, 32], 32)
    sel = PassRate(low=1 / 32, high=3 / 32).select(ds)
    assert sorted(set(ds.select(sel.indices.tolist())["problem_id"])) == ["p1", "p2"]
    assert sel.steps[0].dropped == {"PassRate: too hard": 32, "PassRate: too easy": 64}
    assert len(sel) == 64


def test_pass_rate_computes_correctness_when_column_absent() -> None:
    ds = Dataset.from_dict({"problem_id": ["a"] * 4 + ["b"] * 2, "reference_answer": ["1/2"] * 4 + ["3"] * 2,
                            "final_answer": ["0.5", "\\frac12", "1", None, "3", "3"]})
    sel = PassRate(low=0.5, high=0.9).select(ds)
    assert sel.indices.tolist() == [0, 1, 2, 3]  # a: 2 of 3 judged correct; b: 2 of 2 (too easy)
    assert sel.reasons[0].startswith("pass rate 0.667 (2/3)")


def test_weak_solves_drops_whole_problems() -> None:
    ds = Dataset.from_dict({"problem_id": ["a", "a", "b", "c"], "reference_answer": ["2", "2", "5", "1"],
                            "weak_answer": ["3", "\\boxed{2}", "4", None]})
    sel = WeakSolves().select(ds)
    assert sel.indices.tolist() == [2, 3]
    assert sel.reasons == ["weak model fails this problem", "weak answer undecided; kept"]


def test_drop_flags_and_correct() -> None:
    ds = default_dataset()
    sel = DropFlags().select(ds)
    for i in sel.indices:
        assert not ds[int(i)]["flags"] and ds[int(i)]["error"] is None
    assert any(r.startswith("error: backend timeout") for r in sel.dropped.values())
    good, bad = Correct().select(ds), Correct(keep="incorrect").select(ds)
    assert not set(good.indices.tolist()) & set(bad.indices.tolist())
    undecided = sum(a is None for a in ds["final_answer"])
    assert len(good) + len(bad) + undecided == len(ds)


def test_repetition_and_language_mix() -> None:
    assert repetition_ratio("a b c d e f g", 4) == 0.0
    assert repetition_ratio("wait let me check " * 20, 4) > 0.9
    assert mixed_share("the angle θ is α", ignore=("GREEK",)) == 0.0
    assert mixed_share("abcdefghij这是") == pytest.approx(2 / 12)
    steps = " ".join(f"step {i} gives {i * i}" for i in range(30))
    mixed = steps + " 然后我们计算平方根" * 5
    ds = Dataset.from_dict({"reasoning": [steps, "wait wait wait wait " * 30, mixed]})
    assert Repetition().select(ds).indices.tolist() == [0, 2]
    assert LanguageMix().select(ds).indices.tolist() == [0, 1]


def test_sequential_maps_rows_and_keeps_reasons() -> None:
    ds = default_dataset()
    pipe = Sequential([DropFlags(), LengthRange(min_tokens=500), TopLength(None)], k=4)
    sel = pipe.select(ds)
    clean = DropFlags().select(ds).indices
    long_clean = [int(i) for i in clean if ds[int(i)][REASONING_TOKENS] >= 500]
    expected = sorted(long_clean, key=lambda i: -ds[i][REASONING_TOKENS])[:4]
    assert sel.indices.tolist() == expected
    assert [s.name for s in sel.steps] == ["DropFlags", "LengthRange", "TopLength"]
    assert sel.steps[1].n_in == len(clean) and sel.steps[2].n_kept == 4
    assert set(sel.dropped) | set(sel.indices.tolist()) == set(range(len(ds)))
    flagged = next(i for i in range(len(ds)) if ds[i]["flags"])
    assert sel.dropped[flagged].startswith("flagged")
    assert len(sel.report()) == 3


def test_union_order_and_weighted_sum() -> None:
    ds = lengths_ds([10, 50, 30, 40, 20])
    union = Union([TopLength(2), LengthRange(max_tokens=15)]).select(ds)
    assert union.indices.tolist() == [1, 3, 0]
    assert union.reasons[2].startswith("LengthRange:")
    assert Union([TopLength(2), LengthRange(max_tokens=15)], k=1).select(ds).indices.tolist() == [1]
    assert WeightedSum([(TopLength(None), 1.0)], k=2).select(ds).indices.tolist() == [1, 3]
    assert WeightedSum([(TopLength(None), -1.0)], k=2).select(ds).indices.tolist() == [0, 4]
    z = WeightedSum([(TopLength(None), 2.0)]).score(ds)
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(2.0)


def test_yaml_specs_round_trip_and_pickle() -> None:
    spec = {"Sequential": {"steps": [{"DropFlags": {}}, {"name": "Long", "C": 4000}], "k": 5}}
    pipe = get_selector(spec)
    assert pipe == Sequential([DropFlags(), Long(C=4000)], k=5)
    assert pipe != Sequential([DropFlags(), Long(C=3000)], k=5)
    assert "Long(C=4000" in repr(pipe)
    assert pickle.loads(pickle.dumps(pipe)) == pipe
    blend = get_selector({"WeightedSum": {"weights": {"Long": 1.0, "Random": 0.5}, "k": 3}})
    assert len(blend.select(default_dataset())) == 3


@pytest.fixture(scope="module")
def skythought() -> Dataset:
    """Sky-T1 traces with the weaker model's response to the same question beside each."""
    sky = [json.loads(line) for line in (DATA / "skythought_math500_sky-t1-27b.jsonl").open()]
    weak_rows = map(json.loads, (DATA / "skythought_math500_qwen2.5-math-7b.jsonl").open())
    weak = {r["question"]: r for r in weak_rows}
    return Dataset.from_list([{
        "problem_id": problem_id(r["question"]),
        "final_answer": extract_final_answer(r["code"][0]),
        "reference_answer": r["gt"],
        "weak_answer": weak[r["question"]]["code"][0],
        "weak_correct": bool(weak[r["question"]]["score"][0]),
        # Stand-in for tokenizer counts, for this test only: characters / 4.
        REASONING_TOKENS: len(r["code"][0]) // 4,
    } for r in sky])


def test_models_disagree_finds_problems_the_weak_model_fails(skythought: Dataset) -> None:
    sel = ModelsDisagree(judge="math").select(skythought)
    weak_ok = np.asarray(skythought["weak_correct"])
    assert len(sel) >= len(skythought) // 25  # on the full file, 4% or more
    assert (~weak_ok[sel.indices]).mean() > (~weak_ok).mean() + 0.15


def test_long_selects_longer_traces_than_random(skythought: Dataset) -> None:
    long_sel = Long().select(skythought)
    rand_sel = Random(k=len(long_sel)).select(skythought)
    lens = np.asarray(skythought[REASONING_TOKENS], dtype=float)
    assert len(long_sel) >= len(skythought) // 50 + 1
    assert lens[long_sel.indices].mean() > 1.3 * lens[rand_sel.indices].mean()


def test_length_range_with_crossed_bounds_fails_at_select_time() -> None:
    crossed = LengthRange(min_tokens=500, max_tokens=100)  # the constructor only stores
    assert crossed.get_params()["min_tokens"] == 500
    with pytest.raises(ValueError, match=r"min_tokens \(500\) is above max_tokens \(100\)"):
        crossed.select(lengths_ds([50, 300]))


def test_verbosity_band() -> None:
    ds = Dataset.from_dict({"label.verbosity": [0, 3, 5, 6, 10, None, 4]})
    sel = VerbosityBand(min=2, max=5).select(ds)
    assert sel.indices.tolist() == [1, 2, 6]
    assert sel.steps[0].dropped == {"VerbosityBand: below band": 1, "VerbosityBand: above band": 2,
                                    "VerbosityBand: unlabelled": 1}
    assert sel.dropped[3] == "verbosity 6 > max 5" and sel.dropped[5].startswith("no verbosity label")
    assert VerbosityBand().score(ds).tolist() == [1, 1, 1, 0, 0, 0, 1]
    assert len(VerbosityBand(min=0, max=10, k=2).select(ds)) == 2
    with pytest.raises(ValueError, match=r"min \(7\) is above max \(3\)"):
        VerbosityBand(min=7, max=3).select(ds)
    with pytest.raises(TypeError, match="row 1 is not a number: 'high'"):
        VerbosityBand().select(Dataset.from_dict({"label.verbosity": [None, "high"]}))
    with pytest.raises(KeyError, match="verbosity"):
        VerbosityBand().select(Dataset.from_dict({"reasoning": ["x"]}))
    assert get_selector({"VerbosityBand": {"max": 4}}) == VerbosityBand(max=4)
