"""Guided-trace fixtures: small trace sets with complete and incomplete rollouts, and a short
teacher prompt (the packaged one, with its few-shots, is longer than the tiny engine's context)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

SHORT_PROMPT = """{#- role: system -#}
You are a teacher. Reply as <opinion>correct|incorrect</opinion> <reason>...</reason> <phrase>...</phrase>.
{#- role: user -#}
Question:
{{ question }} {{ instruction }}

Response:
{{ response }}
"""
BOUNDED_REGEX = (r"<opinion>(correct|incorrect)</opinion> <reason>Wait, [a-z ]{1,30}\.</reason> "
                 r"<phrase>So the answer is \\boxed\{[0-9]{1,2}\}\.</phrase>")
"""A sub-language of `FEEDBACK_REGEX` with bounded parts: the random tiny model closes every tag
within a few dozen tokens, which the open-ended format would leave to chance."""

# (finish_reason, flags, error) of each rollout of a problem: only the first two are complete.
ROLLOUTS: list[tuple[str | None, list[str], str | None]] = [
    ("stop", [], None), ("stop", [], None), ("length", [], None), ("stop", ["truncated"], None),
    (None, [], "engine error"),
]


def traces(model: str, problems: int = 3, rollouts: list[Any] = ROLLOUTS) -> Dataset:
    """`problems` problems with the `rollouts` above each (the last problem has no complete one)."""
    rows = []
    for p in range(problems):
        for s, (finish, flags, error) in enumerate(rollouts if p < problems - 1 else rollouts[2:]):
            reasoning, answer = f"Let me add {p} and {s}.", f"The answer is \\boxed{{{p + s}}}."
            rows.append({"problem_id": f"p{p}", "problem": f"What is {p} + {s}?", "reference_answer": str(p + s),
                         "trace_id": f"p{p}-{s}", "sample_index": s, "model": model,
                         "completion": f"<think>\n{reasoning}\n</think>\n\n{answer}<|im_end|>", "reasoning": reasoning,
                         "answer": answer, "final_answer": str(p + s), "finish_reason": finish, "flags": flags,
                         "error": error})
    return Dataset.from_list(rows)


@pytest.fixture()
def guided_traces(tiny_model_dir: Path) -> Dataset:
    return traces(str(tiny_model_dir))

