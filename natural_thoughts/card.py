"""The dataset card: a `README.md` beside the export saying what was selected, how, and from what.

The YAML header is a Hugging Face dataset card (licence, tags, data files per split), so
`datasets.load_dataset(folder)` and the hub both read the export as it is. Nothing in the card
depends on the clock, so the same run gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from datasets import Dataset

from .export import ExportStats
from .selectors.base import Selection

CARD = "README.md"
FIGURES = "figures"


def library_version() -> str:
    """The installed natural-thoughts version."""
    try:
        return version("natural-thoughts")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        from . import __version__

        return __version__


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
    """The hub licence tag: the inputs' shared licence, else "other"."""
    found = {s.get("license") for s in sources}
    return found.pop() if len(found) == 1 and None not in found else "other"


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


def selection_section(selection: Selection) -> list[str]:
    """Kept/dropped per step with reasons, and the most common reasons of the picks."""
    rows = []
    for s in selection.steps:
        params = json.loads(json.dumps(s.params, default=str))
        reasons = "; ".join(f"{r}: {n}" for r, n in sorted(s.dropped.items(), key=lambda kv: (-kv[1], kv[0])))
        rows.append([s.name, params, s.n_in, s.n_kept, s.n_in - s.n_kept, reasons or "-"])
    lines = ["## Selection", "", f"{len(selection)} of {len(selection.dataset)} traces were selected.", ""]
    lines += _table(["step", "parameters", "in", "kept", "dropped", "dropped by reason"], rows)
    top = Counter(selection.reasons).most_common(10)
    if top:
        lines += ["", "Most common reasons a trace was picked:", ""]
        lines += _table(["reason", "traces"], [[r, n] for r, n in sorted(top, key=lambda kv: (-kv[1], kv[0]))])
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
) -> str:
    """The card text (see `write_card`)."""
    sources = sources or []
    lines = _front_matter(name, card_license(sources), stats.splits, stats.files)
    lines += [f"# {name}", ""]
    lines += [f"> **Note:** {n}" for n in notes or []] + ([""] if notes else [])
    split_text = ", ".join(f"{k}: {v}" for k, v in stats.splits.items())
    lines += [f"Reasoning traces selected for supervised fine-tuning, in `{stats.format}` format "
              f"({stats.rows_out} examples; {split_text}). Made with natural-thoughts {library_version()}.", ""]
    lines += ["```python", "from datasets import load_dataset", "", 'ds = load_dataset("path/to/this/folder")', "```", ""]
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
              f"System-2 rows keep the reasoning in think tags; System-1 rows keep the answer only. Mix: {mix}.", ""]
    lines += ["## Sources", ""]
    lines += _table(["input", "source", "preset", "split", "licence"],
                    [[s.get("kind", "-"), s.get("source", "-"), s.get("preset") or "-", s.get("split") or "-",
                      s.get("license") or "not stated"] for s in sources]) + [""]
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
    from .plots import card_figures

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    if make_figures:
        paths = card_figures(pool if pool is not None else selection.dataset, selection.subset(), folder / FIGURES)
        figures = {title: p.relative_to(folder).as_posix() for title, p in paths.items()}
    path = folder / CARD
    path.write_text(render_card(name, selection, stats, figures=figures, **kwargs), encoding="utf-8")
    return path
