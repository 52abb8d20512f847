"""ThinkTuning guidance (arXiv 2508.07616): a teacher's feedback spliced into student rollouts.

The pure parts of the recipe: the versioned teacher prompt and the tag-format gate on its reply
(`feedback`), the splice of reason and phrase after a student response with the teacher's
characters and tokens marked (`splice`), and the guided-fraction schedule with the per-problem
choice of rollouts to guide (`schedule`). The model part: `guide()` asks the teacher (the
`TeacherFeedback` pass) and splices its feedback in (`runner`); `export` registers the
`guided_messages` and `guided_mask` training formats. See docs/thinktuning.md.
"""

from __future__ import annotations

from .feedback import (
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
from .export import guided_mask_format, guided_messages_format
from .runner import DEFAULT_FRACTION, DEFAULT_MAX_TOKENS, TeacherFeedback, complete_mask, guide
from .schedule import choose_rollouts, guided_fraction
from .splice import END_TOKENS, SEPARATOR, Spliced, TeacherTokens, splice, strip_end_tokens, token_spans

__all__ = [
    "BOXED_INSTRUCTION",
    "DEFAULT_FRACTION",
    "DEFAULT_MAX_TOKENS",
    "END_TOKENS",
    "FEEDBACK_REGEX",
    "NO_FEEDBACK",
    "PROMPT_SHA256",
    "PROMPT_TEXT",
    "PROMPT_VERSION",
    "SEPARATOR",
    "Feedback",
    "Spliced",
    "TeacherFeedback",
    "TeacherTokens",
    "choose_rollouts",
    "complete_mask",
    "guide",
    "guided_fraction",
    "guided_mask_format",
    "guided_messages_format",
    "parse_feedback",
    "splice",
    "strip_end_tokens",
    "teacher_messages",
    "token_spans",
]
