"""Splits that keep a trace's parts apart, checked on every row of every shared file that holds traces.

For a chain of thought without markers the parser infers where the answer starts. Whatever it
infers, the answer part holds no self-correction ("Wait", "Hmm", "maybe I need", "Let me re-check"),
the split cuts no step (not after "we get:", a step's heading or inside a code block, not before
a sentence's continuation), and a text that ends on its boxed answer keeps it. The cases the issue
names from Minerva traces (not among the shared files) are built here from its description.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from natural_thoughts.parse import parse_trace

from tests.conftest import DATA
from tests.test_real_traces import ends_on_a_box


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


TRACE_FILES: dict[str, Callable[[dict], str]] = {
    "skythought_math500_sky-t1-27b.jsonl": lambda row: row["code"][0],
    "skythought_math500_qwen2.5-math-7b.jsonl": lambda row: row["code"][0],
    "skythought_olympiadbench_sky-t1-32b-short.jsonl": lambda row: row["code"][0],
    "skythought_olympiadbench_qwen2.5-14b-instruct.jsonl": lambda row: row["code"][0],
    "gsm8k_test.jsonl": lambda row: row["answer"],
    "process/mrben_math_science.jsonl": lambda row: "\n\n".join(row["Model_Solution_Steps"]),
    "process/mrben_coding.jsonl": lambda row: "\n\n".join(row["Model_Solution_Steps"]),
    "code/lcb_o1-mini-2024-09-12.jsonl": lambda row: row["output"],
    "code/reflexion_humaneval_mbpp_gpt4.jsonl": lambda row: row["solution"],
}
"""Every shared file that holds model-written solutions, and the text of one row's solution."""

DOUBT = re.compile(r"\b(?:wait|hmm+|maybe I need|let me re-?check|let me double-?check|let me verify)\b",
                   re.IGNORECASE)
"""Self-correction as the issue names it (independent of the parser's own list)."""
TITLE = re.compile(r"\s*(?:#{1,6}\s.*|(?:\d+[.)]\s*)?\*\*[^*\n]+\*\*\s*:?)\s*")


def split_faults(text: str) -> list[str]:
    """What is wrong with the inferred split of `text` (empty when it keeps the parts apart)."""
    p = parse_trace(text)
    if p.format != "chain" or not (p.reasoning and p.answer):
        return []
    body = text.strip()
    faults = [] if body.startswith(p.reasoning) and body.endswith(p.answer) else ["not one cut"]
    reasoning = p.reasoning.rstrip()
    faults += ["self-correction in the answer"] * bool(DOUBT.search(p.answer))
    faults += ["cut after a colon"] * reasoning.endswith(":")
    faults += ["cut inside a code block"] * (reasoning.count("```") % 2)
    faults += ["cut after a step's title"] * bool(TITLE.fullmatch(reasoning.rpartition("\n")[2]))
    faults += ["cut mid-sentence"] * p.answer[0].islower()
    return faults


@pytest.mark.parametrize("name", TRACE_FILES)
def test_every_inferred_split_keeps_the_parts_apart(name: str) -> None:
    texts = [TRACE_FILES[name](row) for row in _rows(name)]
    faults = {i: found for i, text in enumerate(texts) if (found := split_faults(text))}
    assert not faults, {i: (f, texts[i][-300:]) for i, f in list(faults.items())[:3]}


@pytest.mark.parametrize("name", TRACE_FILES)
def test_a_text_that_ends_on_its_box_keeps_that_answer(name: str) -> None:
    for i, row in enumerate(_rows(name)):
        text = TRACE_FILES[name](row)
        if ends_on_a_box(text):
            p = parse_trace(text)
            last_box = text[text.rfind("\\boxed{"):]
            assert p.final_answer is not None and p.final_answer in last_box and last_box in text, i


STEPS = "\n\n".join(f"Step {i}: the case {i} gives {3 * i}, as the table of the cases above shows for it."
                    for i in range(1, 9))
"""Enough working for a text to read as a chain of thought."""
ODE = r"x(t) = e^{-t}\left(\cos 2t + \frac{1}{2} \sin 2t\right) + \frac{1}{10} \cos 3t"


