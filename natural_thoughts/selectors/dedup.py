"""Deduplication and benchmark decontamination filters.

Each keeps the first row of a group of duplicates (dataset order) and records, for every dropped
row, which kept row or which benchmark item it matched. Like every filter here, a `k` cuts the
kept rows to a seeded uniform subsample.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from ..embed import DEFAULT_MODEL, embed
from ..parallel import check_executor
from ..schema import normalize_text
from .base import Selector, column, register
from .filter import Filter, Verdict

_PUNCTUATION = str.maketrans("", "", string.punctuation)
QUESTION_FIELDS = ("problem", "question", "prompt")
ID_FIELDS = ("id", "unique_id", "problem_id", "idx")


def _texts(ds: Dataset, name: str, what: str) -> list[str]:
    values = column(ds, name, what)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"{what}: column {name!r} row {i} is not text: {v!r:.80}")
    return list(values)


def _namer(ds: Dataset) -> Callable[[int], str]:
    """How a reason names a row: its index and, where present, its problem_id."""
    if "problem_id" not in ds.column_names:
        return lambda i: f"row {i}"
    ids = column(ds, "problem_id")
    return lambda i: f"row {i} (problem_id {ids[i]})"


def words(text: str) -> list[str]:
    """Lowercased words with ASCII punctuation removed (s1 / open-r1 decontamination)."""
    return text.lower().translate(_PUNCTUATION).split()


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    """Distinct word n-grams of `text` in text order; a text shorter than n words is one gram of
    all its words."""
    w = words(text)
    if len(w) < n:
        return [tuple(w)] if w else []
    return list(dict.fromkeys(tuple(w[i : i + n]) for i in range(len(w) - n + 1)))


def _first_of_groups(vectors: np.ndarray, threshold: float, block: int = 1024) -> dict[int, tuple[int, float]]:
    """Greedy near-duplicate removal on unit vectors: row i is dropped when its cosine to an
    earlier kept row is >= threshold. Returns {dropped row: (kept row, cosine)}. O(n x kept)."""
    kept: list[int] = []
    dropped: dict[int, tuple[int, float]] = {}
    for start in range(0, len(vectors), block):
        rows = np.arange(start, min(start + block, len(vectors)))
        prev = np.asarray(kept, dtype=np.int64)
        to_prev = vectors[rows] @ vectors[prev].T
        within = vectors[rows] @ vectors[rows].T
        kept_here: list[int] = []
        for local, i in enumerate(rows):
            sims = np.r_[to_prev[local], within[local, kept_here]]
            owners = np.r_[prev, rows[kept_here]]
            best = int(np.argmax(sims)) if len(sims) else -1
            if best >= 0 and sims[best] >= threshold:
                dropped[int(i)] = (int(owners[best]), float(sims[best]))
            else:
                kept_here.append(local)
        kept.extend(int(r) for r in rows[kept_here])
    return dropped


ANN_MIN_ROWS = 150_000
"""`NearDedup(method="embedding", index="auto")` searches an HNSW index from this many rows on: below
it the exact blocked search is faster (measured crossover on 2 CPU cores: 100k-200k rows)."""


def _first_of_groups_ann(vectors: np.ndarray, threshold: float, block: int = 1024, neighbours: int = 32,
                         ef_search: int = 128, links: int = 32) -> dict[int, tuple[int, float]]:
    """`_first_of_groups` with the earlier kept rows in a faiss HNSW index (inner product): each
    block of rows asks the index for its `neighbours` nearest kept rows and compares exactly within
    the block, then its kept rows join the index. O(n log n) instead of O(n x kept); a near-duplicate
    is missed only when the index does not return its owner among the neighbours, and cosines are
    computed exactly for the candidates. Inserts run on one thread, so the graph (and the result)
    is the same on every run."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], links, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = ef_search
    owners = np.zeros(0, dtype=np.int64)  # index id -> row
    dropped: dict[int, tuple[int, float]] = {}
    threads = faiss.omp_get_max_threads()
    for start in range(0, len(vectors), block):
        rows = np.arange(start, min(start + block, len(vectors)))
        here = vectors[rows]
        earlier = np.full((len(rows), 0), -1, dtype=np.int64)
        if index.ntotal:
            found = index.search(here, min(neighbours, index.ntotal))[1]
            earlier = np.where(found >= 0, owners[np.maximum(found, 0)], -1)
        to_earlier = np.einsum("bkd,bd->bk", vectors[np.maximum(earlier, 0)], here)
        to_earlier[(earlier < 0) | (to_earlier < threshold)] = -np.inf
        within = here @ here.T
        close = np.tril(within >= threshold, k=-1)
        kept = np.ones(len(rows), dtype=bool)
        for local in np.flatnonzero(np.isfinite(to_earlier).any(axis=1) | close.any(axis=1)).tolist():
            options = [(to_earlier[local, j], -earlier[local, j]) for j in np.flatnonzero(np.isfinite(to_earlier[local]))]
            options += [(within[local, j], -rows[j]) for j in np.flatnonzero(close[local] & kept)]
            if options:  # the highest cosine; on a tie the earliest row, as the exact search
                sim, row = max(options)
                dropped[int(rows[local])] = (int(-row), float(sim))
                kept[local] = False
        faiss.omp_set_num_threads(1)
        try:
            index.add(np.ascontiguousarray(here[kept], dtype=np.float32))
        finally:
            faiss.omp_set_num_threads(threads)
        owners = np.r_[owners, rows[kept]]
    return dropped


