"""The label vocabularies shared by the LLM annotators and the heuristic tagger.

`STRATEGIES` is the meta-reasoning taxonomy (after NaturalThoughts' strategy labels, made explicit):
each name maps to the one-line definition shown to the judge. `DOMAINS` are NaturalThoughts' 13
domains. Both the judge's pydantic answer models and the tagger's markers use these names, so a
`label.strategies` column means the same whoever wrote it.
"""

from __future__ import annotations

STRATEGIES: dict[str, str] = {
    "self_verification": "checks an intermediate or final result (recomputes it, plugs it back in, double-checks)",
    "backtracking": "notices a mistake or dead end and abandons or corrects an earlier step",
    "exploring_alternatives": "considers or tries a different approach or interpretation",
    "subgoal_decomposition": "splits the problem into smaller steps or subproblems solved in turn",
    "working_backwards": "reasons from the goal or the desired answer back towards the givens",
    "analogy": "uses a similar, known problem or a familiar fact as a model",
    "case_analysis": "splits into cases or supposes a hypothesis and follows each branch",
    "estimation_sanity_check": "estimates magnitudes or checks that a result is plausible",
    "restating_problem": "restates or paraphrases the problem or what is asked",
    "summarizing_progress": "summarizes what has been established so far before going on",
}
"""Strategy name → definition (the order is the order labels are listed in)."""

DOMAINS: tuple[str, ...] = (
    "Engineering",
    "Philosophy",
    "Medicine",
    "Economics",
    "Science",
    "Law",
    "History",
    "Education",
    "Management",
    "Literature and Arts",
    "Agronomy",
    "Sociology",
    "Military Science",
)
"""NaturalThoughts' 13 domains (mathematics falls under Science)."""