def test_final_answer_stated_on_the_lines_after_final_answer_is() -> None:
    """Minerva-style ending: a Final Answer header, then the answer as a display formula."""
    for display in (f"$$\n{ODE}\n$$", f"$${ODE}$$", f"\\[\n{ODE}\n\\]"):
        text = f"Okay, so I need to solve the ODE.\n\n{STEPS}\n\n**Final Answer**\n\nThe final answer is:\n\n{display}"
        p = parse_trace(text)
        assert p.answer.startswith("**Final Answer**") and p.final_answer == ODE, display
        assert "prose_answer" not in p.flags


@pytest.mark.parametrize("restated", ["1. $x = -2$\n\n2. $x = -6$\n\n3. $x = 4$\n\n4. $x = -4$",
                                      "The roots are:\n1. $x = -2$\n2. $x = -6$\n3. $x = 4$\n4. $x = -4$"])
def test_a_box_followed_by_a_list_restating_the_roots_keeps_the_box(restated: str) -> None:
    p = parse_trace(f"We need the sum of the roots.\n\n{STEPS}\n\nThus the sum is $\\boxed{{-8}}$.\n\n{restated}")
    assert p.final_answer == "-8" and p.answer.startswith("Thus the sum is") and p.answer.endswith(restated)


def test_the_answer_starts_after_the_last_doubt() -> None:
    """Sky-T1 without markers: an answer section, then 1.5k characters of second thoughts."""
    doubts = "\n\n".join(["Wait, maybe I need to check the second case again."]
                         + [f"Hmm, case {i} gives {3 * i}; let me re-check that it is consistent." for i in range(30)])
    text = (f"Okay, let me think about this.\n\n{STEPS}\n\n**Final Answer**\n\nThe answer is $\\boxed{{15}}$.\n\n"
            f"{doubts}\n\nSo the total is indeed 15.")
    p = parse_trace(text)
    assert len(doubts) > 1500 and p.answer == "So the total is indeed 15." and p.final_answer == "15"
    assert p.reasoning.endswith(doubts)


def test_a_chain_that_ends_in_doubt_has_no_answer_part() -> None:
    doubt = "Wait, maybe I need to recount the cases."
    p = parse_trace(f"Okay, let me think.\n\n{STEPS}\n\nSo the answer is 15.\n\n{doubt}")
    assert (p.answer, p.final_answer) == ("", None) and "no_final_answer" in p.flags


@pytest.mark.parametrize("lead, step", [
    ("Substituting $k=0$ into the equation for $t$, we find:", "\\[\nt = 2 + 2(0) = 2\n\\]"),
    ("7. **Conclusion:**", "The pairs are $(x, 1 + 2^x)$ for any integer $x$."),
    ("So the area is", "$$\nA = \\frac{1}{2} \\cdot 6 \\cdot 4 = 12\n$$"),
])
def test_a_short_solution_is_not_cut_mid_step(lead: str, step: str) -> None:
    closing = "Therefore the answer is $\\boxed{2}$."
    p = parse_trace(f"We solve it step by step.\n\n{STEPS}\n\n{lead}\n\n{step}\n\n{closing}")
    assert p.answer.startswith(lead) and p.reasoning.endswith(STEPS[-40:])


def test_code_and_its_output_stay_in_one_part() -> None:
    code = "```python\nimport math\n\nx = 3\n\nprint(math.gcd(x, 13))\n```\n```output\n1\n```"
    p = parse_trace(f"We compute the gcd.\n\n{STEPS}\n\nLet's confirm with Python.\n{code}\nThe gcd is $\\boxed{{1}}$.")
    assert p.final_answer == "1" and (p.answer.count("```") % 2, p.reasoning.count("```") % 2) == (0, 0)


def test_the_answer_part_keeps_its_box_when_no_earlier_start_is_clean() -> None:
    """MATH-500's own solution to its inverse-mod-23 problem (row 249): the box sits in a paragraph
    introduced by "here is another way:", and a parenthetical check follows it. Moving the start on
    past the box would read `14\\cdot 23 + 1.)` from the check as the answer; the box outranks the
    clean cut."""
    text = ("We could find the answer by trial and error. However, here is another way:\n\n"
            "We can easily see that $4\\cdot 6=24\\equiv 1\\pmod{23}$. Since $-6\\equiv 17\\pmod{23}$, "
            "the answer $t=\\boxed{17}$ satisfies the requirements of the problem.\n\n"
            "(We can even check that $17\\cdot 19 = 323 = 14\\cdot 23 + 1$.)")
    p = parse_trace(text)
    assert p.final_answer == "17" and "\\boxed{17}" in p.answer and "prose_answer" not in p.flags
