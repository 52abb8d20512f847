"""Generation with the real vLLM engine on the tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from natural_thoughts import generate, load_problems, load_traces
from natural_thoughts.schema import FLAGS, TRACE_COLUMNS

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
