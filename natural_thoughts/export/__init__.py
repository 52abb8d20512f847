"""Export: the training formats and files, the dataset card and its figures."""

from .card import write_card
from .formats import (FILE_FORMATS, FORMATS, ExportStats, assistant_text, export, format_rows, prepare_export,
                      response_tokens, split_by_problem, write_splits)

__all__ = ["FILE_FORMATS", "FORMATS", "ExportStats", "assistant_text", "export", "format_rows", "prepare_export",
           "response_tokens", "split_by_problem", "write_card", "write_splits"]
