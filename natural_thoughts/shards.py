"""Crash-safe parquet shards and the run manifest behind resumable generation.

Each batch becomes one shard written to a temporary name and renamed into place, so a reader sees
whole shards or nothing. The manifest records the run's fingerprint; a resumed run with another
fingerprint is refused rather than mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
SHARD_GLOB = "**/part-*.parquet"


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a JSON-ready fingerprint."""
    blob = json.dumps(fingerprint, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file and a rename (never a torn file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ShardStore:
    """The shards of one output folder (optionally one machine's share `shard_name`)."""

    def __init__(self, root: str | Path, shard_name: str = "shard-0-of-1") -> None:
        self.root = Path(root)
        self.dir = self.root / shard_name

    def shard_files(self, everywhere: bool = True) -> list[Path]:
        """Finished shard files, in write order (folder, then sequence number)."""
        base = self.root if everywhere else self.dir
        return sorted(p for p in base.glob(SHARD_GLOB) if p.is_file())

    def read_keys(self, columns: tuple[str, ...] = ("problem_id", "sample_index", "error")) -> pa.Table:
        """The key columns of every finished shard (later shards supersede earlier rows)."""
        files = self.shard_files()
        if not files:
            return pa.table({c: pa.array([], pa.string() if c != "sample_index" else pa.int64()) for c in columns})
        return pa.concat_tables(pq.read_table(f, columns=list(columns)) for f in files)

    def write(self, table: pa.Table) -> Path:
        """Write one shard atomically and return its path."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.tmp"):
            stale.unlink()
        existing = sorted(self.dir.glob("part-*.parquet"))
        seq = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        path = self.dir / f"part-{seq:06d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_atomic(path, sink.getvalue().to_pybytes())
        return path

    def check_manifest(self, fingerprint: dict[str, Any], extend_keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """Create the manifest, or check a resumed run against it.

        Keys in `extend_keys` may differ (e.g. `n` when extending a run); any other difference is
        refused with the changed keys named.
        """
        path = self.root / MANIFEST
        if path.exists():
            saved = json.loads(path.read_text())
            old = saved["fingerprint"]
            changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            refused = [k for k in changed if k not in extend_keys]
            if refused:
                raise ValueError(
                    f"{self.root} holds a run with a different configuration (changed: {refused}). "
                    "Use a new output_dir for a new run, or extend=True to raise n only."
                )
            if not changed:
                return saved
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {"fingerprint": fingerprint, "fingerprint_hash": fingerprint_hash(fingerprint)}
        write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode("utf-8"))
        return manifest
