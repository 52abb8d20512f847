"""Progress of a generation folder (`status`) and one consolidated copy of it (`merge`).

Both read only what `generate` wrote: the manifest (n, the run's fingerprint), the problem ids
it recorded, and the key columns of every finished shard. Nothing here deletes or rewrites a shard.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .store import ShardStore, shard_name, shard_of

_SHARD_DIR = re.compile(r"shard-(\d+)-of-(\d+)$")


@dataclass
class ShardProgress:
    """One share of a run: what it should hold, what is written, what is missing."""

    name: str
    expected: int
    done: int
    errors: int
    missing: int
    files: int
    last_write: str | None = None


@dataclass
class RunStatus:
    """A whole output folder: totals, one line per share, and a few missing keys as examples."""

    root: str
    model: str
    n: int
    problems: int
    expected: int
    done: int
    errors: int
    missing: int
    shards: list[ShardProgress] = field(default_factory=list)
    missing_examples: list[tuple[str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every (problem, sample) has a row without error."""
        return self.missing == 0 and self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}

    def __str__(self) -> str:
        lines = [f"{self.root}: model {self.model}, {self.problems} problems x n={self.n} = {self.expected} traces",
                 f"  done {self.done}, errors {self.errors}, missing {self.missing}"]
        for s in self.shards:
            state = "not started" if s.files == 0 else f"{s.files} files, last {s.last_write}"
            lines.append(f"  {s.name}: {s.done}/{s.expected} done, {s.errors} errors, {s.missing} missing ({state})")
        if self.missing_examples:
            shown = ", ".join(f"{pid}#{i}" for pid, i in self.missing_examples)
            lines.append(f"  missing e.g.: {shown}")
        if self.errors:
            lines.append("  errors can be generated again with retry_failed=True (--retry-failed)")
        return "\n".join(lines)


def run_status(root: str | Path, examples: int = 10) -> RunStatus:
    """How far the run in `root` is: per share, done / error / missing (problem, sample) pairs."""
    store = ShardStore(root)
    manifest = store.manifest()
    ids = store.problem_ids()
    if manifest is None or ids is None:
        raise FileNotFoundError(f"{root} holds no generation run (no manifest.json / problem_ids.parquet)")
    n = int(manifest["fingerprint"]["n"])
    keys = store.read_keys(("problem_id", "sample_index", "error")).to_pandas()
    keys["ok"] = keys["error"].isna()
    best = keys.groupby(["problem_id", "sample_index"])["ok"].max()  # a success supersedes errors
    expected = pd.MultiIndex.from_product([ids, range(n)], names=["problem_id", "sample_index"])
    state = best.reindex(expected)  # True done, False error, NaN missing
    status = RunStatus(root=str(root), model=str(manifest["fingerprint"].get("model")), n=n, problems=len(ids),
                       expected=len(expected), done=int((state == True).sum()),  # noqa: E712
                       errors=int((state == False).sum()), missing=int(state.isna().sum()))  # noqa: E712
    status.missing_examples = [(str(p), int(i)) for p, i in state[state.isna()].index[:examples]]
    frame = state.rename("state").reset_index()
    shares: dict[int, dict[int, pd.DataFrame]] = {}
    for name, index, count in _shares(store):
        if count not in shares:  # each problem's share under this N, hashed once
            share = frame["problem_id"].map({pid: shard_of(pid, count) for pid in ids})
            shares[count] = dict(iter(frame.groupby(share)))
        mine = shares[count].get(index, frame.iloc[:0])
        files = sorted((store.root / name).glob("part-*.parquet"))
        last = max((f.stat().st_mtime for f in files), default=None)
        status.shards.append(ShardProgress(
            name=name, expected=len(mine), done=int((mine["state"] == True).sum()),  # noqa: E712
            errors=int((mine["state"] == False).sum()), missing=int(mine["state"].isna().sum()),  # noqa: E712
            files=len(files),
            last_write=datetime.fromtimestamp(last, timezone.utc).isoformat(timespec="seconds") if last else None,
        ))
    return status


def _shares(store: ShardStore) -> list[tuple[str, int, int]]:
    """(folder, i, N) of every share folder present, plus the absent shares of each N seen."""
    found = {}
    for path in store.root.iterdir():
        match = _SHARD_DIR.match(path.name)
        if path.is_dir() and match:
            found[path.name] = (int(match.group(1)), int(match.group(2)))
    for count in {c for _, c in found.values()}:
        for index in range(count):
            found.setdefault(shard_name(index, count), (index, count))
    return sorted((name, i, c) for name, (i, c) in found.items())


def merge(root: str | Path, dest: str | Path, allow_incomplete: bool = False) -> Path:
    """Write the run in `root` as one dataset: a `.parquet` or `.jsonl` file, else a saved folder.

    One row per (problem_id, sample_index) (a retried error row is superseded), sorted by it. An
    incomplete run (missing pairs) is refused unless `allow_incomplete`; error rows are kept (they
    are rows, with `error` set). The shards stay where they are.
    """
    from ..load.sources import load_traces

    status = run_status(root)
    if status.missing and not allow_incomplete:
        raise ValueError(f"{root} is incomplete ({status.missing} of {status.expected} traces missing); "
                         "finish the run (run generate again) or pass allow_incomplete=True (--allow-incomplete)")
    dest = Path(dest)
    if dest.resolve().is_relative_to(Path(root).resolve()):
        raise ValueError(f"merge writes outside the run folder (it would be read as a shard): {dest}")
    traces = load_traces(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix == ".parquet":
        traces.to_parquet(str(dest))
    elif dest.suffix == ".jsonl":
        traces.to_json(str(dest), lines=True, force_ascii=False)
    else:
        traces.save_to_disk(str(dest))
    return dest
