"""Refinement passes without a model: specs and their stages, the rendered requests, the rows made from
hand-written replies (answer kept, changed, dropped), the per-stage report, the Nemotron layout's
lineage, and a real shared trace refined into its own text."""

from __future__ import annotations

import hashlib
from importlib import resources

import pandas as pd
import pyarrow as pa
import pytest
from datasets import Dataset
from pydantic import ValidationError

from natural_thoughts.load.sources import load_traces
from natural_thoughts.refine import (
    DEFAULT_STRUCTURE,
    LINEAGE_FIELDS,
    ORIGINAL,
    RefinePass,
    expand,
    make_row,
    nemotron_human_reasoning,
    request_messages,
    skip_reason,
    solution_text,
    stage_report,
)
from natural_thoughts.schema import TRACE_SCHEMA, problem_id
from tests.conftest import DATA

PASSES = ["rewrite_long", {"edit": {"times": 2}}, "structure"]
PARENT = {
    "problem_id": "p1", "problem": "What is 17 + 25?", "reference_answer": "42", "source": "hand",
    "domain": "arithmetic", "extra": "{}", "trace_id": "p1-0", "sample_index": 0, "model": "short-cot",
    "prompt": "", "completion": "<think>17 + 25 = 42.</think>The sum is \\boxed{42}.",
    "reasoning": "17 + 25 = 42.", "answer": "The sum is \\boxed{42}.", "final_answer": "42",
    "reasoning_tokens": 7, "answer_tokens": 8, "finish_reason": "stop", "flags": [], "error": None,
    "sampling": "{}", "generated_at": "2025-01-01T00:00:00+00:00", "label.correct": True,
}
KEEPS = ("I need to add 17 and 25. Let me start with the tens: 10 + 20 = 30. Then the units: 7 + 5 = 12. "
         "Wait, 12 carries a ten, so 30 + 12 = 42. Let me double-check: 42 - 25 = 17. Yes.\n\n"
         "So the answer is \\boxed{42}.")
CHANGES = "Adding 17 and 25: 17 + 20 = 37, then 37 + 5 = 43.\n\nSo the answer is \\boxed{43}."
SHARD = pa.schema([*TRACE_SCHEMA, *LINEAGE_FIELDS])
"""The refined rows' shard schema: the trace columns, then the lineage."""
DROPS = "Let me think about how to add these two numbers, starting with the tens and then the units"


def test_specs_parse_into_passes() -> None:
    assert RefinePass.from_spec("rewrite_long") == RefinePass(kind="rewrite_long")
    edit = RefinePass.from_spec({"edit": {"times": 2}})
    assert (edit.kind, edit.times, edit.prompt_version) == ("edit", 2, "edit.v1")
    structure = RefinePass.from_spec({"structure": {"template": "## Plan\n## Check"}})
    assert structure.structure == "## Plan\n## Check"
    assert RefinePass.from_spec("structure").structure == DEFAULT_STRUCTURE
    assert RefinePass.from_spec(edit) is edit
    with pytest.raises(ValueError, match="known passes are"):
        RefinePass.from_spec("rewrite")
    for bad in ({"rewrite_long": {"times": 2}}, {"edit": {"template": "x"}}, {"edit": {"times": 0}},
                {"edit": {"repeat": 2}}):
        with pytest.raises(ValidationError):
            RefinePass.from_spec(bad)


def test_passes_expand_to_numbered_stages() -> None:
    stages = expand(PASSES)
    assert [(s.step, s.name, s.refine_pass.kind) for s in stages] == [
        (1, "rewrite_long", "rewrite_long"), (2, "edit.1", "edit"), (3, "edit.2", "edit"), (4, "structure", "structure")]
    assert [s.name for s in expand(["edit", "rewrite_long", {"edit": {"times": 2}}])] == [
        "edit.1", "rewrite_long", "edit.2", "edit.3"]
    with pytest.raises(ValueError, match="at least one pass"):
        expand([])


