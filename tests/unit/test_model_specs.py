"""Model specs resolve to directories or fail with one line naming the fix."""

import pytest

from circuits.errors import ModelSpecError
from circuits.models import load_tokenizer, resolve_model_dir
from circuits.zoo.registry import is_trained, zoo_path


def test_unknown_zoo_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelSpecError, match="known: tiny"):
        resolve_model_dir("zoo:huge")


def test_untrained_zoo_model_says_how_to_train_it(monkeypatch) -> None:
    monkeypatch.setattr("circuits.zoo.registry.is_trained", lambda name: False)
    with pytest.raises(ModelSpecError, match="circuits zoo train medium"):
        resolve_model_dir("zoo:medium")


@pytest.mark.skipif(not is_trained("default"), reason="shipped model missing")
def test_default_names_the_shipped_model() -> None:
    assert resolve_model_dir("zoo:default") == zoo_path("tiny")


def test_missing_directory_is_reported(tmp_path) -> None:
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nothing"))


def test_directory_without_config_is_reported(tmp_path) -> None:
    with pytest.raises(ModelSpecError, match=r"no config\.json"):
        resolve_model_dir(str(tmp_path))


def test_hub_names_are_left_to_the_hub() -> None:
    assert resolve_model_dir("gpt2") is None


def test_directory_without_tokenizer_is_refused(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelSpecError, match="no tokenizer files"):
        load_tokenizer(tmp_path)
