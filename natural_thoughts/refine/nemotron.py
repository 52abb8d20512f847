"""The layout of `nvidia/Nemotron-Math-HumanReasoning` read as traces with refinement lineage.

The dataset (released with arXiv 2507.09850) holds, per problem, one human-written solution at each
of the stages `human_stage1` … `human_stage4` (each a revision of the one before) and one
`qwq_32b_preview` solution; fields `problem`, `solution`, `solution_type`, `expected_answer`. Read here
(the `nemotron_human_reasoning` trace preset of `load.presets`), every row is a trace of model
`solution_type`, the human stages chained by `parent_trace_id` with the same lineage columns and
answer checks as our own passes, so `stage_report` compares them the same way.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from ..load.sources import load_traces

PRESET = "nemotron_human_reasoning"
"""The trace preset that reads this layout: `load_traces(source, preset=PRESET)`."""


def nemotron_human_reasoning(ds: Any) -> Dataset:
    """Traces of the Nemotron-Math-HumanReasoning layout, with lineage (`ds`: the dataset, or any
    source `load_traces` reads).

    `problem_id` is the hash of the problem text; `sample_index` follows the solution type (the
    human stages in order, then `qwq_32b_preview`); `completion` is the solution, `model` the
    solution type, `reference_answer` the expected answer. `refine.stage` is the solution type and
    `refine.step` is n − 1 for `human_stage<n>` (0 for other types); each human stage's parent is
    the same problem's nearest earlier human stage, so `refine.answer_kept` says whether the
    revision kept its answer; `refine.correct` checks it against the expected answer. Prompt
    columns are null: the revisions were made by people. Two solutions of one type for one problem
    are an error naming the row.
    """
    return load_traces(ds, preset=PRESET)
