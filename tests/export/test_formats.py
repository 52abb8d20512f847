"""Export formats, splits, token cap, System-1/System-2 mixing and the card, on real SkyThought traces.

The training formats are proven by TRL itself: its SFTTrainer tokenizes the exported files with the
tiny model's chat template and takes a real optimizer step, with no glue code in between.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset, load_dataset

from natural_thoughts import load_traces, select
from natural_thoughts.export.card import write_card
from natural_thoughts.export import export
from natural_thoughts.export.formats import prepare_export
from natural_thoughts.mixing import SYSTEM1, SYSTEM2, mix
from natural_thoughts.scores import add_reasoning_tokens

from tests.conftest import DATA

LLAMA_FACTORY_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


@pytest.fixture(scope="module")
def pool() -> Dataset:
    """MATH-500 answered by Sky-T1 and by Qwen2.5-Math: two traces per problem."""
    ds = load_traces(str(DATA / "skythought_math500_*.jsonl"), preset="skythought_eval")
    return add_reasoning_tokens(ds, approximate=True)


@pytest.fixture(scope="module")
def small(pool: Dataset) -> Dataset:
    """Twelve traces of six problems, short enough for a quick training step."""
    order = np.argsort(np.array([len(r) + len(a) for r, a in zip(pool["reasoning"], pool["answer"])]))
    pids = list(dict.fromkeys(pool["problem_id"][int(i)] for i in order))[:6]
    return pool.filter(lambda pid: pid in set(pids), input_columns="problem_id")


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _sft(model_dir: Path, ds: Dataset, out: Path):
    """One real SFT step with TRL on `ds` as exported; returns (prepared dataset, train loss)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(out), max_steps=1, per_device_train_batch_size=2, max_length=256,
                     report_to="none", use_cpu=True, save_strategy="no", seed=0)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args, train_dataset=ds,
                         processing_class=AutoTokenizer.from_pretrained(model_dir))
    return trainer.train_dataset, trainer.train().training_loss


def test_messages_shape_and_think_tags(small: Dataset) -> None:
    out = export(small, format="messages", system_prompt="Be careful.")
    for row, trace in zip(out, small):
        system, user, assistant = row["messages"]
        assert system == {"role": "system", "content": "Be careful."}
        assert user == {"role": "user", "content": trace["problem"]}
        if trace["reasoning"]:
            assert assistant["content"] == f"<think>\n{trace['reasoning']}\n</think>\n\n{trace['answer']}"
        else:
            assert assistant["content"] == trace["answer"]
    tagged = export(small, format="messages", think_tags=("<|begin_of_thought|>", "<|end_of_thought|>"))
    with_reasoning = [m for m, t in zip(tagged["messages"], small) if t["reasoning"]]
    assert with_reasoning and all(m[-1]["content"].startswith("<|begin_of_thought|>\n") for m in with_reasoning)
    assert set(out.column_names) == {"messages", "problem_id", "trace_id"}


def test_messages_file_trains_with_trl(small: Dataset, tiny_model_dir: Path, tmp_path: Path) -> None:
    export(small, tmp_path / "messages", format="messages")
    ds = load_dataset(str(tmp_path / "messages"), split="train")
    prepared, loss = _sft(tiny_model_dir, ds, tmp_path / "sft")
    assert len(prepared) == len(small) and math.isfinite(loss)
    from transformers import AutoTokenizer

    first = min(range(len(ds)), key=lambda i: len(ds[i]["messages"][0]["content"]))  # fits max_length
    text = AutoTokenizer.from_pretrained(tiny_model_dir).decode(prepared[first]["input_ids"])
    assert text.startswith(f"<|im_start|>user\n{ds[first]['messages'][0]['content'][:40]}")
    assert "<|im_start|>assistant\n" in text


