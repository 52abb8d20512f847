"""Code traces verified by running them: test formats, a bounded local runner, the code verifier.

`verify_code(traces)` runs each trace's program against its row's `tests` (`verify` calls it for rows
that carry tests); `run_programs` runs `Program`s directly. The local runner's limits protect the
machine from honest mistakes (endless loops, memory hogs, fork bombs, huge output); they are not a
security boundary: plug a real sandbox through the `Sandbox` protocol for untrusted code.
"""

from .formats import LCB_PRELUDE, TestFormatError, dump_tests, prelude_for, read_tests
from .harness import outputs_match, values_match
from .prompts import CODE_PROMPT
from .runner import (
    FAILURE_KINDS, Failure, Limits, LocalSandbox, Outcome, Program, Sandbox, TestCase, network_isolation, run_programs,
)
from .verifier import (
    CODE_COLUMNS, WEAK_COLUMNS, build_program, extract_program, last_fence, run_cached, verify_code,
)

__all__ = [
    "CODE_COLUMNS", "CODE_PROMPT", "FAILURE_KINDS", "LCB_PRELUDE", "WEAK_COLUMNS", "Failure", "Limits", "LocalSandbox", "Outcome",
    "Program", "Sandbox", "TestCase", "TestFormatError", "build_program", "dump_tests", "extract_program",
    "last_fence", "network_isolation", "outputs_match", "prelude_for", "read_tests", "run_cached", "run_programs",
    "values_match", "verify_code",
]
