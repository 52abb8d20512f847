"""The stage protocol: one class per stage, whose pydantic fields are its YAML section and whose
`apply(ctx)` runs it on the run so far.

A stage registers under its section name in `STAGES` (`register_stage`), with an `order` that
places it in the run. `run()` applies, in order, every registered stage whose section the config
holds; a third party adds one through the entry-point group `natural_thoughts.stages`. Kinds:
`input` (makes `ctx.traces`), `columns` (adds columns, stored and reused by `trace_id`), `select`
(makes `ctx.selection`), `subset` (reshapes the selected rows before export), `output` (writes into
the export folder, made and marked done together).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from datasets import Dataset
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..parallel import Executor
from ..registry import Registry
from .stages import StageFolder, attach_columns, fingerprint, save_columns

if TYPE_CHECKING:
    from ..selectors.base import Selection
    from .config import RunConfig

Kind = Literal["input", "columns", "select", "subset", "output"]
S = TypeVar("S", bound="type[Stage]")


@dataclass
class Context:
    """What a stage reads and adds to: the config, the run folder, the engine passed to `run()`, the
    traces so far and the fingerprint of everything upstream of them (`key`)."""

    config: RunConfig
    out: Path
    engine: Any = None
    problems: Dataset | None = None
    traces: Dataset | None = None
    key: str = ""
    selection: Selection | None = None
    reshapes: list[Callable[[Dataset], Dataset]] = field(default_factory=list)
    output: StageFolder | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    """Stage name → "ran" / "reused" / "loaded" / "resumed", as `run()` reports it."""

    def model_for(self, model: str | None, backend: Any, section: str, role: str) -> tuple[Any, Any]:
        """(model, backend) of a stage's model pass: its `model` on its `backend`, else the engine
        passed to `run()` (a ready `Backend` as the backend, a `vllm.LLM` as the model)."""
        if model is not None:
            return model, backend
        if self.engine is None:
            raise ValueError(f"{section} needs {section}.model ({role}), or run(config, engine=...)")
        return (None, self.engine) if hasattr(self.engine, "model_name") else (self.engine, backend)

    def subset(self) -> Dataset:
        """The selected rows, reshaped by every `subset` stage of the run (e.g. mixing)."""
        assert self.selection is not None, "a subset needs the select stage first"
        rows = self.selection.subset()
        for reshape in self.reshapes:
            rows = reshape(rows)
        return rows


class Workers(BaseModel):
    """Where a stage's per-row work runs: `executor: local` (in `num_proc` processes; none given:
    one per CPU on large pools) or `ray` (tasks on the running Ray cluster). Never part of a stage's
    fingerprint: every way gives the same rows."""

    executor: Executor = "local"
    num_proc: int | None = Field(None, ge=1)


class Stage(BaseModel):
    """A stage: its fields are its YAML section (unknown keys refused); `apply` runs it."""

    model_config = ConfigDict(extra="forbid")

    section: ClassVar[str] = ""
    order: ClassVar[int] = 0
    kind: ClassVar[Kind] = "columns"
    always: ClassVar[bool] = False
    """Present with its defaults when the config leaves its section out."""

    def apply(self, ctx: Context) -> None:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """What this stage's output depends on besides its input: its fields (a stage that reads a
        file adds the file's hash, so editing the file in place re-runs it); where it ran is not."""
        return self.model_dump(exclude={*Workers.model_fields, "executor_kwargs"})

    def publish(self, ctx: Context) -> None:
        """After every output stage has written (outputs only): e.g. upload the folder."""


class ColumnStage(Stage):
    """A stage that adds columns: `add` returns the traces with them; they are stored under
    `<output_dir>/<section>/columns` and joined back while the fingerprint (upstream + fields) holds."""

    kind: ClassVar[Kind] = "columns"

    def add(self, ds: Dataset, ctx: Context) -> Dataset:
        raise NotImplementedError

    def apply(self, ctx: Context) -> None:
        assert ctx.traces is not None, f"the {self.section} stage needs traces"
        name = self.section
        folder = StageFolder(ctx.out / name, fingerprint(name, ctx.key, self.settings()))
        if folder.done():
            ctx.status[name] = "reused"
        else:
            ctx.status[name] = "ran"
            folder.begin(clear=False)
            cols = save_columns(ctx.traces, self.add(ctx.traces, ctx), folder.folder, name)
            folder.finish(columns=cols)
        ctx.traces, ctx.key = attach_columns(ctx.traces, folder.folder, name), folder.key


STAGES: Registry[type[Stage]] = Registry("stage")
"""Section name → stage class."""


def register_stage(section: str, order: int) -> Callable[[S], S]:
    """Class decorator: register a stage under its YAML `section`, run at `order` (built-ins: input
    10–30, columns 40–60, select 70, subset 80, output 90–100)."""

    def add(cls: S) -> S:
        cls.section, cls.order = section, order
        STAGES.register(cls, name=section)
        return cls

    return add


def registered() -> list[type[Stage]]:
    """Every known stage class, in run order."""
    return sorted(STAGES.available().values(), key=lambda cls: cls.order)


def default_of(function: Callable[..., Any], parameter: str) -> Any:
    """The default of `function`'s `parameter`: a stage field that mirrors a function argument
    takes its default from the signature, so the default is written once."""
    return inspect.signature(function).parameters[parameter].default


def one_of(allowed: Iterable[str], what: str) -> AfterValidator:
    """A field check: the value is one of `allowed` (a tuple or a registry), else an error listing them."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; choose one of {list(allowed)}")
        return value

    return AfterValidator(check)
