"""Dedup and decontamination on real questions (GSM8K, MATH-500 traces) against real benchmarks."""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
from datasets import Dataset

from natural_thoughts.embed import embed
from natural_thoughts.schema import problem_id
from natural_thoughts.selectors import Decontaminate, ExactDedup, NearDedup, Selector
from natural_thoughts.selectors.dedup import _first_of_groups, _first_of_groups_ann, ngrams
from natural_thoughts.selectors.testing import parametrize_with_checks

from tests.conftest import DATA

BENCH = DATA / "benchmarks"


@pytest.fixture(autouse=True, scope="module")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NATURAL_THOUGHTS_CACHE", str(tmp_path_factory.getbasetemp() / "nt-cache"))
        yield


def questions(name: str, n: int | None = None) -> list[str]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh][:n]


def problems(texts: list[str]) -> Dataset:
    return Dataset.from_dict({"problem": texts, "problem_id": [problem_id(t) for t in texts]})


@parametrize_with_checks([
    ExactDedup(), NearDedup(), NearDedup(method="embedding", threshold=0.9),
    Decontaminate([str(BENCH / "math.jsonl"), str(BENCH / "aime.jsonl")]),
])
def test_conformance(selector: Selector, check: Callable[[], None]) -> None:
    check()


def test_exact_dedup_keeps_first() -> None:
    texts = ["What is 2 + 2?", "what is  2 + 2?", "What is 3 + 3?", "WHAT IS 2 +\n2?"]
    sel = ExactDedup().select(problems(texts))
    assert sel.indices.tolist() == [0, 2]
    assert sel.dropped == {1: f"exact duplicate of row 0 (problem_id {problem_id(texts[0])})",
                           3: f"exact duplicate of row 0 (problem_id {problem_id(texts[0])})"}
    assert sel.steps[0].dropped == {"ExactDedup: exact duplicate": 2}
    with pytest.raises(KeyError, match="question"):
        ExactDedup(column="question").select(problems(texts))


