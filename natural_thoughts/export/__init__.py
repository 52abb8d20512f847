"""Export: the training formats and files; the dataset card (`export.card`) and its figures
(`export.plots`, which import matplotlib) are imported where they are used."""

from .formats import (FILE_FORMATS, FORMATS, ExportStats, assistant_text, exported_modes, format_rows,
                      prepare_export, response_tokens, split_by_problem, write_splits)
from .writer import export

__all__ = ["FILE_FORMATS", "FORMATS", "ExportStats", "assistant_text", "export", "exported_modes", "format_rows",
           "prepare_export", "response_tokens", "split_by_problem", "write_splits"]
