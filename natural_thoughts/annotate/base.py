"""What every LLM annotator is: a versioned prompt file, a pydantic answer model, label columns.

An annotator turns one row into chat messages (its jinja prompt, rendered in a sandbox), declares the
JSON schema that constrains the judge's reply, and turns a validated reply into label values. It
never guesses: a reply that is not valid JSON or fails the model's validation is an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel, ValidationError

from ..llm.requests import PROMPT_SANDBOX

PROMPTS = "natural_thoughts.annotate.prompts"
DEFAULT_MAX_CHARS = 12_000
"""Default cap on the characters of reasoning (or problem) text shown to a judge."""
NAME = re.compile(r"[A-Za-z0-9_-]+")
"""What an annotator name may hold: it becomes `label.<name>` and the folder `<name>-<hash>`."""


def shorten(text: str | None, max_chars: int) -> tuple[str, int]:
    """`text` cut to at most `max_chars` characters, keeping its head and tail, and the number of
    characters left out of the middle (0 when nothing was cut)."""
    text = text or ""
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if len(text) <= max_chars:
        return text, 0
    head = max_chars // 2
    tail = max_chars - head
    omitted = len(text) - max_chars
    return f"{text[:head]}\n\n[... {omitted} characters omitted ...]\n\n{text[len(text) - tail:]}", omitted


def reasoning_text(row: dict[str, Any]) -> str:
    """The text a trace reasoned in: its `reasoning`, or its whole `completion` when the parser
    found no separate reasoning (plain chain-of-thought traces)."""
    return row.get("reasoning") or row.get("completion") or ""


class ReplyError(ValueError):
    """A judge reply that is not valid JSON or does not validate against the answer model."""


class Annotator:
    """The base of every LLM annotator (subclasses set the class attributes and `context`).

    `name` names the columns (`label.<name>.raw`, `label.<name>.error`) and the shard folder;
    `scope` says whether one judgement covers a trace ("trace", keyed by `trace_id`) or a problem
    ("problem", keyed by `problem_id`, asked once and shared by the problem's traces). `prompt` may
    point to another jinja file to replace the packaged one; its text and sha256 fingerprint a run.
    """

    name: str = ""
    prompt_file: ClassVar[str] = ""
    Answer: ClassVar[type[BaseModel]]
    scope: ClassVar[Literal["trace", "problem"]] = "trace"
    needs: ClassVar[tuple[str, ...]] = ()
    """Columns `context` reads."""
    optional: ClassVar[tuple[str, ...]] = ()
    """Columns `context` reads where the traces have them."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, prompt: str | Path | None = None,
                 name: str | None = None) -> None:
        self.name = name or type(self).name
        if not NAME.fullmatch(self.name):
            raise ValueError(f"annotator name {self.name!r} must be letters, digits, '_' or '-' (it names "
                             "columns and a folder under output_dir)")
        self.max_chars = max_chars
        self.prompt = prompt

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    def config(self) -> dict[str, Any]:
        """The constructor arguments (what, with the prompt, defines this annotator's run)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self).items()
                if not k.startswith("_")}

    @property
    def key(self) -> str:
        """The column that identifies one judgement: `trace_id` or `problem_id`."""
        return "trace_id" if self.scope == "trace" else "problem_id"

    @property
    def prompt_text(self) -> str:
        """The jinja source of the prompt (the packaged versioned file unless `prompt` is set)."""
        if self.prompt is not None:
            return Path(self.prompt).read_text(encoding="utf-8")
        return resources.files(PROMPTS).joinpath(self.prompt_file).read_text(encoding="utf-8")

    @property
    def prompt_sha256(self) -> str:
        """sha256 of the prompt text: a changed prompt is a new run."""
        return hashlib.sha256(self.prompt_text.encode("utf-8")).hexdigest()

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema the judge's reply is constrained to."""
        return self.Answer.model_json_schema()

    def fingerprint(self) -> dict[str, Any]:
        """Everything about this annotator that changes its labels, for the run manifest."""
        return {
            "annotator": type(self).__name__,
            "config": self.config(),
            "prompt_file": str(self.prompt) if self.prompt is not None else self.prompt_file,
            "prompt_text": self.prompt_text,
            "prompt_sha256": self.prompt_sha256,
            "json_schema": self.json_schema(),
        }

    def label_columns(self) -> dict[str, pa.DataType]:
        """Every output column (with its Arrow type): labels, raw reply, error."""
        cols = {f"label.{suffix}": t for suffix, t in self.label_types().items()}
        return cols | {f"label.{self.name}.raw": pa.string(), f"label.{self.name}.error": pa.string()}

    def skip_reason(self, row: dict[str, Any]) -> str | None:
        """Why this row cannot be judged (its labels stay null, no judge is asked), or None."""
        return None

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        """The template variables for one row."""
        raise NotImplementedError

    def shown(self, text: str | None) -> dict[str, Any]:
        """A long text cut to `max_chars` (head + tail) and how much was left out."""
        body, omitted = shorten(text, self.max_chars)
        return {"text": body, "omitted": omitted, "total": len(text or "")}

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages asking the judge about one row."""
        return self.render(self.context(row))

    def render(self, context: dict[str, Any]) -> list[dict[str, str]]:
        """The prompt rendered with `context` (plus `schema`, the JSON schema) as chat messages."""
        template = PROMPT_SANDBOX.from_string(self.prompt_text)
        content = template.render(**context, schema=json.dumps(self.json_schema()))
        return [{"role": "user", "content": content.strip()}]

    def parse(self, text: str) -> BaseModel:
        """The validated answer in a reply, or `ReplyError` saying why there is none.

        JSON is read with `strict=False` (raw control characters allowed inside strings, as
        grammar-constrained decoders may emit them); nothing else is repaired.
        """
        try:
            data = json.loads(text, strict=False)
        except json.JSONDecodeError as exc:
            raise ReplyError(f"reply is not valid JSON ({exc.msg} at char {exc.pos} of {len(text)})") from exc
        try:
            return self.Answer.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
            raise ReplyError(f"reply does not validate against {self.Answer.__name__}: {problems}") from exc

    def label_types(self) -> dict[str, pa.DataType]:
        """Label column suffix → Arrow type of the values `labels` returns."""
        raise NotImplementedError

    def labels(self, answer: BaseModel) -> dict[str, Any]:
        """Label column suffix → value for one validated answer."""
        raise NotImplementedError
