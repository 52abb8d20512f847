"""What a model pass is: a request builder and a row maker, run by `llm.runner.run_pass`.

A pass declares its output (an Arrow `schema` keyed by `key`), builds one `Request` per unit of
work (or None: nothing to ask for that unit) and makes output rows from the units, their requests
and responses. Everything else (the store's lock, resume, batching, engine start and restart,
executors, shard writes, progress, reading back) is the loop's. Instances are small and
picklable: Ray ships them to its actors.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .backends import Backend, Request, Response
from .store import REQUEST_HASH, ShardStore

BACKEND_ERROR = "backend error: "
"""Prefix of a row's error when the engine failed (not the model's reply): asked again on resume."""
Key = tuple[Any, ...]
"""The values of a pass's key columns for one output row."""
Work = tuple[dict[str, Any], list[Key]]
"""One unit of work: an input row and the output keys still to make for it."""
NOT_ASKED = "not asked"
"""What `request_hash` hashes for a unit the pass asks nothing of (so a unit that becomes askable is asked)."""


class ModelPass:
    """The base of every model pass. Subclasses set `schema` (and `key` unless it is
    `("problem_id",)`) and write `requests` and `rows`; the other hooks have working defaults."""

    schema: pa.Schema
    """The Arrow schema of the output rows; every shard is written under it."""
    key: tuple[str, ...] = ("problem_id",)
    """The output key columns. The first one is also the input column naming a unit of work."""
    unit: str = "row"
    """What one unit of work is, for the progress bar."""
    columns: tuple[str, ...] | None = None
    """The input columns the pass reads (None: all of them); absent ones are left out."""
    error_column: str | None = None
    """The output column that holds a row's error (null: none), when the pass has one."""

    @property
    def name(self) -> str:
        """What the progress bar says (and errors about the pass): its class name unless set."""
        return type(self).__name__

    def fingerprint(self, engine: Backend) -> dict[str, Any]:
        """What defines this pass's output, for the run manifest: a changed one is another run."""
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {"pass": type(self).__name__, "model": engine.model_name, **params}

    def keys(self, unit: Any) -> list[Key]:
        """The output keys one unit (its value of the first key column) asks for."""
        return [(unit,)]

    def is_done(self, error: str | None) -> bool:
        """Whether a written row with this error counts as done (False: it is asked again). By
        default a `BACKEND_ERROR` row (the engine failed) is asked again; the model's own reply,
        valid or not, is kept."""
        return not (error or "").startswith(BACKEND_ERROR)

    def requests(self, work: list[Work]) -> list[Request | None]:
        """One request per unit of work, or None where nothing is asked."""
        raise NotImplementedError

    def again(self, work: Work, request: Request, response: Response, attempt: int) -> Request | None:
        """A request to ask once more after `response` to attempt `attempt` (0: the first), or None."""
        return None

    def rows(self, work: list[Work], requests: list[Request | None], responses: list[Response | None],
             model_name: str) -> list[dict[str, Any]]:
        """The output rows of a batch; `requests` and `responses` (the last ones) align with `work`."""
        raise NotImplementedError

    def request_hashes(self, work: list[Work], model_name: str) -> list[str]:
        """The `request_hash` of each unit's first request, as `call` records it."""
        return [request_hash(request, model_name) for request in self.requests(work)]

    def read(self, store: ShardStore) -> Any:
        """Every row an output folder holds (this call's and earlier ones'), read back."""
        files = store.shard_files()
        return pa.concat_tables([self.schema.empty_table(), *(pq.read_table(f, schema=self.schema) for f in files)])


def request_hash(request: Request | None, model_name: str) -> str:
    """sha256 of exactly what the model reads for one unit: the rendered messages (the input text
    in them), the model, the sampling and the output constraint. The per-request seed and `n` are
    left out: they follow from the key and the run's seed (in the manifest), so a resumed or
    extended unit hashes the same."""
    if request is None:
        read: Any = NOT_ASKED
    else:
        sampling = {k: v for k, v in request.sampling.items() if k != "seed"}
        read = {"model": model_name, "messages": request.messages, "sampling": sampling,
                "json_schema": request.json_schema, "regex": request.regex}
    return hashlib.sha256(json.dumps(read, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def shard_schema(model_pass: ModelPass) -> pa.Schema:
    """What a shard holds: the pass's rows and the `REQUEST_HASH` column."""
    return model_pass.schema.append(pa.field(REQUEST_HASH, pa.string()))


def call(engine: Backend, model_pass: ModelPass, work: list[Work]) -> tuple[pa.Table, int]:
    """One batch: its requests in one backend call (and the retries the pass asks for, one call
    each round); its rows as a table under `shard_schema` (each row beside the hash of its unit's
    first request), and the completion tokens."""
    requests = model_pass.requests(work)
    hashes = [request_hash(request, engine.model_name) for request in requests]
    responses: list[Response | None] = [None] * len(work)
    todo = [i for i, request in enumerate(requests) if request is not None]
    tokens, attempt = 0, 0
    while todo:
        for i, response in zip(todo, engine.generate([requests[i] for i in todo])):  # type: ignore[misc]
            responses[i] = response
            tokens += sum(c.completion_tokens or 0 for c in response.completions)
        retry = {i: model_pass.again(work[i], requests[i], responses[i], attempt) for i in todo}  # type: ignore[arg-type]
        todo = [i for i, request in retry.items() if request is not None]
        requests = [retry.get(i) or r for i, r in enumerate(requests)]
        attempt += 1
    rows = model_pass.rows(work, requests, responses, engine.model_name)
    unit_of = {key: i for i, (_, keys) in enumerate(work) for key in keys}
    made = [{**row, REQUEST_HASH: hashes[unit_of[tuple(row[c] for c in model_pass.key)]]} for row in rows]
    return pa.Table.from_pylist(made, schema=shard_schema(model_pass)), tokens
