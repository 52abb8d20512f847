"""Arrow files in the datasets cache: stream batches to disk, memory-map them back.

Imported pools and added columns are written here batch by batch and read back memory-mapped, so a
million traces cost disk and page cache, not process memory. A file is named by a fingerprint of
what made it (`llm.store.fingerprint_hash`): written as `<name>.tmp`, renamed when whole, and
reused by the next identical call.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, concatenate_datasets
from datasets import config as datasets_config
from datasets.table import MemoryMappedTable


def folder(kind: str) -> Path:
    """`<HF_DATASETS_CACHE>/natural_thoughts/<kind>`, created on first use."""
    path = Path(datasets_config.HF_DATASETS_CACHE) / "natural_thoughts" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def files_fingerprint(paths: list[Path], root: Path | None = None) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of each file: cheap evidence that inputs did not change."""
    out = []
    for p in sorted(paths):
        st = p.stat()
        out.append((str(p.relative_to(root)) if root else str(p.resolve()), st.st_size, st.st_mtime_ns))
    return out


def code_version(*modules: str) -> str:
    """The library version and a hash of the source of `modules` (files, e.g. `__file__`), so that
    edited code never serves a file written by the old one."""
    from importlib.metadata import version

    code = hashlib.sha256(b"".join(Path(m).read_bytes() for m in modules)).hexdigest()[:16]
    return f"{version('natural-thoughts')}/{code}"


def read_table(path: Path) -> MemoryMappedTable:
    """The Arrow stream file at `path` as a memory-mapped table (nothing is copied)."""
    return MemoryMappedTable.from_file(str(path))


def read(path: Path, key: str | None = None) -> Dataset:
    """The Arrow stream file at `path` as a memory-mapped Dataset (fingerprint `key`)."""
    return Dataset(read_table(path), fingerprint=key)


def write(path: Path, tables: Iterable[pa.Table], schema: pa.Schema) -> Path:
    """Stream `tables` (each cast to `schema`) into the Arrow file `path`, atomically."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for table in tables:
                writer.write_table(table.cast(schema))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def attach(ds: Dataset, tables: Iterable[pa.Table], schema: pa.Schema, key: str) -> Dataset:
    """`ds` with the columns of `schema` added (or replaced): `tables` hold them batch by batch, in
    row order. They are written to one file of the cache (reused when `key` was written before) and
    memory-mapped, so the other columns are neither copied nor rewritten."""
    path = folder("columns") / f"{key}.arrow"
    if not path.exists():
        write(path, tables, schema)
    added = read(path, key)
    if len(added) != len(ds):
        raise RuntimeError(f"{path} holds {len(added)} rows for a dataset of {len(ds)}; delete it and call again")
    base = ds.remove_columns([c for c in schema.names if c in ds.column_names])
    return concatenate_datasets([base, added], axis=1)
