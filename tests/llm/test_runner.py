"""The model-call loop itself (`run_pass`) on the real tiny vLLM engine: resume, schema, retries, regex."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from natural_thoughts.llm import (BACKENDS, EXECUTORS, EngineStartError, ModelPass, Request, Response, Work,
                                  build_backend, run_pass)
from natural_thoughts.llm.backends.vllm import VLLMBackend
from natural_thoughts.llm.passes import shard_schema
from natural_thoughts.llm.store import MANIFEST, REQUEST_HASH

from tests.conftest import CountingBackend

YES_NO = "(yes|no)"


class Answer(ModelPass):
    """Ask a yes/no question per problem (guided by a regex); `again` re-asks a "no" once."""

    schema = pa.schema([("problem_id", pa.string()), ("reply", pa.string()), ("tokens", pa.int64()),
                        ("attempts", pa.int64()), ("error", pa.string())])
    error_column = "error"

    def __init__(self, retry_no: bool = False) -> None:
        self.retry_no = retry_no

    def _request(self, row: dict[str, Any], attempt: int) -> Request:
        return Request([{"role": "user", "content": f"Yes or no: {row['problem']}"}],
                       sampling={"max_tokens": 4, "seed": attempt, "temperature": 1.0}, regex=YES_NO)

    def requests(self, work: list[Work]) -> list[Request | None]:
        return [self._request(row, 0) for row, _ in work]

    def again(self, work: Work, request: Request, response: Response, attempt: int) -> Request | None:
        retry = self.retry_no and attempt == 0 and response.completions[0].text == "no"
        return self._request(work[0], 1) if retry else None

    def rows(self, work: list[Work], requests: list[Request | None], responses: list[Response | None],
             model_name: str) -> list[dict[str, Any]]:
        return [{"problem_id": row["problem_id"], "reply": r.completions[0].text if r.completions else None,
                 "tokens": r.completions[0].completion_tokens if r.completions else None,
                 "attempts": 1 + q.sampling["seed"], "error": r.error}
                for (row, _), q, r in zip(work, requests, responses)]


@pytest.fixture(scope="module")
def problems() -> Dataset:
    return Dataset.from_list([{"problem_id": f"p{i}", "problem": f"Is {i} even?", "extra": i} for i in range(6)])


def test_a_second_run_asks_only_the_missing_keys(llm, problems: Dataset, tmp_path: Path) -> None:
    backend = CountingBackend(llm)
    first = run_pass(Answer(), problems.select(range(4)), backend, tmp_path, batch_size=3, show_progress=False)
    assert first.pending == first.written == 4 and len(backend.requests) == 4
    assert len(list(tmp_path.rglob("part-*.parquet"))) == 2  # one shard per batch
    backend.requests.clear()
    again = run_pass(Answer(), problems, backend, tmp_path, batch_size=3, show_progress=False)
    assert again.pending == 2 and [r.messages[0]["content"] for r in backend.requests] == [
        "Yes or no: Is 4 even?", "Yes or no: Is 5 even?"]
    assert sorted(again.rows.column("problem_id").to_pylist()) == problems["problem_id"]
    backend.requests.clear()
    done = run_pass(Answer(), problems, backend, tmp_path, show_progress=False)
    assert done.pending == done.written == 0 and backend.requests == []
    manifest = json.loads((tmp_path / MANIFEST).read_text())["fingerprint"]
    assert manifest == {"pass": "Answer", "model": backend.model_name, "retry_no": False}
    with pytest.raises(ValueError, match="different configuration"):
        run_pass(Answer(retry_no=True), problems, backend, tmp_path, show_progress=False)


def test_a_changed_input_is_asked_again_and_an_unchanged_one_reused(llm, problems: Dataset, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    backend = CountingBackend(llm)
    first = run_pass(Answer(), problems, backend, tmp_path, show_progress=False)
    changed = problems.map(lambda row: {"problem": row["problem"] + " Think twice." if row["extra"] % 2 else row["problem"]})
    backend.requests.clear()
    again = run_pass(Answer(), changed, backend, tmp_path, show_progress=False)
    asked = [r.messages[0]["content"] for r in backend.requests]
    assert asked == [f"Yes or no: Is {i} even? Think twice." for i in (1, 3, 5)]
    assert (again.pending, again.stale, again.reused) == (3, 3, 3)
    latest = {r["problem_id"]: r for r in again.rows.to_pylist()}  # a later row of a key wins
    assert [latest[f"p{i}"] for i in (0, 2, 4)] == [r for r in first.rows.to_pylist() if r["problem_id"] in ("p0", "p2", "p4")]
    backend.requests.clear()
    assert run_pass(Answer(), changed, backend, tmp_path, show_progress=False).reused == 6 and backend.requests == []
    # a shard written before requests were hashed proves nothing: its keys are asked again, and said so
    for shard in tmp_path.rglob("part-*.parquet"):
        pq.write_table(pq.read_table(shard).drop_columns([REQUEST_HASH]), shard)
    with caplog.at_level("WARNING"):
        old = run_pass(Answer(), changed, backend, tmp_path, show_progress=False)
    assert old.pending == 6 and old.reused == 0 and "without the hash of their request" in caplog.text


def test_rows_land_under_the_schema_and_a_pass_retries_through_again(llm, problems: Dataset, tmp_path: Path) -> None:
    backend = CountingBackend(llm)
    out = run_pass(Answer(retry_no=True), problems, backend, tmp_path, batch_size=4, show_progress=False)
    assert out.rows.schema == Answer.schema
    assert all(pq.read_schema(f) == shard_schema(Answer()) for f in tmp_path.rglob("part-*.parquet"))
    rows = out.rows.to_pylist()
    assert all(r["reply"] in ("yes", "no") and r["error"] is None for r in rows)  # the regex held
    retried = [r for r in rows if r["attempts"] == 2]
    assert len(backend.requests) == len(rows) + len(retried)
    assert out.tokens >= sum(r["tokens"] for r in rows) > 0  # the retried replies' tokens count too


def test_in_memory_lists_repeated_units_and_columns(llm) -> None:
    class Pick(Answer):
        columns = ("problem_id", "problem")

        def rows(self, work, requests, responses, model_name):  # type: ignore[no-untyped-def]
            assert all(set(row) == {"problem_id", "problem"} for row, _ in work)  # only the columns it reads
            return super().rows(work, requests, responses, model_name)

    inputs = [{"problem_id": "a", "problem": "Is 1 odd?", "noise": 1}, {"problem_id": "a", "problem": "again"},
              {"problem_id": "b", "problem": "Is 2 odd?", "noise": 2}]
    backend = CountingBackend(llm)
    out = run_pass(Pick(), inputs, backend, show_progress=False)
    assert out.rows.column("problem_id").to_pylist() == ["a", "b"] and len(backend.requests) == 2
    with pytest.raises(ValueError, match="row 1 has no 'problem_id'; Pick keys its rows by it"):
        run_pass(Pick(), [inputs[0], {"problem_id": None, "problem": "x"}], backend, show_progress=False)


def test_regex_constrains_the_vllm_reply(llm) -> None:
    requests = [Request([{"role": "user", "content": f"Answer {i}"}], sampling={"max_tokens": 8, "seed": i},
                        regex=YES_NO) for i in range(8)]
    replies = [r.completions[0] for r in VLLMBackend(llm, use_tqdm=False).generate(requests)]
    assert all(r.text in ("yes", "no") and r.finish_reason == "stop" for r in replies)
    with pytest.raises(ValueError, match="not both"):
        Request([], json_schema={"type": "string"}, regex=YES_NO)


def test_an_engine_that_cannot_start_leaves_no_run_folder(problems: Dataset, tmp_path: Path) -> None:
    engine = build_backend("vllm", str(tmp_path / "no-such-model"))
    with pytest.raises(EngineStartError, match="does not exist"):
        run_pass(Answer(), problems, engine, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_a_missing_model_folder_is_named_before_vllm_is_imported(tmp_path: Path) -> None:
    """vLLM's import takes seconds: a start that cannot succeed says so first (in a fresh interpreter,
    where nothing has imported vLLM yet)."""
    missing = tmp_path / "no-such-model"
    code = ("import sys\nfrom natural_thoughts.llm import EngineStartError, build_backend\n"
            f"try:\n    build_backend('vllm', {str(missing)!r}).start()\n"
            "except EngineStartError as exc:\n    print(exc)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'vllm'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    error, imported = done.stdout.splitlines()
    assert f"the model folder {missing} does not exist" in error and imported == "[]"


def test_backend_and_executor_specs_and_unknown_names() -> None:
    engine = build_backend({"vllm": {"reasoning_parser": "deepseek_r1"}}, "some/model",
                           engine_kwargs={"max_model_len": 512})
    assert isinstance(engine, VLLMBackend) and engine.reasoning_parser == "deepseek_r1"
    assert engine.engine_kwargs == {"max_model_len": 512} and engine.use_tqdm is False
    openai = build_backend({"openai": {"base_url": "http://127.0.0.1:9/v1"}}, "m", backend_kwargs={"max_concurrency": 2})
    assert (openai.base_url, openai.max_concurrency) == ("http://127.0.0.1:9/v1", 2)
    assert {"vllm", "openai"} <= set(BACKENDS.names()) and {"local", "ray"} <= set(EXECUTORS.names())
    with pytest.raises(ValueError, match=r"unknown backend 'vlm'.*known backends: \['openai', 'vllm'\]"):
        build_backend("vlm", "m")
    with pytest.raises(ValueError, match=r"unknown executor 'slurm'; known executors: \['local', 'ray'\]"):
        run_pass(Answer(), [], engine, executor="slurm")
