"""`circuits features`: help with examples, build then describe through the command line."""

import json

import pytest

from circuits.cli.main import main
from tests import builders
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet, save_transcoder_set

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def small_corpus(small_cache, small_corpus_config, tmp_path, monkeypatch) -> None:
    """Commands see the small corpus as the corpus of every model, and a fresh cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "corpus").symlink_to(small_cache / "corpus")
    monkeypatch.setenv("CIRCUITS_CACHE", str(cache))
    monkeypatch.setattr("transcoders.corpus.corpus_config_for", lambda spec: small_corpus_config)


@pytest.fixture
def tset_dir(tmp_path):
    layers = [Transcoder(builders.tiny_transcoder("topk")) for _ in range(2)]
    return save_transcoder_set(TranscoderSet(layers, model="tiny-test-model"), tmp_path / "tc")


@pytest.mark.parametrize("command", ["build", "describe"])
def test_help_shows_examples(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["features", command, "--help"])
    assert exit_info.value.code == 0
    assert "circuits features describe --model zoo:tiny --layer 1 --feature 42" in (
        capsys.readouterr().out
    )


def test_build_then_describe_through_the_command_line(
    tiny_model_dir, tset_dir, small_corpus, capsys
) -> None:
    common = ["--model", str(tiny_model_dir), "--transcoders", str(tset_dir), "--n-tokens", "64"]
    assert main(["features", "build", *common, "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "63 tokens scanned" in out and "layer 1: 64 features" in out  # 1 window of 64

    assert main(["features", "describe", *common, "--layer", "1", "--feature", "5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("L1/F5  ") and "promoted:" in text
    assert "«" in text or "never active" in text

    assert main(["features", "describe", *common, "--layer", "1", "--feature", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["layer"], data["feature"]) == (1, 5) and len(data["promoted"]) == 10


def test_feature_outside_the_set_is_a_one_line_error(
    tiny_model_dir, tset_dir, small_corpus, capsys
) -> None:
    args = ["--model", str(tiny_model_dir), "--transcoders", str(tset_dir), "--n-tokens", "64"]
    assert (
        main(["features", "describe", *args, "--no-progress", "--layer", "0", "--feature", "64"])
        == 1
    )
    last = capsys.readouterr().err.splitlines()[-1]  # after the model loader's progress bar
    assert last.startswith("circuits: error: feature 64 does not exist in layer 0; ")


def test_scan_defaults_are_the_scan_settings() -> None:
    from circuits.cli.main import build_parser
    from circuits.features.scan import ScanSettings

    args = build_parser().parse_args(["features", "build"])
    assert (args.n_tokens, args.top_k) == (ScanSettings().n_tokens, ScanSettings().top_k)
