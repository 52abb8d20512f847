"""`guide()` on the real vLLM engine (tiny random model: its words are noise, so structure is asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import yaml

from natural_thoughts.guide import FEEDBACK_REGEX, PROMPT_SHA256, PROMPT_VERSION, complete_mask, guide, strip_end_tokens
from natural_thoughts.guide.runner import NO_FEEDBACK_ERROR, TeacherFeedback, prompt_sha256
from natural_thoughts.pipeline.config import RunConfig
from natural_thoughts.pipeline.runner import run

from tests.conftest import CountingBackend
from tests.guide.conftest import BOUNDED_REGEX, SHORT_PROMPT, traces

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "thinktuning.yaml"


def _guide(ds, llm, **options):
    return guide(ds, backend=CountingBackend(llm), prompt=SHORT_PROMPT, max_tokens=96, show_progress=False, **options)


def test_the_chosen_rollouts_follow_the_rules(guided_traces, llm) -> None:
    complete = complete_mask(guided_traces)
    assert complete.tolist() == [True, True, False, False, False] * 2 + [False, False, False]
    out = _guide(guided_traces, llm, fraction=0.0001, regex=BOUNDED_REGEX)
    chosen = np.array(out["guidance.chosen"])
    assert not (chosen & ~complete).any()  # incomplete rollouts are never guided
    per_problem = {pid: int(chosen[np.array(guided_traces["problem_id"]) == pid].sum()) for pid in ("p0", "p1", "p2")}
    assert per_problem == {"p0": 1, "p1": 1, "p2": 0}  # at least one where a complete rollout exists
    again = guide(guided_traces, backend=CountingBackend(llm), fraction=1.0, prompt=SHORT_PROMPT, max_tokens=8,
                  regex=None, show_progress=False)
    assert np.array_equal(np.array(again["guidance.chosen"]), complete)  # fraction 1: every complete rollout
    other = [_chosen(guided_traces, llm, seed) for seed in range(6)]
    assert other[0] == _chosen(guided_traces, llm, 0) and len({tuple(c) for c in other}) > 1  # seeded


def _chosen(ds, llm, seed: int) -> list[bool]:
    return guide(ds, backend=CountingBackend(llm), fraction=0.5, seed=seed, prompt=SHORT_PROMPT, max_tokens=4,
                 regex=None, show_progress=False)["guidance.chosen"]


def test_guided_decoding_replies_splice_with_exact_offsets(guided_traces, llm) -> None:
    out = _guide(guided_traces, llm, fraction=1.0, regex=BOUNDED_REGEX)
    rows = [r for r in out if r["guidance.chosen"]]
    valid = [r for r in rows if r["guidance.valid"]]
    print(f"guided decoding (bounded regex): {len(valid)} of {len(rows)} replies valid")
    assert rows and len(valid) == len(rows)
    for r in valid:
        assert re.fullmatch(FEEDBACK_REGEX, r["guidance.raw"]) and r["guidance.error"] is None
        text, start, end = r["guided_completion"], r["guidance.char_start"], r["guidance.char_end"]
        assert text[:start] == strip_end_tokens(r["completion"])  # the student part is unchanged
        assert text[start:end] == f"\n\n{r['guidance.reason']}\n\n{r['guidance.phrase']}" and end == len(text)
        assert r["guidance.opinion"] not in text[start:]  # the opinion is dropped
        assert r["guidance.final_answer"] is not None
        assert r["guidance.correct"] is (r["guidance.final_answer"] == r["reference_answer"])
    for r in out:
        if not r["guidance.chosen"]:
            assert r["guidance.valid"] is None and r["guided_completion"] is None and r["guidance.raw"] is None


def test_the_open_format_on_noise_is_no_feedback(guided_traces, llm) -> None:
    for regex in (None, FEEDBACK_REGEX):
        out = _guide(guided_traces, llm, fraction=1.0, regex=regex)
        rows = [r for r in out if r["guidance.chosen"]]
        valid = sum(bool(r["guidance.valid"]) for r in rows)
        print(f"regex={'FEEDBACK_REGEX' if regex else None}: {valid} of {len(rows)} noise replies valid")
        if regex is None:
            assert valid == 0
        for r in rows:
            if not r["guidance.valid"]:
                assert r["guided_completion"] is None and r["guidance.char_start"] is None
                assert r["guidance.raw"] is not None and r["guidance.error"].startswith(NO_FEEDBACK_ERROR)


def test_resume_asks_nothing_the_second_time(guided_traces, llm, tmp_path: Path) -> None:
    first, second = CountingBackend(llm), CountingBackend(llm)
    kwargs = {"fraction": 1.0, "prompt": SHORT_PROMPT, "regex": BOUNDED_REGEX, "max_tokens": 96,
              "output_dir": tmp_path / "work", "show_progress": False}
    a = guide(guided_traces, backend=first, **kwargs)
    b = guide(guided_traces, backend=second, **kwargs)
    assert len(first.requests) == sum(a["guidance.chosen"]) == 4 and second.requests == []
    assert a["guided_completion"] == b["guided_completion"]
    manifest = json.loads(next((tmp_path / "work").glob("manifest*.json")).read_text())
    assert f'"{prompt_sha256(SHORT_PROMPT)}"' in json.dumps(manifest)
    packaged = TeacherFeedback().fingerprint(first)
    assert packaged["prompt_version"] == PROMPT_VERSION and packaged["prompt_sha256"] == PROMPT_SHA256


def test_the_guide_stage_runs_in_run(tmp_path: Path, llm, tiny_model_dir: Path) -> None:
    source = tmp_path / "traces.jsonl"
    traces(str(tiny_model_dir)).to_json(str(source), lines=True)
    prompt = tmp_path / "teacher.jinja"
    prompt.write_text(SHORT_PROMPT)
    config = yaml.safe_load(EXAMPLE.read_text())
    config.update(output_dir=str(tmp_path / "run"), traces={"source": str(source)},
                  guide={**config["guide"], "model": None, "prompt_file": str(prompt), "regex": BOUNDED_REGEX,
                         "fraction": 1.0, "max_tokens": 96})
    config["select"] = {"selector": "Random", "k": 100}
    summary = run(RunConfig.model_validate(config), engine=llm)
    assert summary["stages"]["guide"] == "ran"
    rows = [json.loads(line) for f in sorted((tmp_path / "run" / "export").glob("*.jsonl"))
            for line in f.read_text().splitlines()]
    guided = [r["messages"][-1]["content"] for r in rows if r["guided"]]
    assert len(guided) == 4  # every complete rollout (fraction 1)
    assert all(re.search(r"</think>\n\n.+\n\nWait, [a-z ]+\.\n\nSo the answer is \\boxed\{\d+\}\.$", c, re.S)
               for c in guided)
    assert run(RunConfig.model_validate(config), engine=llm)["stages"]["guide"] == "reused"
