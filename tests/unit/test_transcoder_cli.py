"""The `transcoders` command: help with examples, usage errors, and a tiny train-then-eval."""

import json
import shutil

import pytest

from transcoders.cli.main import main

pytestmark = pytest.mark.usefixtures("single_thread")

TINY_RUN = [
    "--tokens", "512", "--batch-size", "128", "--buffer-tokens", "512",
    "--d-transcoder", "64", "--k", "4", "--threads", "1",
]  # fmt: skip


@pytest.fixture
def small_corpus(small_cache, small_corpus_config, monkeypatch) -> None:
    """Commands see the small corpus as the corpus of every model."""
    monkeypatch.setenv("CIRCUITS_CACHE", str(small_cache))
    monkeypatch.setattr("transcoders.corpus.corpus_config_for", lambda spec: small_corpus_config)


@pytest.mark.parametrize("command", ["train", "eval"])
def test_help_shows_examples(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"transcoders {command} --model zoo:tiny" in capsys.readouterr().out


def test_sparsity_field_of_another_kind_is_a_usage_error(tiny_model_dir, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", str(tiny_model_dir), "--kind", "relu", "--k", "4"])
    assert exit_info.value.code == 2
    assert "k is not used by kind 'relu'" in capsys.readouterr().err


def test_eval_without_a_registered_set_is_a_one_line_error(tiny_model_dir, capsys) -> None:
    assert main(["eval", "--model", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("transcoders: error: no transcoder set is registered")
    assert f"transcoders train --model {tiny_model_dir} --into-model" in err
    assert err.count("\n") == 1


def test_train_then_eval_through_the_command_line(
    tiny_model_dir, small_corpus, tmp_path, capsys
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    assert main(["train", "--model", str(model), "--into-model", *TINY_RUN]) == 0
    assert (model / "transcoders" / "config.json").exists()  # the registered set
    assert "held-out FVU" in capsys.readouterr().out

    eval_args = ["eval", "--model", str(model), "--n-tokens", "64", "--n-prompts", "3"]
    assert main([*eval_args, "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["transcoders"] == str(model / "transcoders")
    assert len(report["isolated"]) == len(report["spliced"]) == 2
    assert {"original", "spliced", "ratio"} <= set(report["tasks"]["ioi.logit_diff"])

    assert main(eval_args) == 0
    table = capsys.readouterr().out
    assert "loss recovered" in table and "greater_than.prob_diff" in table


def test_training_tokens_follow_the_zoo_registry_unless_given() -> None:
    from circuits.zoo.registry import ZOO
    from transcoders.config import TrainConfig
    from transcoders.corpus import training_tokens

    default = TrainConfig().n_tokens
    assert ZOO["small"].transcoder_tokens not in (None, default)
    assert training_tokens(None, "zoo:small") == ZOO["small"].transcoder_tokens
    assert training_tokens(None, "zoo:tiny") == default
    assert training_tokens(None, "some/model/dir") == default
    assert training_tokens(1234, "zoo:small") == 1234
