"""Crash-safe parquet shards, the run manifest, and the deterministic split of a run across jobs.

Each batch becomes one shard written to a unique temporary name, fsynced and renamed into place, so
a reader sees whole shards or nothing and a process killed at any instant (SIGKILL included) leaves
at most a `*.tmp` file that nothing reads. The manifest records the run's fingerprint; a resumed
run with another fingerprint is refused rather than mixed in: the manifest is checked and written
under the folder's lock, so of two jobs with different configurations started together on a fresh
folder exactly one is refused. A job that runs share `i` of `N` writes into its own folder
`shard-i-of-N`, holding a lock there so two jobs never write the same one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
TEMP_NAME = re.compile(r"\.\d+-[0-9a-f]+\.tmp$")
"""How the temporary files of `write_atomic` end (`NAME.PID-HEX.tmp`)."""
PROBLEM_IDS = "problem_ids.parquet"
"""The ids of the whole problem set of a run, so `status` can say what is missing."""
SHARD_GLOB = "**/part-*.parquet"
REQUEST_HASH = "request_sha256"
"""The shard column beside every output row: the hash of what the model read for it
(`passes.request_hash`). Readers of the rows leave it out; resume compares it."""
LOCK = ".lock"
"""A share folder's lock (held by its writer for the whole run) and the run folder's (held briefly
while the manifest is checked or written)."""


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a JSON-ready fingerprint."""
    blob = json.dumps(fingerprint, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a crash of the machine, not only of the process)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file and a rename (never a torn file).

    The temporary name is unique per writer, so jobs racing to create the same file (the manifest
    of a sharded run) never interleave their bytes: the last complete rename wins. An error (a full
    disk) removes the temporary file and names `path`.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:  # a full disk (ENOSPC) says only "[Errno 28]": name the file it was writing
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def shard_name(index: int = 0, count: int = 1) -> str:
    """The folder of share `index` of `count` ("shard-0-of-1" for an unsharded run)."""
    return f"shard-{index}-of-{count}"


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """`"i/N"` or `(i, N)` as a checked (i, N); None is the whole run (0, 1)."""
    if shard is None:
        return 0, 1
    try:
        index, count = (int(x) for x in (shard.split("/") if isinstance(shard, str) else shard))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"shard must be 'i/N' or (i, N), e.g. '0/4'; got {shard!r}") from exc
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must satisfy 0 <= i < N; got {index}/{count}")
    return index, count


def shard_of(pid: str, count: int) -> int:
    """The share (0..count-1) a problem belongs to: a stable hash of its id, the same on every machine."""
    return int.from_bytes(hashlib.sha256(pid.encode("utf-8")).digest()[:8], "big") % count


def latest_rows(keys: pa.Table) -> list[int]:
    """Row positions that keep one row per (problem_id, sample_index), sorted by that key.

    A row without `error` supersedes error rows (a retried failure); among rows of the same kind
    the latest `generated_at` wins, then the later row. Used when reading a shard folder.
    """
    import pandas as pd

    df = pd.DataFrame({
        "problem_id": keys.column("problem_id").to_pandas(),
        "sample_index": keys.column("sample_index").to_pandas(),
        "ok": keys.column("error").is_null().to_pandas() if "error" in keys.column_names else True,
        "at": keys.column("generated_at").to_pandas() if "generated_at" in keys.column_names else "",
        "row": range(keys.num_rows),
    })
    df = df.sort_values(["problem_id", "sample_index", "ok", "at", "row"],
                        ascending=[True, True, False, False, False], kind="stable")
    return df.drop_duplicates(["problem_id", "sample_index"])["row"].tolist()


