"""The `natural-thoughts` command: help on every command, `inspect` on real traces, short errors, a
demo whose output fits on one screen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from natural_thoughts.cli import app
from natural_thoughts.parse import parse_trace

from tests.conftest import DATA

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
    assert "stages: generate ran, annotate ran" in first.stdout and "errors: 0" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "stages: generate reused, annotate reused" in again.stdout and "export reused" in again.stdout
