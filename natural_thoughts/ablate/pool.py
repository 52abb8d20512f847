"""The pool every cell selects from: the run's own stages (`traces`, then `annotate`, `verify`,
`score`), applied once under `output_dir/pool/` and reused while their settings and input files hold,
so the pool of an ablation is the pool of a run with the same sections.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from ..pipeline.stage import Context
from .config import AblateConfig

POOL = "pool"


def load_pool(cfg: AblateConfig) -> Dataset:
    """The traces of `cfg.traces` (with the weak model's answers joined on, cut to `limit`), unlabelled."""
    ctx = Context(config=cfg, out=Path(cfg.output_dir) / POOL)  # type: ignore[arg-type]
    cfg.traces.apply(ctx)
    assert ctx.traces is not None
    return ctx.traces


def prepare_pool(cfg: AblateConfig, out: Path) -> tuple[Dataset, str, str]:
    """(pool, its fingerprint, "ran" / "reused"): each column stage stored under `out/pool/<section>/`."""
    ctx = Context(config=cfg, out=out / POOL)  # type: ignore[arg-type]
    for stage in (cfg.traces, cfg.annotate, cfg.verify, cfg.score):
        if stage is not None:
            stage.apply(ctx)
    assert ctx.traces is not None
    state = "ran" if "ran" in ctx.status.values() else "reused"
    return ctx.traces, ctx.key, state
