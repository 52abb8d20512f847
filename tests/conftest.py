"""Shared fixtures: real data (../shared/data, else the in-repo samples), one tiny model and one real vLLM engine per session."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# A private datasets cache per session: `load_dataset(folder)` keys its cache on the folder's
# layout, so a shared cache can serve an earlier run's export of the same shape (seen here).
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="nt-hf-datasets-")
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)
# Likewise a private embedding cache (the default is the user's ~/.cache, shared by every process).
os.environ["NATURAL_THOUGHTS_CACHE"] = tempfile.mkdtemp(prefix="nt-cache-")
atexit.register(shutil.rmtree, os.environ["NATURAL_THOUGHTS_CACHE"], True)


def _worker_cpus() -> list[int] | None:
    """This parallel test worker's share of the CPUs (None outside a parallel run)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count:
        return None
    cpus, index, workers = sorted(os.sched_getaffinity(0)), int(worker.removeprefix("gw")), int(count)
    return cpus[index * len(cpus) // workers:(index + 1) * len(cpus) // workers] or [cpus[index % len(cpus)]]


# vllm-cpu binds every engine's model worker to the same core by default (core 0 of a 2-CPU machine,
# the other kept for its scheduler), so two test workers' engines would take turns on one core: each
# worker's engines (its own, its servers', its CLI runs) get that worker's CPUs instead.
if (_cpus := _worker_cpus()) is not None:
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, _cpus)))

from pathlib import Path

import pytest

from tests.data import DATA  # noqa: E402,F401  (re-exported: tests import it from here)


ENGINE_FIXTURES = {"llm", "server"}
"""Fixtures that start the real vLLM engine (offline, or as a server): their tests are marked
`vllm` and `slow`."""


WORKER_MEMORY_GIB = 6
"""Memory one parallel test worker may need at its peak: its session engine and one more that a test
starts (a server, a CLI run), each ~2-3 GiB on vllm-cpu."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (as `make test` runs): one worker per CPU this process may use, fewer where the
    available memory cannot hold `WORKER_MEMORY_GIB` per worker. `PYTEST_XDIST_AUTO_NUM_WORKERS` wins."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    import psutil

    by_memory = int(psutil.virtual_memory().available / 2**30 // WORKER_MEMORY_GIB)
    return max(1, min(len(os.sched_getaffinity(0)), by_memory))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs the real engine (`-m "not slow"` leaves them out; CI runs all).

    In a parallel run (`--dist loadscope`, from pyproject.toml: a module's tests stay on one worker,
    so a module-scoped server starts once) the modules with the most slow tests go first: workers
    are handed modules in this order, so the long ones start early and the short ones fill the gaps,
    instead of one long module running alone at the end.
    """
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.vllm)
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        slow = Counter(item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow"))
        items.sort(key=lambda item: -slow[item.nodeid.split("::")[0]])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2 smoke model, built once per session."""
    from natural_thoughts.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def llm(tiny_model_dir: Path):
    """One real `vllm.LLM` engine on the tiny model for the whole session.

    `enforce_eager` skips graph capture (a faster load); `max_num_batched_tokens` keeps prompts
    from being split across steps, which crashes seeded sampling on vllm-cpu 0.32.
    """
    from vllm import LLM

    engine = LLM(model=str(tiny_model_dir), max_model_len=2048, seed=0, enforce_eager=True,
                 max_num_batched_tokens=16384)
    yield engine
    del engine


class CountingBackend:
    """The real vLLM backend, recording the requests it is sent (to see retries and resumes)."""

    def __init__(self, llm: Any) -> None:
        from natural_thoughts.llm.backends.vllm import VLLMBackend

        self.inner = VLLMBackend(llm, use_tqdm=False)
        self.model_name = self.inner.model_name
        self.requests: list = []

    def generate(self, requests: list) -> list:
        self.requests.extend(requests)
        return self.inner.generate(requests)


KEY_ENV = "NT_TEST_OPENAI_KEY"
"""The environment variable that holds the test server's API key."""


class Server:
    """A `vllm.entrypoints.openai.api_server` subprocess on loopback, in its own process group."""

    def __init__(self, model_dir: Path, log: Path, key: str, reasoning_parser: bool = True,
                 max_model_len: int = 1024) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                     "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(self.port),
                     "--max-model-len", str(max_model_len), "--enforce-eager", "--api-key", key, "--seed", "0"]
        self.args += ["--reasoning-parser", "deepseek_r1"] if reasoning_parser else []
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 420) -> None:
        """Start the server and wait for its /health. Its start is mostly Python importing vLLM once per
        process: with `VLLM_ENABLE_V1_MULTIPROCESSING=0` the model runs inside the engine-core process
        (two processes, not three), which starts it ~25% sooner."""
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vLLM server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise TimeoutError(f"the vLLM server did not come up: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server and its engine processes."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextmanager
def running_server(model_dir: Path, folder: Path, **options: Any) -> Iterator[Server]:
    """A started `Server` with a fresh API key in `KEY_ENV`, killed (and the key removed) on exit."""
    key = "sk-nt-" + secrets.token_hex(8)
    os.environ[KEY_ENV] = key
    srv = Server(model_dir, folder / "server.log", key, **options)
    try:
        srv.start()
        yield srv
    finally:
        srv.kill()
        os.environ.pop(KEY_ENV, None)
