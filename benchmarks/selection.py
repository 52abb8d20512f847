"""Selection-stage benchmark: embedding overhead, cache speed-up, and selectors at 200k traces.

Prints, in one run:
  (a) natural_thoughts.embed vs SentenceTransformer.encode on the same texts, cold cache
      (throughput ratio, target >= 0.95);
  (b) a cached re-run of embed vs the first run (time ratio, target <= 0.02);
  (c) Long, Random, StrategyCount and a Sequential over a synthetic pool built by replicating the
      real Sky-T1 traces with fresh ids (time, rows/s, peak traced memory), and the process peak RSS.

    python benchmarks/selection.py [--texts 2000] [--traces 200000] [--device cpu]

Reads ../shared/data (next to the repository); nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pyarrow as pa
from datasets import Dataset
from datasets.table import InMemoryTable

from natural_thoughts.embed import embed, load_model
from natural_thoughts.schema import REASONING_TOKENS, problem_id, trace_id
from natural_thoughts.selectors import Long, Random, Selector, Sequential, StrategyCount

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STRATEGIES = ("case analysis", "backtracking", "verification", "analogy", "decomposition", "estimation",
              "working backwards", "substitution", "induction", "contradiction", "symmetry", "invariants")


def read_jsonl(name: str) -> list[dict[str, Any]]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_embedding(n: int, device: str | None, batch_size: int, repeats: int) -> list[tuple[str, str, str]]:
    """(a) and (b): the same texts through raw encode and through embed on a fresh cache, in
    alternating order `repeats` times (best of each), then embed again on a warm cache."""
    texts = ([r["question"] for r in read_jsonl("skythought_math500_sky-t1-27b.jsonl")]
             + [r["question"] for r in read_jsonl("gsm8k_test.jsonl")])
    texts = [texts[i % len(texts)] + ("" if i < len(texts) else f" (variant {i})") for i in range(n)]
    model = load_model(device=device)
    model.encode(texts[:64], batch_size=batch_size)  # warm up kernels for both sides
    wall: dict[str, list[float]] = {"raw": [], "cold": [], "warm": []}
    cpu: dict[str, list[float]] = {"raw": [], "cold": [], "warm": []}
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            runs = {"raw": lambda: model.encode(texts, batch_size=batch_size, normalize_embeddings=True),
                    "cold": lambda: embed(texts, model=model, batch_size=batch_size, cache_dir=cache),
                    "warm": lambda: embed(texts, model=model, batch_size=batch_size, cache_dir=cache)}
            for name in ["raw", "cold", "warm"] if r % 2 == 0 else ["cold", "warm", "raw"]:
                start_cpu = time.process_time()
                seconds, out = timed(runs[name])
                wall[name].append(seconds)
                cpu[name].append(time.process_time() - start_cpu)
    assert np.allclose(out[:8], model.encode(texts[:8], normalize_embeddings=True), atol=1e-4)  # same vectors
    raw, cold, warm = (min(wall[k]) for k in ("raw", "cold", "warm"))
    raw_cpu, cold_cpu = min(cpu["raw"]), min(cpu["cold"])
    return [
        (f"(a) raw SentenceTransformer.encode, {n} texts", f"{raw:.2f} s",
         f"{n / raw:.0f} texts/s, {raw_cpu:.1f} CPU s (best of {repeats})"),
        ("(a) natural_thoughts.embed, cold cache", f"{cold:.2f} s",
         f"{n / cold:.0f} texts/s, {cold_cpu:.1f} CPU s; throughput ratio {raw / cold:.3f} wall, "
         f"{raw_cpu / cold_cpu:.3f} CPU (target >= 0.95)"),
        ("(b) natural_thoughts.embed, cached", f"{warm:.3f} s", f"{warm / cold:.4f} of the first run (target <= 0.02)"),
    ]


def synthetic_pool(n: int, seed: int = 0) -> Dataset:
    """`n` traces: the real Sky-T1 rows repeated (Arrow buffers shared), fresh ids, varied
    reasoning lengths and a synthetic `label.strategies` column."""
    rows = read_jsonl("skythought_math500_sky-t1-27b.jsonl")
    base = Dataset.from_dict({
        "problem": [r["question"] for r in rows],
        "reasoning": [r["code"][0] for r in rows],
        "reference_answer": [r["answer"] for r in rows],
    })
    full, rest = divmod(n, len(base))
    table = pa.concat_tables([base.data.table] * full + [base.data.table.slice(0, rest)])  # shares buffers
    rng = np.random.default_rng(seed)
    words = np.array([len(r.split()) for r in base["reasoning"]], dtype=float)
    sample = (np.arange(n) // len(base)).tolist()
    pids = [problem_id(r["question"]) for r in rows]
    ids = [f"{pids[i % len(base)]}x{s}" for i, s in enumerate(sample)]
    tokens = words[np.arange(n) % len(base)] * rng.uniform(1.1, 1.6, n)
    names = np.argsort(rng.random((n, len(STRATEGIES))), axis=1).tolist()  # a random order per row
    counts = rng.integers(1, 6, (n, len(STRATEGIES))).tolist()
    sizes = rng.integers(0, 11, n).tolist()
    strategies = [[{"name": STRATEGIES[j], "count": c} for j, c in zip(names[i][:m], counts[i][:m])]
                  for i, m in enumerate(sizes)]
    new = {"problem_id": ids, "trace_id": [trace_id(p, s) for p, s in zip(ids, sample)],
           REASONING_TOKENS: np.round(tokens).astype(np.int64), "label.strategies": strategies}
    for name, values in new.items():  # Arrow directly: Dataset.add_column hashes every value
        table = table.append_column(name, pa.array(values))
    pool = Dataset(InMemoryTable(table), fingerprint=f"synthetic-pool-{n}-{seed}")  # hashing would copy it
    return pool


def bench_selectors(n: int) -> list[tuple[str, str, str]]:
    """(c): time and peak traced memory of each selector over the synthetic pool."""
    build, pool = timed(lambda: synthetic_pool(n))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = [(f"(c) build synthetic pool ({n:,} traces)", f"{build:.2f} s", f"peak RSS so far {rss:,.0f} MiB")]
    selectors: list[Selector] = [
        Long(), Random(k=10_000), StrategyCount(),
        Sequential([Long(), StrategyCount(), Random(k=10_000)]),
    ]
    for sel in selectors:
        seconds, result = timed(lambda: sel.fit(pool).select(pool))
        tracemalloc.start()
        sel.fit(pool).select(pool)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        name = type(sel).__name__ if not isinstance(sel, Sequential) else "Sequential(Long, StrategyCount, Random)"
        out.append((f"(c) {name}", f"{seconds:.2f} s",
                    f"{n / seconds:,.0f} rows/s, kept {len(result):,}, peak traced {peak / 2**20:.0f} MiB"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000, help="texts for the embedding comparison")
    parser.add_argument("--traces", type=int, default=200_000, help="rows of the synthetic pool")
    parser.add_argument("--device", default=None, help="embedding device (default: sentence-transformers picks)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="embedding runs of each side (best is kept)")
    parser.add_argument("--skip-embedding", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is absent: this benchmark reads the shared real data")
    rows = [] if args.skip_embedding else bench_embedding(args.texts, args.device, args.batch_size, args.repeats)
    rows += bench_selectors(args.traces)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS of this process", f"{rss:,.0f} MiB", ""))
    width = max(len(r[0]) for r in rows)
    for what, value, note in rows:
        print(f"{what:<{width}}  {value:>10}  {note}")


if __name__ == "__main__":
    main()
