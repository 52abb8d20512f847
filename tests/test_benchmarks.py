"""`benchmarks/scale.py` runs end to end at 10k traces (the size CI runs), from any folder, and the
library's results on its pool equal the per-row loop's. Times are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA

SCALE = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


@pytest.mark.slow  # a few minutes: it builds, loads, tags, selects and embeds 10,000 traces
def test_scale_benchmark_at_ten_thousand_traces(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = ["--sizes", "10000", "--k", "2000", "--compare-rows", "2000", "--dedup-rows", "3000", "--json", str(out), "--data", str(DATA)]
    done = subprocess.run([sys.executable, str(SCALE), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    size = report["sizes"]["10000"]
    assert [s["stage"] for s in size["stages"]] == ["load_traces", "add_reasoning_tokens", "tag_strategies",
                                                   "Sequential selection", "ClusterUniform (subset)"]
    assert size["identical"] is True and size["selected"] == 1000
    assert all(s["seconds"] >= 0 and s["peak_rss_gb"] > 0 for s in size["stages"])
    assert report["dedup"]["3000"][-1]["same_rows_and_owners"] is True


@pytest.mark.slow  # builds, loads, tags, selects and embeds 2,000 traces
def test_scale_benchmark_reads_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = ["--sizes", "2000", "--input", "jsonl", "--k", "500", "--compare-rows", "500", "--dedup-rows", "0",
            "--json", str(out), "--data", str(DATA)]
    done = subprocess.run([sys.executable, str(SCALE), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    size = json.loads(out.read_text())["sizes"]["2000"]
    assert size["input"] == "jsonl" and size["input_mb"] > size["parquet_mb"]
    assert size["identical"] is True


@pytest.mark.slow  # runs ~60 programs three times
def test_code_verify_benchmark_runs_and_agrees_with_the_naive_loop(tmp_path: Path) -> None:
    out = tmp_path / "code.json"
    script = SCALE.with_name("code_verify.py")
    done = subprocess.run([sys.executable, str(script), "--step", "40", "--json", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = [k for k in report if k.startswith("LocalSandbox")]
    assert report["programs"] > 40 and len(runs) == 2
    assert all(report[k]["same_verdicts_as_naive"] >= report["programs"] - 2 for k in runs)
