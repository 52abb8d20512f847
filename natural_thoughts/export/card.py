"""The dataset card: a `README.md` beside the export saying what was selected, how, and from what.

The YAML header is a Hugging Face dataset card (licence, tags, data files per split), so
`datasets.load_dataset(folder)` and the hub both read the export as it is. Nothing in the card
depends on the clock, so the same run gives the same bytes.

The card tells the truth about the subset: pool and selection side by side (verdicts, and the
source file's own evaluator beside ours where the rows carry one; flags, reasoning length,
strategies, domains), a warning at the top when most of the selection is wrong, cut off or
unverified, when most rows hold no reasoning, or when the budget `k` was not reached (naming the
step that limited the output), the System-1/System-2 mix as exported, and every input file. Drop
reasons appear counted by kind, never one line per row.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from datasets import Dataset

from .formats import ExportStats
from .plots import (CORRECT_COLUMNS, EVALUATOR_VERDICTS, STRATEGIES, card_figures, correctness, reasoning_lengths,
                    verdict_words)
from ..schema import FLAGS
from ..selectors.base import Selection
from ..selectors.diversity import domain_column, strategy_counts

CARD = "README.md"
FIGURES = "figures"
CUT_OFF_FLAGS = ("truncated", "unterminated_reasoning")
"""Flags that mean the trace stops before its end."""
MOST = 0.5
"""A share of the selection above this draws a warning (wrong, cut off, unverified)."""
TOP = 15
"""Rows shown in the strategy and domain tables (the most common in the pool)."""
EVALUATOR = CORRECT_COLUMNS[1]
"""The source file's own evaluator verdict (`label.evaluator_correct`), shown beside ours."""
AGREEMENT = {"agree": "ours and the file's evaluator agree", "disagree": "ours and the file's evaluator disagree"}
"""Rows where both verdicts are decided, by whether they agree."""
EXPORTED, SELECTION_ONLY = "the exported rows", "selection only"
"""What an input file is used for (a weak model's answers decide the selection but are not exported)."""


def library_version() -> str:
    """The installed natural-thoughts version (pyproject.toml declares it once)."""
    return version("natural-thoughts")


def prompt_hashes(manifests: dict[str, Path]) -> list[tuple[str, str, str]]:
    """(stage, field, sha256[:16]) of every prompt-like field in the stages' manifests.

    Fields whose name holds "prompt" are hashed (templates, system prompts); fields that already
    are hashes (names ending in "hash" or "sha256") are passed through.
    """
    out: list[tuple[str, str, str]] = []

    def walk(stage: str, node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key in sorted(node):
                name = f"{where}.{key}" if where else str(key)
                value = node[key]
                if str(key).endswith(("hash", "sha256")) and isinstance(value, str):
                    out.append((stage, name, value))
                elif "prompt" in str(key).lower() and not str(key).endswith("_file") and value is not None:
                    blob = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                    out.append((stage, name, hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]))
                else:
                    walk(stage, value, name)

    for stage, path in sorted(manifests.items()):
        if Path(path).exists():
            walk(stage, json.loads(Path(path).read_text()), "")
    return out


def card_license(sources: list[dict[str, Any]]) -> str:
    """The hub licence tag: the shared licence of the inputs whose rows are exported, else "other"."""
    found = {s.get("license") for s in sources if s.get("use", EXPORTED) == EXPORTED}
    return found.pop() if len(found) == 1 and None not in found else "other"


def rows_provenance(ds: Dataset) -> dict[str, Any]:
    """The `sources` and `models` a card can read from the rows themselves, for a card written
    outside `run` (which knows its input files): the rows' `source` values, their teacher (`model`)
    and weak model (`weak_model`)."""
    names = {column: sorted({str(v) for v in ds[column] if v}) for column in ("source", "model", "weak_model")
             if column in ds.column_names}
    sources = [{"kind": "rows' `source`", "source": name} for name in names.get("source", [])]
    models = {role: ", ".join(names[column]) for column, role in (("model", "teacher"), ("weak_model", "weak model"))
              if names.get(column)}
    return {"sources": sources, "models": models}


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _front_matter(name: str, license: str, splits: dict[str, int], files: list[str]) -> list[str]:
    meta: dict[str, Any] = {"license": license, "pretty_name": name,
                            "tags": ["reasoning", "synthetic", "sft", "natural-thoughts"]}
    by_split = {Path(f).stem: Path(f).name for f in files if Path(f).suffix in (".parquet", ".jsonl")}
    if by_split:
        meta["configs"] = [{"config_name": "default",
                            "data_files": [{"split": s, "path": by_split[s]} for s in splits if s in by_split]}]
    return ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", ""]


