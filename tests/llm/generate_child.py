"""A resumable `generate` run for test_resume.py to start in a subprocess and kill.

`python tests/llm/generate_child.py MODEL_DIR OUTPUT_DIR` generates traces for the first gsm8k
problems. With the environment variable `NT_TEST_KILL_AT_SHARD_RENAME=k` the process group kills
itself with SIGKILL when its k-th shard is fully written to its temporary name but not yet renamed
into place. That is test-side fault injection (an audit hook on `os.replace`, installed only by
this script); the library has no such hook.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: the repository root on the path, for tests.data
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.data import DATA  # noqa: E402

KILL_ENV = "NT_TEST_KILL_AT_SHARD_RENAME"
PROBLEMS = 12
ARGS: dict[str, Any] = {
    "n": 2,
    "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 48, "seed": 11},
    "batch_size": 1,
    "show_progress": False,
}
"""The generate arguments every run of the test shares (the engine may differ: not fingerprinted)."""


def load() -> Any:
    """The problems: the first `PROBLEMS` gsm8k test questions (tests/data.py: the shared files or the samples)."""
    from natural_thoughts import load_problems

    ds = load_problems(DATA / "gsm8k_test.jsonl", preset="gsm8k")
    return ds.select(range(PROBLEMS))


def _kill_at_rename(k: int) -> None:
    """SIGKILL this process group just before the k-th shard's rename (the shard is on disk as .tmp)."""
    seen = 0

    def hook(event: str, args: tuple) -> None:
        nonlocal seen
        if event == "os.rename" and str(args[0]).endswith(".tmp") and "/part-" in str(args[0]):
            seen += 1
            if seen == k:
                os.killpg(os.getpgid(0), signal.SIGKILL)

    sys.addaudithook(hook)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    model_dir, output_dir = sys.argv[1], sys.argv[2]
    if int(os.environ.get(KILL_ENV, "0")):
        _kill_at_rename(int(os.environ[KILL_ENV]))
    from natural_thoughts import generate

    generate(load(), model=model_dir, output_dir=output_dir,
             engine_kwargs={"enforce_eager": True, "max_model_len": 1024}, **ARGS)
