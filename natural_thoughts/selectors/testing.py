"""The conformance suite any selector (built-in or plugin) can run, one named check at a time.

`selector_checks(sel)` yields `(check_name, check)` pairs (`check()` raises AssertionError naming
what broke); `check_selector(sel)` runs them all; `parametrize_with_checks(selectors)` gives each
(selector, check) its own pytest id, as scikit-learn's decorator of that name. The checks are the
contract in `base.py`: the constructor stores its parameters and does nothing else, `check_params`
refuses a bad `k`/`seed`, deterministic for a seed, never mutates its input, handles empty input,
picklable, `k`/`seed` given to `select` override the constructor's, and a well-formed `Selection`
(indices in range and unique, one score and reason per pick, a reason for every dropped row, step
reports that count every dropped row, `k` respected).
"""

from __future__ import annotations

import inspect
import json
import pickle
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np
from datasets import Dataset

from ..schema import REASONING_TOKENS, problem_id, trace_id
from .base import Selection, Selector

_WORDS = ("so", "we", "need", "the", "sum", "of", "roots", "wait", "let", "me", "check", "again",
          "square", "both", "sides", "gives", "then", "factor", "hmm", "maybe", "try", "another", "way")
_STRATEGIES = ("case analysis", "backtracking", "verification", "analogy", "decomposition")


def default_dataset(n_problems: int = 8, samples: int = 4, seed: int = 0) -> Dataset:
    """A small synthetic trace set with every column the built-in selectors read.

    Lengths, flags, answers, weak answers, strategies and verbosity vary so that each selector keeps
    some rows and drops others; a few rows repeat themselves, one mixes in CJK text, one carries an
    error.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for p in range(n_problems):
        text = f"Problem {p}: what is {p} + {p}?"
        pid, ref = problem_id(text), str(2 * p)
        for s in range(samples):
            i = len(rows)
            n_words = int(rng.integers(20, 3000))
            words = list(rng.choice(_WORDS, size=n_words))
            if i % 7 == 3:  # a trace stuck in a loop
                words = ["let", "me", "check", "again", "wait"] * (n_words // 5 + 1)
            reasoning = " ".join(words) + (" 这是中文推理过程的一部分" * 20 if i == 5 else "")
            correct = bool(rng.random() < (p + 1) / (n_problems + 1))
            final = None if i % 11 == 4 else (ref if correct else str(2 * p + 1))
            answer = "I could not finish." if final is None else f"The answer is \\boxed{{{final}}}."
            n_tokens = 2 * len(reasoning.split())  # synthetic: about 2 tokens a word
            flags = [f for f, on in (("no_final_answer", final is None), ("truncated", i % 9 == 8)) if on]
            rows.append({
                "problem_id": pid, "problem": text, "reference_answer": ref, "source": "synthetic",
                "domain": ("algebra", "geometry", "number theory")[p % 3], "extra": "{}",
                "trace_id": trace_id(pid, s), "sample_index": s, "model": "synthetic-teacher",
                "prompt": json.dumps([{"role": "user", "content": text}]),
                "completion": f"<think>{reasoning}</think>{answer}", "reasoning": reasoning, "answer": answer,
                "final_answer": final, "reasoning_tokens": n_tokens,
                "answer_tokens": 6, "finish_reason": "length" if "truncated" in flags else "stop",
                "flags": flags, "error": "backend timeout" if i == 13 else None, "sampling": "{}",
                "generated_at": "2025-01-01T00:00:00Z",
                REASONING_TOKENS: n_tokens,
                "label.strategies": [str(x) for x in rng.choice(_STRATEGIES, size=int(rng.integers(0, 3)),
                                                                replace=False)],
                "label.correct": None if final is None else final == ref,
                "label.verbosity": None if i % 10 == 6 else (3 * i) % 11,  # 0-10, a few unlabelled
                "weak_answer": ref if p % 2 == 0 else f"I think the answer is \\boxed{{{2 * p - 1}}}.",
            })
    return Dataset.from_list(rows)


Check = Callable[[Selector, Dataset], None]
ID_VALUE_CHARS = 40
"""A parameter value longer than this (as repr) shows as `...` in a test id."""


def _fail(selector: Selector, check: str, detail: str) -> AssertionError:
    return AssertionError(f"check_selector({selector!r}) failed [{check}]: {detail}")


def _clone(selector: Selector, **params: Any) -> Selector:
    return type(selector)(**{**selector.get_params(), **params})


def _run(selector: Selector, ds: Dataset, **kw: Any) -> Selection:
    return _clone(selector).fit(ds).select(ds, **kw)


def _same(a: Selection, b: Selection) -> bool:
    return (np.array_equal(a.indices, b.indices) and list(a.reasons) == list(b.reasons)
            and np.array_equal(a.scores, b.scores) and a.dropped == b.dropped)


def _well_formed(selector: Selector, sel: Selection, n: int, k: int | None, label: str) -> None:
    """Shape of one Selection: picks, their scores and reasons, and `k`."""
    idx = np.asarray(sel.indices)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise _fail(selector, "indices in range", f"{label}: indices outside [0, {n})")
    if len(set(idx.tolist())) != len(idx):
        raise _fail(selector, "indices unique", f"{label}: repeated indices")
    if not len(sel.scores) == len(sel.reasons) == len(idx):
        raise _fail(selector, "one score and reason per pick",
                    f"{label}: {len(idx)} indices, {len(sel.scores)} scores, {len(sel.reasons)} reasons")
    if any(not isinstance(r, str) or not r for r in sel.reasons):
        raise _fail(selector, "reasons are text", f"{label}: empty or non-string reason")
    if k is not None and len(idx) > k:
        raise _fail(selector, "k respected", f"{label}: {len(idx)} rows for k={k}")


def check_get_params(selector: Selector, ds: Dataset) -> None:
    """`get_params` gives exactly the constructor's arguments."""
    names = [p for p in inspect.signature(type(selector).__init__).parameters if p != "self"]
    if sorted(selector.get_params()) != sorted(names):
        raise _fail(selector, "get_params", f"gives {sorted(selector.get_params())}, constructor takes {sorted(names)}")


