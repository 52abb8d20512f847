"""Per-trace scores added as `score.*` columns.

A score is computed as an Arrow array over batches and attached as a new column: the other columns
are neither copied nor rewritten, so adding a score costs the size of the score, not of the data.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from . import cache
from .llm.store import fingerprint_hash
from .parallel import check_executor, map_batches, processes
from .schema import REASONING_TOKENS, REASONING_TOKENS_SOURCE, require_columns

CHARS_PER_TOKEN = 4
"""The characters one token stands for in the labelled estimate (`approximate=True`)."""
APPROX_SOURCE = f"approx:chars/{CHARS_PER_TOKEN}"


def non_empty(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a text cell is a non-empty string (null and "" are False); read from the offsets
    alone (a byte length), so the characters are not scanned."""
    return pc.fill_null(pc.greater(pc.binary_length(values), 0), False)


def _ints(batch: pa.Table, name: str, present: bool) -> pa.ChunkedArray | pa.Array:
    """Column `name` as int64, or all nulls when the dataset has no such column."""
    return pc.cast(batch.column(name), pa.int64()) if present else pa.nulls(batch.num_rows, pa.int64())


def _count_batch(tokenizer: Any, tokenizer_name: str, approximate: bool, batch: pa.Table) -> pa.Table:
    """The two score columns of one batch, as `add_reasoning_tokens` documents."""
    names = batch.column_names
    own = pc.or_(non_empty(batch.column("reasoning")), pc.invert(non_empty(batch.column("answer"))))
    engine = pc.if_else(own, _ints(batch, "reasoning_tokens", "reasoning_tokens" in names),
                        _ints(batch, "answer_tokens", "answer_tokens" in names))
    need = pc.is_null(engine).to_numpy(zero_copy_only=False)
    counts: Any = engine
    sources: Any = pc.if_else(need, pa.scalar(None, pa.string()), pa.scalar("engine"))
    if need.any() and tokenizer is not None:
        rows = np.flatnonzero(need)
        texts = pc.if_else(own, batch.column("reasoning"), batch.column("answer")).take(rows).to_pylist()
        ids = tokenizer([t or "" for t in texts], add_special_tokens=False)["input_ids"]
        filled = engine.to_numpy(zero_copy_only=False).astype(object)
        filled[rows] = [len(t) for t in ids]
        counts = pa.array(filled.tolist(), pa.int64())
        sources = pc.if_else(need, pa.scalar(f"tokenizer:{tokenizer_name}"), sources)
    elif need.any() and approximate:
        length = pc.if_else(own, pc.utf8_length(batch.column("reasoning")), pc.utf8_length(batch.column("answer")))
        chars = pc.cast(pc.fill_null(length, 0), pa.int64())
        approx = pc.divide(pc.add(chars, CHARS_PER_TOKEN - 1), CHARS_PER_TOKEN)  # rounded up
        counts = pc.if_else(need, approx, engine)
        sources = pc.if_else(need, pa.scalar(APPROX_SOURCE), sources)
    elif need.any():
        first = int(np.argmax(need))
        trace = batch.column("trace_id")[first].as_py() if "trace_id" in names else "?"
        raise ValueError(
            f"{int(need.sum())} trace(s) have no engine token count (first: trace {trace!r}); pass "
            "tokenizer=<name> to count them, or approximate=True for a labelled characters/4 estimate"
        )
    sources = pc.if_else(own, sources, pc.binary_join_element_wise(sources, ":answer", ""))
    counts, sources = pa.chunked_array([counts], pa.int64()), pa.chunked_array([sources], pa.string())
    return pa.table({REASONING_TOKENS: counts, REASONING_TOKENS_SOURCE: sources})


def add_reasoning_tokens(
    ds: Dataset,
    tokenizer: Any = None,
    approximate: bool = False,
    batch_size: int = 1000,
    num_proc: int | None = None,
    executor: str = "local",
) -> Dataset:
    """Add `score.reasoning_tokens` and `score.reasoning_tokens_source` to a trace set.

    Counts come from the engine that generated the trace (`reasoning_tokens`) when present;
    otherwise from `tokenizer` (a Hugging Face tokenizer or its name), counted in batches; a
    characters/4 estimate is used only with `approximate=True`, and labelled as such.
    A trace with no reasoning part (`plain`: a short answer or a CoT the parser could not split)
    is measured by its answer, the only text it has, and its source says so (`…:answer`): no
    non-empty completion is measured as 0 reasoning tokens.
    Rows that still cannot be counted raise an error naming the first one (of the first batch
    of `batch_size` rows that has any). The two columns are computed over Arrow batches and
    written to the cache as new columns, memory-mapped; the rest of the dataset is not rewritten.
    Tokenizer counts run in `num_proc` processes (None: one per CPU from `parallel.PARALLEL_ROWS`
    rows), or with `executor="ray"` as Ray tasks; every way gives the same counts.
    """
    check_executor(executor, "add_reasoning_tokens")
    require_columns(ds.column_names, ["reasoning", "answer"], "the traces")
    if tokenizer is not None and isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    tokenizer_name = getattr(tokenizer, "name_or_path", None) or "tokenizer"
    wanted = [c for c in ("reasoning", "answer", "reasoning_tokens", "answer_tokens", "trace_id") if c in ds.column_names]
    view = ds.select_columns(wanted).with_format("arrow")
    layout = pa.schema([(REASONING_TOKENS, pa.int64()), (REASONING_TOKENS_SOURCE, pa.string())])
    batches = (view[start : start + batch_size] for start in range(0, len(view), batch_size))
    procs = processes(num_proc, len(view)) if tokenizer is not None else 1  # Arrow arithmetic needs no helpers
    tables = map_batches(partial(_count_batch, tokenizer, tokenizer_name, approximate), batches, executor, procs)
    how = f"{tokenizer_name if tokenizer is not None else ''}/{approximate}"
    key = fingerprint_hash([ds._fingerprint, "reasoning_tokens", how, cache.code_version(__file__)])
    return cache.attach(ds, tables, layout, key)