class ShardStore:
    """The shards of one output folder (optionally one job's share `shard_name`)."""

    def __init__(self, root: str | Path, shard_name: str = "shard-0-of-1") -> None:
        self.root = Path(root)
        self.dir = self.root / shard_name
        self.created = False
        """Whether `open_run` created this run (so a run whose engine never started is undone)."""

    def shard_files(self, everywhere: bool = True) -> list[Path]:
        """Finished shard files, in write order (folder, then sequence number)."""
        base = self.root if everywhere else self.dir
        return sorted(p for p in base.glob(SHARD_GLOB) if p.is_file())

    def read_keys(self, columns: tuple[str, ...] = ("problem_id", "sample_index", "error")) -> pa.Table:
        """The key columns of every finished shard (later shards supersede earlier rows); a column a
        shard lacks (one written by an older version) is null there."""
        files = self.shard_files()
        if not files:
            return pa.table({c: pa.array([], pa.string() if c != "sample_index" else pa.int64()) for c in columns})
        return pa.concat_tables((_read_columns(f, columns) for f in files), promote_options="permissive")

    def write(self, table: pa.Table) -> Path:
        """Write one shard atomically and return its path (its writer holds `lock()`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.dir.glob("part-*.parquet"))
        seq = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        path = self.dir / f"part-{seq:06d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_atomic(path, sink.getvalue().to_pybytes())
        return path

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this share's folder for one writer; a second job on the same share is refused.

        The lock is an `flock`, so the kernel releases it when its process dies (even by SIGKILL).
        Temporary files a killed writer left in the share are removed once the lock is held.
        """
        with folder_lock(self.dir, blocking=False) as held:
            if not held:
                raise RuntimeError(
                    f"another process is writing {self.dir} (its lock is held); give each job its own "
                    "shard ('i/N') or wait for the other one to finish"
                )
            _remove_temp(self.dir)
            yield

    def manifest(self) -> dict[str, Any] | None:
        """The saved manifest, or None for a folder that holds no run yet."""
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def open_run(self, fingerprint: dict[str, Any], problem_ids: list[str] | None = None,
                 extend_keys: tuple[str, ...] = (), info: dict[str, Any] | None = None) -> bool:
        """Create the manifest, or check a resumed run against it, and record the problem ids (when
        given), under the run folder's lock; True when this call created the run (also kept as
        `created`, so `discard_empty_run` may undo it). Keys in `extend_keys` may differ (e.g. `n`
        when extending a run); any other difference is refused with the changed keys named. `info`
        (e.g. the problem source) is recorded beside the fingerprint but never compared. Stale
        temporary files are removed."""
        fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))  # as the manifest holds it
        with folder_lock(self.root, blocking=True):
            _remove_temp(self.root)
            self.created = self.manifest() is None
            self._check_manifest(fingerprint, extend_keys, info)
            if problem_ids is not None:
                self.save_problem_ids(problem_ids)
            return self.created

    def discard_empty_run(self) -> None:
        """Remove the manifest and problem ids of a run that holds no shard (its engine never started),
        so the corrected call is not refused as another configuration."""
        with folder_lock(self.root, blocking=True):
            if not self.shard_files():
                for name in (MANIFEST, PROBLEM_IDS):
                    (self.root / name).unlink(missing_ok=True)

    def _check_manifest(self, fingerprint: dict[str, Any], extend_keys: tuple[str, ...],
                        info: dict[str, Any] | None) -> dict[str, Any]:
        saved = self.manifest()
        if saved is not None:
            old = saved["fingerprint"]
            changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            refused = [k for k in changed if k not in extend_keys]
            if refused:
                shown = {k: (old.get(k), fingerprint.get(k)) for k in refused}
                raise ValueError(
                    f"{self.root} holds a run with a different configuration (changed: {refused}; "
                    f"saved vs now: {json.dumps(shown, default=str)[:500]}). Nothing was written. Use "
                    "another output_dir, new_run=True (--new-run) to start a separate run beside it, "
                    "or extend=True (--extend) when only n was raised."
                )
            if not changed:
                return saved
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {"fingerprint": fingerprint, "fingerprint_hash": fingerprint_hash(fingerprint),
                    **({"info": info} if info else {})}
        write_atomic(self.root / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
        return manifest

    def save_problem_ids(self, ids: list[str]) -> None:
        """Record the run's whole problem set once (the manifest's `problem_set` hash guards it)."""
        path = self.root / PROBLEM_IDS
        if not path.exists():
            sink = pa.BufferOutputStream()
            pq.write_table(pa.table({"problem_id": pa.array(ids, pa.string())}), sink)
            write_atomic(path, sink.getvalue().to_pybytes())

    def problem_ids(self) -> list[str] | None:
        """The run's problem ids, when recorded."""
        path = self.root / PROBLEM_IDS
        return pq.read_table(path).column("problem_id").to_pylist() if path.exists() else None


def _read_columns(path: Path, columns: tuple[str, ...]) -> pa.Table:
    """`columns` of one shard; those it lacks are null strings."""
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[c for c in columns if c in present])
    return pa.table({c: table.column(c) if c in present else pa.nulls(table.num_rows, pa.string()) for c in columns})


@contextlib.contextmanager
def folder_lock(folder: Path, blocking: bool, name: str = LOCK) -> Iterator[bool]:
    """Hold `folder/name` (an `flock`, released by the kernel when its process dies); yields
    whether it is held (always, when `blocking`)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_temp(folder: Path) -> None:
    """Remove the temporary files a killed `write_atomic` left in `folder` (call it with the folder's
    lock held): only names it makes (`NAME.PID-HEX.tmp`), never another `*.tmp` of the user's."""
    for stale in folder.glob("*.tmp"):
        if TEMP_NAME.search(stale.name):
            stale.unlink(missing_ok=True)


def run_folder(root: str | Path, fingerprint: dict[str, Any]) -> Path:
    """Where a *new* run with `fingerprint` goes when `root` may hold another run (`new_run=True`).

    `root` itself when it holds no run or this very run; otherwise the sibling
    `<root>-<fingerprint hash>`, so nothing already generated is moved or deleted, and calling
    again with the same configuration resumes in that same sibling.
    """
    root = Path(root)
    saved = ShardStore(root).manifest()
    if saved is None or saved.get("fingerprint_hash") == fingerprint_hash(fingerprint):
        return root
    return root.with_name(f"{root.name}-{fingerprint_hash(fingerprint)}")
