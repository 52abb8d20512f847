"""Bad generation inputs are refused before any engine starts or anything is written, naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from pydantic import ValidationError
from typer.testing import CliRunner

from natural_thoughts import generate, load_problems
from natural_thoughts.cli import app
from natural_thoughts.pipeline.config import RunConfig
from natural_thoughts.llm.requests import build_messages

from tests.conftest import DATA

PROBLEMS = load_problems(Dataset.from_list([{"problem": "What is 2 + 2?", "reference_answer": "4"}]))


@pytest.mark.parametrize(("arguments", "named"), [
    ({"sampling": {"max_token": 5}}, r"unknown sampling key 'max_token'; did you mean 'max_tokens'\?"),
    ({"sampling": {"max_tokens": -1}}, r"max_tokens\n.*greater than or equal to 1"),
    ({"sampling": {"temperature": -0.5}}, r"temperature\n.*greater than or equal to 0"),
    ({"sampling": {"top_p": 0}}, r"top_p\n.*greater than 0"),
    ({"n": 0}, r"n must be at least 1, got 0"),
    ({"batch_size": 0}, r"batch_size must be at least 1, got 0"),
    ({"prompt_template": "Solve {{ problem"}, r"prompt_template cannot be rendered \(TemplateSyntaxError"),
    ({"prompt_template": "Solve {{ problme }}"}, r"prompt_template cannot be rendered .*'problme' is undefined"),
    ({"prompt_template": "Solve it."}, r"never places the problem"),
])
def test_bad_generate_arguments_are_refused_before_anything_is_written(arguments: dict[str, Any], named: str,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "traces"
    with pytest.raises((ValueError, ValidationError), match=named):
        generate(PROBLEMS, model=str(tmp_path / "model-never-loaded"), output_dir=out, **arguments)
    assert not out.exists()


@pytest.mark.parametrize(("section", "named"), [
    ({"sampling": {"max_token": 5}}, "generate.sampling"),
    ({"sampling": {"max_tokens": -3}}, "generate.sampling.max_tokens"),
    ({"n": 0}, "generate.n"),
    ({"batch_size": 0}, "generate.batch_size"),
    ({"prompt_template": "{% if %}"}, "generate.prompt_template"),
])
def test_bad_generate_config_is_refused_naming_the_field(section: dict[str, Any], named: str) -> None:
    config = {"problems": {"source": "p.jsonl"}, "generate": {"model": "tiny", **section}}
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate(config)
    assert named in {".".join(map(str, e["loc"])) for e in info.value.errors()}


def test_prompt_templates_take_both_brace_styles_and_keep_literal_braces() -> None:
    def user(template: str) -> str:
        return build_messages("2 + 2?", template, None)[-1]["content"]

    assert user("Solve: {problem}") == user("Solve: {{ problem }}") == "Solve: 2 + 2?"
    assert user('Reply as {"answer": ...}. {problem}') == 'Reply as {"answer": ...}. 2 + 2?'
    assert user("{% if problem %}Q: {{ problem }}{% endif %}\n") == "Q: 2 + 2?\n"
    assert user("{problem}") == "2 + 2?"  # a problem with braces is never parsed as a template
    assert build_messages("{x} {{ y }}", "Q: {problem}", None)[-1]["content"] == "Q: {x} {{ y }}"


def test_the_cli_names_a_bad_option_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "traces"
    result = CliRunner().invoke(app, ["generate", str(DATA / "gsm8k_test.jsonl"), "--preset", "gsm8k", "--limit",
                                      "2", "--model", "unused", "--output-dir", str(out), "--max-tokens", "-1"])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("error: max_tokens: Input should be greater than or equal to 1")
    assert not out.exists()


def test_a_negative_seed_is_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "traces"
    result = CliRunner().invoke(app, ["generate", str(DATA / "gsm8k_test.jsonl"), "--preset", "gsm8k", "--limit",
                                      "2", "--model", "unused", "--output-dir", str(out), "--seed", "-1"])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("error: seed: Input should be greater than or equal to 0")
    assert not out.exists()


def test_repeated_problem_ids_in_a_ready_dataset_are_refused(tmp_path: Path) -> None:
    ds = Dataset.from_dict({"problem_id": ["a", "b", "a"], "problem": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="problem id.*more than once: a"):
        generate(ds, model=str(tmp_path / "no-model"), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