def check_clone(selector: Selector, ds: Dataset) -> None:
    """`type(s)(**s.get_params())` equals `s`, with the same repr."""
    clone = _clone(selector)
    if clone != selector or repr(clone) != repr(selector) or clone.get_params() != selector.get_params():
        raise _fail(selector, "clone", "type(s)(**s.get_params()) differs from s")


def check_no_work_in_init(selector: Selector, ds: Dataset) -> None:
    """The constructor stores its arguments and sets nothing else."""
    extra = sorted(set(vars(_clone(selector))) - set(selector.get_params()))
    if extra:
        raise _fail(selector, "no work in __init__", f"the constructor set attributes {extra}")


def check_params_refused(selector: Selector, ds: Dataset) -> None:
    """`check_params()` returns the selector, and refuses a negative or fractional `k`/`seed`."""
    if _clone(selector).check_params() is None:
        raise _fail(selector, "check_params", "check_params() must return the selector")
    for name, bad in (("k", -1), ("k", 2.5), ("seed", -1)):
        if name not in selector.get_params():
            continue
        try:
            _clone(selector, **{name: bad}).check_params()
        except ValueError:
            continue
        raise _fail(selector, "check_params", f"{name}={bad!r} was not refused")


def check_deterministic(selector: Selector, ds: Dataset) -> None:
    """Two runs with the same parameters pick the same rows, with the same scores and reasons."""
    if not _same(_run(selector, ds), _run(selector, ds)):
        raise _fail(selector, "deterministic for a seed", "two runs gave different selections")


def check_does_not_mutate_input(selector: Selector, ds: Dataset) -> None:
    """`fit` and `select` leave the dataset as it was."""
    fingerprint, table = ds._fingerprint, ds.data.table
    _run(selector, ds)
    if ds._fingerprint != fingerprint or not ds.data.table.equals(table):
        raise _fail(selector, "never mutates input", "the dataset changed during select")


def check_selection(selector: Selector, ds: Dataset) -> None:
    """The default selection is well formed, with a text reason for every pick."""
    _well_formed(selector, _run(selector, ds), len(ds), None, "default k")


def check_dropped_rows_recorded(selector: Selector, ds: Dataset) -> None:
    """Every row is picked or dropped with a reason, never both, and the step reports count every
    dropped row under a reason kind."""
    sel = _run(selector, ds)
    picked = set(np.asarray(sel.indices).tolist())
    missing = set(range(len(ds))) - picked - set(sel.dropped)
    if missing or any(not r for r in sel.dropped.values()):
        raise _fail(selector, "every dropped row has a reason", f"rows {sorted(missing)[:10]} or an empty reason")
    if set(sel.dropped) & picked:
        raise _fail(selector, "dropped rows not also picked", "rows both kept and dropped")
    for step in sel.steps:
        if sum(step.dropped.values()) != step.n_in - step.n_kept:
            raise _fail(selector, "step reports count drops", f"{step.name}: {step.dropped} for "
                        f"{step.n_in - step.n_kept} dropped rows")


