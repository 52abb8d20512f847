"""The selector contract (scikit-learn manners) and the `Selection` every selector returns.

- The constructor is the configuration: it stores its arguments under the same names, nothing else.
- `fit(ds) -> self` learns state (attributes ending in `_`); pure selectors inherit a no-op.
- `score(ds) -> np.ndarray`: one float per row, higher = more wanted.
- `select(ds, k=None, seed=None) -> Selection`: row indices, a score and a reason for each pick,
  plus what each step dropped and why. `k`/`seed` given here override the constructor's.
- Deterministic for a seed, never mutates its input, handles empty input, picklable.

Drop reasons live at two levels: `Selection.dropped` keeps each dropped row's own reason (the
detail), while a step's report counts dropped rows by *kind* ("Long: not sampled"), so a report
or a card stays a few lines long whatever the pool size.
"""

from __future__ import annotations

import inspect
import json
import logging
import numbers
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import Dataset

from ..registry import Registry, Spec, checked_params, parse_spec
from ..schema import require_columns

log = logging.getLogger(__name__)


SELECTION_COLUMNS = ("selection.score", "selection.reason")
"""What `Selection.subset` adds to the picked rows."""
_PLUMBING = ("k", "seed", "column")
"""Parameters that never decide which rows a step keeps (with the `*_column` names): not worth relaxing."""


@dataclass
class StepReport:
    """What one selector did: rows in, rows kept, dropped rows counted by reason kind, and the
    values it chose from the data (`fitted`, e.g. Long's `C_` with `C="auto"`)."""

    name: str
    params: dict[str, Any]
    n_in: int
    n_kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)


@dataclass
class Selection:
    """Rows picked from `dataset`, in pick order, with a score and a reason for each.

    `dropped` holds the rows left out with the reason of the step that dropped them, so nothing
    disappears without a record. `requested_k` is the budget asked for (None: no budget); when
    fewer rows were selected, `budget_warning()` says so.
    """

    dataset: Dataset
    indices: np.ndarray
    scores: np.ndarray
    reasons: list[str]
    steps: list[StepReport] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    requested_k: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self) -> Dataset:
        """The selected rows as a Dataset, with `selection.score` and `selection.reason` columns (an
        earlier selection's, when the rows were picked from a subset, are replaced)."""
        picked = self.dataset.select(self.indices.tolist())
        picked = picked.remove_columns([c for c in SELECTION_COLUMNS if c in picked.column_names])
        picked = picked.add_column(SELECTION_COLUMNS[0], self.scores.astype(float).tolist())
        return picked.add_column(SELECTION_COLUMNS[1], list(self.reasons))

    def report(self) -> pd.DataFrame:
        """Kept/dropped per step with dropped rows counted by reason kind, one row per step
        (renders as a table in Jupyter; each row's own reason is in `dropped`)."""
        rows = [
            {
                "step": s.name,
                "params": json.dumps({**s.params, **s.fitted}, default=str, sort_keys=True),
                "in": s.n_in,
                "kept": s.n_kept,
                "dropped": s.n_in - s.n_kept,
                "dropped_by_reason": dict(s.dropped),
            }
            for s in self.steps
        ]
        return pd.DataFrame(rows, columns=["step", "params", "in", "kept", "dropped", "dropped_by_reason"])

    def budget_warning(self) -> str | None:
        """A sentence when fewer rows were selected than `requested_k`, naming the step that limited
        the output (`limiting_step`), its main drop reason and what to relax; None when the budget
        was met or not set."""
        if self.requested_k is None or len(self) >= self.requested_k:
            return None
        text = f"k={self.requested_k} was requested but only {len(self)} of {len(self.dataset)} rows were selected"
        step = self.limiting_step()
        if step is None:
            return text + " (no step dropped any: the pool is smaller than k)."
        main = max(step.dropped.items(), key=lambda kv: (kv[1], kv[0]))[0] if step.dropped else "no reason recorded"
        params = ", ".join(f"{k}={v!r}" for k, v in step.params.items()
                           if v is not None and k not in _PLUMBING and not k.endswith("_column"))
        return (text + f": {step.name} kept {step.n_kept} of {step.n_in} (mostly {main!r}). To reach k, relax "
                f"{step.name}" + (f" ({params})" if params else "") + " or give it a larger pool.")

    def limiting_step(self) -> StepReport | None:
        """The step that limited the output: of the steps that dropped rows, the first that kept the
        fewest (in a chain, where the count fell lowest; an earlier step may have dropped more rows
        and still left enough). None when no step dropped any."""
        cutting = [s for s in self.steps if s.n_kept < s.n_in]
        return min(cutting, key=lambda s: s.n_kept, default=None)

    def provenance(self) -> dict[str, Any]:
        """A JSON-ready summary of how the selection was made (for manifests and cards)."""
        return {
            "n_pool": len(self.dataset),
            "n_selected": len(self),
            "requested_k": self.requested_k,
            "budget_warning": self.budget_warning(),
            "steps": [s.__dict__ for s in self.steps],
        }