def test_prompts_are_versioned_files(tmp_path) -> None:
    for kind in ("rewrite_long", "edit", "structure"):
        p = RefinePass(kind=kind)
        text = resources.files("natural_thoughts.refine.prompts").joinpath(f"{kind}.v1.jinja").read_text()
        assert p.prompt_text == text and p.prompt_sha256 == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(ValueError, match="packaged prompts are"):
        _ = RefinePass(kind="edit", version="v9").prompt_text
    own = tmp_path / "my_edit.v3.jinja"
    own.write_text("Improve: {{ solution }}")
    custom = expand([{"edit": {"prompt": str(own)}}])[0]
    assert custom.refine_pass.prompt_version == "my_edit.v3"
    assert request_messages(custom, PARENT) == [{"role": "user", "content": f"Improve: {solution_text(PARENT)}"}]


def test_requests_hold_the_problem_and_the_previous_solution() -> None:
    assert solution_text(PARENT) == "17 + 25 = 42.\n\nThe sum is \\boxed{42}."  # markers gone
    for stage in expand(PASSES):
        [message] = request_messages(stage, PARENT)
        assert message["role"] == "user"
        assert PARENT["problem"] in message["content"] and solution_text(PARENT) in message["content"]
        assert "known to be" not in message["content"]  # the reference is hidden by default
        assert (DEFAULT_STRUCTURE in message["content"]) == (stage.name == "structure")
    shown = expand([{"rewrite_long": {"show_reference": True}}, {"structure": {"template": "## Only part"}}])
    assert "The final answer is known to be: 42" in request_messages(shown[0], PARENT)[0]["content"]
    assert "## Only part" in request_messages(shown[1], PARENT)[0]["content"]


def test_rows_keep_lineage_and_check_the_answer() -> None:
    rewrite, edit = expand(PASSES)[:2]
    kept, changed, dropped = (make_row(rewrite, PARENT, reply, "rewriter") for reply in (KEEPS, CHANGES, DROPS))
    for row in (kept, changed, dropped):
        assert row["trace_id"] == "p1-0-r1" and row["parent_trace_id"] == "p1-0"
        assert (row["refine.stage"], row["refine.step"], row["refine.prompt_version"]) == ("rewrite_long", 1, "rewrite_long.v1")
        assert row["refine.prompt_sha256"] == rewrite.refine_pass.prompt_sha256
        assert (row["problem"], row["reference_answer"], row["model"]) == (PARENT["problem"], "42", "rewriter")
        assert "label.correct" not in row  # the parent's labels describe the parent's text
    assert (kept["final_answer"], kept["refine.answer_kept"], kept["refine.correct"]) == ("42", True, True)
    assert (changed["final_answer"], changed["refine.answer_kept"], changed["refine.correct"]) == ("43", False, False)
    assert dropped["final_answer"] is None and "no_final_answer" in dropped["flags"]
    assert (dropped["refine.answer_kept"], dropped["refine.correct"]) == (False, False)
    again = make_row(edit, kept, CHANGES.replace("43", "42"), "editor")
    assert (again["trace_id"], again["parent_trace_id"], again["refine.stage"]) == ("p1-0-r1-r2", "p1-0-r1", "edit.1")
    assert again["refine.answer_kept"] is True
    with pytest.raises(ValueError, match="refines the rows of step 1"):
        make_row(edit, PARENT, KEEPS, "editor")
    revised = PARENT | {"trace_id": "p1-3", "refine.step": 3, "refine.stage": "human_stage4"}
    assert make_row(rewrite, revised, KEEPS, "rewriter")["parent_trace_id"] == "p1-3"  # step 1 takes any trace
    failed = make_row(rewrite, PARENT, None, "rewriter", error="APITimeoutError: took too long")
    assert failed["error"].startswith("APITimeoutError") and failed["completion"] == ""
    assert (failed["refine.answer_kept"], failed["refine.correct"]) == (None, None)
    table = pa.Table.from_pylist([kept, again, failed], schema=SHARD)
    assert table.num_rows == 3  # the rows fit the shard schema the wiring writes


