"""Selected traces → a dataset an SFT repo trains on directly (TRL conversational `messages`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from .schema import require_columns
from .selectors.base import Selection

FILE_FORMATS = ("parquet", "jsonl", "dataset")


def assistant_text(reasoning: str, answer: str, think_tags: tuple[str, str] = ("<think>", "</think>")) -> str:
    """The assistant turn: the reasoning inside think tags, then the answer."""
    open_tag, close_tag = think_tags
    return f"{open_tag}\n{reasoning}\n{close_tag}\n\n{answer}" if reasoning else answer


def to_messages(
    traces: Dataset,
    system_prompt: str | None = None,
    think_tags: tuple[str, str] = ("<think>", "</think>"),
    keep_columns: tuple[str, ...] = ("problem_id", "trace_id"),
) -> Dataset:
    """A `messages` column (user = problem, assistant = reasoning in think tags + answer)."""
    require_columns(traces.column_names, ["problem", "reasoning", "answer"], "the traces to export")
    keep = [c for c in keep_columns if c in traces.column_names]

    def build(row: dict[str, Any]) -> dict[str, Any]:
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages += [
            {"role": "user", "content": row["problem"]},
            {"role": "assistant", "content": assistant_text(row["reasoning"] or "", row["answer"] or "", think_tags)},
        ]
        return {"messages": messages}

    drop = [c for c in traces.column_names if c not in keep]
    return traces.map(build, remove_columns=drop, desc="messages")


def export(
    selection: Selection | Dataset,
    path: str | Path | None = None,
    format: str = "messages",
    file_format: str = "parquet",
    system_prompt: str | None = None,
    think_tags: tuple[str, str] = ("<think>", "</think>"),
) -> Dataset:
    """Turn a selection (or a trace set) into a training dataset, and write it when `path` is set.

    `file_format`: "parquet" (`path/train.parquet`), "jsonl" (`path/train.jsonl`) or "dataset"
    (`Dataset.save_to_disk(path)`); each loads with `datasets` without glue.
    """
    traces = selection.subset() if isinstance(selection, Selection) else selection
    if format != "messages":
        raise ValueError(f"unknown export format {format!r}; known formats: ['messages']")
    out = to_messages(traces, system_prompt=system_prompt, think_tags=think_tags)
    if path is not None:
        write(out, path, file_format)
    return out


def write(ds: Dataset, path: str | Path, file_format: str = "parquet", split: str = "train") -> Path:
    """Write `ds` under folder `path` in `file_format`; returns the file or folder written."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"unknown file_format {file_format!r}; choose one of {list(FILE_FORMATS)}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if file_format == "dataset":
        target = folder / "dataset"
        ds.save_to_disk(str(target))
        return target
    target = folder / f"{split}.{file_format}"
    if file_format == "parquet":
        ds.to_parquet(str(target))
    else:
        ds.to_json(str(target), lines=True, force_ascii=False)
    return target