class Selector:
    """Base class: parameter handling, repr, and a default `select` that keeps the top-`k` scores."""

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same names."""
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> Selector:
        """Set constructor arguments by name (unknown names are an error)."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; it has {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def check_params(self) -> Selector:
        """Check what needs no data (a budget `k`, a `seed`, names, ranges) and return self, so a
        config fails before any stage runs. Selectors with more to check extend it."""
        resolve_k(self, None, 0)
        resolve_seed(self, None)
        return self

    def fit(self, ds: Dataset) -> Selector:
        """Learn whatever the selector needs from `ds`; the default learns nothing."""
        return self

    def score(self, ds: Dataset) -> np.ndarray:
        """One float per row, higher = more wanted."""
        raise NotImplementedError(f"{type(self).__name__} does not score rows; use select()")

    def select(self, ds: Dataset, k: int | None = None, seed: int | None = None) -> Selection:
        """Keep the `k` highest-scoring rows (all rows when k is None); ties broken by `seed`."""
        scores = np.asarray(self.score(ds), dtype=float)
        k = resolve_k(self, k, len(ds))
        rng = np.random.default_rng(resolve_seed(self, seed))
        tiebreak = rng.permutation(len(ds))
        order = np.lexsort((tiebreak, -scores))[:k]
        return selection_from_picks(self, ds, order, scores[order], [f"top-{k} by score"] * len(order),
                                    drop_reason=f"outside top-{k} by score",
                                    kind=f"{type(self).__name__}: outside top-k by score")


def _whole_number(value: Any, name: str, selector: Selector) -> int:
    """`value` as an int; integral floats (1000.0) pass, anything else is an error naming it."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{type(selector).__name__}: {name} must be a whole number, got {value!r}")


def requested_k(selector: Selector, k: int | None) -> int | None:
    """The budget asked for: `k` from the call, else the selector's own `k` attribute, else None."""
    return getattr(selector, "k", None) if k is None else k


def resolve_k(selector: Selector, k: int | None, n: int) -> int:
    """`k` from the call, else the selector's own `k` attribute, else all rows; never above n.

    A non-integer or negative k is an error (a budget of 2.7 rows means a mistake upstream)."""
    k = requested_k(selector, k)
    if k is None:
        return n
    k = _whole_number(k, "k", selector)
    if k < 0:
        raise ValueError(f"{type(selector).__name__}: k must be >= 0, got {k}")
    return min(k, n)


def resolve_seed(selector: Selector, seed: int | None) -> int:
    """`seed` from the call, else the selector's own `seed` attribute, else 0; a non-negative
    whole number (numpy's generators refuse negative seeds)."""
    if seed is None:
        seed = getattr(selector, "seed", None)
    if seed is None:
        return 0
    seed = _whole_number(seed, "seed", selector)
    if seed < 0:
        raise ValueError(f"{type(selector).__name__}: seed must be >= 0, got {seed}")
    return seed


PerRow = str | Sequence[str] | np.ndarray | Callable[[int], str]
"""Text for rows: one for all, one per row (list or array indexed by row), or a callable of the row."""


def _texts_of(texts: PerRow, rows: np.ndarray) -> list[str]:
    """The text of each of `rows` (row numbers) from a `PerRow`."""
    if isinstance(texts, str):
        return [texts] * len(rows)
    if callable(texts):
        return [texts(i) for i in rows.tolist()]
    if isinstance(texts, np.ndarray):
        return texts[rows].tolist()
    return [texts[i] for i in rows.tolist()]


def selection_from_picks(
    selector: Selector,
    ds: Dataset,
    picks: np.ndarray,
    scores: np.ndarray,
    reasons: list[str],
    drop_reason: PerRow,
    kind: PerRow | None = None,
) -> Selection:
    """Build a one-step `Selection`; every row not picked is recorded with its drop reason (its
    own detail), and the step report counts them by reason `kind`: one phrase for all, or a few
    given per row (default: the drop reason when it is one string, else
    "<Selector>: not selected")."""
    picks = np.asarray(picks, dtype=np.int64)
    kept = np.zeros(len(ds), dtype=bool)
    kept[picks] = True
    dropped_rows = np.flatnonzero(~kept)
    dropped = dict(zip(dropped_rows.tolist(), _texts_of(drop_reason, dropped_rows)))
    if kind is None:
        kind = drop_reason if isinstance(drop_reason, str) else f"{type(selector).__name__}: not selected"
    kinds = {kind: len(dropped)} if isinstance(kind, str) else Counter(_texts_of(kind, dropped_rows))
    step = StepReport(
        name=type(selector).__name__,
        params=selector.get_params(),
        n_in=len(ds),
        n_kept=len(picks),
        dropped=dict(kinds) if dropped else {},
    )
    return Selection(ds, picks, np.asarray(scores, dtype=float), list(reasons), [step], dropped)