def check_k_override(selector: Selector, ds: Dataset) -> None:
    """`select(ds, k=...)` returns at most k rows, whatever the constructor's `k`."""
    k = max(1, len(ds) // 4)
    _well_formed(selector, _run(selector, ds, k=k), len(ds), k, f"k={k}")
    if len(_run(selector, ds, k=0)):
        raise _fail(selector, "k respected", "k=0 picked rows")


def check_seed_override(selector: Selector, ds: Dataset) -> None:
    """`select(ds, seed=...)` is deterministic for that seed."""
    if not _same(_run(selector, ds, seed=3), _run(selector, ds, seed=3)):
        raise _fail(selector, "deterministic for a seed", "two runs with seed=3 gave different selections")


def check_empty_input(selector: Selector, ds: Dataset) -> None:
    """0 rows in: 0 picked, none dropped."""
    empty = _run(selector, ds.select([]))
    if len(empty) != 0 or empty.dropped:
        raise _fail(selector, "handles empty input", f"0 rows in, {len(empty)} picked")


def check_picklable(selector: Selector, ds: Dataset) -> None:
    """A fitted selector pickles, and the copy picks the same rows."""
    fitted = _clone(selector).fit(ds)
    try:
        restored = pickle.loads(pickle.dumps(fitted))
    except Exception as exc:  # any pickling error is a failed check
        raise _fail(selector, "picklable", f"{type(exc).__name__}: {exc}") from exc
    if not np.array_equal(restored.select(ds).indices, fitted.select(ds).indices):
        raise _fail(selector, "picklable", "the unpickled selector picks different rows")


def check_score(selector: Selector, ds: Dataset) -> None:
    """`score()`, where implemented, gives one finite float per row."""
    try:
        scores = np.asarray(_clone(selector).fit(ds).score(ds), dtype=float)
    except NotImplementedError:
        return
    if scores.shape != (len(ds),) or not np.isfinite(scores).all():
        raise _fail(selector, "score shape",
                    f"score() gave shape {scores.shape} for {len(ds)} rows, or a non-finite value")


CHECKS: tuple[Check, ...] = (
    check_get_params, check_clone, check_no_work_in_init, check_params_refused, check_deterministic,
    check_does_not_mutate_input, check_selection, check_dropped_rows_recorded, check_k_override,
    check_seed_override, check_empty_input, check_picklable, check_score,
)


def selector_checks(selector: Selector, dataset: Dataset | None = None) -> Iterator[tuple[str, Callable[[], None]]]:
    """`(check_name, check)` for every conformance check; `check()` runs it on `dataset` (default:
    `default_dataset()`, built when the check runs) and raises AssertionError when it fails."""

    def run(check: Check) -> None:
        check(selector, default_dataset() if dataset is None else dataset)

    for check in CHECKS:
        yield check.__name__, partial(run, check)


def check_selector(selector: Selector, dataset: Dataset | None = None) -> None:
    """Run every conformance check on `selector`; raise AssertionError listing each that fails."""
    failures = []
    for _, check in selector_checks(selector, dataset):
        try:
            check()
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        raise AssertionError("\n".join(failures))


def selector_id(selector: Selector) -> str:
    """A short test id: the class name, with the parameters that differ from their defaults (a
    long value, such as a path, shown as `...`, so ids stay the same on every machine)."""
    defaults = {p.name: p.default for p in inspect.signature(type(selector).__init__).parameters.values()}
    changed = {k: repr(v) for k, v in selector.get_params().items() if defaults.get(k, inspect.Parameter.empty) != v}
    args = ",".join(f"{k}={v if len(v) <= ID_VALUE_CHARS else '...'}" for k, v in changed.items())
    return f"{type(selector).__name__}({args})" if args else type(selector).__name__


def parametrize_with_checks(selectors: Iterable[Selector], dataset: Dataset | None = None) -> Any:
    """A pytest decorator giving each (selector, check) its own test, with ids such as
    `Long-check_deterministic`; the test takes `selector` and `check` and calls `check()`."""
    import pytest

    cases = [(sel, name, check) for sel in selectors for name, check in selector_checks(sel, dataset)]
    return pytest.mark.parametrize("selector, check", [(sel, check) for sel, _, check in cases],
                                   ids=[f"{selector_id(sel)}-{name}" for sel, name, _ in cases])
