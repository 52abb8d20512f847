"""The stage protocol: every registered stage's section round-trips through YAML, the command line
takes its defaults from the stage models (written once), and a stage added through the registry runs."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from datasets import Dataset, load_dataset
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from natural_thoughts import cli
from natural_thoughts.annotate import DEFAULT_SAMPLING
from natural_thoughts.pipeline import (STAGES, AnnotateConfig, ColumnStage, Context, GenerateConfig, RunConfig,
                                       register_stage, run)
from natural_thoughts.pipeline.stage import registered
from natural_thoughts.pipeline.stages import OWNER_FILE, own_output_dir
from natural_thoughts.schema import SamplingConfig

from tests.conftest import DATA
from tests.pipeline.test_pipeline import RUN_CONFIGS

REQUIRED = {"problems": {"source": "q.jsonl"}, "generate": {"model": "tiny"}, "traces": {"source": "t.jsonl"},
            "annotate": {"tagger": True}}
"""The smallest valid section of each stage with required fields; the others validate empty."""


@register_stage("problem_chars", order=65)
class ProblemChars(ColumnStage):
    """`score.problem_chars`: each problem's length in characters (the docs' worked example)."""

    column: str = "score.problem_chars"

    def add(self, ds: Dataset, ctx: Context) -> Dataset:
        return ds.add_column(self.column, [len(p) for p in ds["problem"]])


@pytest.mark.parametrize("stage", registered(), ids=lambda cls: cls.section)
def test_every_registered_section_round_trips_through_yaml(stage: type) -> None:
    section = stage.model_validate(REQUIRED.get(stage.section, {}))
    text = yaml.safe_dump({stage.section: section.model_dump(mode="json")})
    assert stage.model_validate(yaml.safe_load(text)[stage.section]) == section
    assert STAGES.get(stage.section) is stage


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_round_trip_through_yaml(path: Path) -> None:
    cfg = RunConfig.from_yaml(path)
    text = yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False)
    again = RunConfig.model_validate(yaml.safe_load(text))
    assert again == cfg and [s.section for s in again.stages()] == [s.section for s in cfg.stages()]


def test_sections_run_in_registered_order_and_unknown_ones_list_the_known() -> None:
    cfg = RunConfig.model_validate({"traces": {"source": "t.jsonl"}, "verify": {}, "annotate": {"tagger": True}})
    assert [s.section for s in cfg.stages()] == ["traces", "annotate", "verify", "score", "select", "export", "card"]
    with pytest.raises(ValidationError, match="did you mean 'verify'.*problem_chars"):
        RunConfig.model_validate({"traces": {"source": "t.jsonl"}, "verfy": {}})


def _option_defaults(command: str) -> dict[str, Any]:
    click_command = typer.main.get_command(cli.app).commands[command]  # type: ignore[attr-defined]
    return {p.name: p.default for p in click_command.params}


def _literal_defaults(function: Any) -> set[str]:
    """Parameters of a command whose `typer.Option(...)` default is written as a literal (not None)."""
    tree = ast.parse(inspect.getsource(function).lstrip())
    args = tree.body[0].args  # type: ignore[attr-defined]
    found = set()
    for arg, default in zip(args.args[len(args.args) - len(args.defaults):], args.defaults):
        first = default.args[0] if isinstance(default, ast.Call) and default.args else None
        if isinstance(first, ast.Constant) and first.value not in (None, ...):
            found.add(arg.arg)
    return found


JSON_OPTIONS = {"chat_template_kwargs", "engine_kwargs"}
"""Options read as JSON text (None: nothing given) for fields that default to `{}`."""


def _shared(command: str, *models: type[BaseModel]) -> dict[str, Any]:
    """{option: the model's default} for each option named like an optional field of `models`."""
    options = _option_defaults(command)
    return {name: field.get_default(call_default_factory=True) for model in models
            for name, field in model.model_fields.items()
            if name in options and name not in JSON_OPTIONS and not field.is_required()}


def test_the_command_line_takes_its_defaults_from_the_models() -> None:
    generate = _shared("generate", SamplingConfig, GenerateConfig)
    assert {"n", "backend", "batch_size", "prompt_template", "temperature", "top_p", "max_tokens", "seed"} <= set(generate)
    assert {k: _option_defaults("generate")[k] for k in generate} == generate
    assert _option_defaults("annotate")["backend"] == AnnotateConfig.model_fields["backend"].default
    assert _option_defaults("annotate")["max_tokens"] == DEFAULT_SAMPLING["max_tokens"]
    # a default written twice would drift: the shared options name the model, never a literal
    assert not _literal_defaults(cli.generate_command) & set(generate)
    assert not _literal_defaults(cli.annotate_command) & {"backend", "max_tokens"}


def test_a_stage_added_through_the_registry_runs_and_is_reused(tmp_path: Path) -> None:
    rows = [{"problem": f"What is {i} + {i}?", "completion": f"<think>{i} + {i}</think> {2 * i}"} for i in range(1, 9)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = {"output_dir": str(tmp_path / "run"), "traces": {"source": str(tmp_path / "t.jsonl")},
              "problem_chars": {}, "score": {"approximate": True}, "export": {"format": "raw", "file_format": "jsonl"}}
    first = run(config)
    assert list(first["stages"]) == ["traces", "score", "problem_chars", "select", "export"]
    assert first["stages"]["problem_chars"] == "ran"
    exported = load_dataset("json", data_files=str(tmp_path / "run" / "export" / "train.jsonl"))["train"]
    assert exported["score.problem_chars"] == [len(p) for p in exported["problem"]]
    assert run(config)["stages"]["problem_chars"] == "reused"
    assert run({**config, "problem_chars": {"column": "score.chars"}})["stages"]["problem_chars"] == "ran"


def _small_run(out: Path) -> dict[str, Any]:
    """A run without an engine on the first 30 real Sky-T1 traces."""
    return {"output_dir": str(out), "traces": {"source": str(DATA / "skythought_math500_sky-t1-27b.jsonl"),
                                                "preset": "skythought_eval", "limit": 30},
            "score": {"approximate": True}, "export": {"format": "raw", "file_format": "jsonl"}}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_of_the_users_own_is_refused_in_one_line_and_left_intact(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    for name in ("export/train.jsonl", "select/picks.parquet", "notes.txt"):
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text(f"my own {name}\n")
    before = _files(mine)
    with pytest.raises(ValueError, match=f"output_dir {mine} holds files that natural-thoughts did not make"):
        run(_small_run(mine))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(_small_run(mine)))
    result = CliRunner().invoke(cli.app, ["run", str(config)])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith(f"error: output_dir {mine} holds files") and "Traceback" not in result.output
    assert _files(mine) == before


def test_a_run_folder_is_marked_ours_and_held_while_a_command_runs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run(_small_run(out))["stages"]["export"] == "ran"
    assert (out / OWNER_FILE).is_file()
    with own_output_dir(out):  # another command holds the folder
        with pytest.raises(RuntimeError, match=f"another natural-thoughts command is running in {out}"):
            run(_small_run(out))
    assert run(_small_run(out))["stages"]["export"] == "reused"


def test_a_config_that_is_not_utf8_or_not_yaml_names_the_file(tmp_path: Path) -> None:
    latin1, broken = tmp_path / "latin1.yaml", tmp_path / "broken.yaml"
    latin1.write_bytes("name: run\noutput_dir: caf\xe9\n".encode("latin-1"))
    broken.write_text("name: [run\n")
    with pytest.raises(ValueError, match=rf"{latin1}:2: not UTF-8 text \(byte 0xe9"):
        RunConfig.from_yaml(latin1)
    with pytest.raises(ValueError, match=rf"{broken}: not valid YAML"):
        RunConfig.from_yaml(broken)
