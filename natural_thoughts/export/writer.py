"""`export`: a selection (or a trace set) → the training files and, beside them, the dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from ..selectors.base import Selection
from .formats import THINK_TAGS, prepare_export, upload, write_splits


def export(
    selection: Selection | Dataset,
    path: str | Path | None = None,
    format: str = "messages",
    file_format: str = "parquet",
    system_prompt: str | None = None,
    think_tags: tuple[str, str] | list[str] = THINK_TAGS,
    validation_fraction: float = 0.0,
    seed: int = 0,
    max_tokens: int | None = None,
    on_overlong: str = "drop",
    tokenizer: Any = None,
    push_to_hub: str | None = None,
    private: bool = True,
    card: bool = True,
    name: str | None = None,
    figures: bool = True,
) -> Dataset | DatasetDict:
    """Turn a selection (or a trace set) into a training dataset, and write it when `path` is set.

    `format`: "messages" (TRL conversational: system?, user = problem, assistant =
    `<think>reasoning</think>` + answer), "sharegpt" (LLaMA-Factory: `conversations` of from/value
    with human/gpt, optional `system` column), "prompt_completion" (TRL conversational
    prompt/completion) or "raw" (every column plus `response`). `file_format`: "parquet" /
    "jsonl" (`path/train.*`, `path/validation.*`) or "dataset" (`save_to_disk(path/"dataset")`).
    `validation_fraction` holds out that share of problems (seeded by `seed`). `max_tokens` caps the
    response length (counted by `tokenizer`, else the engine's counts): `on_overlong="drop"` removes
    longer rows, "flag" keeps them with `overlong=True`. `push_to_hub` uploads to that dataset repo.

    With `path` and `card`, the dataset card `README.md` (with its figures unless `figures=False`)
    is written beside the files, as `run` writes it (`export.card.write_card`): the same warnings,
    pool beside selection, steps, export settings and System-1/System-2 mix. Its sources and models
    are read from the rows (`source`, `model`, `weak_model`); the configuration, prompt hashes and
    licences appear only in a card written by `run`, which knows its config. `name` titles the card
    (default: the folder's name). A plain trace set is carded as a selection of all its rows.
    Returns a `Dataset` (no validation split) or a `DatasetDict`.
    """
    splits, stats = prepare_export(selection, format, system_prompt, think_tags, validation_fraction, seed,
                                   max_tokens, on_overlong, tokenizer)
    if path is not None:
        stats.files = [str(p) for p in write_splits(splits, path, file_format)]
        if card:
            from .card import rows_provenance, write_card  # matplotlib: imported only when a card is written

            chosen = selection if isinstance(selection, Selection) else everything(selection)
            write_card(path, name or Path(path).resolve().name, chosen, stats, make_figures=figures,
                       **rows_provenance(chosen.dataset))
    if push_to_hub:
        upload(path if path is not None and file_format != "dataset" else DatasetDict(splits), push_to_hub, private)
    return splits["train"] if len(splits) == 1 else DatasetDict(splits)


def everything(traces: Dataset) -> Selection:
    """A trace set as a selection of all its rows, in order (what exporting it as given selects)."""
    n = len(traces)
    return Selection(dataset=traces, indices=np.arange(n), scores=np.zeros(n), reasons=["exported as given"] * n)
