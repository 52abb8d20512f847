"""The code recipes run as shipped on the code files; their exports are judged by the files'
own verdicts (LiveCodeBench's grader, Reflexion's `is_solved`), not by ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import natural_thoughts as nt

from tests.conftest import DATA

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(recipe: str, tmp_path: Path, limit: int | None = None) -> tuple[dict, list[dict], str]:
    data = yaml.safe_load((EXAMPLES / recipe).read_text().replace("examples/data/", f"{DATA}/"))
    data["output_dir"] = str(tmp_path / "run")
    if limit is not None:
        data["traces"]["limit"] = limit
    summary = nt.run(data)
    export = tmp_path / "run" / "export"
    rows = [json.loads(line) for f in sorted(export.glob("*.jsonl")) for line in f.read_text().splitlines()]
    return summary, rows, (export / "README.md").read_text()


def _raw(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_code_curate_exports_programs_the_grader_passed(tmp_path: Path) -> None:
    summary, rows, card = _run("code_curate.yaml", tmp_path, limit=120)
    raw = {r["question_id"]: r for r in _raw(DATA / "code" / "lcb_o1-mini-2024-09-12.jsonl")}
    assert rows and len(rows) == summary["exported"]
    graded = [raw[row["problem_id"]]["graded"] for row in rows]
    assert sum(graded) >= 0.9 * len(rows)  # the tests we have catch 79% of the grader's fails (README)
    for row in rows:
        answer = row["messages"][-1]["content"]
        program = raw[row["problem_id"]]["code"].strip()
        thought = answer.split("</think>")[0] if "</think>" in answer else ""
        assert program in answer.split("</think>")[-1] and program not in thought  # the program is the answer
    assert "score.pass_rate" in card and "label.failure_kind" in card


@pytest.mark.slow  # runs both programs of all 561 problems
def test_code_disagree_keeps_what_self_critique_fixed(tmp_path: Path) -> None:
    summary, rows, card = _run("code_disagree.yaml", tmp_path)
    raw = _raw(DATA / "code" / "reflexion_humaneval_mbpp_gpt4.jsonl")
    solved = {(r.get("task_id") or r["name"], r["run"]): r["is_solved"] for r in raw}
    assert rows and len(rows) == summary["exported"]
    fixed = [solved[(row["problem_id"], "reflexion_gpt-4")] and not solved[(row["problem_id"], "simple_gpt-4")]
             for row in rows]
    assert sum(fixed) >= 0.9 * len(rows)
    assert "label.failure_kind" in card
