"""Refinement passes run end to end on the real vLLM engine (the tiny random model: its text is
noise, so structure is asserted): lineage across stages, prompt versions, answer checks and the
report, resume, keep="all" vs "final", the `refine:` stage inside `run()`, and the Nemotron preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from natural_thoughts.load.sources import load_traces
from natural_thoughts.pipeline.runner import run
from natural_thoughts.refine import RefinePass, expand, nemotron_human_reasoning, refine
from tests.conftest import CountingBackend
from tests.refine.test_passes import NEMOTRON

PASSES = ["rewrite_long", {"edit": {"times": 2}}]
"""Three stages: rewrite_long, edit.1, edit.2."""
SAMPLING = {"temperature": 1.0, "max_tokens": 24, "seed": 0}
SHORT = [
    {"problem": "What is 17 + 25?", "completion": "<think>17 + 25 = 42.</think>\\boxed{42}", "reference_answer": "42"},
    {"problem": "What is 2^5?", "completion": "<think>Doubling: 2, 4, 8, 16, 32.</think>\\boxed{32}",
     "reference_answer": "32"},
    {"problem": "What is 9 * 7?", "completion": "<think>9 * 7 = 63.</think>\\boxed{63}", "reference_answer": "63"},
    {"problem": "What is 100 - 58?", "completion": "", "reference_answer": "42"},  # nothing to refine
]


@pytest.fixture()
def traces() -> Dataset:
    return load_traces(Dataset.from_list(SHORT), model="short-cot")


def test_three_stages_keep_lineage_prompts_and_answer_checks(llm, traces: Dataset) -> None:
    rows, report = refine(traces, PASSES, model=llm, sampling=SAMPLING, keep="all", return_report=True,
                          show_progress=False)
    by_step = {s: [r for r in rows if (r["refine.step"] or 0) == s] for s in range(4)}
    assert [len(by_step[s]) for s in range(4)] == [4, 4, 4, 4] and len(rows) == 16
    for stage in expand(PASSES):
        made, before = by_step[stage.step], by_step[stage.step - 1]
        assert [r["parent_trace_id"] for r in made] == [r["trace_id"] for r in before]  # one child per parent
        assert {r["refine.stage"] for r in made} == {stage.name}
        assert {r["refine.prompt_version"] for r in made} == {stage.refine_pass.prompt_version}
        assert {r["refine.prompt_sha256"] for r in made} == {stage.refine_pass.prompt_sha256}
        assert all(r["trace_id"] == f"{p['trace_id']}-r{stage.step}" for r, p in zip(made, before))
        assert all(r["model"] == llm.llm_engine.model_config.model for r in made)
    assert [r["refine.stage"] for r in by_step[3]] == ["edit.2"] * 4
    assert by_step[3][0]["trace_id"] == f"{traces[0]['trace_id']}-r1-r2-r3"
    empty = [by_step[s][3] for s in (1, 2, 3)]  # the blank original: an error row at every stage, never asked
    assert all(r["error"].startswith("not refined: ") and r["refine.correct"] is None for r in empty)
    first = by_step[1][:3]
    assert all(r["error"] is None and r["refine.correct"] is not None for r in first)
    assert all(r["refine.answer_kept"] is not None for r in first)  # the parents state an answer
    assert all(r["reasoning_tokens"] is not None or (r["reasoning"] and r["answer"]) for r in first)
    assert all((r["reasoning_tokens"] or 0) + (r["answer_tokens"] or 0) <= SAMPLING["max_tokens"] for r in first)
    lines = report.set_index("stage")
    assert list(report["stage"]) == ["original", "rewrite_long", "edit.1", "edit.2"]
    assert list(report["count"]) == [4, 4, 4, 4]
    assert lines.loc["original", "correct_rate"] == 0.75  # the blank one states no answer
    assert lines.loc["rewrite_long", "correct_rate"] < 0.5  # noise: most answers are lost
    assert lines.loc["rewrite_long", "answer_kept_rate"] < 0.5


def test_resume_asks_nothing_and_keep_final_is_one_row_per_trace(llm, traces: Dataset, tmp_path: Path) -> None:
    backend = CountingBackend(llm)
    first = refine(traces, PASSES, backend=backend, sampling=SAMPLING, output_dir=tmp_path, show_progress=False)
    assert len(backend.requests) == 3 * 3  # three stages, the blank trace never asked
    assert len(first) == 4 and set(first["refine.stage"]) == {"edit.2"}
    folders = sorted(p.name for p in tmp_path.iterdir())
    sha = {s.name: s.refine_pass.prompt_sha256[:12] for s in expand(PASSES)}
    assert folders == [f"1-rewrite_long-{sha['rewrite_long']}", f"2-edit.1-{sha['edit.1']}", f"3-edit.2-{sha['edit.2']}"]
    again = refine(traces, PASSES, backend=backend, sampling=SAMPLING, output_dir=tmp_path, show_progress=False)
    assert len(backend.requests) == 9  # nothing asked the second time
    assert again["trace_id"] == first["trace_id"] and again["completion"] == first["completion"]
    fewer = refine(traces.select(range(2)), PASSES, backend=backend, sampling=SAMPLING, output_dir=tmp_path,
                   keep="all", show_progress=False)
    assert len(backend.requests) == 9 and len(fewer) == 2 * 4  # this call's rows only, out of a fuller folder
    with pytest.raises(ValueError, match="different configuration"):
        refine(traces, PASSES, backend=backend, sampling={**SAMPLING, "seed": 1}, output_dir=tmp_path,
               show_progress=False)
    with pytest.raises(ValueError, match="keep must be"):
        refine(traces, PASSES, backend=backend, keep="last")


def test_refine_stage_inside_run(llm, tmp_path: Path) -> None:
    source = tmp_path / "short.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in SHORT[:3]))
    config = {
        "name": "refine-smoke", "output_dir": str(tmp_path / "run"),
        "traces": {"source": str(source), "model": "short-cot"},
        "refine": {"passes": ["rewrite_long", {"structure": {"template": "## Plan\n## Check"}}],
                   "sampling": SAMPLING, "keep": "all"},
        "score": {"approximate": True},
        "select": {"selector": "Random", "k": 4, "seed": 0},
        "export": {"format": "messages"},
    }
    backend = CountingBackend(llm)
    summary = run(config, engine=backend)
    assert summary["stages"]["refine"] == "ran" and summary["traces"] == 3 * 3 and summary["selected"] == 4
    assert len(backend.requests) == 2 * 3
    again = run(config, engine=backend)
    assert again["stages"]["refine"] == "reused" and len(backend.requests) == 6
    done = json.loads((tmp_path / "run" / "refine" / ".stage.json").read_text())
    assert [line["stage"] for line in done["report"]] == ["original", "rewrite_long", "structure"]
    assert RefinePass(kind="structure").prompt_version == "structure.v1"
    with pytest.raises(ValueError, match="refine.model"):
        run({**config, "output_dir": str(tmp_path / "other")})


def test_nemotron_preset_maps_the_columns_and_the_lineage(tmp_path: Path) -> None:
    source = tmp_path / "nemotron.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in NEMOTRON))
    traces = load_traces(str(source), preset="nemotron_human_reasoning")
    same = nemotron_human_reasoning(Dataset.from_list(NEMOTRON))
    assert traces.remove_columns("source").to_list() == same.remove_columns("source").to_list()
    rows = {(r["problem"][:8], r["model"]): r for r in traces}
    s1, s2, qwq = (rows[("Find the", t)] for t in ("human_stage1", "human_stage2", "qwq_32b_preview"))
    assert (s2["parent_trace_id"], s2["refine.step"], qwq["parent_trace_id"]) == (s1["trace_id"], 1, None)
    assert (s1["completion"], s1["reference_answer"]) == (NEMOTRON[1]["solution"], "55")
    assert json.loads(s1["extra"]) == {}  # every field is mapped
