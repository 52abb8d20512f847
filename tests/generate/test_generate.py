"""Generation with the real vLLM engine on the tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from natural_thoughts import generate, load_problems, load_traces
from natural_thoughts.llm.backends import EngineStartError
from natural_thoughts.llm.backends.vllm import VLLMBackend
from natural_thoughts.schema import FLAGS, TRACE_COLUMNS
from natural_thoughts.llm.store import shard_of

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 48, "seed": 7}


@pytest.fixture(scope="module")
def problems() -> Dataset:
    rows = [{"problem": f"What is {i} + {i}?", "reference_answer": str(2 * i)} for i in range(5)]
    return load_problems(Dataset.from_list(rows))


def test_generate_n2_takes_counts_and_seeds_from_vllm(llm, problems: Dataset) -> None:
    traces = generate(problems, model=llm, n=2, sampling=SAMPLING, show_progress=False)
    assert len(traces) == 2 * len(problems)
    assert set(TRACE_COLUMNS) <= set(traces.column_names)
    assert sorted(zip(traces["problem_id"], traces["sample_index"])) == sorted(
        (pid, s) for pid in problems["problem_id"] for s in (0, 1)
    )
    for row in traces:
        assert row["error"] is None
        assert row["finish_reason"] in {"stop", "length"}
        assert ("truncated" in row["flags"]) == (row["finish_reason"] == "length")
        assert set(row["flags"]) <= set(FLAGS)
        total = row["reasoning_tokens"] + row["answer_tokens"]
        assert 0 < total <= SAMPLING["max_tokens"]
        sampling = json.loads(row["sampling"])
        assert sampling["n"] == 2 and isinstance(sampling["seed"], int)
        assert row["prompt"].endswith("<think>\n")  # rendered by the model's own chat template
        if "</think>" not in row["completion"] and row["completion"].strip():
            # the template opened the reasoning and the model never closed it
            assert "unterminated_reasoning" in row["flags"] and row["reasoning"]
            assert row["reasoning_tokens"] == total and row["answer_tokens"] == 0
    seeds = {json.loads(s)["seed"] for s in traces["sampling"]}
    assert len(seeds) == len(problems)  # one seed per request, different across problems


def test_same_seed_same_traces(llm, problems: Dataset) -> None:
    first = generate(problems, model=llm, n=2, sampling=SAMPLING, show_progress=False)
    second = generate(problems, model=llm, n=2, sampling=SAMPLING, show_progress=False)
    assert first["completion"] == second["completion"]
    other = generate(problems, model=llm, n=2, sampling={**SAMPLING, "seed": 8}, show_progress=False)
    assert other["completion"] != first["completion"]


def test_output_dir_resumes_without_regenerating(llm, problems: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    half = problems.select(range(2))
    generate(half, model=llm, n=2, sampling=SAMPLING, output_dir=out, batch_size=1, show_progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        generate(problems, model=llm, n=2, sampling=SAMPLING, output_dir=out, show_progress=False)
    shards = sorted(out.rglob("part-*.parquet"))
    before = {p: p.read_bytes() for p in shards}
    again = generate(half, model=llm, n=2, sampling=SAMPLING, output_dir=out, batch_size=1, show_progress=False)
    assert sorted(out.rglob("part-*.parquet")) == shards  # nothing new was generated
    assert all(p.read_bytes() == data for p, data in before.items())
    assert len(again) == 4 and len(load_traces(out)) == 4
    extended = generate(half, model=llm, n=3, sampling=SAMPLING, output_dir=out, extend=True, show_progress=False)
    assert sorted(extended["sample_index"]) == [0, 0, 1, 1, 2, 2]
    assert len(sorted(out.rglob("part-*.parquet"))) == len(shards) + 1


def test_prompt_over_context_becomes_error_row(llm, problems: Dataset) -> None:
    long = load_problems(Dataset.from_list([{"problem": "word " * 3000}]))
    mixed = Dataset.from_list(list(problems.select(range(2))) + list(long))
    traces = generate(mixed, model=llm, n=1, sampling=SAMPLING, show_progress=False)
    errors = {pid: err for pid, err in zip(traces["problem_id"], traces["error"])}
    assert errors[long[0]["problem_id"]] is not None
    assert all(errors[pid] is None for pid in problems.select(range(2))["problem_id"])


def test_prompt_over_context_is_counted_in_the_summary(llm, problems: Dataset) -> None:
    long = load_problems(Dataset.from_list([{"problem": "word " * 3000}]))
    mixed = Dataset.from_list(list(problems.select(range(2))) + list(long))
    traces, summary = generate(mixed, model=llm, n=2, sampling=SAMPLING, show_progress=False, return_summary=True)
    assert summary.generated == len(traces) == 6 and summary.error_count == 2
    [kind] = summary.errors
    assert all(e.startswith(kind) for e in traces["error"] if e is not None)
    assert summary.truncated == sum("truncated" in f for f in traces["flags"])
    assert summary.completion_tokens == sum(r["reasoning_tokens"] + r["answer_tokens"] for r in traces if r["error"] is None)


def test_vllm_reasoning_parser_splits_like_the_think_parser(llm, problems: Dataset) -> None:
    sampling = {**SAMPLING, "max_tokens": 200}
    plain = generate(problems, model=llm, n=4, sampling=sampling, trace_format="think", show_progress=False)
    parsed = generate(problems, backend=VLLMBackend(llm, reasoning_parser="deepseek_r1", use_tqdm=False), n=4,
                      sampling=sampling, show_progress=False)
    compared = closed = 0
    for a, b in zip(plain, parsed):  # same engine and seeds: the same tokens, split two ways
        raw = a["completion"]
        if "<think>" in raw or raw.count("</think>") > 1 or raw.rstrip().endswith("</think>"):
            continue  # the parsers differ by design on stray markers
        compared, closed = compared + 1, closed + ("</think>" in raw)
        assert b["completion"] == "<think>" + raw
        assert (b["reasoning"], b["answer"], b["flags"]) == (a["reasoning"], a["answer"], a["flags"])
        assert b["reasoning_tokens"] == a["reasoning_tokens"]
    assert compared >= 10 and closed >= 1


def test_shards_split_the_problems_and_new_run_keeps_the_old_run(llm, problems: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    common = {"model": llm, "n": 1, "output_dir": out, "show_progress": False, "return_summary": True}
    first, s0 = generate(problems, sampling=SAMPLING, shard="0/2", **common)
    second, s1 = generate(problems, sampling=SAMPLING, shard=(1, 2), **common)
    assert all(shard_of(pid, 2) == 0 for pid in first["problem_id"])
    assert all(shard_of(pid, 2) == 1 for pid in second["problem_id"])
    assert s0.problems + s1.problems == len(problems) and s0.shard == "0/2"
    assert sorted(load_traces(out)["problem_id"]) == sorted(problems["problem_id"])
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["shard-0-of-2", "shard-1-of-2"]
    shards = {p: p.read_bytes() for p in out.rglob("part-*.parquet")}
    with pytest.raises(ValueError, match=r"changed: \['sampling'\].*new_run=True"):
        generate(problems, sampling={**SAMPLING, "seed": 99}, **common)
    other, summary = generate(problems, sampling={**SAMPLING, "seed": 99}, new_run=True, **common)
    sibling = Path(summary.output_dir)
    assert sibling.parent == out.parent and sibling.name.startswith(out.name + "-") and len(other) == len(problems)
    assert {p: p.read_bytes() for p in out.rglob("part-*.parquet")} == shards  # nothing moved or rewritten
    again, summary = generate(problems, sampling={**SAMPLING, "seed": 99}, new_run=True, **common)
    assert summary.output_dir == str(sibling) and summary.generated == 0 and summary.skipped == len(problems)


def test_a_rerun_counts_the_error_rows_already_in_the_folder(llm, problems: Dataset, tmp_path: Path) -> None:
    long = load_problems(Dataset.from_list([{"problem": "word " * 3000}]))
    mixed = Dataset.from_list(list(problems.select(range(2))) + list(long))
    out = tmp_path / "traces"
    _, first = generate(mixed, model=llm, sampling=SAMPLING, output_dir=out, show_progress=False, return_summary=True)
    assert (first.outcome, first.generated, first.error_count, first.traces, first.failed) == ("ran", 3, 1, 3, 1)
    _, again = generate(mixed, model=llm, sampling=SAMPLING, output_dir=out, show_progress=False, return_summary=True)
    assert (again.outcome, again.generated, again.skipped, again.traces, again.failed) == ("reused", 0, 3, 3, 1)
    assert "3 traces, 1 of them errors" in str(again) and "--retry-failed" in str(again) and not again.all_failed


def test_a_missing_model_folder_raises_before_anything_is_written(problems: Dataset, tmp_path: Path) -> None:
    out, missing = tmp_path / "traces", tmp_path / "no-model"
    with pytest.raises(EngineStartError, match=f"the model folder {missing} does not exist"):
        generate(problems, model=str(missing), output_dir=out, show_progress=False)
    assert not (out / "manifest.json").exists() and not list(out.rglob("*.parquet"))
    with pytest.raises(EngineStartError, match="does not exist"):  # not refused as another configuration
        generate(problems, model=str(tmp_path / "other-missing"), output_dir=out, show_progress=False)
