"""Tests for the trace parser: formats, final-answer extraction, flags, never raising, real data."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natural_thoughts.parse import FORMATS, SELF_CORRECTION, SKY_MARKERS, THINK_MARKERS, extract_final_answer
from natural_thoughts.parse import parse_trace, prose_answer
from natural_thoughts.parse.chain import _ANSWER_HEADER, _answer_headers, _cuts_a_step, _split_chain
from natural_thoughts.parse.final import CONCLUDING_PARAGRAPHS, _PARAGRAPH_BREAK, _boxes_from_last, _brace_pairs
from natural_thoughts.parse.final import _closing_brace, _paragraph_starts, _stated_answer
from natural_thoughts.parse.markers import _SKY_MARKER, _THINK_MARKER, _drop_markers, _without_partial_marker
from natural_thoughts.schema import FLAGS

from tests.conftest import DATA

SKY = DATA / "skythought_math500_sky-t1-27b.jsonl"
GSM8K = DATA / "gsm8k_test.jsonl"
BT, ET = "<|begin_of_thought|>", "<|end_of_thought|>"
BS, ES = "<|begin_of_solution|>", "<|end_of_solution|>"
MARKERS = ["<think>", "</think>", BT, ET, BS, ES]


# --- formats -------------------------------------------------------------------------------------


def test_think_full() -> None:
    p = parse_trace("<think>\nlet me see: 2+2\n</think>\n\nIt is $\\boxed{4}$.")
    assert (p.format, p.reasoning, p.answer) == ("think", "let me see: 2+2", "It is $\\boxed{4}$.")
    assert p.final_answer == "4" and p.flags == []


def test_think_closing_only_as_chat_templates_open_it() -> None:
    p = parse_trace("I reason here.\n</think>\nSo the answer: 7", format="auto")
    assert (p.format, p.reasoning, p.answer) == ("think", "I reason here.", "So the answer: 7")
    assert p.final_answer == "7" and p.flags == []


def test_think_unterminated_and_truncated() -> None:
    p = parse_trace("<think> so \\boxed{3} maybe, but", finish_reason="length")
    assert p.format == "think" and p.answer == "" and p.reasoning == "so \\boxed{3} maybe, but"
    assert p.final_answer is None  # a boxed value inside unfinished reasoning is no answer
    assert p.flags == ["unterminated_reasoning", "truncated", "no_final_answer"]


def test_forced_think_without_markers_is_reasoning_that_never_closed() -> None:
    p = parse_trace("thinking on and on", format="think")
    assert (p.format, p.reasoning, p.answer) == ("think", "thinking on and on", "")
    assert "unterminated_reasoning" in p.flags


def test_sky_full() -> None:
    text = f"{BT}\n\nthink hard\n\n{ET}\n\n{BS}\n\nso $\\boxed{{12}}$\n\n{ES}\n"
    p = parse_trace(text)
    assert (p.format, p.reasoning, p.answer) == ("sky", "think hard", "so $\\boxed{12}$")
    assert p.final_answer == "12" and p.flags == []


def test_sky_missing_opening_and_closing_markers() -> None:
    p = parse_trace(f"think hard {ET} {BS} the answer is \\boxed{{1}}")
    assert (p.format, p.reasoning, p.answer) == ("sky", "think hard", "the answer is \\boxed{1}")
    assert p.final_answer == "1" and p.flags == []


def test_sky_solution_without_end_of_thought_ends_the_reasoning() -> None:
    p = parse_trace(f"{BT} thoughts {BS} Final Answer: 9 {ES}")
    assert (p.reasoning, p.answer) == ("thoughts", "Final Answer: 9")
    assert p.final_answer == "9" and p.flags == []


def test_sky_unterminated() -> None:
    """Reasoning that never closed, with no answer and no finish reason (an imported trace), was
    cut off; with a finish reason that says the model stopped, it is only unterminated."""
    text = f"{BT} thoughts that never end \\boxed{{2}}"
    p = parse_trace(text, format="sky")
    assert p.format == "sky" and p.answer == "" and p.final_answer is None
    assert p.flags == ["unterminated_reasoning", "truncated", "no_final_answer"]
    assert parse_trace(text, format="sky", finish_reason="stop").flags == ["unterminated_reasoning", "no_final_answer"]


def test_forced_sky_without_markers_falls_back_to_plain() -> None:
    p = parse_trace("Step 1 ... Answer: 5", format="sky")
    assert (p.format, p.reasoning, p.answer) == ("plain", "", "Step 1 ... Answer: 5")
    assert p.final_answer == "5"


def test_plain() -> None:
    p = parse_trace("  We compute 3*4 = 12.\n#### 12\n")
    assert (p.format, p.reasoning, p.answer) == ("plain", "", "We compute 3*4 = 12.\n#### 12")
    assert p.final_answer == "12" and p.flags == []


def test_markers_joined_by_removal_are_removed_too() -> None:
    p = parse_trace("<thi<think>nk>why</think>ok")
    assert (p.reasoning, p.answer) == ("why", "ok")


def test_forced_plain_keeps_markers_in_the_answer() -> None:
    p = parse_trace("<think>a</think> b", format="plain")
    assert (p.reasoning, p.answer) == ("", "<think>a</think> b")


def test_separate_reasoning_field() -> None:
    p = parse_trace(" The answer is (B). ", reasoning=" hmm ", format="think")
    assert (p.format, p.reasoning, p.answer) == ("separate", "hmm", "The answer is (B).")
    assert p.final_answer == "B" and p.flags == []


def test_separate_reasoning_without_content_is_unterminated() -> None:
    p = parse_trace(None, reasoning="hmm, still thinking", finish_reason="length")
    assert p.flags == ["unterminated_reasoning", "truncated", "no_final_answer"]
    assert parse_trace("", format="separate").flags == ["no_final_answer", "empty"]


@pytest.mark.parametrize("text", [None, "", "  \n\t "])
def test_empty(text: str | None) -> None:
    for fmt in FORMATS:
        p = parse_trace(text, format=fmt)
        assert p.flags == ["no_final_answer", "empty"], fmt
        assert (p.reasoning, p.answer, p.final_answer) == ("", "", None)


def test_unknown_format_names_valid_ones() -> None:
    with pytest.raises(ValueError, match="think.*sky.*plain.*separate"):
        parse_trace("x", format="r1")


# --- final answer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{a{b{c}}d} then \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("first \\boxed{1} then \\fbox{2}", "2"),
        ("it is \\boxed 5$.", "5"),
        ("it is \\boxed 5.", "5"),
        ("\\boxed{7} and a cut-off \\boxed{\\frac{1}{", "7"),
        ("\\boxed{7} then \\boxed{}", None),
        ("\\boxedsymbol only", None),
        ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("Answer: 42\nAnswer: 43", "43"),
        ("**Answer:** $x=2$", "x=2"),
        ("**Answer**: 11", "11"),
        ("Answer: C", "C"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 1,000", "1,000"),
        ("Half of 36 is 18.\n#### 18\n\n", "18"),
        ("#### Step 3: Solve for $x$\nAssume $x = 0$: then", None),  # a markdown heading, more text after it
        ("Working.\n#### Conclusion:", None),
        ("x\n#### Step 4: Compute the sum\n", None),  # a cut-off text that ends on a heading
        ("x\n#### Final Answer", None),
        ("x\n#### 2. Compute the sum", None),
        ("So $x = \\frac{1}{2}$.\n#### \\frac{1}{2}", "\\frac{1}{2}"),
        ("It costs $18.\n#### $18", "18"),
        ("Therefore the answer is (C), clearly.", "C"),
        ("The final answer is (D).", "D"),
        ("The answer is a prime, so the Answer is: b", None),
        ("Final answer is 3, Answer: 4, \\boxed{5}, #### 6", "5"),
        ("Final answer is 3. Answer: 4", "3"),
        ("no answer stated here", None),
        ("", None),
    ],
)
def test_extract_final_answer(text: str, expected: str | None) -> None:
    assert extract_final_answer(text) == expected


def test_deep_nesting_and_long_unclosed_text_is_fast() -> None:
    deep = "\\boxed{" + "{" * 2000 + "x" + "}" * 2000 + "}"
    assert extract_final_answer(deep) == "{" * 2000 + "x" + "}" * 2000
    assert extract_final_answer("\\boxed{" * 20000) is None
    assert extract_final_answer("answer" + " " * 20000 + "is") is None
    assert extract_final_answer("#" * 200_000) is None  # a regex anchored at the end retried per "#"
    assert extract_final_answer("#### " * 40_000) is None


def test_an_unclosed_last_box_gives_way_to_an_earlier_closed_one() -> None:
    assert extract_final_answer("\\boxed{1}, then \\boxed{\\frac{2}{3}} and \\boxed{4") == "\\frac{2}{3}"
    assert extract_final_answer("\\boxed{\\{1\\}} or \\boxed{\\\\{2}") == "\\{1\\}"


brace_texts = st.lists(st.sampled_from(["{", "}", "\\", "\\{", "\\}", "\\\\", "x", " ", "\\boxed{"]), max_size=40)


@settings(max_examples=500, deadline=None)
@given(parts=brace_texts)
def test_closing_brace_from_a_group_equals_the_one_pass_pairing(parts: list[str]) -> None:
    text = "".join(parts)
    found = {i: _closing_brace(text, i) for i, char in enumerate(text) if char == "{"}
    assert {i: close for i, close in found.items() if close is not None} == _brace_pairs(text)


header_texts = st.lists(st.sampled_from(["\n", "\n\n", " ", "\t", "#", "## ", "**", "Final Answer", "final answer:",
                                         "answer:", "ANSWER :", "anſwer:", "answers", "x", "é"]), max_size=30)


@settings(max_examples=500, deadline=None)
@given(parts=header_texts)
def test_answer_headers_from_the_middle_equal_a_full_scan(parts: list[str]) -> None:
    text = "".join(parts)
    half = len(text) // 2
    assert _answer_headers(text, half) == [m.start() for m in _ANSWER_HEADER.finditer(text) if m.start() >= half]


# --- fast paths equal the straightforward readings -----------------------------------------------

paragraph_texts = st.lists(st.sampled_from(["\n", "\n\n\n", " ", "\t", " \t" * 150, "\n \n" * 40, "x", "y" * 300,
                                            "\u3000", "\\boxed{1}"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(parts=paragraph_texts, count=st.integers(1, 3))
def test_paragraph_starts_from_a_window_equal_a_full_scan(parts: list[str], count: int) -> None:
    text = "".join(parts)  # long runs of breaks, so that windows open inside them
    starts = [0] + [m.end() for m in _PARAGRAPH_BREAK.finditer(text)]
    solid = [i for i, char in enumerate(text) if char not in " \t\n"]  # an end there cuts no break
    for end in [len(text), *solid[:: max(1, len(solid) // 200)]]:
        assert _paragraph_starts(text, end, count) == [i for i in starts if i <= end][-count:]


box_texts = st.lists(st.sampled_from(["\\", "\\\\", "boxed", "fbox", "\\boxed", "\\fbox{", "b", "x"]), max_size=30)


@settings(max_examples=500, deadline=None)
@given(parts=box_texts, start=st.integers(0, 40))
def test_boxes_from_last_equal_a_regex_scan(parts: list[str], start: int) -> None:
    text = "".join(parts)
    found = [(m.start(), m.end()) for m in re.finditer(r"\\(?:boxed|fbox)", text) if m.start() >= start]
    assert list(_boxes_from_last(text, start)) == found[::-1]


marker_texts = st.lists(
    st.sampled_from([*MARKERS, "<th", "ink>", "<|begin_of_", "thought|>", "<|end_of_sol", "<", "x", " "]), max_size=12)


@settings(max_examples=500, deadline=None)
@given(parts=marker_texts)
def test_marker_removal_and_cut_markers_equal_the_plain_loops(parts: list[str]) -> None:
    text = "".join(parts)
    for markers, pattern in ((THINK_MARKERS, _THINK_MARKER), (SKY_MARKERS, _SKY_MARKER)):
        expected = text
        while any(marker in expected for marker in markers):
            for marker in markers:
                expected = expected.replace(marker, "")
        assert _drop_markers(text, pattern) == expected.strip()
    tail = text.rstrip()
    cut = [(tail[:-size], True) for m in MARKERS for size in range(len(m) - 1, 1, -1) if tail.endswith(m[:size])]
    assert _without_partial_marker(text) == (cut or [(text, False)])[0]


chain_texts = st.lists(st.sampled_from(["\n", "\n\n", "\n\n\n", "\n \n", " ", "\u3000", "x", "Wait.", "So x = 5.",
                                        "It is 7.", "\\boxed{2}", "\\boxed{", "}", "\\fbox{}", "Answer: 3",
                                        "**Final Answer**", "(", "we get:", "```", "```output", "1. **Step**",
                                        "hmm", "Let me verify", "é", "WAIT"]), max_size=30)


def _settled_reference(body: str, found: int) -> int | None:
    """`_settled_start` read the plain way: every start of the text found and judged."""
    fences = [m.start() for m in re.finditer("```", body)]
    after_code = [len(body) - len(body[body.find("\n", f):].lstrip()) if "\n" in body[f:] else len(body)
                  for f in fences[1::2]]
    starts = sorted({0, found, *(m.end() for m in _PARAGRAPH_BREAK.finditer(body)), *after_code} - {len(body)})
    clean = [i for i, at in enumerate(starts) if i and not _cuts_a_step(body, starts[i - 1], at, fences)]
    here = starts.index(found)
    back, forward = [i for i in clean if i <= here][-1:], [i for i in clean if i > here][:1]
    boxes = [m.start() for m in re.finditer(r"\\(?:boxed|fbox)", body) if m.start() >= found]
    if not back and boxes and (not forward or starts[forward[0]] > boxes[-1]):
        back = [here]  # moving on would leave the last box behind
    chosen = (back or forward or [None])[0]
    doubts = [] if chosen is None else [m.start() for m in SELF_CORRECTION.finditer(body, starts[chosen])]
    if doubts:
        last_doubt = max(i for i, at in enumerate(starts) if at <= doubts[-1])
        chosen = next((i for i in clean if i > last_doubt), None)
    return None if chosen is None else starts[chosen]


def _split_chain_reference(text: str) -> tuple[str, str]:
    """`_split_chain` read the plain way: every paragraph start found, every closing paragraph read,
    every start judged."""
    body = text.strip()
    half = len(body) // 2
    headers = [m.start() for m in _ANSWER_HEADER.finditer(body) if m.start() >= half]
    starts = [0] + [m.end() for m in _PARAGRAPH_BREAK.finditer(body)]
    closing = starts[-CONCLUDING_PARAGRAPHS:]
    boxes = [m.start() for m in re.finditer(r"\\(?:boxed|fbox)", body) if m.start() >= half]
    found = (headers[-1:] or [i for i in closing if extract_final_answer(body[i:]) is not None][:1]
             or [max(i for i in starts if i <= b) for b in boxes[-1:]]
             or [i for i in closing if prose_answer(body[i:]) is not None][:1])
    if found and found[0]:
        found = [i for i in [_settled_reference(body, found[0])] if i is not None]
    if not found or not body[: found[0]].strip():
        return body, ""
    return body[: found[0]].strip(), body[found[0] :].strip()


@settings(max_examples=1000, deadline=None)
@given(parts=chain_texts)
def test_split_chain_equals_the_plain_reading(parts: list[str]) -> None:
    text = "".join(parts)
    (reasoning, answer, unterminated), stated = _split_chain(text)
    assert (reasoning, answer) == _split_chain_reference(text) and not unterminated
    assert stated is None or stated == _stated_answer(answer)


# --- never raises --------------------------------------------------------------------------------

pieces = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [*MARKERS, "<th", "ink>", "\\boxed{", "\\boxed", "\\fbox{", "}", "{", "\\", "Answer:"]
        + ["**Answer:**", "final answer is ", "#### ", "answer is (", "$", ". ", "\n"]
    ),
)


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(pieces, max_size=25),
    fmt=st.sampled_from(FORMATS),
    finish=st.sampled_from([None, "stop", "length"]),
    reasoning=st.one_of(st.none(), st.text(max_size=20)),
)
def test_never_raises_and_keeps_its_promises(
    parts: list[str], fmt: str, finish: str | None, reasoning: str | None
) -> None:
    text = "".join(parts)
    p = parse_trace(text, format=fmt, finish_reason=finish, reasoning=reasoning)
    assert p.format in set(FORMATS) - {"auto"}
    assert p.flags == [f for f in FLAGS if f in p.flags] and len(set(p.flags)) == len(p.flags)
    if finish is not None:  # a known finish reason decides; only unknown ones are inferred
        assert ("truncated" in p.flags) == (finish == "length")
    assert ("no_final_answer" in p.flags) == (p.final_answer is None)
    assert p.reasoning == p.reasoning.strip() and p.answer == p.answer.strip()
    own = {"think": MARKERS[:2], "sky": MARKERS[2:]}.get(p.format, [])
    assert not any(m in p.reasoning + p.answer for m in own)
    if p.final_answer is not None:
        assert p.final_answer and p.answer


# --- real data -----------------------------------------------------------------------------------


def _norm(answer: str) -> str:
    """A light normalization to compare with the ground truth: spaces, $, \\left, \\text, dfrac."""
    answer = re.sub(r"\\left|\\right|\\[ ,!;]|\\text\{([^{}]*)\}", r"\1", answer)
    return re.sub(r"[\s$]", "", answer.replace("\\dfrac", "\\frac"))


def test_sky_t1_file() -> None:
    rows = [json.loads(line) for line in SKY.read_text(encoding="utf-8").splitlines()]
    matched = extracted = 0
    for row in rows:
        text = row["code"][0]
        p = parse_trace(text)
        where = f"row idx={row['idx']}"
        assert p.reasoning in text and p.answer in text, where
        if not any(m in text for m in MARKERS):  # Sky-T1 chains of thought without markers
            assert p.format == "chain" and "split_inferred" in p.flags and p.reasoning, where
            assert text.strip().startswith(p.reasoning) and text.strip().endswith(p.answer), where
        else:
            assert p.format == "sky", where
        closed = ET in text or BS in text
        assert ("unterminated_reasoning" in p.flags) == (BT in text and not closed), where
        if BT in text and not closed:
            assert p.answer == "" and p.final_answer is None, where
        if closed:
            tail = text.split(BS, 1)[1] if BS in text else text.split(ET, 1)[1]
            expected = tail.split(ES, 1)[0].replace(ET, "").strip()
            expected = re.sub(r"<\|[a-z_]*\|?$", "", expected).strip()  # a marker cut off at the end
            assert p.answer == expected, where
        if re.search(r"\\boxed\{[^{}]", p.answer):
            assert p.final_answer is not None, where
        if p.final_answer is not None:
            assert p.final_answer in p.answer, where
        if row["score"][0] and p.final_answer is not None:
            extracted += 1
            matched += _norm(p.final_answer) == _norm(row["gt"])
    assert extracted > len(rows) // 5
    assert matched / extracted > 0.8


def test_gsm8k_reference_answers() -> None:
    for line in GSM8K.read_text(encoding="utf-8").splitlines():
        solution = json.loads(line)["answer"]
        p = parse_trace(solution)
        assert p.format == "plain" and p.flags == []
        assert p.final_answer == solution.rsplit("####", 1)[1].strip()


def test_prompt_that_opened_the_reasoning_makes_auto_read_think() -> None:
    from natural_thoughts.parse import format_for_prompt

    assert format_for_prompt("auto", "<|im_start|>assistant\n<think>\n") == "think"
    assert format_for_prompt("auto", "<|im_start|>assistant\n") == "auto"
    assert format_for_prompt("plain", "...<think>\n") == "plain"
    cut = parse_trace("step one, step two", format=format_for_prompt("auto", "<think>\n"), finish_reason="length")
    assert cut.reasoning == "step one, step two" and cut.answer == ""
    assert {"unterminated_reasoning", "truncated"} <= set(cut.flags)


def test_a_fenced_program_is_an_answer_not_a_chain() -> None:
    """LiveCodeBench's o1-mini outputs: one fenced program whose blank lines once read as paragraphs,
    so the program went to `reasoning` and the answer part was empty."""
    program = "```python\nimport sys\n\n\ndef main():\n    data = sys.stdin.read().split()\n\n" + \
        "    # so first we parse, then we check, wait: then print\n" * 12 + "\n\nmain()\n```"
    parsed = parse_trace(program)
    assert (parsed.format, parsed.reasoning, parsed.answer) == ("plain", "", program)
    prose = "\n\n".join(["Wait, so first I read the input and then I check every pair of cards in turn."] * 8)
    assert parse_trace(prose + "\n\n" + program).format == "chain"
