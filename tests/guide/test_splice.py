"""The splice: guided text, the teacher's character span, end-token removal, and the teacher's tokens."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from natural_thoughts.guide import (
    END_TOKENS,
    NO_FEEDBACK,
    Feedback,
    TeacherTokens,
    splice,
    strip_end_tokens,
    token_spans,
)

FEEDBACK = Feedback(opinion="incorrect", reason="Wait... I added instead of multiplying.",
                    phrase="So 6 x 7 = 42. The final answer is \\boxed{42}", valid=True)
STUDENT = "Let me add: 6 + 7 = 13.\nThe answer is \\boxed{13}."
TEACHER = "\n\nWait... I added instead of multiplying.\n\nSo 6 x 7 = 42. The final answer is \\boxed{42}"


@pytest.mark.parametrize("end", ["", *END_TOKENS])
def test_splice_appends_reason_and_phrase_after_the_student(end: str) -> None:
    out = splice(STUDENT + end, FEEDBACK)
    assert out.text == STUDENT + TEACHER
    assert out.text[out.start : out.end] == out.teacher == TEACHER
    assert out.student == out.text[: out.start] == STUDENT
    assert out.end == len(out.text)
    assert "incorrect" not in out.text  # the opinion is dropped


def test_only_end_tokens_at_the_very_end_are_removed() -> None:
    assert strip_end_tokens("a<|im_end|>b") == "a<|im_end|>b"
    assert strip_end_tokens("a<|im_end|><|endoftext|>") == "a"
    assert strip_end_tokens("<|eot_id|>") == ""
    assert strip_end_tokens("a\n") == "a\n"
    assert splice("x [END]", FEEDBACK, end_tokens=("[END]",)).student == "x "


def test_no_feedback_is_not_spliced() -> None:
    with pytest.raises(ValueError, match="no feedback"):
        splice(STUDENT, NO_FEEDBACK)


def test_teacher_tokens_decode_to_the_teacher_part(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    out = splice(STUDENT + tok.eos_token, FEEDBACK)
    tokens = token_spans(tok, out.text, (out.start, out.end))
    assert len(tokens.mask) == len(tokens.input_ids) and set(tokens.mask) == {0, 1}
    assert tokens.mask == [0] * tokens.start + [1] * (tokens.end - tokens.start)  # a suffix, contiguous
    assert tok.decode(tokens.input_ids[tokens.start : tokens.end]) == out.teacher
    assert tok.decode(tokens.input_ids[: tokens.start]) == out.student


def test_teacher_tokens_inside_a_chat_template(tiny_model_dir: Path) -> None:
    """Marking the completion inside prompt + completion: shift the span by the prefix length."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prefix = tok.apply_chat_template([{"role": "user", "content": "6 x 7?"}], tokenize=False,
                                     add_generation_prompt=True)
    out = splice(STUDENT, FEEDBACK)
    tokens = token_spans(tok, prefix + out.text + tok.eos_token, (len(prefix) + out.start, len(prefix) + out.end))
    assert tok.decode(tokens.input_ids[tokens.start : tokens.end]) == out.teacher
    assert tokens.mask[-1] == 0  # the end token after the teacher part is not the teacher's


def test_token_spans_needs_a_fast_tokenizer_and_a_span_in_the_text(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    with pytest.raises(TypeError, match="fast"):
        token_spans(SimpleNamespace(is_fast=False), "abc", (0, 1))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="within"):
        token_spans(tok, "abc", (2, 5))
    empty = token_spans(tok, "abc", (3, 3))
    assert empty.start == empty.end and not any(empty.mask)
    assert token_spans(tok, "", (0, 0)) == TeacherTokens(input_ids=[], mask=[], start=0, end=0)
