"""docs/architecture.md's worked examples run as written, each in a fresh interpreter (their
registrations must not leak into this session's registries), and stay under 30 lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
EXAMPLE = re.compile(r"<!-- example: ([\w ]+) -->\n```python\n(.*?)```", re.S)


def _examples() -> dict[str, str]:
    return dict(EXAMPLE.findall(DOC.read_text()))


def test_the_page_has_its_three_examples() -> None:
    assert set(_examples()) == {"model pass", "selector", "stage"}


@pytest.mark.parametrize("name", ["selector", "stage",
                                  pytest.param("model pass", marks=pytest.mark.slow)])
def test_example_runs(name: str, tmp_path: Path) -> None:
    code = _examples()[name]
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) < 30, f"the {name} example has {len(lines)} lines"
    # A short TMPDIR: vLLM's engine talks over a socket file in it, and a socket path may hold 107
    # characters, which a parallel run's tmp_path (…/popen-gw1/test_example_runs_model_pass_0/) nearly fills.
    with tempfile.TemporaryDirectory(prefix="nt-") as tmp:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "TMPDIR": tmp}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
