"""The conformance suite any selector (built-in or plugin) can run: `check_selector(sel)`.

It checks the contract in `base.py`: constructor stores its parameters and does nothing else,
deterministic for a seed, never mutates its input, handles empty input, picklable, and returns a
well-formed `Selection` (indices in range and unique, one score and reason per pick, a reason for
every dropped row, `k` respected).
"""

from __future__ import annotations

import inspect
import json
import pickle
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


def _fail(selector: Selector, check: str, detail: str) -> AssertionError:
    return AssertionError(f"check_selector({selector!r}) failed [{check}]: {detail}")


def _clone(selector: Selector) -> Selector:
    return type(selector)(**selector.get_params())


def _run(selector: Selector, ds: Dataset, **kw: Any) -> Selection:
    return selector.fit(ds).select(ds, **kw)


def _check_selection(selector: Selector, sel: Selection, n: int, k: int | None, label: str) -> None:
    """Shape of one Selection."""
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
    missing = set(range(n)) - set(idx.tolist()) - set(sel.dropped)
    if missing:
        raise _fail(selector, "every dropped row has a reason", f"{label}: rows {sorted(missing)[:10]}")
    if set(sel.dropped) & set(idx.tolist()):
        raise _fail(selector, "dropped rows not also picked", f"{label}: rows both kept and dropped")
    if any(not r for r in sel.dropped.values()):
        raise _fail(selector, "every dropped row has a reason", f"{label}: an empty drop reason")
    if k is not None and len(idx) > k:
        raise _fail(selector, "k respected", f"{label}: {len(idx)} rows for k={k}")


def check_selector(selector: Selector, dataset: Dataset | None = None) -> None:
    """Run every conformance check on `selector`; raise AssertionError naming the first that fails."""
    ds = default_dataset() if dataset is None else dataset
    params = selector.get_params()
    names = [p for p in inspect.signature(type(selector).__init__).parameters if p != "self"]
    if sorted(params) != sorted(names):
        raise _fail(selector, "get_params", f"gives {sorted(params)}, constructor takes {sorted(names)}")
    clone = _clone(selector)
    if clone != selector or repr(clone) != repr(selector) or clone.get_params() != params:
        raise _fail(selector, "clone", "type(s)(**s.get_params()) differs from s")
    extra = sorted(set(vars(clone)) - set(params))
    if extra:
        raise _fail(selector, "no work in __init__", f"the constructor set attributes {extra}")

    fingerprint, table = ds._fingerprint, ds.data.table
    first = _run(_clone(selector), ds)
    again = _run(_clone(selector), ds)
    if ds._fingerprint != fingerprint or not ds.data.table.equals(table):
        raise _fail(selector, "never mutates input", "the dataset changed during select")
    if not np.array_equal(first.indices, again.indices):
        raise _fail(selector, "deterministic for a seed", "two runs picked different rows")
    _check_selection(selector, first, len(ds), None, "default k")

    k = max(1, len(ds) // 4)
    _check_selection(selector, _run(_clone(selector), ds, k=k), len(ds), k, f"k={k}")

    empty = _run(_clone(selector), ds.select([]))
    if len(empty) != 0 or empty.dropped:
        raise _fail(selector, "handles empty input", f"0 rows in, {len(empty)} picked")

    fitted = _clone(selector).fit(ds)
    try:
        restored = pickle.loads(pickle.dumps(fitted))
    except Exception as exc:  # any pickling error is a failed check
        raise _fail(selector, "picklable", f"{type(exc).__name__}: {exc}") from exc
    if not np.array_equal(restored.select(ds).indices, fitted.select(ds).indices):
        raise _fail(selector, "picklable", "the unpickled selector picks different rows")

    try:
        scores = np.asarray(_clone(selector).fit(ds).score(ds), dtype=float)
    except NotImplementedError:
        return
    if scores.shape != (len(ds),):
        raise _fail(selector, "score shape", f"score() gave shape {scores.shape} for {len(ds)} rows")
