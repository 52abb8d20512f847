"""How many rollouts the teacher guides: the guided-fraction schedule, and the per-problem choice.

Both follow 3rdAT/ThinkTuning: `teaching_schedulers.build_scheduler` (constant, exponential, linear
or cosine decay from `init_pct` to `min_pct` over the first third of the training steps, then held)
and `get_uid_based_selected_indices` (per problem group, a random share of the complete rollouts,
at least one). Here the choice is seeded per problem, so it is reproducible and does not depend on
which other problems share the batch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Kind = Literal["constant", "linear", "exponential", "cosine"]


def guided_fraction(step: int, total_steps: int, start: float = 0.1, end: float = 0.01, kind: Kind = "linear",
                    decay_steps: int | None = None) -> float:
    """The share of complete rollouts to guide at `step` (0-based) of `total_steps`.

    The fraction goes from `start` at step 0 to `end` at `decay_steps` and stays there. By default
    `decay_steps = max(1, total_steps // 3)`, as in their scheduler; pass `total_steps` to decay over
    the whole run. "exponential" is geometric (needs `end > 0`); "cosine" is a half cosine.
    """
    if step < 0 or total_steps < 1:
        raise ValueError(f"need step >= 0 and total_steps >= 1, got step={step}, total_steps={total_steps}")
    if not 0 <= end <= start <= 1:
        raise ValueError(f"need 0 <= end <= start <= 1, got start={start}, end={end}")
    horizon = max(1, total_steps // 3) if decay_steps is None else decay_steps
    if horizon < 1:
        raise ValueError(f"decay_steps must be >= 1, got {decay_steps}")
    t = min(step, horizon) / horizon
    if kind == "constant":
        return start
    if kind == "linear":
        return start - (start - end) * t
    if kind == "exponential":
        if end <= 0:
            raise ValueError("an exponential schedule needs end > 0")
        return max(end, start * (end / start) ** t)
    if kind == "cosine":
        return end + 0.5 * (start - end) * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule kind {kind!r}; use constant, linear, exponential or cosine")


def _rng(seed: int, problem_id: Any) -> np.random.Generator:
    """A generator keyed on `seed` and the problem id (sha256, so stable across processes)."""
    key = int.from_bytes(hashlib.sha256(str(problem_id).encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, key])


def choose_rollouts(problem_ids: Sequence[Any] | np.ndarray, complete_mask: Sequence[bool] | np.ndarray,
                    fraction: float, seed: int = 0) -> np.ndarray:
    """A bool mask over rollouts: which ones the teacher guides.

    Per problem, `round(fraction × its complete rollouts)` complete rollouts (halves round up), at
    least one when it has any, drawn at random by a generator keyed on `seed` and the problem id.
    Incomplete rollouts are never chosen; `fraction=0` chooses none (guidance off).
    """
    ids = np.asarray(problem_ids, dtype=object)
    complete = np.asarray(complete_mask, dtype=bool)
    if ids.shape != complete.shape or ids.ndim != 1:
        raise ValueError(f"problem_ids and complete_mask must be 1-D and of one length, "
                         f"got {ids.shape} and {complete.shape}")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    chosen = np.zeros(len(ids), dtype=bool)
    if fraction == 0 or not complete.any():
        return chosen
    keys, group = np.unique(ids.astype(str), return_inverse=True)
    rows = np.flatnonzero(complete)
    rows = rows[np.argsort(group[rows], kind="stable")]  # complete rows, grouped by problem, in input order
    counts = np.bincount(group[rows], minlength=len(keys))
    wanted = np.minimum(counts, np.maximum(1, np.floor(fraction * counts + 0.5).astype(int)))
    for g, members in enumerate(np.split(rows, np.cumsum(counts)[:-1])):
        if counts[g]:
            chosen[_rng(seed, keys[g]).choice(members, size=wanted[g], replace=False)] = True
    return chosen