def test_near_dedup_minhash_finds_edited_copies() -> None:
    base = questions("gsm8k_test.jsonl", 400)
    sources = [i for i, q in enumerate(base) if len(q.split()) >= 60][:20]
    copies = []
    for s in sources:  # change one word of a long question: shingle Jaccard ~0.8-0.9
        w = base[s].split()
        w[len(w) // 2] = "seven"
        copies.append(" ".join(w))
    sel = NearDedup(threshold=0.7).select(problems(base + copies))
    for n, s in enumerate(sources):
        i = len(base) + n
        assert re.fullmatch(rf"near-duplicate of row {s} \(problem_id \w+\) \(jaccard 0\.\d\d\)", sel.dropped[i])
    assert sum(i < len(base) for i in sel.dropped) <= 4  # real GSM8K questions are nearly all distinct
    assert NearDedup(threshold=0.95).select(problems(base + copies)).dropped.keys().isdisjoint(
        range(len(base), len(base) + len(copies)))


def test_near_dedup_embedding() -> None:
    texts = ["If you have ten apples and eat three, how many apples remain?",
             "Prove that the square root of two is irrational.",
             "You have ten apples and you eat three. How many apples remain?",
             "Find all primes p such that p + 2 is also prime and p < 20."]
    sel = NearDedup(method="embedding", threshold=0.85).select(problems(texts))
    assert sel.indices.tolist() == [0, 1, 3]
    assert re.fullmatch(r"near-duplicate of row 0 \(problem_id \w+\) \(cosine 0\.9\d\)", sel.dropped[2])
    with pytest.raises(ValueError, match="method"):
        NearDedup(method="simhash").select(problems(texts))


def edited_copies(texts: list[str], n: int, seed: int) -> list[str]:
    """`n` seeded copies of `texts` items, one word of each replaced: near-duplicates."""
    rng = random.Random(seed)
    copies = []
    for i in rng.sample(range(len(texts)), n):
        w = texts[i].split()
        w[rng.randrange(len(w))] = rng.choice(["seven", "the", "apples", "twice"])
        copies.append(" ".join(w))
    return copies


@pytest.mark.slow  # embeds ~2,000 questions
def test_near_dedup_hnsw_agrees_with_exact_search() -> None:
    """On real GSM8K + MATH-500 questions with seeded edited copies, the HNSW search drops the
    same rows for the same owners as the exact search; cosines agree within 1e-5."""
    base = questions("gsm8k_test.jsonl") + questions("skythought_math500_sky-t1-27b.jsonl")
    copies = min(300, len(base) // 2)  # half the samples' 164 questions
    texts = base + edited_copies(base, copies, seed=0)
    vectors = embed(texts)
    for threshold in (0.8, 0.9, 0.95):
        exact = _first_of_groups(vectors, threshold)
        ann = _first_of_groups_ann(vectors, threshold, block=64)  # many blocks: most owners come from the index
        assert ann.keys() == exact.keys() and len(exact) >= copies * 2 // 3
        assert all(ann[i][0] == exact[i][0] and abs(ann[i][1] - exact[i][1]) < 1e-5 for i in exact)
    ds = problems(texts)
    by_index = NearDedup(method="embedding", threshold=0.9, index="hnsw").select(ds)
    assert by_index.indices.tolist() == NearDedup(method="embedding", threshold=0.9, index="exact").select(ds).indices.tolist()
    with pytest.raises(ValueError, match="index"):
        NearDedup(method="embedding", index="ivf").select(ds)


def test_decontaminate_math500_against_math() -> None:
    texts = questions("skythought_math500_sky-t1-27b.jsonl")
    sel = Decontaminate([str(BENCH / "math.jsonl")]).select(problems(texts))
    assert len(sel.dropped) / len(texts) > 0.9
    bench = [json.loads(line) for line in open(BENCH / "math.jsonl", encoding="utf-8")]
    same = next(row for row in bench if row["problem"] == texts[0])  # MATH-500 holds the first question
    assert sel.dropped[0].startswith(f"8-gram overlap with math unique_id {same['unique_id']}: ")


def test_decontaminate_gsm8k_flags_few() -> None:
    texts = questions("gsm8k_test.jsonl")
    bench = {name: str(BENCH / f"{name}.jsonl") for name in ("math", "aime", "gpqa", "olympiadbench")}
    sel = Decontaminate(bench).select(problems(texts))
    assert len(sel.dropped) / len(texts) < 0.02
    assert len(sel) + len(sel.dropped) == len(texts)


def test_decontaminate_short_texts_and_bad_files(tmp_path: Path) -> None:
    assert ngrams("What is 2+2?", 8) == [("what", "is", "22")]
    assert ngrams("a b c a b c", 2) == [("a", "b"), ("b", "c"), ("c", "a")]
    bench = tmp_path / "tiny.jsonl"
    bench.write_text(json.dumps({"prompt": "What is 2+2?"}) + "\n"
                     + json.dumps({"prompt": "A train leaves the station at noon going sixty miles an hour east."}) + "\n")
    texts = ["what is 2 + 2", "what is 2+2", "The train leaves the station at noon going sixty miles an hour, east!",
             "What is 2+2? Explain carefully."]
    sel = Decontaminate([str(bench)]).select(problems(texts))
    assert sel.indices.tolist() == [0, 3]
    assert sel.dropped[1] == "3-gram overlap with tiny line 1: 'what is 22'"
    assert sel.dropped[2].startswith("8-gram overlap with tiny line 2: ")
    assert sel.steps[0].dropped == {"Decontaminate: overlaps tiny": 2}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(KeyError, match=r"bad.jsonl line 1: .*fields present: \['text'\]"):
        Decontaminate([str(bad)]).select(problems(texts))


def test_decontaminate_embedding(tmp_path: Path) -> None:
    bench = tmp_path / "para.jsonl"
    bench.write_text(json.dumps({"id": 7, "question": "If you have ten apples and eat three, how many remain?"}) + "\n")
    texts = ["You own 10 apples and consume 3 of them; how many are left?", "Prove that there are infinitely many primes."]
    plain = Decontaminate([str(bench)]).select(problems(texts))
    assert len(plain) == 2
    sel = Decontaminate([str(bench)], embedding_threshold=0.7).select(problems(texts))
    assert sel.indices.tolist() == [1]
    assert re.fullmatch(r"embedding cosine 0\.\d\d with para id 7", sel.dropped[0])
