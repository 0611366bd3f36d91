"""The `circuits` command: help with examples, usage errors, one-line domain errors."""

import pytest

from circuits.cli.main import main
from circuits.zoo.registry import ZOO


def test_help_shows_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["zoo", "--help"])
    assert exit_info.value.code == 0
    assert "circuits zoo eval tiny --json" in capsys.readouterr().out


def test_zoo_list_names_prints_one_name_per_line(capsys) -> None:
    assert main(["zoo", "list", "--names"]) == 0
    assert capsys.readouterr().out.split() == list(ZOO)


def test_zoo_list_shows_a_table(capsys) -> None:
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "ioi.logit_diff" in out and all(name in out for name in ZOO)


def test_unknown_model_is_a_one_line_error(capsys) -> None:
    assert main(["zoo", "path", "huge"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("circuits: error: no zoo model 'huge'") and err.count("\n") == 1


def test_missing_argument_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["zoo", "eval"])
    assert exit_info.value.code == 2
