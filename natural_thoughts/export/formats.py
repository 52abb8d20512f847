"""Selected traces → the dataset an SFT repo trains on: TRL `messages`, ShareGPT, prompt/completion or raw.

Rows marked System-1 by `mixing.mix` (column `mode`) keep only the condensed answer; every other row
keeps its reasoning inside think tags (System-2), when it has one: a row without a reasoning part is
its answer alone, so it is counted System-1 (`exported_modes`). A `validation` split takes whole
problems, never part of one problem's samples. A token cap drops (or flags) responses that are too
long. `export.writer.export` writes the files and the card.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict

from ..mixing import INSTRUCTION_COLUMN, MODE_COLUMN, SYSTEM1, SYSTEM2, modes_of
from ..registry import Registry
from ..schema import require_columns
from ..selectors.base import Selection

ON_OVERLONG = ("drop", "flag")
THINK_TAGS = ("<think>", "</think>")
KEEP_COLUMNS = ("problem_id", "trace_id", MODE_COLUMN)
SHAREGPT_ROLES = {"user": "human", "assistant": "gpt"}
"""LLaMA-Factory's default ShareGPT tags (`from`: human / gpt); the system prompt is a `system` column."""


@dataclass
class ExportStats:
    """What an export did: rows in and out, rows over the token cap, the split sizes, the mode mix."""

    format: str
    rows_in: int
    rows_out: int
    overlong: int = 0
    on_overlong: str | None = None
    max_tokens: int | None = None
    token_source: str | None = None
    splits: dict[str, int] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    """Rows per mode as exported (`exported_modes`): what each row holds, not only what it was marked."""
    no_reasoning: int = 0
    """Rows marked System-2 (or not marked) that hold no reasoning part, so are exported as System-1."""
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assistant_text(reasoning: str, answer: str, think_tags: tuple[str, str] = THINK_TAGS) -> str:
    """The System-2 assistant turn: the reasoning inside think tags, then the answer."""
    open_tag, close_tag = think_tags
    return f"{open_tag}\n{reasoning}\n{close_tag}\n\n{answer}" if reasoning else answer


def _batch_responses(batch: dict[str, list[Any]], think_tags: tuple[str, str]) -> list[str]:
    """The assistant text of each row of a batch: the answer alone for System-1, else the full trace."""
    modes = batch.get(MODE_COLUMN) or [SYSTEM2] * len(batch["answer"])
    return [(ans or "") if mode == SYSTEM1 else assistant_text(rsn or "", ans or "", think_tags)
            for rsn, ans, mode in zip(batch["reasoning"], batch["answer"], modes)]


def exported_modes(traces: Dataset) -> tuple[list[str], int]:
    """(the mode each row is exported in, how many rows marked System-2 hold no reasoning). A row is
    System-2 only when it is marked so (or not marked) and has a reasoning part to put in think
    tags; a row without one is written as its answer alone, which is System-1 whatever its mark."""
    marked = modes_of(traces)
    reasoning = traces.select_columns(["reasoning"]).with_format("arrow")[:]["reasoning"]
    holds = pc.fill_null(pc.greater(pc.utf8_length(reasoning), 0), False).to_pylist()
    modes = [SYSTEM2 if mode == SYSTEM2 and has else SYSTEM1 for mode, has in zip(marked, holds)]
    return modes, sum(mode == SYSTEM2 and not has for mode, has in zip(marked, holds))


def response_tokens(traces: Dataset, think_tags: tuple[str, str] = THINK_TAGS, tokenizer: Any = None,
                    batch_size: int = 1000) -> tuple[np.ndarray, str]:
    """Tokens of each response: counted by `tokenizer` (a name or instance) when given, else the
    engine's own counts (reasoning_tokens + answer_tokens; answer_tokens alone for System-1)."""
    if tokenizer is None:
        require_columns(traces.column_names, ["reasoning_tokens", "answer_tokens"],
                        "the traces (max_tokens without a tokenizer needs the engine's counts)")
    elif isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    columns = [c for c in ("reasoning", "answer", "reasoning_tokens", "answer_tokens", MODE_COLUMN, "trace_id")
               if c in traces.column_names]
    view, counts = traces.select_columns(columns), []
    for start in range(0, len(view), batch_size):
        batch = view[start:start + batch_size]
        if tokenizer is not None:
            ids = tokenizer(_batch_responses(batch, think_tags), add_special_tokens=False)["input_ids"]
            counts += [len(x) for x in ids]
            continue
        modes = batch.get(MODE_COLUMN) or [SYSTEM2] * len(batch["answer"])
        for j, (r, a, mode) in enumerate(zip(batch["reasoning_tokens"], batch["answer_tokens"], modes)):
            if a is None or (r is None and mode != SYSTEM1):
                tid = batch["trace_id"][j] if "trace_id" in batch else start + j
                raise ValueError(f"trace {tid!r} (row {start + j}) has no engine token count; pass "
                                 "tokenizer=<name> to count the responses with a tokenizer")
            counts.append(a if mode == SYSTEM1 else r + a)
    source = "engine" if tokenizer is None else f"tokenizer:{getattr(tokenizer, 'name_or_path', '')}"
    return np.array(counts, dtype=np.int64), source


