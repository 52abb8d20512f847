"""Selector parameters are checked when a config is read, against the constructor's signature and
type hints: one line naming the selector and the parameter, "did you mean" for a misspelt one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

import natural_thoughts as nt
from natural_thoughts.annotate.annotators import get_annotator
from natural_thoughts.cli import app
from natural_thoughts.selectors import Long, Random, Sequential, get_selector

REFUSED = [
    ({"Long": {"tau": "high"}}, "Long: tau must be a number, got 'high'"),
    ({"Long": {"tua": 2.5}}, "Long: unknown parameter 'tua' (did you mean 'tau'?); its parameters: C, tau, k, seed, "
                             "column, C_quantile"),
    ({"Long": {"k": "2.5"}}, "Long: k must be a whole number or null, got '2.5'"),
    ({"Long": {"k": 2.5}}, "Long: k must be a whole number or null, got 2.5"),
    ({"Random": {"xyz": 1}}, "Random: unknown parameter 'xyz'; its parameters: k, seed"),
    ({"DropFlags": {"drop_errors": "no"}}, "DropFlags: drop_errors must be true or false, got 'no'"),
    ({"ModelsDisagree": {"label_column": 3}}, "ModelsDisagree: label_column must be a string or null, got 3"),
    ({"Sequential": {"steps": ["DropFlags", {"Long": {"C_quantil": 0.5}}]}},
     "Long: unknown parameter 'C_quantil' (did you mean 'C_quantile'?)"),
]


@pytest.mark.parametrize(("spec", "message"), REFUSED)
def test_a_bad_parameter_is_refused_in_one_line_naming_selector_and_parameter(spec: dict, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        get_selector(spec)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_numbers_written_as_text_are_read_as_numbers_where_a_number_is_asked() -> None:
    """`"2.5"` and YAML 1.1's `1e4` (read as a string) are numbers; a whole float is a whole number;
    a string parameter keeps its text."""
    assert yaml.safe_load("C: 1e4")["C"] == "1e4"  # why this matters
    long = get_selector({"Long": {"tau": "2.5", "C": "1e4", "k": 30.0, "seed": "3", "column": "123"}})
    assert long == Long(C=10000.0, tau=2.5, k=30, seed=3, column="123")
    assert type(long.k) is int and type(long.seed) is int
    assert get_selector({"Long": {"C": "auto"}}).C == "auto"
    nested = get_selector({"Sequential": {"steps": [{"Random": {"k": "4"}}]}})
    assert nested == Sequential(steps=[Random(k=4)])


def test_annotator_parameters_are_checked_the_same_way() -> None:
    with pytest.raises(ValueError, match=r"answer_judge: report must be one of \['disagree', 'equivalent'\], "
                                         r"got 'agree'"):
        get_annotator({"answer_judge": {"report": "agree"}})
    with pytest.raises(ValueError, match="answer_judge: unknown parameter 'max_char' .did you mean 'max_chars'"):
        get_annotator({"answer_judge": {"max_char": 100}})
    assert get_annotator({"answer_judge": {"max_chars": "100"}}).max_chars == 100


def _config(tmp_path: Path, long_params: dict) -> dict:
    """A run config whose selector is Long with `long_params`; its traces file does not exist, so a
    run that got past the config check would fail on loading instead."""
    return {"name": "params", "output_dir": str(tmp_path / "run"),
            "traces": {"source": str(tmp_path / "absent.jsonl")},
            "select": {"selector": {"Sequential": {"steps": ["DropFlags", {"Long": long_params}]}}, "k": 5}}


@pytest.mark.parametrize(("params", "message"), [
    ({"tau": "high"}, "Long: tau must be a number, got 'high'"),
    ({"tua": 2.5}, "Long: unknown parameter 'tua' (did you mean 'tau'?)"),
])
def test_run_refuses_a_bad_parameter_before_any_stage(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        nt.run(_config(tmp_path, params))
    assert message in str(refused.value)
    assert not (tmp_path / "run").exists()

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, params)))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert result.output.startswith(f"error: select.selector: {message}")
    assert not (tmp_path / "run").exists()


def test_run_reads_a_number_written_as_text(tmp_path: Path) -> None:
    """`tau: "2.5"` passes the config check; the run then stops at its missing traces file."""
    config = _config(tmp_path, {"tau": "2.5", "C": "1e4"})
    assert nt.RunConfig.model_validate(config).select.selector == config["select"]["selector"]
    with pytest.raises(Exception, match="absent.jsonl"):
        nt.run(config)
