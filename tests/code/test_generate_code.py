"""The generate → verify loop for code problems: LiveCodeBench problems keep their tests through
generation, and `verify` runs every sample's program (or says there is none)."""

from __future__ import annotations

from natural_thoughts import generate, load_problems, verify
from natural_thoughts.code import CODE_PROMPT
from natural_thoughts.selectors import PassRate

from tests.conftest import DATA


def test_code_problems_keep_their_tests_and_each_sample_is_verified(llm) -> None:
    problems = load_problems(DATA / "code" / "lcb_o1-mini-2024-09-12.jsonl", preset="livecodebench").select(range(3))
    assert all(problems["tests"])
    traces = generate(problems, model=llm, n=2, prompt_template=CODE_PROMPT, show_progress=False,
                      sampling={"temperature": 0.8, "max_tokens": 48, "seed": 0})
    assert len(traces) == 6 and traces["tests"] == [t for t in problems["tests"] for _ in range(2)]
    assert all("```python" in prompt for prompt in traces["prompt"])
    out = verify(traces)
    # the tiny random model writes no fenced program: each sample is undecided, never guessed
    assert set(out["label.correct_method"]) <= {"code", "no_program"}
    assert all((m == "code") == (c is not None) for m, c in zip(out["label.correct_method"], out["label.correct"]))
    tally = {pid: [0, 0] for pid in out["problem_id"]}
    for pid, correct in zip(out["problem_id"], out["label.correct"]):
        tally[pid][0] += correct is True
        tally[pid][1] += correct is not None
    assert PassRate().rates(out)[1] == [f"{tally[pid][0]}/{tally[pid][1]}" for pid in out["problem_id"]]
