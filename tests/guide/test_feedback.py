"""The teacher reply gate: hand-written replies that match the tag format and that do not, the regex
agreeing with the parser (and with xgrammar, which vLLM uses for `regex=` structured outputs), and the
rendered teacher prompt."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest
from pydantic import ValidationError

from natural_thoughts.guide import (
    BOXED_INSTRUCTION,
    FEEDBACK_REGEX,
    NO_FEEDBACK,
    PROMPT_SHA256,
    PROMPT_TEXT,
    PROMPT_VERSION,
    Feedback,
    parse_feedback,
    teacher_messages,
)

VALID = {
    "plain": ("<opinion>correct</opinion>\n<reason>Wait, 2 + 3 is 5.</reason>\n<phrase>So \\boxed{5}</phrase>",
              "correct", "Wait, 2 + 3 is 5.", "So \\boxed{5}"),
    "spaced": ("\n<opinion> incorrect </opinion>\n\n<reason>\n  Hmm... I dropped a sign.\n</reason>\n"
               "<phrase>\nLet me redo it: \\boxed{-4}\n</phrase>\n",
               "incorrect", "Hmm... I dropped a sign.", "Let me redo it: \\boxed{-4}"),
    "no gaps": ("<opinion>correct</opinion><reason>Wait.</reason><phrase>Done: \\boxed{1}</phrase>",
                "correct", "Wait.", "Done: \\boxed{1}"),
    "angle brackets": ("<opinion>incorrect</opinion><reason>Wait, x < 3 and </b> and </reas are text.</reason>"
                       "<phrase>So \\boxed{x<3}, not </phr.</phrase>",
                       "incorrect", "Wait, x < 3 and </b> and </reas are text.", "So \\boxed{x<3}, not </phr."),
    "multi-line": ("<opinion>correct</opinion>\n<reason>Hmm...\n\nFirst 3 x 4 = 12.\nThen 12 + 1 = 13.</reason>\n"
                   "<phrase>So:\n\n\\boxed{13}</phrase>",
                   "correct", "Hmm...\n\nFirst 3 x 4 = 12.\nThen 12 + 1 = 13.", "So:\n\n\\boxed{13}"),
}

INVALID = {
    "empty": "",
    "prose": "The response is correct. The answer is 5.",
    "missing opinion": "<reason>Wait.</reason><phrase>\\boxed{5}</phrase>",
    "missing reason": "<opinion>correct</opinion><phrase>\\boxed{5}</phrase>",
    "missing phrase": "<opinion>correct</opinion><reason>Wait.</reason>",
    "unclosed phrase": "<opinion>correct</opinion><reason>Wait.</reason><phrase>\\boxed{5}",
    "text before": "Sure! <opinion>correct</opinion><reason>Wait.</reason><phrase>\\boxed{5}</phrase>",
    "text after": "<opinion>correct</opinion><reason>Wait.</reason><phrase>\\boxed{5}</phrase> Hope this helps.",
    "text between": "<opinion>correct</opinion> so <reason>Wait.</reason><phrase>\\boxed{5}</phrase>",
    "bad opinion": "<opinion>partially correct</opinion><reason>Wait.</reason><phrase>\\boxed{5}</phrase>",
    "capitalised opinion": "<opinion>Correct</opinion><reason>Wait.</reason><phrase>\\boxed{5}</phrase>",
    "empty opinion": "<opinion></opinion><reason>Wait.</reason><phrase>\\boxed{5}</phrase>",
    "empty phrase": "<opinion>correct</opinion><reason>Wait.</reason><phrase></phrase>",
    "blank reason": "<opinion>correct</opinion><reason> \n </reason><phrase>\\boxed{5}</phrase>",
    "out of order": "<opinion>correct</opinion><phrase>\\boxed{5}</phrase><reason>Wait.</reason>",
    "opinion last": "<reason>Wait.</reason><phrase>\\boxed{5}</phrase><opinion>correct</opinion>",
    "reason twice": "<opinion>correct</opinion><reason>Wait.</reason><reason>Hmm.</reason><phrase>\\boxed{5}</phrase>",
    "closing tag inside": "<opinion>correct</opinion><reason>Wait.</reason> more</reason><phrase>\\boxed{5}</phrase>",
    "phrase twice": "<opinion>correct</opinion><reason>Wait.</reason><phrase>a</phrase><phrase>b</phrase>",
    "upper-case tags": "<OPINION>correct</OPINION><REASON>Wait.</REASON><PHRASE>\\boxed{5}</PHRASE>",
}


@pytest.mark.parametrize("name", VALID)
def test_valid_replies_are_read(name: str) -> None:
    text, opinion, reason, phrase = VALID[name]
    assert parse_feedback(text) == Feedback(opinion=opinion, reason=reason, phrase=phrase, valid=True)


@pytest.mark.parametrize("name", INVALID)
def test_anything_else_is_no_feedback(name: str) -> None:
    assert parse_feedback(INVALID[name]) == NO_FEEDBACK
    assert not parse_feedback(INVALID[name]).valid


def test_none_is_no_feedback() -> None:
    assert parse_feedback(None) == NO_FEEDBACK


def test_regex_accepts_exactly_what_the_parser_accepts() -> None:
    samples = [v[0] for v in VALID.values()] + list(INVALID.values())
    for text in samples:
        assert (re.fullmatch(FEEDBACK_REGEX, text) is not None) == parse_feedback(text).valid, text


def test_xgrammar_decodes_the_same_language() -> None:
    """vLLM compiles `regex=` with xgrammar: the regex must compile there and accept the same replies."""
    xgr = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string

    grammar = xgr.Grammar.from_regex(FEEDBACK_REGEX)
    for text in [v[0] for v in VALID.values()] + list(INVALID.values()):
        assert _is_grammar_accept_string(grammar, text) == parse_feedback(text).valid, text


def test_a_valid_feedback_must_be_complete() -> None:
    with pytest.raises(ValidationError):
        Feedback(opinion="correct", reason="  ", phrase="\\boxed{5}", valid=True)
    with pytest.raises(ValidationError):
        Feedback(opinion="maybe", reason="Wait.", phrase="\\boxed{5}", valid=True)


def test_prompt_is_versioned() -> None:
    packaged = resources.files("natural_thoughts.guide").joinpath("prompts", f"{PROMPT_VERSION}.jinja")
    assert packaged.read_text(encoding="utf-8") == PROMPT_TEXT
    assert PROMPT_SHA256 == hashlib.sha256(PROMPT_TEXT.encode("utf-8")).hexdigest()


def test_teacher_messages_system_four_shots_then_the_student() -> None:
    messages = teacher_messages("What is 2 + 3?", "2 + 3 = 5, so \\boxed{5}<|eot_id|>")
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 4 + ["user"]
    assert all(m["content"] == m["content"].strip() and m["content"] for m in messages)
    assert all(tag in messages[0]["content"] for tag in ("<opinion>", "<reason>", "<phrase>"))
    last = messages[-1]["content"]
    assert last == f"Question:\nWhat is 2 + 3? {BOXED_INSTRUCTION}\n\nResponse:\n2 + 3 = 5, so \\boxed{{5}}"


def test_few_shot_replies_pass_the_gate_in_four_styles() -> None:
    messages = teacher_messages("q", "r")
    shots = [parse_feedback(m["content"]) for m in messages if m["role"] == "assistant"]
    assert all(f.valid for f in shots)
    assert {f.opinion for f in shots} == {"correct", "incorrect"}
    assert all(f.reason.startswith(("Wait", "Hmm")) for f in shots)
    assert all("\\boxed{" in f.phrase for f in shots)
    for m in messages[1:-1:2]:
        assert m["content"].startswith("Question:\n") and "\n\nResponse:\n" in m["content"]


def test_student_text_is_shown_literally() -> None:
    """Values are not templates: jinja syntax in a question or response stays as written."""
    last = teacher_messages("Is {{ 7 * 7 }} 49?", "{% raw %}yes{% endraw %}", instruction="")[-1]["content"]
    assert last == "Question:\nIs {{ 7 * 7 }} 49?\n\nResponse:\n{% raw %}yes{% endraw %}"


def test_another_prompt_needs_role_sections() -> None:
    with pytest.raises(ValueError, match="role sections"):
        teacher_messages("q", "r", prompt="Question: {{ question }}")