def texts_by_key(keys: Sequence[np.ndarray], *texts: Callable[[int], str]) -> list[np.ndarray]:
    """For each of `texts`, `text(i)` for every row i (an object array), calling `text` on one row
    per distinct combination of `keys` (int64 arrays, one entry per row; view floats as int64 so
    that the exact value counts), so rows with equal keys must get equal texts.

    Formatting a reason per row costs about a microsecond, a second per million rows; the rows of
    a pool share far fewer distinct values."""
    codes = pd.factorize(keys[0])[0]
    for key in keys[1:]:
        key_codes, distinct = pd.factorize(key)
        codes = pd.factorize(codes * len(distinct) + key_codes)[0]
    row = np.empty(int(codes.max(initial=-1)) + 1, dtype=np.int64)
    row[codes] = np.arange(len(codes))  # one row, any, of each distinct key
    return [np.fromiter((text(i) for i in row.tolist()), dtype=object, count=len(row))[codes] for text in texts]


def stored_column(ds: Dataset, name: str, what: str | None = None) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """Column `name` as the dataset stores it (Arrow, memory-mapped, not copied) and, when `ds` is a
    `select`ed view, the stored row of each of its rows (None: the stored rows are its rows).

    Computing over the stored column and indexing the result avoids gathering the selected cells
    first, which copies them. A clear error if the column is absent."""
    require_columns(ds.column_names, [name], what or "the dataset")
    rows = None if ds._indices is None else ds._indices.column(0).to_numpy().astype(np.int64)
    return ds.data.column(name), rows


def _number_dtype(type_: pa.DataType) -> type | None:
    """The dtype `np.asarray(values.to_pylist())` gives for a column of `type_` without nulls when
    that is bool, int64 or float64, so the values can skip Python objects; else None."""
    if pa.types.is_boolean(type_):
        return np.bool_
    if pa.types.is_signed_integer(type_) or (pa.types.is_unsigned_integer(type_) and type_.bit_width < 64):
        return np.int64
    return np.float64 if pa.types.is_floating(type_) else None


def column(ds: Dataset, name: str, what: str | None = None) -> np.ndarray:
    """A column as a numpy array (object dtype for lists/strings), with a clear error if absent.
    Numbers without nulls skip Python objects (a million rows in milliseconds), same values and dtype."""
    values, rows = stored_column(ds, name, what)
    if rows is not None:
        values = values.take(rows)
    dtype = _number_dtype(values.type)
    if dtype is not None and len(values) and values.null_count == 0:
        return values.to_numpy().astype(dtype)  # a copy: the stored values are read-only
    values = values.to_pylist()
    if values and isinstance(values[0], (list, dict, str)) or any(v is None for v in values):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values)


SELECTORS: Registry[type[Selector]] = Registry("selector")
"""Selector classes by name: the built-ins, plus third parties' under the entry-point group
`natural_thoughts.selectors`."""
register = SELECTORS.register
"""Class decorator: make a selector resolvable by its class name (YAML, CLI)."""


def available_selectors() -> dict[str, type[Selector]]:
    """Built-in selectors plus those that third parties register under the entry-point group."""
    return SELECTORS.available()


def get_selector(spec: Spec | Selector) -> Selector:
    """Resolve `"Long"`, `{"name": "Long", "C": 4000}` or `{"Long": {"C": 4000}}` to an instance;
    the `steps` of a composite are resolved the same way, and an instance is returned as it is."""
    if isinstance(spec, Selector):
        return spec
    name, params = parse_spec(spec, "selector")
    if "steps" in params:
        params["steps"] = [get_selector(s) for s in params["steps"]]
    factory = SELECTORS.get(name)
    return factory(**checked_params(factory, params, name))


def select(ds: Dataset, selector: Selector | Spec, k: int | None = None,
           seed: int | None = None) -> Selection:
    """Fit (when the selector learns) and select from `ds` in one call.

    Records the budget asked for (`k`, else the selector's own) as `Selection.requested_k` and
    logs a warning when fewer rows survive, naming the step that limited the output."""
    sel = get_selector(selector)
    selection = sel.fit(ds).select(ds, k=k, seed=seed)
    budget = requested_k(sel, k)
    selection.requested_k = None if budget is None else _whole_number(budget, "k", sel)
    warning = selection.budget_warning()
    if warning:
        log.warning("%s", warning)
    return selection
