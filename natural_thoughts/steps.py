"""A trace's steps, and the model-free signal of cheap reasoning (`label.reasoning_flags`).

A right final answer can sit on reasoning that does not hold. Two cheap cases need no model: a
final answer with (almost) no derivation behind it, and a solution that says it guessed ("I'll
guess", "by luck", "just pick", "the answer is probably", or its result matched none of the options
and it picked one anyway). `reasoning_flags` names them per row; the `reasoning` LLM annotator
(`annotate.ReasoningJudge`) looks for the first wrong step in everything else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, concatenate_datasets

REASONING_FLAGS = "label.reasoning_flags"
"""The column `flag_reasoning` writes: the names of `SIGNALS` a row shows (empty: none)."""
MIN_DERIVATION_WORDS = 25
"""Fewer words than this in a trace's reasoning and answer together is "no derivation" (a bare
answer with a sentence around it; every MR-Ben solution and every shared Sky-T1 trace holds more)."""
TAIL_CHARS = 1500
"""How much of a trace's reasoning, counted from its end, is read for a guess when the trace has a
separate answer part (the thinking before it may try guesses it later checks)."""
MAX_STEPS = 40
"""At most this many steps are shown to a judge: longer traces have consecutive paragraphs merged."""

SIGNALS: dict[str, re.Pattern[str]] = {
    "announced_guess": re.compile(
        r"\b(?:I'?ll|I will|I'd|I would|let me|let's|we'll|just|best|educated|wild|rough|lucky) guess"
        r"|\bguess(?:ing)? (?:that )?(?:the answer|it is|it's)"
        r"|\b(?:by|through|with) (?:sheer |pure |dumb )?luck\b"
        r"|\b(?:just|simply|arbitrarily|randomly) (?:pick|choose|select|go with)\b"
        r"|\b(?:answer|result|value|choice|option) (?:is|would be) probably\b"
        r"|\bprobably (?:the (?:answer|correct|right)|choice|option)\b", re.I),
    "no_option_matched": re.compile(
        r"\bnone of the (?:given |answer |provided |listed |available )?(?:choices|options|answers)"
        r"|\b(?:doesn't|does not|don't|do not) match any (?:of the )?(?:given |answer |provided )?(?:choices|options)"
        r"|\bclosest (?:answer|option|choice|match)\b"
        r"|\b(?:can't|cannot|can not) (?:be )?determined?\b", re.I),
}
"""A guess announced as a guess, in the solution's own words. `no_option_matched`: its result matched
no option (or could not be determined) and an answer was given anyway; on MR-Ben 212 of 221
solutions saying "none of the choices" are labelled wrong by its annotators."""
NO_DERIVATION = "no_derivation"
FLAGS: tuple[str, ...] = (*SIGNALS, NO_DERIVATION)
"""Every name `reasoning_flags` may give."""
_STEP_HEADER = re.compile(r"^\s*Step\s*(\d+)\s*[:.]\s*", re.I)


def split_steps(text: str | None, max_steps: int = MAX_STEPS) -> list[str]:
    """A text's steps: its paragraphs (blank-line separated, ProcessBench style), consecutive ones
    merged into at most `max_steps` near-equal groups."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    if len(paragraphs) <= max_steps:
        return paragraphs
    return ["\n\n".join(group) for group in np.array_split(np.array(paragraphs, dtype=object), max_steps)]


def numbered_steps(items: Sequence[str]) -> list[str]:
    """Steps from a list whose items may carry their own "Step N:" headers (MR-Ben): an item without
    one belongs to the step before it, so step N is the one its header names; headers are removed."""
    steps: list[str] = []
    for item in items:
        if _STEP_HEADER.match(item) or not steps:
            steps.append(_STEP_HEADER.sub("", item, count=1).strip())
        else:
            steps[-1] = f"{steps[-1]}\n{item.strip()}".strip()
    return steps


def signal_steps(steps: Sequence[str], has_answer: bool = True) -> tuple[list[str], int | None]:
    """The flags a solution given as `steps` shows, and the 1-based step of the first (None: none).

    `no_derivation` (step 1) needs a final answer (`has_answer`) with fewer than
    `MIN_DERIVATION_WORDS` words of steps in all; a guess is found in the step that announces it.
    """
    flags: list[str] = []
    first: int | None = None
    if has_answer and sum(len(s.split()) for s in steps) < MIN_DERIVATION_WORDS:
        flags, first = [NO_DERIVATION], 1
    for name, pattern in SIGNALS.items():
        hit = next((n for n, step in enumerate(steps, 1) if pattern.search(step)), None)
        if hit is not None:
            flags.append(name)
            first = hit if first is None else min(first, hit)
    return flags, first


def trace_flags(row: dict[str, Any]) -> list[str]:
    """The flags one trace shows: a guess in its answer part or the last `TAIL_CHARS` of its
    reasoning (anywhere in its completion when it has no answer part); `no_derivation` when it has
    a final answer and fewer than `MIN_DERIVATION_WORDS` words of reasoning and answer."""
    reasoning, answer = row.get("reasoning") or "", row.get("answer") or ""
    if not answer.strip():
        reasoning, answer = "", row.get("completion") or reasoning
    short = len(f"{reasoning} {answer}".split()) < MIN_DERIVATION_WORDS
    flags = [NO_DERIVATION] if short and (row.get("final_answer") or "").strip() else []
    return flags + [name for name, pattern in SIGNALS.items()
                    if pattern.search(answer) or pattern.search(reasoning[-TAIL_CHARS:])]


def flag_reasoning(traces: Dataset) -> Dataset:
    """`traces` with `label.reasoning_flags`: the `FLAGS` each trace shows (an empty list: none).
    Reads `reasoning`, `answer`, `completion` and `final_answer` where present."""
    wanted = [c for c in ("reasoning", "answer", "completion", "final_answer") if c in traces.column_names]
    if not wanted:
        raise KeyError(f"flag_reasoning needs a `reasoning`, `answer` or `completion` column; the traces have "
                       f"{traces.column_names}")
    view = traces.select_columns(wanted).with_format(None)
    flags: list[list[str]] = []
    for start in range(0, len(traces), 1024):
        batch = view[start : start + 1024]
        flags += [trace_flags(dict(zip(batch, values))) for values in zip(*batch.values())]
    out = traces.remove_columns([REASONING_FLAGS]) if REASONING_FLAGS in traces.column_names else traces
    column = pa.table({REASONING_FLAGS: pa.array(flags, pa.list_(pa.string()))})
    return concatenate_datasets([out, Dataset(column)], axis=1)
