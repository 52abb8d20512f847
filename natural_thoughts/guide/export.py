"""Export formats for guided traces (registered into `export.formats.FORMATS` on import).

`guided_messages`: TRL conversational `messages` whose assistant turn, on a row with valid teacher
feedback, is the exported reply followed by the teacher's part ("\\n\\n" reason "\\n\\n" phrase);
other rows are exported as `messages` exports them. `guided_mask`: the same turns pre-tokenized
for TRL's `SFTTrainer`: `input_ids`, `completion_mask` (1 = in the loss) and `teacher_mask`
(1 = a token the teacher wrote), with the `prompt` / `completion` messages beside them, which
makes TRL apply `completion_mask` (`completion_only_loss` defaults to on for prompt/completion rows).

What is trained: on a guided row, the teacher's tokens and the closing end-of-turn tokens, with
the student's rollout as context (it may be the wrong attempt the teacher corrects); on an
unguided row, the whole assistant turn, as SFT does. `teacher_mask` lets a custom loss weight the
teacher's tokens instead. The tokens are the chat template's of each row's `model` (the student,
which ThinkTuning trains).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..export.formats import FORMATS, Turns
from ..schema import GUIDANCE_PREFIX, GUIDED_COMPLETION
from .splice import token_spans

Span = tuple[int, int] | None


def guided_replies(t: Turns) -> tuple[list[str], list[Span]]:
    """Each row's assistant text, and the teacher's `[start, end)` in it (None on unguided rows)."""
    needed = (GUIDED_COMPLETION, f"{GUIDANCE_PREFIX}char_start", f"{GUIDANCE_PREFIX}char_end")
    missing = [c for c in needed if c not in t.batch]
    if missing:
        raise KeyError(f"the guided export formats need the guidance columns {missing}; run guide() (or a "
                       "`guide:` stage) first")
    replies, spans = [], []
    for reply, text, start, end in zip(t.replies, *(t.batch[c] for c in needed)):
        part = text[start:end] if text is not None else None
        replies.append(reply if part is None else reply + part)
        spans.append(None if part is None else (len(reply), len(reply) + len(part)))
    return replies, spans


@FORMATS.register(name="guided_messages")
def guided_messages_format(t: Turns) -> dict[str, list[Any]]:
    """TRL conversational `messages`, the teacher's part appended where the feedback is valid."""
    system, users, _ = t.messages()
    replies, spans = guided_replies(t)
    return {**t.kept, "messages": [[*system, u, {"role": "assistant", "content": r}] for u, r in zip(users, replies)],
            "guided": [s is not None for s in spans]}


@FORMATS.register(name="guided_mask")
def guided_mask_format(t: Turns) -> dict[str, list[Any]]:
    """Pre-tokenized rows for TRL: `input_ids`, `completion_mask`, `teacher_mask`, and the turns."""
    if t.tokenizer is None and "model" not in t.batch:
        raise KeyError("guided_mask tokenizes with the export's tokenizer, else each row's `model` (the student's "
                       "tokenizer); give export.tokenizer: the traces have no `model` column")
    given = tokenizer_of(t.tokenizer) if isinstance(t.tokenizer, str) else t.tokenizer
    system, users, _ = t.messages()
    replies, spans = guided_replies(t)
    out: dict[str, list[Any]] = {**t.kept, "guided": [s is not None for s in spans], "prompt": [], "completion": [],
                                 "input_ids": [], "completion_mask": [], "teacher_mask": []}
    for model, user, reply, span in zip(t.batch.get("model") or [None] * len(users), users, replies, spans):
        prompt, completion = [*system, user], [{"role": "assistant", "content": reply}]
        out["prompt"].append(prompt)
        out["completion"].append(completion)
        for name, values in mask_row(given or tokenizer_of(model), prompt + completion, span).items():
            out[name].append(values)
    return out


def mask_row(tokenizer: Any, messages: list[dict[str, str]], teacher: Span) -> dict[str, list[int]]:
    """`messages` (ending with the assistant turn) through the chat template: its token ids, the
    loss mask (the teacher's span on to the end when there is one, else the assistant turn on to the
    end) and the teacher mask, by the tokenizer's offsets."""
    reply = messages[-1]["content"]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    at = text.rfind(reply)
    if at < 0:
        raise ValueError(f"the chat template of {tokenizer.name_or_path!r} rewrites the assistant turn, so the "
                         "teacher's tokens cannot be located in it; export guided_messages instead")
    start = at if teacher is None else at + teacher[0]
    trained = token_spans(tokenizer, text, (start, len(text)))
    marked = token_spans(tokenizer, text, (at + teacher[0], at + teacher[1])) if teacher else None
    return {"input_ids": trained.input_ids, "completion_mask": trained.mask,
            "teacher_mask": marked.mask if marked else [0] * len(trained.mask)}


@lru_cache(maxsize=4)
def tokenizer_of(model: str | None) -> Any:
    """The (fast) tokenizer of a model name or folder, loaded once."""
    if not model:
        raise ValueError("guided_mask needs each row's `model` (a hub name or folder) to tokenize with")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)
