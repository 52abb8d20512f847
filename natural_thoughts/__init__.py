"""natural_thoughts: curate reasoning-trace data for supervised fine-tuning.

problems ─generate→ traces ─annotate/verify→ labels ─score→ scores ─select→ Selection ─export→ an SFT-ready dataset.
Every stage takes and returns a `datasets.Dataset`; `run()` chains them from a config.
"""

from __future__ import annotations

from . import selectors
from .annotate import annotate, tag_strategies
from .export import export
from .generate import generate
from .io import load_problems, load_traces
from .mixing import mix
from .parse import ParsedTrace, parse_trace
from .pipeline import RunConfig, run
from .scores import add_reasoning_tokens
from .selectors import Selection, Selector, select
from .verify import verify
from .weak import attach_weak

__version__ = "0.1.0"

__all__ = [
    "ParsedTrace",
    "RunConfig",
    "Selection",
    "Selector",
    "add_reasoning_tokens",
    "annotate",
    "attach_weak",
    "export",
    "generate",
    "load_problems",
    "load_traces",
    "mix",
    "parse_trace",
    "run",
    "select",
    "selectors",
    "tag_strategies",
    "verify",
    "__version__",
]
