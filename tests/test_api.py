"""The public API: a small, typed surface listed in `__all__`."""

from __future__ import annotations

import natural_thoughts as nt

REQUIRED = {"load_problems", "load_traces", "parse_trace", "generate", "select", "export", "run", "selectors"}


def test_all_lists_the_required_names_and_each_resolves() -> None:
    assert REQUIRED <= set(nt.__all__)
    for name in nt.__all__:
        assert getattr(nt, name) is not None, name


def test_selectors_module_exports_the_contract() -> None:
    for name in ("Selector", "Selection", "Random", "Long", "Sequential", "get_selector", "available_selectors"):
        assert name in nt.selectors.__all__, name
    assert {"Random", "Long"} <= set(nt.selectors.available_selectors())


def test_importing_the_package_does_not_import_vllm() -> None:
    import subprocess
    import sys

    code = "import sys, natural_thoughts; print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
