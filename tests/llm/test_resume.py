"""Crash safety: a generating process killed (SIGKILL) at several instants, then resumed.

Each kill hits a real subprocess running the real vLLM engine on the tiny model (tests/llm/generate_child.py);
the final resume runs in this process on the session engine. Whatever the instant, the finished
traces hold every (problem_id, sample_index) exactly once, and shards written before a kill are
byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from natural_thoughts import generate, load_traces
from natural_thoughts.llm.status import run_status
from natural_thoughts.llm.store import ShardStore, latest_rows, parse_shard, shard_of
from natural_thoughts.generate.summary import error_kind

from .generate_child import ARGS, KILL_ENV, PROBLEMS, load

pytestmark = pytest.mark.slow  # engines in subprocesses, killed and resumed

CHILD = Path(__file__).with_name("generate_child.py")


def _start(model_dir: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The child run in its own process group, so a kill takes its engine processes too."""
    return subprocess.Popen([sys.executable, str(CHILD), str(model_dir), str(out)], env={**os.environ, **(env or {})},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 400) -> None:
    """SIGKILL the child's process group as soon as `ready()` holds (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) first: {proc.stderr.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, "the child never reached the kill point"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _reap(proc: subprocess.Popen) -> None:
    """Wait for a child that kills itself; make sure its whole group is gone."""
    proc.wait(timeout=400)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _shards(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(out.rglob("part-*.parquet"))}


def test_sigkill_before_between_and_during_shard_writes_then_resume(tiny_model_dir: Path, llm, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    # 1. before the first shard: killed as soon as the run has recorded its manifest
    child = _start(tiny_model_dir, out)
    _kill_when(child, lambda: (out / "manifest.json").exists())
    manifest = (out / "manifest.json").read_bytes()
    assert json.loads(manifest)["fingerprint"]["n"] == ARGS["n"]
    assert _shards(out) == {}

    # 2. between shards: resumed, then killed once two shards are in place
    child = _start(tiny_model_dir, out)
    _kill_when(child, lambda: (out / "shard-0-of-1" / "part-000001.parquet").exists())
    first = _shards(out)
    assert 2 <= len(first) < PROBLEMS, "the kill should land mid-run (batch_size=1: one shard per problem)"
    keys = ShardStore(out).read_keys().to_pydict()
    assert len(keys["problem_id"]) == len(set(zip(keys["problem_id"], keys["sample_index"])))

    # 3. during a write: the child kills itself when its 2nd shard is on disk but not yet renamed
    child = _start(tiny_model_dir, out, {KILL_ENV: "2"})
    _reap(child)
    second = _shards(out)
    assert len(second) == len(first) + 1
    assert all(second[p] == data for p, data in first.items())
    assert list((out / "shard-0-of-1").glob("*.tmp")), "the torn write leaves only a temporary file"
    partial = load_traces(out)  # a reader never sees the temporary file
    assert len(partial) == ARGS["n"] * len(second)
    status = run_status(out)
    assert (status.done, status.missing) == (len(partial), ARGS["n"] * (PROBLEMS - len(second)))

    # 4. resume to the end in this process (the session engine: the engine is not fingerprinted)
    problems = load()
    traces, summary = generate(problems, model=llm, output_dir=out, return_summary=True, **{**ARGS, "batch_size": 4})
    assert summary.skipped == len(partial) and summary.generated == ARGS["n"] * PROBLEMS - len(partial)
    expected = sorted((pid, s) for pid in problems["problem_id"] for s in range(ARGS["n"]))
    assert sorted(zip(traces["problem_id"], traces["sample_index"])) == expected
    on_disk = ShardStore(out).read_keys().to_pydict()
    assert sorted(zip(on_disk["problem_id"], on_disk["sample_index"])) == expected  # no duplicate anywhere
    assert all(traces["error"][i] is None for i in range(len(traces)))
    final = _shards(out)
    assert all(final[p] == data for p, data in second.items())  # earlier shards untouched
    assert (out / "manifest.json").read_bytes() == manifest
    assert not list(out.glob("shard-*/*.tmp"))  # the next write in a share clears its stale temporary files
    assert run_status(out).complete


def test_later_success_supersedes_error_rows(tmp_path: Path) -> None:
    rows = [
        {"problem_id": "a", "sample_index": 0, "error": "APIConnectionError: down", "generated_at": "2025-01-01T00:00:01"},
        {"problem_id": "a", "sample_index": 1, "error": None, "generated_at": "2025-01-01T00:00:01"},
        {"problem_id": "b", "sample_index": 0, "error": "BadRequestError: too long", "generated_at": "2025-01-01T00:00:01"},
        {"problem_id": "a", "sample_index": 0, "error": None, "generated_at": "2025-01-01T00:00:09"},
        {"problem_id": "b", "sample_index": 0, "error": "BadRequestError: still too long", "generated_at": "2025-01-01T00:00:09"},
    ]
    keep = latest_rows(pa.Table.from_pylist(rows))
    assert keep == [3, 1, 4]  # sorted by key; the success, then the latest error


def test_second_writer_on_the_same_shard_is_refused(tmp_path: Path) -> None:
    store = ShardStore(tmp_path, "shard-1-of-4")
    with store.lock():
        with pytest.raises(RuntimeError, match="another process is writing .*shard-1-of-4"):
            with ShardStore(tmp_path, "shard-1-of-4").lock():
                pass
        with ShardStore(tmp_path, "shard-2-of-4").lock():  # another share is free
            pass
    with ShardStore(tmp_path, "shard-1-of-4").lock():  # released on exit
        pass


def test_shard_specs_are_checked_and_split_evenly() -> None:
    assert parse_shard("1/4") == (1, 4) and parse_shard((0, 1)) == (0, 1) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "x/2", "1", (0, 0), "-1/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    counts = Counter(shard_of(f"problem-{i}", 4) for i in range(400))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 60


def test_error_kinds_are_the_exception_names() -> None:
    assert error_kind("BadRequestError: Error code: 400 - too long") == "BadRequestError"
    assert error_kind("vllm.v1.engine.exceptions.EngineDeadError: gone") == "EngineDeadError"
    assert error_kind("backend returned 1 of 2 samples") == "other"
