"""The OpenAI-compatible backend against a real vLLM server on loopback, started by the test.

The server runs the tiny model with a reasoning parser and an API key. It is killed and restarted
in the middle of a run (the last test): the run waits it out with backoff and loses nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from datasets import Dataset
from typer.testing import CliRunner

from natural_thoughts import generate, load_problems, load_traces
from natural_thoughts.llm.backends import Request, build_backend
from natural_thoughts.cli import app
from natural_thoughts.llm.status import run_status
from natural_thoughts.llm.store import ShardStore

from tests.conftest import KEY_ENV, Server, running_server

pytestmark = pytest.mark.slow  # real vLLM servers on loopback

pytest.importorskip("openai")
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 32, "seed": 5}


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tiny_model_dir, tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture(scope="module")
def problems() -> Dataset:
    return load_problems(Dataset.from_list([{"problem": f"What is {i} times {i + 1}?"} for i in range(6)]))


def _kwargs(server: Server, **extra) -> dict:
    return {"base_url": server.base_url, "api_key_env": KEY_ENV, "max_concurrency": 4, **extra}


def test_n_samples_reasoning_tokens_errors_and_no_leaked_key(server: Server, problems: Dataset, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    long = load_problems(Dataset.from_list([{"problem": "word " * 3000}]))
    mixed = Dataset.from_list(list(problems) + list(long))
    out = tmp_path / "traces"
    backend_kwargs = _kwargs(server, return_token_ids=True)
    traces, summary = generate(mixed, model="tiny", backend="openai", backend_kwargs=backend_kwargs, n=2,
                               sampling=SAMPLING, output_dir=out, batch_size=4, return_summary=True, show_progress=False)
    assert len(traces) == 2 * len(mixed)
    assert summary.errors == {"BadRequestError": 2}  # both samples of the prompt over the context
    for row in traces:
        if row["problem_id"] == long[0]["problem_id"]:
            assert "maximum context length" in row["error"]
            continue
        assert row["error"] is None and row["model"] == "tiny"
        assert row["reasoning"], "the server's reasoning parser fills the separate field"
        assert ("unterminated_reasoning" in row["flags"]) == (row["answer"] == "")
        if "unterminated_reasoning" in row["flags"]:  # per-sample counts from the server's token ids
            assert 0 < row["reasoning_tokens"] <= SAMPLING["max_tokens"] and row["answer_tokens"] == 0
        assert json.loads(row["prompt"])[-1]["content"] == row["problem"]
    by_problem = {}
    for row in traces:
        by_problem.setdefault(row["problem_id"], set()).add(row["completion"])
    assert all(len(c) == 2 for pid, c in by_problem.items() if pid != long[0]["problem_id"])  # n samples differ
    key = os.environ[KEY_ENV]
    backend = build_backend("openai", "tiny", backend_kwargs=backend_kwargs)
    assert key not in repr(backend) and key not in json.dumps(vars(backend), default=str)
    assert all(key not in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())
    assert key not in caplog.text


def test_json_schema_regex_and_fatal_errors(server: Server) -> None:
    backend = build_backend({"openai": _kwargs(server)}, "tiny")  # the spec format
    schema = {"type": "object", "properties": {"a": {"enum": ["x", "y"]}}, "required": ["a"]}
    [reply] = backend.generate([Request([{"role": "user", "content": "json"}], sampling={"max_tokens": 16, "temperature": 0},
                                        json_schema=schema)])
    assert reply.error is None
    text = (reply.completions[0].reasoning or "") + reply.completions[0].text
    assert text.strip() == "" or text.strip().startswith("{")  # decoding was constrained to the schema
    asks = [Request([{"role": "user", "content": f"yes or no {i}?"}], sampling={"max_tokens": 8, "seed": i},
                    regex="(yes|no)") for i in range(4)]
    replies = backend.generate(asks)  # the server takes the regex as its `structured_outputs` body field; it
    # constrains the content after the reasoning, which the reasoning parser holds apart (here all of it)
    assert all(r.error is None and r.completions[0].text in ("", "yes", "no") for r in replies)
    import openai

    wrong = build_backend("openai", "tiny", backend_kwargs={"base_url": server.base_url,
                                                             "api_key_env": "NT_TEST_NO_SUCH_KEY"})
    with pytest.raises(openai.AuthenticationError):  # a wrong key stops the run: every row would fail
        wrong.generate([Request([{"role": "user", "content": "hi"}], sampling={"max_tokens": 4})])


def test_cli_generate_in_two_shards_then_status_and_merge(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "problems.jsonl"
    source.write_text("".join(json.dumps({"problem": f"Add {i} and {2 * i}."}) + "\n" for i in range(8)))
    out, runner = tmp_path / "run", CliRunner()
    common = [str(source), "--backend", "openai", "--model", "tiny", "--base-url", server.base_url,
              "--api-key-env", KEY_ENV, "--output-dir", str(out), "--n", "2", "--max-tokens", "16", "--batch-size", "3"]
    first = runner.invoke(app, ["generate", *common, "--shard", "0/2"])
    assert first.exit_code == 0, first.output
    half = runner.invoke(app, ["status", str(out), "--json"])
    status = json.loads(half.output)
    assert not status["complete"] and {s["name"] for s in status["shards"]} == {"shard-0-of-2", "shard-1-of-2"}
    by_name = {s["name"]: s for s in status["shards"]}
    assert by_name["shard-0-of-2"]["missing"] == 0 and by_name["shard-1-of-2"]["done"] == 0
    assert status["missing"] == by_name["shard-1-of-2"]["expected"] > 0
    refused = runner.invoke(app, ["merge", str(out), str(tmp_path / "all.parquet")])
    assert refused.exit_code != 0 and "incomplete" in refused.output
    second = runner.invoke(app, ["generate", *common, "--shard", "1/2", "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output[second.output.index('{\n  "'):])["generated"] == by_name["shard-1-of-2"]["expected"]
    assert "done 16, errors 0, missing 0" in runner.invoke(app, ["status", str(out)]).output
    merged = runner.invoke(app, ["merge", str(out), str(tmp_path / "all.parquet")])
    assert merged.exit_code == 0, merged.output
    one = load_traces(tmp_path / "all.parquet")
    assert len(one) == 16 and len(set(zip(one["problem_id"], one["sample_index"]))) == 16
    sizes = [by_name[name]["expected"] // 2 for name in by_name]  # problems per share, 3 per shard file
    assert len(list(out.rglob("part-*.parquet"))) == sum(-(-k // 3) for k in sizes)  # the shards are kept


def test_server_killed_and_restarted_mid_run(server: Server, problems: Dataset, tmp_path: Path) -> None:
    out, failed = tmp_path / "long", tmp_path / "failed"
    patient = _kwargs(server, max_concurrency=2, max_retries=60, retry_budget_s=500, backoff_max_s=10)
    result: dict = {}

    def run() -> None:
        result["traces"], result["summary"] = generate(
            problems, model="tiny", backend="openai", backend_kwargs=patient, n=2, batch_size=1,
            sampling={**SAMPLING, "max_tokens": 64}, output_dir=out, return_summary=True, show_progress=False)

    worker = threading.Thread(target=run)
    worker.start()
    shard_dir = out / "shard-0-of-1"
    deadline = time.monotonic() + 120
    while not (shard_dir / "part-000000.parquet").exists():
        assert worker.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    server.kill()
    before = {p: p.read_bytes() for p in shard_dir.glob("part-*.parquet")}
    assert len(before) < len(problems), "the server should die mid-run"
    # meanwhile an impatient run (no retries) turns every request into an error row and goes on
    impatient = _kwargs(server, max_retries=0)
    _, summary = generate(problems, model="tiny", backend="openai", backend_kwargs=impatient, n=1, sampling=SAMPLING,
                          output_dir=failed, return_summary=True, show_progress=False)
    assert summary.errors == {"APIConnectionError": len(problems)}
    failed_shards = {p: p.read_bytes() for p in failed.rglob("part-*.parquet")}
    server.start()
    worker.join(timeout=600)
    assert not worker.is_alive()
    traces = result["traces"]
    assert result["summary"].error_count == 0
    assert sorted(zip(traces["problem_id"], traces["sample_index"])) == sorted(
        (pid, s) for pid in problems["problem_id"] for s in range(2))
    assert all(p.read_bytes() == data for p, data in before.items())
    # the failed rows are generated again and supersede the error rows, which stay on disk
    retried, summary = generate(problems, model="tiny", backend="openai", backend_kwargs=impatient, n=1,
                                sampling=SAMPLING, output_dir=failed, retry_failed=True, return_summary=True,
                                show_progress=False)
    assert summary.generated == len(problems) and summary.error_count == 0
    assert len(retried) == len(problems) and all(e is None for e in retried["error"])
    assert all(p.read_bytes() == data for p, data in failed_shards.items())
    assert len(ShardStore(failed).read_keys()) == 2 * len(problems)
    assert run_status(failed).complete