@dataclass
class Profile:
    """What a set of traces holds: verdicts, flags, reasoning length, strategies, domains.

    `verdicts` counts True / False / None (verified correct / wrong / undecided) from
    `verdict_column`; `evaluator` the source file's own verdicts when those are not the verdict
    column, and `agreement` how often both are decided and agree or disagree. None fields mean
    the traces lack that column.
    """

    rows: int
    verdict_column: str | None
    verdicts: Counter | None
    evaluator: Counter | None
    agreement: Counter | None
    flags: dict[str, int] | None
    cut_off: int | None
    lengths: np.ndarray
    length_unit: str
    strategies: Counter | None
    domain_column: str | None
    domains: Counter | None
    pass_rate: float | None = None
    failures: Counter | None = None


PASS_RATE, FAILURE_KIND = "score.pass_rate", "label.failure_kind"
"""The code verifier's columns the card reports: tests passed per program, the first failure's kind."""


def profile(ds: Dataset) -> Profile:
    """The `Profile` of `ds` (a pool or a selection)."""
    found = correctness(ds)
    flags = ds["flags"] if "flags" in ds.column_names else None
    strategies = None
    if STRATEGIES in ds.column_names:
        strategies = Counter(name for i, v in enumerate(ds[STRATEGIES]) for name in strategy_counts(v, i, STRATEGIES))
    where = domain_column(ds)
    lengths, unit = reasoning_lengths(ds)
    rates = [r for r in ds[PASS_RATE] if r is not None] if PASS_RATE in ds.column_names else []
    evaluator = agreement = None
    if found and found[1] != EVALUATOR and EVALUATOR in ds.column_names:
        theirs = [None if v is None else bool(v) for v in ds[EVALUATOR]]
        evaluator = Counter(theirs)
        agreement = Counter("agree" if ours == their else "disagree" for ours, their in zip(found[0], theirs)
                            if ours is not None and their is not None)
    return Profile(
        rows=len(ds),
        verdict_column=found[1] if found else None,
        verdicts=Counter(found[0]) if found else None,
        evaluator=evaluator,
        agreement=agreement,
        flags={f: sum(f in (row or []) for row in flags) for f in FLAGS} if flags is not None else None,
        cut_off=sum(any(f in (row or []) for f in CUT_OFF_FLAGS) for row in flags) if flags is not None else None,
        lengths=lengths,
        length_unit=unit,
        strategies=strategies,
        domain_column=where,
        domains=Counter(str(v) for v in ds[where]) if where else None,
        pass_rate=float(np.mean(rates)) if rates else None,
        failures=Counter(k for k in ds[FAILURE_KIND] if k) if FAILURE_KIND in ds.column_names else None,
    )


def _share(n: int, total: int) -> float:
    return n / total if total else 0.0


def _count(n: int | None, total: int) -> str:
    return "-" if n is None else f"{n} ({_share(n, total):.0%})" if total else str(n)


def card_warnings(selection: Selection, pool: Profile, picked: Profile) -> list[str]:
    """One sentence per problem a reader must see first: most of the selection wrong, cut off or
    unverified, or the budget not reached."""
    out = []
    budget = selection.budget_warning()
    if budget:
        out.append(budget)
    if not picked.rows:
        return out or ["the selection is empty."]
    if picked.verdicts is None:
        out.append("no selected trace is verified: the traces carry no correctness verdict "
                   "(`label.correct`); run `verify` or load the source's own verdicts.")
    else:
        col = f"`{picked.verdict_column}`"
        for verdict, what in ((False, f"wrong by {col}"), (None, f"unverified ({col} undecided)")):
            n = picked.verdicts[verdict]
            if _share(n, picked.rows) > MOST:
                pool_n = pool.verdicts[verdict] if pool.verdicts else 0
                out.append(f"{_share(n, picked.rows):.0%} of the selected traces are {what} "
                           f"(pool: {_share(pool_n, pool.rows):.0%}).")
    if picked.cut_off is not None and _share(picked.cut_off, picked.rows) > MOST:
        out.append(f"{_share(picked.cut_off, picked.rows):.0%} of the selected traces are cut off "
                   f"(flagged {' or '.join(f'`{f}`' for f in CUT_OFF_FLAGS)}; "
                   f"pool: {_share(pool.cut_off or 0, pool.rows):.0%}).")
    return out


