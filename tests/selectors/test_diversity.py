"""Diversity selectors: ClusterUniform on real Sky-T1 problems, StrategyCount and Stratified rules."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import yaml
from datasets import Dataset

from natural_thoughts.schema import REASONING_TOKENS
from natural_thoughts.pipeline.config import SelectConfig
from natural_thoughts.selectors import ClusterUniform, Random, Selector, Sequential, Stratified, StrategyCount, get_selector
from natural_thoughts.selectors.diversity import strategy_counts
from natural_thoughts.selectors.testing import parametrize_with_checks

from tests.conftest import DATA


SELECTORS: list[Selector] = [
    ClusterUniform(n_clusters=3), ClusterUniform(on="reasoning", n_clusters=4, k=5, seed=1),
    StrategyCount(), StrategyCount(min=1, max=2, k=4), StrategyCount(min=1, max=3, min_density=2.0, downsample=0.0),
    Stratified(), Stratified(k=6, then="length"), Stratified.s1(k=5), Stratified(by="problem_id", order="random"),
    Stratified(by="domain", k=4),
]


@pytest.fixture(autouse=True, scope="module")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One embedding cache for the test session (the embedding tests share it), never ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NATURAL_THOUGHTS_CACHE", str(tmp_path_factory.getbasetemp() / "nt-cache"))
        yield


@parametrize_with_checks(SELECTORS)
def test_conformance(selector: Selector, check: Callable[[], None]) -> None:
    check()


def sky_t1() -> Dataset:
    rows = [json.loads(line) for line in open(DATA / "skythought_math500_sky-t1-27b.jsonl", encoding="utf-8")]
    return Dataset.from_list([{"problem": r["question"], "domain": f"level {r['level']}", "reasoning": r["code"][0]}
                              for r in rows])


def entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_cluster_uniform_spreads_over_clusters() -> None:
    ds = sky_t1()
    clusters = 20 if len(ds) >= 300 else 8  # about 3 picks per cluster, 8+ questions per cluster
    k = 3 * clusters
    cu = ClusterUniform(n_clusters=clusters, k=k).fit(ds)
    assert cu.centroids_.shape == (clusters, 384) and cu.labels_.shape == (len(ds),)
    sel = cu.select(ds)
    picked = cu.labels_[sel.indices]
    sizes = np.bincount(cu.labels_, minlength=clusters)
    counts = np.bincount(picked, minlength=clusters)
    assert (counts == np.minimum(sizes, 3)).sum() >= clusters - 2  # about 3 per cluster
    randoms = [entropy(cu.labels_[Random(k=k, seed=s).select(ds).indices]) for s in range(5)]
    assert entropy(picked) > max(randoms)
    assert all(re.fullmatch(r"cluster \d+ \(round [123]\)", r) for r in sel.reasons)
    assert set(picked[:clusters]) == set(range(clusters))  # the first round visits every cluster
    np.testing.assert_array_equal(cu.assign(ds.select(range(len(ds) // 2))), cu.labels_[:len(ds) // 2])
    assert sel.dropped and all("not reached" in r for r in sel.dropped.values())
    assert sel.steps[0].dropped == {"ClusterUniform: over cluster quota": len(ds) - k}  # grouped, not per row


def test_cluster_uniform_embeds_each_problem_once() -> None:
    texts = ["What is 2 + 2?", "Name a prime larger than 10.", "Integrate x^2 from 0 to 1."]
    ds = Dataset.from_dict({"problem": [t for t in texts for _ in range(3)]})
    cu = ClusterUniform(n_clusters=50).fit(ds)
    assert cu.centroids_.shape[0] == 3  # clipped to the distinct texts
    assert len(set(cu.labels_.tolist())) == 3
    assert all(len(set(cu.labels_[i * 3 : i * 3 + 3])) == 1 for i in range(3))
    sel = cu.select(ds)
    assert sorted(sel.indices.tolist()) == list(range(9))
    assert len(set(cu.labels_[sel.indices[:3]])) == 3
    with pytest.raises(TypeError, match="row 1 is not text"):
        ClusterUniform().fit(Dataset.from_dict({"problem": ["a", None]}))


def strategies_ds() -> Dataset:
    """Traces with 0..9 distinct strategies and varying density."""
    rows = []
    for i in range(40):
        n = i % 10
        rows.append({"label.strategies": [{"name": f"s{j}", "count": 1 + (i % 3)} for j in range(n)],
                     "reasoning": "word " * (100 + 50 * i), REASONING_TOKENS: 200 + 100 * i})
    return Dataset.from_list(rows)


def test_strategy_counts_parsing() -> None:
    assert strategy_counts(["a", "b", "a"], 0, "c") == {"a": 2.0, "b": 1.0}
    assert strategy_counts([{"strategy": "x", "steps": [1, 2, 3]}, {"name": "y", "count": None},
                            {"name": "z", "count": 0}], 0, "c") == {"x": 3.0, "y": 1.0}
    assert strategy_counts('["a", "b"]', 0, "c") == {"a": 1.0, "b": 1.0}
    assert strategy_counts(None, 0, "c") == {}
    with pytest.raises(TypeError, match="row 7"):
        strategy_counts([3], 7, "label.strategies")


def test_strategy_count_rule() -> None:
    ds = strategies_ds()
    sc = StrategyCount(min=4, max=8)
    distinct = sc.score(ds)
    density, unit = sc.densities(ds)
    assert unit == "tokens"
    i = 17  # 7 strategies, count 3 each, 1,900 tokens
    assert distinct[i] == 7 and density[i] == pytest.approx(21 / 1900 * 1000)
    sel = sc.select(ds)
    in_range = (distinct >= 4) & (distinct <= 8)
    assert in_range[sel.indices].all()
    threshold = np.percentile(density[in_range], 25)
    low = in_range & (density < threshold)
    assert (~low & in_range)[sel.indices].sum() == (~low & in_range).sum()  # dense traces all kept
    for row, reason in sel.dropped.items():
        if distinct[row] < 4:
            assert reason == f"{distinct[row]:g} distinct strategies < min 4"
        elif distinct[row] > 8:
            assert reason == f"{distinct[row]:g} distinct strategies > max 8"
        else:
            assert low[row] and reason.startswith("low density, not sampled")
    none_low = StrategyCount(min=4, max=8, downsample=0.0).select(ds)
    assert not low[none_low.indices].any()
    all_low = StrategyCount(min=4, max=8, downsample=1.0).select(ds)
    assert sorted(all_low.indices.tolist()) == np.flatnonzero(in_range).tolist()


def test_strategy_count_downsample_rate_and_words() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    ds = Dataset.from_dict({"label.strategies": [["a", "b", "c", "d"]] * n,
                            "reasoning": [" ".join(["w"] * int(k)) for k in rng.integers(100, 3000, n)]})
    sc = StrategyCount(min_density=3.0, downsample=0.3)
    assert sc.densities(ds)[1] == "words"
    low = sc.densities(ds)[0] < 3.0
    kept_low = low[sc.select(ds).indices].sum()
    assert 0.25 < kept_low / low.sum() < 0.35
    with pytest.raises(KeyError, match="label.strategies"):
        StrategyCount().select(Dataset.from_dict({"reasoning": ["x"]}))


def test_stratified_round_robin() -> None:
    domains = ["algebra"] * 50 + ["geometry"] * 5 + ["logic"] * 5
    ds = Dataset.from_dict({"domain": domains, "reasoning": ["x " * (i + 1) for i in range(60)]})
    sel = Stratified(k=15, seed=3).select(ds)
    picked = [domains[i] for i in sel.indices]
    assert Counter(picked) == {"algebra": 5, "geometry": 5, "logic": 5}
    assert all(len(set(picked[r * 3 : r * 3 + 3])) == 3 for r in range(5))  # each round visits each group
    assert sel.reasons[3].endswith("(round 2)") and sel.reasons[0].startswith("domain=")
    assert Stratified(k=15, seed=3).select(ds).indices.tolist() == sel.indices.tolist()
    assert Stratified(k=15, seed=4).select(ds).indices.tolist() != sel.indices.tolist()
    ranked = Stratified(then="length", k=3).select(ds)
    assert ranked.reasons[0].split("length rank ")[1].rstrip(")").isdigit()


def test_s1_rank_decay_within_domain() -> None:
    ds = Dataset.from_dict({"domain": ["a"] * 20 + ["b"] * 20, "reasoning": ["x " * (i % 20 + 1) for i in range(40)]})
    ranks = Counter()
    for seed in range(300):
        sel = Stratified.s1(k=1, seed=seed).select(ds)
        ranks[19 - sel.indices[0] % 20] += 1  # rank 0 = longest
    assert 0.42 < ranks[0] / 300 < 0.58 and 0.17 < ranks[1] / 300 < 0.33 and ranks[0] > ranks[1] > ranks[2]
    sel = Stratified.s1(k=40).select(ds)
    assert sorted(sel.indices.tolist()) == list(range(40))
    with pytest.raises(ValueError, match="then must be"):
        Stratified(then="width").select(ds)


def test_cluster_uniform_on_reads_from_yaml() -> None:
    text = """
