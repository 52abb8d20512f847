"""The reasoning check: the model-free signal, `judge-agreement` on MR-Ben's step labels, `ReasoningOk`,
and the LLM `reasoning` annotator on the real tiny engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from datasets import Dataset
from typer.testing import CliRunner

from natural_thoughts.annotate import ReasoningJudge, annotate, get_annotator, judge_agreement, read_labelled
from natural_thoughts.cli import app
from natural_thoughts.load.sources import load_traces
from natural_thoughts.selectors import ReasoningOk, get_selector
from natural_thoughts.selectors.testing import check_selector, default_dataset
from natural_thoughts.steps import FLAGS, REASONING_FLAGS, SIGNALS, flag_reasoning, signal_steps, trace_flags

from tests.conftest import DATA, CountingBackend

MRBEN = DATA / "process" / "mrben_math_science.jsonl"
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 600, "seed": 3}
"""The random model's noise, constrained by the schema."""


def _mrben_raw() -> list[dict]:
    return [json.loads(line) for line in MRBEN.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_mrben_steps_follow_their_headers_and_labels() -> None:
    raw, rows = _mrben_raw(), read_labelled(MRBEN)
    assert len(rows) == len(raw)
    for r, row in zip(raw, rows):
        assert row["has_error"] == (r["Model_Solution_Correctness"] == "incorrect")
        headers = [int(m.group(1)) for s in r["Model_Solution_Steps"] if (m := re.match(r"\s*Step\s*(\d+)", s))]
        if headers == list(range(1, len(headers) + 1)):  # numbered in order: step N is the Nth header's
            assert len(row["steps"]) == len(headers) + (not re.match(r"\s*Step", r["Model_Solution_Steps"][0]))
        if row["has_error"]:
            assert 1 <= row["first_error_step"] <= len(row["steps"])
        assert not any(s.startswith("Step ") for s in row["steps"])


def test_the_rule_against_mrben_labels() -> None:
    raw, report = _mrben_raw(), judge_agreement(MRBEN)
    assert report["rows"] == len(raw) == sum(report[k] for k in ("tp", "fp", "fn", "tn"))
    assert report["with_error"] == sum(r["Model_Solution_Correctness"] == "incorrect" for r in raw)
    said = [r for r in raw
            if any(re.search(r"none of the (given )?choices", s, re.I) for s in r["Model_Solution_Steps"])]
    assert report["tp"] + report["fp"] >= len(said)  # every "none of the choices" solution is flagged
    if report["tp"] + report["fp"] >= 20:  # a flag says more than the base rate of wrong reasoning
        assert report["precision"] > report["with_error"] / report["rows"]
    assert set(report["flags"]) <= set(SIGNALS) | {"no_derivation"}
    assert report["first_error_step"]["both_named"] == report["tp"]


def test_processbench_rows_read_as_the_same_labels(tmp_path: Path) -> None:
    rows = read_labelled(MRBEN, limit=60)
    path = tmp_path / "pb.jsonl"
    path.write_text("".join(json.dumps({"problem": r["problem"], "steps": r["steps"],
                                        "label": (r["first_error_step"] or 0) - 1}) + "\n" for r in rows))
    mine, theirs = judge_agreement(path, preset="processbench"), judge_agreement(MRBEN, limit=60)
    keys = ("rows", "with_error", "tp", "fp", "fn", "tn", "first_error_step")
    assert {k: mine[k] for k in keys} == {k: theirs[k] for k in keys}
    with pytest.raises(ValueError, match="line 1: not a mrben row"):
        judge_agreement(path, preset="mrben")
    with pytest.raises(ValueError, match="known: \\['mrben', 'processbench'\\]"):
        read_labelled(path, preset="prm800k")


def test_mrben_coding_rows_are_programs_with_their_wrong_line() -> None:
    path = DATA / "process" / "mrben_coding.jsonl"
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = read_labelled(path)
    for r, row in zip(raw, rows):
        assert row["steps"] == [line for line in r["Model_Solution_Steps"].splitlines() if line.strip()]
        assert row["has_error"] == (r["Model_Solution_Correctness"] == "incorrect")
        quoted = str(r["Model_Solution_First_Error_Step"]).strip()
        if row["has_error"] and quoted and any(line.strip() == quoted for line in row["steps"]):
            assert row["steps"][row["first_error_step"] - 1].strip() == quoted
        else:
            assert row["first_error_step"] is None
    report = judge_agreement(path)
    assert report["rows"] == len(raw) == sum(report[k] for k in ("tp", "fp", "fn", "tn"))


def test_signal_steps_names_the_step() -> None:
    assert signal_steps(["x = 2y and y = 3, so x = 6 by substitution into the first equation as shown",
                         "None of the choices match 6, so I'll just pick C.", "Solution: Choice_C"]) == (
        ["announced_guess", "no_option_matched"], 2)
    assert signal_steps(["The answer is 7."]) == (["no_derivation"], 1)
    assert signal_steps(["The answer is 7."], has_answer=False) == ([], None)
    assert trace_flags({"completion": "It is 7, right by luck? " + "We add the terms carefully here. " * 6,
                        "final_answer": "7"}) == ["announced_guess"]
    assert trace_flags({"reasoning": "word " * 400 + "I'll guess", "answer": "\\boxed{3}", "final_answer": "3"}) == [
        "announced_guess"]
    early_guess = {"reasoning": "I'll guess 3. " + "word " * 400, "answer": "\\boxed{3}", "final_answer": "3"}
    assert trace_flags(early_guess) == []  # a guess the reasoning went on to work through


@pytest.mark.parametrize("name", ["skythought_math500_sky-t1-27b.jsonl",
                                  "skythought_olympiadbench_sky-t1-32b-short.jsonl"])
def test_flags_are_rare_on_real_teacher_traces_and_name_their_phrase(name: str) -> None:
    traces = flag_reasoning(load_traces(DATA / name, preset="skythought_eval"))
    flagged = [r for r in traces if r[REASONING_FLAGS]]
    assert len(flagged) <= max(1, 0.02 * len(traces))  # teachers write derivations, they rarely guess
    for row in flagged:
        text = f"{(row['reasoning'] or '')[-1500:]} {row['answer'] or row['completion']}"
        assert any(SIGNALS[f].search(text) for f in row[REASONING_FLAGS] if f in SIGNALS)


def test_reasoning_ok_conformance_and_verdicts() -> None:
    check_selector(ReasoningOk())
    check_selector(ReasoningOk(flags="announced_guess", undecided="drop"))
    assert get_selector({"ReasoningOk": {"flags": ["no_derivation"]}}) == ReasoningOk(flags=["no_derivation"])
    with pytest.raises(ValueError, match="unknown flag"):
        ReasoningOk(flags="lucky").check_params()
    ds = default_dataset().select(range(6))
    answers = list(ds["answer"])
    answers[1] = "None of the options match, so I'll guess \\boxed{3}."
    ds = ds.remove_columns("answer").add_column("answer", answers)
    ds = ds.add_column("label.reasoning_ok", [True, True, False, None, None, True])
    ds = ds.add_column("label.first_error_step", [None, None, 4, None, None, None])
    sel = ReasoningOk().select(ds)
    assert sel.indices.tolist() == [0, 3, 4, 5]
    assert sel.dropped[1].startswith("flagged announced_guess, no_option_matched")
    assert sel.dropped[2] == "label.reasoning_ok is false (first wrong step at step 4)"
    assert ReasoningOk(undecided="drop").select(ds).indices.tolist() == [0, 5]
    assert ReasoningOk(flags="no_derivation").select(ds).indices.tolist() == [0, 1, 3, 4, 5]
    assert flag_reasoning(ds)[REASONING_FLAGS][1] == ["announced_guess", "no_option_matched"]


def test_judge_agreement_command() -> None:
    done = CliRunner().invoke(app, ["judge-agreement", str(MRBEN), "--limit", "200"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    labelled = sum(1 for line in MRBEN.open(encoding="utf-8") if line.strip())
    assert report["rows"] == min(200, labelled) and report["judge"] == "rule" and set(report["flags"]) <= set(FLAGS)
    refused = CliRunner().invoke(app, ["judge-agreement", str(MRBEN), "--judge", "llm"])
    assert refused.exit_code != 0 and "--judge llm needs --model" in refused.output


def test_llm_judge_agreement_on_the_tiny_engine(llm, tmp_path: Path) -> None:
    backend = CountingBackend(llm)
    options = {"backend": backend, "limit": 4, "annotator": ReasoningJudge(max_chars=600), "sampling": SAMPLING,
               "output_dir": tmp_path, "batch_size": 2, "show_progress": False}
    report = judge_agreement(MRBEN, judge="llm", **options)
    print("\njudge-agreement, tiny random engine on 4 MR-Ben rows:", json.dumps(report))
    assert report["rows"] == 4 == sum(report[k] for k in ("tp", "fp", "fn", "tn", "undecided"))
    assert report["undecided"] < 4
    asked = len(backend.requests)
    assert judge_agreement(MRBEN, judge="llm", **options) == report and len(backend.requests) == asked  # resumed


def test_reasoning_annotator_on_real_traces(llm) -> None:
    name = "skythought_olympiadbench_sky-t1-32b-short.jsonl"
    traces = load_traces(DATA / name, preset="skythought_eval").select(range(3))
    judge = get_annotator("reasoning")
    assert isinstance(judge, ReasoningJudge)
    small = ReasoningJudge(max_chars=600)
    out = annotate(traces, [small], backend=CountingBackend(llm), sampling=SAMPLING, batch_size=2, show_progress=False)
    for row in out:
        if row["label.reasoning.error"] is None:
            answer = small.parse(row["label.reasoning.raw"])
            assert row["label.reasoning_ok"] == (answer.first_error_step == 0)
            assert row["label.first_error_step"] == (answer.first_error_step or None)
            assert row["label.reasoning.reason"] == answer.reason
        else:
            assert row["label.reasoning_ok"] is None and row["label.first_error_step"] is None
    message = small.messages(traces[0])[0]["content"]
    assert "Step 1:" in message and "earliest wrong step" in message
    assert len(small.context(traces[0])["steps"]) <= 40
