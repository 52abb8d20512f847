"""The documentation site builds strictly, covers every selector and command, and its plugin example works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import natural_thoughts.selectors as sel
from natural_thoughts.cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(site)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "selectors/length/index.html", "plugins/index.html", "cli/index.html"):
        assert (site / page).exists(), page


def test_every_builtin_selector_is_documented_with_a_source() -> None:
    pages = {p.name: p.read_text() for p in (DOCS / "selectors").glob("*.md")}
    text = "\n".join(pages.values())
    builtin = [n for n in sel.__all__ if n in sel.available_selectors()]
    missing = [n for n in builtin if f"`{n}(" not in text]
    assert not missing, f"selectors without a docs entry: {missing}"
    for name, page in pages.items():
        if name not in ("index.md",):
            assert "arxiv.org/abs/" in page, f"{name} cites no paper"


def test_every_cli_command_is_in_the_reference() -> None:
    reference = (DOCS / "cli.md").read_text()
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    missing = [n for n in names if f"## `natural-thoughts {n}" not in reference]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_plugin_example_passes_the_conformance_suite(tmp_path: Path, monkeypatch) -> None:
    import importlib

    from natural_thoughts.selectors.testing import check_selector

    code = re.search(r"```python\n(# my_package/selectors.py.*?)```", (DOCS / "plugins.md").read_text(), re.S)
    assert code is not None
    (tmp_path / "docs_plugin_example.py").write_text(code.group(1))
    monkeypatch.syspath_prepend(str(tmp_path))  # a real module, so the selector pickles
    module = importlib.import_module("docs_plugin_example")
    check_selector(module.ShortAnswer(max_chars=10))