def _length_cell(p: Profile, stat: Callable[[np.ndarray], float], unit: bool) -> str:
    if not len(p.lengths):
        return "-"
    return f"{stat(p.lengths):,.0f}" + (f" {p.length_unit}" if unit else "")


def contents_section(pool: Profile, picked: Profile) -> list[str]:
    """Pool and selection side by side: verdicts, flags, reasoning length, strategies, domains."""
    rows: list[list[Any]] = [["traces", pool.rows, picked.rows]]
    if pool.verdicts is not None and picked.verdicts is not None:
        words = verdict_words(picked.verdict_column)  # "verified" is ours only
        rows += [[f"{word} (`{picked.verdict_column}`)", _count(pool.verdicts[v], pool.rows),
                  _count(picked.verdicts[v], picked.rows)] for v, word in words.items()]
    else:
        rows.append(["correctness", "no verdict column", "no verdict column"])
    if pool.evaluator is not None and picked.evaluator is not None:
        rows += [[f"{word} (`{EVALUATOR}`)", _count(pool.evaluator[v], pool.rows),
                  _count(picked.evaluator[v], picked.rows)] for v, word in EVALUATOR_VERDICTS.items()]
    if pool.agreement is not None and picked.agreement is not None:
        rows += [[what, _count(pool.agreement[key], pool.rows), _count(picked.agreement[key], picked.rows)]
                 for key, what in AGREEMENT.items()]
    if pool.flags is not None and picked.flags is not None:
        rows.append(["cut off (" + " or ".join(CUT_OFF_FLAGS) + ")", _count(pool.cut_off, pool.rows),
                     _count(picked.cut_off, picked.rows)])
        rows += [[f"flag `{f}`", _count(pool.flags[f], pool.rows), _count(picked.flags[f], picked.rows)]
                 for f in FLAGS]
    if pool.pass_rate is not None:
        rows.append([f"programs: mean test pass rate (`{PASS_RATE}`)", f"{pool.pass_rate:.1%}",
                     "-" if picked.pass_rate is None else f"{picked.pass_rate:.1%}"])
    same = pool.length_unit == picked.length_unit  # else each cell names its own unit
    for label, stat in (("mean", np.mean), ("median", np.median)):
        rows.append([f"reasoning length, {label}" + (f" ({picked.length_unit})" if same else ""),
                     _length_cell(pool, stat, not same), _length_cell(picked, stat, not same)])
    lines = ["## What the subset holds", "", "The pool the selection was made from, beside the selection.", ""]
    lines += _table(["", "pool", "selected"], rows)
    for title, column, pool_counts, picked_counts in (
            ("Strategies (traces using each)", f"`{STRATEGIES}`", pool.strategies, picked.strategies),
            ("Domains", f"`{pool.domain_column}`", pool.domains, picked.domains),
            ("Programs' first failures", f"`{FAILURE_KIND}`", pool.failures, picked.failures)):
        if pool_counts is None or picked_counts is None:
            continue
        names = sorted(pool_counts | picked_counts, key=lambda n: (-pool_counts[n], -picked_counts[n], n))
        lines += ["", f"{title}, from {column}" + (f" ({TOP} most common in the pool)" if len(names) > TOP else "")
                  + ":", ""]
        lines += _table(["name", "pool", "selected"],
                        [[n, _count(pool_counts[n], pool.rows), _count(picked_counts[n], picked.rows)]
                         for n in names[:TOP]])
    return lines + [""]


def selection_section(selection: Selection) -> list[str]:
    """Kept/dropped per step, with dropped rows counted by reason kind (never one line per row)."""
    rows = []
    for s in selection.steps:
        params = json.loads(json.dumps({**s.params, **s.fitted}, default=str))
        reasons = "; ".join(f"{r}: {n}" for r, n in sorted(s.dropped.items(), key=lambda kv: (-kv[1], kv[0])))
        rows.append([s.name, params, s.n_in, s.n_kept, s.n_in - s.n_kept, reasons or "-"])
    budget = "" if selection.requested_k is None else f" (k={selection.requested_k} requested)"
    lines = ["## Selection", "", f"{len(selection)} of {len(selection.dataset)} traces were selected{budget}.", ""]
    lines += _table(["step", "parameters", "in", "kept", "dropped", "dropped by reason"], rows)
    return lines + [""]


