"""`annotate()`: each LLM annotator is a pass (`Judging`) on the model-call layer, resumable, one error per row.

Every judge reply is constrained by the annotator's JSON schema (vLLM structured outputs, an
OpenAI server's `response_format`), then validated by its pydantic model. A reply that still fails
is asked once more (a fresh seed, temperature raised to at least `RETRY_TEMPERATURE`), then kept as
an error row with the raw reply: labels are never guessed. Backend errors (the engine failed, not
the judge) are kept as error rows too, but re-asked when a run resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from datasets import Dataset, concatenate_datasets
from pydantic import BaseModel

from ..llm.backends import DEFAULT_BACKEND, Backend, Request, Response, build_backend, close
from ..llm.passes import BACKEND_ERROR, ModelPass, Work
from ..llm.requests import GREEDY, request_seed
from ..llm.runner import BATCH_SIZE, run_pass
from ..registry import Spec
from ..schema import as_dict, require_columns
from .annotators import get_annotator
from .base import Annotator, ReplyError

log = logging.getLogger(__name__)

DEFAULT_SAMPLING: dict[str, Any] = {**GREEDY, "max_tokens": 1024}
"""Judges decode greedily by default; `sampling=` overrides any key."""
ATTEMPTS = 2
RETRY_TEMPERATURE = 0.7


@dataclass(frozen=True)
class Outcome:
    """One judgement: the validated answer, or the error; the raw reply either way."""

    answer: BaseModel | None
    raw: str | None
    error: str | None


@dataclass(frozen=True)
class Judging(ModelPass):
    """An annotator's pass: one judgement per key, constrained by its JSON schema; an invalid
    reply is asked once more (a fresh seed, a raised temperature) before it becomes an error row."""

    annotator: Annotator
    sampling: dict[str, Any]

    @property
    def key(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.annotator.key,)

    @property
    def schema(self) -> pa.Schema:  # type: ignore[override]
        columns = self.annotator.label_columns()
        return pa.schema([pa.field(self.key[0], pa.string()), *(pa.field(c, t) for c, t in columns.items())])

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"annotate {self.annotator.name}"

    @property
    def unit(self) -> str:  # type: ignore[override]
        return self.annotator.scope

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys([self.key[0], *self.annotator.needs, *self.annotator.optional, "reasoning",
                                    "completion"]))

    @property
    def error_column(self) -> str:  # type: ignore[override]
        return f"label.{self.annotator.name}.error"

    def fingerprint(self, engine: Backend) -> dict[str, Any]:
        return {**self.annotator.fingerprint(), "model": engine.model_name, "sampling": self.sampling}

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]] | None:
        """The judge's messages for one row; None when the row cannot be judged (nothing is asked)."""
        return None if self.annotator.skip_reason(row) is not None else self.annotator.messages(row)

    def requests(self, work: list[Work]) -> list[Request | None]:
        return [None if (messages := self.messages(row)) is None else self._request(messages, keys[0][0], 0)
                for row, keys in work]

    def _request(self, messages: list[dict[str, str]], key: str, attempt: int) -> Request:
        """A request whose seed comes from the key and attempt; retries are not greedy."""
        sampling = {**self.sampling, "seed": request_seed(int(self.sampling.get("seed", 0)), key, attempt)}
        if attempt > 0:
            sampling["temperature"] = max(float(self.sampling.get("temperature", 0.0)), RETRY_TEMPERATURE)
        return Request(messages=messages, sampling=sampling, json_schema=self.annotator.json_schema())

    def again(self, work: Work, request: Request, response: Response, attempt: int) -> Request | None:
        retry = attempt + 1 < ATTEMPTS and self.outcome(response, attempt)[1]
        return self._request(request.messages, work[1][0][0], attempt + 1) if retry else None

    def outcome(self, response: Response, attempt: int) -> tuple[Outcome, bool]:
        """The outcome of one response and whether asking again may help (invalid replies only)."""
        if response.error is not None or not response.completions:
            return Outcome(None, None, f"{BACKEND_ERROR}{response.error or 'no completion returned'}"), False
        completion = response.completions[0]
        try:
            return Outcome(self.annotator.parse(completion.text), completion.text, None), False
        except ReplyError as exc:
            error = f"{exc} (finish_reason={completion.finish_reason}; attempt {attempt + 1} of {ATTEMPTS})"
            return Outcome(None, completion.text, error), True

    def rows(self, work: list[Work], requests: list[Request | None], responses: list[Response | None],
             model_name: str) -> list[dict[str, Any]]:
        """One row per key: labels from the judge, or null labels and the reason (none when not asked)."""
        a = self.annotator
        out = [{self.key[0]: keys[0][0], **dict.fromkeys(a.label_columns())} for _, keys in work]
        outcomes = {i: self.outcome(r, ATTEMPTS - 1)[0] for i, r in enumerate(responses) if r is not None}
        _check_alive(list(outcomes.values()))
        for i, o in outcomes.items():
            out[i][f"label.{a.name}.raw"] = o.raw
            out[i][f"label.{a.name}.error"] = o.error
            if o.answer is not None:
                out[i].update({f"label.{k}": v for k, v in a.labels(o.answer).items()})
        return out


