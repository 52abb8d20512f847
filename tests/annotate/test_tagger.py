"""The model-free strategy tagger on real Sky-T1 traces: shape, a monotonic property, agreement."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from typer.testing import CliRunner

from natural_thoughts.annotate import MARKERS, STRATEGIES, tag_strategies, tag_text, tagger_agreement
from natural_thoughts.annotate.annotators import STRATEGY_TYPE
from natural_thoughts.annotate.tagger import tag_batch
from natural_thoughts.cli import app
from natural_thoughts.load.sources import load_traces
from natural_thoughts.selectors import StrategyCount

from tests.conftest import DATA

SKY = DATA / "skythought_math500_sky-t1-27b.jsonl"
WAIT_ALT = re.compile(r"\b(wait|alternatively)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def tagged() -> Dataset:
    return tag_strategies(load_traces(SKY, preset="skythought_eval"))


def _counts(cell: list[dict]) -> dict[str, int]:
    return {u["name"]: u["count"] for u in cell}


def test_markers_cover_the_taxonomy_in_order() -> None:
    assert list(MARKERS) == list(STRATEGIES)


def test_tag_text_counts_word_starts_case_insensitively() -> None:
    text = ("So I have this problem. Wait, no. WAIT! Await the result. Alternatively, try case 1 "
            "and Case 2. Let me verify: fine. In summary, 4.")
    found = tag_text(text)
    counts = _counts(found)
    assert counts == {"self_verification": 1, "backtracking": 2, "exploring_alternatives": 1,
                      "case_analysis": 2, "restating_problem": 1, "summarizing_progress": 1}
    assert [u["name"] for u in found] == [n for n in STRATEGIES if n in counts]  # taxonomy order
    evidence = {u["name"]: u["evidence"] for u in found}
    assert "Wait" in evidence["backtracking"] and "Alternatively" in evidence["exploring_alternatives"]
    assert tag_text("") == [] and tag_text(None) == []


def test_every_trace_gets_counts_that_strategy_count_reads(tagged: Dataset) -> None:
    cells = tagged["label.strategies"]
    assert len(cells) == len(tagged)
    for cell in cells:
        assert all(u["name"] in STRATEGIES and u["count"] >= 1 and u["evidence"] for u in cell)
        assert len({u["name"] for u in cell}) == len(cell)
    distinct = StrategyCount(min=1, max=len(STRATEGIES)).score(tagged)
    assert distinct.tolist() == [len(c) for c in cells]
    assert np.mean(distinct) > 2  # long Sky-T1 reasoning uses several strategies, not none
    kept = StrategyCount(min=4, max=8, density="per_1k_words").select(tagged, seed=0)
    assert 0 < len(kept.indices) < len(tagged)


def test_more_wait_and_alternatively_markers_mean_more_strategies(tagged: Dataset) -> None:
    """A monotonic relation on real data: more backtracking/alternative markers, more strategies."""
    texts = [r or c for r, c in zip(tagged["reasoning"], tagged["completion"])]
    markers = np.array([len(WAIT_ALT.findall(t)) for t in texts])
    cells = tagged["label.strategies"]
    distinct = np.array([len(c) for c in cells])
    occurrences = np.array([sum(u["count"] for u in c) for c in cells])
    for cell, text in zip(cells, texts):  # each marker is counted under its strategy
        counts = _counts(cell)
        assert counts.get("backtracking", 0) >= len(re.findall(r"\bwait\b", text, re.IGNORECASE))
        assert counts.get("exploring_alternatives", 0) >= len(re.findall(r"\balternatively\b", text, re.IGNORECASE))
    rho, p = spearmanr(markers, distinct)
    assert rho > 0 and p < 0.01, f"spearman {rho:.3f} (p={p:.2g})"
    low, high = np.quantile(markers, [1 / 3, 2 / 3])
    assert distinct[markers >= high].mean() > distinct[markers <= low].mean()
    assert occurrences[markers >= high].mean() > occurrences[markers <= low].mean()


SENTENCES = {"Wait, that is off.": "backtracking", "Alternatively, try x.": "exploring_alternatives",
             "Case 1: y.": "case_analysis", "To summarize: z.": "summarizing_progress"}


@settings(max_examples=30, deadline=None)
@given(row=st.integers(0, 10**6), added=st.lists(st.sampled_from(sorted(SENTENCES)), max_size=6))
def test_appending_markers_adds_exactly_their_counts(tagged: Dataset, row: int, added: list[str]) -> None:
    row %= len(tagged)
    text = tagged[row]["reasoning"] or tagged[row]["completion"]
    before = _counts(tag_text(text))
    after = _counts(tag_text(text + "\n" + " ".join(added)))
    for name in STRATEGIES:
        extra = sum(SENTENCES[s] == name for s in added)
        assert after.get(name, 0) == before.get(name, 0) + extra, name


def test_agreement_is_measured_per_strategy(tagged: Dataset) -> None:
    same = tagger_agreement(tagged)
    assert same["rows"] == len(tagged) and same["unlabelled_rows"] == 0
    assert same["row_jaccard"] == 1.0 and same["macro"] == {"precision": 1.0, "recall": 1.0, "jaccard": 1.0}

    def degrade(i: int, cell: list[dict]) -> list[dict] | None:
        if i % 10 == 0:
            return None  # a judge error: no label
        return [u for u in cell if u["name"] != "backtracking"] + [{"name": "analogy", "count": 1, "evidence": "-"}]

    judged = tagged.remove_columns("label.strategies").add_column(
        "label.strategies", [degrade(i, c) for i, c in enumerate(tagged["label.strategies"])])
    report = tagger_agreement(judged)
    assert report["rows"] == len(tagged) - len(range(0, len(tagged), 10))
    assert report["unlabelled_rows"] == len(range(0, len(tagged), 10))
    back = report["per_strategy"]["backtracking"]
    assert back["judge"] == 0 and back["tagger"] > 0 and back["precision"] == 0 and back["recall"] is None
    analogy = report["per_strategy"]["analogy"]
    assert analogy["recall"] == analogy["both"] / report["rows"] < 1 and analogy["precision"] == 1.0
    assert report["per_strategy"]["case_analysis"]["jaccard"] == 1.0
    assert report["row_jaccard"] < 1.0


def test_commands_tag_and_report_agreement(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tagged.parquet"
    result = runner.invoke(app, ["annotate", str(SKY), "--preset", "skythought_eval", "-a", "tagger",
                                 "--output-dir", str(tmp_path / "work"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = load_traces(out)
    assert written["label.strategies"] == tag_strategies(load_traces(SKY, preset="skythought_eval"))["label.strategies"]
    result = runner.invoke(app, ["tagger-agreement", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["macro"]["jaccard"] == 1.0
    refused = runner.invoke(app, ["annotate", str(SKY), "-a", "tagger", "-a", "strategies", "--model", "m"])
    assert refused.exit_code != 0 and "both write label.strategies" in refused.output


EDGE_TEXTS = [None, "", "wait", "Wait, no", "await", "a-wait", "éwait", "ǰwait", "İwait wait", "\x00wait",
              "wait\x00wait", "step ٣", "step ²", "step ①", "case ٣٤ and case 3", "plug ü back", "plugging ٣x back",
              "plug ① back", "ſo i have this problem", "K wait", "中文wait 中文 wait", "’wait—wait", "wait\u0301",
              "first,second, next,", "Ⅻwait", "roughly" * 3, "🙂 in summary, wait", "xwait", "2wait", "_wait",
              "\u212a wait \u212await", "WAIT", "wait2", "\x00", "İ", "ß wait", "STRASSE ẞ wait", "ﬃ wait", "ﬁrst,",
              "e\u0301wait", "step １２", "ΑΣ wait ΣΑ", "\u00a0wait\u00a0", "wait\u2028wait", "\x1cwait\x1d",
              "context, next,", "thoroughly roughly", "sanity check the answer", "double-check double check",
              "a-wait\x00", "Let me verify. LET ME CHECK", "x" * 50 + "wait" + "y" * 50, "İ" * 3 + "wait",
              "in the case of case one case 1"]
"""Texts on which RE2 and Python's `re` could part: non-ASCII letters, digits and numerals before
or inside markers, NUL, case foldings that change length (İ) or give ASCII (the Kelvin sign),
Unicode spaces in the evidence, markers at 0, at the end, in capitals or right after a letter,
digit or underscore, overlapping markers of two strategies."""


def _shared_texts() -> list[str]:
    """Every string field of every shared data file (completions, solutions, questions, answers)."""
    def strings(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    files = sorted(DATA.glob("*.jsonl")) + sorted(DATA.glob("benchmarks/*.jsonl"))
    return [s for f in files for line in f.open(encoding="utf-8") for v in json.loads(line).values()
            for s in strings(v)]


def _forms(texts: list[str | None]) -> dict[str, Any]:
    """The same texts in every form `tag_batch` takes: a list, Arrow arrays of each string type, a
    slice of a larger array, chunks."""
    padded = pa.array(["pad wait", *texts, "Wait pad"], pa.string())
    half = len(texts) // 2
    return {"list": texts, "string": pa.array(texts, pa.string()), "large_string": pa.array(texts, pa.large_string()),
            "string_view": pa.array(texts, pa.string_view()), "dictionary": pa.array(texts).dictionary_encode(),
            "slice": padded.slice(1, len(texts)),
            "chunks": pa.chunked_array([padded.slice(1, half), pa.array(texts[half:], pa.string())])}


def test_batch_tagger_equals_per_row_tagger_on_edge_texts() -> None:
    texts = EDGE_TEXTS + [f"{a}{b}" for a in EDGE_TEXTS if a for b in EDGE_TEXTS if b]
    reference = pa.array([tag_text(t) for t in texts], STRATEGY_TYPE)
    for size in (1, 2, 7, 100, len(texts)):  # mixed batches: ASCII, non-ASCII, NUL, İ, empty, None
        for start in range(0, len(texts), size if size > 7 else 97):
            for form, batch in _forms(texts[start : start + size]).items():
                tagged = tag_batch(batch)
                assert tagged.type == STRATEGY_TYPE, form
                assert tagged.equals(reference[start : start + size]), (size, start, form)


def test_batch_tagger_takes_empty_null_and_unencodable_batches() -> None:
    assert tag_batch([]).equals(pa.array([], STRATEGY_TYPE))
    assert tag_batch(pa.chunked_array([], pa.string())).equals(pa.array([], STRATEGY_TYPE))
    assert tag_batch(pa.array([None, None])).equals(pa.array([[], []], STRATEGY_TYPE))
    lone = ["\ud800" + " " * 60 + "wait", "wait"]  # a lone surrogate: no Arrow string, `tag_text` tags it
    assert tag_batch(lone).to_pylist() == [tag_text(t) for t in lone]


def test_batch_tagger_equals_per_row_tagger_on_every_shared_text() -> None:
    texts = _shared_texts()
    assert len(texts) > 1_000 and any(not t.isascii() for t in texts)
    reference = pa.array([tag_text(t) for t in texts], STRATEGY_TYPE)
    assert tag_batch(texts).equals(reference)
    for start in range(0, len(texts), 1000):  # in the batches `tag_strategies` hands it, as Arrow
        assert tag_batch(pa.array(texts[start : start + 1000])).equals(reference[start : start + 1000]), start


def test_batch_tagger_matches_the_per_row_tagger_on_hard_cases() -> None:
    """Cases `tag_batch` must get right, checked against `tag_text`: a marker right after a letter
    before and after the first rare marker, in one batch and repeated in a larger one, and markers
    after many multi-byte characters (the evidence windows must stay on character offsets), with a
    non-ASCII number ending a `step \\d+` match and the Kelvin sign, whose lowercase is ASCII."""
    texts = ["Suppose so. Then xwait, wait.", "xwait, then suppose, wait", "Roughly: xsuppose wait",
             "é" * 50 + " wait, " + "中" * 30 + " step ١٢٣" + "ü" * 45 + " so far",
             "🙂" * 60 + " roughly " + "Σ" * 20 + "xwait wait " + "ß" * 41 + " wait",
             "ſ" * 45 + " Let me verify, plug ① back", "go bac\u212a, wait"]
    for batch in (texts, texts * 20):
        tagged = tag_batch(batch)
        assert tagged.to_pylist() == [tag_text(t) for t in batch]
        assert tagged.equals(pa.array([tag_text(t) for t in batch], STRATEGY_TYPE))