@dataclass
class Turns:
    """One batch of rows as a format function sees it: the user and assistant texts, the system
    prompt, the columns every format carries (`kept`), and the whole batch."""

    batch: dict[str, list[Any]]
    system_prompt: str | None
    think_tags: tuple[str, str]
    keep: list[str]
    tokenizer: Any = None
    """The export's tokenizer (a name or instance), for formats that tokenize; None: none given."""

    @property
    def kept(self) -> dict[str, list[Any]]:
        """The id / mode / overlong columns of the batch, carried into the export."""
        return {c: self.batch[c] for c in self.keep}

    @property
    def users(self) -> list[str]:
        """The user turn of each row: the problem, then the mixing instruction when there is one."""
        instructions = self.batch.get(INSTRUCTION_COLUMN) or [None] * len(self.batch["problem"])
        return [f"{p}\n\n{i}" if i else p for p, i in zip(self.batch["problem"], instructions)]

    @property
    def replies(self) -> list[str]:
        """The assistant turn of each row (System-1: the answer alone; else think tags + answer)."""
        return _batch_responses(self.batch, self.think_tags)

    def messages(self) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
        """(system turn as a list, user turns, assistant turns) as role/content messages."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return (system, [{"role": "user", "content": u} for u in self.users],
                [{"role": "assistant", "content": r} for r in self.replies])


ExportFormat = Callable[[Turns], dict[str, list[Any]]]
"""A training format: the columns of the exported rows of one batch (the input columns are dropped)."""
FORMATS: Registry[ExportFormat] = Registry("export_format")
"""Training formats by name; third parties add one through the entry-point group
`natural_thoughts.export_formats`."""


@FORMATS.register(name="messages")
def messages_format(t: Turns) -> dict[str, list[Any]]:
    """TRL conversational: `messages` = [system?, user, assistant]."""
    system, users, replies = t.messages()
    return {**t.kept, "messages": [[*system, u, r] for u, r in zip(users, replies)]}


@FORMATS.register(name="prompt_completion")
def prompt_completion_format(t: Turns) -> dict[str, list[Any]]:
    """TRL conversational prompt/completion: `prompt` = [system?, user], `completion` = [assistant]."""
    system, users, replies = t.messages()
    return {**t.kept, "prompt": [[*system, u] for u in users], "completion": [[r] for r in replies]}


@FORMATS.register(name="sharegpt")
def sharegpt_format(t: Turns) -> dict[str, list[Any]]:
    """LLaMA-Factory ShareGPT: `conversations` of from/value (human / gpt), a `system` column."""
    _, users, replies = t.messages()
    out = {**t.kept, "conversations": [[{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in (u, r)]
                                       for u, r in zip(users, replies)]}
    return {**out, "system": [t.system_prompt] * len(users)} if t.system_prompt else out


@FORMATS.register(name="raw")
def raw_format(t: Turns) -> dict[str, list[Any]]:
    """Every column, plus `response` (the assistant text)."""
    return {**t.batch, "response": t.replies}


def format_rows(traces: Dataset, format: str = "messages", system_prompt: str | None = None,
                think_tags: tuple[str, str] = THINK_TAGS, keep_columns: tuple[str, ...] = KEEP_COLUMNS,
                tokenizer: Any = None) -> Dataset:
    """Rows in training `format` (a name in `FORMATS`; see `export`), built batch by batch."""
    check_format(format)
    build = FORMATS.get(format)
    modes_of(traces)  # bad mode values fail here, naming the row
    keep = [c for c in (*keep_columns, "overlong") if c in traces.column_names]
    return traces.map(lambda b: build(Turns(b, system_prompt, think_tags, keep, tokenizer)), batched=True,
                      remove_columns=traces.column_names, desc=f"export ({format})")


def check_format(format: str) -> None:
    """Refuse an unknown training format, listing the known ones."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; known formats: {FORMATS.names()}")