def test_sharegpt_file_trains_with_trl_after_llama_factory_mapping(small: Dataset, tiny_model_dir: Path,
                                                                   tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    export(small, tmp_path / "sharegpt", format="sharegpt", file_format="jsonl", system_prompt="Be careful.")
    export(small, tmp_path / "messages", format="messages", file_format="jsonl", system_prompt="Be careful.")
    share = load_dataset("json", data_files=str(tmp_path / "sharegpt" / "train.jsonl"), split="train")
    assert {m["from"] for c in share["conversations"] for m in c} == {"human", "gpt"}

    def to_messages(row: dict) -> dict:  # what LLaMA-Factory's sharegpt converter does with default tags
        turns = [{"role": LLAMA_FACTORY_ROLES[m["from"]], "content": m["value"]} for m in row["conversations"]]
        return {"messages": ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + turns}

    mapped = share.map(to_messages, remove_columns=["conversations", "system"])
    messages = load_dataset("json", data_files=str(tmp_path / "messages" / "train.jsonl"), split="train")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert [tok.apply_chat_template(m, tokenize=False) for m in mapped["messages"]] == \
        [tok.apply_chat_template(m, tokenize=False) for m in messages["messages"]]
    prepared, loss = _sft(tiny_model_dir, mapped, tmp_path / "sft")
    assert len(prepared) == len(small) and math.isfinite(loss)


def test_prompt_completion_trains_on_the_completion_only(small: Dataset, tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    export(small, tmp_path / "pc", format="prompt_completion")
    ds = load_dataset(str(tmp_path / "pc"), split="train")
    prepared, loss = _sft(tiny_model_dir, ds, tmp_path / "sft")
    assert math.isfinite(loss)
    labels = prepared[0]["labels"]  # TRL turns the completion mask into labels: the prompt is not trained on
    trained = [x != -100 for x in labels]
    assert not trained[0] and 0 < sum(trained) < len(labels)


def test_validation_split_holds_out_whole_problems(pool: Dataset) -> None:
    splits, stats = prepare_export(pool, "raw", validation_fraction=0.1, seed=3)
    train, val = set(splits["train"]["problem_id"]), set(splits["validation"]["problem_id"])
    problems = len(set(pool["problem_id"]))  # two traces each (teacher and weak model)
    assert not train & val and len(val) == round(problems / 10) and len(train) == problems - len(val)
    assert stats.splits == {"train": 2 * len(train), "validation": 2 * len(val)}
    again, _ = prepare_export(pool, "raw", validation_fraction=0.1, seed=3)
    other, _ = prepare_export(pool, "raw", validation_fraction=0.1, seed=4)
    assert again["validation"]["trace_id"] == splits["validation"]["trace_id"]
    assert set(other["validation"]["problem_id"]) != val
    with pytest.raises(ValueError, match="validation_fraction"):
        prepare_export(pool, "raw", validation_fraction=1.0)


def test_token_cap_drops_or_flags_by_tokenizer_count(small: Dataset, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = export(small, format="raw")["response"]
    counts = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    cap = int(np.median(counts))
    dropped = export(small, format="raw", max_tokens=cap, tokenizer=str(tiny_model_dir))
    assert dropped["trace_id"] == [t for t, c in zip(small["trace_id"], counts) if c <= cap]
    flagged = export(small, format="messages", max_tokens=cap, on_overlong="flag", tokenizer=tok)
    assert flagged["overlong"] == [c > cap for c in counts] and any(flagged["overlong"])
    with pytest.raises(ValueError, match="no engine token count"):
        export(small, max_tokens=cap)  # imported traces carry no engine counts: a tokenizer is needed


def test_token_cap_uses_engine_counts(small: Dataset) -> None:
    counted = small.map(lambda r: {"reasoning_tokens": len(r["reasoning"]) // 3, "answer_tokens": len(r["answer"]) // 3})
    total = [r + a for r, a in zip(counted["reasoning_tokens"], counted["answer_tokens"])]
    cap = int(np.median(total))
    kept = export(counted, format="raw", max_tokens=cap)
    assert kept["trace_id"] == [t for t, n in zip(counted["trace_id"], total) if n <= cap]
    one = mix(counted, mode="system1")  # a row with no answer section apart from its reasoning stays System-2
    sizes = [a if m == SYSTEM1 else r + a for r, a, m in zip(counted["reasoning_tokens"], counted["answer_tokens"], one["mode"])]
    assert SYSTEM1 in one["mode"] and len(export(one, format="raw", max_tokens=cap)) == sum(n <= cap for n in sizes)


def test_mix_random_and_difficulty(pool: Dataset, small: Dataset) -> None:
    mixed = mix(pool, mode="random", p=0.4, seed=1)
    split = [bool(r) and bool(a) for r, a in zip(pool["reasoning"], pool["answer"])]
    assert all(m == SYSTEM2 for m, s in zip(mixed["mode"], split) if not s)  # no answer section: System-2
    share = sum(m == SYSTEM2 for m, s in zip(mixed["mode"], split) if s) / sum(split)
    assert abs(share - 0.4) < 0.05 and mixed["mode"] == mix(pool, mode="random", p=0.4, seed=1)["mode"]
    assert mixed["mode"] != mix(pool, mode="random", p=0.4, seed=2)["mode"]
    hard = mix(pool, mode="difficulty", column="label.evaluator_correct", harder="lower")
    assert [m == SYSTEM2 for m in hard["mode"]] == [
        c is not True or not s for c, s in zip(pool["label.evaluator_correct"], split)]
    with pytest.raises(KeyError, match="label.disagree"):
        mix(pool, mode="difficulty")
    with pytest.raises(ValueError, match="threshold"):
        mix(pool, mode="difficulty", column="score.reasoning_tokens")
    long = mix(pool, mode="difficulty", column="score.reasoning_tokens", threshold=2000)
    assert [m == SYSTEM2 for m in long["mode"]] == [n >= 2000 or not s for n, s in zip(pool["score.reasoning_tokens"], split)]


def test_system1_rows_keep_the_answer_and_the_instruction(small: Dataset) -> None:
    mixed = mix(small, mode="random", p=0.5, seed=0, instructions="qwen3")
    assert set(mixed["mode"]) == {SYSTEM1, SYSTEM2}
    out = export(mixed, format="messages")
    for row, trace in zip(out, mixed):
        user, assistant = row["messages"]
        if trace["mode"] == SYSTEM1:
            assert assistant["content"] == trace["answer"] and user["content"].endswith("\n\n/no_think")
        else:
            assert user["content"].endswith("\n\n/think")
    assert out["mode"] == mixed["mode"]
    with pytest.raises(ValueError, match="unknown instruction preset"):
        mix(small, instructions="loud")


@pytest.mark.parametrize("file_format", ["parquet", "jsonl", "dataset"])
def test_same_input_and_seed_give_identical_bytes(pool: Dataset, tmp_path: Path, file_format: str) -> None:
    for name in ("a", "b"):
        sel = select(pool, {"Sequential": {"steps": [{"Long": {"C": 2000}}, "Random"]}}, k=40, seed=5)
        export(mix(sel.subset(), p=0.5, seed=5), tmp_path / name, file_format=file_format, validation_fraction=0.2,
               name="subset")  # the card's title defaults to the folder's name
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b") and _digests(tmp_path / "a")


def test_card_describes_the_selection_and_loads_as_a_hub_folder(pool: Dataset, tmp_path: Path) -> None:
    sel = select(pool, {"Sequential": {"steps": ["DropFlags", {"Long": {"C": 2000}}, "Random"]}}, k=60, seed=0)
    splits, stats = prepare_export(mix(sel.subset(), p=0.5), "messages", validation_fraction=0.2)
    from natural_thoughts.export.formats import write_splits

    stats.files = [p.name for p in write_splits(splits, tmp_path)]
    sources = [{"kind": "traces", "source": "skythought_math500_*.jsonl", "license": "apache-2.0"}]
    card = write_card(tmp_path, "math500-long", sel, stats, pool=pool, sources=sources, config={"seed": 0},
                      models={"teacher": "Sky-T1"})
    text = card.read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "apache-2.0"
    assert [f["split"] for f in meta["configs"][0]["data_files"]] == ["train", "validation"]
    for step in sel.steps:
        assert f"| {step.name} |" in text and f"| {step.n_in} | {step.n_kept} | {step.n_in - step.n_kept} |" in text
    for reason in sel.steps[0].dropped:
        assert reason in text
    assert f"system1: {stats.modes['system1']}" in text
    pngs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert pngs == ["lengths.png"] and "](figures/lengths.png)" in text
    loaded = load_dataset(str(tmp_path))
    assert {k: len(v) for k, v in loaded.items()} == stats.splits


def test_bad_arguments_fail_clearly(small: Dataset) -> None:
    with pytest.raises(ValueError, match="known formats"):
        export(small, format="alpaca")
    with pytest.raises(ValueError, match="on_overlong"):
        export(small, max_tokens=10, on_overlong="truncate")
    with pytest.raises(KeyError, match="reasoning"):
        export(small.remove_columns("reasoning"))
    with pytest.raises(ValueError, match="row 0"):
        export(small.add_column("mode", ["fast"] * len(small)))


def test_card_plots_cluster_sizes_of_a_cluster_selection(pool: Dataset, tmp_path: Path) -> None:
    from natural_thoughts.export.plots import cluster_labels

    problems = pool.select(range(60))
    sel = select(problems, {"ClusterUniform": {"n_clusters": 5}}, k=20, seed=0)
    labels = cluster_labels(sel.subset())
    assert labels is not None and len(labels) == 20 and len(set(labels)) == 5  # round-robin reaches all 5
    splits, stats = prepare_export(sel, "messages")
    card = write_card(tmp_path, "clustered", sel, stats, pool=problems).read_text()
    assert (tmp_path / "figures" / "clusters.png").exists() and "](figures/clusters.png)" in card


def test_a_registered_format_and_file_layout_are_used_by_export_and_the_config(small: Dataset, tmp_path: Path) -> None:
    from natural_thoughts.export.formats import FILE_FORMATS, FORMATS, Turns, per_split
    from natural_thoughts.pipeline import ExportConfig

    @FORMATS.register(name="question_answer")
    def question_answer(t: Turns) -> dict[str, list]:
        return {**t.kept, "question": t.users, "answer": t.replies}

    FILE_FORMATS.register(per_split("csv", lambda ds, path: ds.to_csv(str(path), index=False)), name="csv")
    out = export(small, tmp_path, format="question_answer", file_format="csv")
    assert sorted(out.column_names) == ["answer", "problem_id", "question", "trace_id"]
    assert (tmp_path / "train.csv").exists()
    assert out["answer"] == [m[-1]["content"] for m in export(small)["messages"]]
    assert ExportConfig(format="question_answer", file_format="csv").format == "question_answer"
    export(small, tmp_path)  # another layout replaces the csv files (the card is rewritten beside them)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "figures", "train.parquet"]
