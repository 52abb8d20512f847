"""The `natural-thoughts` command (`app`): one module per group of commands, each registering on `app`.

Imported in this order, the modules list the commands in `--help` as the CLI reference (docs/cli.md)
does: whole runs, commands over a traces file, teacher passes, commands over a generate folder.
"""

from .core import app
from .runs import ablate, demo, run
from .traces import annotate_command, inspect, judge_agreement_command, tagger_agreement_command
from .passes import generate_command, guide_command, refine_command
from .folders import merge_command, status_command

__all__ = ["app", "run", "ablate", "demo", "inspect", "annotate_command", "tagger_agreement_command", "judge_agreement_command",
           "generate_command", "guide_command", "refine_command", "status_command", "merge_command"]