@register
class ExactDedup(Filter):
    """Drop rows whose `column` text equals an earlier row's after `schema.normalize_text`."""

    def __init__(self, column: str = "problem") -> None:
        self.column = column

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the first row of each normalized text; a dropped row names the row it repeats."""
        first: dict[str, int] = {}
        name = _namer(ds)
        keep, reasons = [], []
        for i, text in enumerate(_texts(ds, self.column, "ExactDedup")):
            j = first.setdefault(normalize_text(text), i)
            keep.append(j == i)
            reasons.append("first of its text" if j == i else f"exact duplicate of {name(j)}")
        return Verdict(keep, reasons, "ExactDedup: exact duplicate")


@register
class NearDedup(Filter):
    """Drop rows near-identical to an earlier kept row (the first of each group stays).

    `method="minhash"`: MinHash LSH (datasketch) over word `ngram`-shingles of the normalized
    text, a match when the estimated Jaccard similarity is >= `threshold`. `method="embedding"`:
    cosine similarity of sentence embeddings (`model`) >= `threshold`; `index="exact"` compares
    each row with every earlier kept row (O(n x kept)), `index="hnsw"` with its nearest kept rows in
    a faiss HNSW index (sub-quadratic; on real questions it drops the same rows, see the tests),
    `index="auto"` is exact below `ANN_MIN_ROWS` rows and HNSW from there on; `executor="ray"`
    embeds as Ray tasks (`embed`).
    """

    def __init__(self, column: str = "problem", threshold: float = 0.8, num_perm: int = 128,
                 ngram: int = 5, method: str = "minhash", seed: int = 0, model: Any = DEFAULT_MODEL,
                 index: str = "auto", executor: str = "local") -> None:
        self.column = column
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self.method = method
        self.seed = seed
        self.model = model
        self.index = index
        self.executor = executor

    def _minhash(self, texts: list[str]) -> dict[int, tuple[int, float]]:
        from datasketch import MinHash, MinHashLSH

        shingles = ([" ".join(g).encode("utf-8") for g in ngrams(normalize_text(t), self.ngram)] for t in texts)
        hashes = MinHash.bulk(shingles, num_perm=self.num_perm, seed=self.seed)
        lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        dropped: dict[int, tuple[int, float]] = {}
        for i, h in enumerate(hashes):
            best = max(((h.jaccard(hashes[j]), -j) for j in lsh.query(h)), default=None)
            if best is not None and best[0] >= self.threshold:
                dropped[i] = (-best[1], best[0])
            else:
                lsh.insert(i, h)
        return dropped

    def check_params(self) -> Selector:
        if self.method not in ("minhash", "embedding"):
            raise ValueError(f"NearDedup: method must be 'minhash' or 'embedding', got {self.method!r}")
        if self.index not in ("auto", "exact", "hnsw"):
            raise ValueError(f"NearDedup: index must be 'auto', 'exact' or 'hnsw', got {self.index!r}")
        check_executor(self.executor, "NearDedup")
        return super().check_params()

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the rows that match no earlier kept row; a dropped row names the row it matched."""
        texts = _texts(ds, self.column, "NearDedup")
        if self.method == "minhash":
            matches, measure = self._minhash(texts), "jaccard"
        else:
            ann = self.index == "hnsw" or (self.index == "auto" and len(texts) >= ANN_MIN_ROWS)
            find = _first_of_groups_ann if ann and texts else _first_of_groups
            matches, measure = find(embed(texts, model=self.model, executor=self.executor), self.threshold), "cosine"
        name = _namer(ds)
        reasons = [f"near-duplicate of {name(matches[i][0])} ({measure} {matches[i][1]:.2f})" if i in matches
                   else "no earlier near-duplicate" for i in range(len(ds))]
        return Verdict([i not in matches for i in range(len(ds))], reasons, "NearDedup: near-duplicate")