def _check_alive(outcomes: list[Outcome]) -> None:
    """Stop when every request of a batch failed with one and the same backend error: the engine or
    server is down, and writing that error for every remaining row would only bury the cause."""
    errors = {o.error for o in outcomes}
    if len(outcomes) > 1 and len(errors) == 1 and (error := errors.pop()) and error.startswith(BACKEND_ERROR):
        raise RuntimeError(f"every request of a batch failed with the same {error!r}; fix the engine or "
                           "server and call again (a run with output_dir resumes where it stopped)")


def annotate(
    traces: Any,
    annotators: list[str | Annotator],
    model: Any = None,
    backend: Spec | Backend = DEFAULT_BACKEND,
    sampling: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    engine_kwargs: dict[str, Any] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    show_progress: bool = True,
    executor: Spec = "local",
    executor_kwargs: dict[str, Any] | None = None,
) -> Dataset:
    """Label `traces` with LLM `annotators` (names from `ANNOTATORS` or instances).

    `model` is a hub name, a local path or a ready `vllm.LLM`; `backend` a name or spec from
    `BACKENDS` or a ready `Backend`. Adds each annotator's `label.*` columns plus `label.<name>.raw`
    (the judge's reply) and `label.<name>.error` (null, or why the row has no label). With `output_dir`, every batch is
    a shard under `<output_dir>/<name>-<prompt sha256[:12]>/`, whose manifest holds the prompt text
    and hash, model and sampling; calling again judges only the keys not yet written.
    `executor="ray"` judges on Ray actors, one engine each (`executor_kwargs`: concurrency, num_gpus, ...).
    """
    from ..load.sources import load_traces

    ds = traces if isinstance(traces, Dataset) else load_traces(traces)
    anns = [get_annotator(a) for a in annotators]
    if not anns:
        raise ValueError("annotate needs at least one annotator")
    seen: dict[str, str] = {}
    for a in anns:
        require_columns(ds.column_names, [a.key, *a.needs], f"the traces (for annotator {a.name!r})")
        for col in a.label_columns():
            if col in seen:
                raise ValueError(f"annotators {seen[col]!r} and {a.name!r} both write {col!r}; rename one (name=...)")
            seen[col] = a.name
    engine = build_backend(backend, model, engine_kwargs, chat_template_kwargs)
    sampling_dict = {**DEFAULT_SAMPLING, **as_dict(sampling)}
    try:
        for a in anns:
            folder = Path(output_dir) / f"{a.name}-{a.prompt_sha256[:12]}" if output_dir is not None else None
            out = run_pass(Judging(a, sampling_dict), ds, engine, folder, batch_size=batch_size,
                           executor=executor, executor_kwargs=executor_kwargs, show_progress=show_progress)
            log.info("annotator %s: %d judged, %d errors", a.name, out.pending, out.errors)
            ds = _attach(ds, a, out.rows)
    finally:
        if isinstance(backend, (str, dict)):
            close(engine)  # built here: its processes and shared memory go with this call
    return ds


def _attach(ds: Dataset, a: Annotator, table: pa.Table) -> Dataset:
    """`ds` with the annotator's columns, aligned by key (a later judgement of a key wins)."""
    index = {k: i for i, k in enumerate(table.column(a.key).to_pylist())}
    take = pa.array([index.get(k) for k in ds[a.key]], pa.int64())
    labels = table.take(take).drop_columns([a.key])
    ds = ds.remove_columns([c for c in labels.column_names if c in ds.column_names])
    return concatenate_datasets([ds, Dataset(labels)], axis=1)

