"""Where the tests read real data: the full public files in ../shared/data when present, else the
small real samples in examples/data (same file names, fewer rows; see examples/data/README.md).

`NT_DATA=samples` (or `shared`, or a folder) forces one, e.g. to run the tests as a fresh clone would.
Kept apart from conftest.py so that child processes started by tests can import it too.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_DATA = ROOT / "examples" / "data"
DATA_ENV = "NT_DATA"


def data_folder(choice: str | None = None) -> Path:
    """The data folder for `choice` (NT_DATA's value: samples, shared or a folder; unset: shared when present)."""
    choice = choice if choice is not None else os.environ.get(DATA_ENV, "")
    if not choice:
        return SHARED_DATA if SHARED_DATA.is_dir() else SAMPLE_DATA
    folder = {"samples": SAMPLE_DATA, "shared": SHARED_DATA}.get(choice, Path(choice))
    if not folder.is_dir():
        raise FileNotFoundError(f"{DATA_ENV}={choice}: no folder {folder}; unset {DATA_ENV} to use "
                                f"{SHARED_DATA} when present, else {SAMPLE_DATA}")
    return folder


DATA = data_folder()