def read_benchmark(path: str | Path, question_field: str | None = None) -> Iterator[tuple[str, str]]:
    """(item id, question) per line of a jsonl benchmark; the id is its id field or "line N"."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            field = question_field or next((f for f in QUESTION_FIELDS if f in row), None)
            if field is None or not isinstance(row.get(field), str):
                raise KeyError(f"{path} line {n}: no question field {question_field or QUESTION_FIELDS}; "
                               f"fields present: {sorted(row)}")
            item = next((f"{f} {row[f]}" for f in ID_FIELDS if row.get(f) is not None), f"line {n}")
            yield item, row[field]


@register
class Decontaminate(Filter):
    """Drop rows that share a word `ngram`-gram with a benchmark question (8 as in s1/open-r1).

    Words are lowercased with ASCII punctuation removed; a text shorter than `ngram` words is one
    gram of all its words (on either side). `benchmarks` is a list of jsonl paths (named by file
    stem) or {name: path}; the question field is `benchmark_column` or the first of problem /
    question / prompt. With `embedding_threshold`, rows whose embedding cosine to a benchmark
    question reaches it are dropped as well. Each reason names the benchmark and the item.
    """

    def __init__(self, benchmarks: list[str] | dict[str, str], column: str = "problem", ngram: int = 8,
                 embedding_threshold: float | None = None, benchmark_column: str | None = None,
                 model: Any = DEFAULT_MODEL) -> None:
        self.benchmarks = benchmarks
        self.column = column
        self.ngram = ngram
        self.embedding_threshold = embedding_threshold
        self.benchmark_column = benchmark_column
        self.model = model

    def _items(self) -> list[tuple[str, str, str]]:
        """(benchmark name, item id, question) for every benchmark item."""
        named = self.benchmarks if isinstance(self.benchmarks, dict) else {Path(p).stem: p for p in self.benchmarks}
        return [(name, item, q) for name, path in named.items() for item, q in read_benchmark(path, self.benchmark_column)]

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep the rows that match no benchmark item; a dropped row names what it matched."""
        texts = _texts(ds, self.column, "Decontaminate")
        items = self._items()
        index: dict[tuple[str, ...], int] = {}
        for j, (_, _, question) in enumerate(items):
            for gram in ngrams(question, self.ngram):
                index.setdefault(gram, j)
        matched: dict[int, tuple[str, str]] = {}
        for i, text in enumerate(texts):
            hit = next((g for g in ngrams(text, self.ngram) if g in index), None)
            if hit is not None:
                name, item, _ = items[index[hit]]
                matched[i] = (name, f"{len(hit)}-gram overlap with {name} {item}: {' '.join(hit)!r}")
        if self.embedding_threshold is not None and texts and items:
            rows = embed(texts, model=self.model)
            bench = embed([q for _, _, q in items], model=self.model)
            for start in range(0, len(rows), 4096):  # bounded memory: 4096 x items similarities at a time
                sims = rows[start : start + 4096] @ bench.T
                best = sims.argmax(axis=1)
                for i in np.flatnonzero(sims[np.arange(len(sims)), best] >= self.embedding_threshold):
                    name, item, _ = items[best[i]]
                    reason = f"embedding cosine {sims[i, best[i]]:.2f} with {name} {item}"
                    matched.setdefault(start + int(i), (name, reason))
        found = [matched.get(i, ("", "no benchmark overlap")) for i in range(len(ds))]
        return Verdict([i not in matched for i in range(len(ds))], [r for _, r in found],
                       [f"Decontaminate: overlaps {b}" for b, _ in found])