def render_card(
    name: str,
    selection: Selection,
    stats: ExportStats,
    config: dict[str, Any] | None = None,
    sources: list[dict[str, Any]] | None = None,
    models: dict[str, Any] | None = None,
    manifests: dict[str, Path] | None = None,
    figures: dict[str, str] | None = None,
    notes: list[str] | None = None,
    pool: Dataset | None = None,
) -> str:
    """The card text (see `write_card`; `pool` defaults to the selection's own dataset)."""
    sources = sources or []
    pool_profile = profile(pool if pool is not None else selection.dataset)
    picked = profile(selection.subset())
    lines = _front_matter(name, card_license(sources), stats.splits, stats.files)
    lines += [f"# {name}", ""]
    warnings = card_warnings(selection, pool_profile, picked)
    if stats.rows_out and _share(stats.no_reasoning, stats.rows_out) > MOST:
        warnings.append(f"{_share(stats.no_reasoning, stats.rows_out):.0%} of the exported rows hold no reasoning "
                        "part (no think block), so they are System-1 rows, not System-2; if the traces do reason, "
                        "check how they were read (`trace_format`).")
    for warning in warnings:
        lines += [f"> **Warning:** {warning}", ""]
    lines += [f"> **Note:** {n}" for n in notes or []] + ([""] if notes else [])
    split_text = ", ".join(f"{k}: {v}" for k, v in stats.splits.items())
    lines += [f"Reasoning traces selected for supervised fine-tuning, in `{stats.format}` format "
              f"({stats.rows_out} examples; {split_text}). Made with natural-thoughts {library_version()}.", ""]
    lines += ["```python", "from datasets import load_dataset", "", 'ds = load_dataset("path/to/this/folder")', "```", ""]
    lines += contents_section(pool_profile, picked)
    lines += selection_section(selection)
    lines += ["## Export", ""]
    lines += _table(["setting", "value"], [["format", stats.format], ["rows selected", stats.rows_in],
                                           ["rows exported", stats.rows_out], ["splits", stats.splits]])
    if stats.max_tokens is not None:
        lines += [f"| token cap | {stats.max_tokens} ({stats.token_source}); {stats.overlong} over it, "
                  f"{'dropped' if stats.on_overlong == 'drop' else 'kept and flagged (`overlong`)'} |"]
    total = max(sum(stats.modes.values()), 1)
    mix = ", ".join(f"{m}: {n} ({n / total:.0%})" for m, n in stats.modes.items())
    lines += ["", "## System-1 / System-2 mix", "",
              "Counted by what each exported row holds: a System-2 row carries its reasoning in think tags, a "
              f"System-1 row its answer alone. Mix: {mix}."]
    if stats.no_reasoning:
        lines.append(f"{stats.no_reasoning} rows meant for System-2 hold no reasoning part (no think block), so they "
                     "are written, and counted, as System-1.")
    lines += ["", "## Sources", ""]
    lines += _table(["input", "source", "preset", "split", "used for", "licence"],
                    [[s.get("kind", "-"), s.get("source", "-"), s.get("preset") or "-", s.get("split") or "-",
                      s.get("use", EXPORTED), s.get("license") or "not stated"] for s in sources]) + [""]
    if models:
        lines += ["## Models", ""] + _table(["role", "model"], [[k, v] for k, v in models.items()]) + [""]
    hashes = prompt_hashes(manifests or {})
    if hashes:
        lines += ["## Prompt hashes", ""] + _table(["stage", "field", "sha256 (16)"], [list(h) for h in hashes]) + [""]
    if figures:
        lines += ["## Figures", ""] + [f"![{title}]({path})" for title, path in figures.items()] + [""]
    if config is not None:
        lines += ["## Configuration", "", "```yaml", yaml.safe_dump(config, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


def write_card(
    folder: str | Path,
    name: str,
    selection: Selection,
    stats: ExportStats,
    pool: Dataset | None = None,
    make_figures: bool = True,
    **kwargs: Any,
) -> Path:
    """Write `folder/README.md` and, with `make_figures`, its PNGs under `folder/figures/`.

    `pool` is the trace set the selection was made from (default: the selection's own dataset);
    `kwargs` go to `render_card` (config, sources, models, manifests, notes).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    if make_figures:
        paths = card_figures(pool if pool is not None else selection.dataset, selection.subset(), folder / FIGURES)
        figures = {title: p.relative_to(folder).as_posix() for title, p in paths.items()}
    path = folder / CARD
    path.write_text(render_card(name, selection, stats, figures=figures, pool=pool, **kwargs), encoding="utf-8")
    return path
