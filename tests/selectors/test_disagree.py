"""ModelsDisagree on free-form responses: a precomputed `label.disagree`, the LLM judge built from
YAML-style settings, run for real through the tiny model (vLLM) and a real OpenAI-compatible server."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

from natural_thoughts import attach_weak, load_traces
from natural_thoughts.annotate import ResponseJudge, annotate
from natural_thoughts.answers import CLOSING_CHARS, closing_part, weak_final
from natural_thoughts.selectors import ModelsDisagree, get_selector
from natural_thoughts.selectors.testing import check_selector, default_dataset

from tests.conftest import DATA, KEY_ENV, CountingBackend, running_server

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 1200, "seed": 3}
"""The random model's noise, constrained by the reply schema (as in test_annotate)."""
SHORT = {"response_judge": {"report": "equivalent", "max_chars": 300}}
"""The free-form judge with each shown text cut to 300 characters, so prompts fit the tiny model."""


def test_label_disagree_is_used_where_set_and_named_in_the_reasons() -> None:
    ds = Dataset.from_dict({
        "final_answer": ["4", "4", "4", "4"],
        "weak_answer": ["4", "5", "5", None],
        "label.disagree": [True, False, None, None],  # as AnswerJudge/ResponseJudge(report="disagree") write it
    })
    sel = ModelsDisagree().select(ds)
    assert sel.indices.tolist() == [0, 2]
    assert sel.reasons == ["models disagree (label.disagree)", "models disagree (math)"]
    assert sel.dropped == {1: "models agree (label.disagree)", 3: "undecided (math)"}
    assert ModelsDisagree(label_column=None).select(ds).indices.tolist() == [1, 2]  # the label ignored
    labelled = ds.remove_columns("weak_answer").select([0, 1])
    assert ModelsDisagree(judge="llm").select(labelled).indices.tolist() == [0]  # no judge needed, none asked


def test_a_judge_spec_is_stored_built_on_use_and_round_trips() -> None:
    spec = {"model": "some/judge", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
            "sampling": {"max_tokens": 64}, "annotator": SHORT}
    selector = get_selector({"ModelsDisagree": {"judge": "llm", "llm_judge": spec}})
    assert selector == ModelsDisagree(judge="llm", llm_judge=spec) and selector.llm_judge == spec
    ds = default_dataset()
    ds = ds.add_column("label.disagree", [i % 3 == 0 for i in range(len(ds))])
    check_selector(selector, ds)  # every row is labelled: the conformance checks never build the judge
    assert pickle.loads(pickle.dumps(selector)) == selector
    with pytest.raises(ValueError, match="base_url is for backend='openai'"):
        ModelsDisagree(judge="llm", llm_judge={"model": "x", "base_url": "http://h/v1"}).select(
            ds.remove_columns("label.disagree"))


@pytest.fixture(scope="module")
def free_form() -> Dataset:
    """Real MATH-500 rows whose weak response (Qwen2.5-Math-7B) has no final answer to extract: the
    shortest questions, so that the prompts fit the tiny model's context."""
    pair = attach_weak(load_traces(DATA / "skythought_math500_sky-t1-27b.jsonl", preset="skythought_eval"),
                       DATA / "skythought_math500_qwen2.5-math-7b.jsonl", preset="skythought_eval", on="problem")
    rows = [i for i, (t, w) in enumerate(zip(pair["final_answer"], pair["weak_answer"]))
            if t and w and len(w) > CLOSING_CHARS and not (weak_final(w) or "").strip()]
    rows.sort(key=lambda i: len(pair[i]["problem"]))
    return pair.select(rows[:6])


def _check_free_form_verdicts(selector: ModelsDisagree, ds: Dataset) -> None:
    """Rows are decided where the old path left every one undecided, and each reason names the judge."""
    assert all(v is None for v in ModelsDisagree(judge="math").verdicts(ds))  # no weak final answer
    verdicts = selector.verdicts(ds)
    assert any(v is not None for v in verdicts), "no reply of the judge validated"
    sel = selector.select(ds)
    reasons = {**dict(zip(sel.indices.tolist(), sel.reasons)), **sel.dropped}
    for i, v in enumerate(verdicts):
        word = {True: "models agree", False: "models disagree", None: "undecided"}[v]
        assert reasons[i] == f"{word} (llm)"


def _check_prompts(ds: Dataset, asked: list[str]) -> None:
    """The judge saw each row's question, its reference and the closing part of the weak response."""
    for row in ds:
        tail = closing_part(row["weak_answer"])[-100:]  # the shown text keeps the tail
        assert any(row["problem"] in a and f"Reference answer:\n{row['reference_answer']}" in a and tail in a
                   for a in asked), row["problem"]


def test_llm_judge_decides_free_form_rows_on_the_tiny_model(llm, free_form: Dataset) -> None:
    backend = CountingBackend(llm)
    selector = ModelsDisagree(judge="llm", llm_judge={"backend": backend, "sampling": SAMPLING,
                                                      "annotator": SHORT, "batch_size": 2})
    _check_free_form_verdicts(selector, free_form)
    _check_prompts(free_form, [r.messages[0]["content"] for r in backend.requests])
    labelled = annotate(free_form, [ResponseJudge(max_chars=300)], backend=backend, sampling=SAMPLING,
                        batch_size=2, show_progress=False)
    labels = labelled["label.disagree"]
    assert any(v is not None for v in labels), "no reply of the annotator validated"
    sel = ModelsDisagree().select(labelled)  # the label decides where set; math leaves the rest undecided
    reasons = {**dict(zip(sel.indices.tolist(), sel.reasons)), **sel.dropped}
    for i, v in enumerate(labels):
        assert reasons[i] == ("undecided (math)" if v is None else
                              f"models {'disagree' if v else 'agree'} (label.disagree)")


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real OpenAI-compatible vLLM server on loopback, here without a reasoning parser, so that
    the judge's JSON arrives as the reply's content."""
    with running_server(tiny_model_dir, tmp_path_factory.mktemp("judge-server"), reasoning_parser=False,
                        max_model_len=2048) as srv:
        yield srv


def test_llm_judge_through_an_openai_server_from_yaml_settings(server: Any, free_form: Dataset) -> None:

    spec = {"model": "tiny", "backend": "openai", "base_url": server.base_url,
            "engine_kwargs": {"api_key_env": KEY_ENV, "max_concurrency": 2}, "sampling": SAMPLING, "annotator": SHORT}
    selector = get_selector({"ModelsDisagree": {"judge": "llm", "llm_judge": spec}})
    _check_free_form_verdicts(selector, free_form)
    assert pickle.loads(pickle.dumps(selector)) == selector  # the built judge (a client) is not pickled
