"""`GenerationSummary`: what one `generate` call did, and what its problems hold after it."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa


def error_kind(error: str) -> str:
    """The kind of an error message: its leading exception name ("BadRequestError: …"), else "other"."""
    match = re.match(r"([A-Za-z_][\w.]*)(?::|$)", error)
    return match.group(1).rsplit(".", 1)[-1] if match else "other"


@dataclass
class GenerationSummary:
    """What one `generate` call did (the rows it wrote), and what its problems hold now (new and reused)."""

    problems: int = 0
    """Problems in this call's share."""
    requested: int = 0
    """(problem, sample) pairs asked for: problems × n."""
    skipped: int = 0
    """Pairs already written by an earlier run (reused), not generated again."""
    generated: int = 0
    """Rows written by this call, error rows included."""
    errors: dict[str, int] = field(default_factory=dict)
    """Error rows written by this call, by kind (the exception name at the start of the message)."""
    truncated: int = 0
    """Traces cut at max_tokens (kept, flagged `truncated`)."""
    completion_tokens: int = 0
    seconds: float = 0.0
    output_dir: str | None = None
    shard: str | None = None
    traces: int = 0
    """Rows of this call's problems after it: this call's and those reused from the folder."""
    failed: int = 0
    """Of `traces`, the rows that are errors (reused error rows included: `retry_failed` redoes them)."""

    def add(self, table: pa.Table, tokens: int) -> None:
        """Count one written batch."""
        self.generated += table.num_rows
        self.completion_tokens += tokens
        kinds = Counter(error_kind(e) for e in table.column("error").to_pylist() if e is not None)
        self.errors = dict(Counter(self.errors) + kinds)
        self.truncated += sum("truncated" in (f or []) for f in table.column("flags").to_pylist())

    def count_result(self, errors: list[str | None]) -> None:
        """Count the rows returned for this call's problems (the `error` column of the result)."""
        self.traces = len(errors)
        self.failed = sum(e is not None for e in errors)

    @property
    def error_count(self) -> int:
        """All error rows written by this call."""
        return sum(self.errors.values())

    @property
    def all_failed(self) -> bool:
        """Nothing usable: every row this call wrote, or every row it returns, is an error."""
        return (self.generated > 0 and self.error_count == self.generated) or (self.traces > 0 and self.failed == self.traces)

    @property
    def outcome(self) -> str:
        """"ran" (all new), "reused" (nothing new), or "resumed" (some of each)."""
        return "reused" if self.generated == 0 and self.skipped else "resumed" if self.skipped else "ran"

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the counts, plus the rates)."""
        return {**asdict(self), "error_count": self.error_count, "tokens_per_s": round(self.tokens_per_s, 1),
                "outcome": self.outcome}

    def __str__(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"
        where = f" into {self.output_dir}" + (f" (shard {self.shard})" if self.shard else "") if self.output_dir else ""
        held = f"; {self.traces} traces, {self.failed} of them errors" if self.failed else f"; {self.traces} traces"
        retry = " (--retry-failed / retry_failed=True generates them again)" if self.failed else ""
        return (f"generate {self.outcome}: {self.generated} new traces for {self.problems} problems{where}, "
                f"{self.skipped} reused; new errors: {errors}; truncated: {self.truncated}; "
                f"{self.completion_tokens} tokens in {self.seconds:.1f}s ({self.tokens_per_s:.0f} tok/s){held}{retry}")
