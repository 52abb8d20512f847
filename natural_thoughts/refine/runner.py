"""`refine()`: refinement passes run stage by stage on the model-call layer, each stage a `Refine`
model pass (the request builder `request_messages`, the row maker `make_row`) through `run_pass`.

Stage k's inputs are stage k−1's rows (the traces given, for the first), so every row's parent is a
row of the stage before. With `output_dir`, each stage writes resumable shards under
`<output_dir>/<step>-<stage name>-<prompt sha256[:12]>/`, whose manifest holds the model, sampling,
prompt and the fingerprint of the stage before it: calling again asks only what is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import pandas as pd
import pyarrow as pa
from datasets import Dataset

from ..llm.backends import DEFAULT_BACKEND, Backend, Completion, Request, Response, build_backend, close
from ..llm.passes import Key, ModelPass, Work
from ..llm.requests import request_seed
from ..llm.runner import BATCH_SIZE, run_pass
from ..llm.store import fingerprint_hash
from ..load.sources import load_traces
from ..registry import Spec
from ..schema import PROBLEM_COLUMNS, TRACE_SCHEMA, SamplingConfig, as_dict, require_columns
from . import lineage
from .passes import DEFAULT_PASSES, RefinePass, RefineStage, child_id, expand, make_row, request_messages, skip_reason
from .report import stage_report

log = logging.getLogger(__name__)

Keep = Literal["final", "all"]
KEEP: tuple[str, ...] = get_args(Keep)
DEFAULT_KEEP: Keep = "final"
"""The rows `refine` returns: the last stage's (`final`), or the originals and every stage's (`all`)."""
SCHEMA = pa.schema([*TRACE_SCHEMA, *lineage.LINEAGE_FIELDS])
"""The refined rows' shard schema: the trace columns, then the lineage."""
SKIPPED = "not refined: "
"""Prefix of the error of a row whose parent could not be refined (done; a backend error is asked again)."""


@dataclass(frozen=True)
class Refine(ModelPass):
    """One refinement stage as a model pass: one request per parent trace (keyed by its `trace_id`),
    one row per parent (`make_row`), token counts from the engine's completion tokens.

    A parent that cannot be refined (`skip_reason`) gets an error row without a request, so every
    stage holds one row per original; a failed request's error row is asked again on resume.
    """

    stage: RefineStage
    sampling: dict[str, Any]
    upstream: str = ""
    """The fingerprint hash of the stage before ("" for the first): a changed earlier stage is another run."""
    schema = SCHEMA
    key = ("trace_id",)
    unit = "trace"
    columns = (*PROBLEM_COLUMNS, "trace_id", "sample_index", "completion", "reasoning", "answer", "final_answer",
               "error", lineage.STEP)
    error_column = "error"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"refine {self.stage.name}"

    @property
    def folder(self) -> str:
        """The stage's shard folder under a run's output_dir."""
        return f"{self.stage.step}-{self.stage.name}-{self.stage.refine_pass.prompt_sha256[:12]}"

    def fingerprint(self, engine: Backend) -> dict[str, Any]:
        p = self.stage.refine_pass
        return {"pass": "refine", "model": engine.model_name, "reasoning_parser": getattr(engine, "reasoning_parser", None),
                "stage": self.stage.name, "step": self.stage.step, "prompt_version": p.prompt_version,
                "prompt_sha256": p.prompt_sha256, "show_reference": p.show_reference, "structure": p.structure,
                "sampling": self.sampling, "upstream": self.upstream}

    def keys(self, unit: Any) -> list[Key]:
        return [(child_id(unit, self.stage.step),)]

    def is_done(self, error: str | None) -> bool:
        return error is None  # a skipped row asks nothing: it is made again, so a parent that recovers is refined

    def requests(self, work: list[Work]) -> list[Request | None]:
        seed = int(self.sampling["seed"])
        return [None if skip_reason(row) else Request(
            messages=request_messages(self.stage, row),
            sampling={**self.sampling, "seed": request_seed(seed, row["trace_id"], self.stage.step)})
            for row, _ in work]

    def rows(self, work: list[Work], requests: list[Request | None], responses: list[Response | None],
             model_name: str) -> list[dict[str, Any]]:
        out = []
        for (parent, _), request, response in zip(work, requests, responses):
            if request is None or response is None:
                out.append(make_row(self.stage, parent, None, model_name, error=f"{SKIPPED}{skip_reason(parent)}"))
            elif response.error is not None or not response.completions:
                out.append(make_row(self.stage, parent, None, model_name, error=response.error or "no completion returned"))
            else:
                c = response.completions[0]
                row = make_row(self.stage, parent, c.text, model_name, finish_reason=c.finish_reason)
                row["reasoning_tokens"], row["answer_tokens"] = token_counts(c, row)
                row["sampling"] = json.dumps({**request.sampling, "n": request.n}, sort_keys=True)
                out.append(row)
        return out


