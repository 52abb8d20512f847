"""Diversity selectors: uniform over embedding clusters, over reasoning strategies, over a label.

- `ClusterUniform` on questions is NaturalThoughts' semantic diversity; on reasoning text it is
  embedding-based strategy diversity.
- `StrategyCount` is NaturalThoughts' rule on annotated strategies (count range + density).
- `Stratified` is topic-uniform sampling (by default over the annotated `label.domain`, else
  `domain`); `Stratified.s1()` is s1's domain-then-length rule.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from ..embed import DEFAULT_MODEL, embed
from ..parallel import check_executor
from ..schema import REASONING_TOKENS
from .base import (Selection, Selector, column, register, resolve_k, resolve_seed, selection_from_picks,
                   stored_column, texts_by_key)
from .filter import Filter, Verdict

DOMAIN_COLUMNS = ("label.domain", "domain")
"""Where a trace's domain lives: the annotator's label first, then the source's own column."""


def group_codes(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer group codes per row (groups numbered by first appearance) and the group names."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(str(v), len(index)) for v in values), dtype=np.int64,
                        count=len(values))
    return codes, list(index)


def _rank_in_group(codes: np.ndarray, priority: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (group, priority), and each row's 0-based rank inside its group."""
    rows = np.lexsort((priority, codes))
    sorted_codes = codes[rows]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[rows] = np.arange(len(rows)) - first
    return rows, rank


def _round_robin(codes: np.ndarray, priority: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick order when visiting groups in one seeded order, round after round, taking each
    group's next row by `priority` (lower first). Returns (row order, round of each row)."""
    _, rounds = _rank_in_group(codes, priority)
    group_rank = rng.permutation(int(codes.max(initial=-1)) + 1)
    return np.lexsort((group_rank[codes], rounds)), rounds


def _uniform_groups(codes: np.ndarray, priority: np.ndarray, k: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The first `k` picks when each pick draws a group uniformly among those not exhausted and
    takes its next row by `priority`. Returns (row order, round of each row)."""
    rows, rounds = _rank_in_group(codes, priority)
    queues = [q[::-1].tolist() for q in np.split(rows, np.flatnonzero(np.diff(codes[rows])) + 1)] if len(rows) else []
    picks = []
    for u in rng.random(k):
        j = int(u * len(queues))
        picks.append(queues[j].pop())
        if not queues[j]:
            queues[j] = queues[-1]
            queues.pop()
    return np.asarray(picks, dtype=np.int64), rounds


def domain_column(ds: Dataset) -> str | None:
    """The first of `DOMAIN_COLUMNS` that holds any value (None when neither does)."""
    for name in DOMAIN_COLUMNS:
        if name in ds.column_names and any(v is not None and v != "" for v in column(ds, name)):
            return name
    return None


def reasoning_lengths(ds: Dataset, words_only: bool = False) -> tuple[np.ndarray, str]:
    """Reasoning length per row and its unit: `score.reasoning_tokens` when that column is present
    and filled, else the number of whitespace-separated words of `reasoning`."""
    if not words_only and REASONING_TOKENS in ds.column_names:
        tokens = column(ds, REASONING_TOKENS)
        if tokens.dtype != object or all(t is not None for t in tokens):
            return np.asarray(tokens, dtype=float), "tokens"
    return np.array([len(r.split()) if r else 0 for r in column(ds, "reasoning", "reasoning length")], float), "words"


@register
class ClusterUniform(Selector):
    """Embed `on`, cluster with k-means, then sample uniformly across clusters.

    Picks go round-robin over the clusters in a seeded order, taking a random unpicked member of
    each, until `k` rows (k None: every row, in round-robin order). Each distinct text is embedded
    and clustered once, so traces sharing a problem count once in the clustering. `fit` learns
    `centroids_` and `labels_` (for the fitted rows); `select` assigns any dataset's rows to the
    nearest centroid. Without `fit`, `select` clusters the dataset it is given (nothing stored).
    KMeans up to 10,000 distinct texts, MiniBatchKMeans above; `n_clusters` is clipped to the
    number of distinct texts. The model reads at most its max_seq_length (256 word pieces for
    all-MiniLM-L6-v2), so on long reasoning the clusters reflect how traces open. `batch_size`
    texts are embedded at a time (None: by device, `embed`). `executor="ray"` embeds as Ray tasks.
    """

    def __init__(self, on: str = "problem", model: Any = DEFAULT_MODEL, n_clusters: int = 50,
                 k: int | None = None, seed: int = 0, batch_size: int | None = None, executor: str = "local") -> None:
        self.on = on
        self.model = model
        self.n_clusters = n_clusters
        self.k = k
        self.seed = seed
        self.batch_size = batch_size
        self.executor = executor

    def check_params(self) -> Selector:
        check_executor(self.executor, "ClusterUniform")
        return super().check_params()

    def _embed_distinct(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the distinct texts of column `on`, and each row's index into them."""
        texts = column(ds, self.on, "ClusterUniform")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"ClusterUniform: column {self.on!r} row {i} is not text: {t!r:.80}")
        inverse, distinct = group_codes(texts)
        return embed(distinct, model=self.model, batch_size=self.batch_size, executor=self.executor), inverse

    def fit(self, ds: Dataset) -> ClusterUniform:
        """Cluster the distinct texts of `on`; sets `centroids_` and `labels_`."""
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if self.n_clusters < 1:
            raise ValueError(f"ClusterUniform: n_clusters must be >= 1, got {self.n_clusters}")
        vectors, inverse = self._embed_distinct(ds)
        if len(vectors) == 0:
            self.centroids_, self.labels_ = np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
            return self
        n_clusters = min(self.n_clusters, len(vectors))
        if len(vectors) > 10_000:
            km = MiniBatchKMeans(n_clusters, random_state=self.seed, n_init=3, batch_size=4096)
        else:
            km = KMeans(n_clusters, random_state=self.seed, n_init="auto")
        km.fit(vectors)
        self.centroids_ = km.cluster_centers_.astype(np.float32)
        self.labels_ = km.labels_.astype(np.int64)[inverse]
        return self

    def assign(self, ds: Dataset) -> np.ndarray:
        """The cluster of each row of `ds` (nearest centroid; clusters `ds` itself if not fitted)."""
        from sklearn.metrics import pairwise_distances_argmin

        if not hasattr(self, "centroids_"):
            return type(self)(**self.get_params()).fit(ds).labels_
        vectors, inverse = self._embed_distinct(ds)
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.int64)
        if len(self.centroids_) == 0:
            raise ValueError("ClusterUniform was fitted on an empty dataset: it has no clusters to assign to")
        return pairwise_distances_argmin(vectors, self.centroids_)[inverse].astype(np.int64)

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Round-robin over clusters; score 1/round, reason "cluster 7 (round 2)"."""
        labels = self.assign(ds)
        rng = np.random.default_rng(resolve_seed(self, seed))
        order, rounds = _round_robin(labels, rng.random(len(ds)), rng)
        picks = order[: resolve_k(self, k, len(ds))]
        reasons = [f"cluster {labels[i]} (round {rounds[i] + 1})" for i in picks]
        return selection_from_picks(self, ds, picks, 1.0 / (1.0 + rounds[picks]), reasons,
                                    drop_reason=lambda i: f"cluster {labels[i]}: round {rounds[i] + 1} not reached",
                                    kind="ClusterUniform: over cluster quota")


def strategy_counts(value: Any, row: int, name: str) -> dict[str, float]:
    """Occurrences per distinct strategy in one cell: a list of names (each counts 1) or of dicts
    with a "name"/"strategy" key and an optional "count"/"steps" (a number, or a list counted by
    its length; 0 = absent). A JSON string of such a list is read too; None is no strategies."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        value = json.loads(value)
    if value is None:
        return {}
    if not isinstance(value, list):
        raise TypeError(f"StrategyCount: column {name!r} row {row} should be a list, got {value!r:.80}")
    counts: dict[str, float] = {}
    for item in value:
        if isinstance(item, str):
            key, n = item, 1
        elif isinstance(item, dict) and (item.get("name") or item.get("strategy")):
            key = item.get("name") or item.get("strategy")
            n = item.get("count") if item.get("count") is not None else item.get("steps")
            n = 1 if n is None else len(n) if isinstance(n, list) else n
        else:
            raise TypeError(f"StrategyCount: column {name!r} row {row} has an item that is neither a name "
                            f"nor a dict with 'name'/'strategy': {item!r:.80}")
        if n > 0:  # a count of 0 marks the strategy absent
            counts[str(key)] = counts.get(str(key), 0) + float(n)
    return counts


def _is_named_counts(type_: pa.DataType) -> bool:
    """Whether `type_` is the annotator's shape: lists of structs with a string "name", an optional
    integer "count", any other fields but no "strategy" or "steps" (`strategy_counts` reads those)."""
    if not (pa.types.is_list(type_) or pa.types.is_large_list(type_)) or not pa.types.is_struct(type_.value_type):
        return False
    fields = {f.name: f.type for f in type_.value_type}
    name, count = fields.get("name"), fields.get("count", pa.int64())
    return (len(fields) == type_.value_type.num_fields and name is not None
            and (pa.types.is_string(name) or pa.types.is_large_string(name)) and pa.types.is_integer(count)
            and not {"strategy", "steps"} & fields.keys())


def _arrow_strategy_counts(values: pa.ChunkedArray, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """`strategy_counts`' distinct strategies and occurrences for each of `rows` (stored rows; None:
    all of them), computed in Arrow, for the annotator's shape (`_is_named_counts`).

    None when `values` has another shape (JSON text, bare names), or a selected row has a cell
    `strategy_counts` refuses (a null item, a null or empty name) or sums past float precision:
    the caller then reads the cells one by one, so results and errors stay `strategy_counts`'."""
    if not _is_named_counts(values.type):
        return None
    wanted = np.zeros(len(values), dtype=bool)
    wanted[slice(None) if rows is None else rows] = True
    items = pc.list_flatten(values)  # skips null cells: no strategies
    row = np.repeat(np.arange(len(values)), pc.fill_null(pc.list_value_length(values), 0).to_numpy())
    names = pc.struct_field(items, "name")
    bad = pc.or_(items.is_null(), pc.fill_null(pc.equal(names, ""), True)).to_numpy()
    if (bad & wanted[row]).any():
        return None
    n = (pc.fill_null(pc.struct_field(items, "count"), 1).to_numpy()
         if values.type.value_type.get_field_index("count") >= 0 else np.ones(len(items), dtype=np.int64))
    counted = (n > 0) & wanted[row]  # a count of 0 marks the strategy absent
    occurrences = np.bincount(row[counted], weights=n[counted], minlength=len(values))
    if occurrences.max(initial=0) >= 2**53:
        return None
    # Distinct names per row: sort the (row, name) pairs as integers and count the first of each run.
    names = pc.filter(names, pa.array(counted))
    distinct_names = pc.unique(names)
    pairs = np.sort(row[counted] * len(distinct_names) + pc.index_in(names, distinct_names).to_numpy())
    firsts = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
    distinct = np.bincount(firsts // max(len(distinct_names), 1), minlength=len(values)).astype(float)
    return (distinct, occurrences) if rows is None else (distinct[rows], occurrences[rows])


@register
class StrategyCount(Filter):
    """NaturalThoughts' strategy rule: keep traces using between `min` and `max` distinct
    strategies, and keep low-density ones only with probability `downsample` (seeded).

    Density = strategy occurrences (the sum of the counts; a bare name counts 1) per 1,000
    reasoning tokens (`score.reasoning_tokens`; without it, per 1,000 words of `reasoning`), or
    per 1,000 words with `density="per_1k_words"`. Low density means below `min_density`, by
    default the 25th percentile of the in-range traces' densities. Score: distinct strategies.
    With `k`, a seeded uniform subsample of the survivors.
    """

    def __init__(self, min: int = 4, max: int = 8, column: str = "label.strategies",
                 density: str = "per_1k_tokens", min_density: float | None = None,
                 downsample: float = 0.5, k: int | None = None, seed: int = 0) -> None:
        self.min = min
        self.max = max
        self.column = column
        self.density = density
        self.min_density = min_density
        self.downsample = downsample
        self.k = k
        self.seed = seed

    def check_params(self) -> Selector:
        if self.density not in ("per_1k_tokens", "per_1k_words"):
            raise ValueError(f"StrategyCount: density must be 'per_1k_tokens' or 'per_1k_words', got {self.density!r}")
        return super().check_params()

    def densities(self, ds: Dataset) -> tuple[np.ndarray, str]:
        """Strategy occurrences per 1,000 reasoning tokens (or words), and the unit used."""
        return self._measure(ds)[1:]

    def _measure(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray, str]:
        """Distinct strategies and density per row, and the density's unit."""
        self.check_params()
        distinct, occurrences = self._counts(ds)
        lengths, unit = reasoning_lengths(ds, words_only=self.density == "per_1k_words")
        return distinct, occurrences / np.maximum(lengths, 1.0) * 1000.0, unit

    def _counts(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Distinct strategies and occurrences per row: in Arrow for the annotator's column shape
        (a million rows in a fraction of a second), else cell by cell with `strategy_counts`."""
        fast = _arrow_strategy_counts(*stored_column(ds, self.column, "StrategyCount"))
        if fast is not None:
            return fast
        counts = [strategy_counts(v, i, self.column) for i, v in enumerate(column(ds, self.column, "StrategyCount"))]
        return (np.array([len(c) for c in counts], dtype=float),
                np.array([sum(c.values()) for c in counts], dtype=float))

    def verdict(self, ds: Dataset, seed: int) -> Verdict:
        """Keep traces in the count range, low-density ones with probability `downsample`; score:
        distinct strategies."""
        distinct, density, unit = self._measure(ds)
        in_range = (distinct >= self.min) & (distinct <= self.max)
        threshold = self.min_density
        if threshold is None:
            threshold = float(np.percentile(density[in_range], 25)) if in_range.any() else 0.0
        low = density < threshold
        keep = in_range & (~low | (np.random.default_rng(seed).random(len(ds)) < self.downsample))

        def reason(i: int) -> str:
            d, x, lo = float(distinct[i]), float(density[i]), bool(low[i])
            what = f"density {x:.2f} per 1k {unit}" + (f" < {threshold:.2f}" if lo else "")
            if d < self.min:
                return f"{d:g} distinct strategies < min {self.min}"
            if d > self.max:
                return f"{d:g} distinct strategies > max {self.max}"
            if not keep[i]:
                return f"low density, not sampled ({what})"
            return f"{d:g} distinct strategies, {what}" + (", sampled" if lo else "")

        # A reason depends on the distinct count, the density (which decides `low`) and the draw.
        reasons = texts_by_key([distinct.view(np.int64), density.view(np.int64), keep.view(np.int8)], reason)[0]
        case = np.select([distinct < self.min, distinct > self.max, ~keep], [1, 2, 3])  # 0: kept
        kinds = np.array(["", "StrategyCount: too few strategies", "StrategyCount: too many strategies",
                          "StrategyCount: low density, not sampled"], dtype=object)[case]
        return Verdict(keep, reasons, kinds, distinct)


@register
class Stratified(Selector):
    """Uniform over the values of a label (topic-uniform sampling).

    `by=None` (the default) groups by the annotated `label.domain` when it holds any value, else
    by the source's `domain`; the step report records the column used (`by_`).
    `order="round_robin"` visits the groups in a seeded order, round after round;
    `order="random"` draws a group uniformly among those not yet exhausted for every pick.
    Within a group the next row is random (`then=None`) or, with `then="length"`, drawn with
    weight 2**-rank where rank 0 is the longest reasoning (`reasoning_lengths`) among the group's
    rows not yet picked. Rows whose label is empty form the group "None".
    """

    def __init__(self, by: str | None = None, k: int | None = None, seed: int = 0,
                 then: str | None = None, order: str = "round_robin") -> None:
        self.by = by
        self.k = k
        self.seed = seed
        self.then = then
        self.order = order

    @classmethod
    def s1(cls, by: str | None = None, k: int | None = 1000, seed: int = 0) -> Stratified:
        """s1's rule: draw a domain uniformly, then within it a trace with weight 2**-rank by length."""
        return cls(by=by, k=k, seed=seed, then="length", order="random")

    def group_column(self, ds: Dataset) -> str:
        """The column grouped by: `by`, else `label.domain` when it holds values, else `domain`."""
        return self.by or domain_column(ds) or DOMAIN_COLUMNS[-1]

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Picks spread evenly over groups; score 1/round, reason names group, round (and length rank)."""
        if self.then not in (None, "length") or self.order not in ("round_robin", "random"):
            raise ValueError(f"Stratified: then must be None or 'length' and order 'round_robin' or 'random'; "
                             f"got then={self.then!r}, order={self.order!r}")
        by = self.group_column(ds)
        codes, names = group_codes(column(ds, by, "Stratified"))
        rng = np.random.default_rng(resolve_seed(self, seed))
        gumbel = rng.gumbel(size=len(ds))
        length_rank = np.zeros(len(ds), dtype=np.int64)
        if self.then == "length":
            _, length_rank = _rank_in_group(codes, -reasoning_lengths(ds)[0])
        # Sorting by -(log weight + Gumbel) = sequential draws with weight 2**-rank, without replacement.
        priority = -(gumbel - length_rank * np.log(2.0))
        k = resolve_k(self, k, len(ds))
        if self.order == "round_robin":
            picks, rounds = _round_robin(codes, priority, rng)
        else:
            picks, rounds = _uniform_groups(codes, priority, k, rng)
        picks = picks[:k]
        reasons = [f"{by}={names[codes[i]]} (round {rounds[i] + 1}"
                   + (f", length rank {length_rank[i]})" if self.then == "length" else ")") for i in picks]
        sel = selection_from_picks(self, ds, picks, 1.0 / (1.0 + rounds[picks]), reasons,
                                   drop_reason=lambda i: f"{by}={names[codes[i]]}: not drawn within k={k}",
                                   kind="Stratified: over group quota")
        sel.steps[0].fitted = {"by_": by}
        return sel
