"""The `natural-thoughts` command: help on every command, `inspect` on real traces, short errors, a
demo whose output fits on one screen."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from natural_thoughts.cli import app
from natural_thoughts.parse import parse_trace

from tests.conftest import DATA
from tests.data import SAMPLE_DATA as SAMPLES

runner = CliRunner()
SKY = DATA / "skythought_math500_sky-t1-27b.jsonl"



COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]


def test_every_stage_has_a_command() -> None:
    assert {"run", "demo", "inspect", "generate", "annotate", "status", "merge"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_each_command(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert "<bool>" not in result.output  # a flag takes no value
    text = " ".join(result.output.split())
    assert re.search(r"\bwrites\b", text, re.IGNORECASE), f"{command} --help does not say what it writes"


def test_help_of_the_command_has_no_value_placeholder_on_flags() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "--verbose" in result.output and "<bool>" not in result.output


def test_inspect_counts_what_the_text_holds() -> None:
    result = runner.invoke(app, ["inspect", str(SKY), "--preset", "skythought_eval"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    texts = [json.loads(line)["code"][0] for line in SKY.read_text().splitlines()]
    assert summary["rows"] == len(texts)
    unterminated = sum(
        "<|begin_of_thought|>" in t and "<|end_of_thought|>" not in t and "<|begin_of_solution|>" not in t
        for t in texts
    )
    assert summary["flags"].get("unterminated_reasoning", 0) == unterminated
    extracted = sum(parse_trace(t).final_answer is not None for t in texts)
    assert summary["answer_extraction_rate"] == round(extracted / len(texts), 4)
    assert 0 < summary["reasoning_chars_quantiles"]["p50"] <= summary["reasoning_chars_quantiles"]["max"]


QUIET_SCRIPT = """
import os, sys
from natural_thoughts.cli.core import _others_output_to_a_log
try:
    with _others_output_to_a_log():
        os.system("echo child-noise >&2; echo child-out")  # a real child process, as vLLM's engine is
        print("ours")
        print("our-warning", file=sys.stderr)
        if sys.argv[1] == "fail":
            raise RuntimeError
except RuntimeError:
    pass
"""


def test_other_processes_output_goes_to_a_log_named_only_on_failure(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, "ok"], capture_output=True, text=True, env=env)
    assert (ok.stdout, ok.stderr) == ("ours\n", "our-warning\n")
    assert not list(tmp_path.glob("natural-thoughts-*.log"))
    failed = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, "fail"], capture_output=True, text=True, env=env)
    [log] = tmp_path.glob("natural-thoughts-*.log")
    assert sorted(log.read_text().split()) == ["child-noise", "child-out"]
    assert failed.stdout == "ours\n" and failed.stderr.startswith("our-warning\n") and str(log) in failed.stderr


def test_an_error_is_one_short_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["merge", str(tmp_path), str(tmp_path.parent / "out.parquet")])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"error: {tmp_path} holds no generation run (no manifest.json / "
                                          "problem_ids.parquet) (--debug shows the traceback)"]
    debug = runner.invoke(app, ["--debug", "merge", str(tmp_path), str(tmp_path.parent / "out.parquet")])
    assert isinstance(debug.exception, FileNotFoundError)  # raised, so the full traceback is printed


@pytest.mark.slow
def test_demo_fits_on_one_screen_and_says_what_ran_then_what_was_reused(tmp_path: Path) -> None:
    command = [str(Path(sys.executable).with_name("natural-thoughts")), "demo", "--output-dir", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    lines = (first.stdout + first.stderr).splitlines()
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(lines) <= 25, "\n".join(lines)
    assert not [line for line in lines if "Triton" in line or "NUMA" in line or "safetensors" in line]  # --verbose shows them
    # the model was asked for every trace the first time, and for none the second (the summary's counts)
    assert re.search(r"stages: generate ran \(model: [1-9]\d* asked, 0 reused\), annotate ran", first.stdout)
    assert "errors: 0" in first.stdout
    # the second half: real traces from the repository's samples, curated; both exports are named
    real = tmp_path / "real" / "export"
    assert f"exported dataset: {tmp_path / 'export'}" in first.stdout and f"exported dataset: {real}" in first.stdout
    assert f"dataset card (with figures): {real / 'README.md'}" in first.stdout
    sample = SAMPLES / "skythought_math500_sky-t1-27b.jsonl"
    trace_of = {r["question"].strip(): r["code"][0] for r in map(json.loads, sample.open(encoding="utf-8"))}
    rows = [json.loads(line) for f in sorted(real.glob("*.jsonl")) for line in f.open(encoding="utf-8")]
    assert rows
    for row in rows:  # real reasoning: the user turn is a sample question, the reply is its Sky-T1 trace's text
        user, reply = (m["content"] for m in row["messages"])
        body = reply.replace("<think>", "").split("</think>")
        assert user.strip() in trace_of and body[0].strip()[:200] in trace_of[user.strip()]
    card = (real / "README.md").read_text()
    assert "verified correct" in card and "strategies.png" in card and "lengths.png" in card
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"stages: generate reused( \(model: 0 asked, [1-9]\d* reused\))?, annotate reused", again.stdout)
    assert "export reused" in again.stdout
