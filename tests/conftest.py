"""Shared fixtures: real data from ../shared/data, one tiny model and one real vLLM engine per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# A private datasets cache per session: `load_dataset(folder)` keys its cache on the folder's
# layout, so a shared cache can serve an earlier run's export of the same shape (seen here).
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="nt-hf-datasets-")
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data absent")


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
