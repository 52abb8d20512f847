"""natural_thoughts: curate reasoning-trace data for supervised fine-tuning.

problems ─generate→ traces ─annotate/verify→ labels ─score→ scores ─select→ Selection ─export→ an SFT-ready dataset.
Every stage takes and returns a `datasets.Dataset`; `run()` chains them from a config. `guide()` adds
ThinkTuning teacher feedback, `refine()` CoT refinement passes, `ablate()` a selections × budgets grid.
`verify` runs the programs of code traces against their tests (`verify_code`).
"""

from __future__ import annotations

from importlib.metadata import version as _version

from . import selectors
from .ablate import ablate
from .annotate import annotate, judge_agreement, tag_strategies
from .code import verify_code
from .export import export
from .generate import generate
from .guide import guide
from .load import attach_weak, load_problems, load_traces
from .mixing import mix
from .parse import ParsedTrace, parse_trace
from .pipeline import RunConfig, run
from .refine import refine
from .scores import add_reasoning_tokens
from .selectors import Selection, Selector, select
from .steps import flag_reasoning
from .verify import verify

__version__ = _version("natural-thoughts")

__all__ = [
    "ParsedTrace",
    "RunConfig",
    "Selection",
    "Selector",
    "ablate",
    "add_reasoning_tokens",
    "annotate",
    "attach_weak",
    "export",
    "flag_reasoning",
    "generate",
    "guide",
    "judge_agreement",
    "load_problems",
    "load_traces",
    "mix",
    "parse_trace",
    "refine",
    "run",
    "select",
    "selectors",
    "tag_strategies",
    "verify",
    "verify_code",
    "__version__",
]
