"""The exploration notebook executes top to bottom (nbclient) on real SkyThought traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "explore_traces.ipynb"
SKY = DATA / "skythought_math500_sky-t1-27b.jsonl"


def test_explore_traces_notebook_runs_on_skythought(monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("NATURAL_THOUGHTS_TRACES", str(SKY))
    monkeypatch.setenv("NATURAL_THOUGHTS_PRESET", "skythought_eval")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # pool lengths, strategies, and one comparison per selection
    html = "\n".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    assert "Long" in html and "Random" in html and "selection.reason" in html
    assert "skythought_math500_sky-t1-27b" in html  # the per-model table names the traces' model
    # whose verdict: the file's own evaluator (the preset keeps it apart), never called "verified"
    assert "correct by the file&#x27;s evaluator" in html or "correct by the file's evaluator" in html
    assert "wrong (label.evaluator_correct)" in html and "verified correct" not in html