selector:
  Sequential:
    steps:
      - ClusterUniform:
          on: reasoning
          n_clusters: 4
"""
    data = yaml.safe_load(text)
    assert True in data["selector"]["Sequential"]["steps"][0]["ClusterUniform"]  # YAML 1.1 reads `on` as True
    expected = Sequential([ClusterUniform(on="reasoning", n_clusters=4)])
    assert get_selector(data["selector"]) == expected
    config = SelectConfig.model_validate(data)
    assert config.selector == {"Sequential": {"steps": [{"ClusterUniform": {"on": "reasoning", "n_clusters": 4}}]}}
    assert get_selector(config.selector) == expected


def test_stratified_defaults_to_the_annotated_domain() -> None:
    ds = Dataset.from_dict({"domain": ["math"] * 6, "label.domain": ["Science", "Law", "Science", "Law", "Law", None]})
    sel = Stratified(k=4, seed=0).select(ds)
    assert sel.steps[0].fitted == {"by_": "label.domain"}
    groups = Counter(r.split(" ")[0] for r in sel.reasons)
    assert set(groups) == {"label.domain=Science", "label.domain=Law", "label.domain=None"}  # round 1 visits each
    assert sorted(groups.values()) == [1, 1, 2]
    assert sel.steps[0].dropped == {"Stratified: over group quota": 2}
    unlabelled = ds.remove_columns("label.domain").add_column("label.domain", [None] * 6)
    assert Stratified(k=2).select(unlabelled).steps[0].fitted == {"by_": "domain"}
    assert Stratified(by="domain", k=2).select(ds).reasons[0].startswith("domain=math")
    with pytest.raises(KeyError, match="domain"):
        Stratified().select(Dataset.from_dict({"problem": ["a"]}))
