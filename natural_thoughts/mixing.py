"""System-1 / System-2 mixing: per example, the full trace (System-2) or the condensed answer only (System-1).

NaturalThoughts trains students on a mix of both so they learn to switch between thinking at length
and answering directly. `mix` decides the mode of each row and records it in the `mode` column;
`export` then writes System-1 rows as the answer alone. Optional instruction text (appended to the
user turn) tells the student which mode is wanted, or one text for every row leaves it to decide.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from datasets import Dataset

log = logging.getLogger(__name__)

MODE_COLUMN = "mode"
INSTRUCTION_COLUMN = "instruction"
SYSTEM1, SYSTEM2 = "system1", "system2"
MIX_MODES = ("random", "difficulty", "system2", "system1")
HARDER = ("higher", "lower")
"""Which end of a difficulty column is hard."""

INSTRUCTION_PRESETS: dict[str, dict[str, str]] = {
    "think": {
        SYSTEM2: "Think step by step before you answer.",
        SYSTEM1: "Answer directly, without showing your reasoning.",
    },
    "qwen3": {SYSTEM2: "/think", SYSTEM1: "/no_think"},
    "adaptive": {
        SYSTEM2: "Think step by step if the question needs it, otherwise answer directly.",
        SYSTEM1: "Think step by step if the question needs it, otherwise answer directly.",
    },
}
"""Instruction texts per mode: "think" and "qwen3" name the wanted mode (think / no-think prompting);
"adaptive" gives every row the same text, so the student learns to choose."""


def answer_sections(ds: Dataset) -> np.ndarray:
    """Which rows have an answer section apart from their reasoning: only those can be System-1 (a
    System-1 row of a trace whose whole text is its reasoning, or is its answer, would teach the
    chain of thought as a direct answer, or nothing)."""
    if not {"reasoning", "answer"} <= set(ds.column_names):
        return np.ones(len(ds), dtype=bool)
    view = ds.select_columns(["reasoning", "answer"]).with_format("arrow")[:]
    return np.asarray([bool(r) and bool(a) for r, a in zip(view["reasoning"].to_pylist(), view["answer"].to_pylist())],
                      dtype=bool)


def modes_of(ds: Dataset) -> list[str]:
    """The `mode` of every row (System-2 for all rows when the column is absent); bad values fail."""
    if MODE_COLUMN not in ds.column_names:
        return [SYSTEM2] * len(ds)
    modes = list(ds[MODE_COLUMN])
    for i, m in enumerate(modes):
        if m not in (SYSTEM1, SYSTEM2):
            raise ValueError(f"column {MODE_COLUMN!r} row {i} holds {m!r}; expected {SYSTEM1!r} or {SYSTEM2!r}")
    return modes


def hard_rows(values: list[Any], column: str, threshold: float | None = None, harder: str = "higher") -> np.ndarray:
    """Which rows a difficulty column calls hard.

    `harder="higher"`: True, or a number `>= threshold`, is hard (e.g. `label.disagree`, a
    disagreement score). `harder="lower"`: False, or a number `<= threshold`, is hard (e.g.
    `label.correct`, a pass rate). Numbers need a threshold.
    Empty cells (undecided) count as hard, so they keep their reasoning.
    """
    if harder not in HARDER:
        raise ValueError(f"harder must be one of {list(HARDER)}, got {harder!r}")
    out = np.ones(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v) == (harder == "higher")
        elif isinstance(v, (int, float, np.number)):
            if threshold is None:
                raise ValueError(f"difficulty column {column!r} holds numbers (row {i}: {v!r}); "
                                 "set threshold= to say where hard begins")
            out[i] = v >= threshold if harder == "higher" else v <= threshold
        else:
            raise TypeError(f"difficulty column {column!r} row {i} holds {v!r}; expected a bool or a number")
    return out


def resolve_instructions(instructions: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """A preset name, a {system1: text, system2: text} mapping, or None (no instruction)."""
    if instructions is None:
        return None
    if isinstance(instructions, str):
        if instructions not in INSTRUCTION_PRESETS:
            raise ValueError(f"unknown instruction preset {instructions!r}; known: {sorted(INSTRUCTION_PRESETS)}, "
                             "or give {system1: text, system2: text}")
        return dict(INSTRUCTION_PRESETS[instructions])
    unknown = sorted(set(instructions) - {SYSTEM1, SYSTEM2})
    if unknown:
        raise ValueError(f"instructions may only name {SYSTEM1!r} and {SYSTEM2!r}; got {unknown}")
    return dict(instructions)


def mix(
    ds: Dataset,
    mode: str = "random",
    p: float = 0.4,
    column: str = "label.disagree",
    threshold: float | None = None,
    harder: str = "higher",
    seed: int = 0,
    instructions: str | Mapping[str, str] | None = None,
) -> Dataset:
    """Add a `mode` column ("system1" / "system2") and, with `instructions`, an `instruction` column.

    `mode="random"`: each row is System-2 with probability `p` (seeded), System-1 otherwise.
    `mode="difficulty"`: System-2 where `column` says the problem is hard (see `hard_rows`),
    System-1 where it says easy. "system2" / "system1" put every row in one mode. A row without an
    answer section apart from its reasoning (`answer_sections`) is always System-2.
    """
    if mode not in MIX_MODES:
        raise ValueError(f"unknown mix mode {mode!r}; choose one of {list(MIX_MODES)}")
    if mode == "random":
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        system2 = np.random.default_rng(seed).random(len(ds)) < p
    elif mode == "difficulty":
        if column not in ds.column_names:
            raise KeyError(f"difficulty mixing needs column {column!r}; columns present: {sorted(ds.column_names)}")
        system2 = hard_rows(list(ds[column]), column, threshold, harder)
    else:
        system2 = np.full(len(ds), mode == "system2")
    whole = ~answer_sections(ds)
    if forced := int((whole & ~system2).sum()):
        log.info("mix: %d row(s) have no answer section apart from their reasoning; kept as System-2", forced)
    modes = [SYSTEM2 if s else SYSTEM1 for s in system2 | whole]
    out = ds.remove_columns([c for c in (MODE_COLUMN, INSTRUCTION_COLUMN) if c in ds.column_names])
    out = out.add_column(MODE_COLUMN, modes)
    texts = resolve_instructions(instructions)
    if texts is not None:
        out = out.add_column(INSTRUCTION_COLUMN, [texts.get(m) for m in modes])
    return out