def split_by_problem(ds: Dataset, validation_fraction: float, seed: int = 0) -> dict[str, Dataset]:
    """`train` and (when the fraction is > 0) `validation`, drawn over whole problems, seeded.

    The validation share is rounded to whole problems (at least one, never all of them).
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if validation_fraction == 0 or len(ds) == 0:
        return {"train": ds}
    require_columns(ds.column_names, ["problem_id"], "the export (a validation split needs problem ids)")
    problems = sorted(set(ds["problem_id"]))
    if len(problems) < 2:
        raise ValueError(f"a validation split needs at least 2 problems; the export holds {len(problems)}")
    n_val = min(max(1, round(validation_fraction * len(problems))), len(problems) - 1)
    order = np.random.default_rng(seed).permutation(len(problems))
    held_out = {problems[i] for i in order[:n_val]}
    is_val = np.array([pid in held_out for pid in ds["problem_id"]])
    return {"train": ds.select(np.flatnonzero(~is_val).tolist()),
            "validation": ds.select(np.flatnonzero(is_val).tolist())}


def prepare_export(
    selection: Selection | Dataset,
    format: str = "messages",
    system_prompt: str | None = None,
    think_tags: tuple[str, str] | list[str] = THINK_TAGS,
    validation_fraction: float = 0.0,
    seed: int = 0,
    max_tokens: int | None = None,
    on_overlong: str = "drop",
    tokenizer: Any = None,
    keep_columns: tuple[str, ...] = KEEP_COLUMNS,
) -> tuple[dict[str, Dataset], ExportStats]:
    """The splits of an export and what was done; `export` writes them (arguments as there)."""
    traces = selection.subset() if isinstance(selection, Selection) else selection
    require_columns(traces.column_names, ["problem", "reasoning", "answer"], "the traces to export")
    check_format(format)
    if on_overlong not in ON_OVERLONG:
        raise ValueError(f"on_overlong must be one of {list(ON_OVERLONG)}, got {on_overlong!r}")
    tags = (str(think_tags[0]), str(think_tags[1]))
    stats = ExportStats(format=format, rows_in=len(traces), rows_out=len(traces))
    if max_tokens is not None:
        counts, stats.token_source = response_tokens(traces, tags, tokenizer)
        over = counts > max_tokens
        stats.overlong, stats.on_overlong, stats.max_tokens = int(over.sum()), on_overlong, max_tokens
        if on_overlong == "drop":
            traces = traces.select(np.flatnonzero(~over).tolist())
        else:
            traces = traces.add_column("overlong", over.tolist())
    stats.rows_out = len(traces)
    modes, stats.no_reasoning = exported_modes(traces)
    stats.modes = dict(sorted(Counter(modes).items()))
    rows = format_rows(traces, format, system_prompt, tags, keep_columns, tokenizer)
    splits = split_by_problem(rows, validation_fraction, seed)
    stats.splits = {name: len(part) for name, part in splits.items()}
    return splits, stats


FILE_FORMATS: Registry[Callable[[dict[str, Dataset], Path], list[Path]]] = Registry("file_format")
"""File layouts by name: each writes the splits under a folder and returns what it wrote; third
parties add one through the entry-point group `natural_thoughts.file_formats`."""


def per_split(extension: str, write: Callable[[Dataset, Path], None]) -> Callable[[dict[str, Dataset], Path], list[Path]]:
    """A layout of one `<split>.<extension>` file per split."""

    def write_all(splits: dict[str, Dataset], folder: Path) -> list[Path]:
        for name, ds in splits.items():
            write(ds, folder / f"{name}.{extension}")
        return [folder / f"{name}.{extension}" for name in splits]

    return write_all


FILE_FORMATS.register(per_split("parquet", lambda ds, path: ds.to_parquet(str(path))), name="parquet")
FILE_FORMATS.register(per_split("jsonl", lambda ds, path: ds.to_json(str(path), lines=True, force_ascii=False)),
                      name="jsonl")


@FILE_FORMATS.register(name="dataset")
def _saved_dataset(splits: dict[str, Dataset], folder: Path) -> list[Path]:
    """One `datasets` folder, `<folder>/dataset` (`load_from_disk`)."""
    target = folder / "dataset"
    (splits["train"] if len(splits) == 1 else DatasetDict(splits)).save_to_disk(str(target))
    return [target]


def write_splits(splits: dict[str, Dataset], path: str | Path, file_format: str = "parquet") -> list[Path]:
    """Write the splits in `file_format` (a name in `FILE_FORMATS`) under `path`; the outputs of
    every known layout (`<split>.<name>`, a `<name>` folder) go first, so none is left stale."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"unknown file_format {file_format!r}; choose one of {FILE_FORMATS.names()}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILE_FORMATS.names():
        for split in ("train", "validation"):
            (folder / f"{split}.{name}").unlink(missing_ok=True)
        shutil.rmtree(folder / name, ignore_errors=True)
    return FILE_FORMATS.get(file_format)(splits, folder)


def upload(what: str | Path | DatasetDict, repo_id: str, private: bool = True) -> None:
    """Push an export folder (data files, card, figures) or a DatasetDict to a hub dataset repo."""
    if isinstance(what, DatasetDict):
        what.push_to_hub(repo_id, private=private)
        return
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(what), repo_id=repo_id, repo_type="dataset",
                      ignore_patterns=[".*", "dataset/*"])
