"""Generation: problems → teacher → parsed trace rows, resumable through the model-call layer."""

from .summary import GenerationSummary
from .runner import generate

__all__ = ["GenerationSummary", "generate"]