def token_counts(completion: Completion, row: dict[str, Any]) -> tuple[int | None, int | None]:
    """(reasoning_tokens, answer_tokens) of a refined row: the engine's count of the reply (less the
    refiner's own thinking, when a reasoning parser split it off), all on the side the parser put
    the text on (`answer` for a text it did not split, as generated traces count it); None for
    both when the parser split the reply in two, since the split in tokens is unknown."""
    total = completion.completion_tokens
    if completion.reasoning is not None:
        total = None if total is None or completion.reasoning_tokens is None else total - completion.reasoning_tokens
    if total is None or (row["reasoning"] and row["answer"]):
        return None, None
    return (total, 0) if row["reasoning"] else (0, total)


def refine(
    traces: Any,
    passes: Sequence[Spec | RefinePass] = DEFAULT_PASSES,
    model: Any = None,
    backend: Spec | Backend = DEFAULT_BACKEND,
    sampling: SamplingConfig | dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    keep: Keep = DEFAULT_KEEP,
    engine_kwargs: dict[str, Any] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    backend_kwargs: dict[str, Any] | None = None,
    show_progress: bool = True,
    return_report: bool = False,
) -> Dataset | tuple[Dataset, pd.DataFrame]:
    """Run refinement `passes` (specs such as `"rewrite_long"`, `{"edit": {"times": 2}}`, `"structure"`,
    expanded by `expand`; `DEFAULT_PASSES` are all three) over `traces` (a Dataset or anything
    `load_traces` reads), stage by stage.

    `model` is a hub name, a local path or a ready `vllm.LLM`; `backend` a name or spec from
    `BACKENDS` or a ready `Backend` (options in `backend_kwargs`, engine arguments in
    `engine_kwargs`). `sampling` is a `SamplingConfig` (its defaults for keys left out); each request's
    seed comes from it, the parent's trace id and the step. Every row keeps its lineage
    (`parent_trace_id`, `refine.stage`, `refine.step`, `refine.prompt_version`, `refine.prompt_sha256`)
    and both answer checks. Returns the last stage's rows (`keep="final"`, one per trace given), or
    the traces given followed by every stage's rows (`keep="all"`; columns one side lacks are null).
    The per-stage `stage_report` (the traces given included) is logged, and returned too with
    `return_report=True`. With `output_dir`, every stage is resumable (see the module).
    """
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {list(KEEP)}, not {keep!r}")
    stages = expand(passes)
    sampling_dict = SamplingConfig.model_validate(as_dict(sampling)).model_dump()
    ds = traces if isinstance(traces, Dataset) else load_traces(traces)
    require_columns(ds.column_names, ["trace_id", "problem"], "the traces to refine")
    ids = ds["trace_id"]
    if len(set(ids)) != len(ids):
        raise ValueError("the traces to refine repeat trace ids; each trace needs its own (lineage points at them)")
    engine = build_backend(backend, model, engine_kwargs, chat_template_kwargs, backend_kwargs)
    made: list[pa.Table] = []
    rows, upstream = ds, ""
    try:
        for stage in stages:
            model_pass = Refine(stage, sampling_dict, upstream)
            folder = Path(output_dir) / model_pass.folder if output_dir is not None else None
            out = run_pass(model_pass, rows, engine, folder, batch_size=batch_size, show_progress=show_progress)
            table = _children(out.rows, rows["trace_id"])
            log.info("refine stage %s: %d asked, %d reused, %d errors", stage.name, out.pending,
                     table.num_rows - out.pending, table.num_rows - table.column("error").null_count)
            made.append(table)
            rows, upstream = Dataset(table), fingerprint_hash(model_pass.fingerprint(engine))
    finally:
        if isinstance(backend, (str, dict)):
            close(engine)  # built here: its processes and shared memory go with this call
    report = stage_report([*ds.to_list(), *(r for t in made for r in t.to_pylist())])
    log.info("refine report:\n%s", report.to_string(index=False))
    if keep == "final":
        result = Dataset(made[-1])
    else:
        result = Dataset(pa.concat_tables([ds.with_format("arrow")[:], *made], promote_options="permissive"))
    return (result, report) if return_report else result


def _children(table: pa.Table, parents: list[str]) -> pa.Table:
    """The rows made from `parents`, in their order (an output folder may hold other calls' rows;
    a row asked again supersedes the earlier one)."""
    index = {p: i for i, p in enumerate(table.column(lineage.PARENT).to_pylist())}
    return table.take(pa.array([index[p] for p in parents if p in index], pa.int64()))
