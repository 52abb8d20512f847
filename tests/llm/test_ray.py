"""`executor="ray"`: one vLLM engine per Ray Data actor, on a local Ray cluster with no GPU.

The Ray run fills one share of the output folder and the session engine the other, so the test also
shows that both executors write the same layout: one manifest, resumable, `status`, `merge`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset

from natural_thoughts import generate, load_problems, load_traces
from natural_thoughts.llm import EngineStartError
from natural_thoughts.llm.store import MANIFEST
from natural_thoughts.llm.status import merge, run_status

pytestmark = pytest.mark.slow  # a local Ray cluster with engine actors

ray = pytest.importorskip("ray")
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 24, "seed": 3}


@pytest.fixture(scope="module")
def problems() -> Dataset:
    return load_problems(Dataset.from_list([{"problem": f"Is {i} a prime number?"} for i in range(10)]))


def test_ray_actors_fill_a_share_of_the_same_layout(tiny_model_dir: Path, llm, problems: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    common = {"n": 2, "sampling": SAMPLING, "output_dir": out, "show_progress": False, "return_summary": True}
    ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False, log_to_driver=False)
    try:
        traces, summary = generate(problems, model=str(tiny_model_dir), shard="1/2", batch_size=2, executor="ray",
                                   engine_kwargs={"enforce_eager": True, "max_model_len": 1024},
                                   executor_kwargs={"concurrency": 1, "num_gpus": 0}, **common)
    finally:
        ray.shutdown()
    share = summary.problems
    assert 0 < share < len(problems)
    assert summary.generated == len(traces) == 2 * share and summary.error_count == 0
    files = sorted((out / "shard-1-of-2").glob("part-*.parquet"))
    assert len(files) == -(-share // 2)  # one shard per batch of 2 problems: results stream back per batch
    assert {len(set(pid)) for pid in (load_traces(f)["problem_id"] for f in files)} <= {1, 2}
    status = run_status(out)
    assert status.done == 2 * share and status.missing == 2 * (len(problems) - share)

    again, summary = generate(problems, model=str(tiny_model_dir), shard="1/2", executor="ray", **common)
    assert summary.generated == 0 and summary.skipped == 2 * share and len(again) == 2 * share  # no Ray needed
    rest, summary = generate(problems, model=llm, shard="0/2", **common)  # the local executor, same folder
    assert summary.generated == 2 * (len(problems) - share)
    assert run_status(out).complete
    merged = load_traces(merge(out, tmp_path / "all.parquet"))
    assert sorted(zip(merged["problem_id"], merged["sample_index"])) == sorted(
        (pid, s) for pid in problems["problem_id"] for s in range(2))


def test_ray_needs_a_model_name_not_a_ready_engine(llm, problems: Dataset) -> None:
    with pytest.raises(ValueError, match="executor='ray' needs a backend name and a model name or path"):
        generate(problems.select(range(1)), model=llm, executor="ray", show_progress=False)


def test_a_start_failure_in_an_actor_is_one_line_and_the_corrected_run_is_accepted(tiny_model_dir: Path,
                                                                                  problems: Dataset,
                                                                                  tmp_path: Path) -> None:
    out, not_a_model = tmp_path / "traces", tmp_path / "not-a-model"
    not_a_model.mkdir()  # a folder (so the check before any process passes) without a model: the actor's engine fails
    common = {"n": 1, "sampling": SAMPLING, "output_dir": out, "show_progress": False, "executor": "ray",
              "engine_kwargs": {"enforce_eager": True, "max_model_len": 1024}}
    ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(ValueError):  # a bad executor option: refused, and the run folder undone
            generate(problems, model=str(tiny_model_dir), executor_kwargs={"num_gpus": 0, "no_such_option": 1}, **common)
        assert not (out / MANIFEST).exists()
        with pytest.raises(EngineStartError) as failed:
            generate(problems, model=str(not_a_model), executor_kwargs={"num_gpus": 0}, **common)
        message = str(failed.value)
        assert message.startswith("in a Ray actor: the vLLM engine for") and str(not_a_model) in message
        assert "\n" not in message and not (out / MANIFEST).exists()
        traces = generate(problems, model=str(tiny_model_dir), executor_kwargs={"num_gpus": 0}, **common)
    finally:
        ray.shutdown()
    assert len(traces) == len(problems) and (out / MANIFEST).exists()