def test_unrefinable_rows_say_why() -> None:
    assert skip_reason(PARENT) is None
    assert "error" in skip_reason(PARENT | {"error": "BadRequestError: too long"})
    assert "no text" in skip_reason(PARENT | {"completion": " ", "reasoning": "", "answer": ""})


def test_stage_report_figures() -> None:
    rewrite, edit = expand(["rewrite_long", "edit"])
    no_ref = PARENT | {"trace_id": "p2-0", "problem_id": "p2", "reference_answer": None}
    originals = [PARENT, no_ref]
    first = [make_row(rewrite, PARENT, KEEPS, "m"), make_row(rewrite, no_ref, CHANGES, "m")]
    second = [make_row(edit, first[0], DROPS, "m"), make_row(edit, first[1], None, "m", error="Timeout")]
    report = stage_report(Dataset(pa.Table.from_pylist(originals + first + second, schema=SHARD)))
    assert list(report["stage"]) == [ORIGINAL, "rewrite_long", "edit"] and list(report["step"]) == [0, 1, 2]
    assert list(report["count"]) == [2, 2, 2]
    original, rewritten, edited = (report.iloc[i] for i in range(3))
    assert (original["mean_length"], original["length_unit"]) == (7, "tokens")  # the engine's counts
    assert original["correct_rate"] == 1.0 and pd.isna(original["answer_kept_rate"])
    quarter = [-(-len(r["reasoning"] or r["completion"]) // 4) for r in first]
    assert rewritten["mean_length"] == sum(quarter) / 2 and rewritten["length_unit"] == "chars/4"
    assert rewritten["correct_rate"] == 1.0  # the second problem has no reference: undecided
    assert rewritten["answer_kept_rate"] == 0.5
    assert edited["mean_length"] == -(-len(DROPS) // 4)  # the error row has no length
    assert (edited["correct_rate"], edited["answer_kept_rate"]) == (0.0, 0.0)
    assert stage_report(report.iloc[:0]).empty
    assert stage_report(pd.DataFrame(originals)).iloc[0]["count"] == 2  # NaN cells read as missing


NEMOTRON = [  # the released layout, in its field names; rows deliberately out of stage order
    {"problem": "Find the sum of the first 10 positive integers.", "solution_type": "human_stage2",
     "solution": "I want 1 + 2 + ... + 10. Pairing 1 with 10, 2 with 9, and so on gives 5 pairs of 11, "
                 "so the sum is 55. Let me check with the formula n(n+1)/2 = 10*11/2 = 55.\n\n\\boxed{55}",
     "expected_answer": "55"},
    {"problem": "Find the sum of the first 10 positive integers.", "solution_type": "human_stage1",
     "solution": "By n(n+1)/2 the sum is 10*11/2 = \\boxed{55}.", "expected_answer": "55"},
    {"problem": "Find the sum of the first 10 positive integers.", "solution_type": "qwq_32b_preview",
     "solution": "So I need the sum 1 + 2 + ... + 10. Hmm, the formula is n(n+1)/2. Wait, let me just add: "
                 "1+2=3, +3=6, +4=10, +5=15, +6=21, +7=28, +8=36, +9=45, +10=55. Yes.\n\n**Final Answer**\n\n\\[ \\boxed{55} \\]",
     "expected_answer": "55"},
    {"problem": "Find the sum of the first 10 positive integers.", "solution_type": "human_stage4",
     "solution": "Pairs: 1+10, 2+9, 3+8, 4+7, 5+6, 6+5 give 6 pairs of 11, so 66?\n\n\\boxed{66}",
     "expected_answer": "55"},
    {"problem": "Find the sum of the first 10 positive integers.", "solution_type": "human_stage3",
     "solution": "I want 1 + 2 + ... + 10. Maybe pair terms: 1 and 10 make 11, 2 and 9 make 11. There are "
                 "10 terms, so 5 pairs: 5 * 11 = 55. Checking with n(n+1)/2 = 55 too.\n\n\\boxed{55}",
     "expected_answer": "55"},
    {"problem": "What is 2^5?", "solution_type": "human_stage3",
     "solution": "2^5 = 2*2*2*2*2. Doubling five times: 2, 4, 8, 16, 32.\n\n\\boxed{32}", "expected_answer": "32"},
    {"problem": "What is 2^5?", "solution_type": "human_stage1", "solution": "2^5 = \\boxed{32}",
     "expected_answer": "32"},
]


def test_nemotron_layout_reads_as_traces_with_lineage() -> None:
    traces = nemotron_human_reasoning(Dataset.from_list(NEMOTRON))
    rows = {(r["problem"][:8], r["model"]): r for r in traces.to_list()}
    sums, power = problem_id(NEMOTRON[0]["problem"]), problem_id("What is 2^5?")
    s1, s2, s3, s4, qwq = (rows[("Find the", t)] for t in
                           ("human_stage1", "human_stage2", "human_stage3", "human_stage4", "qwq_32b_preview"))
    assert [r["trace_id"] for r in (s1, s2, s3, s4, qwq)] == [f"{sums}-{i}" for i in range(5)]  # by type, not file order
    assert [r["parent_trace_id"] for r in (s1, s2, s3, s4, qwq)] == [None, s1["trace_id"], s2["trace_id"], s3["trace_id"], None]
    assert [r["refine.step"] for r in (s1, s2, s3, s4, qwq)] == [0, 1, 2, 3, 0]
    assert [r["refine.stage"] for r in (s1, qwq)] == ["human_stage1", "qwq_32b_preview"]
    assert [r["refine.answer_kept"] for r in (s1, s2, s3, s4)] == [None, True, True, False]
    assert [r["refine.correct"] for r in (s1, s2, s3, s4, qwq)] == [True, True, True, False, True]
    assert (s1["completion"], s1["reference_answer"]) == (NEMOTRON[1]["solution"], "55")
    assert s1["refine.prompt_version"] is None and s1["sample_index"] == 0
    p1, p3 = rows[("What is ", "human_stage1")], rows[("What is ", "human_stage3")]
    assert p1["problem_id"] == power and p3["parent_trace_id"] == p1["trace_id"]  # a missing stage is skipped
    report = stage_report(traces).set_index("stage")
    assert report.loc["human_stage1", "count"] == 2 and report.loc["human_stage4", "correct_rate"] == 0.0
    assert report.loc["human_stage3", "answer_kept_rate"] == 1.0
    with pytest.raises(KeyError, match="solution_type"):
        nemotron_human_reasoning(Dataset.from_list([{"problem": "x", "solution": "y", "expected_answer": "1"}]))
    with pytest.raises(ValueError, match="appears twice"):
        nemotron_human_reasoning(Dataset.from_list(NEMOTRON + NEMOTRON[:1]))


def test_a_real_short_trace_refined_into_its_own_text_keeps_its_answer() -> None:
    traces = load_traces(DATA / "skythought_math500_qwen2.5-math-7b.jsonl", preset="skythought_eval")
    parent = next(r for r in traces if r["final_answer"] and not r["flags"] and r["label.evaluator_correct"])
    stage = expand(PASSES)[0]
    [message] = request_messages(stage, parent)
    assert solution_text(parent) in message["content"]
    row = make_row(stage, parent, parent["completion"], "qwen2.5-math-7b")
    assert row["final_answer"] == parent["final_answer"]
    assert row["refine.answer_kept"] is True
    assert row["refine.correct"] is True
