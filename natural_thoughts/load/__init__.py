"""Loading: problem sets and traces from files, folders, globs or the hub (with presets), weak-model
answers joined in, and a quick summary of a file."""

from .presets import PROBLEM_PRESETS, TRACE_PRESETS
from .sources import load_problems, load_traces
from .summary import summarize
from .weak import attach_weak

__all__ = ["PROBLEM_PRESETS", "TRACE_PRESETS", "attach_weak", "load_problems", "load_traces", "summarize"]
