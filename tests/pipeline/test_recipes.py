"""Every `examples/` recipe that curates real traces runs as shipped, and exports good data.

Judged by the files' own evaluator (`score`), not by the library's verdicts: no exported row has an
empty answer or is a cut-off trace, and the export is far more often correct than the pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import natural_thoughts as nt

from tests.conftest import DATA
from tests.pipeline.test_pipeline import RUN_CONFIGS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLES = "examples/data/"
"""Where the shipped recipes read (the in-repo samples); the tests point them at `DATA`."""
NEEDS_A_MODEL = {"refine.yaml", "thinktuning.yaml"}
"""Recipes whose stages ask a real model (their runs on the tiny engine are tests/refine/test_refine.py and
tests/guide/test_guide.py)."""
CODE = f"{SAMPLES}code/"
"""Recipes on the code files: tests/code/test_recipes.py judges those by the files' own verdicts."""
RECIPES = sorted(p.name for p in RUN_CONFIGS
                 if SAMPLES in p.read_text() and CODE not in p.read_text() and p.name not in NEEDS_A_MODEL)
MIN_CORRECT = 0.9
"""Share of exported rows the file's own evaluator must call correct (`verify` agrees with it on
~97% of decided rows; the pools are 39–60% correct)."""


def _assistant_turns(row: dict) -> tuple[str, str]:
    """(user text, assistant text) of an exported row, in `messages` or ShareGPT form."""
    turns = row.get("messages") or row.get("conversations")
    text = {t.get("role") or t.get("from"): t.get("content") or t.get("value") for t in turns}
    return text.get("user") or text["human"], text.get("assistant") or text["gpt"]


def test_shipped_sources_exist_in_a_fresh_clone_and_say_where_the_full_files_are() -> None:
    root = EXAMPLES.parent
    for path in sorted(EXAMPLES.glob("*.yaml")):
        text = path.read_text()
        sources = [line.split("source:", 1)[1].split("#")[0].strip() for line in text.splitlines() if "source:" in line]
        local = [s for s in sources if s.startswith(SAMPLES)]
        assert all((root / s).is_file() for s in local), (path.name, local)
        assert not local or "../shared/data" in text, f"{path.name} does not say where the full files are"


def test_every_shared_pair_has_a_recipe() -> None:
    used = {line.split(SAMPLES, 1)[1].strip() for r in RECIPES for line in (EXAMPLES / r).read_text().splitlines()
            if SAMPLES in line}
    teachers = {"skythought_math500_sky-t1-27b.jsonl", "skythought_olympiadbench_sky-t1-32b-short.jsonl"}
    weak = {"skythought_math500_qwen2.5-math-7b.jsonl", "skythought_olympiadbench_qwen2.5-14b-instruct.jsonl"}
    assert teachers | weak <= used


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_exports_complete_correct_traces(recipe: str, tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / recipe).read_text().replace(SAMPLES, f"{DATA}/"))
    data["output_dir"] = str(tmp_path / "run")
    summary = nt.run(data)
    raw = [json.loads(line) for line in Path(data["traces"]["source"]).read_text(encoding="utf-8").splitlines()]
    verdict = {r["question"].strip(): bool(r["score"][0]) for r in raw}
    text_of = {r["question"].strip(): r["code"][0] for r in raw}
    rows = [json.loads(line) for f in sorted((tmp_path / "run" / "export").glob("*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines()]
    assert rows and len(rows) == summary["exported"]
    correct = graded = 0
    for row in rows:
        user, assistant = _assistant_turns(row)
        answer = assistant.split("</think>")[-1].strip()
        assert answer, f"empty answer: {user[:80]}"
        question = user.strip()
        assert question in verdict, user[:80]
        raw_text = text_of[question].rstrip()
        assert raw_text.endswith((".", "}", "]", ")", "$", ">", "*")), f"cut-off trace exported: {raw_text[-120:]}"
        if "\\boxed" in raw_text:  # the file's evaluator grades boxed answers only (a prose one is "wrong")
            graded += 1
            correct += verdict[question]
    pool = sum(verdict.values()) / len(verdict)
    print(f"{recipe}: {len(rows)} rows, {graded} with a box, {correct} of them correct by the file's evaluator "
          f"({correct / max(graded, 1):.0%}; pool {pool:.0%})")
    assert graded >= len(rows) / 2 and correct / graded >= MIN_CORRECT
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    assert "correct" in card.lower()
