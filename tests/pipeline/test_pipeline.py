"""The full run: the demo config end to end on the real tiny vLLM engine, resumable stages with
fingerprints, byte-identical re-exports, the curate-existing recipe, and config errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from datasets import load_dataset, load_from_disk
from pydantic import ValidationError

import natural_thoughts
from natural_thoughts.pipeline.config import RunConfig
from natural_thoughts.mixing import SYSTEM1, SYSTEM2
from natural_thoughts.pipeline.runner import run

from tests.conftest import DATA

DEMO = Path(natural_thoughts.__file__).parent / "data" / "demo.yaml"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SKY = DATA / "skythought_math500_sky-t1-27b.jsonl"
QWEN = DATA / "skythought_math500_qwen2.5-math-7b.jsonl"
"""Another model's traces of the same MATH-500 problems: the same trace ids as `SKY`, other text."""
RUN_CONFIGS = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "ablate.yaml") + [DEMO]
"""Every shipped run config (`ablate.yaml` is read by `natural-thoughts ablate`, not `run`)."""
ALL_RAN = {"annotate": "ran", "verify": "ran", "score": "ran", "select": "ran", "export": "ran"}


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def test_demo_config_end_to_end_with_real_vllm(llm, tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template

    out = tmp_path / "demo"
    cfg = RunConfig.from_yaml(DEMO).model_copy(update={"output_dir": str(out)})
    first = run(cfg, engine=llm)
    n_questions = len((DEMO.parent / "demo_questions.jsonl").read_text().splitlines())
    assert first["stages"] == {"generate": "ran", **ALL_RAN}
    assert first["problems"] == n_questions and first["traces"] == cfg.generate.n * n_questions
    export_dir = Path(first["export_dir"])
    assert (export_dir / "README.md").exists() and first["card"] == str(export_dir / "README.md")
    pngs = {p.name for p in (export_dir / "figures").glob("*.png")}
    assert pngs == {"lengths.png", "domains.png", "strategies.png"}
    card = (export_dir / "README.md").read_text()
    assert all(f"](figures/{name})" in card for name in pngs) and "smoke model" in card
    assert "| generate | fingerprint.prompt_template |" in card  # prompt hashes from the generation manifest

    ds = load_dataset(str(export_dir))  # the card's YAML header maps the splits
    assert {k: len(v) for k, v in ds.items()} == first["splits"]
    assert sum(first["splits"].values()) == first["exported"] == first["selected"] > 0
    assert not set(ds["train"]["problem_id"]) & set(ds["validation"]["problem_id"])
    rows = [r for split in ds.values() for r in split]
    assert {r["mode"] for r in rows} <= {SYSTEM1, SYSTEM2}
    for r in rows:
        if r["mode"] == SYSTEM1:
            assert "<think>" not in r["messages"][-1]["content"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = apply_chat_template(rows[0], tokenizer)["text"]  # TRL's own chat-template step for SFT
    assert text.startswith("<|im_start|>user\n") and rows[0]["messages"][-1]["content"] in text

    before = _digests(export_dir)
    again = run(cfg, engine=llm)
    assert again["stages"] == {"generate": "reused", **{k: "reused" for k in ALL_RAN}}
    assert _digests(export_dir) == before

    for stage in ALL_RAN:  # recompute everything after generation from the same traces
        shutil.rmtree(out / stage)
    assert run(cfg, engine=llm)["stages"] == {"generate": "reused", **ALL_RAN}
    assert _digests(export_dir) == before

    smaller = cfg.model_copy(update={"select": cfg.select.model_copy(update={"k": 3})})
    changed = run(smaller, engine=llm)
    assert changed["stages"] == {"generate": "reused", "annotate": "reused", "verify": "reused",
                                 "score": "reused", "select": "ran", "export": "ran"}
    assert changed["selected"] <= 3


def test_curate_existing_recipe_on_skythought_traces(tmp_path: Path) -> None:
    cfg = _curate(tmp_path, 150)
    summary = run(cfg)
    assert summary["stages"] == {"traces": "loaded", **ALL_RAN}
    rows = sum(1 for _ in SKY.open(encoding="utf-8"))
    assert summary["traces"] == min(150, rows) and 0 < summary["selected"] <= cfg.select.k
    export_dir = Path(summary["export_dir"])
    assert sorted(p.name for p in export_dir.glob("*.jsonl")) == ["train.jsonl", "validation.jsonl"]
    rows = [r for split in load_dataset(str(export_dir)).values() for r in split]
    assert all([m["from"] for m in r["conversations"]] == ["human", "gpt"] for r in rows)
    correct = dict(zip(*load_from_disk(str(tmp_path / "curated" / "verify" / "columns"))
                       .select_columns(["trace_id", "label.correct"]).to_dict().values()))
    assert rows and all(correct[r["trace_id"]] is True for r in rows)  # the recipe keeps verified-correct traces
    card = (export_dir / "README.md").read_text()
    assert "license: apache-2.0" in card and SKY.name in card and str(tmp_path) not in card
    assert "strategies.png" in card and "heuristic tagger" in card
    assert run(cfg)["stages"] == {"traces": "loaded", **{k: "reused" for k in ALL_RAN}}


def _curate(tmp_path: Path, limit: int, **changes) -> RunConfig:
    """The curate-existing recipe on the first `limit` Sky-T1 traces, with section changes."""
    cfg = RunConfig.from_yaml(EXAMPLES / "curate_existing.yaml")
    traces = cfg.traces.model_copy(update={"source": str(SKY), "limit": limit})
    return cfg.model_copy(update={"output_dir": str(tmp_path / "curated"), "traces": traces, **changes})


def test_llm_annotators_run_on_the_engine_and_their_prompt_hash_reaches_the_card(llm, tmp_path: Path) -> None:
    from natural_thoughts.annotate import Domain
    from natural_thoughts.pipeline.config import AnnotateConfig, SelectConfig

    annotate = AnnotateConfig(annotators=[{"domain": {"max_chars": 300}}],
                              sampling={"temperature": 1.0, "max_tokens": 400, "seed": 3})
    cfg = _curate(tmp_path, 4, annotate=annotate, select=SelectConfig(selector="Random", k=4), mix=None)
    summary = run(cfg, engine=llm)
    assert summary["stages"]["annotate"] == "ran" and summary["selected"] == 4
    stored = load_from_disk(str(tmp_path / "curated" / "annotate" / "columns")).column_names
    assert {"label.domain", "label.topic", "label.domain.error"} <= set(stored)
    card = (Path(summary["export_dir"]) / "README.md").read_text()
    assert Domain(max_chars=300).prompt_sha256 in card and "LLM annotators" in card


def test_another_file_with_the_same_trace_ids_is_judged_again(llm, tmp_path: Path) -> None:
    """`traces.source` pointed at another model's traces of the same problems (the same trace ids),
    run into the same folder: the judge reads other text, so it is asked again, and the summary says so."""
    from natural_thoughts.pipeline.config import AnnotateConfig, SelectConfig

    annotate = AnnotateConfig(annotators=[{"verbosity": {"max_chars": 300}}],
                              sampling={"temperature": 1.0, "max_tokens": 48, "seed": 3})
    cfg = _curate(tmp_path, 2, annotate=annotate, select=SelectConfig(selector="Random", k=2), mix=None)
    first = run(cfg, engine=llm)
    assert first["model_calls"]["annotate"] == {"annotate verbosity": {"asked": 2, "reused": 0, "asked_again": 0}}
    other = cfg.model_copy(update={"traces": cfg.traces.model_copy(update={"source": str(QWEN)})})
    second = run(other, engine=llm)
    assert second["stages"]["annotate"] == "ran"
    assert second["model_calls"]["annotate"] == {"annotate verbosity": {"asked": 2, "reused": 0, "asked_again": 2}}
    assert run(other, engine=llm)["stages"]["annotate"] == "reused"


def test_llm_annotators_without_a_model_fail_clearly(tmp_path: Path) -> None:
    from natural_thoughts.pipeline.config import AnnotateConfig

    cfg = _curate(tmp_path, 4, annotate=AnnotateConfig(annotators=["domain"]))
    with pytest.raises(ValueError, match="annotate.model"):
        run(cfg)


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    cfg = RunConfig.from_yaml(path)
    assert cfg.select.k is not None and cfg.export.format in {"messages", "sharegpt", "guided_messages"}


def test_examples_cover_the_three_recipes() -> None:
    nt = RunConfig.from_yaml(EXAMPLES / "natural_thoughts.yaml")
    assert nt.problems.source == "facebook/natural_reasoning" and nt.problems.preset == "natural_reasoning"
    steps = [next(iter(s)) if isinstance(s, dict) else s for s in nt.select.selector["Sequential"]["steps"]]
    assert {"ModelsDisagree", "Long", "StrategyCount"} <= set(steps) and nt.select.k == 10_000
    assert RunConfig.from_yaml(EXAMPLES / "curate_existing.yaml").generate is None
    assert RunConfig.from_yaml(EXAMPLES / "s1.yaml").select.k == 1000


def _base() -> dict:
    return {"problems": {"source": "q.jsonl"}, "generate": {"model": "tiny"}}


@pytest.mark.parametrize("change, message", [
    ({"selct": {}}, "selct"),
    ({"export": {"fromat": "messages"}}, "fromat"),
    ({"select": {"selector": "Longest"}}, "known selectors"),
    ({"annotate": {"annotators": ["vibes"]}}, "known annotators"),
    ({"annotate": {}}, "tagger"),
    ({"traces": {"source": "t.jsonl"}}, "not both"),
    ({"mix": {"mode": "sometimes"}}, "mix mode 'sometimes'"),
    ({"mix": {"p": 1.5}}, "mix.p"),
    ({"export": {"format": "alpaca"}}, "export format 'alpaca'"),
    ({"export": {"validation_fraction": 1.0}}, "validation_fraction"),
    ({"select": {"k": 2.7}}, "select.k"),
    ({"select": {"seed": -1}}, "select.seed"),
    ({"select": {"selector": {"Sequential": {"steps": [{"DropFlags": {"flags": ["truncatd"]}}]}}}}, "truncatd"),
    ({"select": {"selector": {"LengthRange": {"min_tokens": 5, "max_tokens": 1}}}}, "min_tokens"),
    ({"select": {"selector": {"Random": {"k": 2.7}}}}, "whole number"),
])
def test_config_errors_are_clear(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RunConfig.model_validate({**_base(), **change})


def test_trace_format_and_top_level_shape_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="trace_format 'r1'"):
        RunConfig.model_validate({"traces": {"source": "t.jsonl", "trace_format": "r1"}})
    listed = tmp_path / "list.yaml"
    listed.write_text("- traces: {source: t.jsonl}\n")
    with pytest.raises(ValueError, match="list.yaml: a run config is a mapping"):
        RunConfig.from_yaml(listed)


def test_a_run_needs_an_input() -> None:
    with pytest.raises(ValidationError, match="traces"):
        RunConfig.model_validate({"name": "x"})
    assert RunConfig.model_validate({"traces": {"source": "t.jsonl"}}).traces.source == "t.jsonl"


def test_an_empty_selection_stops_before_the_last_export_is_touched(tmp_path: Path) -> None:
    from natural_thoughts.pipeline.config import SelectConfig

    cfg = _curate(tmp_path, 20, select=SelectConfig(selector="Random", k=5))
    first = run(cfg)
    before = _digests(Path(first["export_dir"]))
    empty = cfg.model_copy(update={"select": SelectConfig(selector={"LengthRange": {"min_tokens": 10**9}}, k=5)})
    with pytest.raises(ValueError, match="nothing to export: the selection is empty.*LengthRange kept 0"):
        run(empty)
    assert _digests(Path(first["export_dir"])) == before


def test_an_unreached_budget_is_reported(tmp_path: Path) -> None:
    from natural_thoughts.pipeline.config import SelectConfig

    cfg = _curate(tmp_path, 30, select=SelectConfig(selector="DropFlags", k=1000))
    summary = run(cfg)
    assert summary["requested"] == 1000 and summary["selected"] < 1000
    assert "k=1000" in summary["budget_warning"]
    assert "k=1000" in (Path(summary["export_dir"]) / "README.md").read_text()
