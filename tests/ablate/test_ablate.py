"""ablate(): selections × budgets on the shared Sky-T1 / Qwen2.5-Math MATH-500 pair, resumable cells, the report."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

from natural_thoughts.ablate import AblateConfig, ablate
from natural_thoughts.ablate.pool import load_pool
from natural_thoughts.ablate.stats import jaccard

from tests.conftest import DATA

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ablate.yaml"
BUDGETS = [10, 30]
"""Within the prepared pool of the samples too (38 complete, correct traces of 64)."""


@pytest.fixture(autouse=True, scope="module")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Embeddings cached under the test session's folder, never ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NATURAL_THOUGHTS_CACHE", str(tmp_path_factory.getbasetemp() / "nt-cache"))
        yield


def config(output_dir: Path) -> dict[str, Any]:
    """120 Sky-T1 traces with Qwen2.5-Math-7B as the weak model; ModelsDisagree-30 cannot be filled."""
    return {
        "name": "test-ablate", "output_dir": str(output_dir),
        "traces": {"source": str(DATA / "skythought_math500_sky-t1-27b.jsonl"), "preset": "skythought_eval",
                   "limit": 120,
                   "weak": {"source": str(DATA / "skythought_math500_qwen2.5-math-7b.jsonl"),
                            "preset": "skythought_eval", "on": "problem"}},
        "annotate": {"tagger": True}, "verify": {}, "score": {"approximate": True},
        "prefilter": ["DropFlags", "Correct"],
        "selections": {"Random": "Random", "Long": {"Long": {"C": "auto", "C_quantile": 0.5, "tau": 2.5}},
                       "ModelsDisagree": {"ModelsDisagree": {"judge": "math"}}, "StrategyCount": "StrategyCount"},
        "budgets": BUDGETS, "report": {"n_clusters": 8},
    }


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = config(tmp_path_factory.mktemp("ablate"))
    return cfg, ablate(cfg)


def test_every_cell_has_its_size_or_a_warning(first: tuple[dict[str, Any], dict[str, Any]]) -> None:
    cfg, summary = first
    assert list(summary["cells"]) == [f"{s}-{b}" for s in cfg["selections"] for b in BUDGETS]
    for name, cell in summary["cells"].items():
        assert cell["selected"] == cell["budget"] or "was requested but only" in cell["budget_warning"], name
    short = summary["cells"]["ModelsDisagree-30"]
    assert short["selected"] < 30 and short["budget_warning"]
    assert summary["cells"]["Random-30"]["budget_warning"] is None
    assert summary["stages"]["pool"] == "ran" and set(summary["stages"].values()) == {"ran"}


def test_exported_rows_are_the_selection(first: tuple[dict[str, Any], dict[str, Any]]) -> None:
    cfg, summary = first
    pool_ids = load_pool(AblateConfig.model_validate(cfg))["trace_id"]
    for name, cell in summary["cells"].items():
        folder = Path(cell["dir"])
        picks = pq.read_table(folder / "picks.parquet")["row"].to_pylist()
        exported = pq.read_table(folder / "train.parquet")["trace_id"].to_pylist()
        assert exported == [pool_ids[i] for i in picks], name
        assert cell["exported"] == cell["selected"] == len(exported)


def test_overlap_matrix(first: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, summary = first
    names, matrix = list(summary["cells"]), summary["overlap"]
    ids = {n: set(pq.read_table(Path(summary["cells"][n]["dir"]) / "train.parquet")["trace_id"].to_pylist())
           for n in names}
    for i, a in enumerate(names):
        assert matrix[i][i] == 1.0
        for j, b in enumerate(names):
            assert matrix[i][j] == matrix[j][i] == pytest.approx(jaccard(ids[a], ids[b]))
    assert matrix[names.index("Random-10")][names.index("Random-30")] == pytest.approx(10 / 30)  # the seeded draw is nested


def test_report_names_every_cell(first: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, summary = first
    text = Path(summary["report"]).read_text()
    for name, cell in summary["cells"].items():
        assert f"| {name} |" in text and f"`{name}`" in text
    assert summary["cells"]["ModelsDisagree-30"]["budget_warning"] in text
    short = [name for name, cell in summary["cells"].items() if cell["budget_warning"]]
    assert f"{len(short)} of 8 cells did not reach their size: {', '.join(short)}." in text
    assert all(Path(p).stat().st_size > 0 for p in summary["figures"]) and len(summary["figures"]) == 5


def test_rerun_reuses_cells_and_a_changed_selection_reruns_only_its_cells(
        first: tuple[dict[str, Any], dict[str, Any]]) -> None:
    cfg, summary = first
    again = ablate(cfg)
    assert set(again["stages"].values()) == {"reused"}
    assert again["cells"] == summary["cells"] and again["overlap"] == summary["overlap"]
    changed = copy.deepcopy(cfg)
    changed["selections"]["Long"] = {"Long": {"C": "auto", "C_quantile": 0.9, "tau": 2.5}}
    third = ablate(changed)
    ran = {stage for stage, state in third["stages"].items() if state == "ran"}
    assert ran == {f"cells/Long-{b}" for b in BUDGETS}


def test_config_refuses_unknown_selectors_and_bad_budgets() -> None:
    base = {"traces": {"source": "x.jsonl"}, "selections": {"Random": "Random"}, "budgets": [10]}
    AblateConfig.model_validate(base)
    with pytest.raises(ValidationError, match="unknown selector 'Lng'"):
        AblateConfig.model_validate({**base, "selections": {"Long": "Lng"}})
    with pytest.raises(ValidationError, match="distinct positive"):
        AblateConfig.model_validate({**base, "budgets": [10, 10]})
    with pytest.raises(ValidationError, match="folder name"):
        AblateConfig.model_validate({**base, "selections": {"a/b": "Random"}})


def test_example_config_reads_with_sources_beside_it() -> None:
    cfg = AblateConfig.from_yaml(EXAMPLE)
    assert Path(cfg.traces.source).exists() and cfg.traces.weak is not None and Path(cfg.traces.weak.source).exists()
    assert cfg.budgets == [10, 20, 50] and {"Random", "Long", "ModelsDisagree", "StrategyCount"} <= set(cfg.selections)


def test_two_ablate_commands_on_one_folder_one_is_refused_the_other_completes(tmp_path: Path) -> None:
    out, path = tmp_path / "ablate", tmp_path / "ablate.yaml"
    cfg = config(out)
    cfg["traces"]["limit"], cfg["budgets"] = 40, [10]
    path.write_text(yaml.safe_dump(cfg))
    command = [str(Path(sys.executable).with_name("natural-thoughts")), "ablate", str(path)]
    jobs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(job.wait(timeout=900), *job.communicate()) for job in jobs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    [(_, _, refused)] = [r for r in results if r[0] == 1]
    assert [line for line in refused.splitlines() if line.startswith("error:")] == [
        f"error: another natural-thoughts command is running in {out} (its lock is held); wait for it to finish, "
        "or give another output_dir (--debug shows the traceback)"]
    assert set(yaml.safe_load((out / "summary.json").read_text())["cells"]) == {f"{s}-10" for s in cfg["selections"]}
