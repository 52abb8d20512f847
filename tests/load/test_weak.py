"""attach_weak: a weak model's responses joined from a second file, in Python and from YAML."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from datasets import Dataset

from natural_thoughts import attach_weak, load_traces
from natural_thoughts.parse import parse_trace
from natural_thoughts.pipeline.config import RunConfig
from natural_thoughts.pipeline.runner import run
from natural_thoughts.schema import normalize_text
from natural_thoughts.selectors import ModelsDisagree

from tests.conftest import DATA

PAIRS = [
    ("skythought_math500_sky-t1-27b.jsonl", "skythought_math500_qwen2.5-math-7b.jsonl"),
    ("skythought_olympiadbench_sky-t1-32b-short.jsonl", "skythought_olympiadbench_qwen2.5-14b-instruct.jsonl"),
]


def raw(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).open(encoding="utf-8")]


def last_box_filled(text: str) -> bool:
    """Whether the answer part of a raw response ends on a filled `\\boxed{}` (read from the raw text, not
    our parser): the part after its thinking closes, none when the thinking never closes."""
    closed = max(text.rfind("<|end_of_thought|>"), text.rfind("</think>"))
    if closed < 0 and ("<|begin_of_thought|>" in text or "<think>" in text):
        return False
    at = text.rfind("\\boxed{")
    return at > closed and text[at + len("\\boxed{"):].lstrip()[:1] not in ("", "}")


@pytest.mark.parametrize(("teacher", "weak"), PAIRS)
def test_every_teacher_row_joins_its_weak_response(teacher: str, weak: str) -> None:
    traces = load_traces(DATA / teacher, preset="skythought_eval")
    out, report = attach_weak(traces, DATA / weak, preset="skythought_eval", on="problem", return_report=True)
    by_text = {normalize_text(r["question"]): r["code"][0] for r in raw(weak)}
    assert len(out) == len(traces) and report.rows == report.joined == len(traces) and report.unjoined == 0
    assert out["weak_answer"] == [by_text[normalize_text(p)] for p in traces["problem"]]
    assert set(out["weak_model"]) == {Path(weak).stem}
    assert out.select_columns(traces.column_names).to_list() == traces.to_list()  # nothing else changed
    by_id = attach_weak(traces, DATA / weak, preset="skythought_eval", on="problem_id")
    assert by_id["weak_answer"] == out["weak_answer"]  # ids are hashes of the same text


def test_unjoined_rows_are_kept_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    teacher, weak = PAIRS[0]
    rows = load_traces(DATA / teacher, preset="skythought_eval").select(range(3)).to_list()
    rows[1] = {**rows[1], "problem": "A question the weak model never saw.", "problem_id": "custom-id"}
    traces = Dataset.from_list(rows)
    caplog.set_level(logging.WARNING, logger="natural_thoughts.load.weak")
    out, report = attach_weak(traces, DATA / weak, preset="skythought_eval", on="problem", return_report=True)
    assert len(out) == 3 and out["weak_answer"][1] is None and out["weak_model"][1] is None
    assert out["weak_answer"][0] is not None and out["weak_answer"][2] is not None
    assert (report.joined, report.unjoined) == (2, 1) and "never saw" in report.unjoined_examples[0]
    assert "1 of 3 rows found no weak response" in caplog.text and "never saw" in caplog.text
    with pytest.raises(ValueError, match="on must be one of"):
        attach_weak(traces, DATA / weak, preset="skythought_eval", on="question")  # type: ignore[arg-type]


@pytest.mark.parametrize(("teacher", "weak"), PAIRS)
def test_math_judge_decides_every_row_where_both_sides_box_an_answer(teacher: str, weak: str) -> None:
    traces = load_traces(DATA / teacher, preset="skythought_eval")
    joined = attach_weak(traces, DATA / weak, preset="skythought_eval", on="problem")
    weak_text = {normalize_text(r["question"]): r["code"][0] for r in raw(weak)}
    both = [i for i, r in enumerate(raw(teacher))
            if last_box_filled(r["code"][0]) and last_box_filled(weak_text[normalize_text(r["question"])])]
    assert both, "the raw files hold boxed answers on both sides"
    verdicts = ModelsDisagree(judge="math").verdicts(joined)
    undecided = [i for i in both if verdicts[i] is None]
    assert not undecided, f"rows boxed on both sides left undecided: {undecided[:10]}"
    sel = ModelsDisagree(judge="math").select(joined)
    assert sorted(sel.indices.tolist()) == [i for i, v in enumerate(verdicts) if v is False]


@pytest.mark.parametrize(("teacher", "weak"), PAIRS)
def test_the_same_final_answer_on_both_sides_is_agreement(teacher: str, weak: str) -> None:
    """The weak response is read as the teacher's trace is (its answer part, a prose conclusion
    included): where both state the same final answer, the models agree, and where both state one,
    the math judge decides."""
    joined = attach_weak(load_traces(DATA / teacher, preset="skythought_eval"), DATA / weak,
                         preset="skythought_eval", on="problem")
    weak_finals = [parse_trace(w).final_answer if w else None for w in joined["weak_answer"]]
    verdicts = ModelsDisagree(judge="math").verdicts(joined)
    pairs = list(zip(joined["final_answer"], weak_finals, verdicts))
    assert any(t == w for t, w, _ in pairs if t is not None)
    assert [(t, v) for t, w, v in pairs if t is not None and t == w and v is not True] == []
    assert [(t, w) for t, w, v in pairs if t is not None and w is not None and v is None] == []


def test_yaml_traces_weak_joins_and_fingerprints_the_weak_file(tmp_path: Path) -> None:
    teacher, weak = PAIRS[0]
    weak_copy = tmp_path / "weak.jsonl"
    weak_copy.write_bytes((DATA / weak).read_bytes())
    config = {
        "name": "weak-join", "output_dir": str(tmp_path / "run"),
        "traces": {"source": str(DATA / teacher), "preset": "skythought_eval", "limit": 60,
                   "weak": {"source": "weak.jsonl", "preset": "skythought_eval", "on": "problem"}},
        "score": {"approximate": True},
        "select": {"selector": {"ModelsDisagree": {"judge": "math"}}},
        "export": {"file_format": "jsonl"},
    }
    text = yaml.safe_dump(config).replace("'on':", "on:")  # a bare `on:` key, which YAML 1.1 reads as True
    assert "\n    on: problem" in text
    (tmp_path / "run.yaml").write_text(text)
    cfg = RunConfig.from_yaml(tmp_path / "run.yaml")
    assert cfg.traces.weak.on == "problem" and cfg.traces.weak.source == str(weak_copy)  # found beside the file
    summary = run(cfg)
    joined = attach_weak(load_traces(DATA / teacher, preset="skythought_eval").select(range(60)), weak_copy,
                         preset="skythought_eval", on="problem")
    assert summary["selected"] == len(ModelsDisagree(judge="math").select(joined)) > 0
    assert run(cfg)["stages"]["select"] == "reused"
    stat = weak_copy.stat()
    os.utime(weak_copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the weak file changed
    assert run(cfg)["stages"]["select"] == "ran"
    with pytest.raises(ValueError, match="on"):
        RunConfig.model_validate({"traces": {"source": "t.jsonl", "weak": {"source": "w.jsonl", "on": "text"}}})
