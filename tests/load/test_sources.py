"""load_problems / load_traces on every source kind, each preset on real files, and bad input."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before datasets is imported: nothing may reach the network

import json
import logging
import pickle
from pathlib import Path

import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from natural_thoughts import schema
from natural_thoughts.load.importer import BATCH_ROWS
from natural_thoughts.load.sources import LoadReport, _JsonLines, _Part, load_problems, load_traces

from tests.conftest import DATA

SKY = DATA / "skythought_math500_sky-t1-27b.jsonl"
QWEN = DATA / "skythought_math500_qwen2.5-math-7b.jsonl"

ROWS = [
    {"problem": "What is 2 + 2?", "reference_answer": "4", "topic": "arithmetic", "level": 1},
    {"problem": "Name the capital of France.", "reference_answer": "Paris", "topic": "geo", "level": 2},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_problems(ds: Dataset, rows: list[dict], source: str) -> None:
    """The contract: exact columns, hashed ids, the file name as source, extras as sorted JSON."""
    assert ds.column_names == list(schema.PROBLEM_COLUMNS)
    assert ds["problem"] == [r["problem"] for r in rows]
    assert ds["problem_id"] == [schema.problem_id(r["problem"]) for r in rows]
    assert ds["reference_answer"] == [r["reference_answer"] for r in rows]
    assert set(ds["source"]) == {source}
    assert ds["domain"] == [None] * len(rows)
    for extra, row in zip(ds["extra"], rows):
        assert json.loads(extra) == {"topic": row["topic"], "level": row["level"]}
        assert list(json.loads(extra)) == sorted(json.loads(extra))


def test_jsonl(tmp_path: Path) -> None:
    check_problems(load_problems(write_jsonl(tmp_path / "p.jsonl", ROWS)), ROWS, "p.jsonl")


def test_json_array(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps(ROWS), encoding="utf-8")
    check_problems(load_problems(str(tmp_path / "p.json")), ROWS, "p.json")


def test_jsonl_is_read_batch_by_batch_with_every_column_in_each(tmp_path: Path) -> None:
    """Rows are parsed a batch at a time, but a column first seen in the last batch is in every
    row (null where a row lacks it), as if the file had been read whole."""
    rows = [{"problem": f"Question {i}?", "reference_answer": str(i)} for i in range(BATCH_ROWS + 1)]
    rows[-1]["late"] = "only here"
    ds = load_problems(write_jsonl(tmp_path / "p.jsonl", rows))
    assert ds["problem"] == [r["problem"] for r in rows]
    assert json.loads(ds["extra"][0]) == {"late": None} and json.loads(ds["extra"][-1]) == {"late": "only here"}


def test_a_json_line_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    """JSON lines end at "\n" only: U+2028 / U+0085 inside a string (valid JSON, a line break to
    `str.splitlines`) do not split a row."""
    rows = [{**ROWS[0], "problem": "What is 2 + 2?\u2028Explain."}, {**ROWS[1], "problem": "Paris\x85London?"}]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    check_problems(load_problems(path), rows, "p.jsonl")


def test_the_gpqa_benchmark_file_loads_one_row_per_line() -> None:
    path = DATA / "benchmarks" / "gpqa.jsonl"
    raw = path.read_bytes()
    assert "\u2028" in raw.decode("utf-8")  # what made a str.splitlines reader fail on it
    ds = load_problems(path, columns={"problem": "question", "reference_answer": "answer"})
    assert ds["problem"] == [json.loads(line)["question"] for line in raw.splitlines()]


def test_a_jsonl_file_cut_short_while_read_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    lines = _JsonLines.scan(path, "raise", LoadReport("p"))
    write_jsonl(path, ROWS[:1])
    with pytest.raises(ValueError, match=r"changed while it was read \(line 2\)"):
        list(lines.batches(10))
    path.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"changed while it was read \(line 2\)"):
        list(lines.batches(10))
    write_jsonl(path, [ROWS[0], {**ROWS[1], "problem": "Another question?"}])
    os.utime(path, (1, 1))  # a different time, as any rewrite has
    with pytest.raises(ValueError, match="changed while it was read; load it again"):
        list(lines.batches(10))


def test_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    for name, text in (("p.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS)), ("p.json", json.dumps(ROWS))):
        (tmp_path / name).write_text("\ufeff" + text, encoding="utf-8")
        check_problems(load_problems(tmp_path / name), ROWS, name)


def test_batches_of_a_dataset_hold_only_their_own_rows() -> None:
    """A slice of a table pickles the whole table's buffers: workers must receive only their batch."""
    ds = Dataset.from_dict({"problem": [f"{i} " + "x" * 1000 for i in range(4000)]})
    batches = list(_Part(ds, "dataset").batches(1000))
    expected = [ds["problem"][i : i + 1000] for i in range(0, 4000, 1000)]
    assert [b.column("problem").to_pylist() for b in batches] == expected
    assert all(len(pickle.dumps(b)) < len(pickle.dumps(ds.data.table)) / 2 for b in batches)


