"""The parser on real evaluation outputs it was not shaped by: what the raw text holds decides.

Four SkyThought files (two teacher/weak pairs): chains of thought with and without markers, traces
cut off mid-sentence or in a repetition loop, final answers in boxes and in prose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from natural_thoughts import load_traces
from natural_thoughts.parse import parse_trace
from natural_thoughts.scores import add_reasoning_tokens

from tests.conftest import DATA

FILES = ["skythought_math500_sky-t1-27b.jsonl", "skythought_math500_qwen2.5-math-7b.jsonl",
         "skythought_olympiadbench_sky-t1-32b-short.jsonl", "skythought_olympiadbench_qwen2.5-14b-instruct.jsonl"]
MARKERS = ("<|begin_of_thought|>", "<|end_of_thought|>", "<think>", "</think>", "<|begin_of_solution|>")
CLOSING = ("<|end_of_thought|>", "</think>")
END_MARKERS = re.compile(r"(?:\s|<\|end_of_solution\|>|<\|end_of_thought\|>)*$")
AFTER_BOX = re.compile(r"^[\s$.\\\])}]*$")


def raw_texts(name: str) -> list[str]:
    return [json.loads(line)["code"][0] for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def stops_mid_text(text: str) -> bool:
    """No box, no closing marker, and the last character ends no sentence or formula."""
    return ("\\boxed" not in text and not any(m in text for m in CLOSING)
            and not re.search(r"[.!?)\]$}]\s*$", text.strip() or "."))


def ends_on_a_box(text: str) -> bool:
    """The text ends with a closed, non-empty `\\boxed{…}` followed only by closing punctuation."""
    body = END_MARKERS.sub("", text)
    start = body.rfind("\\boxed{")
    if start < 0:
        return False
    depth, i = 0, start + len("\\boxed")
    for i in range(i, len(body)):
        depth += {"{": 1, "}": -1}.get(body[i], 0)
        if depth == 0:
            break
    inside = body[start + len("\\boxed{"):i]
    return depth == 0 and bool(inside.strip()) and bool(AFTER_BOX.match(body[i + 1:]))


@pytest.mark.parametrize("name", FILES)
def test_cut_off_traces_are_flagged_and_complete_boxed_ones_are_not(name: str) -> None:
    texts = raw_texts(name)
    parsed = [parse_trace(t) for t in texts]
    cut = [i for i, t in enumerate(texts) if stops_mid_text(t)]
    complete = [i for i, t in enumerate(texts) if ends_on_a_box(t)]
    missed = [i for i in cut if "truncated" not in parsed[i].flags]
    wrong = [i for i in complete if "truncated" in parsed[i].flags]
    print(f"{name}: cut off {len(cut) - len(missed)}/{len(cut)} flagged; ending on a box {len(wrong)}/{len(complete)} flagged")
    assert complete, "every file has traces that end on their boxed answer"
    assert not wrong, [texts[i][-200:] for i in wrong[:3]]
    assert len(missed) <= max(1, len(cut) // 10), [texts[i][-200:] for i in missed[:3]]


def test_marker_less_chains_of_thought_are_reasoning_with_a_length() -> None:
    name = FILES[0]
    texts = raw_texts(name)
    ds = add_reasoning_tokens(load_traces(DATA / name, preset="skythought_eval"), approximate=True)
    chains = [i for i, t in enumerate(texts) if not any(m in t for m in MARKERS) and len(t) >= 1000
              and re.search(r"\b(Wait|Hmm|Let me)\b", t)]
    assert len(chains) >= len(texts) // 5  # Sky-T1 often reasons without markers: 2 in 5 of its traces
    for i in chains:
        row = ds[i]
        assert row["reasoning"] and row["score.reasoning_tokens"] > 0, i
        assert "split_inferred" in row["flags"], i
        assert texts[i].strip().startswith(row["reasoning"][:200]), i
        if "**Final Answer**" in texts[i][len(texts[i]) // 2:]:  # the closing section is the answer
            assert row["answer"].startswith("**Final Answer**"), i


@pytest.mark.parametrize("name", FILES)
def test_no_non_empty_completion_measures_zero_reasoning_tokens(name: str) -> None:
    ds = add_reasoning_tokens(load_traces(DATA / name, preset="skythought_eval"), approximate=True)
    for i, (text, n) in enumerate(zip(ds["completion"], ds["score.reasoning_tokens"])):
        assert n > 0 or not text.strip(), i


@pytest.mark.parametrize("name", FILES)
def test_markdown_headings_are_not_final_answers(name: str) -> None:
    """A `#### Heading` followed by more text is a section title, not GSM8K's closing answer line."""
    texts = [t for t in raw_texts(name) if "\\boxed" not in t and "answer" not in t.lower()]
    headings = [(t, m.group(1).strip()) for t in texts
                for m in re.finditer(r"^####[ \t]*(\S[^\n]*)\n\s*\S", t, re.MULTILINE)]
    for text, heading in headings:
        assert parse_trace(text).final_answer != heading.rstrip(".").strip("$"), text[-200:]


def test_prose_answers_are_extracted_and_labelled() -> None:
    texts = raw_texts(FILES[0])
    stated = re.compile(r"(?:Therefore|So|Thus|Hence), [^.\n]* is (\d+)\.\s*$")
    rows = [(t, m.group(1)) for t in texts if "\\boxed" not in t and "answer" not in t[-300:].lower()
            and (m := stated.search(t))]
    assert rows  # 13 of the 500 Sky-T1 traces state their answer in prose only
    for text, value in rows:
        p = parse_trace(text)
        assert p.final_answer == value and "prose_answer" in p.flags, text[-200:]
        assert "truncated" not in p.flags and value in p.answer


def test_prose_answer_shapes() -> None:
    cases = {"Therefore, the distance is 100 parsecs.": "100", "So she is 10 years old now.": "10",
             "So, the student with the greatest average speed is Evelyn.": "Evelyn",
             "Thus the area is \\(\\frac{3}{4}\\).": "\\frac{3}{4}"}
    for sentence, value in cases.items():
        p = parse_trace("Some working first.\n\n" + sentence, format="plain")
        assert (p.final_answer, "prose_answer" in p.flags) == (value, True), sentence
    for sentence in ("Therefore, the answer is the right one.", "So, it is grouped in 14 different ways.",
                     "Therefore, the value is 2", "So the next step is to compute ("):
        assert parse_trace("Working.\n\n" + sentence, format="plain").final_answer is None, sentence


def test_a_stated_budget_flags_traces_that_reach_it(tmp_path: Path) -> None:
    rows = [{"question": "q1", "completion": "Work.\n\nSo the answer is \\boxed{1}.", "answer_tokens": 100},
            {"question": "q2", "completion": "Work.\n\nSo the answer is \\boxed{2}.", "answer_tokens": 99}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_traces(path, columns={"problem": "question", "completion": "completion", "answer_tokens": "answer_tokens"},
                     max_tokens=100)
    assert ["truncated" in f for f in ds["flags"]] == [True, False]
    path.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "answer_tokens"}) for r in rows))
    with pytest.raises(ValueError, match="tokenizer"):
        load_traces(path, columns={"problem": "question", "completion": "completion"}, max_tokens=100)
