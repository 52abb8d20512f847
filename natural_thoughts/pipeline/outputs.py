"""The stages after the columns: `select` (the subset), `mix` (System-1 / System-2), `export` (the
training files) and `card` (the dataset card beside them)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator

from ..export.formats import FILE_FORMATS, ON_OVERLONG, prepare_export, write_splits
from ..export.formats import FORMATS as EXPORT_FORMATS
from ..mixing import HARDER, MIX_MODES, mix
from ..registry import yaml_keys
from .stage import Context, Kind, Stage, default_of, one_of, register_stage
from .stages import StageFolder, fingerprint, load_selection, save_selection

log = logging.getLogger(__name__)


@register_stage("select", order=70)
class SelectConfig(Stage):
    """A selector spec (a name or {name: params}, resolved through the registry) and its budget."""

    kind: ClassVar[Kind] = "select"
    always = True

    selector: str | dict[str, Any] = "Random"
    k: int | None = Field(None, ge=0)
    seed: int = Field(0, ge=0)

    @field_validator("selector")
    @classmethod
    def _known(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        from ..selectors.base import get_selector

        get_selector(value).check_params()  # unknown names and bad parameters fail here, before any stage
        return yaml_keys(value)  # YAML 1.1 reads a bare `on:` key as True

    def apply(self, ctx: Context) -> None:
        """Select (stored as picks, drops and step reports), or reload the stored selection."""
        from ..selectors import select

        assert ctx.traces is not None, "select needs traces"
        folder = StageFolder(ctx.out / self.section, fingerprint(self.section, ctx.key, self.model_dump()))
        if folder.done():
            ctx.status[self.section] = "reused"
        else:
            ctx.status[self.section] = "ran"
            folder.begin()
            selection = select(ctx.traces, self.selector, k=self.k, seed=self.seed)
            save_selection(selection, folder.folder)
            folder.finish(selected=len(selection), pool=len(ctx.traces))
        ctx.selection, ctx.key = load_selection(ctx.traces, folder.folder), folder.key
        if ctx.status[self.section] == "reused" and (warning := ctx.selection.budget_warning()):
            log.warning("%s", warning)  # a fresh selection says so itself


@register_stage("mix", order=80)
class MixConfig(Stage):
    """System-1 / System-2 mixing of the selected rows before export (see `mixing.mix`)."""

    kind: ClassVar[Kind] = "subset"

    mode: Annotated[str, one_of(MIX_MODES, "mix mode")] = default_of(mix, "mode")
    p: float = Field(default_of(mix, "p"), ge=0, le=1)
    column: str = default_of(mix, "column")
    threshold: float | None = default_of(mix, "threshold")
    harder: Annotated[str, one_of(HARDER, "harder")] = default_of(mix, "harder")
    seed: int = Field(default_of(mix, "seed"), ge=0)
    instructions: str | dict[str, str] | None = default_of(mix, "instructions")

    def apply(self, ctx: Context) -> None:
        ctx.reshapes.append(lambda ds: mix(ds, **self.model_dump()))


@register_stage("export", order=90)
class ExportConfig(Stage):
    """The training format, file layout, split and token cap of the subset (see `export.export`)."""

    kind: ClassVar[Kind] = "output"
    always = True

    format: Annotated[str, one_of(EXPORT_FORMATS, "export format")] = default_of(prepare_export, "format")
    file_format: Annotated[str, one_of(FILE_FORMATS, "file format")] = default_of(write_splits, "file_format")
    system_prompt: str | None = default_of(prepare_export, "system_prompt")
    think_tags: tuple[str, str] = default_of(prepare_export, "think_tags")
    validation_fraction: float = Field(default_of(prepare_export, "validation_fraction"), ge=0, lt=1)
    seed: int = Field(default_of(prepare_export, "seed"), ge=0)
    max_tokens: int | None = Field(default_of(prepare_export, "max_tokens"), gt=0)
    on_overlong: Annotated[str, one_of(ON_OVERLONG, "on_overlong")] = default_of(prepare_export, "on_overlong")
    tokenizer: str | None = default_of(prepare_export, "tokenizer")
    push_to_hub: str | None = None
    private: bool = True

    def apply(self, ctx: Context) -> None:
        """Write the splits into the output folder; an empty result stops before an earlier export is touched."""
        assert ctx.selection is not None and ctx.output is not None
        require_rows(len(ctx.selection), ctx)
        splits, stats = self.prepare(ctx.subset())
        require_rows(stats.rows_out, ctx, f"all {stats.rows_in} selected rows are over "
                     f"export.max_tokens={self.max_tokens}")
        ctx.output.begin()  # only now is an earlier export removed
        stats.files = [p.name for p in write_splits(splits, ctx.output.folder, self.file_format)]
        ctx.stats = stats.to_dict()

    def prepare(self, rows: Any) -> tuple[dict[str, Any], Any]:
        """(splits, `ExportStats`) of `rows` (a Dataset or a `Selection`) under these settings."""
        return prepare_export(rows, **self.model_dump(exclude={"file_format", "push_to_hub", "private"}))

    def publish(self, ctx: Context) -> None:
        from ..export.formats import upload

        if self.push_to_hub and ctx.output is not None:
            upload(ctx.output.folder, self.push_to_hub, self.private)


def require_rows(n: int, ctx: Context, why: str | None = None) -> None:
    """Stop, before an earlier export is touched, when there is nothing to export."""
    if n:
        return
    assert ctx.selection is not None and ctx.output is not None
    steps = "; ".join(f"{s.name} kept {s.n_kept} of {s.n_in}" for s in ctx.selection.steps) or "no steps"
    raise ValueError(f"nothing to export: {why or 'the selection is empty'} ({steps}). Loosen the selector "
                     f"or check the pool; {ctx.output.folder} was left as it was.")


@register_stage("card", order=100)
class CardConfig(Stage):
    """The dataset card written beside the export: the config, sources (the weak model's file too),
    models, selection steps, figures."""

    kind: ClassVar[Kind] = "output"
    always = True

    enabled: bool = True
    figures: bool = True

    def apply(self, ctx: Context) -> None:
        from ..export.card import SELECTION_ONLY, write_card
        from ..export.formats import ExportStats

        if not self.enabled:
            return
        assert ctx.output is not None and ctx.selection is not None and ctx.traces is not None
        cfg, out = ctx.config, ctx.out
        sources = [{"kind": c.section, "source": display(c.source), "preset": c.preset, "split": c.split,
                    "license": c.license} for c in (cfg.problems, cfg.traces) if c is not None]
        if cfg.traces is not None and (weak := cfg.traces.weak) is not None:
            sources.append({"kind": "traces.weak", "source": display(weak.source), "preset": weak.preset,
                            "split": weak.split, "license": weak.license, "use": SELECTION_ONLY})
        manifests = {"generate": out / "traces" / "manifest.json"}
        for path in sorted((out / "annotate").glob("**/manifest*.json")):
            manifests[f"annotate/{path.relative_to(out / 'annotate').as_posix()}"] = path
        models, notes = self.models(ctx)
        write_card(ctx.output.folder, cfg.name, ctx.selection, ExportStats(**ctx.stats), pool=ctx.traces,
                   make_figures=self.figures, config=card_config(cfg), sources=sources, models=models,
                   manifests=manifests, notes=notes)

    @staticmethod
    def models(ctx: Context) -> tuple[dict[str, Any], list[str]]:
        """The card's models table (teacher, labellers, judge) and its notes."""
        cfg, pool = ctx.config, ctx.traces
        models: dict[str, Any] = {}
        notes: list[str] = []
        if cfg.generate is not None:
            models["teacher"] = cfg.generate.model
            models["teacher sampling"] = cfg.generate.sampling.model_dump()
            if cfg.generate.model == "tiny":
                from ..tinymodel import SMOKE_MODEL_NOTE

                notes.append(f"the teacher is a {SMOKE_MODEL_NOTE}. This dataset only proves the pipeline runs.")
        elif pool is not None and "model" in pool.column_names:
            models["teacher"] = ", ".join(sorted({m for m in pool["model"] if m}))
        if pool is not None and "weak_model" in pool.column_names:
            models["weak model"] = ", ".join(sorted({m for m in pool["weak_model"] if m}))
        if cfg.annotate is not None:
            if cfg.annotate.tagger:
                models["strategy labels"] = "heuristic tagger (lexical markers, no model)"
            if cfg.annotate.annotators:
                models["LLM annotators"] = cfg.annotate.annotators
                models["annotation model"] = cfg.annotate.model or "(the run's engine)"
        if cfg.verify is not None:
            models["answer judge"] = cfg.verify.judge or "math-verify / normalized strings"
        return models, notes


def display(source: str) -> str:
    """A local path shown by its name (cards must not depend on where the run happened)."""
    return Path(source).name if Path(source).exists() else source


def card_config(cfg: Any) -> dict[str, Any]:
    """The config as the card shows it: no output folder, local sources by name."""
    data = cfg.model_dump(mode="json", exclude={"output_dir"}, exclude_none=True)
    for section in (data.get("problems"), data.get("traces"), (data.get("traces") or {}).get("weak")):
        if section:
            section["source"] = display(section["source"])
    return data