def test_parquet_and_csv(tmp_path: Path) -> None:
    Dataset.from_list(ROWS).to_parquet(str(tmp_path / "p.parquet"))
    pd.DataFrame(ROWS).to_csv(tmp_path / "p.csv", index=False)
    check_problems(load_problems(tmp_path / "p.parquet"), ROWS, "p.parquet")
    check_problems(load_problems(tmp_path / "p.csv"), ROWS, "p.csv")


def test_glob_reads_sorted_matches(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "b.jsonl", ROWS[1:])
    write_jsonl(tmp_path / "a.jsonl", ROWS[:1])
    ds = load_problems(str(tmp_path / "*.jsonl"))
    assert ds["problem"] == [r["problem"] for r in ROWS]
    assert ds["source"] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(FileNotFoundError, match=r"nothing-\*\.jsonl"):
        load_problems(str(tmp_path / "nothing-*.jsonl"))


def test_saved_folder_dataset_and_dataframe(tmp_path: Path) -> None:
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    check_problems(load_problems(tmp_path / "saved"), ROWS, "saved")
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(
        str(tmp_path / "dict")
    )
    check_problems(load_problems(tmp_path / "dict", split="test"), ROWS[:1], "dict")
    with pytest.raises(ValueError, match="split"):
        load_problems(tmp_path / "dict")
    check_problems(load_problems(Dataset.from_list(ROWS)), ROWS, "dataset")
    check_problems(load_problems(pd.DataFrame(ROWS)), ROWS, "dataframe")


def test_columns_mapping_ids_and_kept_columns() -> None:
    df = pd.DataFrame(
        {
            "prompt": ["Solve x + 1 = 3."],
            "solution": ["2"],
            "id": ["q-7"],
            "weak_answer": ["3"],
            "score.difficulty": [0.5],
        }
    )
    ds = load_problems(df, columns={"problem": "prompt", "reference_answer": "solution", "problem_id": "id"})
    assert ds.column_names == [*schema.PROBLEM_COLUMNS, "weak_answer", "score.difficulty"]
    row = ds[0]
    assert (row["problem_id"], row["reference_answer"], row["weak_answer"]) == ("q-7", "2", "3")
    assert row["score.difficulty"] == 0.5 and row["extra"] == "{}"
    with pytest.raises(ValueError, match="unknown column 'answr'"):
        load_problems(df, columns={"problem": "prompt", "answr": "solution"})


def test_missing_column_names_it_and_the_present_ones(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "1 + 1?", "answer": "2"}])
    with pytest.raises(KeyError) as err:
        load_problems(path)
    assert "'problem'" in str(err.value) and "'question'" in str(err.value) and "'answer'" in str(err.value)
    with pytest.raises(KeyError, match="responses"):
        load_problems(path, preset="natural_reasoning")
    with pytest.raises(ValueError, match="gsm8k"):
        load_problems(path, preset="no_such_preset")


