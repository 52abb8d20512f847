"""Per-trace scores added as `score.*` columns."""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from .schema import REASONING_TOKENS, REASONING_TOKENS_SOURCE, require_columns

APPROX_SOURCE = "approx:chars/4"


def add_reasoning_tokens(
    ds: Dataset,
    tokenizer: Any = None,
    approximate: bool = False,
    batch_size: int = 1000,
) -> Dataset:
    """Add `score.reasoning_tokens` and `score.reasoning_tokens_source` to a trace set.

    Counts come from the engine that generated the trace (`reasoning_tokens`) when present;
    otherwise from `tokenizer` (a Hugging Face tokenizer or its name), counted in batches; a
    characters/4 estimate is used only with `approximate=True`, and labelled as such.
    Rows that still cannot be counted raise an error naming the first one.
    """
    require_columns(ds.column_names, ["reasoning"], "the traces")
    if tokenizer is not None and isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    has_engine_counts = "reasoning_tokens" in ds.column_names
    tokenizer_name = getattr(tokenizer, "name_or_path", None) or "tokenizer"

    def count(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        engine = batch["reasoning_tokens"] if has_engine_counts else [None] * len(batch["reasoning"])
        need = [i for i, v in enumerate(engine) if v is None]
        counts, sources = list(engine), ["engine" if v is not None else None for v in engine]
        if need and tokenizer is not None:
            texts = [batch["reasoning"][i] or "" for i in need]
            ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            for i, tok in zip(need, ids):
                counts[i], sources[i] = len(tok), f"tokenizer:{tokenizer_name}"
        elif need and approximate:
            for i in need:
                counts[i], sources[i] = (len(batch["reasoning"][i] or "") + 3) // 4, APPROX_SOURCE
        elif need:
            raise ValueError(
                f"{len(need)} trace(s) have no engine token count (first: trace "
                f"{batch.get('trace_id', ['?'] * len(engine))[need[0]]!r}); pass tokenizer=<name> "
                "to count them, or approximate=True for a labelled characters/4 estimate"
            )
        return {REASONING_TOKENS: counts, REASONING_TOKENS_SOURCE: sources}

    drop = [c for c in (REASONING_TOKENS, REASONING_TOKENS_SOURCE) if c in ds.column_names]
    return ds.remove_columns(drop).map(count, batched=True, batch_size=batch_size, desc="reasoning tokens")
