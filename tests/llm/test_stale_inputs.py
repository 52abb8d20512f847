"""Every model pass keys its work by what the model reads, on the real tiny engine and real traces.

Two files of ../shared/data hold two models' traces of the same MATH-500 problems, so the same
trace ids: a folder made from one and re-run on rows of the other must ask those rows again (the
text the model reads changed), reuse the unchanged ones, and a third call must ask nothing and
return the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset

from natural_thoughts.annotate import annotate
from natural_thoughts.annotate.annotators import Verbosity
from natural_thoughts.guide import guide
from natural_thoughts.load.sources import load_traces
from natural_thoughts.refine import refine
from natural_thoughts.refine.passes import solution_text

from tests.conftest import DATA, CountingBackend
from tests.guide.conftest import BOUNDED_REGEX, SHORT_PROMPT

FIRST = DATA / "skythought_math500_sky-t1-27b.jsonl"
SECOND = DATA / "skythought_math500_qwen2.5-math-7b.jsonl"
SHORT = 2000
"""Characters of a completion the tiny engine's context (2,048 tokens) takes whole, with a prompt."""
ROWS = 3


@pytest.fixture(scope="module")
def before_after() -> tuple[Dataset, Dataset, str]:
    """(rows of the first file, the same rows with the last one taken from the second file, its trace id)."""
    first, second = (load_traces(f, preset="skythought_eval") for f in (FIRST, SECOND))
    at = {t: i for i, t in enumerate(second["trace_id"])}
    picks = [(i, at[t]) for i, (t, text) in enumerate(zip(first["trace_id"], first["completion"]))
             if t in at and len(text) < SHORT and len(second[at[t]]["completion"]) < SHORT][:ROWS]
    assert len(picks) >= 2, "the two files share fewer than two short traces"
    before = first.select([i for i, _ in picks])
    replaced = second[picks[-1][1]]
    assert replaced["completion"] != before[-1]["completion"]  # another model's trace of the same problem
    after = Dataset.from_list([*before.select(range(len(picks) - 1)).to_list(), replaced], features=before.features)
    return before, after, replaced["trace_id"]


def _asked(backend: CountingBackend) -> list[str]:
    """The text of every message the engine was sent, one string per request."""
    return ["\n".join(m["content"] for m in r.messages) for r in backend.requests]


def _same_bytes(a: Dataset, b: Dataset) -> bool:
    return a.with_format("arrow")[:].equals(b.with_format("arrow")[:])


def test_annotate_asks_a_changed_trace_again(llm, before_after, tmp_path: Path) -> None:
    before, after, changed = before_after
    backend = CountingBackend(llm)
    kwargs = {"backend": backend, "sampling": {"temperature": 1.0, "max_tokens": 48, "seed": 1},
              "output_dir": tmp_path, "batch_size": 1, "show_progress": False}
    annotate(before, [Verbosity(max_chars=300)], **kwargs)
    backend.requests.clear()
    first = annotate(after, [Verbosity(max_chars=300)], **kwargs)
    head = after[-1]["reasoning"][:40]
    assert backend.requests and all(head in text for text in _asked(backend))  # only the changed trace
    backend.requests.clear()
    second = annotate(after, [Verbosity(max_chars=300)], **kwargs)
    assert backend.requests == [] and _same_bytes(first, second) and first["trace_id"][-1] == changed


def test_guide_asks_a_changed_rollout_again(llm, before_after, tmp_path: Path) -> None:
    before, after, changed = before_after
    backend = CountingBackend(llm)
    kwargs = {"backend": backend, "fraction": 1.0, "prompt": SHORT_PROMPT, "regex": BOUNDED_REGEX,
              "max_tokens": 64, "output_dir": tmp_path, "batch_size": 1, "show_progress": False}
    chosen = guide(before, **kwargs)["guidance.chosen"]
    backend.requests.clear()
    first = guide(after, **kwargs)
    assert first["guidance.chosen"] == chosen and chosen[-1]  # the changed rollout is complete: chosen
    assert [after[-1]["completion"][:200] in text for text in _asked(backend)] == [True]
    backend.requests.clear()
    second = guide(after, **kwargs)
    assert backend.requests == [] and _same_bytes(first, second) and first["trace_id"][-1] == changed


def test_refine_asks_a_changed_trace_again_at_every_stage(llm, before_after, tmp_path: Path) -> None:
    before, after, changed = before_after
    backend = CountingBackend(llm)
    kwargs = {"backend": backend, "sampling": {"temperature": 1.0, "max_tokens": 24, "seed": 0},
              "output_dir": tmp_path, "batch_size": 1, "show_progress": False}
    passes = [{"edit": {"times": 2}}]
    refine(before, passes, **kwargs)
    backend.requests.clear()
    first = refine(after, passes, **kwargs)
    asked = _asked(backend)
    assert len(asked) == 2 and solution_text(after[-1])[:200] in asked[0]  # stage 1, then its new child in stage 2
    assert first["trace_id"][-1] == f"{changed}-r1-r2"
    backend.requests.clear()
    second = refine(after, passes, **kwargs)
    assert backend.requests == [] and _same_bytes(first, second)