def test_malformed_jsonl_raises_or_is_skipped_and_reported(tmp_path: Path, caplog) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(ROWS[0]), "", '{"problem": "unterminated', json.dumps(ROWS[1]), "[1, 2]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:3: malformed JSON"):
        load_problems(path)
    with caplog.at_level(logging.WARNING, logger="natural_thoughts.load.sources"):
        ds, report = load_problems(path, on_error="skip", return_report=True)
    assert isinstance(report, LoadReport)
    assert ds["problem"] == [r["problem"] for r in ROWS] and report.rows == 2
    assert [s.split(": ")[0] for s in report.skipped] == [f"{path}:3", f"{path}:5"]
    assert "skipped 2" in caplog.text and f"{path}:3" in caplog.text


def test_empty_problem_row_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [ROWS[0], {"problem": "  ", "reference_answer": "x"}])
    with pytest.raises(ValueError, match=f"{path}:2: problem is empty"):
        load_problems(path)
    ds, report = load_problems(path, on_error="skip", return_report=True)
    assert len(ds) == 1 and report.skipped == [f"{path}:2: problem is empty or not text: '  '"]
    with pytest.raises(ValueError, match="dataframe row 1"):
        load_problems(pd.DataFrame([ROWS[0], {"problem": None}]))


def test_problem_id_is_stable_across_loads(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    first, again = load_problems(path), load_problems(str(path))
    assert first["problem_id"] == again["problem_id"]
    assert len(set(first["problem_id"])) == len(ROWS)
    first.to_parquet(str(tmp_path / "pool.parquet"))  # our own pool loads back as it was
    assert load_problems(tmp_path / "pool.parquet").to_list() == first.to_list()


def test_natural_reasoning_preset(tmp_path: Path) -> None:
    rows = [
        {
            "question": "Prove that the square root of 2 is irrational.",
            "reference_answer": "It is irrational.",
            "responses": [{"response_model": "Llama-3.3-70B-Instruct", "response": "Assume p/q ..."}],
        },
        {"question": "What is the derivative of x^2?", "reference_answer": "2x", "responses": []},
    ]
    ds = load_problems(write_jsonl(tmp_path / "nr.jsonl", rows), preset="natural_reasoning")
    assert ds.column_names == [*schema.PROBLEM_COLUMNS, "weak_answer", "weak_model"]
    assert ds["weak_answer"] == ["Assume p/q ...", None]
    assert ds["weak_model"] == ["Llama-3.3-70B-Instruct", None]
    assert ds["reference_answer"] == ["It is irrational.", "2x"] and ds["extra"] == ["{}", "{}"]


def test_gsm8k_preset_on_real_file() -> None:
    raw = read_jsonl(DATA / "gsm8k_test.jsonl")
    ds = load_problems(DATA / "gsm8k_test.jsonl", preset="gsm8k")
    assert len(ds) == len(raw) and ds.column_names == list(schema.PROBLEM_COLUMNS)
    for row, src in zip(ds, raw):
        final = src["answer"].split("\n")[-1]
        assert final.startswith("#### ") and row["reference_answer"] == final[5:].strip()
        assert json.loads(row["extra"]) == {"solution": src["answer"]}
    assert all(a.replace(",", "").lstrip("-").replace(".", "").isdigit() for a in ds["reference_answer"])


def test_math500_preset_on_real_file() -> None:
    raw = read_jsonl(DATA / "benchmarks" / "math.jsonl")
    ds = load_problems(DATA / "benchmarks" / "math.jsonl", preset="math500")
    assert ds["problem_id"] == [r["unique_id"] for r in raw]
    assert ds["domain"] == [r["subject"] for r in raw]
    assert ds["reference_answer"] == [r["answer"] for r in raw]
    assert set(ds["source"]) == {"math.jsonl"}
    assert json.loads(ds["extra"][0]) == {"level": raw[0]["level"], "solution": raw[0]["solution"]}


def test_skythought_preset_on_real_files() -> None:
    raw = read_jsonl(SKY)
    ds = load_traces(SKY, preset="skythought_eval")
    assert ds.column_names == [*schema.TRACE_COLUMNS, "label.evaluator_correct"]
    assert len(ds) == len(raw) and set(ds["model"]) == {SKY.stem}
    assert ds["label.evaluator_correct"] == [bool(r["score"][0]) for r in raw]
    assert ds["completion"] == [r["code"][0] for r in raw]
    assert all(ref in (r["gt"], r["answer"]) for ref, r in zip(ds["reference_answer"], raw))
    assert [json.loads(e)["idx"] for e in ds["extra"]] == [r["idx"] for r in raw]
    assert ds["trace_id"] == [schema.trace_id(p, 0) for p in ds["problem_id"]]
    assert all(set(f) <= set(schema.FLAGS) for f in ds["flags"])
    marked = [i for i, r in enumerate(raw) if "<|end_of_thought|>" in r["code"][0]]
    assert marked and all(ds[i]["reasoning"] for i in marked)
    assert set(ds["reasoning_tokens"]) == {None} and set(ds["sampling"]) == {"{}"}


def test_skythought_preset_reads_answer_only_where_gt_is_its_stripped_copy() -> None:
    """MATH-500's one-line `answer` replaces a `gt` that lost content; a `gt` taken out of a worked
    solution (GSM8K) or an answer that is another field (an option index) leaves `gt`."""
    def references(answers: list, gts: list[str]) -> list[str]:
        df = pd.DataFrame({"question": [f"Q{i}" for i in range(len(gts))], "gt": gts, "answer": answers,
                           "code": [["\\boxed{1}"]] * len(gts), "score": [[True]] * len(gts)})
        ds = load_traces(df, preset="skythought_eval", model="m")
        assert all("answer" not in json.loads(e) for e in ds["extra"])
        return ds["reference_answer"]

    answers = ["(a + 5)(b + 2)", "\\text{east}", "Natalia sold 24 clips.\n#### 72", "90^\\circ"]
    assert references(answers, ["(+5)(b+2)", "", "72", "90"]) == ["(a + 5)(b + 2)", "\\text{east}", "72", "90"]
    assert references([2], ["C"]) == ["C"]


def test_skythought_preset_falls_back_to_gt_without_an_answer_column() -> None:
    path = DATA / "skythought_olympiadbench_sky-t1-32b-short.jsonl"
    raw = read_jsonl(path)
    assert "answer" not in raw[0]
    ds = load_traces(path, preset="skythought_eval")
    assert ds["reference_answer"] == [r["gt"] for r in raw]
    assert "gt" not in json.loads(ds["extra"][0])  # a mapped column is not packed again


def test_skythought_glob_numbers_samples_per_problem() -> None:
    ds = load_traces(str(DATA / "skythought_math500_*.jsonl"), preset="skythought_eval", model=None)
    assert len(set(ds["trace_id"])) == len(ds)
    pairs = set(zip(ds["model"], ds["sample_index"]))
    assert pairs == {(QWEN.stem, 0), (SKY.stem, 1)}  # the sorted glob reads the qwen file first
    assert set(load_traces(QWEN, preset="skythought_eval", model="qwen")["model"]) == {"qwen"}


def test_import_traces_with_columns_and_model() -> None:
    df = pd.DataFrame(
        {"q": ["1 + 1?", "1 + 1?", "2 + 2?"], "out": ["<think>add</think> \\boxed{2}", "2", ""]}
    )
    with pytest.raises(ValueError, match="model="):
        load_traces(df, columns={"problem": "q", "completion": "out"})
    ds = load_traces(df, columns={"problem": "q", "completion": "out"}, model="m")
    assert ds.column_names == list(schema.TRACE_COLUMNS)
    assert ds["sample_index"] == [0, 1, 0]
    assert ds["reasoning"][0] == "add" and ds["final_answer"][0] == "2"
    assert "empty" in ds["flags"][2]
    assert ds.features["reasoning_tokens"].dtype == "int64"


def our_traces() -> Dataset:
    """A small trace set in our own column shape."""
    problems = [f"Compute {i} * 3." for i in range(4)]
    df = pd.DataFrame({"problem": [p for p in problems for _ in range(2)], "completion": "x \\boxed{1}"})
    return load_traces(df, model="m")


def test_our_traces_pass_through_unchanged(tmp_path: Path) -> None:
    ds = our_traces().shuffle(seed=3).flatten_indices()
    assert load_traces(ds).to_list() == ds.to_list()
    ds.save_to_disk(str(tmp_path / "saved"))
    assert load_traces(tmp_path / "saved").to_list() == ds.to_list()


def test_shard_folder_is_read_whole_and_sorted(tmp_path: Path) -> None:
    ds = our_traces().shuffle(seed=1).flatten_indices()
    for i in range(3):
        (tmp_path / f"shard-{i}").mkdir()
        ds.shard(3, i, contiguous=True).to_parquet(str(tmp_path / f"shard-{i}" / "part-0.parquet"))
    ds.select(range(2)).to_parquet(str(tmp_path / "shard-0" / "part-1.parquet.tmp"))
    loaded = load_traces(tmp_path)
    keys = list(zip(loaded["problem_id"], loaded["sample_index"]))
    assert keys == sorted(zip(ds["problem_id"], ds["sample_index"]))
    assert sorted(loaded["trace_id"]) == sorted(ds["trace_id"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="parquet"):
        load_traces(tmp_path / "empty")


def test_repeated_problem_ids_are_refused_or_numbered(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [ROWS[0], ROWS[1], ROWS[0]])
    with pytest.raises(ValueError, match=schema.problem_id(ROWS[0]["problem"])):
        load_problems(path)
    ids = load_problems(path, duplicates="number")["problem_id"]
    assert len(set(ids)) == 3 and ids[2] == f"{ids[0]}#2"


def test_repeated_or_negative_trace_keys_are_refused_naming_the_line(tmp_path: Path) -> None:
    row = {"problem": "q", "completion": "a", "sample_index": 0}
    columns = {"problem": "problem", "completion": "completion", "sample_index": "sample_index"}
    with pytest.raises(ValueError, match=r"t\.jsonl:2: trace key .*appears twice"):
        load_traces(write_jsonl(tmp_path / "t.jsonl", [row, row]), columns=columns, model="m")
    with pytest.raises(ValueError, match=r"n\.jsonl:1: sample_index -1 is negative"):
        load_traces(write_jsonl(tmp_path / "n.jsonl", [{**row, "sample_index": -1}]), columns=columns, model="m")


def test_a_parquet_file_cut_short_is_named(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.parquet", tmp_path / "cut.parquet"
    load_problems(DATA / "gsm8k_test.jsonl", preset="gsm8k").to_parquet(str(whole))
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"{cut}: not a readable parquet file .*cut short"):
        load_problems(cut, preset="gsm8k")


def test_json_nested_100k_deep_is_named_as_a_file_or_a_line(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    whole, lines = tmp_path / "deep.json", tmp_path / "deep.jsonl"
    whole.write_text(deep)
    lines.write_text(json.dumps(ROWS[0]) + "\n" + '{"problem": ' + deep + "}\n")
    with pytest.raises(ValueError, match=rf"{whole}: JSON nested too deeply"):
        load_problems(whole)
    with pytest.raises(ValueError, match=rf"{lines}:2: JSON nested too deeply"):
        load_problems(lines)
    ds, report = load_problems(lines, on_error="skip", return_report=True)  # the run goes on without that line
    assert len(ds) == 1 and [s.split(": ")[0] for s in report.skipped] == [f"{lines}:2"]


def test_non_utf8_bytes_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"problem": "ok"}\n{"problem": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin1\.jsonl:2: not UTF-8"):
        load_problems(path)


def test_an_unknown_trace_format_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="chain"):
        load_traces(pd.DataFrame({"problem": ["q"], "completion": ["a"]}), trace_format="r1")
