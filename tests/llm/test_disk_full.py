"""A full disk names the file that could not be written: a real 64 KiB tmpfs filled by a shard."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from natural_thoughts.llm.store import ShardStore


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (mounting one needs root, as CI and the dev machines run)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_shard_on_a_full_disk_names_its_path_and_leaves_no_temporary_file(small_disk: Path) -> None:
    store = ShardStore(small_disk / "run")
    rows = pa.table({"problem_id": [f"p{i}" for i in range(2000)], "text": [f"{i:08d}" * 64 for i in range(2000)]})
    with pytest.raises(OSError) as full:
        store.write(rows)
    assert full.value.errno == errno.ENOSPC and full.value.filename == str(store.dir / "part-000000.parquet")
    assert str(store.dir / "part-000000.parquet") in str(full.value)
    assert list(store.dir.iterdir()) == []
